//! Event ids: where a stream is in each of its channels.
//!
//! An SSE event id is all the client gives back on reconnect
//! (`Last-Event-ID`), so it must name a position in every channel of the
//! stream, not only the channel of the last event. The format is
//! django-eventstream 5's, so that clients and ids move between it and this
//! relay unchanged: `<quote(channel)>:<seq>` pairs joined by `,`, where
//! `quote` is Python's `urllib.parse.quote` with its default `safe='/'`
//! (see `make_id` and `parse_last_event_id` in django-eventstream's
//! `django_eventstream/utils.py`, and the `unquote` in `eventrequest.py`).
//! Its escaping leaves `A-Z a-z 0-9 _ . - ~ /` alone and writes every other
//! byte of the UTF-8 name as `%XX` with upper-case hex, so the `:` inside a
//! channel name becomes `%3A` and `,` becomes `%2C`; neither separator can
//! appear in an encoded name.
//!
//! Parsing is stricter than django-eventstream's, because the value comes
//! from the client: malformed escapes, signs, duplicate channels and oversized
//! ids are refused instead of being passed on.

use crate::percent::{self, quote_into};
use crate::problem::Problem;
use std::fmt::{self, Write};

/// Longest id accepted from a client.
pub const MAX_CURSOR_BYTES: usize = 4096;
/// Most channel positions accepted in one id.
pub const MAX_CURSOR_PAIRS: usize = 64;

/// Positions per channel, in the order they were first set or parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    positions: Vec<(String, u64)>,
}

/// Why a `Last-Event-ID` is not a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CursorError(Reason);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Empty,
    TooLong,
    TooManyPairs,
    EmptyPair,
    MissingSeparator,
    BadSequence,
    BadEscape,
    NotUtf8,
    EmptyChannel,
    DuplicateChannel,
}

impl Cursor {
    /// Parses an id. An empty string is an error: callers treat an empty
    /// `Last-Event-ID` as absent before calling this, as browsers never send
    /// one.
    pub fn parse(s: &str) -> Result<Self, CursorError> {
        if s.is_empty() {
            return Err(CursorError(Reason::Empty));
        }
        if s.len() > MAX_CURSOR_BYTES {
            return Err(CursorError(Reason::TooLong));
        }
        let mut cursor = Cursor::default();
        for pair in s.split(',') {
            if cursor.positions.len() == MAX_CURSOR_PAIRS {
                return Err(CursorError(Reason::TooManyPairs));
            }
            if pair.is_empty() {
                return Err(CursorError(Reason::EmptyPair));
            }
            let (channel, seq) = pair
                .split_once(':')
                .ok_or(CursorError(Reason::MissingSeparator))?;
            let seq = parse_seq(seq).ok_or(CursorError(Reason::BadSequence))?;
            let channel = unquote(channel)?;
            if channel.is_empty() {
                return Err(CursorError(Reason::EmptyChannel));
            }
            if cursor.get(&channel).is_some() {
                return Err(CursorError(Reason::DuplicateChannel));
            }
            cursor.positions.push((channel, seq));
        }
        Ok(cursor)
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (channel, seq)) in self.positions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            quote_into(&mut out, channel);
            write!(out, ":{seq}").expect("writing to a String cannot fail");
        }
        out
    }

    pub fn get(&self, channel: &str) -> Option<u64> {
        self.positions
            .iter()
            .find(|(c, _)| c == channel)
            .map(|&(_, seq)| seq)
    }

    /// Moves `channel` to `seq`, adding it at the end if it is new.
    pub fn set(&mut self, channel: &str, seq: u64) {
        match self.positions.iter_mut().find(|(c, _)| c == channel) {
            Some((_, current)) => *current = seq,
            None => self.positions.push((channel.to_owned(), seq)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.positions.iter().map(|(c, seq)| (c.as_str(), *seq))
    }
}

/// Builds the id of every event on one stream. A stream's channels are fixed
/// when it opens, so their encoded names are computed once here and each
/// event only writes numbers. Channels are addressed by their index in the
/// stream's channel list.
///
/// A channel whose position is not known yet (a fresh stream before its first
/// event or state snapshot from that channel) is left out of the id; resuming
/// from such an id treats that channel like a fresh subscription.
#[derive(Clone, Debug)]
pub struct CursorEncoder {
    /// `quote(channel) + ":"` per channel.
    prefixes: Vec<String>,
    positions: Vec<Option<u64>>,
}

impl CursorEncoder {
    pub fn new<'a>(channels: impl IntoIterator<Item = &'a str>) -> Self {
        let prefixes: Vec<String> = channels
            .into_iter()
            .map(|channel| {
                let mut prefix = String::new();
                quote_into(&mut prefix, channel);
                prefix.push(':');
                prefix
            })
            .collect();
        let positions = vec![None; prefixes.len()];
        CursorEncoder {
            prefixes,
            positions,
        }
    }

    /// Panics if `index` is not a channel of this stream: that is a bug in
    /// the caller, not a client error.
    pub fn set(&mut self, index: usize, seq: u64) {
        self.positions[index] = Some(seq);
    }

    pub fn get(&self, index: usize) -> Option<u64> {
        self.positions.get(index).copied().flatten()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// Writes the id into `out` (cleared first), so a stream can reuse one
    /// buffer for every event instead of allocating an id per event.
    pub fn encode_into(&self, out: &mut String) {
        out.clear();
        for (prefix, seq) in self.prefixes.iter().zip(&self.positions) {
            let Some(seq) = seq else { continue };
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(prefix);
            write!(out, "{seq}").expect("writing to a String cannot fail");
        }
    }
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn parse_seq(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `unquote`, refusing malformed escapes and text that is not UTF-8 where
/// Python would pass the escape through or substitute U+FFFD.
fn unquote(s: &str) -> Result<String, CursorError> {
    let bytes = percent::decode_strict(s).ok_or(CursorError(Reason::BadEscape))?;
    String::from_utf8(bytes).map_err(|_| CursorError(Reason::NotUtf8))
}

impl fmt::Display for CursorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Reason::Empty => "event id is empty",
            Reason::TooLong => "event id is longer than 4096 bytes",
            Reason::TooManyPairs => "event id names more than 64 channels",
            Reason::EmptyPair => "event id has an empty <channel>:<seq> pair",
            Reason::MissingSeparator => "event id pairs must be <channel>:<seq>",
            Reason::BadSequence => "event id sequence numbers must be unsigned integers",
            Reason::BadEscape => "event id channel has a malformed %-escape",
            Reason::NotUtf8 => "event id channel is not UTF-8 once decoded",
            Reason::EmptyChannel => "event id has an empty channel",
            Reason::DuplicateChannel => "event id names a channel twice",
        })
    }
}

