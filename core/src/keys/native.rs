//! Public-key signature checks in Rust, for hosts without WebCrypto: the
//! native bridge's and this crate's tests and benchmarks. The Worker checks
//! with WebCrypto instead, and builds without this module (feature
//! `native-verify`), which keeps the big-integer and curve crates out of its
//! wasm.

use super::{Algorithm, KeyKind, PublicKey, SignatureCheck, MAX_RSA_BITS, MIN_RSA_BITS};
use crate::token::{Claims, JwtVerifier, TokenError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier as _;
use rsa::{BoxedUint, Pkcs1v15Sign, Pss};
use sha2::{Digest, Sha256};
use std::future::{ready, Future};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// [`SignatureCheck`] with the RustCrypto and dalek crates. Every check is
/// done before it returns, so its futures are always ready.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeSignatures;

impl SignatureCheck for NativeSignatures {
    fn verify(
        &self,
        key: &PublicKey,
        algorithm: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> impl Future<Output = bool> {
        ready(check(key, algorithm, signing_input, signature).unwrap_or(false))
    }
}

/// A token check with [`NativeSignatures`], which never waits.
pub trait VerifyNatively {
    /// [`JwtVerifier::verify`] without extra keys.
    fn verify_now(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        self.verify_now_with(token, &[], now_unix)
    }

    /// [`JwtVerifier::verify`].
    fn verify_now_with(
        &self,
        token: &str,
        extra_keys: &[super::VerificationKey],
        now_unix: u64,
    ) -> Result<Claims, TokenError>;
}

impl VerifyNatively for JwtVerifier {
    fn verify_now_with(
        &self,
        token: &str,
        extra_keys: &[super::VerificationKey],
        now_unix: u64,
    ) -> Result<Claims, TokenError> {
        at_once(self.verify(token, extra_keys, now_unix, &NativeSignatures))
    }
}

/// The outcome of a check that waits only on [`NativeSignatures`].
pub(crate) fn at_once<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => unreachable!("native signature checks are always ready"),
    }
}

fn param(jwk: &serde_json::Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok()
}

fn check(
    key: &PublicKey,
    algorithm: Algorithm,
    signing_input: &[u8],
    signature: &[u8],
) -> Option<bool> {
    let jwk: serde_json::Value = serde_json::from_str(key.jwk()).ok()?;
    Some(match (key.kind(), algorithm) {
        (KeyKind::Rsa, Algorithm::Rs256 | Algorithm::Ps256) => {
            let big = |bytes: Vec<u8>| {
                let bits = (bytes.len() * 8) as u32;
                BoxedUint::from_be_slice(&bytes, bits).ok()
            };
            let (n, e) = (big(param(&jwk, "n")?)?, big(param(&jwk, "e")?)?);
            let rsa =
                rsa::PublicKey::new_with_size_limits(n, e, MIN_RSA_BITS..=MAX_RSA_BITS).ok()?;
            let digest = Sha256::digest(signing_input);
            if algorithm == Algorithm::Rs256 {
                rsa.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
            } else {
                rsa.verify(Pss::<Sha256>::new(), &digest, signature)
            }
            .is_ok()
        }
        (KeyKind::P256, Algorithm::Es256) => {
            let sec1 = [&[0x04][..], &param(&jwk, "x")?, &param(&jwk, "y")?].concat();
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).ok()?;
            let signature = p256::ecdsa::Signature::from_slice(signature).ok()?;
            key.verify(signing_input, &signature).is_ok()
        }
        (KeyKind::Ed25519, Algorithm::EdDsa) => {
            let x: [u8; 32] = param(&jwk, "x")?.try_into().ok()?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x).ok()?;
            let signature = ed25519_dalek::Signature::from_slice(signature).ok()?;
            key.verify_strict(signing_input, &signature).is_ok()
        }
        _ => false,
    })
}
