//! Verification keys and the algorithms each one may check.
//!
//! A key is built once, from configuration (`JWT_SECRET`, a PEM
//! `JWT_PUBLIC_KEY`, a JWKS), and fixes its own algorithm allow-list from what
//! it is: an HMAC secret allows HS256/384/512, an RSA key RS256 and PS256, a
//! P-256 key ES256, an Ed25519 key EdDSA; a JWK's `alg` narrows that to one.
//! The token only ever picks among keys; it cannot make a key verify with an
//! algorithm outside its list. That is the whole defence against algorithm
//! confusion (an RSA public key's text used as an HMAC secret), so the list is
//! fixed at construction and the material and the list cannot disagree.
//!
//! Only public keys are accepted. A private key handed over by mistake (a PEM
//! `PRIVATE KEY`, a JWK with `d`) is refused rather than quietly reduced to its
//! public half, so that it gets noticed and rotated.
//!
//! Errors are [`KeyError`]s with static messages: no key material, and no
//! text of the configuration, can reach a log through them.
//!
//! HMAC is checked here. Public-key signatures are checked by the runtime
//! through [`SignatureCheck`] (WebCrypto in the Worker, whose native code is
//! faster than any wasm and costs the module nothing; [`native`] elsewhere),
//! while every rule about keys and signatures stays in this module: key
//! sizes and exponents, points on the curve and of large order, signature
//! lengths, canonical Ed25519 signatures. A runtime is handed only a key
//! that passed those rules, as a canonical public JWK, and a signature of
//! the right shape.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};
use std::fmt;

mod curves;
mod der;
#[cfg(feature = "native-verify")]
pub mod native;
mod public;

use public::{ed25519_key, from_pkcs1, from_spki, p256_key, rsa_key};
pub use public::{PublicKey, SignatureCheck};

/// Shortest HMAC secret accepted: 256 bits, the HS256 hash size (RFC 7518
/// section 3.2). An HMAC token is an offline guessing oracle for its secret:
/// one token from a proxy log or a `Referer` is enough to test candidates at
/// GPU speed, and a short or typed-in secret falls to that, with every
/// tenant's streams and the publish scope behind it. 32 random bytes do not.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Smallest RSA modulus accepted. NIST has disallowed shorter keys for
/// signatures since 2013; a 1024-bit modulus is within reach of a
/// well-funded attacker.
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted: verification cost grows with the square of
/// the size, and every token pays it.
pub const MAX_RSA_BITS: usize = 8192;

/// Largest JWKS document parsed. Real issuers publish a few kilobytes; the
/// bound keeps a misbehaving `JWKS_URL` from costing more than that.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Most entries parsed from one JWKS. A token without `kid` may be tried
/// against every key that allows its algorithm, so this also bounds the
/// signature checks one request can cause.
pub const MAX_JWKS_KEYS: usize = 64;

/// A JWS algorithm (RFC 7518, RFC 8037) that some key may be allowed to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Ps256,
    Es256,
    EdDsa,
}

impl Algorithm {
    pub const ALL: [Algorithm; 7] = [
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
        Algorithm::Rs256,
        Algorithm::Ps256,
        Algorithm::Es256,
        Algorithm::EdDsa,
    ];

