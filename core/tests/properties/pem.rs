//! PEM public keys.

use crate::checks::fixtures::{jose_token, PEMS};
use crate::checks::pem::check_text;
use crate::checks::token::NOW;
use crate::config::config;
use crate::strategies::{hostile, mutated};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use edgestream_core::keys::native::VerifyNatively;
use edgestream_core::keys::{KeyError, VerificationKey};
use edgestream_core::token::{JwtVerifier, VerifierConfig};
use proptest::prelude::*;

/// A fixture's label and DER body.
fn parts(pem: &str) -> (&str, Vec<u8>) {
    let label = pem
        .trim()
        .strip_prefix("-----BEGIN ")
        .and_then(|r| r.split("-----").next())
        .expect("a PEM block");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    (label, STANDARD.decode(body).expect("fixture base64"))
}

/// A block as an operator might paste it: any line width, CRLF or a
/// literal `\n`, text around it.
fn wrap(label: &str, der: &[u8], width: usize, newline: &str, before: &str, after: &str) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "{before}-----BEGIN {label}-----{newline}{}{newline}-----END {label}-----{after}",
        lines.join(newline)
    )
}

fn fixture() -> impl Strategy<Value = (&'static str, &'static str)> {
    proptest::sample::select(&PEMS[..])
}

/// What a key verifies among the third-party tokens: how two loads of a key
/// are compared without access to its material.
fn verifies(key: VerificationKey) -> Vec<bool> {
    let verifier = JwtVerifier::new(VerifierConfig {
        keys: vec![key],
        ..VerifierConfig::default()
    });
    ["RS256", "PS256", "ES256", "EdDSA"]
        .iter()
        .map(|name| verifier.verify_now(&jose_token(name), NOW).is_ok())
        .collect()
}

fn loaded(
    pem: &str,
) -> Result<Vec<(edgestream_core::keys::KeyKind, Vec<bool>)>, edgestream_core::keys::KeyError> {
    VerificationKey::from_pem(pem)
        .map(|keys| keys.into_iter().map(|k| (k.kind(), verifies(k))).collect())
}

proptest! {
    #![proptest_config(config(12))]

    /// However a fixture is wrapped, it loads as the same key (or is
    /// refused for the same reason).
    #[test]
    fn rewrapping_changes_nothing(
        (_, pem) in fixture(),
        width in 1..100usize,
        newline in proptest::sample::select(&["\n", "\r\n", "\\n", "\n\n"][..]),
        before in prop_oneof![Just(String::new()), "[a-zA-Z =:\n]{1,20}\n"],
        after in prop_oneof![Just(String::new()), "\n[a-zA-Z =:\n]{1,20}"],
    ) {
        let (label, der) = parts(pem);
        let rewrapped = wrap(label, &der, width, newline, &before, &after);
        prop_assert_eq!(loaded(&rewrapped), loaded(pem));
        check_text(&rewrapped);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Edited PEM text (labels, markers, body) never loads anything but
    /// public keys from public-key blocks.
    #[test]
    fn edited_pem_text(pem in mutated(fixture().prop_map(|(_, pem)| pem.to_owned()))) {
        check_text(&pem);
    }

    /// DER that is damaged (a byte changed, cut short, extended) is refused
    /// or loads as a well-formed public key, never panics.
    #[test]
    fn damaged_der(
        (_, pem) in fixture(),
        at in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
        how in 0..3u8,
    ) {
        let (label, mut der) = parts(pem);
        let i = at.index(der.len());
        match how {
            0 => der[i] = byte,
            1 => der.truncate(i),
            _ => der.insert(i, byte),
        }
        check_text(&wrap(label, &der, 64, "\n", "", "\n"));
    }

    /// A private key, a certificate or anything else that is not a public
    /// key block never loads, whatever its body.
    #[test]
    fn other_blocks_never_load(
        label in prop_oneof![
            proptest::sample::select(&["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "CERTIFICATE", "public key", "Public Key", "PUBLIC  KEY", "EC PARAMETERS"][..]).prop_map(str::to_owned),
            hostile(3),
        ],
        (_, pem) in fixture(),
    ) {
        let (_, der) = parts(pem);
        let block = wrap(&label, &der, 64, "\n", "", "\n");
        if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
            prop_assert!(VerificationKey::from_pem(&block).is_err(), "{:?}", block);
        }
        check_text(&block);
    }
}

/// Found by `edited_pem_text` (seed 1, scale 100): blocks whose END line
/// ran on into the next BEGIN line, sharing its dashes, loaded every other
/// block and silently dropped the rest. Such text is now malformed.
#[test]
fn a_block_running_on_from_an_end_line_is_refused() {
    let (_, block) = PEMS[8];
    let block = block.trim_end();
    let run_on = [block; 4].join("").replace("----------", "-----");
    assert_eq!(run_on.matches("-----BEGIN ").count(), 4);
    assert_eq!(
        VerificationKey::from_pem(&run_on).err(),
        Some(KeyError::MalformedPem)
    );
    check_text(&run_on);
    let separated = [block; 4].join("\n");
    assert_eq!(
        VerificationKey::from_pem(&separated).map(|k| k.len()),
        Ok(4)
    );
}
