//! PEM public keys (`JWT_PUBLIC_KEY`).

use edgestream_core::keys::{KeyKind, VerificationKey};

/// Any text: what loads came from `PUBLIC KEY` and `RSA PUBLIC KEY` blocks
/// only, one key per block in order, each a public key with the full
/// allow-list of its kind and no `kid`; a private key, a certificate or a
/// secret never loads as a key.
pub fn check_text(pem: &str) {
    let Ok(keys) = VerificationKey::from_pem(pem) else {
        return;
    };
    // A literal `\n` counts as a line break, as in a one-line variable.
    let text = pem.replace("\\n", "\n");
    let labels: Vec<&str> = text
        .split("-----BEGIN ")
        .skip(1)
        .map(|rest| rest.split("-----").next().unwrap_or_default())
        .collect();
    assert_eq!(labels.len(), keys.len(), "{pem:?}");
    for (label, key) in labels.iter().zip(&keys) {
        match *label {
            "PUBLIC KEY" => assert_ne!(key.kind(), KeyKind::Hmac),
            "RSA PUBLIC KEY" => assert_eq!(key.kind(), KeyKind::Rsa),
            other => panic!("a {other:?} block loaded as a key"),
        }
        assert_eq!(key.algorithms(), key.kind().algorithms());
        assert_eq!(key.kid(), None);
    }
}
