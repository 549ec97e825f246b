//! Event ids (`Last-Event-ID`, `lastEventId`) in django-eventstream 5's
//! format: `quote(channel):seq` pairs joined by `,`.

use super::problem::assert_client_error;
use edgestream_core::cursor::{Cursor, CursorEncoder, MAX_CURSOR_BYTES, MAX_CURSOR_PAIRS};
use edgestream_core::problem::Problem;

/// Any text: a parsed id stays within the limits, names distinct non-empty
/// channels with digit-only sequence numbers, and its encoding is canonical
/// (it parses back to the same cursor and is a valid SSE id). A refusal is
/// a 400 `invalid_cursor`.
pub fn check_text(s: &str) {
    let cursor = match Cursor::parse(s) {
        Ok(cursor) => cursor,
        Err(err) => {
            let problem = Problem::from(err);
            assert_eq!(problem.code, "invalid_cursor");
            assert_client_error(&problem);
            return;
        }
    };
    assert!(s.len() <= MAX_CURSOR_BYTES, "{s:?}");
    let pairs: Vec<(&str, u64)> = cursor.iter().collect();
    assert!((1..=MAX_CURSOR_PAIRS).contains(&pairs.len()), "{s:?}");
    assert_eq!(pairs.len(), s.split(',').count(), "{s:?}");
    for (text, (channel, seq)) in s.split(',').zip(&pairs) {
        let (_, digits) = text.split_once(':').expect("a parsed pair has ':'");
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s:?}");
        assert_eq!(digits.parse::<u64>().ok(), Some(*seq), "{s:?}");
        assert!(!channel.is_empty());
        assert_eq!(cursor.get(channel), Some(*seq), "{s:?}");
    }
    for (i, (channel, _)) in pairs.iter().enumerate() {
        assert!(
            pairs[..i].iter().all(|(c, _)| c != channel),
            "{s:?} names {channel:?} twice"
        );
    }
    check_encoding(&cursor);
    let lower = lowercase_escapes(s);
    assert_eq!(Cursor::parse(&lower).as_ref(), Ok(&cursor), "{lower:?}");
}

/// A cursor's encoding parses back to it when it is within the limits, and
/// is always safe as an SSE `id:` value with unambiguous separators.
pub fn check_encoding(cursor: &Cursor) {
    let encoded = cursor.encode();
    assert!(!encoded.contains(['\r', '\n', '\0', ' ']), "{encoded:?}");
    let pairs = cursor.iter().count();
    assert_eq!(
        encoded.matches(',').count(),
        pairs.saturating_sub(1),
        "{encoded:?}"
    );
    assert_eq!(encoded.matches(':').count(), pairs, "{encoded:?}");
    let within_limits = encoded.len() <= MAX_CURSOR_BYTES && pairs <= MAX_CURSOR_PAIRS;
    let named = pairs > 0 && cursor.iter().all(|(channel, _)| !channel.is_empty());
    if within_limits && named {
        assert_eq!(Cursor::parse(&encoded).as_ref(), Ok(cursor), "{encoded:?}");
    }
}

/// The stream's id builder writes what a [`Cursor`] with the same known
/// positions writes, in stream order, and leaves unknown channels out.
pub fn check_encoder(channels: &[String], updates: &[(usize, u64)]) {
    let mut encoder = CursorEncoder::new(channels.iter().map(String::as_str));
    let mut positions: Vec<Option<u64>> = vec![None; channels.len()];
    for &(index, seq) in updates {
        encoder.set(index, seq);
        positions[index] = Some(seq);
    }
    let mut expected = Cursor::default();
    for (channel, seq) in channels.iter().zip(&positions) {
        if let Some(seq) = seq {
            expected.set(channel, *seq);
        }
    }
    assert_eq!(encoder.encode(), expected.encode());
    let mut reused = String::from("stale text");
    encoder.encode_into(&mut reused);
    assert_eq!(reused, expected.encode());
    for (index, seq) in positions.iter().enumerate() {
        assert_eq!(encoder.get(index), *seq);
    }
}

/// `s` with the hex digits of every `%XX` escape in lower case, which
/// `unquote` reads the same.
fn lowercase_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            let hex: String = chars.by_ref().take(2).collect();
            if hex.chars().all(|h| h.is_ascii_hexdigit()) {
                out.push_str(&hex.to_ascii_lowercase());
            } else {
                out.push_str(&hex);
            }
        }
    }
    out
}
