//! Per-tenant quota on open streams, counted with leases so that opening a
//! stream needs no per-tenant round trip.
//!
//! The tenant's object keeps a [`Ledger`]: which isolates (holders) hold how
//! many of the tenant's stream slots, each until its lease expires. An
//! isolate keeps a [`Pool`] per tenant: it asks the ledger for a block of
//! slots at once and hands them to its streams itself; a stream that ends
//! gives its slot back to the pool, not to the ledger. The ledger is asked
//! only when the pool is empty and when the lease is renewed, so a tenant
//! with many streams per isolate costs one round trip per block, not per
//! stream.
//!
//! Leases expire unless renewed: an isolate that vanishes (evicted,
//! crashed) leaks its slots for at most [`LEASE_TTL_MS`]. A renewal asks for
//! what the isolate uses plus one block, so idle slots go back to the ledger
//! within [`RENEW_EVERY_MS`], where other isolates of the tenant can get
//! them.
//!
//! Every ask names the whole lease it wants (not a delta) with a sequence
//! number, so asks that race, are answered out of order or are repeated
//! leave the ledger and the pool agreeing on the latest one. Both sides
//! clamp their clock to the latest instant they saw, so a clock that goes
//! backwards neither revives an expired lease nor keeps one alive longer.
//! The pool counts its lease from when it sent the ask, which is no later
//! than when the ledger granted it, so the pool always stops using a lease
//! before the ledger hands its slots to someone else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long a lease lives at the ledger after its last grant.
pub const LEASE_TTL_MS: u64 = 30_000;
/// How often a pool renews its lease while it has streams. A third of the
/// TTL: two renewals may fail before the lease lapses.
pub const RENEW_EVERY_MS: u64 = 10_000;
/// The `Retry-After` of a stream refused over quota: by then every other
/// isolate of the tenant has renewed and given back the slots it left idle.
pub const STREAM_RETRY_AFTER_SECONDS: u64 = RENEW_EVERY_MS / 1000;
/// How much earlier than the ledger a pool takes its lease to end: the
/// isolate's and the object's clocks may disagree by this much.
pub const CLOCK_SKEW_MS: u64 = 2_000;
/// The largest block a pool asks for beyond what it uses.
const MAX_BLOCK: u64 = 64;

/// Slots a pool asks for beyond its need: a sixteenth of the limit, 1 to
/// [`MAX_BLOCK`]. Small enough that a few isolates cannot sit on the quota
/// between them, large enough that a busy isolate asks rarely.
pub fn block_size(limit: u64) -> u64 {
    (limit / 16).clamp(1, MAX_BLOCK)
}

/// An isolate's ask for its lease of a tenant's stream slots: `want` in
/// total, out of `limit` for the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseAsk {
    pub holder: String,
    pub seq: u64,
    pub want: u64,
    pub limit: u64,
}

/// The lease a holder has after an ask: `slots` for `expires_in_ms` from
/// when the ledger answered. `seq` is the ask it reflects (a newer one than
/// asked, when the ask arrived after a newer one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub seq: u64,
    pub slots: u64,
    pub expires_in_ms: u64,
}

/// One holder's lease, as the ledger stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    pub slots: u64,
    pub expires_ms: u64,
    pub seq: u64,
}

/// What an ask changed in the ledger, for its storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerChange {
    Put(Lease),
    Remove(String),
}

/// The tenant's leases.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    leases: BTreeMap<String, Lease>,
    clock_ms: u64,
}

impl Ledger {
    /// The ledger from its stored leases. Its clock starts at the latest
    /// grant among them, so a clock that restarted behind cannot extend them.
    pub fn from_leases(leases: impl IntoIterator<Item = Lease>) -> Self {
        let leases: BTreeMap<String, Lease> =
            leases.into_iter().map(|l| (l.holder.clone(), l)).collect();
        let clock_ms = leases
            .values()
            .map(|l| l.expires_ms.saturating_sub(LEASE_TTL_MS))
            .max()
            .unwrap_or(0);
        Ledger { leases, clock_ms }
    }

    /// Slots held under leases live at `now_ms`.
    pub fn held(&self, now_ms: u64) -> u64 {
        let now = now_ms.max(self.clock_ms);
        self.leases
            .values()
            .filter(|l| l.expires_ms > now)
            .map(|l| l.slots)
            .sum()
    }