    /// Exact, case-sensitive match on an `alg` value (RFC 7515 section
    /// 4.1.1): `hs256`, `none` and `None` are no algorithm at all.
    pub fn from_name(name: &str) -> Option<Self> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The registered JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// The one-element allow-list of a key restricted to this algorithm.
    /// Static, so that a key's list is never built from input.
    fn only(self) -> &'static [Algorithm] {
        match self {
            Algorithm::Hs256 => &[Algorithm::Hs256],
            Algorithm::Hs384 => &[Algorithm::Hs384],
            Algorithm::Hs512 => &[Algorithm::Hs512],
            Algorithm::Rs256 => &[Algorithm::Rs256],
            Algorithm::Ps256 => &[Algorithm::Ps256],
            Algorithm::Es256 => &[Algorithm::Es256],
            Algorithm::EdDsa => &[Algorithm::EdDsa],
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const HMAC_ALGORITHMS: &[Algorithm] = &[Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512];
const RSA_ALGORITHMS: &[Algorithm] = &[Algorithm::Rs256, Algorithm::Ps256];
const P256_ALGORITHMS: &[Algorithm] = &[Algorithm::Es256];
const ED25519_ALGORITHMS: &[Algorithm] = &[Algorithm::EdDsa];

/// What kind of key material a [`VerificationKey`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Hmac,
    Rsa,
    P256,
    Ed25519,
}

impl KeyKind {
    /// Every algorithm this kind of key can verify; a key's allow-list is
    /// this or one member of it.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyKind::Hmac => HMAC_ALGORITHMS,
            KeyKind::Rsa => RSA_ALGORITHMS,
            KeyKind::P256 => P256_ALGORITHMS,
            KeyKind::Ed25519 => ED25519_ALGORITHMS,
        }
    }
}

#[derive(Clone)]
enum Material {
    Hmac(Vec<u8>),
    Public(PublicKey),
}

/// One key a token may be verified with: its optional `kid`, the algorithms
/// it allows, and its material (a secret or a public key).
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithms: &'static [Algorithm],
    material: Material,
}

/// Shows the kind, size and allow-list; never the secret or the key itself.
impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
        let material = match &self.material {
            Material::Hmac(secret) => format!("HMAC secret [{} bytes]", secret.len()),
            Material::Public(key) => key.describe(),
        };
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &names)
            .field("material", &format_args!("{material}"))
            .finish()
    }
}

/// Why a key was refused. Messages are static so that no key material and
/// no configuration text can reach a log through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    EmptySecret,
    /// The HMAC secret is shorter than [`MIN_HMAC_SECRET_BYTES`].
    SecretTooShort,
    /// The HMAC secret is a PEM block or a JWK: a public key configured as a
    /// secret would let anyone who has the public key sign tokens.
    SecretLooksLikeKey,
    NoPublicKey,
    MalformedPem,
    /// A PEM block of a kind that is not a public key (parameters, CSRs...).
    UnsupportedPem,
    Certificate,
    PrivateKey,
    /// A symmetric (`oct`) JWK: its `k` is a secret.
    SymmetricJwk,
    MalformedDer,
    RsaTooSmall,
    RsaTooLarge,
    InvalidRsaKey,
    UnsupportedKeyType,
    UnsupportedCurve,
    InvalidPoint,
    WeakKey,
    MalformedJwks,
    TooLarge,
    /// A required JWK parameter is missing, not a string, or not canonical
    /// base64url of the right length. Carries the parameter name.
    BadJwkParameter(&'static str),
    /// A JWK `alg` that is not one of the algorithms its key type can verify.
    AlgorithmMismatch,
    /// A JWK `alg` that fits its key type but is not implemented (RS512...).
    UnsupportedAlgorithm,
    /// A JWK whose `use` or `key_ops` says it is not for verifying signatures.
    NotForSignatures,
    NoUsableKey,
}

