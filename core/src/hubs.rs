//! How a channel's object counts the streams its isolates' hubs serve
//! (`HUB_DISPATCH_BUDGET`, [`crate::protocol::channel::hub`]).
//!
//! A hub's socket carries the count its hub last reported, but a stats read
//! must not lag the streams it counts: the object asks every hub for its
//! count and waits briefly, and takes the last report only from a hub that
//! does not answer in time (its owner handing the socket on). A stream that
//! joined a hub whose owner has not attached yet is on no socket at all; the
//! object counts such joins per hub id until that hub attaches, and forgets
//! them after [`JOIN_MS`] (the hub's streams ended before it ever attached).

use std::collections::BTreeMap;

/// How long a join waits for its hub to attach before it no longer counts.
pub const JOIN_MS: u64 = 10_000;

/// Streams that joined hubs with no socket to the object yet.
#[derive(Debug, Default)]
pub struct Joining {
    hubs: BTreeMap<u64, Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    streams: u64,
    since_ms: u64,
}

impl Joining {
    /// `streams` streams joined hub `hub`; `attached` when that hub's socket
    /// is here already (its own count includes them from its next report on).
    pub fn joined(&mut self, hub: u64, streams: u64, attached: bool, now_ms: u64) {
        self.expire(now_ms);
        if attached {
            return;
        }
        let pending = self.hubs.entry(hub).or_insert(Pending {
            streams: 0,
            since_ms: now_ms,
        });
        pending.streams += streams;
    }

    /// Hub `hub` attached with its own count.
    pub fn attached(&mut self, hub: u64) {
        self.hubs.remove(&hub);
    }

    /// The streams of hubs that have not attached, as of `now_ms`.
    pub fn streams(&mut self, now_ms: u64) -> u64 {
        self.expire(now_ms);
        self.hubs.values().map(|p| p.streams).sum()
    }

    fn expire(&mut self, now_ms: u64) {
        self.hubs
            .retain(|_, p| now_ms.saturating_sub(p.since_ms) < JOIN_MS);
    }
}

/// The streams of the attached hubs: each hub's answer to the count, else
/// the count its socket holds. `seats` are (hub id, last report) per socket;
/// `answers` (hub id, count) as they came.
pub fn attached_streams(seats: &[(u64, u64)], answers: &[(u64, u64)]) -> u64 {
    let answered: BTreeMap<u64, u64> = answers.iter().copied().collect();
    seats
        .iter()
        .map(|(hub, reported)| answered.get(hub).copied().unwrap_or(*reported))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_count_until_their_hub_attaches() {
        let mut joining = Joining::default();
        joining.joined(7, 1, false, 0);
        joining.joined(7, 2, false, 5);
        joining.joined(8, 1, false, 5);
        assert_eq!(joining.streams(10), 4);
        joining.attached(7);
        assert_eq!(joining.streams(10), 1, "hub 7 counts itself now");
        joining.joined(7, 3, true, 20);
        assert_eq!(
            joining.streams(20),
            1,
            "a join of an attached hub is its own"
        );
    }

    #[test]
    fn joins_of_a_hub_that_never_attaches_are_forgotten() {
        let mut joining = Joining::default();
        joining.joined(7, 1, false, 1_000);
        assert_eq!(joining.streams(1_000 + JOIN_MS - 1), 1);
        assert_eq!(joining.streams(1_000 + JOIN_MS), 0);
        joining.joined(7, 1, false, 1_000 + JOIN_MS);
        assert_eq!(
            joining.streams(1_000 + JOIN_MS),
            1,
            "a new join counts again"
        );
    }

    #[test]
    fn an_answer_replaces_the_last_report_and_silence_keeps_it() {
        let seats = [(1, 5), (2, 3), (3, 0)];
        assert_eq!(attached_streams(&seats, &[]), 8);
        assert_eq!(attached_streams(&seats, &[(1, 6), (3, 2)]), 11);
        // An answer from a hub whose socket closed meanwhile does not count.
        assert_eq!(attached_streams(&seats, &[(9, 100)]), 8);
    }
}