    /// Grants as much of `ask.want` as the other live leases leave under the
    /// limit. Expired leases are dropped on the way.
    pub fn ask(&mut self, ask: &LeaseAsk, now_ms: u64) -> (LeaseGrant, Vec<LedgerChange>) {
        self.clock_ms = self.clock_ms.max(now_ms);
        let now = self.clock_ms;
        let mut changes: Vec<LedgerChange> = Vec::new();
        let expired: Vec<String> = self
            .leases
            .values()
            .filter(|l| l.expires_ms <= now)
            .map(|l| l.holder.clone())
            .collect();
        for holder in expired {
            self.leases.remove(&holder);
            changes.push(LedgerChange::Remove(holder));
        }
        if let Some(current) = self.leases.get(&ask.holder) {
            if current.seq >= ask.seq {
                // A stale or repeated ask: the newer one stands.
                let grant = LeaseGrant {
                    seq: current.seq,
                    slots: current.slots,
                    expires_in_ms: current.expires_ms - now,
                };
                return (grant, changes);
            }
        }
        let others: u64 = self
            .leases
            .values()
            .filter(|l| l.holder != ask.holder)
            .map(|l| l.slots)
            .sum();
        let slots = ask.want.min(ask.limit.saturating_sub(others));
        if slots == 0 {
            if self.leases.remove(&ask.holder).is_some() {
                changes.push(LedgerChange::Remove(ask.holder.clone()));
            }
            let grant = LeaseGrant {
                seq: ask.seq,
                slots: 0,
                expires_in_ms: 0,
            };
            return (grant, changes);
        }
        let lease = Lease {
            holder: ask.holder.clone(),
            slots,
            expires_ms: now + LEASE_TTL_MS,
            seq: ask.seq,
        };
        self.leases.insert(ask.holder.clone(), lease.clone());
        changes.push(LedgerChange::Put(lease));
        let grant = LeaseGrant {
            seq: ask.seq,
            slots,
            expires_in_ms: LEASE_TTL_MS,
        };
        (grant, changes)
    }
}

/// An ask a pool sent, and when (its own clock), to match with its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub ask: LeaseAsk,
    pub at_ms: u64,
}

/// What a pool says to a stream that wants a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A slot from the pool; no round trip.
    Admitted,
    /// The pool is empty: send this ask, then call [`Pool::answered`].
    Ask(Sent),
}

/// An isolate's slots of one tenant.
#[derive(Clone, Debug)]
pub struct Pool {
    holder: String,
    limit: u64,
    block: u64,
    granted: u64,
    in_use: u64,
    /// Streams whose ask is out.
    waiting: u64,
    expires_ms: u64,
    renew_at_ms: u64,
    renewing: bool,
    /// While a renewal or a give-back is out, its sequence number and what
    /// it asked for: the grant may shrink to that, so the pool hands out no
    /// more until it is answered or a newer grant is.
    pending: Option<(u64, u64)>,
    sent_seq: u64,
    applied_seq: u64,
    clock_ms: u64,
}

impl Pool {
    pub fn new(holder: impl Into<String>, limit: u64) -> Self {
        Pool {
            holder: holder.into(),
            limit,
            block: block_size(limit),
            granted: 0,
            in_use: 0,
            waiting: 0,
            expires_ms: 0,
            renew_at_ms: 0,
            renewing: false,
            pending: None,
            sent_seq: 0,
            applied_seq: 0,
            clock_ms: 0,
        }
    }

    fn tick(&mut self, now_ms: u64) -> u64 {
        self.clock_ms = self.clock_ms.max(now_ms);
        self.clock_ms
    }

    /// Slots this pool may hand out now.
    fn usable(&self) -> u64 {
        if self.clock_ms < self.expires_ms {
            self.granted
                .min(self.pending.map_or(u64::MAX, |(_, want)| want))
        } else {
            0
        }
    }

    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Takes a slot for a new stream, or says what to ask the ledger.
    pub fn admit(&mut self, now_ms: u64) -> Admission {
        self.tick(now_ms);
        if self.in_use < self.usable() {
            self.in_use += 1;
            return Admission::Admitted;
        }
        self.waiting += 1;
        Admission::Ask(self.send(self.in_use + self.waiting + self.block))
    }

