use super::testing::*;
use super::*;
use serde_json::json;

fn jwks(keys: Vec<Value>) -> String {
    json!({ "keys": keys }).to_string()
}

fn jwk(name: &str, extra: Value) -> Value {
    let mut k = public_jwk(name);
    for (field, value) in extra.as_object().unwrap() {
        if value.is_null() {
            k.as_object_mut().unwrap().remove(field);
        } else {
            k[field] = value.clone();
        }
    }
    k
}

fn one(json: Value) -> Result<VerificationKey, KeyError> {
    VerificationKey::from_jwk(&json.to_string())
}

fn names(key: &VerificationKey) -> Vec<&'static str> {
    key.algorithms().iter().map(|a| a.name()).collect()
}

#[test]
fn algorithm_names_are_exact() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        assert_eq!(alg.to_string(), alg.name());
    }
    for name in [
        "none", "None", "NONE", "hs256", "HS256 ", " RS256", "EDDSA", "Ed25519", "ES256K", "RS512",
        "",
    ] {
        assert_eq!(Algorithm::from_name(name), None, "{name:?}");
    }
}

#[test]
fn hmac_key_allows_the_hmac_family_only() {
    let key = VerificationKey::hmac(&[7; MIN_HMAC_SECRET_BYTES]).unwrap();
    assert_eq!(names(&key), ["HS256", "HS384", "HS512"]);
    assert_eq!((key.kind(), key.kid()), (KeyKind::Hmac, None));
    assert_eq!(
        VerificationKey::hmac(b"").unwrap_err(),
        KeyError::EmptySecret
    );
}

#[test]
fn hmac_secrets_under_32_bytes_are_refused() {
    for short in [
        &b"change-me"[..],
        b"django-insecure-secret",
        b"your-256-bit-secret",
        &[b'x'; MIN_HMAC_SECRET_BYTES - 1],
    ] {
        assert_eq!(
            VerificationKey::hmac(short).unwrap_err(),
            KeyError::SecretTooShort,
            "{}",
            String::from_utf8_lossy(short)
        );
    }
    assert!(VerificationKey::hmac(&[b'x'; MIN_HMAC_SECRET_BYTES]).is_ok());
    // Bytes, not characters: 11 three-byte characters are 33 bytes.
    assert!(VerificationKey::hmac("€".repeat(11).as_bytes()).is_ok());
    let message = KeyError::SecretTooShort.message();
    assert!(message.contains("32 bytes"), "{message}");
}

#[test]
fn public_key_text_is_refused_as_an_hmac_secret() {
    for secret in [
        pem("rsa-a").to_owned(),
        format!("\n  {}", pem("rsa-a.pkcs1")),
        public_jwk("rsa-a").to_string(),
        format!("  {}", public_jwk("p256-a")),
    ] {
        assert_eq!(
            VerificationKey::hmac(secret.as_bytes()).unwrap_err(),
            KeyError::SecretLooksLikeKey
        );
    }
    // Braces alone are fine: secrets are arbitrary bytes.
    assert!(VerificationKey::hmac(b"{not-a-jwk, just a secret in braces}").is_ok());
}

#[test]
fn pem_keys_get_the_allow_list_of_their_type() {
    for (name, kind, algs) in [
        ("rsa-a", KeyKind::Rsa, vec!["RS256", "PS256"]),
        ("rsa-a.pkcs1", KeyKind::Rsa, vec!["RS256", "PS256"]),
        ("p256-a", KeyKind::P256, vec!["ES256"]),
        ("ed25519-a", KeyKind::Ed25519, vec!["EdDSA"]),
    ] {
        let key = pem_key(name);
        assert_eq!(
            (key.kind(), names(&key), key.kid()),
            (kind, algs, None),
            "{name}"
        );
    }
}

