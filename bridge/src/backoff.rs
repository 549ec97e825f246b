//! Exponential backoff with jitter, for publish retries and Valkey
//! reconnections.
//!
//! The delay doubles per attempt up to a cap, and each wait is drawn from the
//! upper half of the current delay ("equal jitter"): never less than half, so
//! a failing edge is not hammered, and spread out, so many bridges (or many
//! lanes of one bridge) that failed together do not retry in lockstep.

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
    fn a_cap_below_the_start_is_the_start() {
        let mut b = Backoff::new(100 * MS, MS);
        assert!(b.next_delay() <= 100 * MS);
    }
}
