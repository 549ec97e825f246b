//! The curve checks that stay in this crate when the runtime verifies
//! signatures (WebCrypto on workerd): whether a P-256 public key is a point
//! of the curve (and its `y` when the point came compressed), whether an
//! Ed25519 public key decodes and has large order, and the two rules of
//! strict Ed25519 verification that a runtime may not apply (a canonical
//! `S`, an `R` of large order).
//!
//! These run on configuration, a few times per key, and on 64 signature
//! bytes per token, so they are written for size and plain correctness, not
//! speed: a 256-bit integer is four little-endian `u64` limbs and reduction
//! is bit-by-bit long division. None of this handles a secret, so none of it
//! needs to be constant-time.

/// A 256-bit unsigned integer, least significant limb first.
type U256 = [u64; 4];

/// P-256's field prime, 2^256 - 2^224 + 2^192 + 2^96 - 1.
const P256_P: U256 = [
    0xffff_ffff_ffff_ffff,
    0x0000_0000_ffff_ffff,
    0x0000_0000_0000_0000,
    0xffff_ffff_0000_0001,
];

/// P-256's `b` (the curve is y^2 = x^3 - 3x + b).
const P256_B: U256 = [
    0x3bce_3c3e_27d2_604b,
    0x651d_06b0_cc53_b0f6,
    0xb3eb_bd55_7698_86bc,
    0x5ac6_35d8_aa3a_93e7,
];

/// (p + 1) / 4 for P-256's p.
const P256_SQRT_EXPONENT: U256 = [
    0x0000_0000_0000_0000,
    0x0000_0000_4000_0000,
    0x4000_0000_0000_0000,
    0x3fff_ffff_c000_0000,
];

/// Curve25519's field prime, 2^255 - 19.
const ED_P: U256 = [
    0xffff_ffff_ffff_ffed,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
    0x7fff_ffff_ffff_ffff,
];

/// Edwards25519's `d`, -121665/121666 mod p.
const ED_D: U256 = [
    0x75eb_4dca_1359_78a3,
    0x0070_0a4d_4141_d8ab,
    0x8cc7_4079_7779_e898,
    0x5203_6cee_2b6f_fe73,
];

/// The order of Edwards25519's prime subgroup, 2^252 + 27742317777372353535851937790883648493.
const ED_L: U256 = [
    0x5812_631a_5cf5_d3ed,
    0x14de_f9de_a2f7_9cd6,
    0x0000_0000_0000_0000,
    0x1000_0000_0000_0000,
];

/// The `y` of every point of small order (1, 2, 4 or 8), and the two
/// non-canonical spellings `p` and `p + 1` of such a `y`. The sign bit of
/// `x` plays no part: both signs of each are refused.
const ED_SMALL_ORDER_Y: [U256; 7] = [
    [0, 0, 0, 0],
    [1, 0, 0, 0],
    [
        0xffff_ffff_ffff_ffec,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_ffff_ffff,
        0x7fff_ffff_ffff_ffff,
    ],
    ED_P,
    [
        0xffff_ffff_ffff_ffee,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_ffff_ffff,
        0x7fff_ffff_ffff_ffff,
    ],
    [
        0xb027_b2c2_8f95_e826,
        0xf098_eff2_89f4_c345,
        0x3933_c6d3_05ac_dfd5,
        0x05fc_536d_8802_38b1,
    ],
    [
        0x4fd8_4d3d_706a_17c7,
        0x0f67_100d_760b_3cba,
        0xc6cc_392c_fa53_202a,
        0x7a03_ac92_77fd_c74e,
    ],
];

fn from_be(bytes: &[u8; 32]) -> U256 {
    let mut out = [0u64; 4];
    for (i, chunk) in bytes.rchunks(8).enumerate() {
        out[i] = u64::from_be_bytes(chunk.try_into().expect("32 bytes are four chunks of 8"));
    }
    out
}