impl KeyError {
    pub fn message(&self) -> &'static str {
        match self {
            KeyError::EmptySecret => "HMAC secret is empty",
            KeyError::SecretTooShort => {
                "HMAC secret is shorter than 32 bytes; use 32 or more random bytes (openssl rand -hex 32)"
            }
            KeyError::SecretLooksLikeKey => {
                "HMAC secret looks like a PEM or JWK key; configure public keys as keys, not as a secret"
            }
            KeyError::NoPublicKey => "no PEM public key block found",
            KeyError::MalformedPem => "PEM block is malformed",
            KeyError::UnsupportedPem => {
                "PEM block is not a PUBLIC KEY or RSA PUBLIC KEY"
            }
            KeyError::Certificate => {
                "certificates are not accepted; give the PUBLIC KEY block (openssl x509 -pubkey -noout)"
            }
            KeyError::PrivateKey => {
                "a private key was given; configure only the public key, and rotate the private key if it was shared"
            }
            KeyError::SymmetricJwk => {
                "JWKS contains a symmetric (oct) key, which is a secret; use the HMAC secret setting instead"
            }
            KeyError::MalformedDer => "public key DER structure is malformed",
            KeyError::RsaTooSmall => "RSA key is shorter than 2048 bits",
            KeyError::RsaTooLarge => "RSA key is longer than 8192 bits",
            KeyError::InvalidRsaKey => "RSA public key is invalid (modulus or exponent)",
            KeyError::UnsupportedKeyType => {
                "key type is not supported (RSA, EC P-256 and Ed25519 are)"
            }
            KeyError::UnsupportedCurve => {
                "curve is not supported (P-256 and Ed25519 are)"
            }
            KeyError::InvalidPoint => "public key is not a valid curve point",
            KeyError::WeakKey => "Ed25519 public key has small order",
            KeyError::MalformedJwks => {
                "JWKS must be a JSON object with a keys array, or a single JWK"
            }
            KeyError::TooLarge => "JWKS is too large or has too many keys",
            KeyError::BadJwkParameter(name) => match *name {
                "kty" => "JWK kty is missing or not a string",
                "crv" => "JWK crv is missing or not a string",
                "n" => "JWK n is missing or not base64url",
                "e" => "JWK e is missing or not base64url",
                "x" => "JWK x is missing, not base64url, or of the wrong length",
                "y" => "JWK y is missing, not base64url, or of the wrong length",
                "kid" => "JWK kid is not a string",
                "alg" => "JWK alg is not a string",
                "use" => "JWK use is not a string",
                "key_ops" => "JWK key_ops is not an array of strings",
                _ => "JWK has a parameter of the wrong type",
            },
            KeyError::AlgorithmMismatch => "JWK alg does not fit its key type",
            KeyError::UnsupportedAlgorithm => "JWK alg is not supported",
            KeyError::NotForSignatures => "JWK use or key_ops is not signature verification",
            KeyError::NoUsableKey => "JWKS has no usable signature verification key",
        }
    }

    /// Whether a JWKS may skip a key that fails this way and go on with the
    /// others. Keys of kinds this relay does not implement, or not meant for
    /// signatures, are expected in issuers' sets and are not mistakes.
    fn is_unsupported(&self) -> bool {
        matches!(
            self,
            KeyError::UnsupportedKeyType
                | KeyError::UnsupportedCurve
                | KeyError::UnsupportedAlgorithm
                | KeyError::NotForSignatures
        )
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for KeyError {}

/// A JWKS entry that was left out, and why; for the Worker's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// The entry's `kid` when it had a string one (a public identifier).
    pub kid: Option<String>,
    pub reason: KeyError,
}

