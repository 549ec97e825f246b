//! Relay records between a channel's object and its streams.

use crate::checks::relay::{check_message, check_writer, Record};
use crate::config::config;
use crate::strategies::{hostile, json_text, mutated, sequence_text, size};
use proptest::prelude::*;

/// Sequence numbers as the object has them: below 2^53.
const MAX_SEQ: u64 = (1 << 53) - 1;

/// Records the object writes: validated event types and compact data.
fn record(max_data: usize) -> impl Strategy<Value = Record> {
    let data = prop_oneof![
        4 => json_text().prop_map(|j| j.replace(['\n', '\r', '\t', ' '], "")),
        1 => size(max_data).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
    ];
    prop_oneof![
        6 => (0..=MAX_SEQ, "[A-Za-z0-9_.-]{1,64}", data).prop_map(|(seq, event, data)| Record::Event { seq, event, data }),
        1 => (0..=MAX_SEQ).prop_map(|head| Record::Reset { head }),
        1 => (0..=MAX_SEQ).prop_map(|head| Record::Live { head }),
    ]
}

/// A line of a received message: a record, a near miss of one, or noise.
fn line() -> impl Strategy<Value = String> {
    let valid = prop_oneof![
        "[0-9]{1,20} [a-z.]{1,8} [!-~ ]{0,12}",
        "(reset|live) [0-9]{1,21}",
    ];
    let near_miss_number = prop_oneof![
        (sequence_text(), "( [a-z.]{0,8}( [!-~ ]{0,8})?)?").prop_map(|(n, rest)| n + &rest),
        (
            proptest::sample::select(&["reset", "live", "Reset", "reset "][..]),
            sequence_text()
        )
            .prop_map(|(kind, n)| format!("{kind} {n}")),
    ];
    prop_oneof![
        3 => valid.clone().prop_map(String::from),
        3 => mutated(valid.prop_map(String::from)),
        2 => near_miss_number,
        1 => hostile(6),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// A batch reads back as exactly its records, in order.
    #[test]
    fn batches_round_trip(batch in proptest::collection::vec(record(64), 0..12)) {
        check_writer(&batch);
    }

    /// Received text: one result per line, refusals are the line itself,
    /// records read back the same once written again.
    #[test]
    fn messages_read_line_by_line(lines in proptest::collection::vec(line(), 0..8)) {
        check_message(&lines.join("\n"));
    }
}

proptest! {
    #![proptest_config(config(8))]

    /// Batches larger than a message are cut between records, and only a
    /// record alone may pass the message size.
    #[test]
    fn large_batches_are_cut_between_records(batch in proptest::collection::vec(record(300_000), 1..16)) {
        check_writer(&batch);
    }
}
