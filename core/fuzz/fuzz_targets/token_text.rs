//! Any text as a bearer token, verified against the fixtures' keys.
#![no_main]

use edgestream_core_fuzz::checks::token::check_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| check_text(token));
