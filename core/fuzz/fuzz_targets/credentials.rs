//! An `Authorization` header (or none) and the `access_token` and `ticket`
//! query values.
#![no_main]

use edgestream_core_fuzz::checks::credentials::{check_scheme_case, check_selection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Option<String>, Vec<String>, Vec<String>)| {
    let (header, tokens, tickets) = input;
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let tickets: Vec<&str> = tickets.iter().map(String::as_str).collect();
    check_selection(header.as_deref(), &tokens, &tickets);
    if let Some((scheme, value)) = header.as_deref().and_then(|h| h.split_once(' ')) {
        check_scheme_case(scheme, value);
    }
});
