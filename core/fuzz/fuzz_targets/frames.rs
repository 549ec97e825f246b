//! Any channel and events as a frames message, sequence numbers made
//! increasing and below 2^53 as the object keeps them.
#![no_main]

use edgestream_core_fuzz::checks::frames::check_frames;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, u32, Vec<(u16, String, String)>)| {
    let (channel, start, events) = input;
    let mut seq = u64::from(start);
    let events: Vec<(u64, String, String)> = events
        .into_iter()
        .map(|(step, event, data)| {
            seq += u64::from(step) + 1;
            (seq, event, data)
        })
        .collect();
    check_frames(&channel, &events);
});