#[test]
fn several_pem_blocks_with_text_between() {
    let text = format!(
        "issuer keys, 2024 rotation\n{}\nold key:\r\n{}{}",
        pem("rsa-a"),
        pem("ed25519-b").replace('\n', "\r\n"),
        pem("p256-a")
    );
    let keys = VerificationKey::from_pem(&text).unwrap();
    let kinds: Vec<KeyKind> = keys.iter().map(VerificationKey::kind).collect();
    assert_eq!(kinds, [KeyKind::Rsa, KeyKind::Ed25519, KeyKind::P256]);
}

#[test]
fn pem_pasted_on_one_line_with_literal_newlines() {
    let one_line = pem("p256-a").trim_end().replace('\n', "\\n");
    assert!(!one_line.contains('\n'));
    assert_eq!(
        VerificationKey::from_pem(&one_line).unwrap()[0].kind(),
        KeyKind::P256
    );
}

#[test]
fn weak_or_foreign_pem_keys_are_refused_with_a_clear_error() {
    for (name, err) in [
        ("rsa-1024", KeyError::RsaTooSmall),
        ("p384", KeyError::UnsupportedCurve),
        ("secp256k1", KeyError::UnsupportedCurve),
        ("ed448", KeyError::UnsupportedCurve),
    ] {
        assert_eq!(
            VerificationKey::from_pem(pem(name)).unwrap_err(),
            err,
            "{name}"
        );
        // One bad block fails the whole configuration.
        let mixed = format!("{}{}", pem("rsa-a"), pem(name));
        assert_eq!(
            VerificationKey::from_pem(&mixed).unwrap_err(),
            err,
            "{name}"
        );
    }
}

