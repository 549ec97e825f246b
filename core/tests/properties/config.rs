//! How many cases a property runs, and from which seed.
//!
//! `cargo test` runs every property with [`GATE_SEED`] and its gate budget,
//! so the suite is deterministic and costs a few seconds. A longer run
//! (`scripts/fuzz`) multiplies every budget and draws a fresh seed:
//!
//! - `EDGESTREAM_PROPERTY_SCALE=<n>`: n times each property's gate cases;
//! - `EDGESTREAM_PROPERTY_SEED=<u64>`: the seed (default the gate's).
//!
//! Failure persistence is off: a counterexample becomes a named regression
//! test next to its property, not a `proptest-regressions` file.

use proptest::test_runner::{Config, RngSeed};

/// The seed of every `cargo test` run.
pub const GATE_SEED: u64 = 18;

/// The configuration of a property that runs `gate_cases` cases in
/// `cargo test`. The seed is printed, so a failure's output names it beside
/// proptest's minimal input.
pub fn config(gate_cases: u32) -> Config {
    let seed = match std::env::var("EDGESTREAM_PROPERTY_SEED") {
        Err(_) => GATE_SEED,
        Ok(value) => value
            .parse()
            .expect("EDGESTREAM_PROPERTY_SEED must be an integer"),
    };
    let scale: u32 = match std::env::var("EDGESTREAM_PROPERTY_SCALE") {
        Err(_) => 1,
        Ok(value) => value
            .parse()
            .expect("EDGESTREAM_PROPERTY_SCALE must be a positive integer"),
    };
    let cases = gate_cases.saturating_mul(scale);
    eprintln!("EDGESTREAM_PROPERTY_SEED={seed} cases={cases}");
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}
