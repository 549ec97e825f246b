//! Any text as a relay message a stream receives from a channel's object.
#![no_main]

use edgestream_core_fuzz::checks::relay::check_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|message: &str| check_message(message));
