//! JWT envelopes, headers, payloads and claims.

use crate::checks::fixtures::jose_token;
use crate::checks::token::{
    check_envelope, check_text, sign_hs256, verifier, AUDIENCE, ISSUER, NOW, SIGNED,
    STRICT_TENANT_CLAIM, TENANT,
};
use crate::config::config;
use crate::strategies::{hostile, json_text, mutated, object, quoted, tenant, ws};
use edgestream_core::keys::native::VerifyNatively;
use edgestream_core::token::MAX_TOKEN_BYTES;
use proptest::prelude::*;

/// A signed fixture token.
fn signed() -> impl Strategy<Value = String> {
    proptest::sample::select(&SIGNED[..]).prop_map(jose_token)
}

/// Other spellings of a signed token's bytes: a segment with padding, in
/// the standard alphabet, or with non-zero trailing bits in its last
/// character.
fn respelled() -> impl Strategy<Value = String> {
    (signed(), 0..3usize, 0..3u8, 1..16u8).prop_map(|(token, segment, how, bits)| {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let part = &mut parts[segment];
        match how {
            0 => part.push_str(&"=".repeat(((4 - part.len() % 4) % 4).max(1))),
            1 => *part = part.replace('-', "+").replace('_', "/"),
            _ => {
                const ALPHABET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let unused = match part.len() % 4 {
                    2 => 0b1111,
                    3 => 0b11,
                    _ => 0,
                };
                let last = part.pop().expect("segments are not empty");
                let value = ALPHABET
                    .iter()
                    .position(|&c| char::from(c) == last)
                    .unwrap_or(0);
                let respelled = value | usize::from(bits) & unused;
                part.push(char::from(
                    ALPHABET[if unused == 0 { value ^ 1 } else { respelled }],
                ));
            }
        }
        parts.join(".")
    })
}

/// A header: `alg` spelled right and wrong, `kid`s of every type, `crit`,
/// the URL and embedded-key members that must never be followed.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let alg = prop_oneof![
        4 => Just(quoted("HS256")),
        2 => proptest::sample::select(&["hs256", "HS256 ", "none", "None", "HS384", "RS256", "ES256", "EdDSA", ""][..])
            .prop_map(quoted),
        1 => json_text(),
    ];
    let member = prop_oneof![
        6 => alg.prop_map(|a| ("alg".to_owned(), a)),
        2 => prop_oneof![Just(quoted("JWT")), Just(quoted("at+jwt")), json_text()].prop_map(|t| ("typ".to_owned(), t)),
        2 => prop_oneof![Just(quoted("rsa-a")), hostile(3).prop_map(|k| quoted(&k)), Just("null".to_owned()), Just("7".to_owned())]
            .prop_map(|k| ("kid".to_owned(), k)),
        1 => Just(("crit".to_owned(), "[\"exp\"]".to_owned())),
        1 => proptest::sample::select(&["jku", "x5u", "jwk", "x5c"][..]).prop_map(|m| (m.to_owned(), quoted("https://evil.example/keys"))),
    ];
    prop_oneof![
        8 => (proptest::collection::vec(member, 0..4), proptest::collection::vec(ws(), 8))
            .prop_map(|(members, ws)| object(&members, &ws).into_bytes()),
        1 => json_text().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

/// A NumericDate around [`NOW`], or a value of the wrong kind.
fn date() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (NOW - 2_000..NOW + 2_000).prop_map(|t| t.to_string()),
        1 => (NOW - 100..NOW + 100).prop_map(|t| format!("{t}.75")),
        1 => proptest::sample::select(&["1e400", "-1", "0", "18446744073709551615", "1.8e19", "\"1750000000\"", "null", "true"][..])
            .prop_map(str::to_owned),
    ]
}

