//! Event ids (`Last-Event-ID`).

use crate::checks::cursor::{check_encoder, check_encoding, check_text};
use crate::config::config;
use crate::strategies::{any_channel, channel, hostile, mutated, sequence_text};
use edgestream_core::cursor::Cursor;
use proptest::prelude::*;

/// Positions in distinct channels of any spelling.
fn positions(max: usize) -> impl Strategy<Value = Vec<(String, u64)>> {
    let seq = prop_oneof![4 => 0..1_000u64, 1 => any::<u64>()];
    proptest::collection::vec((prop_oneof![3 => channel(), 2 => hostile(6)], seq), 0..max).prop_map(
        |mut pairs| {
            let mut seen = Vec::new();
            pairs.retain(|(c, _)| {
                !seen.contains(c) && {
                    seen.push(c.clone());
                    true
                }
            });
            pairs
        },
    )
}

/// A channel as an id names it: encoded, a bare word, raw with its `:`, or
/// with escapes right and wrong.
fn encoded_channel() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => channel().prop_map(|c| cursor_of(&[(c, 0)]).encode().trim_end_matches(":0").to_owned()),
        2 => "[a-zA-Z0-9_.~-]{1,8}",
        1 => channel(),
        1 => "[a-z%0-9A-F]{0,8}",
    ]
}

fn cursor_of(pairs: &[(String, u64)]) -> Cursor {
    let mut cursor = Cursor::default();
    for (channel, seq) in pairs {
        cursor.set(channel, *seq);
    }
    cursor
}

proptest! {
    #![proptest_config(config(128))]

    /// A cursor over channels of any name (`:`, `,`, `%`, CR/LF, unicode)
    /// encodes to a safe SSE id that parses back to it.
    #[test]
    fn cursors_round_trip(pairs in positions(8)) {
        check_encoding(&cursor_of(&pairs));
    }

    /// A stream's id builder writes what a cursor of its known positions writes.
    #[test]
    fn the_encoder_agrees_with_the_cursor(
        pairs in positions(6),
        updates in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u64>()), 0..10),
    ) {
        let channels: Vec<String> = pairs.into_iter().map(|(c, _)| c).collect();
        let updates: Vec<(usize, u64)> = if channels.is_empty() {
            Vec::new()
        } else {
            updates.into_iter().map(|(i, seq)| (i.index(channels.len()), seq)).collect()
        };
        check_encoder(&channels, &updates);
    }

    /// Ids as clients send them back, edited (signs, `%zz`, `%3a`, extra
    /// separators, case, unicode): accepted ones are canonical and within
    /// the limits, refusals are `invalid_cursor`.
    #[test]
    fn edited_ids(text in mutated(positions(4).prop_map(|pairs| cursor_of(&pairs).encode()))) {
        check_text(&text);
    }

    /// Ids whose pairs have near-miss sequence numbers or raw separators.
    #[test]
    fn pairs_with_near_miss_numbers(
        pairs in proptest::collection::vec((encoded_channel(), sequence_text()), 1..4),
    ) {
        let text: Vec<String> = pairs.iter().map(|(c, seq)| format!("{c}:{seq}")).collect();
        check_text(&text.join(","));
    }

    /// An id that names one channel twice, spelled the same or not (`%3A`
    /// and `%3a`, a plain character escaped), is refused.
    #[test]
    fn channels_named_twice(
        pairs in positions(4),
        again in any::<proptest::sample::Index>(),
        seq in any::<u64>(),
        respell in any::<bool>(),
    ) {
        let mut text = cursor_of(&pairs).encode();
        if !pairs.is_empty() {
            let encoded = text.split(',').nth(again.index(pairs.len())).expect("one pair per position");
            let (channel, _) = encoded.rsplit_once(':').expect("an encoded pair");
            let channel = if respell { channel.to_lowercase().replacen('a', "%61", 1) } else { channel.to_owned() };
            text = format!("{text},{channel}:{seq}");
        }
        check_text(&text);
    }

    /// Any text as an id.
    #[test]
    fn any_text(text in prop_oneof![hostile(16), any_channel().prop_map(|c| format!("{c}:1"))]) {
        check_text(&text);
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Past the pair limit the encoding is still safe, and parsing refuses it.
    #[test]
    fn oversized_cursors_encode_safely(pairs in positions(80)) {
        check_encoding(&cursor_of(&pairs));
    }
}