/// The DER inside a PEM fixture.
fn der_of(name: &str) -> Vec<u8> {
    let body: String = pem(name)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

fn as_pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

#[test]
fn pem_keys_are_read_as_strict_der() {
    for name in ["rsa-a", "p256-a", "ed25519-a"] {
        let der = der_of(name);
        let key = VerificationKey::from_pem(&as_pem("PUBLIC KEY", &der)).unwrap();
        assert_eq!(key[0].public_key(), pem_key(name).public_key(), "{name}");
        // Trailing bytes, a truncated body, a BER indefinite length.
        let mut indefinite = der.clone();
        indefinite[1] = 0x80;
        for bad in [
            [&der[..], &[0]].concat(),
            der[..der.len() - 1].to_vec(),
            indefinite,
        ] {
            assert_eq!(
                VerificationKey::from_pem(&as_pem("PUBLIC KEY", &bad)).unwrap_err(),
                KeyError::MalformedDer,
                "{name}"
            );
        }
    }
    // An Ed25519 algorithm identifier with parameters (RFC 8410 says absent):
    // 30 2a | 30 05 06 03 2b6570 | 03 21 00 <key> becomes 30 2c | 30 07 ... 05 00.
    let ed = der_of("ed25519-a");
    let with_null = [
        &[0x30, 0x2c, 0x30, 0x07][..],
        &ed[4..9],
        &[0x05, 0x00],
        &ed[9..],
    ]
    .concat();
    assert_eq!(
        VerificationKey::from_pem(&as_pem("PUBLIC KEY", &with_null)).unwrap_err(),
        KeyError::MalformedDer
    );
    // The same Ed25519 key, rebuilt, is read: the edit above is the only fault.
    let rebuilt = [&[0x30, 0x2a, 0x30, 0x05][..], &ed[4..9], &ed[9..]].concat();
    assert!(VerificationKey::from_pem(&as_pem("PUBLIC KEY", &rebuilt)).is_ok());
    // The PKCS#1 body of an RSA key as a PUBLIC KEY block is no SPKI.
    let pkcs1 = der_of("rsa-a.pkcs1");
    assert!(VerificationKey::from_pem(&as_pem("RSA PUBLIC KEY", &pkcs1)).is_ok());
    assert_eq!(
        VerificationKey::from_pem(&as_pem("PUBLIC KEY", &pkcs1)).unwrap_err(),
        KeyError::MalformedDer
    );
}

#[test]
fn equal_keys_have_equal_jwk_text_whatever_their_source() {
    for name in ["rsa-a", "p256-a", "ed25519-a"] {
        let from_pem = pem_key(name);
        let from_jwk = one(public_jwk(name)).unwrap();
        let text = from_pem.public_key().unwrap().jwk();
        assert_eq!(
            Some(text),
            from_jwk.public_key().map(PublicKey::jwk),
            "{name}"
        );
        // Only the members that define the key, in a fixed order.
        let members: Vec<String> = serde_json::from_str::<Map<String, Value>>(text)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert!(members
            .iter()
            .all(|m| ["kty", "crv", "n", "e", "x", "y"].contains(&m.as_str())));
    }
    assert_eq!(
        VerificationKey::hmac(&[b'k'; 32]).unwrap().public_key(),
        None
    );
}

#[test]
fn private_keys_and_certificates_are_refused_by_label() {
    let block = |label: &str| {
        format!("-----BEGIN {label}-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+L\n-----END {label}-----\n")
    };
    for label in [
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
    ] {
        let err = VerificationKey::from_pem(&block(label)).unwrap_err();
        assert_eq!(err, KeyError::PrivateKey, "{label}");
        assert!(err.message().contains("private key"));
        // Even after a good public key.
        let mixed = format!("{}{}", pem("rsa-a"), block(label));
        assert_eq!(
            VerificationKey::from_pem(&mixed).unwrap_err(),
            KeyError::PrivateKey
        );
    }
    assert_eq!(
        VerificationKey::from_pem(&block("CERTIFICATE")).unwrap_err(),
        KeyError::Certificate
    );
    for label in ["EC PARAMETERS", "CERTIFICATE REQUEST", "public key"] {
        let err = VerificationKey::from_pem(&block(label)).unwrap_err();
        assert!(
            matches!(err, KeyError::UnsupportedPem | KeyError::Certificate),
            "{label}"
        );
    }
}

#[test]
fn malformed_pem() {
    let good = pem("ed25519-a");
    let body = good.lines().nth(1).unwrap();
    for (text, err) in [
        (String::new(), KeyError::NoPublicKey),
        ("just some text".to_owned(), KeyError::NoPublicKey),
        (body.to_owned(), KeyError::NoPublicKey),
        (
            good.replace("-----END PUBLIC KEY-----", ""),
            KeyError::MalformedPem,
        ),
        (
            good.replace("END PUBLIC KEY", "END RSA PUBLIC KEY"),
            KeyError::MalformedPem,
        ),
        ("-----BEGIN PUBLIC KEY".to_owned(), KeyError::MalformedPem),
        (
            "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----".to_owned(),
            KeyError::MalformedPem,
        ),
        (
            good.replace(body, &body.replace('/', "_")),
            KeyError::MalformedPem,
        ),
        (
            good.replace(body, &body[..body.len() - 1]),
            KeyError::MalformedPem,
        ),
        (good.replace(body, "AAAA"), KeyError::MalformedDer),
        // A valid DER structure with bytes after it.
        (
            good.replace(
                body,
                &STANDARD.encode([STANDARD.decode(body).unwrap(), vec![0]].concat()),
            ),
            KeyError::MalformedDer,
        ),
        // An RSA key given as a PUBLIC KEY block holds PKCS#1, not SPKI.
        (
            pem("rsa-a.pkcs1").replace("RSA PUBLIC KEY", "PUBLIC KEY"),
            KeyError::MalformedDer,
        ),
        (
            pem("rsa-a").replace("PUBLIC KEY", "RSA PUBLIC KEY"),
            KeyError::MalformedDer,
        ),
    ] {
        assert_eq!(
            VerificationKey::from_pem(&text).err(),
            Some(err),
            "{text:?}"
        );
    }
}

#[test]
fn jwks_of_the_three_key_types_keeps_kids() {
    let set = jwks(vec![
        jwk("rsa-a", json!({"kid": "rsa-a", "use": "sig"})),
        jwk("p256-a", json!({"kid": "p256-a"})),
        jwk(
            "ed25519-a",
            json!({"kid": "ed25519-a", "key_ops": ["verify"]}),
        ),
    ]);
    let keys = VerificationKey::from_jwks(&set).unwrap();
    let seen: Vec<(Option<&str>, KeyKind, Vec<&str>)> =
        keys.iter().map(|k| (k.kid(), k.kind(), names(k))).collect();
    assert_eq!(
        seen,
        [
            (Some("rsa-a"), KeyKind::Rsa, vec!["RS256", "PS256"]),
            (Some("p256-a"), KeyKind::P256, vec!["ES256"]),
            (Some("ed25519-a"), KeyKind::Ed25519, vec!["EdDSA"]),
        ]
    );
}

#[test]
fn a_single_jwk_is_a_set_of_one() {
    let keys = VerificationKey::from_jwks(&public_jwk("p256-a").to_string()).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        one(public_jwk("ed25519-a")).unwrap().kind(),
        KeyKind::Ed25519
    );
}

