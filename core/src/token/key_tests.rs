//! Asymmetric keys and key selection: third-party tokens of every algorithm,
//! `kid` rules, and keys fetched at run time.

use super::testing::*;
use super::*;
use crate::keys::native::VerifyNatively;
use crate::keys::testing::{jose_hmac_secret, jose_token, pem, pem_key, token};
use crate::keys::KeyKind;
use serde_json::json;

#[test]
fn third_party_tokens_of_every_algorithm_verify() {
    let jose_secret = jose_hmac_secret();
    let with_kids = verifier_with(&jose_secret, jwks_keys(&["rsa-a", "p256-a", "ed25519-a"]));
    let without_kids = verifier_with(
        &jose_secret,
        vec![pem_key("rsa-a"), pem_key("p256-a"), pem_key("ed25519-a")],
    );
    for name in [
        "HS256",
        "HS384",
        "HS512",
        "RS256",
        "PS256",
        "ES256",
        "EdDSA",
        "RS256+kid",
        "PS256+kid",
        "ES256+kid",
        "EdDSA+kid",
    ] {
        let token = jose_token(name);
        for verifier in [&with_kids, &without_kids] {
            let c = verifier
                .verify_now(&token, NOW)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (c.subject.as_deref(), c.tenant.as_deref(), c.jti.as_deref()),
                (Some("user-1"), Some(TENANT), Some("jose-1")),
                "{name}"
            );
            assert_eq!(c.expires_at, 4_102_444_800);
        }
    }
}

#[test]
fn pkcs1_pem_verifies_the_same_tokens() {
    let v = verifier_with(b"", vec![pem_key("rsa-a.pkcs1")]);
    for name in ["RS256", "PS256", "RS256+kid"] {
        assert!(v.verify_now(&jose_token(name), NOW).is_ok(), "{name}");
    }
}

#[test]
fn simplejwt_access_tokens_are_accepted_and_refresh_tokens_refused() {
    let v = verifier_with(&jose_hmac_secret(), vec![pem_key("rsa-a")]);
    for alg in ["HS256", "RS256"] {
        let c = v
            .verify_now(&jose_token(&format!("simplejwt-{alg}-access")), NOW)
            .unwrap();
        assert_eq!(
            (c.subject.as_deref(), c.tenant.as_deref(), c.jti.as_deref()),
            (
                Some("42"),
                Some(TENANT),
                Some("6f1c0c7a3b4e4d2f9a8b7c6d5e4f3a2b")
            ),
            "{alg}"
        );
        assert_eq!(
            v.verify_now(&jose_token(&format!("simplejwt-{alg}-refresh")), NOW),
            Err(TokenError::NotAccessToken),
            "{alg}"
        );
    }
}

