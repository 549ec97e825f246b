//! Any text as a presented API key and as a stored key record.
#![no_main]

use edgestream_core_fuzz::checks::api_key::{check_key, check_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    check_key(text);
    check_record(text, 1_750_000_000);
});
