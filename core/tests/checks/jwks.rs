//! JWKS documents (`JWT_PUBLIC_KEY` as JSON, or fetched from `JWKS_URL`).

use edgestream_core::keys::{
    Algorithm, KeyError, KeyKind, VerificationKey, MAX_JWKS_BYTES, MAX_JWKS_KEYS,
};
use serde_json::{Map, Value};

/// Members that are secrets: private RSA, EC and OKP parameters, and the
/// key of a symmetric JWK.
const SECRET_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Any text: a set is exactly its entries read one by one (each usable
/// entry becomes the key [`VerificationKey::from_jwk`] makes of it, in
/// order, and each other entry is reported as skipped with the same
/// reason), no key is ever a secret or allows more than its kind can
/// verify, a JWK `alg` narrows a key to that one algorithm, and a set with
/// secret material in any entry loads nothing.
pub fn check_set(json: &str) {
    let result = VerificationKey::from_jwks_with_skipped(json);
    let doc = (json.len() <= MAX_JWKS_BYTES)
        .then(|| serde_json::from_str::<Value>(json).ok())
        .flatten();
    let Some(entries) = doc.as_ref().and_then(entries) else {
        assert!(result.is_err(), "{json:?}");
        return;
    };
    let secret = entries.iter().any(|jwk| {
        jwk.get("kty").and_then(Value::as_str) == Some("oct")
            || SECRET_MEMBERS.iter().any(|name| jwk.contains_key(*name))
    });
    let singles: Vec<Result<VerificationKey, KeyError>> = entries
        .iter()
        .map(|jwk| VerificationKey::from_jwk(&Value::Object((*jwk).clone()).to_string()))
        .collect();
    let (keys, skipped) = match result {
        Ok(loaded) => loaded,
        Err(reason) => {
            let refused_whole = secret || entries.len() > MAX_JWKS_KEYS;
            assert!(
                refused_whole || singles.iter().all(Result::is_err),
                "{reason:?} for {json:?}"
            );
            return;
        }
    };
    assert!(!secret && !keys.is_empty(), "{json:?}");
    let (mut keys, mut skipped) = (keys.iter(), skipped.iter());
    for (jwk, single) in entries.iter().zip(&singles) {
        match single {
            Ok(expected) => {
                let key = keys.next().expect("a usable entry is in the set");
                assert_eq!(
                    (key.kind(), key.algorithms(), key.kid()),
                    (expected.kind(), expected.algorithms(), expected.kid())
                );
                check_key(jwk, key);
            }
            Err(reason) => {
                let skip = skipped.next().expect("an unusable entry is reported");
                assert_eq!(skip.reason, *reason);
                assert_eq!(skip.kid.as_deref(), jwk.get("kid").and_then(Value::as_str));
            }
        }
    }
    assert!(keys.next().is_none() && skipped.next().is_none());
}

fn check_key(jwk: &Map<String, Value>, key: &VerificationKey) {
    let kind = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => KeyKind::Rsa,
        Some("EC") => KeyKind::P256,
        Some("OKP") => KeyKind::Ed25519,
        other => panic!("a key of type {other:?} loaded"),
    };
    assert_eq!(key.kind(), kind);
    assert!(key
        .algorithms()
        .iter()
        .all(|a| kind.algorithms().contains(a)));
    match jwk.get("alg").and_then(Value::as_str) {
        Some(alg) => assert_eq!(
            key.algorithms(),
            [Algorithm::from_name(alg).expect("a known alg")]
        ),
        None => assert_eq!(key.algorithms(), kind.algorithms()),
    }
    assert_eq!(key.kid(), jwk.get("kid").and_then(Value::as_str));
}

/// The entries of a set as the contract reads it: `{"keys":[...]}` of
/// objects, or one JWK object (one with `kty`).
fn entries(doc: &Value) -> Option<Vec<&Map<String, Value>>> {
    match doc {
        Value::Object(obj) if obj.contains_key("keys") => obj
            .get("keys")?
            .as_array()?
            .iter()
            .map(Value::as_object)
            .collect(),
        Value::Object(obj) if obj.contains_key("kty") => Some(vec![obj]),
        _ => None,
    }
}