#[test]
fn tokens_signed_here_verify_with_every_key_type() {
    for (alg, key) in [
        ("RS256", "rsa-a"),
        ("ES256", "p256-a"),
        ("EdDSA", "ed25519-a"),
    ] {
        let t = token(
            &format!(r#"{{"alg":"{alg}","kid":"{key}"}}"#),
            &claims(),
            key,
        );
        assert!(mixed().verify_now(&t, NOW).is_ok(), "{alg}");
        assert!(pem_only().verify_now(&t, NOW).is_ok(), "{alg}");
    }
}

#[test]
fn claims_rules_apply_to_asymmetric_tokens_too() {
    let v = mixed();
    let rs = |c: &Value| token(r#"{"alg":"RS256"}"#, c, "rsa-a");
    assert_eq!(
        v.verify_now(&rs(&with(json!({"exp": NOW - 31}))), NOW),
        Err(TokenError::Expired)
    );
    assert!(v
        .verify_now(&rs(&with(json!({"exp": NOW - 30}))), NOW)
        .is_ok());
    assert_eq!(
        v.verify_now(&rs(&with(json!({"token_type": "refresh"}))), NOW),
        Err(TokenError::NotAccessToken)
    );
    assert_eq!(
        v.verify_now(&rs(&with(json!({"tenant_id": 7}))), NOW),
        Err(TokenError::BadClaim("tenant"))
    );
}

#[test]
fn kid_selects_only_the_keys_named() {
    // Both RSA keys configured; the kid says rsa-a, the token is rsa-b's.
    let v = verifier_with(
        b"",
        vec![
            pem_key("rsa-a").with_kid("a"),
            pem_key("rsa-b").with_kid("b"),
        ],
    );
    let by_b = |kid: &str| {
        token(
            &format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#),
            &claims(),
            "rsa-b",
        )
    };
    assert!(v.verify_now(&by_b("b"), NOW).is_ok());
    assert_eq!(v.verify_now(&by_b("a"), NOW), Err(TokenError::BadSignature));
    // Without kid every key that allows the algorithm is tried.
    assert!(v
        .verify_now(&token(r#"{"alg":"RS256"}"#, &claims(), "rsa-b"), NOW)
        .is_ok());
}

#[test]
fn unknown_kid_falls_back_to_unnamed_keys_then_reports_unknown_key() {
    // A PEM key carries no kid, but issuers put one in every token.
    let t = token(
        r#"{"alg":"ES256","kid":"issuer-2024"}"#,
        &claims(),
        "p256-a",
    );
    assert!(pem_only().verify_now(&t, NOW).is_ok());
    // With named keys only, an unknown kid is reported as such so that
    // the Worker can refresh its JWKS.
    let named = verifier_with(b"", jwks_keys(&["rsa-a", "p256-a"]));
    assert_eq!(named.verify_now(&t, NOW), Err(TokenError::UnknownKey));
    // Unnamed keys that do not verify it: still unknown, not "bad".
    let forged = token(
        r#"{"alg":"ES256","kid":"issuer-2024"}"#,
        &claims(),
        "p256-b",
    );
    assert_eq!(
        pem_only().verify_now(&forged, NOW),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn fetched_keys_are_passed_per_call() {
    let v = verifier_with(SECRET, Vec::new());
    let t = token(
        r#"{"alg":"EdDSA","kid":"ed25519-a"}"#,
        &claims(),
        "ed25519-a",
    );
    assert_eq!(v.verify_now(&t, NOW), Err(TokenError::UnknownKey));
    let fetched = jwks_keys(&["ed25519-a"]);
    assert!(v.verify_now_with(&t, &fetched, NOW).is_ok());
    // The configured secret still works alongside.
    assert!(v
        .verify_now_with(&sign_hs256(&claims(), SECRET), &fetched, NOW)
        .is_ok());
}

#[test]
fn a_public_key_pasted_as_the_secret_adds_no_hmac_key() {
    let v = hmac_only(pem("rsa-a").as_bytes());
    assert!(v.keys().is_empty());
    assert_eq!(
        v.verify_now(&jose_token("confusion-HS256-rsa-a-pem"), NOW),
        Err(TokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn verifier_keys_and_debug() {
    let v = mixed();
    let kinds: Vec<KeyKind> = v.keys().iter().map(VerificationKey::kind).collect();
    assert_eq!(
        kinds,
        [KeyKind::Rsa, KeyKind::P256, KeyKind::Ed25519, KeyKind::Hmac]
    );
    let cfg = VerifierConfig {
        secret: b"hunter2".to_vec(),
        keys: vec![pem_key("rsa-a").with_kid("k")],
        ..VerifierConfig::default()
    };
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("RSA 2048-bit"),
        "{shown}"
    );
}

#[test]
fn ed25519_signature_malleated_with_s_plus_l_is_refused() {
    let t = token(r#"{"alg":"EdDSA"}"#, &claims(), "ed25519-a");
    let mut sig = signature_of(&t);
    // L, the group order, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L) {
        let sum = *s as u16 + l as u16 + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    assert_eq!(
        pem_only().verify_now(&replace_signature(&t, &sig), NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn es256_accepts_both_the_low_s_and_the_high_s_spelling() {
    // OpenSSL, WebCrypto, Go and Java emit high-S about half the time (jose
    // on Node: 99 of 200), so refusing it would refuse half of every ES256
    // issuer's tokens. The twin is a second string for the same claims,
    // which is why nothing in the relay keys on a token's text.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let t = token(r#"{"alg":"ES256"}"#, &claims(), "p256-a");
    let sig = signature_of(&t);
    let mut twin = sig.clone();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let diff = N[i] as i16 - sig[32 + i] as i16 - borrow;
        twin[32 + i] = diff.rem_euclid(256) as u8;
        borrow = (diff < 0) as i16;
    }
    assert_eq!(borrow, 0);
    assert_ne!(twin, sig);
    let twin = replace_signature(&t, &twin);
    for v in [pem_only(), mixed()] {
        assert!(v.verify_now(&t, NOW).is_ok());
        assert_eq!(v.verify_now(&twin, NOW), v.verify_now(&t, NOW));
    }
}
