//! When to fetch a JWKS from `JWKS_URL`: the cache policy, without the fetch.
//!
//! The Worker keeps one [`JwksCache`] per isolate, asks it whether to fetch
//! before verifying, and stores what it fetched. Two rules, both with the
//! time passed in:
//!
//! - keys older than the TTL (default 300 s) are refreshed, so a rotation at
//!   the issuer is picked up within minutes;
//! - a token whose `kid` is unknown ([`TokenError::UnknownKey`]) may trigger
//!   one early refresh (the issuer may have just rotated), but at most once
//!   per minimum interval (default 60 s). Otherwise anyone could send tokens
//!   with random `kid`s and make every request fetch from the issuer: the
//!   relay would be an amplifier against it and slow for everyone.
//!
//! Every fetch attempt counts for the interval, failed ones too, so an issuer
//! that is down is asked once a minute, not on every request. Until a fetch
//! succeeds the previous keys stay in use: an unreachable issuer does not
//! lock out every user, at the price that a key removed from the JWKS stays
//! trusted until the next successful fetch.
//!
//! [`TokenError::UnknownKey`]: crate::token::TokenError::UnknownKey

use crate::keys::{KeyError, SkippedKey, VerificationKey};
use std::rc::Rc;

/// How long fetched keys are used before they are refreshed.
pub const DEFAULT_TTL_SECONDS: u64 = 300;

/// The least time between two fetches that were not due by TTL.
pub const MIN_REFRESH_INTERVAL_SECONDS: u64 = 60;

/// The cache's timing rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksPolicy {
    pub ttl_seconds: u64,
    pub min_refresh_interval_seconds: u64,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        JwksPolicy {
            ttl_seconds: DEFAULT_TTL_SECONDS,
            min_refresh_interval_seconds: MIN_REFRESH_INTERVAL_SECONDS,
        }
    }
}

/// Why the Worker is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshTrigger {
    /// Before verifying any token: refresh when the keys are missing or old.
    Request,
    /// A token's `kid` named no key: refresh early, within the rate limit.
    UnknownKey,
}

/// The keys fetched from `JWKS_URL` and when; times are Unix seconds.
#[derive(Clone, Debug, Default)]
pub struct JwksCache {
    policy: JwksPolicy,
    /// Shared, so that a verification can hold the keys across its awaits
    /// while a refresh replaces them.
    keys: Rc<[VerificationKey]>,
    /// When the keys in use were fetched; `None` before the first success.
    fetched_at: Option<u64>,
    /// When a fetch was last started, whether or not it succeeded.
    attempted_at: Option<u64>,
}

impl JwksCache {
    pub fn new(policy: JwksPolicy) -> Self {
        JwksCache {
            policy,
            ..JwksCache::default()
        }
    }

    pub fn policy(&self) -> JwksPolicy {
        self.policy
    }

    /// The keys to pass to [`JwtVerifier::verify`]; empty until the first
    /// successful fetch.
    ///
    /// [`JwtVerifier::verify`]: crate::token::JwtVerifier::verify
    pub fn keys(&self) -> Rc<[VerificationKey]> {
        Rc::clone(&self.keys)
    }

    pub fn fetched_at(&self) -> Option<u64> {
        self.fetched_at
    }

    /// Whether the keys are missing or older than the TTL.
    pub fn is_stale(&self, now_unix: u64) -> bool {
        match self.fetched_at {
            None => true,
            Some(at) => elapsed(at, now_unix) >= self.policy.ttl_seconds,
        }
    }

    /// Whether the Worker should fetch now. A stale cache is refreshed, and
    /// an unknown `kid` forces a refresh of a fresh one; both only when no
    /// attempt was made within the minimum interval.
    pub fn should_refresh(&self, now_unix: u64, trigger: RefreshTrigger) -> bool {
        let rested = match self.attempted_at {
            None => true,
            Some(at) => elapsed(at, now_unix) >= self.policy.min_refresh_interval_seconds,
        };
        match trigger {
            RefreshTrigger::Request => rested && self.is_stale(now_unix),
            RefreshTrigger::UnknownKey => rested,
        }
    }

