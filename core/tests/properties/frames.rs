//! Frames messages between a channel's object and single-channel streams.

use crate::checks::frames::check_frames;
use crate::config::config;
use crate::strategies::{channel, hostile, json_text, size};
use proptest::prelude::*;

/// Events in increasing sequence order, below 2^53 as the object keeps them.
fn events(max_data: usize, max_events: usize) -> impl Strategy<Value = Vec<(u64, String, String)>> {
    let event = prop_oneof![3 => "[A-Za-z0-9_.-]{1,16}", 1 => Just(String::new()), 1 => hostile(4)];
    let data = prop_oneof![
        4 => json_text().prop_map(|j| j.replace(['\n', '\r'], "")),
        2 => hostile(8),
        1 => size(max_data).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
    ];
    (
        0..(1u64 << 52),
        proptest::collection::vec((1..1_000u64, event, data), 0..max_events),
    )
        .prop_map(|(start, events)| {
            let mut seq = start;
            events
                .into_iter()
                .map(|(step, event, data)| {
                    seq += step;
                    (seq, event, data)
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(config(64))]

    /// Every frame reads as exactly its event, carries no line the event
    /// did not have, and a stream at any cursor gets exactly the frames
    /// after it.
    #[test]
    fn frames_are_their_events(channel in prop_oneof![channel(), hostile(6)], events in events(64, 8)) {
        check_frames(&channel, &events);
    }
}

proptest! {
    #![proptest_config(config(8))]

    /// Batches larger than a message are cut between frames.
    #[test]
    fn large_batches_are_cut_between_frames(channel in channel(), events in events(300_000, 10)) {
        check_frames(&channel, &events);
    }
}
