//! JWKS documents.

use crate::checks::fixtures::{jwk, jwk_names};
use crate::checks::jwks::check_set;
use crate::config::config;
use crate::strategies::{hostile, json_text, mutated};
use proptest::prelude::*;
use serde_json::{json, Value};

/// One change to a fixture JWK.
fn change() -> impl Strategy<Value = (String, Option<Value>)> {
    let text = |s: &str| Some(json!(s));
    prop_oneof![
        2 => prop_oneof![hostile(3).prop_map(|k| Some(json!(k))), Just(Some(json!(7))), Just(None)].prop_map(|v| ("kid".to_owned(), v)),
        3 => proptest::sample::select(&["RS256", "PS256", "ES256", "EdDSA", "HS256", "RS512", "Ed25519", "es256", "none", ""][..])
            .prop_map(move |a| ("alg".to_owned(), text(a))),
        1 => proptest::sample::select(&["sig", "enc", "SIG", ""][..]).prop_map(move |u| ("use".to_owned(), text(u))),
        1 => prop_oneof![Just(json!(["verify"])), Just(json!(["sign"])), Just(json!(["encrypt", "verify"])), Just(json!("verify")), Just(json!([1]))]
            .prop_map(|ops| ("key_ops".to_owned(), Some(ops))),
        1 => proptest::sample::select(&["d", "p", "q", "dp", "dq", "qi", "oth", "k"][..])
            .prop_map(|m| (m.to_owned(), Some(json!("AQAB")))),
        2 => proptest::sample::select(&["RSA", "EC", "OKP", "oct", "rsa", "ec", ""][..]).prop_map(move |k| ("kty".to_owned(), text(k))),
        1 => proptest::sample::select(&["P-256", "p-256", "P-384", "Ed25519", "ed25519", "X25519", "secp256k1"][..])
            .prop_map(move |c| ("crv".to_owned(), text(c))),
        1 => proptest::sample::select(&["n", "e", "x", "y", "kty", "crv"][..]).prop_map(|m| (m.to_owned(), None)),
    ]
}

/// A fixture JWK after some changes; its base64url members are sometimes
/// respelled (padding, standard alphabet, a character edited).
fn entry() -> impl Strategy<Value = Value> {
    let names = jwk_names();
    (
        proptest::sample::select(names),
        proptest::collection::vec(change(), 0..3),
        proptest::option::of((proptest::sample::select(&["n", "e", "x", "y"][..]), 0..3u8)),
        mutated(Just("AQAB".to_owned())),
    )
        .prop_map(|(name, changes, respell, edited)| {
            let mut jwk = jwk(&name);
            let object = jwk.as_object_mut().expect("a JWK is an object");
            for (member, value) in changes {
                match value {
                    Some(value) => object.insert(member, value),
                    None => object.remove(&member),
                };
            }
            if let Some((member, how)) = respell {
                if let Some(Value::String(b64)) = object.get_mut(member) {
                    match how {
                        0 => b64.push('='),
                        1 => *b64 = b64.replace('-', "+").replace('_', "/") + "+",
                        _ => *b64 = edited,
                    }
                }
            }
            jwk
        })
}

proptest! {
    #![proptest_config(config(96))]

    /// A set is its entries read one by one, keys never exceed their kind,
    /// `alg` narrows, and secret material anywhere loads nothing.
    #[test]
    fn sets_are_their_entries(entries in proptest::collection::vec(entry(), 0..5), single in any::<bool>()) {
        let doc = match &entries[..] {
            [one] if single => one.clone(),
            _ => json!({ "keys": entries }),
        };
        check_set(&doc.to_string());
    }

    /// Text that is not a JWKS, or barely is, never panics or loads keys
    /// that break the rules.
    #[test]
    fn any_text(json in prop_oneof![json_text(), hostile(12), mutated(Just(json!({"keys": [jwk("p256-a")]}).to_string()))]) {
        check_set(&json);
    }
}
