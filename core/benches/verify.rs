//! Cost of verifying one token natively, per algorithm: signature and
//! claims, as the bridge and other native hosts pay it. The Worker pays
//! the HMAC rows; it hands public-key signatures to WebCrypto. A plain
//! `std::time::Instant` loop: `cargo bench -p edgestream-core` (which uses the
//! workspace's size-optimised release profile, as the Worker does), or with
//! `CARGO_PROFILE_BENCH_OPT_LEVEL=3` for speed-optimised code.
//!
//! The tokens are the `jose`-signed fixtures; each verifier holds only the
//! key the token needs, so the numbers are one signature check each.

use edgestream_core::keys::native::VerifyNatively;
use edgestream_core::keys::VerificationKey;
use edgestream_core::token::{JwtVerifier, VerifierConfig};
use serde_json::Value;
use std::hint::black_box;
use std::time::{Duration, Instant};

const NOW: u64 = 1_700_000_000;
const TOKENS: &str = include_str!("../tests/fixtures/jose-tokens.json");

fn verifier(secret: &[u8], pem: Option<&str>) -> JwtVerifier {
    JwtVerifier::new(VerifierConfig {
        secret: secret.to_vec(),
        keys: pem.map_or_else(Vec::new, |pem| VerificationKey::from_pem(pem).unwrap()),
        ..VerifierConfig::default()
    })
}

/// Median over batches of the time per call, in microseconds. Under
/// `cargo test --all-targets` (no `--bench` argument) each case runs once,
/// as a smoke test.
fn measure(mut f: impl FnMut()) -> f64 {
    if !std::env::args().any(|arg| arg == "--bench") {
        let start = Instant::now();
        f();
        return start.elapsed().as_secs_f64() * 1e6;
    }
    // Warm up, and size a batch to about 50 ms.
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < Duration::from_millis(50) {
        f();
        calls += 1;
    }
    let mut per_call: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

fn main() {
    let fixtures: Value = serde_json::from_str(TOKENS).unwrap();
    let token = |name: &str| fixtures["tokens"][name].as_str().unwrap().to_owned();
    let secret = fixtures["hmac_secret"]
        .as_str()
        .unwrap()
        .as_bytes()
        .to_vec();
    let rsa = include_str!("../tests/fixtures/rsa-a.pem");
    let p256 = include_str!("../tests/fixtures/p256-a.pem");
    let ed25519 = include_str!("../tests/fixtures/ed25519-a.pem");

    let cases: Vec<(&str, JwtVerifier, String)> = vec![
        ("HS256", verifier(&secret, None), token("HS256")),
        ("HS384", verifier(&secret, None), token("HS384")),
        ("HS512", verifier(&secret, None), token("HS512")),
        ("RS256 (2048)", verifier(b"", Some(rsa)), token("RS256")),
        ("PS256 (2048)", verifier(b"", Some(rsa)), token("PS256")),
        ("ES256", verifier(b"", Some(p256)), token("ES256")),
        ("EdDSA", verifier(b"", Some(ed25519)), token("EdDSA")),
    ];
    println!("verify, signature and claims, per token:");
    for (name, verifier, token) in &cases {
        verifier.verify_now(token, NOW).expect(name);
        let us = measure(|| {
            black_box(verifier.verify_now(black_box(token), NOW)).unwrap();
        });
        println!("  {name:<14} {us:>9.2} µs");
    }

    // A refused token costs the same signature check; a malformed one none.
    let forged = token("forged-RS256-by-rsa-b");
    let rsa_verifier = verifier(b"", Some(rsa));
    let us = measure(|| {
        black_box(rsa_verifier.verify_now(black_box(&forged), NOW)).unwrap_err();
    });
    println!("  {:<14} {us:>9.2} µs", "RS256 forged");

    println!("key loading, once per isolate or JWKS refresh:");
    for (name, pem) in [
        ("RSA PEM", rsa),
        ("P-256 PEM", p256),
        ("Ed25519 PEM", ed25519),
    ] {
        let us = measure(|| {
            black_box(VerificationKey::from_pem(black_box(pem))).unwrap();
        });
        println!("  {name:<14} {us:>9.2} µs");
    }
}
