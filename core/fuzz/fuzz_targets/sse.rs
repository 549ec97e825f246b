//! Any id, event type and data through the SSE writer, and any text as a
//! comment.
#![no_main]

use edgestream_core_fuzz::checks::sse::{check_comment, check_event, check_retry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Option<String>, String, String, u64)| {
    let (id, event, data, retry) = input;
    check_event(id.as_deref(), &event, &data);
    check_comment(&data);
    check_retry(retry);
});
