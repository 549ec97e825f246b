//! Claim rules and the envelope, with HMAC tokens signed here.

use super::*;
use crate::keys::native::VerifyNatively;
use serde_json::json;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"test-secret-that-is-long-enough-for-hs256";
const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";

fn verifier() -> JwtVerifier {
    JwtVerifier::new(VerifierConfig {
        secret: SECRET.to_vec(),
        ..VerifierConfig::default()
    })
}

fn claims() -> Value {
    json!({
        "sub": "user-1",
        "tenant_id": TENANT,
        "scope": "events:subscribe events:publish",
        "exp": NOW + 300,
        "iat": NOW,
        "jti": "abc",
        "token_type": "access",
    })
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn check(claims: &Value) -> Result<Claims, TokenError> {
    verifier().verify_now(&sign_hs256(claims, SECRET), NOW)
}

/// A token with an arbitrary header, signed with `secret` over its own
/// header and payload segments.
fn token_with_header(header: &str, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = keys::hmac_sign(secret, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[test]
fn valid_token() {
    let c = check(&claims()).unwrap();
    assert_eq!(
        c,
        Claims {
            subject: Some("user-1".into()),
            tenant: Some(TENANT.into()),
            scopes: vec!["events:subscribe".into(), "events:publish".into()],
            expires_at: NOW + 300,
            jti: Some("abc".into()),
            jurisdiction: None,
        }
    );
    assert!(c.has_scope("events:publish"));
    assert!(!c.has_scope("events"));
}

#[test]
fn minimal_token_needs_only_exp() {
    let c = check(&json!({"exp": NOW + 1})).unwrap();
    assert_eq!(
        (c.subject, c.tenant, c.scopes.len(), c.jti),
        (None, None, 0, None)
    );
}

#[test]
fn expiry_honours_leeway_to_the_second() {
    assert!(check(&with(json!({"exp": NOW - 30}))).is_ok());
    assert_eq!(
        check(&with(json!({"exp": NOW - 31}))),
        Err(TokenError::Expired)
    );
    let strict = JwtVerifier::new(VerifierConfig {
        secret: SECRET.to_vec(),
        leeway_seconds: 0,
        ..VerifierConfig::default()
    });
    let token = sign_hs256(&with(json!({"exp": NOW - 1})), SECRET);
    assert_eq!(strict.verify_now(&token, NOW), Err(TokenError::Expired));
    assert!(strict
        .verify_now(&sign_hs256(&with(json!({"exp": NOW})), SECRET), NOW)
        .is_ok());
}

#[test]
fn exp_may_be_fractional_but_must_be_a_number() {
    let c = check(&with(json!({"exp": (NOW + 10) as f64 + 0.75}))).unwrap();
    assert_eq!(c.expires_at, NOW + 10);
    assert_eq!(
        check(&with(json!({"exp": (NOW - 31) as f64 + 0.5}))),
        Err(TokenError::Expired)
    );
    for bad in [
        json!("9999999999"),
        json!(true),
        json!([NOW + 10]),
        json!({}),
    ] {
        assert_eq!(
            check(&with(json!({ "exp": bad }))),
            Err(TokenError::BadClaim("exp"))
        );
    }
    assert_eq!(check(&with(json!({"exp": -1}))), Err(TokenError::Expired));
}

#[test]
fn missing_exp_is_refused() {
    assert_eq!(
        check(&with(json!({"exp": null}))),
        Err(TokenError::MissingExpiry)
    );
    let token = token_with_header(
        r#"{"alg":"HS256"}"#,
        &json!({"exp": Value::Null, "sub": "x"}),
        SECRET,
    );
    assert_eq!(
        verifier().verify_now(&token, NOW),
        Err(TokenError::BadClaim("exp"))
    );
}

#[test]
fn future_nbf_and_iat() {
    assert!(check(&with(json!({"nbf": NOW + 30, "iat": NOW + 30}))).is_ok());
    assert_eq!(
        check(&with(json!({"nbf": NOW + 31}))),
        Err(TokenError::NotYetValid)
    );
    assert_eq!(
        check(&with(json!({"iat": NOW + 31}))),
        Err(TokenError::IssuedInFuture)
    );
    assert_eq!(
        check(&with(json!({"nbf": "0"}))),
        Err(TokenError::BadClaim("nbf"))
    );
    assert_eq!(
        check(&with(json!({"iat": "0"}))),
        Err(TokenError::BadClaim("iat"))
    );
}

#[test]
fn wrong_key_is_a_bad_signature() {
    let token = sign_hs256(&claims(), b"another-secret");
    assert_eq!(
        verifier().verify_now(&token, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn empty_secret_verifies_nothing() {
    let empty = JwtVerifier::new(VerifierConfig::default());
    for secret in [&b""[..], SECRET] {
        let token = sign_hs256(&claims(), secret);
        assert!(empty.verify_now(&token, NOW).is_err());
    }
    assert_eq!(
        empty.verify_now(&sign_hs256(&claims(), b""), NOW),
        Err(TokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn alg_none_is_refused_with_and_without_signature() {
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
        r#"{"alg":"none","typ":"JWT"}"#,
    ] {
        let signed = token_with_header(header, &claims(), SECRET);
        assert_eq!(
            verifier().verify_now(&signed, NOW),
            Err(TokenError::UnsupportedAlgorithm),
            "{header}"
        );
        let unsigned = format!("{}.", signed.rsplit_once('.').unwrap().0);
        assert_eq!(
            verifier().verify_now(&unsigned, NOW),
            Err(TokenError::UnsupportedAlgorithm),
            "{header}"
        );
    }
}

#[test]
fn other_algorithms_are_refused_even_when_hmac_signed() {
    // The secret allows HS384 and HS512, so an HS256 MAC under those
    // names is a wrong signature, not a wrong algorithm.
    for header in [r#"{"alg":"HS384"}"#, r#"{"alg":"HS512"}"#] {
        let token = token_with_header(header, &claims(), SECRET);
        assert_eq!(
            verifier().verify_now(&token, NOW),
            Err(TokenError::BadSignature),
            "{header}"
        );
    }
    for header in [
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"ES256"}"#,
        r#"{"alg":"EdDSA"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":"HS256 "}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"alg":null}"#,
        r#"{"typ":"JWT"}"#,
    ] {
        let token = token_with_header(header, &claims(), SECRET);
        assert_eq!(
            verifier().verify_now(&token, NOW),
            Err(TokenError::UnsupportedAlgorithm),
            "{header}"
        );
    }
}

#[test]
fn crit_header_is_refused() {
    let token = token_with_header(
        r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        &claims(),
        SECRET,
    );
    assert_eq!(
        verifier().verify_now(&token, NOW),
        Err(TokenError::BadClaim("crit"))
    );
}

#[test]
fn header_must_be_an_object() {
    for header in ["[]", "\"HS256\"", "null", "{", ""] {
        let token = token_with_header(header, &claims(), SECRET);
        assert_eq!(
            verifier().verify_now(&token, NOW),
            Err(TokenError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    let token = sign_hs256(&claims(), SECRET);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD
        .encode(with(json!({"tenant_id": "11111111-2222-4333-8444-555555555555"})).to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(
        verifier().verify_now(&tampered, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn payload_must_be_an_object_even_when_signed() {
    for payload in [json!([1]), json!("x"), json!(null)] {
        let token = sign_hs256(&payload, SECRET);
        assert_eq!(
            verifier().verify_now(&token, NOW),
            Err(TokenError::Malformed)
        );
    }
}

#[test]
fn segment_counts() {
    let token = sign_hs256(&claims(), SECRET);
    let (head, _) = token.rsplit_once('.').unwrap();
    assert_eq!(verifier().verify_now(head, NOW), Err(TokenError::Malformed));
    assert_eq!(
        verifier().verify_now(&format!("{token}.x"), NOW),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        verifier().verify_now(&format!("{token}."), NOW),
        Err(TokenError::Malformed)
    );
    for s in ["", ".", "..", "...", "a.b", "a.b.c"] {
        assert_eq!(
            verifier().verify_now(s, NOW),
            Err(TokenError::Malformed),
            "{s}"
        );
    }
}

#[test]
fn base64_must_be_url_safe_unpadded_and_canonical() {
    let token = sign_hs256(&claims(), SECRET);
    let parts: Vec<&str> = token.split('.').collect();
    let rejoin = |h: &str, p: &str, s: &str| format!("{h}.{p}.{s}");

    // Non-url alphabet in any segment.
    let std_sig = parts[2].replace('-', "+").replace('_', "/");
    if std_sig != parts[2] {
        assert_eq!(
            verifier().verify_now(&rejoin(parts[0], parts[1], &std_sig), NOW),
            Err(TokenError::Malformed)
        );
    }
    assert_eq!(
        verifier().verify_now(&rejoin(parts[0], parts[1], "ab+/"), NOW),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        verifier().verify_now(&rejoin(&format!("{}*", parts[0]), parts[1], parts[2]), NOW),
        Err(TokenError::Malformed)
    );

    // Padding, on the 32-byte HMAC (43 characters, one '=' would pad it).
    assert_eq!(parts[2].len(), 43);
    assert_eq!(
        verifier().verify_now(&rejoin(parts[0], parts[1], &format!("{}=", parts[2])), NOW),
        Err(TokenError::Malformed)
    );

    // The same signature with non-zero trailing bits: the last of 43
    // characters carries 4 bits of data and 2 bits that must be zero.
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = ALPHABET.find(&parts[2][42..]).unwrap();
    assert_eq!(last & 0b11, 0);
    let twisted = format!("{}{}", &parts[2][..42], &ALPHABET[last + 1..last + 2]);
    assert_eq!(
        verifier().verify_now(&rejoin(parts[0], parts[1], &twisted), NOW),
        Err(TokenError::Malformed)
    );
}

#[test]
fn huge_token_is_refused_before_decoding() {
    let padding = "a".repeat(MAX_TOKEN_BYTES);
    let token = sign_hs256(&with(json!({ "pad": padding })), SECRET);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(
        verifier().verify_now(&token, NOW),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        verifier().verify_now(&"a".repeat(100_000), NOW),
        Err(TokenError::Malformed)
    );
}

/// A valid HMAC token exactly `len` bytes long, padded with a claim; the
/// header varies too, since unpadded base64 never has a length of 4k + 1.
fn token_of_length(len: usize) -> String {
    for header in [r#"{"alg":"HS256"}"#, r#"{"alg":"HS256","typ":"JWT"}"#] {
        let padded = |pad: usize| {
            token_with_header(header, &with(json!({ "pad": "p".repeat(pad) })), SECRET)
        };
        // Four base64 characters carry three bytes: start just below.
        let start = (len.saturating_sub(padded(0).len()) * 3 / 4).saturating_sub(3);
        for pad in start..start + 8 {
            if padded(pad).len() == len {
                return padded(pad);
            }
        }
    }
    panic!("no token of {len} bytes")
}

#[test]
fn size_bound_is_exactly_8_kib() {
    let largest = token_of_length(MAX_TOKEN_BYTES);
    assert!(verifier().verify_now(&largest, NOW).is_ok());
    let one_more = token_of_length(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        verifier().verify_now(&one_more, NOW),
        Err(TokenError::Malformed)
    );
}

fn configured(issuer: Option<&str>, audience: Option<&str>) -> JwtVerifier {
    JwtVerifier::new(VerifierConfig {
        secret: SECRET.to_vec(),
        issuer: issuer.map(str::to_owned),
        audience: audience.map(str::to_owned),
        ..VerifierConfig::default()
    })
}

#[test]
fn issuer_is_enforced_when_configured() {
    let v = configured(Some("https://api.example"), None);
    let ok = sign_hs256(&with(json!({"iss": "https://api.example"})), SECRET);
    assert!(v.verify_now(&ok, NOW).is_ok());
    for bad in [
        json!("https://evil.example"),
        json!("https://api.example/"),
        json!(["https://api.example"]),
        Value::Null,
    ] {
        let token = sign_hs256(&with(json!({ "iss": bad })), SECRET);
        assert_eq!(
            v.verify_now(&token, NOW),
            Err(TokenError::WrongIssuer),
            "{bad}"
        );
    }
    // Unconfigured: iss is not looked at.
    assert!(check(&with(json!({"iss": 42}))).is_ok());
}

#[test]
fn audience_is_enforced_when_configured() {
    let v = configured(None, Some("edgestream"));
    for good in [json!("edgestream"), json!(["other", "edgestream"])] {
        let token = sign_hs256(&with(json!({ "aud": good })), SECRET);
        assert!(v.verify_now(&token, NOW).is_ok(), "{good}");
    }
    for bad in [
        json!("other"),
        json!(["other"]),
        json!([]),
        json!("Edgestream"),
        json!({"edgestream": 1}),
        Value::Null,
    ] {
        let token = sign_hs256(&with(json!({ "aud": bad })), SECRET);
        assert_eq!(
            v.verify_now(&token, NOW),
            Err(TokenError::WrongAudience),
            "{bad}"
        );
    }
}

#[test]
fn refresh_tokens_are_refused() {
    assert_eq!(
        check(&with(json!({"token_type": "refresh"}))),
        Err(TokenError::NotAccessToken)
    );
    assert_eq!(
        check(&with(json!({"token_type": "Access"}))),
        Err(TokenError::NotAccessToken)
    );
    assert_eq!(
        check(&with(json!({"token_type": 1}))),
        Err(TokenError::NotAccessToken)
    );
    assert!(check(&with(json!({"token_type": null}))).is_ok());
}

#[test]
fn a_payload_typ_claim_must_say_access_too() {
    // Prowler's SimpleJWT settings name the claim `typ`; its refresh tokens
    // carry the tenant and live a day.
    let prowler_refresh = with(json!({"token_type": null, "typ": "refresh"}));
    assert_eq!(check(&prowler_refresh), Err(TokenError::NotAccessToken));
    for kind in [
        json!("Refresh"),
        json!("JWT"),
        json!("id"),
        json!(""),
        json!(1),
        json!(["access"]),
    ] {
        assert_eq!(
            check(&with(json!({"token_type": null, "typ": kind}))),
            Err(TokenError::NotAccessToken),
            "{kind}"
        );
    }
    assert!(check(&with(json!({"token_type": null, "typ": "access"}))).is_ok());
    // Both present: both must say access.
    assert_eq!(
        check(&with(json!({"token_type": "access", "typ": "refresh"}))),
        Err(TokenError::NotAccessToken)
    );
    // The JOSE header's `typ` is the media type, not the token type.
    let header_typ = token_with_header(r#"{"alg":"HS256","typ":"JWT"}"#, &claims(), SECRET);
    assert!(verifier().verify_now(&header_typ, NOW).is_ok());
}

fn with_token_type_claim(name: &str) -> JwtVerifier {
    JwtVerifier::new(VerifierConfig {
        secret: SECRET.to_vec(),
        token_type_claim: name.to_owned(),
        ..VerifierConfig::default()
    })
}

#[test]
fn token_type_claim_is_configurable_and_the_common_names_still_count() {
    let typ = with_token_type_claim("typ");
    let signed = |changes: Value| sign_hs256(&with(changes), SECRET);
    assert!(typ
        .verify_now(&signed(json!({"token_type": null, "typ": "access"})), NOW)
        .is_ok());
    assert!(typ
        .verify_now(&signed(json!({"token_type": null})), NOW)
        .is_ok());
    for refused in [
        json!({"token_type": null, "typ": "refresh"}),
        json!({"token_type": "refresh", "typ": "access"}),
        json!({"token_type": "refresh"}),
    ] {
        assert_eq!(
            typ.verify_now(&signed(refused.clone()), NOW),
            Err(TokenError::NotAccessToken),
            "{refused}"
        );
    }
    // A third name adds a claim to check; it removes none.
    let kind = with_token_type_claim("kind");
    assert!(kind
        .verify_now(&signed(json!({"kind": "access"})), NOW)
        .is_ok());
    for refused in [
        json!({"kind": "refresh"}),
        json!({"kind": "access", "token_type": "refresh"}),
        json!({"kind": "access", "token_type": null, "typ": "refresh"}),
    ] {
        assert_eq!(
            kind.verify_now(&signed(refused.clone()), NOW),
            Err(TokenError::NotAccessToken),
            "{refused}"
        );
    }
}

/// A token over this exact header and payload text, MAC'd with the secret.
fn raw_token(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = keys::hmac_sign(SECRET, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[test]
fn duplicate_members_are_refused_at_any_depth() {
    let payload = claims().to_string();
    let exp = NOW + 300;
    let other = "11111111-2222-4333-8444-555555555555";
    for (header, payload) in [
        // serde_json alone would keep the last alg and accept these.
        (
            r#"{"alg":"none","alg":"HS256"}"#.to_owned(),
            payload.clone(),
        ),
        (
            r#"{"alg":"HS256","alg":"HS256"}"#.to_owned(),
            payload.clone(),
        ),
        (
            r#"{"alg":"HS256","\u0061lg":"HS256"}"#.to_owned(),
            payload.clone(),
        ),
        (
            r#"{"alg":"HS256","x":{"a":1,"a":2}}"#.to_owned(),
            payload.clone(),
        ),
        (
            r#"{"alg":"HS256","x":[{"a":1},[{"b":1,"b":1}]]}"#.to_owned(),
            payload.clone(),
        ),
        (
            r#"{"alg":"HS256"}"#.to_owned(),
            format!(r#"{{"exp":{exp},"tenant_id":"{TENANT}","tenant_id":"{other}"}}"#),
        ),
        (
            r#"{"alg":"HS256"}"#.to_owned(),
            format!(r#"{{"exp":{exp},"exp":{exp}}}"#),
        ),
        (
            r#"{"alg":"HS256"}"#.to_owned(),
            format!(r#"{{"exp":{exp},"ctx":{{"org":{{"id":1,"id":2}}}}}}"#),
        ),
    ] {
        assert_eq!(
            verifier().verify_now(&raw_token(&header, &payload), NOW),
            Err(TokenError::DuplicateMember),
            "{header} {payload}"
        );
    }
    // The same name in two different objects is no duplicate.
    let fine =
        format!(r#"{{"exp":{exp},"a":{{"id":1}},"b":{{"id":1}},"c":[{{"id":1}},{{"id":2}}]}}"#);
    assert!(verifier()
        .verify_now(&raw_token(r#"{"alg":"HS256","x":{"alg":1}}"#, &fine), NOW)
        .is_ok());
}

#[test]
fn payload_duplicates_are_looked_at_only_after_the_signature() {
    let exp = NOW + 300;
    let token = raw_token(
        r#"{"alg":"HS256"}"#,
        &format!(r#"{{"exp":{exp},"sub":"a","sub":"b"}}"#),
    );
    let (input, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
    assert_eq!(
        verifier().verify_now(&forged, NOW),
        Err(TokenError::BadSignature)
    );
    // A header duplicate is refused before: the header chooses the key.
    let header_dup = raw_token(r#"{"alg":"HS256","alg":"HS256"}"#, &claims().to_string());
    let (input, _) = header_dup.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
    assert_eq!(
        verifier().verify_now(&forged, NOW),
        Err(TokenError::DuplicateMember)
    );
}

#[test]
fn tenant_claim() {
    assert_eq!(
        check(&with(json!({"tenant_id": null}))).unwrap().tenant,
        None
    );
    for bad in [
        json!(42),
        json!({"id": TENANT}),
        json!([TENANT]),
        json!(""),
        json!(true),
    ] {
        assert_eq!(
            check(&with(json!({ "tenant_id": bad }))),
            Err(TokenError::BadClaim("tenant")),
            "{bad}"
        );
    }
}

#[test]
fn explicit_null_tenant_is_refused_not_read_as_platform_token() {
    let token = token_with_header(
        r#"{"alg":"HS256"}"#,
        &json!({"exp": NOW + 10, "tenant_id": Value::Null}),
        SECRET,
    );
    assert_eq!(
        verifier().verify_now(&token, NOW),
        Err(TokenError::BadClaim("tenant"))
    );
}

#[test]
fn tenant_claim_name_is_configurable() {
    let v = JwtVerifier::new(VerifierConfig {
        secret: SECRET.to_vec(),
        tenant_claim: "org".into(),
        ..VerifierConfig::default()
    });
    let token = sign_hs256(&with(json!({"org": "t-1"})), SECRET);
    assert_eq!(
        v.verify_now(&token, NOW).unwrap().tenant.as_deref(),
        Some("t-1")
    );
}

#[test]
fn subject_from_sub_or_user_id() {
    assert_eq!(
        check(&with(json!({"sub": null, "user_id": 42})))
            .unwrap()
            .subject
            .as_deref(),
        Some("42")
    );
    assert_eq!(
        check(&with(json!({"sub": null, "user_id": "u-7"})))
            .unwrap()
            .subject
            .as_deref(),
        Some("u-7")
    );
    assert_eq!(
        check(&with(json!({"user_id": 42})))
            .unwrap()
            .subject
            .as_deref(),
        Some("user-1")
    );
    assert_eq!(
        check(&with(json!({"sub": null, "user_id": 1.5}))),
        Err(TokenError::BadClaim("user_id"))
    );
    assert_eq!(
        check(&with(json!({"sub": 42}))),
        Err(TokenError::BadClaim("sub"))
    );
}

#[test]
fn scope_and_jti_must_be_strings() {
    assert_eq!(
        check(&with(json!({"scope": ["events:publish"]}))),
        Err(TokenError::BadClaim("scope"))
    );
    assert_eq!(
        check(&with(json!({"jti": 7}))),
        Err(TokenError::BadClaim("jti"))
    );
    assert_eq!(
        check(&with(json!({"scope": "  a   b "}))).unwrap().scopes,
        ["a", "b"]
    );
}

#[test]
fn errors_become_invalid_token_without_token_text() {
    let token = sign_hs256(&with(json!({"exp": NOW - 100})), SECRET);
    let err = verifier().verify_now(&token, NOW).unwrap_err();
    let p: Problem = err.into();
    assert_eq!(
        (p.status, p.code, p.detail.as_str()),
        (401, "invalid_token", "token has expired")
    );
    assert!(!p.to_json().contains(&token[..20]));
}

#[test]
fn every_error_has_its_own_message() {
    let all = [
        TokenError::Malformed,
        TokenError::UnsupportedAlgorithm,
        TokenError::BadSignature,
        TokenError::MissingExpiry,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
        TokenError::NotAccessToken,
        TokenError::DuplicateMember,
        TokenError::UnknownKey,
        TokenError::BadClaim("exp"),
        TokenError::BadClaim("kid"),
        TokenError::BadClaim("tenant"),
        TokenError::BadClaim("crit"),
    ];
    let messages: std::collections::HashSet<_> = all.iter().map(TokenError::message).collect();
    assert_eq!(messages.len(), all.len());
}

#[test]
fn debug_output_hides_the_secret() {
    let cfg = VerifierConfig {
        secret: b"hunter2".to_vec(),
        ..VerifierConfig::default()
    };
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("[7 bytes]"),
        "{shown}"
    );
}

#[test]
fn fixed_vectors_from_outside_this_crate() {
    // Signed with Python's hmac module, in the shape SimpleJWT issues:
    // integer user_id, tenant claim, token_type, far-future exp; the secret
    // is shaped like one Django's startproject generates.
    let simplejwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjo0MiwidGVuYW50X2lkIjoiMGI5YzJmNGUtOGExZC00YzNiLTllN2YtNmE1ZDRjM2IyYTE5IiwiZXhwIjo0MTAyNDQ0ODAwLCJ0b2tlbl90eXBlIjoiYWNjZXNzIiwianRpIjoiZDFmMCJ9.R0C-0Sn_gfBnasavtuOSfWjvagc0eaZOyzCVj__JOcs";
    let v = JwtVerifier::new(VerifierConfig {
        secret: b"django-insecure-7c$w2k!r9x@q4m^z1t&v8p*b0n(e)s=u+h6y3j5f".to_vec(),
        ..VerifierConfig::default()
    });
    let c = v.verify_now(simplejwt, NOW).unwrap();
    assert_eq!(
        (c.subject.as_deref(), c.tenant.as_deref(), c.expires_at),
        (Some("42"), Some(TENANT), 4_102_444_800)
    );

    // RFC 7515 appendix A.1, byte for byte (CR LF inside the header and
    // payload JSON, a 64-byte key): the signature holds, and it is refused
    // only because it expired in 2011. Its header `typ` is the JOSE media
    // type, which is not the payload's token type and is not looked at.
    let rfc7515 = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let key = URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let v = JwtVerifier::new(VerifierConfig {
        secret: key,
        ..VerifierConfig::default()
    });
    assert_eq!(v.verify_now(rfc7515, NOW), Err(TokenError::Expired));
    assert!(v.verify_now(rfc7515, 1_300_819_380).is_ok());
    assert_eq!(
        verifier().verify_now(rfc7515, NOW),
        Err(TokenError::BadSignature)
    );

    // The jwt.io example's secret is 19 bytes: no key is made from it, so
    // even its own token is refused.
    let jwt_io = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let v = JwtVerifier::new(VerifierConfig {
        secret: b"your-256-bit-secret".to_vec(),
        ..VerifierConfig::default()
    });
    assert!(v.keys().is_empty());
    assert_eq!(
        v.verify_now(jwt_io, NOW),
        Err(TokenError::UnsupportedAlgorithm)
    );
}

#[test]
fn the_jurisdiction_claim_is_read_by_its_configured_name_and_must_be_text() {
    assert_eq!(
        check(&with(json!({"jurisdiction": "eu"})))
            .unwrap()
            .jurisdiction
            .as_deref(),
        Some("eu")
    );
    assert_eq!(check(&claims()).unwrap().jurisdiction, None);
    for bad in [json!(1), json!(["eu"]), json!({"eu": true}), json!(true)] {
        assert_eq!(
            check(&with(json!({ "jurisdiction": bad }))),
            Err(TokenError::BadClaim("jurisdiction"))
        );
    }
    let renamed = JwtVerifier::new(VerifierConfig {
        secret: SECRET.to_vec(),
        jurisdiction_claim: "region".into(),
        ..VerifierConfig::default()
    });
    let token = sign_hs256(
        &with(json!({"region": "fedramp", "jurisdiction": 7})),
        SECRET,
    );
    // Only the configured claim is read: the default name means nothing then.
    assert_eq!(
        renamed
            .verify_now(&token, NOW)
            .unwrap()
            .jurisdiction
            .as_deref(),
        Some("fedramp")
    );
}
