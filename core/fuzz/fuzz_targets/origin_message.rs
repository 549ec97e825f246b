//! Any bytes as a Pub/Sub message the bridge receives.
#![no_main]

use edgestream_core_fuzz::checks::origin::check_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| check_message(payload));