impl VerificationKey {
    /// An HMAC secret, allowed HS256, HS384 and HS512.
    ///
    /// Refuses an empty secret (which anyone can sign with), a secret that
    /// is really a PEM or JWK key (a public key configured as the HMAC secret
    /// is exactly the key confusion attack, performed by the operator), and
    /// a secret shorter than [`MIN_HMAC_SECRET_BYTES`].
    pub fn hmac(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        if looks_like_key(secret) {
            return Err(KeyError::SecretLooksLikeKey);
        }
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(KeyError::SecretTooShort);
        }
        Ok(VerificationKey {
            kid: None,
            algorithms: HMAC_ALGORITHMS,
            material: Material::Hmac(secret.to_vec()),
        })
    }

    /// Every `PUBLIC KEY` (SubjectPublicKeyInfo) and `RSA PUBLIC KEY`
    /// (PKCS#1) block in `pem`, in order. Text around the blocks is ignored,
    /// and a literal `\n` (as pasted into a one-line environment variable)
    /// counts as a newline. Any block that is not an acceptable public key
    /// fails the whole call: each block was configured on purpose.
    pub fn from_pem(pem: &str) -> Result<Vec<Self>, KeyError> {
        let text = pem.replace("\\n", "\n");
        let mut keys = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("-----BEGIN ") {
            let after_begin = &rest[start + "-----BEGIN ".len()..];
            let label_end = after_begin.find("-----").ok_or(KeyError::MalformedPem)?;
            let label = &after_begin[..label_end];
            if label.contains('\n') {
                return Err(KeyError::MalformedPem);
            }
            let body_and_rest = &after_begin[label_end + "-----".len()..];
            let end_marker = format!("-----END {label}-----");
            let body_end = body_and_rest
                .find(&end_marker)
                .ok_or(KeyError::MalformedPem)?;
            let body = &body_and_rest[..body_end];
            rest = &body_and_rest[body_end + end_marker.len()..];
            // The END line ends there (RFC 7468). Text running on from it,
            // as in `-----END PUBLIC KEY-----BEGIN PUBLIC KEY-----`, would
            // lend the next block's dashes to this one and hide that block.
            if rest.starts_with(|c: char| !c.is_ascii_whitespace()) {
                return Err(KeyError::MalformedPem);
            }

            // Decide by label before decoding, so that a private key is
            // named as such even when its body is encrypted or damaged.
            let kind = match label {
                "PUBLIC KEY" => PemKind::Spki,
                "RSA PUBLIC KEY" => PemKind::Pkcs1,
                l if l.contains("PRIVATE KEY") => return Err(KeyError::PrivateKey),
                l if l.contains("CERTIFICATE") => return Err(KeyError::Certificate),
                _ => return Err(KeyError::UnsupportedPem),
            };
            let der = pem_body(body)?;
            keys.push(match kind {
                PemKind::Spki => from_spki(&der)?,
                PemKind::Pkcs1 => from_pkcs1(&der)?,
            });
        }
        if keys.is_empty() {
            return Err(KeyError::NoPublicKey);
        }
        Ok(keys)
    }

    /// The usable keys of a JWKS (RFC 7517: `{"keys": [...]}`, or a single
    /// JWK object). See [`VerificationKey::from_jwks_with_skipped`].
    pub fn from_jwks(json: &str) -> Result<Vec<Self>, KeyError> {
        Self::from_jwks_with_skipped(json).map(|(keys, _)| keys)
    }

    /// The usable keys of a JWKS, and the entries left out with the reason.
    ///
    /// An issuer's set may hold keys this relay cannot use (other curves,
    /// encryption keys, a malformed entry), and one such key must not take
    /// down verification with the others; so entries are skipped one by one,
    /// and the call fails only when no usable key remains (with the reason
    /// of the first entry that was a mistake rather than merely unsupported,
    /// as that is the one to fix; else the first entry's). Two things fail
    /// the whole set instead, because they mean secret material was put where
    /// public keys belong: a private key (`d` and the other RSA private
    /// parameters) and a symmetric `oct` key.
    pub fn from_jwks_with_skipped(json: &str) -> Result<(Vec<Self>, Vec<SkippedKey>), KeyError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(KeyError::TooLarge);
        }
        let doc: Value = serde_json::from_str(json).map_err(|_| KeyError::MalformedJwks)?;
        let entries: Vec<&Map<String, Value>> = match &doc {
            Value::Object(obj) if obj.contains_key("keys") => match obj.get("keys") {
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|entry| entry.as_object().ok_or(KeyError::MalformedJwks))
                    .collect::<Result<_, _>>()?,
                _ => return Err(KeyError::MalformedJwks),
            },
            Value::Object(obj) if obj.contains_key("kty") => vec![obj],
            _ => return Err(KeyError::MalformedJwks),
        };
        if entries.len() > MAX_JWKS_KEYS {
            return Err(KeyError::TooLarge);
        }
        for jwk in &entries {
            refuse_secret_material(jwk)?;
        }

        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for jwk in entries {
            match from_jwk_object(jwk) {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(SkippedKey {
                    kid: jwk.get("kid").and_then(Value::as_str).map(str::to_owned),
                    reason,
                }),
            }
        }
        if keys.is_empty() {
            return Err(skipped
                .iter()
                .map(|s| s.reason)
                .find(|r| !r.is_unsupported())
                .or(skipped.first().map(|s| s.reason))
                .unwrap_or(KeyError::NoUsableKey));
        }
        Ok((keys, skipped))
    }

    /// One JWK, which must be usable: unlike a set, nothing is skipped.
    pub fn from_jwk(json: &str) -> Result<Self, KeyError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(KeyError::TooLarge);
        }
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(jwk)) => {
                refuse_secret_material(&jwk)?;
                from_jwk_object(&jwk)
            }
            _ => Err(KeyError::MalformedJwks),
        }
    }

    /// Names the key, for tokens that select it by `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Narrows the allow-list to one algorithm, which must already be in it.
    pub fn restricted_to(mut self, algorithm: Algorithm) -> Result<Self, KeyError> {
        if !self.allows(algorithm) {
            return Err(KeyError::AlgorithmMismatch);
        }
        self.algorithms = algorithm.only();
        Ok(self)
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn algorithms(&self) -> &[Algorithm] {
        self.algorithms
    }

    pub fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }

    pub fn kind(&self) -> KeyKind {
        match &self.material {
            Material::Hmac(_) => KeyKind::Hmac,
            Material::Public(key) => key.kind(),
        }
    }

    /// The public key, for a runtime to import; `None` for an HMAC secret.
    pub fn public_key(&self) -> Option<&PublicKey> {
        match &self.material {
            Material::Hmac(_) => None,
            Material::Public(key) => Some(key),
        }
    }

    /// Whether `signature` is this key's `algorithm` signature over
    /// `signing_input`. An algorithm outside the allow-list is `false`
    /// before any material is touched; the match on material then makes a
    /// second, independent refusal of any pairing that does not belong, and
    /// a public key's own rules a third, before `signatures` is asked.
    pub(crate) async fn verify(
        &self,
        algorithm: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
        signatures: &impl SignatureCheck,
    ) -> bool {
        if !self.allows(algorithm) {
            return false;
        }
        match (&self.material, algorithm) {
            (Material::Hmac(secret), Algorithm::Hs256) => {
                hmac_verify::<Hmac<Sha256>>(secret, signing_input, signature)
            }
            (Material::Hmac(secret), Algorithm::Hs384) => {
                hmac_verify::<Hmac<Sha384>>(secret, signing_input, signature)
            }
            (Material::Hmac(secret), Algorithm::Hs512) => {
                hmac_verify::<Hmac<Sha512>>(secret, signing_input, signature)
            }
            (Material::Public(key), _) if key.admits(algorithm, signature) => {
                signatures
                    .verify(key, algorithm, signing_input, signature)
                    .await
            }
            _ => false,
        }
    }
}