    /// Records that a fetch starts, before the Worker awaits it, so that the
    /// other requests of the isolate that arrive meanwhile do not fetch too.
    pub fn start_refresh(&mut self, now_unix: u64) {
        self.attempted_at = Some(now_unix);
    }

    /// Replaces the keys with freshly fetched ones. The rate limit counts
    /// from [`start_refresh`](Self::start_refresh); a store without one
    /// counts as an attempt now.
    pub fn store(&mut self, keys: Vec<VerificationKey>, now_unix: u64) {
        self.keys = keys.into();
        self.fetched_at = Some(now_unix);
        self.attempted_at.get_or_insert(now_unix);
    }

    /// Parses a fetched JWKS body and stores its keys. On an error the
    /// previous keys stay in use (the attempt still counts for the rate
    /// limit); the skipped entries are returned for the log.
    pub fn store_fetched(
        &mut self,
        body: &str,
        now_unix: u64,
    ) -> Result<Vec<SkippedKey>, KeyError> {
        let (keys, skipped) = VerificationKey::from_jwks_with_skipped(body)?;
        self.store(keys, now_unix);
        Ok(skipped)
    }
}

/// Seconds from `then` to `now`; a clock that went back counts as no time,
/// which errs toward not fetching.
fn elapsed(then: u64, now: u64) -> u64 {
    now.saturating_sub(then)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn key() -> VerificationKey {
        VerificationKey::hmac(b"placeholder key for the cache tests").unwrap()
    }

    fn fetched_at(at: u64) -> JwksCache {
        let mut cache = JwksCache::default();
        cache.start_refresh(at);
        cache.store(vec![key()], at);
        cache
    }

    #[test]
    fn defaults_are_five_minutes_and_one_minute() {
        assert_eq!(
            JwksPolicy::default(),
            JwksPolicy {
                ttl_seconds: 300,
                min_refresh_interval_seconds: 60
            }
        );
    }

    #[test]
    fn empty_cache_fetches_on_the_first_request() {
        let cache = JwksCache::default();
        assert!(cache.keys().is_empty());
        assert!(cache.is_stale(T0));
        assert!(cache.should_refresh(T0, RefreshTrigger::Request));
        assert!(cache.should_refresh(T0, RefreshTrigger::UnknownKey));
    }

    #[test]
    fn fresh_keys_are_used_until_the_ttl() {
        let cache = fetched_at(T0);
        assert_eq!((cache.keys().len(), cache.fetched_at()), (1, Some(T0)));
        for now in [T0, T0 + 1, T0 + 299] {
            assert!(!cache.should_refresh(now, RefreshTrigger::Request), "{now}");
        }
        assert!(cache.should_refresh(T0 + 300, RefreshTrigger::Request));
        assert!(cache.should_refresh(T0 + 10_000, RefreshTrigger::Request));
    }

    #[test]
    fn unknown_kid_refreshes_at_most_once_per_interval() {
        let mut cache = fetched_at(T0);
        // Just fetched: a random kid cannot cause another fetch yet.
        assert!(!cache.should_refresh(T0 + 59, RefreshTrigger::UnknownKey));
        assert!(cache.should_refresh(T0 + 60, RefreshTrigger::UnknownKey));
        cache.start_refresh(T0 + 60);
        cache.store(vec![key()], T0 + 61);

        // A flood of unknown kids over the next minutes: one fetch a minute.
        let mut fetches = 0;
        for now in T0 + 61..T0 + 61 + 600 {
            if cache.should_refresh(now, RefreshTrigger::UnknownKey) {
                cache.start_refresh(now);
                cache.store(vec![key()], now);
                fetches += 1;
            }
        }
        assert_eq!(fetches, 10);
    }

    #[test]
    fn an_attempt_in_flight_stops_other_requests_from_fetching() {
        let mut cache = fetched_at(T0);
        let now = T0 + 400;
        assert!(cache.should_refresh(now, RefreshTrigger::Request));
        cache.start_refresh(now);
        assert!(!cache.should_refresh(now, RefreshTrigger::Request));
        assert!(!cache.should_refresh(now, RefreshTrigger::UnknownKey));
    }

    #[test]
    fn failed_fetch_keeps_the_old_keys_and_retries_after_the_interval() {
        let mut cache = fetched_at(T0);
        let now = T0 + 300;
        cache.start_refresh(now);
        assert_eq!(
            cache.store_fetched("not json", now),
            Err(KeyError::MalformedJwks)
        );
        assert_eq!(
            cache.store_fetched(r#"{"keys":[]}"#, now),
            Err(KeyError::NoUsableKey)
        );
        assert_eq!((cache.keys().len(), cache.fetched_at()), (1, Some(T0)));
        // Still stale, but the issuer is asked again only a minute later.
        assert!(cache.is_stale(now + 1));
        assert!(!cache.should_refresh(now + 59, RefreshTrigger::Request));
        assert!(cache.should_refresh(now + 60, RefreshTrigger::Request));
    }

    #[test]
    fn empty_cache_whose_fetch_failed_waits_the_interval_too() {
        let mut cache = JwksCache::default();
        cache.start_refresh(T0);
        assert!(cache.store_fetched("<html>502</html>", T0).is_err());
        assert!(!cache.should_refresh(T0 + 30, RefreshTrigger::Request));
        assert!(!cache.should_refresh(T0 + 30, RefreshTrigger::UnknownKey));
        assert!(cache.should_refresh(T0 + 60, RefreshTrigger::Request));
    }

    #[test]
    fn store_fetched_replaces_keys_and_reports_skipped_entries() {
        let mut cache = fetched_at(T0);
        let body = include_str!("../tests/fixtures/public-keys.json");
        let jwks: serde_json::Value = serde_json::from_str(body).unwrap();
        let set = serde_json::json!({"keys": [jwks["ed25519-a"], jwks["p384"]]});
        cache.start_refresh(T0 + 300);
        let skipped = cache.store_fetched(&set.to_string(), T0 + 300).unwrap();
        assert_eq!(cache.keys().len(), 1);
        assert_eq!(cache.fetched_at(), Some(T0 + 300));
        assert_eq!(
            skipped,
            [SkippedKey {
                kid: None,
                reason: KeyError::UnsupportedCurve
            }]
        );
    }

    #[test]
    fn clock_going_back_does_not_cause_fetches() {
        let cache = fetched_at(T0);
        assert!(!cache.is_stale(T0 - 1000));
        assert!(!cache.should_refresh(T0 - 1000, RefreshTrigger::Request));
        assert!(!cache.should_refresh(T0 - 1000, RefreshTrigger::UnknownKey));
    }

    #[test]
    fn custom_policy() {
        let mut cache = JwksCache::new(JwksPolicy {
            ttl_seconds: 3600,
            min_refresh_interval_seconds: 10,
        });
        cache.start_refresh(T0);
        cache.store(vec![key()], T0);
        assert!(!cache.should_refresh(T0 + 3599, RefreshTrigger::Request));
        assert!(cache.should_refresh(T0 + 3600, RefreshTrigger::Request));
        assert!(cache.should_refresh(T0 + 10, RefreshTrigger::UnknownKey));
        assert_eq!(cache.policy().ttl_seconds, 3600);
    }

    #[test]
    fn debug_output_hides_key_material() {
        let cache = fetched_at(T0);
        let shown = format!("{cache:?}");
        assert!(!shown.contains("placeholder"), "{shown}");
    }
}
