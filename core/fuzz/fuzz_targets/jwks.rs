//! Any text as a JWKS document.
#![no_main]

use edgestream_core_fuzz::checks::jwks::check_set;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &str| check_set(json));