/// Signs `signing_input` with an HMAC secret. The crate's one signing
/// operation: the bridge and the dev tooling mint HS256 tokens.
pub(crate) fn hmac_sign(secret: &[u8], signing_input: &[u8]) -> Vec<u8> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes keys of any length")
        .chain_update(signing_input)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Constant-time comparison, via the `Mac` trait.
fn hmac_verify<M: Mac + KeyInit>(secret: &[u8], signing_input: &[u8], signature: &[u8]) -> bool {
    <M as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes keys of any length")
        .chain_update(signing_input)
        .verify_slice(signature)
        .is_ok()
}

fn looks_like_key(secret: &[u8]) -> bool {
    let text = String::from_utf8_lossy(secret);
    let trimmed = text.trim_start();
    trimmed.contains("-----BEGIN ") || (trimmed.starts_with('{') && trimmed.contains("\"kty\""))
}

enum PemKind {
    Spki,
    Pkcs1,
}

/// The base64 body of a PEM block (RFC 7468: standard alphabet, padded,
/// whitespace between characters allowed).
fn pem_body(body: &str) -> Result<Vec<u8>, KeyError> {
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(KeyError::MalformedPem);
    }
    STANDARD.decode(compact).map_err(|_| KeyError::MalformedPem)
}

/// Private RSA, EC and OKP parameters (RFC 7518 section 6), and the
/// symmetric key of an `oct` JWK.
fn refuse_secret_material(jwk: &Map<String, Value>) -> Result<(), KeyError> {
    if jwk.get("kty").and_then(Value::as_str) == Some("oct") || jwk.contains_key("k") {
        return Err(KeyError::SymmetricJwk);
    }
    if ["d", "p", "q", "dp", "dq", "qi", "oth"]
        .iter()
        .any(|name| jwk.contains_key(*name))
    {
        return Err(KeyError::PrivateKey);
    }
    Ok(())
}

