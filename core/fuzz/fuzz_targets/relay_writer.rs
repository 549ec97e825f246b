//! Any records the object may write: event types reduced to their
//! validated alphabet and data to one line, as the publish parser leaves
//! them.
#![no_main]

use edgestream_core_fuzz::checks::relay::{check_writer, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|records: Vec<(u8, u64, String, String)>| {
    let batch: Vec<Record> = records
        .into_iter()
        .map(|(kind, seq, event, data)| match kind % 4 {
            0 => Record::Reset { head: seq },
            1 => Record::Live { head: seq },
            _ => {
                let event: String = event
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
                    .collect();
                Record::Event {
                    seq,
                    event: if event.is_empty() { "e".into() } else { event },
                    data: data.replace('\n', ""),
                }
            }
        })
        .collect();
    check_writer(&batch);
});