#[test]
fn jwk_alg_restricts_the_key_and_must_fit_its_type() {
    for (name, alg, expected) in [
        ("rsa-a", "RS256", Ok(vec!["RS256"])),
        ("rsa-a", "PS256", Ok(vec!["PS256"])),
        ("p256-a", "ES256", Ok(vec!["ES256"])),
        ("ed25519-a", "EdDSA", Ok(vec!["EdDSA"])),
        ("rsa-a", "HS256", Err(KeyError::AlgorithmMismatch)),
        ("rsa-a", "ES256", Err(KeyError::AlgorithmMismatch)),
        ("rsa-a", "none", Err(KeyError::AlgorithmMismatch)),
        ("rsa-a", "rs256", Err(KeyError::AlgorithmMismatch)),
        ("p256-a", "RS256", Err(KeyError::AlgorithmMismatch)),
        ("p256-a", "ES384", Err(KeyError::AlgorithmMismatch)),
        ("p256-a", "HS256", Err(KeyError::AlgorithmMismatch)),
        ("ed25519-a", "ES256", Err(KeyError::AlgorithmMismatch)),
        ("ed25519-a", "HS512", Err(KeyError::AlgorithmMismatch)),
        ("rsa-a", "RS512", Err(KeyError::UnsupportedAlgorithm)),
        ("rsa-a", "PS384", Err(KeyError::UnsupportedAlgorithm)),
        ("ed25519-a", "Ed25519", Err(KeyError::UnsupportedAlgorithm)),
    ] {
        let got = one(jwk(name, json!({ "alg": alg }))).map(|k| names(&k));
        assert_eq!(got, expected, "{name} {alg}");
    }
    assert_eq!(
        one(jwk("rsa-a", json!({"alg": 256}))).unwrap_err(),
        KeyError::BadJwkParameter("alg")
    );
}

#[test]
fn jwks_skips_keys_it_cannot_use_and_keeps_the_rest() {
    let set = jwks(vec![
        jwk("p384", json!({"kid": "p384"})),
        jwk("secp256k1", json!({"kid": "k1"})),
        jwk("ed448", json!({"kid": "ed448"})),
        jwk("rsa-a", json!({"kid": "enc", "use": "enc"})),
        jwk("rsa-a", json!({"kid": "wrap", "key_ops": ["wrapKey"]})),
        jwk("rsa-a", json!({"kid": "mismatch", "alg": "ES256"})),
        jwk("rsa-1024", json!({"kid": "short"})),
        json!({"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}),
        json!({"kty": "PQC", "kid": "future"}),
        jwk(
            "rsa-a",
            json!({"kid": "good", "alg": "RS256", "use": "sig"}),
        ),
    ]);
    let (keys, skipped) = VerificationKey::from_jwks_with_skipped(&set).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].kid(), names(&keys[0])),
        (Some("good"), vec!["RS256"])
    );
    let reasons: Vec<(Option<&str>, KeyError)> = skipped
        .iter()
        .map(|s| (s.kid.as_deref(), s.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            (Some("p384"), KeyError::UnsupportedCurve),
            (Some("k1"), KeyError::UnsupportedCurve),
            (Some("ed448"), KeyError::UnsupportedCurve),
            (Some("enc"), KeyError::NotForSignatures),
            (Some("wrap"), KeyError::NotForSignatures),
            (Some("mismatch"), KeyError::AlgorithmMismatch),
            (Some("short"), KeyError::RsaTooSmall),
            (Some("broken"), KeyError::BadJwkParameter("n")),
            (Some("future"), KeyError::UnsupportedKeyType),
        ]
    );
}

