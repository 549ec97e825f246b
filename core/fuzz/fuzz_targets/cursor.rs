//! Any text as a `Last-Event-ID`.
#![no_main]

use edgestream_core_fuzz::checks::cursor::check_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|id: &str| check_text(id));
