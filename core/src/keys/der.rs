//! The DER of the two public key structures a PEM block may hold:
//! SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7) and PKCS#1 RSAPublicKey
//! (RFC 8017 appendix A.1.1). Strict: definite, minimal lengths; INTEGERs
//! positive and minimally encoded; BIT STRINGs without unused bits; nothing
//! after the outer SEQUENCE. Anything else is [`KeyError::MalformedDer`].

use super::KeyError;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

/// The contents of the algorithm identifier's OBJECT IDENTIFIERs.
pub(super) const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub(super) const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub(super) const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(super) const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// X25519, X448, Ed448: the other RFC 8410 curves, named as curves so the
/// error says "curve" rather than "key type".
pub(super) const OTHER_8410_CURVES: [&[u8]; 3] = [
    &[0x2b, 0x65, 0x6e],
    &[0x2b, 0x65, 0x6f],
    &[0x2b, 0x65, 0x71],
];

/// A cursor over DER elements.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The contents of the next element, which must have `tag`.
    fn element(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        let [found, first, rest @ ..] = self.0 else {
            return Err(KeyError::MalformedDer);
        };
        if *found != tag {
            return Err(KeyError::MalformedDer);
        }
        let (len, rest) = match *first {
            short @ 0..=0x7f => (usize::from(short), rest),
            // Long form with one to three length octets (keys stay far
            // below 16 MiB); 0x80 is BER's indefinite length.
            0x81..=0x83 => {
                let count = usize::from(*first & 0x7f);
                if rest.len() < count || rest[0] == 0 {
                    return Err(KeyError::MalformedDer);
                }
                let len = rest[..count]
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                if len < 0x80 {
                    return Err(KeyError::MalformedDer);
                }
                (len, &rest[count..])
            }
            _ => return Err(KeyError::MalformedDer),
        };
        if rest.len() < len {
            return Err(KeyError::MalformedDer);
        }
        let (contents, after) = rest.split_at(len);
        self.0 = after;
        Ok(contents)
    }

    /// The next element's contents as a reader that must be read to its end.
    fn sequence(&mut self) -> Result<Reader<'a>, KeyError> {
        self.element(SEQUENCE).map(Reader)
    }

    /// A non-negative INTEGER's magnitude, big-endian, without the sign octet.
    fn unsigned(&mut self) -> Result<&'a [u8], KeyError> {
        match self.element(INTEGER)? {
            [] => Err(KeyError::MalformedDer),
            [first, ..] if first & 0x80 != 0 => Err(KeyError::MalformedDer),
            [0, next, ..] if next & 0x80 == 0 => Err(KeyError::MalformedDer),
            [0, rest @ ..] if !rest.is_empty() => Ok(rest),
            all => Ok(all),
        }
    }

    fn finish(self) -> Result<(), KeyError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(KeyError::MalformedDer)
        }
    }
}

/// A SubjectPublicKeyInfo: its algorithm OID, the algorithm's parameters
/// (an OID, NULL, or nothing), and the public key bits.
pub(super) struct Spki<'a> {
    pub algorithm: &'a [u8],
    pub parameters: Parameters<'a>,
    pub key: &'a [u8],
}

pub(super) enum Parameters<'a> {
    Absent,
    Null,
    Oid(&'a [u8]),
    /// Explicit curve parameters and whatever else: never accepted.
    Other,
}

pub(super) fn spki(der: &[u8]) -> Result<Spki<'_>, KeyError> {
    let mut outer = Reader(der);
    let mut info = outer.sequence()?;
    outer.finish()?;
    let mut algorithm_id = info.sequence()?;
    let algorithm = algorithm_id.element(OID)?;
    let parameters = match algorithm_id.peek() {
        None => Parameters::Absent,
        Some(NULL) => match algorithm_id.element(NULL)? {
            [] => Parameters::Null,
            _ => return Err(KeyError::MalformedDer),
        },
        Some(OID) => Parameters::Oid(algorithm_id.element(OID)?),
        Some(_) => Parameters::Other,
    };
    if !matches!(parameters, Parameters::Other) {
        algorithm_id.finish()?;
    }
    let key = match info.element(BIT_STRING)? {
        [0, key @ ..] => key,
        _ => return Err(KeyError::MalformedDer),
    };
    info.finish()?;
    Ok(Spki {
        algorithm,
        parameters,
        key,
    })
}

/// A PKCS#1 RSAPublicKey: the modulus and the exponent, big-endian.
pub(super) fn rsa_public_key(der: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
    let mut outer = Reader(der);
    let mut key = outer.sequence()?;
    outer.finish()?;
    let n = key.unsigned()?;
    let e = key.unsigned()?;
    key.finish()?;
    Ok((n, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_minimal_and_definite() {
        // NULL in the short form, then the same in forms DER forbids.
        assert!(Reader(&[0x05, 0x00]).element(NULL).is_ok());
        for bad in [
            &[0x05, 0x81, 0x00][..],
            &[0x05, 0x80, 0x00, 0x00],
            &[0x05, 0x82, 0x00, 0x80],
            &[0x05, 0x84, 0x00, 0x00, 0x00, 0x00],
            &[0x05, 0x02, 0x00],
            &[0x05],
        ] {
            assert_eq!(
                Reader(bad).element(NULL),
                Err(KeyError::MalformedDer),
                "{bad:02x?}"
            );
        }
        let long = [&[0x04, 0x81, 0x80][..], &[0u8; 0x80]].concat();
        assert_eq!(Reader(&long).element(0x04).unwrap().len(), 0x80);
    }

    #[test]
    fn integers_must_be_positive_and_minimal() {
        assert_eq!(Reader(&[0x02, 0x01, 0x7f]).unsigned(), Ok(&[0x7f][..]));
        assert_eq!(
            Reader(&[0x02, 0x02, 0x00, 0x80]).unsigned(),
            Ok(&[0x80][..])
        );
        assert_eq!(Reader(&[0x02, 0x01, 0x00]).unsigned(), Ok(&[0x00][..]));
        for bad in [
            &[0x02, 0x01, 0x80][..],
            &[0x02, 0x02, 0x00, 0x7f],
            &[0x02, 0x00],
        ] {
            assert_eq!(
                Reader(bad).unsigned(),
                Err(KeyError::MalformedDer),
                "{bad:02x?}"
            );
        }
    }

    #[test]
    fn nothing_may_follow_the_structure() {
        let pkcs1 = [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03];
        assert_eq!(rsa_public_key(&pkcs1), Ok((&[5u8][..], &[3u8][..])));
        assert!(rsa_public_key(&[&pkcs1[..], &[0]].concat()).is_err());
        let mut inner_extra = pkcs1.to_vec();
        inner_extra[1] = 0x09;
        inner_extra.extend([0x02, 0x01, 0x01]);
        assert!(rsa_public_key(&inner_extra).is_err());
    }
}