    fn send(&mut self, want: u64) -> Sent {
        self.sent_seq += 1;
        Sent {
            ask: LeaseAsk {
                holder: self.holder.clone(),
                seq: self.sent_seq,
                want: want.min(self.limit),
                limit: self.limit,
            },
            at_ms: self.clock_ms,
        }
    }

    /// Takes the ledger's answer to a newer ask than any answered before.
    fn apply(&mut self, sent: &Sent, grant: &LeaseGrant) {
        if grant.seq < self.applied_seq {
            return;
        }
        self.applied_seq = grant.seq;
        if self.pending.is_some_and(|(seq, _)| grant.seq > seq) {
            self.pending = None;
        }
        self.granted = grant.slots;
        self.expires_ms = (sent.at_ms + grant.expires_in_ms).saturating_sub(CLOCK_SKEW_MS);
        self.renew_at_ms = sent.at_ms.saturating_add(RENEW_EVERY_MS);
    }

    /// The answer (none: the ledger could not be asked) to the ask of a
    /// waiting stream: whether the stream has a slot.
    pub fn answered(&mut self, sent: &Sent, grant: Option<&LeaseGrant>, now_ms: u64) -> bool {
        self.tick(now_ms);
        self.waiting = self.waiting.saturating_sub(1);
        if let Some(grant) = grant {
            self.apply(sent, grant);
        }
        if self.in_use < self.usable() {
            self.in_use += 1;
            true
        } else {
            false
        }
    }

    /// A stream ended: its slot is the pool's again.
    pub fn release(&mut self) {
        self.in_use = self.in_use.saturating_sub(1);
    }

    /// When the next renewal is due, while the pool holds a lease.
    pub fn renew_at_ms(&self) -> Option<u64> {
        (self.granted > 0).then_some(self.renew_at_ms)
    }

    /// The renewal to send now, if one is due and none is out: what the
    /// pool uses plus a block (nothing when it has no stream, which returns
    /// the lease).
    pub fn renewal(&mut self, now_ms: u64) -> Option<Sent> {
        let now = self.tick(now_ms);
        if self.renewing || self.granted == 0 || now < self.renew_at_ms {
            return None;
        }
        let used = self.in_use + self.waiting;
        let want = if used == 0 { 0 } else { used + self.block };
        let sent = self.send(want);
        self.renewing = true;
        self.pending = Some((sent.ask.seq, sent.ask.want));
        Some(sent)
    }

    /// The answer to a renewal (none: it failed, and the lease runs on to
    /// its expiry; the next renewal is tried a renewal period later).
    pub fn renewed(&mut self, sent: &Sent, grant: Option<&LeaseGrant>, now_ms: u64) {
        self.tick(now_ms);
        self.renewing = false;
        self.pending = None;
        match grant {
            Some(grant) => self.apply(sent, grant),
            None => self.renew_at_ms = self.clock_ms.saturating_add(RENEW_EVERY_MS),
        }
    }

    /// The ask that returns the lease at once, when the pool's last stream
    /// has ended (else the slots would sit idle here until the lease
    /// expires, while other isolates of the tenant may be refusing streams).
    pub fn give_back(&mut self, now_ms: u64) -> Option<Sent> {
        self.tick(now_ms);
        if self.in_use > 0 || self.waiting > 0 || self.renewing || self.usable() == 0 {
            return None;
        }
        let sent = self.send(0);
        self.renewing = true;
        self.pending = Some((sent.ask.seq, 0));
        Some(sent)
    }

