//! Exponential backoff with jitter, for publish retries and Valkey
//! reconnections.
//!
//! The delay doubles per attempt up to a cap, and each wait is drawn from the
//! upper half of the current delay ("equal jitter"): never less than half, so
//! a failing edge is not hammered, and spread out, so many bridges (or many
//! lanes of one bridge) that failed together do not retry in lockstep.
//!
//! When the edge says how long to stay away (`Retry-After` on a 429 or 503),
//! the wait is at least that, plus up to a quarter more: the edge gives every
//! client it sheds the same number, and without the spread they would all
//! come back in the same instant.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call moves one attempt on.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = ceiling - half;
        let jitter = spread.mul_f64(fastrand::f64());
        half + jitter
    }

    /// The delay before the next attempt when the edge asked for
    /// `retry_after`: never less than that, and never less than the backoff
    /// would wait, so an edge that keeps asking for a short pause still sees
    /// the delay grow.
    pub fn after_refusal(&mut self, retry_after: Duration) -> Duration {
        let spread = retry_after.mul_f64(0.25 * fastrand::f64());
        self.next_delay().max(retry_after + spread)
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// `initial * 2^attempt`, capped.
    fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_within_the_upper_half_then_caps() {
        let mut b = Backoff::new(100 * MS, 5_000 * MS);
        for ceiling in [100u32, 200, 400, 800, 1600, 3200, 5000, 5000, 5000] {
            let d = b.next_delay();
            assert!(
                d >= MS * ceiling / 2 && d <= MS * ceiling,
                "{d:?} for ceiling {ceiling}"
            );
        }
        assert_eq!(b.attempts(), 9);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(100 * MS, 5_000 * MS);
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= 100 * MS);
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut delays = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(1_000 * MS, 1_000 * MS);
            delays.insert(b.next_delay());
        }
        assert!(delays.len() > 10, "{} distinct delays", delays.len());
    }

    #[test]
    fn retry_after_is_a_floor_with_spread() {
        let mut delays = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(100 * MS, 5_000 * MS);
            let d = b.after_refusal(Duration::from_secs(2));
            assert!(d >= Duration::from_secs(2) && d <= 2_500 * MS, "{d:?}");
            assert_eq!(b.attempts(), 1);
            delays.insert(d);
        }
        assert!(delays.len() > 10, "{} distinct delays", delays.len());
        // A zero Retry-After still backs off, and the backoff keeps growing.
        let mut b = Backoff::new(100 * MS, 5_000 * MS);
        for _ in 0..5 {
            b.after_refusal(Duration::ZERO);
        }
        assert!(b.after_refusal(Duration::ZERO) >= 1_600 * MS);
    }

    #[test]
    fn a_cap_below_the_start_is_the_start() {
        let mut b = Backoff::new(100 * MS, MS);
        assert!(b.next_delay() <= 100 * MS);
    }
}
