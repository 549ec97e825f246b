//! Claims, verifiers and token surgery shared by the key-selection tests and
//! the forgery corpus. Keys and third-party tokens come from `tests/fixtures`
//! (see [`crate::keys::testing`]).

use super::*;
use crate::keys::testing::{pem_key, public_jwk};
use serde_json::json;

pub(super) const NOW: u64 = 1_700_000_000;
pub(super) const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
pub(super) const SECRET: &[u8] = b"test-secret-that-is-long-enough-for-hs256";

pub(super) fn claims() -> Value {
    json!({
        "sub": "user-1",
        "tenant_id": TENANT,
        "exp": NOW + 300,
        "iat": NOW,
        "token_type": "access",
    })
}

pub(super) fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

pub(super) fn jwks_keys(names: &[&str]) -> Vec<VerificationKey> {
    let keys: Vec<Value> = names
        .iter()
        .map(|name| {
            let mut jwk = public_jwk(name);
            jwk["kid"] = json!(name);
            jwk
        })
        .collect();
    VerificationKey::from_jwks(&json!({ "keys": keys }).to_string()).unwrap()
}

pub(super) fn verifier_with(secret: &[u8], keys: Vec<VerificationKey>) -> JwtVerifier {
    JwtVerifier::new(VerifierConfig {
        secret: secret.to_vec(),
        keys,
        ..VerifierConfig::default()
    })
}

/// HMAC secret plus the `a` keys of every type from a JWKS, with kids.
pub(super) fn mixed() -> JwtVerifier {
    verifier_with(SECRET, jwks_keys(&["rsa-a", "p256-a", "ed25519-a"]))
}

/// The `a` keys from PEM, without kids, and no secret.
pub(super) fn pem_only() -> JwtVerifier {
    verifier_with(
        b"",
        vec![pem_key("rsa-a"), pem_key("p256-a"), pem_key("ed25519-a")],
    )
}

pub(super) fn hmac_only(secret: &[u8]) -> JwtVerifier {
    verifier_with(secret, Vec::new())
}

pub(super) fn hmac_token(header: &str, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = keys::hmac_sign(secret, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub(super) fn replace_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

pub(super) fn signature_of(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap()
}
