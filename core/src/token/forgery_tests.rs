//! The corpus of forged and malformed tokens: every case names the attack,
//! the verifier it is shown to and the exact refusal it must get. The
//! corpus only grows; the same attacks run against workerd in
//! `tests/forgery.test.mjs`.

use super::testing::*;
use super::*;
use crate::keys::native::VerifyNatively;
use crate::keys::testing::{jose_token, pem, pem_key, public_jwk, token};
use serde_json::json;

/// One refused token: what it is, the token, the verifier it is shown
/// to, and the error it must get.
struct Case {
    name: String,
    token: String,
    verifier: fn() -> JwtVerifier,
    expected: TokenError,
}

fn case(
    name: impl Into<String>,
    token: String,
    verifier: fn() -> JwtVerifier,
    expected: TokenError,
) -> Case {
    Case {
        name: name.into(),
        token,
        verifier,
        expected,
    }
}

fn corpus() -> Vec<Case> {
    use TokenError::*;
    let mut cases = Vec::new();
    let hs = |header: &str, c: &Value| hmac_token(header, c, SECRET);
    let good_hs = hs(r#"{"alg":"HS256","typ":"JWT"}"#, &claims());
    let good_rs = jose_token("RS256");
    let good_es = jose_token("ES256");
    let good_ed = jose_token("EdDSA");
    fn configured() -> JwtVerifier {
        JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            issuer: Some("https://auth.example".into()),
            audience: Some("edgestream".into()),
            ..VerifierConfig::default()
        })
    }
    fn restricted_rs256() -> JwtVerifier {
        let mut jwk = public_jwk("rsa-a");
        jwk["alg"] = json!("RS256");
        jwk["kid"] = json!("rsa-a");
        verifier_with(
            b"",
            vec![VerificationKey::from_jwk(&jwk.to_string()).unwrap()],
        )
    }
    fn restricted_ps256() -> JwtVerifier {
        verifier_with(
            b"",
            vec![pem_key("rsa-a").restricted_to(Algorithm::Ps256).unwrap()],
        )
    }
    fn rsa_only() -> JwtVerifier {
        verifier_with(b"", vec![pem_key("rsa-a")])
    }
    fn rsa_and_other_secret() -> JwtVerifier {
        verifier_with(
            b"an-unrelated-hmac-secret-of-32-bytes-or-more",
            vec![pem_key("rsa-a")],
        )
    }
    fn hmac() -> JwtVerifier {
        hmac_only(SECRET)
    }
    fn typ_claim() -> JwtVerifier {
        JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            token_type_claim: "typ".into(),
            ..VerifierConfig::default()
        })
    }

    // alg "none" in every spelling, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE", " none", "none "] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let signed = hs(&header, &claims());
        let unsigned = format!("{}.", signed.rsplit_once('.').unwrap().0);
        cases.push(case(
            format!("alg {alg:?} signed"),
            signed,
            mixed,
            UnsupportedAlgorithm,
        ));
        cases.push(case(
            format!("alg {alg:?} unsigned"),
            unsigned,
            mixed,
            UnsupportedAlgorithm,
        ));
    }
    for header in [
        r#"{"typ":"JWT"}"#,
        r#"{"alg":null}"#,
        r#"{"alg":256}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"alg":"HS1"}"#,
        r#"{"alg":"RS384"}"#,
    ] {
        cases.push(case(
            format!("header {header}"),
            hs(header, &claims()),
            mixed,
            UnsupportedAlgorithm,
        ));
    }

    // Algorithm confusion: the RSA public key's text as an HMAC secret.
    for name in ["confusion-HS256-rsa-a-pem", "confusion-HS256-rsa-a-jwk"] {
        cases.push(case(
            format!("{name} vs RSA key only"),
            jose_token(name),
            rsa_only,
            UnsupportedAlgorithm,
        ));
        cases.push(case(
            format!("{name} vs RSA key and a secret"),
            jose_token(name),
            rsa_and_other_secret,
            BadSignature,
        ));
    }
    cases.push(case(
        "confusion, kid names the RSA key",
        jose_token("confusion-HS256-rsa-a-pem+kid"),
        mixed,
        UnsupportedAlgorithm,
    ));
    let pkcs1_mac = hmac_token(
        r#"{"alg":"HS256"}"#,
        &claims(),
        pem("rsa-a.pkcs1").as_bytes(),
    );
    cases.push(case(
        "confusion, PKCS#1 text as secret",
        pkcs1_mac,
        rsa_only,
        UnsupportedAlgorithm,
    ));
    let der = pem_der(pem("rsa-a"));
    cases.push(case(
        "confusion, DER bytes as secret",
        hmac_token(r#"{"alg":"HS256"}"#, &claims(), &der),
        rsa_and_other_secret,
        BadSignature,
    ));

    // Asymmetric tokens against an HMAC-only verifier, and the reverse.
    for name in ["RS256", "PS256", "ES256", "EdDSA"] {
        cases.push(case(
            format!("{name} vs HMAC only"),
            jose_token(name),
            hmac,
            UnsupportedAlgorithm,
        ));
    }
    // With a kid no key has, the Worker is told so (it may refresh a
    // JWKS); the HMAC secret is still never used for ES256.
    cases.push(case(
        "ES256+kid vs HMAC only",
        jose_token("ES256+kid"),
        hmac,
        UnknownKey,
    ));
    for name in ["HS256", "HS384", "HS512"] {
        cases.push(case(
            format!("{name} vs public keys only"),
            jose_token(name),
            pem_only,
            UnsupportedAlgorithm,
        ));
    }

    // Signatures by another key of the same type.
    for name in [
        "forged-RS256-by-rsa-b+kid",
        "forged-RS256-by-rsa-b",
        "forged-PS256-by-rsa-b",
        "forged-ES256-by-p256-b+kid",
        "forged-EdDSA-by-ed25519-b+kid",
        "forged-RS256-embedded-jwk",
    ] {
        cases.push(case(name, jose_token(name), mixed, BadSignature));
    }
    cases.push(case(
        "HS256 under another secret",
        sign_hs256(&claims(), b"guessed"),
        mixed,
        BadSignature,
    ));

    // An algorithm the key is not allowed, though the key type fits.
    cases.push(case(
        "PS256 vs key restricted to RS256",
        jose_token("PS256"),
        restricted_rs256,
        UnsupportedAlgorithm,
    ));
    cases.push(case(
        "PS256+kid vs key restricted to RS256",
        jose_token("PS256+kid"),
        restricted_rs256,
        UnsupportedAlgorithm,
    ));
    cases.push(case(
        "RS256 vs key restricted to PS256",
        jose_token("RS256"),
        restricted_ps256,
        UnsupportedAlgorithm,
    ));

    // kid pointing at a key of another type.
    let es_kid_rsa = token(r#"{"alg":"ES256","kid":"rsa-a"}"#, &claims(), "p256-a");
    cases.push(case(
        "ES256 with the RSA key's kid",
        es_kid_rsa,
        mixed,
        UnsupportedAlgorithm,
    ));
    cases.push(case(
        "HS256 with the P-256 key's kid",
        hs(r#"{"alg":"HS256","kid":"p256-a"}"#, &claims()),
        mixed,
        UnsupportedAlgorithm,
    ));
    let ed_kid_p256 = token(r#"{"alg":"EdDSA","kid":"p256-a"}"#, &claims(), "ed25519-a");
    cases.push(case(
        "EdDSA with the P-256 key's kid",
        ed_kid_p256,
        mixed,
        UnsupportedAlgorithm,
    ));

    // kid injection: only ever compared, never used as a path or query.
    let long_kid = "k".repeat(4000);
    for kid in [
        "../../../../etc/passwd",
        "' OR '1'='1",
        "rsa-a\u{0}",
        "RSA-A",
        " rsa-a",
        "",
        "*",
        long_kid.as_str(),
        "https://evil.example/jwks.json",
    ] {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        cases.push(case(
            format!("kid {:.40?}", kid),
            token(&header, &claims(), "rsa-b"),
            mixed,
            UnknownKey,
        ));
    }
    for kid in [
        json!(1),
        json!(null),
        json!(["rsa-a"]),
        json!({"kid": "rsa-a"}),
        json!(true),
    ] {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        cases.push(case(
            format!("kid {kid}"),
            token(&header, &claims(), "rsa-a"),
            mixed,
            BadClaim("kid"),
        ));
    }

    // Truncated and damaged signatures.
    for (name, good) in [
        ("HS256", &good_hs),
        ("RS256", &good_rs),
        ("ES256", &good_es),
        ("EdDSA", &good_ed),
    ] {
        let sig = signature_of(good);
        cases.push(case(
            format!("{name} signature missing a byte"),
            replace_signature(good, &sig[..sig.len() - 1]),
            mixed,
            BadSignature,
        ));
        cases.push(case(
            format!("{name} signature half"),
            replace_signature(good, &sig[..sig.len() / 2]),
            mixed,
            BadSignature,
        ));
        cases.push(case(
            format!("{name} signature empty"),
            replace_signature(good, &[]),
            mixed,
            BadSignature,
        ));
        let mut flipped = sig.clone();
        flipped[sig.len() / 2] ^= 1;
        cases.push(case(
            format!("{name} signature one bit off"),
            replace_signature(good, &flipped),
            mixed,
            BadSignature,
        ));
        cases.push(case(
            format!("{name} signature with a byte more"),
            replace_signature(good, &[sig.clone(), vec![0]].concat()),
            mixed,
            BadSignature,
        ));
    }
    cases.push(case(
        "RS256 truncated mid-character",
        good_rs[..good_rs.len() - 1].to_owned(),
        mixed,
        Malformed,
    ));
    let rs_parts: Vec<&str> = good_rs.split('.').collect();
    cases.push(case(
        "RS256 without signature segment",
        format!("{}.{}", rs_parts[0], rs_parts[1]),
        mixed,
        Malformed,
    ));
    // ES256 as DER (what some libraries emit by mistake) instead of r || s.
    let raw = signature_of(&good_es);
    let der_sig = [
        vec![0x30, 0x46, 0x02, 0x21, 0x00],
        raw[..32].to_vec(),
        vec![0x02, 0x21, 0x00],
        raw[32..].to_vec(),
    ]
    .concat();
    cases.push(case(
        "ES256 signature in DER",
        replace_signature(&good_es, &der_sig),
        mixed,
        BadSignature,
    ));

    // Bad base64.
    cases.push(case(
        "padded signature",
        format!("{good_rs}="),
        mixed,
        Malformed,
    ));
    cases.push(case(
        "standard alphabet",
        good_hs.replace('-', "+").replace('_', "/") + "+/",
        mixed,
        Malformed,
    ));
    cases.push(case(
        "space inside",
        format!("{} {}", &good_es[..4], &good_es[4..]),
        mixed,
        Malformed,
    ));
    cases.push(case("non-ASCII", format!("{good_ed}é"), mixed, Malformed));
    cases.push(case(
        "header not base64",
        format!("*{}", &good_hs[1..]),
        mixed,
        Malformed,
    ));
    cases.push(case(
        "four segments",
        format!("{good_rs}.{}", rs_parts[2]),
        mixed,
        Malformed,
    ));

    // Huge header: refused by size before anything is decoded.
    let huge = json!({"alg": "HS256", "pad": "x".repeat(MAX_TOKEN_BYTES)}).to_string();
    cases.push(case("huge header", hs(&huge, &claims()), mixed, Malformed));
    let deep = format!(
        r#"{{"alg":"HS256","x":{}{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    cases.push(case(
        "deeply nested header",
        hs(&deep, &claims()),
        mixed,
        Malformed,
    ));

    // crit.
    cases.push(case(
        "crit b64",
        hs(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &claims()),
        mixed,
        BadClaim("crit"),
    ));

    // Claims.
    let iss_aud = |extra: Value| {
        let mut c = with(json!({"iss": "https://auth.example", "aud": "edgestream"}));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        sign_hs256(&c, SECRET)
    };
    cases.push(case(
        "wrong aud",
        iss_aud(json!({"aud": "other-service"})),
        configured,
        WrongAudience,
    ));
    cases.push(case(
        "aud list without us",
        iss_aud(json!({"aud": ["a", "b"]})),
        configured,
        WrongAudience,
    ));
    cases.push(case(
        "wrong iss",
        iss_aud(json!({"iss": "https://evil.example"})),
        configured,
        WrongIssuer,
    ));
    cases.push(case(
        "iss with trailing slash",
        iss_aud(json!({"iss": "https://auth.example/"})),
        configured,
        WrongIssuer,
    ));
    cases.push(case(
        "expired one second past leeway",
        sign_hs256(&with(json!({"exp": NOW - 31})), SECRET),
        mixed,
        Expired,
    ));
    cases.push(case(
        "RS256 expired one second past leeway",
        token(
            r#"{"alg":"RS256"}"#,
            &with(json!({"exp": NOW - 31})),
            "rsa-a",
        ),
        mixed,
        Expired,
    ));
    cases.push(case(
        "nbf in the future",
        sign_hs256(&with(json!({"nbf": NOW + 31})), SECRET),
        mixed,
        NotYetValid,
    ));
    cases.push(case(
        "iat in the future",
        sign_hs256(&with(json!({"iat": NOW + 31})), SECRET),
        mixed,
        IssuedInFuture,
    ));
    cases.push(case(
        "no exp",
        sign_hs256(&json!({"sub": "u", "tenant_id": TENANT}), SECRET),
        mixed,
        MissingExpiry,
    ));
    cases.push(case(
        "exp as string",
        sign_hs256(&with(json!({"exp": "4102444800"})), SECRET),
        mixed,
        BadClaim("exp"),
    ));
    for tenant in [
        json!(42),
        json!([TENANT]),
        json!({"id": TENANT}),
        json!(true),
        json!(""),
    ] {
        cases.push(case(
            format!("tenant {tenant}"),
            sign_hs256(&with(json!({ "tenant_id": tenant })), SECRET),
            mixed,
            BadClaim("tenant"),
        ));
    }
    cases.push(case(
        "refresh token",
        sign_hs256(&with(json!({"token_type": "refresh"})), SECRET),
        mixed,
        NotAccessToken,
    ));
    cases.push(case(
        "SimpleJWT RS256 refresh",
        jose_token("simplejwt-RS256-refresh"),
        mixed,
        NotAccessToken,
    ));

    // Token types: Prowler names SimpleJWT's claim `typ`, and its refresh
    // tokens carry the tenant; the default setting refuses them all the same.
    let no_token_type = |extra: Value| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("token_type");
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    cases.push(case(
        "Prowler refresh token (typ refresh, tenant_id)",
        sign_hs256(&no_token_type(json!({"typ": "refresh"})), SECRET),
        mixed,
        NotAccessToken,
    ));
    cases.push(case(
        "RS256 refresh token with typ",
        token(
            r#"{"alg":"RS256","typ":"JWT"}"#,
            &no_token_type(json!({"typ": "refresh"})),
            "rsa-a",
        ),
        mixed,
        NotAccessToken,
    ));
    cases.push(case(
        "typ access but token_type refresh",
        sign_hs256(
            &with(json!({"token_type": "refresh", "typ": "access"})),
            SECRET,
        ),
        mixed,
        NotAccessToken,
    ));
    cases.push(case(
        "typ refresh against TOKEN_TYPE_CLAIM=typ",
        sign_hs256(&no_token_type(json!({"typ": "refresh"})), SECRET),
        typ_claim,
        NotAccessToken,
    ));
    cases.push(case(
        "token_type refresh against TOKEN_TYPE_CLAIM=typ",
        sign_hs256(
            &with(json!({"token_type": "refresh", "typ": "access"})),
            SECRET,
        ),
        typ_claim,
        NotAccessToken,
    ));

    // Duplicate members: serde_json keeps the last, other parsers the first.
    let claims_text = claims().to_string();
    for header in [
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","alg":"none"}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
        r#"{"alg":"HS256","jwk":{"kty":"oct","kty":"RSA"}}"#,
    ] {
        cases.push(case(
            format!("duplicate member in header {header}"),
            hmac_token_text(header, &claims_text, SECRET),
            mixed,
            DuplicateMember,
        ));
    }
    let other = "11111111-2222-4333-8444-555555555555";
    let exp = NOW + 300;
    for payload in [
        format!(r#"{{"exp":{exp},"tenant_id":"{TENANT}","tenant_id":"{other}"}}"#),
        format!(r#"{{"exp":{exp},"tenant_id":"{other}","tenant_id":"{TENANT}"}}"#),
        format!(r#"{{"exp":{exp},"token_type":"refresh","token_type":"access"}}"#),
        format!(r#"{{"exp":{exp},"scope":"a","sc\u006fpe":"events:publish"}}"#),
        format!(r#"{{"exp":{exp},"ctx":[{{"role":"user","role":"admin"}}]}}"#),
    ] {
        cases.push(case(
            format!("duplicate member in payload {payload:.60}"),
            hmac_token_text(r#"{"alg":"HS256"}"#, &payload, SECRET),
            mixed,
            DuplicateMember,
        ));
    }
    let rs_dup = {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"exp":{exp},"tenant_id":"{TENANT}","tenant_id":"{other}"}}"#
            ))
        );
        let sig = crate::keys::testing::sign("rsa-a", input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    cases.push(case(
        "RS256 payload with two tenants",
        rs_dup,
        mixed,
        DuplicateMember,
    ));

    // Non-zero trailing bits in the header and payload segments, which
    // would give one token a second spelling. The headers and padding are
    // chosen so that both segments end in a partial group of 4. The header
    // is decoded first, so it is malformed; the payload is decoded only
    // after the signature, which covers the text and so already fails.
    for (alg, key) in [
        ("HS256", None),
        ("RS256", Some("rsa-a")),
        ("ES256", Some("p256-a")),
    ] {
        let header = format!(r#"{{"alg":"{alg}","x":""}}"#);
        let good = (0..3)
            .map(|pad| {
                let c = with(json!({"pad": "p".repeat(pad)}));
                match key {
                    None => hmac_token(&header, &c, SECRET),
                    Some(key) => token(&header, &c, key),
                }
            })
            .find(|t| t.split('.').take(2).all(|part| part.len() % 4 != 0))
            .unwrap();
        assert!((mixed)().verify_now(&good, NOW).is_ok(), "{alg}");
        let parts: Vec<&str> = good.split('.').collect();
        for (segment, what, expected) in [(0, "header", Malformed), (1, "payload", BadSignature)] {
            let twisted = with_trailing_bits(parts[segment]).unwrap();
            let mut changed = parts.clone();
            changed[segment] = &twisted;
            cases.push(case(
                format!("{alg} {what} with non-zero trailing bits"),
                changed.join("."),
                mixed,
                expected,
            ));
        }
    }

    // Signed as twisted (by an issuer whose encoder leaves those bits): the
    // signature holds, and the payload is still refused.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
    let payload = (0..3)
        .map(|pad| URL_SAFE_NO_PAD.encode(with(json!({"pad": "p".repeat(pad)})).to_string()))
        .find(|p| p.len() % 4 != 0)
        .unwrap();
    let input = format!("{header}.{}", with_trailing_bits(&payload).unwrap());
    let mac = keys::hmac_sign(SECRET, input.as_bytes());
    cases.push(case(
        "HS256 payload with non-zero trailing bits, signed as such",
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac)),
        mixed,
        Malformed,
    ));

    // One byte over the size bound, however valid otherwise.
    let padded = |pad: usize| sign_hs256(&with(json!({"pad": "p".repeat(pad)})), SECRET);
    let mut pad = MAX_TOKEN_BYTES * 3 / 4 - 400;
    while padded(pad).len() <= MAX_TOKEN_BYTES {
        pad += 1;
    }
    cases.push(case(
        format!("{} bytes", padded(pad).len()),
        padded(pad),
        mixed,
        Malformed,
    ));

    // A payload changed after signing (another tenant).
    let forged_payload = URL_SAFE_NO_PAD
        .encode(with(json!({"tenant_id": "11111111-2222-4333-8444-555555555555"})).to_string());
    for good in [&good_rs, &good_es, &good_ed, &good_hs] {
        let parts: Vec<&str> = good.split('.').collect();
        cases.push(case(
            format!("payload swapped under {:.20}", parts[0]),
            format!("{}.{forged_payload}.{}", parts[0], parts[2]),
            mixed,
            BadSignature,
        ));
    }
    cases
}

/// An HMAC token over this exact header and payload text.
fn hmac_token_text(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = keys::hmac_sign(secret, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The segment with its last character's unused low bits set, if its
/// length leaves any (2 or 3 characters in the last group of 4): the same
/// bytes under a base64 decoder that ignores those bits.
fn with_trailing_bits(segment: &str) -> Option<String> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused = match segment.len() % 4 {
        2 => 0b1111,
        3 => 0b11,
        _ => return None,
    };
    let (head, last) = segment.split_at(segment.len() - 1);
    let value = ALPHABET.find(last)?;
    assert_eq!(value & unused, 0, "{segment} is not canonical");
    Some(format!("{head}{}", &ALPHABET[value | 1..(value | 1) + 1]))
}

/// The DER bytes inside a one-block PEM text.
fn pem_der(pem_text: &str) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    let body: String = pem_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

#[test]
fn forged_and_malformed_corpus_is_refused() {
    let cases = corpus();
    assert!(cases.len() >= 30, "{}", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let got = (c.verifier)().verify_now(&c.token, NOW);
        if got != Err(c.expected) {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expected, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn refusals_never_echo_the_token() {
    for c in corpus() {
        let err = (c.verifier)().verify_now(&c.token, NOW).unwrap_err();
        let problem: Problem = err.into();
        let shown = format!("{} {err:?} {}", problem.to_json(), err);
        for part in c.token.split('.').filter(|p| p.len() >= 8) {
            assert!(!shown.contains(&part[..8]), "{}: {shown}", c.name);
        }
    }
}
