//! Public keys: reading them (DER from PEM blocks, or a JWK's parameters)
//! under this module's rules, the canonical JWK a runtime imports, the
//! rules a signature meets before it is checked, and the check a runtime
//! supplies ([`SignatureCheck`]).

use super::{
    curves, der, Algorithm, KeyError, KeyKind, Material, VerificationKey, ED25519_ALGORITHMS,
    MAX_RSA_BITS, MIN_RSA_BITS, P256_ALGORITHMS, RSA_ALGORITHMS,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::future::Future;

/// A public key that passed this module's checks, in the form a runtime
/// imports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    jwk: String,
    /// Bytes in a signature: the modulus's for RSA, 64 for the curves.
    signature_len: usize,
    /// The modulus size for RSA; the curve's for the others.
    bits: usize,
}

impl PublicKey {
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key as a public JWK (RFC 7517) with only the members that define
    /// it (`kty`, `n` and `e`; `kty`, `crv`, `x` and `y`; `kty`, `crv` and
    /// `x`), canonical: no leading zeros, unpadded base64url, in that order.
    /// WebCrypto imports it as it is, and equal keys have equal text.
    pub fn jwk(&self) -> &str {
        &self.jwk
    }

    /// What the key is, for `Debug`: its kind and, for RSA, its size.
    pub(super) fn describe(&self) -> String {
        match self.kind {
            KeyKind::Rsa => format!("RSA {}-bit public key", self.bits),
            KeyKind::P256 => "P-256 public key".to_owned(),
            KeyKind::Ed25519 | KeyKind::Hmac => "Ed25519 public key".to_owned(),
        }
    }

    fn rsa(n: &[u8], e: &[u8], bits: usize) -> Self {
        let jwk = format!(
            r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(n),
            URL_SAFE_NO_PAD.encode(e)
        );
        PublicKey {
            kind: KeyKind::Rsa,
            jwk,
            signature_len: n.len(),
            bits,
        }
    }

    fn p256(x: &[u8; 32], y: &[u8; 32]) -> Self {
        let jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        );
        PublicKey {
            kind: KeyKind::P256,
            jwk,
            signature_len: 64,
            bits: 256,
        }
    }

    fn ed25519(x: &[u8; 32]) -> Self {
        let jwk = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(x)
        );
        PublicKey {
            kind: KeyKind::Ed25519,
            jwk,
            signature_len: 64,
            bits: 255,
        }
    }

    /// The rules a signature must meet before any runtime sees it. JWS
    /// carries ECDSA as the fixed 64-byte r || s (RFC 7518 section 3.4), not
    /// DER, and RSA signatures at the modulus's length (RFC 8017 section
    /// 8.2.2). Ed25519 is verified strictly: a small-order R and a
    /// non-canonical S are refused, so one message has one valid signature.
    /// ECDSA's (r, s) and (r, n - s) both verify, and both are taken:
    /// OpenSSL, WebCrypto, Go and Java sign with either at random (half of
    /// the signatures an issuer makes are high-S), so refusing one would
    /// refuse half of every ES256 issuer's tokens. An ES256 token therefore
    /// has two spellings, and nothing in the relay may key on a token's text.
    pub(super) fn admits(&self, algorithm: Algorithm, signature: &[u8]) -> bool {
        self.kind.algorithms().contains(&algorithm)
            && signature.len() == self.signature_len
            && (algorithm != Algorithm::EdDsa || curves::ed25519_signature_is_strict(signature))
    }
}