fn to_be(value: &U256) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.rchunks_mut(8).enumerate() {
        chunk.copy_from_slice(&value[i].to_be_bytes());
    }
    out
}

fn from_le(bytes: &[u8; 32]) -> U256 {
    let mut out = [0u64; 4];
    for (i, chunk) in bytes.chunks(8).enumerate() {
        out[i] = u64::from_le_bytes(chunk.try_into().expect("32 bytes are four chunks of 8"));
    }
    out
}

fn less(a: &U256, b: &U256) -> bool {
    a.iter().rev().cmp(b.iter().rev()).is_lt()
}

/// `a - b` modulo 2^256, and whether it borrowed.
fn sub(a: &U256, b: &U256) -> (U256, bool) {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
        out[i] = d2;
        borrow = b1 || b2;
    }
    (out, borrow)
}

/// Arithmetic modulo a prime `p` below 2^256; every operand is below `p`.
struct Field(U256);

impl Field {
    /// Reduces a value below p^2 (eight limbs, least significant first).
    /// Its high half is below p^2 / 2^256 < p, so it is the remainder so
    /// far; the low half then comes in a bit at a time, and doubling the
    /// remainder and adding a bit overflows at most once past `p`.
    fn reduce(&self, wide: &[u64; 8]) -> U256 {
        let mut r: U256 = wide[4..].try_into().expect("eight limbs have a high half");
        for bit in (0..256).rev() {
            let carry = r[3] >> 63 == 1;
            for i in (1..4).rev() {
                r[i] = (r[i] << 1) | (r[i - 1] >> 63);
            }
            r[0] = (r[0] << 1) | ((wide[bit / 64] >> (bit % 64)) & 1);
            if carry || !less(&r, &self.0) {
                r = sub(&r, &self.0).0;
            }
        }
        r
    }

    fn mul(&self, a: &U256, b: &U256) -> U256 {
        let mut wide = [0u64; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let t = u128::from(a[i]) * u128::from(b[j]) + u128::from(wide[i + j]) + carry;
                wide[i + j] = t as u64;
                carry = t >> 64;
            }
            wide[i + 4] = carry as u64;
        }
        self.reduce(&wide)
    }

    fn add(&self, a: &U256, b: &U256) -> U256 {
        let mut wide = [0u64; 8];
        let mut carry = 0u128;
        for i in 0..4 {
            let t = u128::from(a[i]) + u128::from(b[i]) + carry;
            wide[i] = t as u64;
            carry = t >> 64;
        }
        wide[4] = carry as u64;
        self.reduce(&wide)
    }

    fn sub(&self, a: &U256, b: &U256) -> U256 {
        let (d, borrow) = sub(a, b);
        if borrow {
            // Adding p back wraps past 2^256 exactly once.
            let mut out = [0u64; 4];
            let mut carry = 0u128;
            for i in 0..4 {
                let t = u128::from(d[i]) + u128::from(self.0[i]) + carry;
                out[i] = t as u64;
                carry = t >> 64;
            }
            out
        } else {
            d
        }
    }

    fn pow(&self, base: &U256, exp: &U256) -> U256 {
        let mut acc = [1, 0, 0, 0];
        for bit in (0..256).rev() {
            acc = self.mul(&acc, &acc);
            if (exp[bit / 64] >> (bit % 64)) & 1 == 1 {
                acc = self.mul(&acc, base);
            }
        }
        acc
    }

    /// Whether `a` is a square (zero included), by Euler's criterion.
    fn is_square(&self, a: &U256) -> bool {
        let half = shr1(&sub(&self.0, &[1, 0, 0, 0]).0);
        let legendre = self.pow(a, &half);
        legendre == [1, 0, 0, 0] || legendre == [0, 0, 0, 0]
    }
}

fn shr1(a: &U256) -> U256 {
    let mut out = [0u64; 4];
    for i in 0..4 {
        out[i] = (a[i] >> 1) | if i < 3 { a[i + 1] << 63 } else { 0 };
    }
    out
}

