//! A stream request's query pairs, channel limit and token tenant.
#![no_main]

use edgestream_core_fuzz::checks::channel::check_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, String)>, u8, Option<String>)| {
    let (query, max, tenant) = input;
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    check_request(&query, usize::from(max % 8), tenant.as_deref());
});
