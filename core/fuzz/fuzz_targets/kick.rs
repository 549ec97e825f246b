//! Any bytes as a `POST /v1/admin/kick` body.
#![no_main]

use edgestream_core_fuzz::checks::kick::check_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| check_body(body, 1_750_000_000));