/// A payload: the claims the relay reads, with right and wrong types, near
/// misses of their values, duplicates, and unrelated members.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let string_or_junk = |good: BoxedStrategy<String>| prop_oneof![4 => good.prop_map(|s| quoted(&s)), 1 => json_text()];
    let member = prop_oneof![
        6 => date().prop_map(|d| ("exp".to_owned(), d)),
        2 => date().prop_map(|d| ("nbf".to_owned(), d)),
        2 => date().prop_map(|d| ("iat".to_owned(), d)),
        3 => string_or_junk(prop_oneof![tenant(), mutated(tenant()), Just(String::new())].boxed())
            .prop_map(|t| ("tenant_id".to_owned(), t)),
        1 => string_or_junk(tenant()).prop_map(|t| (STRICT_TENANT_CLAIM.to_owned(), t)),
        2 => string_or_junk("user-[0-9]{1,3}".boxed()).prop_map(|s| ("sub".to_owned(), s)),
        1 => prop_oneof!["-?[0-9]{1,20}", Just("1.0".to_owned()), Just(quoted("42"))].prop_map(|u| ("user_id".to_owned(), u)),
        2 => string_or_junk("(events:[a-z]{1,9}[ \t\n]{0,2}){0,3}".boxed()).prop_map(|s| ("scope".to_owned(), s)),
        2 => string_or_junk(proptest::sample::select(&["access", "refresh", "Access", ""][..]).prop_map(str::to_owned).boxed())
            .prop_map(|t| ("token_type".to_owned(), t)),
        1 => string_or_junk(hostile(3)).prop_map(|j| ("jti".to_owned(), j)),
        2 => string_or_junk(prop_oneof![Just(ISSUER.to_owned()), mutated(Just(ISSUER.to_owned()))].boxed())
            .prop_map(|i| ("iss".to_owned(), i)),
        2 => prop_oneof![
            Just(quoted(AUDIENCE)),
            Just(format!("[\"other\",{}]", quoted(AUDIENCE))),
            Just("[\"other\"]".to_owned()),
            mutated(Just(AUDIENCE.to_owned())).prop_map(|a| quoted(&a)),
            json_text(),
        ]
        .prop_map(|a| ("aud".to_owned(), a)),
        1 => ("[a-z_]{1,8}", json_text()),
    ];
    prop_oneof![
        8 => (proptest::collection::vec(member, 0..9), proptest::collection::vec(ws(), 8))
            .prop_map(|(members, ws)| object(&members, &ws).into_bytes()),
        1 => json_text().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// Editing a signed token anywhere (a character, its case, `=`, `.`,
    /// `+`/`/`, NUL, unicode) never yields another token that verifies.
    #[test]
    fn edited_tokens_never_verify(token in mutated(signed())) {
        check_text(&token);
    }

    /// The same bytes spelled another way (padding, standard alphabet,
    /// trailing bits) are refused: each token has one spelling.
    #[test]
    fn respelled_tokens_never_verify(token in respelled()) {
        check_text(&token);
    }

    /// Text that is not a token of ours never verifies, whatever its size.
    #[test]
    fn hostile_text_never_verifies(
        token in prop_oneof![hostile(16), "[A-Za-z0-9_-]{0,64}(\\.[A-Za-z0-9_=-]{0,64}){0,4}"],
        pad in prop_oneof![Just(0usize), Just(MAX_TOKEN_BYTES)],
    ) {
        check_text(&format!("{token}{}", "A".repeat(pad)));
    }

    /// Correctly signed headers and payloads of any content: what verifies
    /// carries exactly the payload's claims and passed every claim rule.
    #[test]
    fn signed_envelopes_yield_their_claims(header in header(), payload in payload()) {
        check_envelope(&header, &payload);
    }

    /// A well-formed, unexpired access token verifies, and its claims are
    /// the ones it was signed with.
    #[test]
    fn valid_tokens_verify(
        tenant in tenant(),
        sub in "[a-z0-9-]{1,12}",
        scopes in proptest::collection::vec("[a-z:]{1,12}", 0..4),
        exp in NOW - 30..NOW + 100_000,
        jti in proptest::option::of("[a-f0-9]{8,32}"),
    ) {
        let mut claims = serde_json::json!({
            "sub": sub, "tenant_id": tenant, "scope": scopes.join(" "), "exp": exp,
            "iat": NOW - 10, "token_type": "access",
        });
        if let Some(jti) = &jti {
            claims["jti"] = serde_json::json!(jti);
        }
        let token = sign_hs256(br#"{"alg":"HS256","typ":"JWT"}"#, claims.to_string().as_bytes());
        let verified = verifier().verify_now(&token, NOW).expect("a valid token verifies");
        prop_assert_eq!(verified.tenant, Some(tenant));
        prop_assert_eq!(verified.subject, Some(sub));
        prop_assert_eq!(verified.scopes, scopes);
        prop_assert_eq!(verified.expires_at, exp);
        prop_assert_eq!(verified.jti, jti);
    }
}

#[test]
fn every_signed_fixture_verifies_and_only_those() {
    for name in SIGNED {
        let claims = verifier()
            .verify_now(&jose_token(name), NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims.tenant.as_deref(), Some(TENANT), "{name}");
    }
    for name in [
        "simplejwt-HS256-refresh",
        "forged-RS256-by-rsa-b",
        "forged-RS256-embedded-jwk",
        "confusion-HS256-rsa-a-jwk",
    ] {
        assert!(
            verifier().verify_now(&jose_token(name), NOW).is_err(),
            "{name}"
        );
    }
}