/// Checks a public-key signature, for a runtime to supply. It is called
/// only with a key of this module, an algorithm the key allows and a
/// signature that [`PublicKey`]'s rules admit, and answers whether
/// `signature` is `key`'s `algorithm` signature over `signing_input`:
/// RS256 is RSASSA-PKCS1-v1_5 with SHA-256, PS256 RSASSA-PSS with SHA-256,
/// MGF1-SHA-256 and a 32-byte salt (RFC 7518 section 3.5), ES256 ECDSA on
/// P-256 with SHA-256, EdDSA Ed25519 (RFC 8032). Anything that goes wrong
/// is `false`.
pub trait SignatureCheck {
    fn verify(
        &self,
        key: &PublicKey,
        algorithm: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> impl Future<Output = bool>;
}

/// A DER SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7), dispatched on its
/// algorithm OID.
pub(super) fn from_spki(der: &[u8]) -> Result<VerificationKey, KeyError> {
    let spki = der::spki(der)?;
    match (spki.algorithm, spki.parameters) {
        (der::RSA_ENCRYPTION, der::Parameters::Null | der::Parameters::Absent) => {
            from_pkcs1(spki.key)
        }
        (der::EC_PUBLIC_KEY, der::Parameters::Oid(der::PRIME256V1)) => p256_key(spki.key),
        (der::EC_PUBLIC_KEY, der::Parameters::Oid(_)) => Err(KeyError::UnsupportedCurve),
        // RFC 8410 section 3: the parameters are absent.
        (der::ED25519, der::Parameters::Absent) => ed25519_key(spki.key),
        (der::RSA_ENCRYPTION | der::EC_PUBLIC_KEY | der::ED25519, _) => Err(KeyError::MalformedDer),
        (oid, _) if der::OTHER_8410_CURVES.contains(&oid) => Err(KeyError::UnsupportedCurve),
        _ => Err(KeyError::UnsupportedKeyType),
    }
}

/// A DER PKCS#1 RSAPublicKey (RFC 8017 appendix A.1.1).
pub(super) fn from_pkcs1(der: &[u8]) -> Result<VerificationKey, KeyError> {
    let (n, e) = der::rsa_public_key(der)?;
    rsa_key(n, e)
}

/// Largest RSA public exponent accepted: 2^33 - 1. Verification costs one
/// multiplication per exponent bit, so a huge exponent makes every token
/// slow ("RSADoS"); real keys use 65537.
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;

/// Big-endian modulus and exponent, leading zeros allowed. The modulus must
/// be odd and of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`]; the exponent odd and
/// from 3 to [`MAX_RSA_EXPONENT`].
pub(super) fn rsa_key(n: &[u8], e: &[u8]) -> Result<VerificationKey, KeyError> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = match n.first() {
        None => return Err(KeyError::InvalidRsaKey),
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
    };
    if bits < MIN_RSA_BITS {
        return Err(KeyError::RsaTooSmall);
    }
    if bits > MAX_RSA_BITS {
        return Err(KeyError::RsaTooLarge);
    }
    let exponent = match e.len() {
        1..=8 => e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        _ => return Err(KeyError::InvalidRsaKey),
    };
    let odd = |bytes: &[u8]| bytes.last().is_some_and(|b| b & 1 == 1);
    if !odd(n) || !odd(e) || !(3..=MAX_RSA_EXPONENT).contains(&exponent) {
        return Err(KeyError::InvalidRsaKey);
    }
    Ok(public(RSA_ALGORITHMS, PublicKey::rsa(n, e, bits)))
}

fn public(algorithms: &'static [Algorithm], key: PublicKey) -> VerificationKey {
    VerificationKey {
        kid: None,
        algorithms,
        material: Material::Public(key),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// A SEC1 point, compressed or not, that must lie on P-256.
pub(super) fn p256_key(sec1: &[u8]) -> Result<VerificationKey, KeyError> {
    let (x, y) = curves::p256_point(sec1).ok_or(KeyError::InvalidPoint)?;
    Ok(public(P256_ALGORITHMS, PublicKey::p256(&x, &y)))
}

/// A 32-byte compressed Edwards point. Small-order points are refused at
/// load: such a key "verifies" signatures anyone can make.
pub(super) fn ed25519_key(bytes: &[u8]) -> Result<VerificationKey, KeyError> {
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::InvalidPoint)?;
    curves::ed25519_key(bytes).map_err(|fault| match fault {
        curves::EdKeyFault::NotAPoint => KeyError::InvalidPoint,
        curves::EdKeyFault::SmallOrder => KeyError::WeakKey,
    })?;
    Ok(public(ED25519_ALGORITHMS, PublicKey::ed25519(bytes)))
}
