//! Any text as `JWT_PUBLIC_KEY` PEM.
#![no_main]

use edgestream_core_fuzz::checks::pem::check_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|pem: &str| check_text(pem));