/// One JWK object whose secret material has already been refused.
fn from_jwk_object(jwk: &Map<String, Value>) -> Result<VerificationKey, KeyError> {
    let kid = optional_str(jwk, "kid")?;
    if optional_str(jwk, "use")?.is_some_and(|u| u != "sig") {
        return Err(KeyError::NotForSignatures);
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) => {
            if ops.iter().any(|op| !op.is_string()) {
                return Err(KeyError::BadJwkParameter("key_ops"));
            }
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return Err(KeyError::NotForSignatures);
            }
        }
        Some(_) => return Err(KeyError::BadJwkParameter("key_ops")),
    }
    let alg = optional_str(jwk, "alg")?;

    let key = match required_str(jwk, "kty")? {
        "RSA" => rsa_key(&b64_param(jwk, "n")?, &b64_param(jwk, "e")?)?,
        "EC" => match required_str(jwk, "crv")? {
            "P-256" => {
                let mut sec1 = vec![0x04];
                sec1.extend(fixed_b64_param(jwk, "x", 32)?);
                sec1.extend(fixed_b64_param(jwk, "y", 32)?);
                p256_key(&sec1)?
            }
            _ => return Err(KeyError::UnsupportedCurve),
        },
        "OKP" => match required_str(jwk, "crv")? {
            "Ed25519" => ed25519_key(&fixed_b64_param(jwk, "x", 32)?)?,
            _ => return Err(KeyError::UnsupportedCurve),
        },
        _ => return Err(KeyError::UnsupportedKeyType),
    };

    let key = match alg {
        None => key,
        Some(name) => match Algorithm::from_name(name) {
            Some(algorithm) if key.allows(algorithm) => key.restricted_to(algorithm)?,
            Some(_) => return Err(KeyError::AlgorithmMismatch),
            None if unimplemented_alg_fits(key.kind(), name) => {
                return Err(KeyError::UnsupportedAlgorithm)
            }
            None => return Err(KeyError::AlgorithmMismatch),
        },
    };
    Ok(match kid {
        Some(kid) => key.with_kid(kid),
        None => key,
    })
}

/// Registered JWS algorithms that fit a key type but are not implemented:
/// such a key is skipped as unsupported rather than refused as inconsistent.
fn unimplemented_alg_fits(kind: KeyKind, alg: &str) -> bool {
    match kind {
        KeyKind::Rsa => matches!(alg, "RS384" | "RS512" | "PS384" | "PS512"),
        // RFC 9864's fully specified name for EdDSA over Ed25519.
        KeyKind::Ed25519 => alg == "Ed25519",
        KeyKind::Hmac | KeyKind::P256 => false,
    }
}

fn optional_str<'a>(
    jwk: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, KeyError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyError::BadJwkParameter(name)),
    }
}

fn required_str<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, KeyError> {
    optional_str(jwk, name)?.ok_or(KeyError::BadJwkParameter(name))
}

/// A base64url parameter, strictly (RFC 7518 section 6: unpadded, url-safe).
fn b64_param(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(required_str(jwk, name)?)
        .map_err(|_| KeyError::BadJwkParameter(name))
}

/// A coordinate, which RFC 7518 section 6.2.1.2 requires at its full length.
fn fixed_b64_param(
    jwk: &Map<String, Value>,
    name: &'static str,
    len: usize,
) -> Result<Vec<u8>, KeyError> {
    let bytes = b64_param(jwk, name)?;
    if bytes.len() != len {
        return Err(KeyError::BadJwkParameter(name));
    }
    Ok(bytes)
}

/// Test keys from `tests/fixtures` (made once with openssl, see
/// `make-keys.sh`) and signers for them, shared by the unit tests of this
/// crate. Signing is deterministic for all three (PKCS#1 v1.5, RFC 6979
/// ECDSA, Ed25519), so tests need no randomness; PS256 tokens come from the
/// `jose` fixtures instead.
#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
