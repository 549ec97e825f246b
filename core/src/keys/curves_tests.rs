//! Each check against the curve crates the native checks use, on generated
//! keys and on bytes that are mostly not keys.

use super::*;

/// Deterministic bytes, so that a failure replays.
fn bytes32(seed: u64) -> [u8; 32] {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = [0u8; 32];
    for b in out.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    out
}

fn p256_public(seed: u64) -> p256::ecdsa::VerifyingKey {
    let mut scalar = bytes32(seed);
    scalar[0] &= 0x7f; // below the group order
    *p256::ecdsa::SigningKey::from_slice(&scalar)
        .unwrap()
        .verifying_key()
}

#[test]
fn p256_points_of_the_curve_are_taken_in_both_encodings() {
    for seed in 0..16 {
        let key = p256_public(seed);
        let full = key.to_sec1_point(false);
        let full = full.as_bytes();
        let (x, y) = p256_point(full).expect("a point of the curve");
        assert_eq!((&x[..], &y[..]), (&full[1..33], &full[33..]));
        let compressed = key.to_sec1_point(true);
        assert_eq!(
            p256_point(compressed.as_bytes()),
            Some((x, y)),
            "seed {seed}"
        );
    }
}

#[test]
fn p256_refuses_what_the_crate_refuses() {
    let mut refused = 0;
    for seed in 0..80 {
        let full = p256_public(seed).to_sec1_point(false);
        let mut bytes = full.as_bytes().to_vec();
        // A changed coordinate, a random x with either tag, a bad tag.
        let candidate = match seed % 4 {
            0 => {
                bytes[64 - (seed as usize % 32)] ^= 1;
                bytes
            }
            1 => [&[0x02][..], &bytes32(seed)].concat(),
            2 => [&[0x03][..], &bytes32(seed)].concat(),
            _ => {
                bytes[0] = 0x06;
                bytes
            }
        };
        let ours = p256_point(&candidate).is_some();
        let theirs = p256::ecdsa::VerifyingKey::from_sec1_bytes(&candidate).is_ok();
        assert_eq!(ours, theirs, "seed {seed}: {candidate:02x?}");
        refused += usize::from(!ours);
    }
    assert!(refused > 40, "{refused}");
    // Coordinates at or above p, the point at infinity, and short input.
    let p = to_be(&P256_P);
    assert_eq!(p256_point(&[&[0x02][..], &p].concat()), None);
    assert_eq!(p256_point(&[0x00]), None);
    assert_eq!(p256_point(&[0x04; 64]), None);
}

fn ed25519_public(seed: u64) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&bytes32(seed))
        .verifying_key()
        .to_bytes()
}

#[test]
fn ed25519_keys_are_taken_and_non_points_refused_as_the_crate_does() {
    for seed in 0..16 {
        assert_eq!(ed25519_key(&ed25519_public(seed)), Ok(()), "seed {seed}");
    }
    let mut not_points = 0;
    for seed in 0..80 {
        let mut candidate = bytes32(seed + 1000);
        candidate[31] &= 0x7f; // canonical y with a positive x
        let theirs = ed25519_dalek::VerifyingKey::from_bytes(&candidate);
        match ed25519_key(&candidate) {
            Ok(()) => assert!(theirs.is_ok_and(|k| !k.is_weak()), "seed {seed}"),
            Err(EdKeyFault::NotAPoint) => {
                assert!(theirs.is_err(), "seed {seed}");
                not_points += 1;
            }
            Err(EdKeyFault::SmallOrder) => panic!("seed {seed} is small-order"),
        }
    }
    assert!(not_points > 20, "{not_points}");
    // A y at or above p.
    let mut big = to_le(&ED_P);
    big[0] += 5;
    assert_eq!(ed25519_key(&big), Err(EdKeyFault::NotAPoint));
}

fn to_le(value: &U256) -> [u8; 32] {
    let mut out = to_be(value);
    out.reverse();
    out
}

#[test]
fn every_small_order_spelling_is_refused_and_is_weak_to_the_crate() {
    for y in ED_SMALL_ORDER_Y {
        for sign in [0u8, 0x80] {
            let mut encoded = to_le(&y);
            encoded[31] |= sign;
            assert_eq!(ed25519_key(&encoded), Err(EdKeyFault::SmallOrder));
            // The crate either refuses the encoding or calls it weak.
            if let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&encoded) {
                assert!(key.is_weak(), "{encoded:02x?}");
            }
            let signature = [&encoded[..], &[0u8; 32]].concat();
            assert!(!ed25519_signature_is_strict(&signature));
        }
    }
    // The eight points of small order have five distinct y: all are listed
    // among the canonical spellings, which the crate decodes.
    let decoded = ED_SMALL_ORDER_Y
        .iter()
        .filter(|y| less(y, &ED_P))
        .filter(|y| ed25519_dalek::VerifyingKey::from_bytes(&to_le(y)).is_ok())
        .count();
    assert_eq!(decoded, 5);
}

#[test]
fn ed25519_signatures_need_a_canonical_s() {
    let key = ed25519_dalek::SigningKey::from_bytes(&bytes32(7));
    let signature = ed25519_dalek::Signer::sign(&key, b"message").to_bytes();
    assert!(ed25519_signature_is_strict(&signature));
    // S + L is the same scalar, spelled a second way.
    let s = from_le(signature[32..].try_into().unwrap());
    let mut carry = 0u128;
    let mut sum = [0u64; 4];
    for i in 0..4 {
        let t = u128::from(s[i]) + u128::from(ED_L[i]) + carry;
        sum[i] = t as u64;
        carry = t >> 64;
    }
    let mut respelled = signature;
    respelled[32..].copy_from_slice(&to_le(&sum));
    assert!(!ed25519_signature_is_strict(&respelled));
    let mut at_l = signature;
    at_l[32..].copy_from_slice(&to_le(&ED_L));
    assert!(!ed25519_signature_is_strict(&at_l));
    assert!(!ed25519_signature_is_strict(&signature[..63]));
}
