//! Any bytes as a `POST /v1/tickets` body and as a presented ticket id.
#![no_main]

use edgestream_core_fuzz::checks::ticket::{check_request, check_shape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    check_request(body, 5);
    if let Ok(text) = std::str::from_utf8(body) {
        check_shape(text);
    }
});