#[test]
fn jwks_without_a_usable_key_fails_with_the_telling_reason() {
    for (keys, err) in [
        (vec![], KeyError::NoUsableKey),
        (vec![jwk("p384", json!({}))], KeyError::UnsupportedCurve),
        (
            vec![jwk("rsa-a", json!({"use": "enc"}))],
            KeyError::NotForSignatures,
        ),
        // A real mistake wins over an expected unsupported key.
        (
            vec![jwk("p384", json!({})), jwk("rsa-1024", json!({}))],
            KeyError::RsaTooSmall,
        ),
        (
            vec![jwk("rsa-a", json!({"alg": "ES256"}))],
            KeyError::AlgorithmMismatch,
        ),
    ] {
        assert_eq!(VerificationKey::from_jwks(&jwks(keys)).unwrap_err(), err);
    }
}

#[test]
fn private_jwks_are_refused_whole_and_say_why() {
    let private: Value = serde_json::from_str(PRIVATE_JWKS).unwrap();
    for name in ["rsa-a", "p256-a", "ed25519-a"] {
        let set = jwks(vec![public_jwk("rsa-b"), private[name].clone()]);
        let err = VerificationKey::from_jwks(&set).unwrap_err();
        assert_eq!(err, KeyError::PrivateKey, "{name}");
        assert!(err.message().contains("private key"));
        assert_eq!(
            VerificationKey::from_jwk(&private[name].to_string()).unwrap_err(),
            KeyError::PrivateKey
        );
    }
    // Any one private RSA parameter is enough.
    let partial = jwk("rsa-a", json!({"p": "AQAB"}));
    assert_eq!(one(partial).unwrap_err(), KeyError::PrivateKey);
    let oct = json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"});
    assert_eq!(
        VerificationKey::from_jwks(&jwks(vec![public_jwk("rsa-a"), oct])).unwrap_err(),
        KeyError::SymmetricJwk
    );
}

