//! The event payload, identical for every peer.
//!
//! Latency is measured from a timestamp inside the payload rather than from
//! the publisher's bookkeeping, so the number is the same whatever the peer's
//! ids or publish acknowledgements look like. The payload also carries its
//! channel index, its publisher's index and that publisher's sequence number
//! on the channel, which is what the exactly-once check reads: peers number
//! events differently (edgestream per channel, nchan by time,
//! django-eventstream not at all without storage), and several publishers of
//! one channel only order their own events, so the benchmark numbers them
//! itself.
//!
//! Parsing is a byte scan for four known keys, not a JSON parse: the client
//! shares two cores with the server under test, and a full JSON parse per
//! delivery would be a large part of its cost at 100k deliveries/s.

use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem;

/// Event type of measured events.
pub const TICK: &str = "bench.tick";
/// Event type of the warm-up events sent until every subscriber is attached.
pub const WARMUP: &str = "bench.warmup";

/// Microseconds since the Unix epoch. The publisher and the subscribers run in
/// one process, so the clock is the same on both ends.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A measured event: `{"ch":<i>,"pub":<p>,"seq":<n>,"ts":<us>,"pad":"xx…"}`
/// (compact JSON, so every peer forwards it byte for byte). `seq` counts the
/// events of publisher `pub` on channel `ch`.
pub fn tick(channel: u32, publisher: u32, seq: u64, ts_us: u64, pad: &str) -> String {
    format!(r#"{{"ch":{channel},"pub":{publisher},"seq":{seq},"ts":{ts_us},"pad":"{pad}"}}"#)
}

/// A warm-up event: `{"ch":<i>,"warm":<round>}`.
pub fn warmup(channel: u32, round: u64) -> String {
    format!(r#"{{"ch":{channel},"warm":{round}}}"#)
}

/// Padding that brings a tick to about `bytes` bytes of JSON.
pub fn padding(bytes: usize) -> String {
    // `{"ch":0,"pub":0,"seq":1,"ts":1700000000000000,"pad":""}` is about 58 bytes.
    "x".repeat(bytes.saturating_sub(58))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    Tick {
        channel: u32,
        publisher: u32,
        seq: u64,
        ts_us: u64,
    },
    Warmup {
        channel: u32,
    },
    Other,
}

/// Reads a payload back. Tolerates spaces after `:` (a peer that re-encoded
/// the JSON would add them) but not reordered keys.
pub fn parse(data: &[u8]) -> Parsed {
    let Some(channel) = number_after(data, b"\"ch\":") else {
        return Parsed::Other;
    };
    let channel = channel as u32;
    if let Some(seq) = number_after(data, b"\"seq\":") {
        if let (Some(publisher), Some(ts_us)) = (
            number_after(data, b"\"pub\":"),
            number_after(data, b"\"ts\":"),
        ) {
            return Parsed::Tick {
                channel,
                publisher: publisher as u32,
                seq,
                ts_us,
            };
        }
        return Parsed::Other;
    }
    if number_after(data, b"\"warm\":").is_some() {
        return Parsed::Warmup { channel };
    }
    Parsed::Other
}

fn number_after(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = memmem::find(data, key)? + key.len();
    let rest = &data[at..];
    let start = rest.iter().position(|b| *b != b' ')?;
    let digits = &rest[start..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    digits[..len].iter().try_fold(0u64, |n, b| {
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_trip() {
        let p = tick(7, 3, 42, 1_700_000_000_000_123, &padding(100));
        assert!(p.len() >= 95 && p.len() <= 105, "{}", p.len());
        assert_eq!(
            parse(p.as_bytes()),
            Parsed::Tick {
                channel: 7,
                publisher: 3,
                seq: 42,
                ts_us: 1_700_000_000_000_123
            }
        );
    }

    #[test]
    fn warmups_and_reencoded_json() {
        assert_eq!(
            parse(warmup(3, 9).as_bytes()),
            Parsed::Warmup { channel: 3 }
        );
        assert_eq!(
            parse(br#"{"ch": 1, "pub": 0, "seq": 2, "ts": 3, "pad": ""}"#),
            Parsed::Tick {
                channel: 1,
                publisher: 0,
                seq: 2,
                ts_us: 3
            }
        );
        assert_eq!(parse(br#"{"channels":["a"]}"#), Parsed::Other);
        assert_eq!(parse(br#"{"ch":1,"seq":2,"ts":3}"#), Parsed::Other);
        assert_eq!(parse(b""), Parsed::Other);
    }
}
