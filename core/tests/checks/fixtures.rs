//! The committed test keys and third-party tokens (`tests/fixtures`, made
//! with openssl and the npm `jose` package, see `make-keys.sh`).

use serde_json::Value;

const PUBLIC_JWKS: &str = include_str!("../fixtures/public-keys.json");
const JOSE_TOKENS: &str = include_str!("../fixtures/jose-tokens.json");

/// Every PEM fixture by name: public keys of each kind, including the ones
/// the relay refuses (RSA-1024, P-384, secp256k1, Ed448).
pub const PEMS: [(&str, &str); 11] = [
    ("rsa-a", include_str!("../fixtures/rsa-a.pem")),
    ("rsa-a.pkcs1", include_str!("../fixtures/rsa-a.pkcs1.pem")),
    ("rsa-b", include_str!("../fixtures/rsa-b.pem")),
    ("rsa-1024", include_str!("../fixtures/rsa-1024.pem")),
    ("p256-a", include_str!("../fixtures/p256-a.pem")),
    ("p256-b", include_str!("../fixtures/p256-b.pem")),
    ("p384", include_str!("../fixtures/p384.pem")),
    ("secp256k1", include_str!("../fixtures/secp256k1.pem")),
    ("ed25519-a", include_str!("../fixtures/ed25519-a.pem")),
    ("ed25519-b", include_str!("../fixtures/ed25519-b.pem")),
    ("ed448", include_str!("../fixtures/ed448.pem")),
];

/// The public JWK of a key, by fixture name.
pub fn jwk(name: &str) -> Value {
    let all: Value = serde_json::from_str(PUBLIC_JWKS).expect("fixture JSON");
    all.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no JWK {name}"))
}

/// Names of every public JWK fixture.
pub fn jwk_names() -> Vec<String> {
    let all: Value = serde_json::from_str(PUBLIC_JWKS).expect("fixture JSON");
    all.as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

/// A token signed by `jose`, by fixture name.
pub fn jose_token(name: &str) -> String {
    let all: Value = serde_json::from_str(JOSE_TOKENS).expect("fixture JSON");
    all["tokens"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no token {name}"))
        .to_owned()
}

/// The secret the `jose` HMAC tokens are signed with.
pub fn jose_hmac_secret() -> Vec<u8> {
    let all: Value = serde_json::from_str(JOSE_TOKENS).expect("fixture JSON");
    all["hmac_secret"]
        .as_str()
        .expect("a string")
        .as_bytes()
        .to_vec()
}
