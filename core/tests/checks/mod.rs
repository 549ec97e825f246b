//! The invariants of every parser that reads client or origin input, as
//! plain functions that panic when an input breaks one.
//!
//! Each function takes input of any shape and says what must hold for it, so
//! the same check runs on two sources of inputs: the property tests
//! (`tests/properties`, proptest generators of valid and near-valid input)
//! and the libFuzzer targets (`fuzz/`, coverage-guided mutation), which
//! include this directory by path. A property therefore exists once, and a
//! fuzzer finding is a property failure, not merely a crash.
//!
//! Checks use only the crate's public API and, where they need to decide
//! whether an input is valid, their own reading of the contract
//! (`DESIGN.md`), never the implementation's helpers.

pub mod api_key;
pub mod channel;
pub mod credentials;
pub mod cursor;
pub mod fixtures;
pub mod frames;
pub mod json;
pub mod jwks;
pub mod kick;
pub mod origin;
pub mod pem;
pub mod problem;
pub mod publish;
pub mod relay;
pub mod sse;
pub mod sse_reader;
pub mod ticket;
pub mod token;