#[test]
fn jwk_parameters_are_checked() {
    let p256 = public_jwk("p256-a");
    let x = p256["x"].as_str().unwrap();
    let short_x = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(x).unwrap()[1..]);
    let rsa = public_jwk("rsa-a");
    let n = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
    for (json, err) in [
        (
            jwk("p256-a", json!({ "x": short_x })),
            KeyError::BadJwkParameter("x"),
        ),
        (
            jwk("p256-a", json!({ "x": format!("{x}=") })),
            KeyError::BadJwkParameter("x"),
        ),
        (
            jwk("p256-a", json!({"y": null})),
            KeyError::BadJwkParameter("y"),
        ),
        (
            jwk("p256-a", json!({"crv": null})),
            KeyError::BadJwkParameter("crv"),
        ),
        (jwk("p256-a", json!({ "y": x })), KeyError::InvalidPoint),
        (
            jwk("p256-a", json!({"kid": 7})),
            KeyError::BadJwkParameter("kid"),
        ),
        (
            jwk("ed25519-a", json!({"x": URL_SAFE_NO_PAD.encode([0u8; 31])})),
            KeyError::BadJwkParameter("x"),
        ),
        // The identity point: small order, "verifies" forged signatures.
        (
            jwk(
                "ed25519-a",
                json!({"x": URL_SAFE_NO_PAD.encode({ let mut b = [0u8; 32]; b[0] = 1; b })}),
            ),
            KeyError::WeakKey,
        ),
        (
            jwk(
                "rsa-a",
                json!({"n": rsa["n"].as_str().unwrap().replace('-', "+")}),
            ),
            KeyError::BadJwkParameter("n"),
        ),
        (
            jwk("rsa-a", json!({"e": null})),
            KeyError::BadJwkParameter("e"),
        ),
        (jwk("rsa-a", json!({"e": "AQAA"})), KeyError::InvalidRsaKey),
        (jwk("rsa-a", json!({"e": "AQ"})), KeyError::InvalidRsaKey),
        (
            jwk("rsa-a", json!({"e": URL_SAFE_NO_PAD.encode([1u8; 9])})),
            KeyError::InvalidRsaKey,
        ),
        (
            jwk(
                "rsa-a",
                json!({"n": URL_SAFE_NO_PAD.encode(&n[..n.len() - 1])}),
            ),
            KeyError::RsaTooSmall,
        ),
        (
            jwk(
                "rsa-a",
                json!({"n": URL_SAFE_NO_PAD.encode({ let mut even = n.clone(); *even.last_mut().unwrap() &= 0xfe; even })}),
            ),
            KeyError::InvalidRsaKey,
        ),
        (
            jwk(
                "rsa-a",
                json!({"n": URL_SAFE_NO_PAD.encode([0xffu8; 1025])}),
            ),
            KeyError::RsaTooLarge,
        ),
        (
            jwk("rsa-a", json!({"kty": "rsa"})),
            KeyError::UnsupportedKeyType,
        ),
        (
            jwk("rsa-a", json!({"kty": null})),
            KeyError::BadJwkParameter("kty"),
        ),
        (
            jwk("rsa-a", json!({"use": ["sig"]})),
            KeyError::BadJwkParameter("use"),
        ),
        (
            jwk("rsa-a", json!({"key_ops": "verify"})),
            KeyError::BadJwkParameter("key_ops"),
        ),
    ] {
        assert_eq!(one(json.clone()).unwrap_err(), err, "{json}");
    }
    // A modulus with a leading zero byte (some encoders add one) is the
    // same key.
    let padded = URL_SAFE_NO_PAD.encode([vec![0], n].concat());
    assert_eq!(
        one(jwk("rsa-a", json!({ "n": padded }))).unwrap().kind(),
        KeyKind::Rsa
    );
}

#[test]
fn malformed_jwks_documents() {
    for text in [
        "",
        "null",
        "[]",
        "{}",
        r#"{"keys": {}}"#,
        r#"{"keys": [1]}"#,
        r#"{"keys": ["#,
        "\"keys\"",
    ] {
        assert_eq!(
            VerificationKey::from_jwks(text).unwrap_err(),
            KeyError::MalformedJwks,
            "{text}"
        );
    }
    let huge = jwks(vec![json!({"kty": "RSA", "n": "A".repeat(MAX_JWKS_BYTES)})]);
    assert_eq!(
        VerificationKey::from_jwks(&huge).unwrap_err(),
        KeyError::TooLarge
    );
    let many = jwks(vec![public_jwk("ed25519-a"); MAX_JWKS_KEYS + 1]);
    assert_eq!(
        VerificationKey::from_jwks(&many).unwrap_err(),
        KeyError::TooLarge
    );
    assert_eq!(
        VerificationKey::from_jwks(&jwks(vec![public_jwk("ed25519-a"); MAX_JWKS_KEYS]))
            .unwrap()
            .len(),
        MAX_JWKS_KEYS
    );
}