    /// Holds nothing and owes nothing: the isolate may forget it.
    pub fn is_idle(&self) -> bool {
        self.in_use == 0 && self.waiting == 0 && !self.renewing && self.usable() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(holder: &str, seq: u64, want: u64, limit: u64) -> LeaseAsk {
        LeaseAsk {
            holder: holder.into(),
            seq,
            want,
            limit,
        }
    }

    /// Runs a pool's ask against the ledger at the same instant.
    fn admit(pool: &mut Pool, ledger: &mut Ledger, now: u64) -> bool {
        match pool.admit(now) {
            Admission::Admitted => true,
            Admission::Ask(sent) => {
                let (grant, _) = ledger.ask(&sent.ask, now);
                pool.answered(&sent, Some(&grant), now)
            }
        }
    }

    fn renew(pool: &mut Pool, ledger: &mut Ledger, now: u64) {
        if let Some(sent) = pool.renewal(now) {
            let (grant, _) = ledger.ask(&sent.ask, now);
            pool.renewed(&sent, Some(&grant), now);
        }
    }

    #[test]
    fn block_sizes_stay_in_range() {
        assert_eq!(block_size(1), 1);
        assert_eq!(block_size(15), 1);
        assert_eq!(block_size(160), 10);
        assert_eq!(block_size(1_000_000), MAX_BLOCK);
    }

    #[test]
    fn a_pool_admits_the_limit_and_refuses_one_more() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 3);
        for _ in 0..3 {
            assert!(admit(&mut pool, &mut ledger, 1000));
        }
        assert!(!admit(&mut pool, &mut ledger, 1000));
        assert_eq!(ledger.held(1000), 3);
        pool.release();
        assert!(admit(&mut pool, &mut ledger, 1001), "a freed slot readmits");
        assert!(!admit(&mut pool, &mut ledger, 1001));
    }

    #[test]
    fn a_block_is_asked_once_and_then_handed_out_locally() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 160);
        assert!(matches!(pool.admit(0), Admission::Ask(_)));
        let mut pool = Pool::new("a", 160);
        let mut asks = 0;
        for _ in 0..20 {
            match pool.admit(5) {
                Admission::Admitted => {}
                Admission::Ask(sent) => {
                    asks += 1;
                    let (grant, _) = ledger.ask(&sent.ask, 5);
                    assert!(pool.answered(&sent, Some(&grant), 5));
                }
            }
        }
        // 1 + 10 slots, then 12 + 10: two round trips for twenty streams.
        assert_eq!(asks, 2);
        assert_eq!(ledger.held(5), 22);
    }

    #[test]
    fn isolates_share_the_limit_and_never_pass_it() {
        let mut ledger = Ledger::default();
        let mut a = Pool::new("a", 40);
        let mut b = Pool::new("b", 40);
        let mut admitted = 0;
        for i in 0..100 {
            let pool = if i % 3 == 0 { &mut a } else { &mut b };
            if admit(pool, &mut ledger, 10) {
                admitted += 1;
            }
            assert!(ledger.held(10) <= 40);
        }
        assert_eq!(
            admitted, 40,
            "blocks that cannot be whole are granted in part"
        );
        assert_eq!(a.in_use() + b.in_use(), 40);
    }

    #[test]
    fn a_vanished_isolate_leaks_its_slots_only_until_its_lease_expires() {
        let mut ledger = Ledger::default();
        let mut gone = Pool::new("gone", 2);
        assert!(admit(&mut gone, &mut ledger, 0));
        assert!(admit(&mut gone, &mut ledger, 0));
        let mut other = Pool::new("other", 2);
        assert!(!admit(&mut other, &mut ledger, LEASE_TTL_MS - 1));
        assert!(admit(&mut other, &mut ledger, LEASE_TTL_MS));
        assert!(admit(&mut other, &mut ledger, LEASE_TTL_MS));
    }

    #[test]
    fn a_pool_stops_using_its_lease_before_the_ledger_frees_it() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 5);
        let Admission::Ask(sent) = pool.admit(1000) else {
            panic!("an empty pool asks")
        };
        // The ask reaches the ledger late: the ledger counts from later.
        let (grant, _) = ledger.ask(&sent.ask, 1400);
        assert!(pool.answered(&sent, Some(&grant), 1500));
        let expiry_at_pool = 1000 + LEASE_TTL_MS - CLOCK_SKEW_MS;
        assert!(matches!(
            pool.admit(expiry_at_pool - 1),
            Admission::Admitted
        ));
        assert!(matches!(pool.admit(expiry_at_pool), Admission::Ask(_)));
        assert!(
            ledger.held(expiry_at_pool) > 0,
            "the ledger still counts it"
        );
    }

    #[test]
    fn renewal_keeps_the_lease_and_gives_back_idle_slots() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 320);
        for _ in 0..30 {
            assert!(admit(&mut pool, &mut ledger, 0));
        }
        assert!(pool.renewal(RENEW_EVERY_MS - 1).is_none(), "not due yet");
        for _ in 0..25 {
            pool.release();
        }
        renew(&mut pool, &mut ledger, RENEW_EVERY_MS);
        // 5 in use plus a block of 20.
        assert_eq!(ledger.held(RENEW_EVERY_MS), 25);
        // Renewed every period, the lease outlives its first TTL.
        for n in 2..10 {
            renew(&mut pool, &mut ledger, n * RENEW_EVERY_MS);
        }
        assert_eq!(ledger.held(9 * RENEW_EVERY_MS + LEASE_TTL_MS - 1), 25);
        for _ in 0..5 {
            pool.release();
        }
        renew(&mut pool, &mut ledger, 10 * RENEW_EVERY_MS);
        assert_eq!(ledger.held(10 * RENEW_EVERY_MS), 0, "no stream: returned");
        assert!(pool.is_idle());
        assert_eq!(pool.renew_at_ms(), None);
    }

    #[test]
    fn the_last_stream_gives_the_lease_back() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 4);
        assert!(admit(&mut pool, &mut ledger, 0));
        assert!(admit(&mut pool, &mut ledger, 0));
        pool.release();
        assert!(pool.give_back(1).is_none(), "a stream is still open");
        pool.release();
        let sent = pool.give_back(1).expect("no stream left");
        assert!(pool.give_back(1).is_none(), "one is out");
        assert!(
            pool.renewal(RENEW_EVERY_MS).is_none(),
            "nor a renewal beside it"
        );
        let (grant, _) = ledger.ask(&sent.ask, 2);
        pool.renewed(&sent, Some(&grant), 2);
        assert_eq!(ledger.held(2), 0);
        assert!(pool.is_idle());
        let mut other = Pool::new("b", 4);
        for _ in 0..4 {
            assert!(
                admit(&mut other, &mut ledger, 3),
                "at once, not after the TTL"
            );
        }
    }

    #[test]
    fn streams_opening_while_a_renewal_is_out_stay_within_what_it_asked_for() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 320);
        for _ in 0..30 {
            assert!(admit(&mut pool, &mut ledger, 0));
        }
        for _ in 0..28 {
            pool.release();
        }
        // 2 in use: the renewal asks for 2 + 20 while the pool held 51.
        let sent = pool.renewal(RENEW_EVERY_MS).expect("due");
        assert_eq!(sent.ask.want, 22);
        let mut local = 0;
        while let Admission::Admitted = pool.admit(RENEW_EVERY_MS) {
            local += 1;
        }
        assert_eq!(local, 20, "no more than the renewal may leave");
        let (grant, _) = ledger.ask(&sent.ask, RENEW_EVERY_MS);
        pool.renewed(&sent, Some(&grant), RENEW_EVERY_MS);
        assert!(pool.in_use() <= ledger.held(RENEW_EVERY_MS));
    }

    #[test]
    fn a_stream_opening_while_the_lease_is_given_back_asks_the_ledger() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 4);
        assert!(admit(&mut pool, &mut ledger, 0));
        pool.release();
        let back = pool.give_back(1).expect("no stream left");
        // A stream arrives before the give-back is answered: it may not use
        // the lease being returned.
        let Admission::Ask(ask) = pool.admit(2) else {
            panic!("the lease is on its way back")
        };
        // Either order at the ledger leaves the new stream counted.
        for back_first in [true, false] {
            let mut ledger = ledger.clone();
            let mut pool = pool.clone();
            let answers = if back_first {
                let b = ledger.ask(&back.ask, 3).0;
                let a = ledger.ask(&ask.ask, 3).0;
                (b, a)
            } else {
                let a = ledger.ask(&ask.ask, 3).0;
                let b = ledger.ask(&back.ask, 3).0;
                (b, a)
            };
            assert!(pool.answered(&ask, Some(&answers.1), 4));
            pool.renewed(&back, Some(&answers.0), 4);
            assert_eq!(pool.in_use(), 1);
            assert!(
                ledger.held(4) >= pool.in_use(),
                "back first: {back_first}: the ledger counts the stream"
            );
        }
    }

    #[test]
    fn only_one_renewal_is_out_at_a_time() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 4);
        assert!(admit(&mut pool, &mut ledger, 0));
        let first = pool.renewal(RENEW_EVERY_MS).expect("due");
        assert!(pool.renewal(RENEW_EVERY_MS).is_none());
        pool.renewed(&first, None, RENEW_EVERY_MS + 5);
        assert!(pool.renewal(RENEW_EVERY_MS + 6).is_none(), "retried later");
        assert!(pool.renewal(2 * RENEW_EVERY_MS + 5).is_some());
    }

    #[test]
    fn refused_renewals_let_the_lease_lapse_and_new_streams_wait_for_the_ledger() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 4);
        assert!(admit(&mut pool, &mut ledger, 0));
        for n in 1..=2 {
            let sent = pool.renewal(n * RENEW_EVERY_MS).expect("due");
            pool.renewed(&sent, None, n * RENEW_EVERY_MS);
        }
        // Still inside the lease: the pool hands out what it holds.
        let end = LEASE_TTL_MS - CLOCK_SKEW_MS;
        assert!(matches!(pool.admit(end - 1), Admission::Admitted));
        pool.release();
        // Past it, a new stream needs the ledger, and fails closed without it.
        let Admission::Ask(sent) = pool.admit(end) else {
            panic!("an expired lease is not used")
        };
        assert!(!pool.answered(&sent, None, end));
        // Meanwhile the ledger let another isolate have the lapsed slots.
        let mut other = Pool::new("b", 4);
        for _ in 0..3 {
            assert!(admit(&mut other, &mut ledger, LEASE_TTL_MS));
        }
        // The other isolate holds its three and a block: nothing is left,
        // and this pool's open stream does not make room for another.
        let Admission::Ask(sent) = pool.admit(LEASE_TTL_MS + 1) else {
            panic!("asks")
        };
        let (grant, _) = ledger.ask(&sent.ask, LEASE_TTL_MS + 1);
        assert_eq!(grant.slots, 0);
        assert_eq!(ledger.held(LEASE_TTL_MS + 1), 4);
        assert!(!pool.answered(&sent, Some(&grant), LEASE_TTL_MS + 1));
        assert_eq!(pool.in_use(), 1);
    }

    #[test]
    fn releasing_more_than_was_taken_frees_nothing_extra() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 2);
        assert!(admit(&mut pool, &mut ledger, 0));
        pool.release();
        pool.release();
        pool.release();
        assert_eq!(pool.in_use(), 0);
        assert!(admit(&mut pool, &mut ledger, 1));
        assert!(admit(&mut pool, &mut ledger, 1));
        assert!(!admit(&mut pool, &mut ledger, 1), "still only the limit");
    }

    #[test]
    fn a_clock_going_backwards_neither_revives_nor_extends_a_lease() {
        let mut ledger = Ledger::default();
        let mut pool = Pool::new("a", 1);
        assert!(admit(&mut pool, &mut ledger, 100_000));
        pool.release();
        // The pool saw the lease expire; an earlier clock does not bring it back.
        assert!(matches!(
            pool.admit(100_000 + LEASE_TTL_MS),
            Admission::Ask(_)
        ));
        let mut pool = Pool::new("a2", 1);
        assert!(admit(&mut pool, &mut ledger, 100_000 + LEASE_TTL_MS));
        pool.release();
        let _ = pool.renewal(100_000 + 2 * LEASE_TTL_MS);
        assert!(
            matches!(pool.admit(0), Admission::Ask(_)),
            "the pool's clock stays at the latest instant"
        );
        // The ledger: a lease granted at t expires at t + TTL even if asked
        // with an earlier clock later, and an expired one stays expired.
        let mut ledger = Ledger::default();
        let _ = ledger.ask(&ask("x", 1, 1, 1), 50_000);
        assert_eq!(ledger.held(50_000 + LEASE_TTL_MS), 0);
        let (grant, _) = ledger.ask(&ask("y", 1, 1, 1), 50_000 + LEASE_TTL_MS);
        assert_eq!(grant.slots, 1);
        let (grant, _) = ledger.ask(&ask("z", 1, 1, 1), 10);
        assert_eq!(grant.slots, 0, "y's lease is live at the ledger's clock");
        // After a restart, the clock starts at the latest stored grant.
        let stored = Lease {
            holder: "y".into(),
            slots: 1,
            expires_ms: 90_000,
            seq: 1,
        };
        let mut restarted = Ledger::from_leases([stored]);
        let (grant, changes) = restarted.ask(&ask("z", 1, 1, 1), 0);
        assert_eq!(grant.slots, 0);
        assert_eq!(grant.expires_in_ms, 0);
        assert!(changes.is_empty());
        assert_eq!(restarted.held(90_000), 0);
    }

    #[test]
    fn stale_and_repeated_asks_leave_the_newest_lease_standing() {
        let mut ledger = Ledger::default();
        let (first, _) = ledger.ask(&ask("a", 2, 5, 10), 0);
        assert_eq!(first.slots, 5);
        // Ask 1 was sent before ask 2 but arrives after it.
        let (stale, changes) = ledger.ask(&ask("a", 1, 9, 10), 10);
        assert_eq!((stale.seq, stale.slots), (2, 5));
        assert_eq!(stale.expires_in_ms, LEASE_TTL_MS - 10);
        assert!(changes.is_empty());
        let (again, _) = ledger.ask(&ask("a", 2, 9, 10), 20);
        assert_eq!(again.slots, 5);
        // The pool ignores an answer older than one it applied.
        let mut pool = Pool::new("p", 10);
        let Admission::Ask(older) = pool.admit(0) else {
            panic!()
        };
        let Admission::Ask(newer) = pool.admit(0) else {
            panic!()
        };
        let (new_grant, _) = ledger.ask(&newer.ask, 0);
        assert!(pool.answered(&newer, Some(&new_grant), 0));
        let old_grant = LeaseGrant {
            seq: older.ask.seq,
            slots: 0,
            expires_in_ms: 0,
        };
        assert!(pool.answered(&older, Some(&old_grant), 0));
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn expired_leases_are_removed_from_storage_and_a_zero_ask_returns_the_lease() {
        let mut ledger = Ledger::default();
        let _ = ledger.ask(&ask("old", 1, 3, 10), 0);
        let (_, changes) = ledger.ask(&ask("new", 1, 2, 10), LEASE_TTL_MS);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0], LedgerChange::Remove("old".into()));
        assert!(matches!(&changes[1], LedgerChange::Put(l) if l.holder == "new" && l.slots == 2));
        let (grant, changes) = ledger.ask(&ask("new", 2, 0, 10), LEASE_TTL_MS + 1);
        assert_eq!(grant.slots, 0);
        assert_eq!(changes, vec![LedgerChange::Remove("new".into())]);
        assert_eq!(ledger.held(LEASE_TTL_MS + 1), 0);
    }

    #[test]
    fn a_smaller_limit_shrinks_what_is_granted() {
        let mut ledger = Ledger::default();
        let _ = ledger.ask(&ask("a", 1, 8, 10), 0);
        let (grant, _) = ledger.ask(&ask("b", 1, 8, 10), 0);
        assert_eq!(grant.slots, 2);
        let (grant, _) = ledger.ask(&ask("b", 2, 8, 5), 1);
        assert_eq!(grant.slots, 0, "a already holds more than the new limit");
    }

    /// Many isolates asking, renewing, releasing and vanishing in a
    /// pseudo-random order, with clocks that jitter: the ledger never grants
    /// past the limit, and the pools' live grants never add up past it.
    #[test]
    fn the_limit_holds_under_random_traffic() {
        let limit = 50;
        let mut ledger = Ledger::default();
        let mut pools: Vec<Pool> = (0..6).map(|i| Pool::new(format!("p{i}"), limit)).collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut now = 0u64;
        let (mut admitted, mut refused) = (0u64, 0u64);
        for _ in 0..20_000 {
            now += next() % 400;
            let i = (next() % pools.len() as u64) as usize;
            let jitter = now.saturating_sub(next() % 300);
            match next() % 10 {
                0..=4 => {
                    if admit(&mut pools[i], &mut ledger, jitter) {
                        admitted += 1;
                    } else {
                        refused += 1;
                    }
                }
                5..=7 => pools[i].release(),
                8 => renew(&mut pools[i], &mut ledger, jitter),
                _ if next() % 2 == 0 => {
                    if let Some(sent) = pools[i].give_back(jitter) {
                        let (grant, _) = ledger.ask(&sent.ask, jitter);
                        pools[i].renewed(&sent, Some(&grant), jitter);
                    }
                }
                _ => pools[i] = Pool::new(format!("p{i}-{now}"), limit),
            }
            assert!(ledger.held(now) <= limit);
            // What the pools may still hand out, each by its own lease.
            let usable: u64 = pools
                .iter()
                .filter(|p| p.expires_ms > now)
                .map(|p| p.granted)
                .sum();
            assert!(usable <= limit, "pools may hand out {usable} > {limit}");
        }
        // The run reached the limit often and admitted plenty below it.
        assert!(admitted > 1000 && refused > 100, "{admitted} {refused}");
    }
}
