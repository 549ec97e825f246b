//! Any text as a channel name, and as the three parts of one (split at the
//! first two line feeds).
#![no_main]

use edgestream_core_fuzz::checks::channel::{check_build, check_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    check_name(text);
    let parts: Vec<&str> = text.splitn(3, '\n').collect();
    if let [prefix, tenant, resource] = parts[..] {
        check_build(prefix, tenant, resource);
    }
});
