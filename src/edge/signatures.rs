//! The Rust side of `signatures.js`: public-key signatures checked by
//! WebCrypto, whose native code is faster than wasm and adds nothing to the
//! module. Every rule about keys and signatures stays in
//! `edgestream_core::keys`; this only carries the check across.

use edgestream_core::keys::{Algorithm, PublicKey, SignatureCheck};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/src/edge/signatures.js")]
extern "C" {
    /// Resolves to `true` only when WebCrypto verified the signature.
    #[wasm_bindgen(js_name = verifySignature)]
    fn verify_signature(
        algorithm: &str,
        jwk: &str,
        signature: &[u8],
        signing_input: &[u8],
    ) -> js_sys::Promise;
}

/// [`SignatureCheck`] by WebCrypto.
pub struct WebCrypto;

impl SignatureCheck for WebCrypto {
    async fn verify(
        &self,
        key: &PublicKey,
        algorithm: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> bool {
        let verdict = verify_signature(algorithm.name(), key.jwk(), signature, signing_input);
        JsFuture::from(verdict)
            .await
            .is_ok_and(|answer| answer.as_bool() == Some(true))
    }
}