/// x^3 - 3x + b, the right side of P-256's equation.
fn p256_rhs(field: &Field, x: &U256) -> U256 {
    let x3 = field.mul(&field.mul(x, x), x);
    let three_x = field.add(&field.add(x, x), x);
    field.add(&field.sub(&x3, &three_x), &P256_B)
}

/// The uncompressed coordinates of a SEC1 P-256 point (`04 || x || y`, or
/// `02`/`03 || x`), if it is a point of the curve. The point at infinity
/// (`00`) and coordinates not below `p` are refused.
pub(super) fn p256_point(sec1: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    let field = Field(P256_P);
    let (&tag, rest) = sec1.split_first()?;
    let x_bytes: &[u8; 32] = rest.get(..32)?.try_into().ok()?;
    let x = from_be(x_bytes);
    if !less(&x, &P256_P) {
        return None;
    }
    let rhs = p256_rhs(&field, &x);
    let y = match (tag, rest.len()) {
        (0x04, 64) => {
            let y = from_be(rest[32..].try_into().ok()?);
            if !less(&y, &P256_P) || field.mul(&y, &y) != rhs {
                return None;
            }
            y
        }
        (0x02 | 0x03, 32) => {
            // p = 3 mod 4, so rhs^((p + 1) / 4) is a square root when
            // there is one.
            let root = field.pow(&rhs, &P256_SQRT_EXPONENT);
            if field.mul(&root, &root) != rhs {
                return None;
            }
            let want_odd = tag == 0x03;
            if (root[0] & 1 == 1) == want_odd {
                root
            } else {
                field.sub(&[0, 0, 0, 0], &root)
            }
        }
        _ => return None,
    };
    Some((*x_bytes, to_be(&y)))
}

/// Why an Ed25519 public key is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EdKeyFault {
    /// Not the encoding of a curve point (RFC 8032 section 5.1.3).
    NotAPoint,
    /// A point of small order: such a key "verifies" signatures anyone can make.
    SmallOrder,
}

fn ed_y(encoded: &[u8; 32]) -> U256 {
    let mut y = from_le(encoded);
    y[3] &= 0x7fff_ffff_ffff_ffff;
    y
}

fn ed_small_order(encoded: &[u8; 32]) -> bool {
    ED_SMALL_ORDER_Y.contains(&ed_y(encoded))
}

/// Checks a 32-byte Ed25519 public key: `y` canonical (below `p`), `x`
/// recoverable from it, and the point not of small order.
pub(super) fn ed25519_key(encoded: &[u8; 32]) -> Result<(), EdKeyFault> {
    if ed_small_order(encoded) {
        return Err(EdKeyFault::SmallOrder);
    }
    let field = Field(ED_P);
    let y = ed_y(encoded);
    if !less(&y, &ED_P) {
        return Err(EdKeyFault::NotAPoint);
    }
    // x^2 = (y^2 - 1) / (d y^2 + 1), which has a root when the product of
    // the two is a square (the denominator is never zero on this curve).
    let y2 = field.mul(&y, &y);
    let u = field.sub(&y2, &[1, 0, 0, 0]);
    let v = field.add(&field.mul(&ED_D, &y2), &[1, 0, 0, 0]);
    if !field.is_square(&field.mul(&u, &v)) {
        return Err(EdKeyFault::NotAPoint);
    }
    Ok(())
}

/// The two rules of strict Ed25519 verification checked before the
/// runtime's: `S` (the second half) below the group order, so one message
/// has one valid signature, and `R` (the first half) not of small order.
pub(super) fn ed25519_signature_is_strict(signature: &[u8]) -> bool {
    let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
        return false;
    };
    let r: &[u8; 32] = signature[..32].try_into().expect("64 bytes split in two");
    let s: &[u8; 32] = signature[32..].try_into().expect("64 bytes split in two");
    less(&from_le(s), &ED_L) && !ed_small_order(r)
}

#[cfg(test)]
#[path = "curves_tests.rs"]
mod tests;