impl std::error::Error for CursorError {}

impl From<CursorError> for Problem {
    fn from(err: CursorError) -> Self {
        Problem::invalid_cursor(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "scan-progress:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:42";
    const A_ENCODED: &str = "scan-progress%3A0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19%3A42";
    const B: &str = "jobs:11111111-2222-4333-8444-555555555555:x.y_z";

    fn reason(s: &str) -> Reason {
        Cursor::parse(s).unwrap_err().0
    }

    fn quote(s: &str) -> String {
        let mut out = String::new();
        quote_into(&mut out, s);
        out
    }

    #[test]
    fn channel_separator_is_escaped() {
        assert_eq!(quote(A), A_ENCODED);
    }

    #[test]
    fn encodes_in_django_eventstream_format() {
        let mut c = Cursor::default();
        c.set(A, 7);
        c.set(B, 0);
        assert_eq!(c.encode(), format!("{A_ENCODED}:7,{}:0", quote(B)));
        assert_eq!(Cursor::default().encode(), "");
    }

    #[test]
    fn parses_what_django_eventstream_emits() {
        let c = Cursor::parse(&format!("{A_ENCODED}:12,{}:3", quote(B))).unwrap();
        assert_eq!(c.get(A), Some(12));
        assert_eq!(c.get(B), Some(3));
        assert_eq!(c.get("other"), None);
        assert_eq!(c.iter().collect::<Vec<_>>(), [(A, 12), (B, 3)]);
    }

    #[test]
    fn lower_case_escapes_decode_too() {
        let c = Cursor::parse("a%3ab%3Ac:1").unwrap();
        assert_eq!(c.get("a:b:c"), Some(1));
    }

    #[test]
    fn round_trips() {
        let mut c = Cursor::default();
        for (i, name) in [A, B, "with space", "é,:%", "a/b"].iter().enumerate() {
            c.set(name, i as u64 * 1000);
        }
        c.set(A, u64::MAX);
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
    }

    #[test]
    fn set_updates_in_place() {
        let mut c = Cursor::default();
        c.set("a", 1);
        c.set("b", 1);
        c.set("a", 2);
        assert_eq!(c.iter().collect::<Vec<_>>(), [("a", 2), ("b", 1)]);
    }

    #[test]
    fn rejects_malformed_pairs() {
        assert_eq!(reason(""), Reason::Empty);
        assert_eq!(reason(","), Reason::EmptyPair);
        assert_eq!(reason("a:1,"), Reason::EmptyPair);
        assert_eq!(reason(",a:1"), Reason::EmptyPair);
        assert_eq!(reason("a:1,,b:2"), Reason::EmptyPair);
        assert_eq!(reason("a"), Reason::MissingSeparator);
        assert_eq!(reason("error"), Reason::MissingSeparator);
        assert_eq!(reason(":1"), Reason::EmptyChannel);
        assert_eq!(reason("a:1,a:2"), Reason::DuplicateChannel);
        assert_eq!(reason("a%3A:1,a%3a:2"), Reason::DuplicateChannel);
    }

    #[test]
    fn raw_separator_in_a_channel_is_not_a_channel() {
        // An unescaped ':' would make a pair read as `scan:<rest>`.
        assert_eq!(reason(&format!("{A}:1")), Reason::BadSequence);
    }

    #[test]
    fn rejects_bad_sequence_numbers() {
        for seq in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x10",
            "abc",
            "18446744073709551616",
            "1_000",
            "١",
        ] {
            assert_eq!(reason(&format!("a:{seq}")), Reason::BadSequence, "{seq:?}");
        }
        assert_eq!(Cursor::parse("a:0").unwrap().get("a"), Some(0));
        assert_eq!(
            Cursor::parse("a:18446744073709551615").unwrap().get("a"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn rejects_bad_escapes_and_non_utf8() {
        for s in ["a%:1", "a%3:1", "a%zz:1", "a%%33A:1", "%:1"] {
            assert_eq!(reason(s), Reason::BadEscape, "{s}");
        }
        for s in ["%FF:1", "%C3:1", "a%C3%28:1", "%ED%A0%80:1"] {
            assert_eq!(reason(s), Reason::NotUtf8, "{s}");
        }
    }

    #[test]
    fn bounds_the_input() {
        let long = format!("{}:1", "a".repeat(MAX_CURSOR_BYTES));
        assert_eq!(reason(&long), Reason::TooLong);
        let pairs = |n: usize| {
            (0..n)
                .map(|i| format!("c{i}:1"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(Cursor::parse(&pairs(64)).unwrap().iter().count(), 64);
        assert_eq!(reason(&pairs(65)), Reason::TooManyPairs);
        assert_eq!(reason(&",".repeat(MAX_CURSOR_BYTES)), Reason::EmptyPair);
    }

    #[test]
    fn errors_become_invalid_cursor() {
        let p: Problem = Cursor::parse("nope").unwrap_err().into();
        assert_eq!((p.status, p.code), (400, "invalid_cursor"));
        assert_eq!(p.detail, "event id pairs must be <channel>:<seq>");
    }

    #[test]
    fn encoder_writes_known_positions_in_stream_order() {
        let mut e = CursorEncoder::new([A, B]);
        assert_eq!(e.encode(), "");
        e.set(1, 5);
        assert_eq!(e.encode(), format!("{}:5", quote(B)));
        e.set(0, 9);
        assert_eq!(e.encode(), format!("{A_ENCODED}:9,{}:5", quote(B)));
        e.set(1, 6);
        assert_eq!((e.get(0), e.get(1), e.get(2)), (Some(9), Some(6), None));
    }

    #[test]
    fn encoder_agrees_with_cursor() {
        let mut e = CursorEncoder::new([A, B, "x y"]);
        let mut c = Cursor::default();
        for (i, name) in [A, B, "x y"].iter().enumerate() {
            e.set(i, 100 + i as u64);
            c.set(name, 100 + i as u64);
        }
        assert_eq!(e.encode(), c.encode());
        assert_eq!(Cursor::parse(&e.encode()).unwrap(), c);
    }

    #[test]
    fn encoded_ids_are_safe_as_sse_ids() {
        let mut e = CursorEncoder::new(["a\nb", "c\r\0d"]);
        e.set(0, 1);
        e.set(1, 2);
        assert!(!e.encode().contains(['\n', '\r', '\0']));
    }
}
