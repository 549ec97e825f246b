//! JWTs: the compact envelope (three base64url segments), the header and
//! payload JSON, and the claims the relay takes from them.

use super::fixtures;
use super::json::{self, Member};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use edgestream_core::keys::native::VerifyNatively;
use edgestream_core::keys::VerificationKey;
use edgestream_core::problem::Problem;
use edgestream_core::token::{Claims, JwtVerifier, TokenError, VerifierConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::OnceLock;

/// The time tokens are verified at: after the fixtures' `iat`, long before
/// their `exp`.
pub const NOW: u64 = 1_750_000_000;
const LEEWAY: f64 = 30.0;
pub const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "edgestream";
/// The strict verifier reads the tenant from this claim.
pub const STRICT_TENANT_CLAIM: &str = "org";

/// The fixture tokens that are genuinely signed by a configured key, valid
/// at [`NOW`] and access tokens.
pub const SIGNED: [&str; 13] = [
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS256+kid",
    "PS256",
    "PS256+kid",
    "ES256",
    "ES256+kid",
    "EdDSA",
    "EdDSA+kid",
    "simplejwt-HS256-access",
    "simplejwt-RS256-access",
];

/// The fixtures' HMAC secret and the `a` key of each asymmetric kind, with
/// the `kid`s the fixture tokens name.
pub fn verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let keys = ["rsa-a", "p256-a", "ed25519-a"]
            .map(|name| {
                VerificationKey::from_jwk(&fixtures::jwk(name).to_string())
                    .expect("a fixture key")
                    .with_kid(name)
            })
            .to_vec();
        JwtVerifier::new(VerifierConfig {
            secret: fixtures::jose_hmac_secret(),
            keys,
            ..VerifierConfig::default()
        })
    })
}

/// Only the HMAC secret, with an issuer, an audience and another tenant claim.
pub fn strict_verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        JwtVerifier::new(VerifierConfig {
            secret: fixtures::jose_hmac_secret(),
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            tenant_claim: STRICT_TENANT_CLAIM.into(),
            ..VerifierConfig::default()
        })
    })
}

fn signed_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        SIGNED
            .iter()
            .map(|name| fixtures::jose_token(name))
            .collect()
    })
}

/// Any text as a token: the only texts that verify are the signed fixture
/// tokens themselves, so no edit of a token (a character, its padding, its
/// case, a segment's alphabet, a high-S twin of a signature) has a second
/// valid spelling. A refusal is a 401 `invalid_token`.
pub fn check_text(token: &str) {
    match verifier().verify_now(token, NOW) {
        Ok(claims) => {
            assert!(
                signed_tokens().iter().any(|t| t == token),
                "a token nobody signed verified: {token:?}"
            );
            assert_eq!(claims.tenant.as_deref(), Some(TENANT));
        }
        Err(err) => assert_refusal(err),
    }
    assert!(
        strict_verifier().verify_now(token, NOW).is_err(),
        "{token:?}"
    );
}

/// `header.payload` as HS256 with the fixtures' secret, whatever the bytes.
pub fn sign_hs256(header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = <Hmac<Sha256> as KeyInit>::new_from_slice(&fixtures::jose_hmac_secret())
        .expect("HMAC takes keys of any length")
        .chain_update(input.as_bytes())
        .finalize()
        .into_bytes();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Any header and payload bytes, correctly signed: what verifies has an
/// `HS256` header without `crit`, an unexpired payload with a numeric `exp`,
/// and claims that are exactly the payload's (for the strict verifier also
/// its issuer and audience). A refusal is a 401 `invalid_token`.
pub fn check_envelope(header: &[u8], payload: &[u8]) {
    let token = sign_hs256(header, payload);
    for (verifier, tenant_claim, strict) in [
        (verifier(), "tenant_id", false),
        (strict_verifier(), STRICT_TENANT_CLAIM, true),
    ] {
        match verifier.verify_now(&token, NOW) {
            Ok(claims) => check_claims(header, payload, &claims, tenant_claim, strict),
            Err(err) => assert_refusal(err),
        }
    }
}

fn check_claims(header: &[u8], payload: &[u8], claims: &Claims, tenant_claim: &str, strict: bool) {
    let header = json::members(header).expect("a verified header is an object");
    assert_eq!(string(&header, "alg").as_deref(), Some("HS256"));
    assert!(json::last(&header, "crit").is_none());
    assert!(json::last(&header, "kid").is_none() || string(&header, "kid").is_some());
    let payload = json::members(payload).expect("a verified payload is an object");
    let exp = number(&payload, "exp").expect("verified without a numeric exp");
    assert!(NOW as f64 <= exp + LEEWAY, "expired at {exp}");
    for name in ["nbf", "iat"] {
        if json::last(&payload, name).is_some() {
            let at = number(&payload, name).expect("a date that is not a number");
            assert!(at <= NOW as f64 + LEEWAY, "{name} {at} is in the future");
        }
    }
    assert!(
        json::last(&payload, "token_type").is_none()
            || string(&payload, "token_type").as_deref() == Some("access")
    );
    assert_eq!(claims.expires_at, exp.floor() as u64);
    assert_eq!(claims.tenant, string(&payload, tenant_claim));
    assert_ne!(claims.tenant.as_deref(), Some(""));
    let subject = string(&payload, "sub").or_else(|| {
        let raw = json::last(&payload, "user_id")?;
        string(&payload, "user_id").or_else(|| {
            serde_json::from_str::<i128>(raw.get())
                .ok()
                .map(|n| n.to_string())
        })
    });
    assert_eq!(claims.subject, subject);
    let scope = string(&payload, "scope").unwrap_or_default();
    assert_eq!(
        claims.scopes,
        scope.split_ascii_whitespace().collect::<Vec<_>>()
    );
    assert_eq!(claims.jti, string(&payload, "jti"));
    if strict {
        assert_eq!(string(&payload, "iss").as_deref(), Some(ISSUER));
        let aud = json::last(&payload, "aud")
            .expect("verified without aud")
            .get();
        let audiences = serde_json::from_str::<String>(aud)
            .map(|a| vec![a])
            .or_else(|_| {
                serde_json::from_str::<Vec<serde_json::Value>>(aud).map(|list| {
                    list.into_iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .expect("aud is a string or an array");
        assert!(audiences.iter().any(|a| a == AUDIENCE), "{aud}");
    }
}

fn assert_refusal(err: TokenError) {
    let problem = Problem::from(err);
    assert_eq!((problem.status, problem.code), (401, "invalid_token"));
}

/// The last member `name` as a string, if it is one.
fn string(members: &[Member], name: &str) -> Option<String> {
    serde_json::from_str(json::last(members, name)?.get()).ok()
}

/// The last member `name` as a number, if it is one `f64` can hold.
fn number(members: &[Member], name: &str) -> Option<f64> {
    serde_json::from_str(json::last(members, name)?.get()).ok()
}
