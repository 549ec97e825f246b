//! Any field/value pairs as a Valkey Streams entry the bridge reads.
#![no_main]

use edgestream_core_fuzz::checks::origin::check_stream_entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|fields: Vec<(Vec<u8>, Vec<u8>)>| check_stream_entry(&fields));
