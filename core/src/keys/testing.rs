use super::*;
use p256::ecdsa::signature::{SignatureEncoding, Signer};
use rsa::BoxedUint;
use sha2::Sha256;

pub const PUBLIC_JWKS: &str = include_str!("../../tests/fixtures/public-keys.json");
pub const PRIVATE_JWKS: &str = include_str!("../../tests/fixtures/private-test-keys.json");
pub const JOSE_TOKENS: &str = include_str!("../../tests/fixtures/jose-tokens.json");

pub fn pem(name: &str) -> &'static str {
    match name {
        "rsa-a" => include_str!("../../tests/fixtures/rsa-a.pem"),
        "rsa-a.pkcs1" => include_str!("../../tests/fixtures/rsa-a.pkcs1.pem"),
        "rsa-b" => include_str!("../../tests/fixtures/rsa-b.pem"),
        "rsa-1024" => include_str!("../../tests/fixtures/rsa-1024.pem"),
        "p256-a" => include_str!("../../tests/fixtures/p256-a.pem"),
        "p256-b" => include_str!("../../tests/fixtures/p256-b.pem"),
        "p384" => include_str!("../../tests/fixtures/p384.pem"),
        "secp256k1" => include_str!("../../tests/fixtures/secp256k1.pem"),
        "ed25519-a" => include_str!("../../tests/fixtures/ed25519-a.pem"),
        "ed25519-b" => include_str!("../../tests/fixtures/ed25519-b.pem"),
        "ed448" => include_str!("../../tests/fixtures/ed448.pem"),
        _ => panic!("no fixture {name}"),
    }
}

/// Whether `key` verifies `signature`, with the native checks.
pub fn verifies(key: &VerificationKey, alg: Algorithm, input: &[u8], signature: &[u8]) -> bool {
    native::at_once(key.verify(alg, input, signature, &native::NativeSignatures))
}

/// The public JWK of a fixture key, as `jose` exported it (no kid).
pub fn public_jwk(name: &str) -> Value {
    let all: Value = serde_json::from_str(PUBLIC_JWKS).unwrap();
    all.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no JWK {name}"))
}

/// The one key of a PEM fixture.
pub fn pem_key(name: &str) -> VerificationKey {
    let mut keys = VerificationKey::from_pem(pem(name)).unwrap();
    assert_eq!(keys.len(), 1);
    keys.remove(0)
}

pub fn jose_token(name: &str) -> String {
    let all: Value = serde_json::from_str(JOSE_TOKENS).unwrap();
    all["tokens"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no token {name}"))
        .to_owned()
}

pub fn jose_hmac_secret() -> Vec<u8> {
    let all: Value = serde_json::from_str(JOSE_TOKENS).unwrap();
    all["hmac_secret"].as_str().unwrap().as_bytes().to_vec()
}

fn private_param(name: &str, param: &str) -> Vec<u8> {
    let all: Value = serde_json::from_str(PRIVATE_JWKS).unwrap();
    URL_SAFE_NO_PAD
        .decode(all[name][param].as_str().unwrap())
        .unwrap()
}

/// The JWS signature of `signing_input` by a fixture's private key, for
/// RS256, ES256 or EdDSA according to the key's type.
pub fn sign(name: &str, signing_input: &[u8]) -> Vec<u8> {
    if name.starts_with("rsa") {
        let n = private_param(name, "n");
        let bits = (n.len() * 8) as u32;
        let big =
            |param: &str| BoxedUint::from_be_slice(&private_param(name, param), bits).unwrap();
        let key = rsa::PrivateKey::from_components(
            big("n"),
            big("e"),
            big("d"),
            vec![big("p"), big("q")],
        )
        .unwrap();
        rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
            .sign(signing_input)
            .to_vec()
    } else if name.starts_with("p256") {
        let key = p256::ecdsa::SigningKey::from_slice(&private_param(name, "d")).unwrap();
        let sig: p256::ecdsa::Signature = key.sign(signing_input);
        sig.to_bytes().to_vec()
    } else if name.starts_with("ed25519") {
        let seed: [u8; 32] = private_param(name, "d").try_into().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        ed25519_dalek::Signer::sign(&key, signing_input)
            .to_bytes()
            .to_vec()
    } else {
        panic!("no signer for {name}")
    }
}

/// A compact JWS with this exact header text, signed by a fixture key.
pub fn token(header: &str, claims: &Value, key: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = sign(key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}
