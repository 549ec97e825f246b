//! Property tests of every parser that reads client or origin input, and
//! the named regression tests of what they found. One file per parser; the
//! invariants themselves are in `tests/checks`, shared with the libFuzzer
//! targets in `fuzz/`. See `docs/reliability.md` for budgets and findings.

#[path = "../checks/mod.rs"]
mod checks;
mod config;
mod strategies;

mod api_key;
mod channel;
mod channel_list;
mod credentials;
mod cursor;
mod frames;
mod jwks;
mod kick;
mod origin;
mod pem;
mod publish;
mod relay;
mod sse;
mod ticket;
mod token;