#[test]
fn restricting_and_naming_keys() {
    let key = pem_key("rsa-a").with_kid("2024-06");
    assert_eq!(key.kid(), Some("2024-06"));
    let ps = key.clone().restricted_to(Algorithm::Ps256).unwrap();
    assert_eq!(names(&ps), ["PS256"]);
    assert_eq!(
        ps.restricted_to(Algorithm::Rs256).unwrap_err(),
        KeyError::AlgorithmMismatch
    );
    assert_eq!(
        key.restricted_to(Algorithm::Hs256).unwrap_err(),
        KeyError::AlgorithmMismatch
    );
    for kind in [KeyKind::Hmac, KeyKind::Rsa, KeyKind::P256, KeyKind::Ed25519] {
        assert!(!kind.algorithms().is_empty());
    }
}

#[test]
fn a_key_never_verifies_outside_its_allow_list() {
    // The RSA key's PEM text as an HMAC secret: the classic confusion.
    // The RSA key itself never runs an HMAC, whatever it is asked.
    let rsa = pem_key("rsa-a");
    let input = b"header.payload";
    let mac = hmac_sign(pem("rsa-a").as_bytes(), input);
    for alg in [Algorithm::Hs256, Algorithm::Es256, Algorithm::EdDsa] {
        assert!(!verifies(&rsa, alg, input, &mac));
    }
    let sig = sign("rsa-a", input);
    assert!(verifies(&rsa, Algorithm::Rs256, input, &sig));
    let ps256_only = rsa.clone().restricted_to(Algorithm::Ps256).unwrap();
    assert!(!verifies(&ps256_only, Algorithm::Rs256, input, &sig));
    let hmac = VerificationKey::hmac(&[b'k'; MIN_HMAC_SECRET_BYTES]).unwrap();
    assert!(!verifies(&hmac, Algorithm::Rs256, input, &sig));
}

#[test]
fn debug_output_shows_no_material() {
    let hmac = VerificationKey::hmac(b"hunter2-hunter2-hunter2-hunter2-hunter2").unwrap();
    let shown = format!("{hmac:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("[39 bytes]"),
        "{shown}"
    );
    let rsa = pem_key("rsa-a").with_kid("k1");
    let shown = format!("{rsa:?}");
    let n = public_jwk("rsa-a")["n"].as_str().unwrap().to_owned();
    assert!(
        shown.contains("RSA 2048-bit") && shown.contains("k1"),
        "{shown}"
    );
    assert!(!shown.contains(&n[..16]), "{shown}");
    for key in [pem_key("p256-a"), pem_key("ed25519-a")] {
        assert!(format!("{key:?}").len() < 200);
    }
}

#[test]
fn error_messages_are_distinct_and_static() {
    let all = [
        KeyError::EmptySecret,
        KeyError::SecretTooShort,
        KeyError::SecretLooksLikeKey,
        KeyError::NoPublicKey,
        KeyError::MalformedPem,
        KeyError::UnsupportedPem,
        KeyError::Certificate,
        KeyError::PrivateKey,
        KeyError::SymmetricJwk,
        KeyError::MalformedDer,
        KeyError::RsaTooSmall,
        KeyError::RsaTooLarge,
        KeyError::InvalidRsaKey,
        KeyError::UnsupportedKeyType,
        KeyError::UnsupportedCurve,
        KeyError::InvalidPoint,
        KeyError::WeakKey,
        KeyError::MalformedJwks,
        KeyError::TooLarge,
        KeyError::BadJwkParameter("n"),
        KeyError::BadJwkParameter("x"),
        KeyError::AlgorithmMismatch,
        KeyError::UnsupportedAlgorithm,
        KeyError::NotForSignatures,
        KeyError::NoUsableKey,
    ];
    let messages: std::collections::HashSet<_> = all.iter().map(KeyError::message).collect();
    assert_eq!(messages.len(), all.len());
    assert_eq!(
        KeyError::RsaTooSmall.to_string(),
        "RSA key is shorter than 2048 bits"
    );
}
