//! Any header and payload bytes (split at the first 0xFF, which JSON text
//! never holds), correctly signed, so the fuzzer reaches the claim rules.
#![no_main]

use edgestream_core_fuzz::checks::token::check_envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, payload) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    check_envelope(header, payload);
});
