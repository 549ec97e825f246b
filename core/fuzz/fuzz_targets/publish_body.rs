//! Any bytes as a `POST /v1/publish` body, under the default size limit
//! and a small one.
#![no_main]

use edgestream_core_fuzz::checks::publish::check_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    check_body(body, 64 * 1024);
    check_body(body, 16);
});
