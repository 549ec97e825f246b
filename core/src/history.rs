//! History bookkeeping for one channel: what a subscriber gets when it
//! attaches, where each event is kept, and what the bounded history and the
//! current state may forget.
//!
//! The Channel Durable Object keeps the rows in SQLite; the decisions live
//! here so they can be tested without a runtime.
//!
//! Storage is billed per row written, so an event costs one: history is a
//! ring of `HISTORY_SIZE` rows ([`Ring`]) and publishing an event overwrites
//! the slot of the event `HISTORY_SIZE` before it, which trims history
//! without a delete. The idempotency key lives in the event's row, so a key is
//! remembered exactly as long as its event is. The current state (the latest
//! event of each type) is read from the ring too; only when the latest event
//! of a type is about to be overwritten is it copied aside, which for a
//! channel with a handful of event types almost never happens
//! ([`CurrentState`]).

/// What a newly attached subscriber receives before live events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Replay every event with a sequence number above `after`.
    Replay { after: u64 },
    /// The latest event of each type, in sequence order: the client sent no
    /// cursor, so it wants the channel's current state, not its whole past.
    CurrentState,
    /// The cursor cannot be honoured; tell the client to refetch, then send
    /// the current state.
    Reset,
}

/// Decides how to attach a subscriber.
///
/// `cursor` is the last sequence number the client saw on this channel
/// (`None` when it sent no cursor), `head` the channel's latest sequence
/// number, and `oldest` the lowest sequence number still in history (`None`
/// when history is empty).
///
/// A cursor ahead of `head` means the channel's storage was reset after the
/// client saw those events: replaying "after" it would silently skip the new
/// events, so it is a reset. A cursor that points before the oldest retained
/// event has a gap that history cannot fill: also a reset.
pub fn attach(cursor: Option<u64>, head: u64, oldest: Option<u64>) -> Attach {
    let Some(after) = cursor else {
        return Attach::CurrentState;
    };
    if after > head {
        return Attach::Reset;
    }
    // Events after..=head must all be retained: the first needed is after+1.
    let first_needed = after + 1;
    match oldest {
        _ if after == head => Attach::Replay { after },
        Some(oldest) if oldest <= first_needed => Attach::Replay { after },
        _ => Attach::Reset,
    }
}

/// History as a ring of `size` rows: event `seq` is kept in slot
/// `seq % size`, so the newest `size` events are held and each publish
/// replaces the oldest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    size: u64,
}

impl Ring {
    /// Panics on a size of 0, which settings never allow.
    pub fn new(size: u64) -> Self {
        assert!(size > 0, "a history ring has at least one slot");
        Ring { size }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn slot(&self, seq: u64) -> u64 {
        seq % self.size
    }

    /// The oldest event the ring holds when `head` is the newest (none before
    /// the first event).
    pub fn oldest(&self, head: u64) -> Option<u64> {
        (head > 0).then(|| head.saturating_sub(self.size - 1).max(1))
    }

    /// The event a publish of `seq` overwrites, if the ring is full.
    pub fn overwrites(&self, seq: u64) -> Option<u64> {
        seq.checked_sub(self.size).filter(|&old| old > 0)
    }
}

/// Most event types whose latest event a channel keeps as its current
/// state. Every stream that opens without a cursor is sent all of it, so it
/// is bounded by count and by bytes; the types published longest ago are
/// forgotten first.
pub const MAX_STATE_TYPES: usize = 64;
/// Bytes of `data` the current state may hold; at least one event of the
/// largest allowed size always fits.
pub const MAX_STATE_BYTES: usize = 1 << 20;

/// Which event is the latest of each type, and how large it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentState {
    /// Oldest latest event first.
    types: Vec<Latest>,
    bytes: usize,
    max_bytes: usize,
    /// The channel has presence: its `presence.*` events are no state.
    presence: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latest {
    pub event: String,
    pub seq: u64,
    pub bytes: usize,
}

impl CurrentState {
    /// An empty state that holds at most `max(MAX_STATE_BYTES, max_event_bytes)`.
    pub fn new(max_event_bytes: usize) -> Self {
        CurrentState {
            types: Vec::new(),
            bytes: 0,
            max_bytes: MAX_STATE_BYTES.max(max_event_bytes),
            presence: false,
        }
    }

    /// The state of a channel with presence, whose `presence.*` events are
    /// not state: the latest of each would name one arbitrary subject.
    pub fn with_presence(mut self, presence: bool) -> Self {
        self.presence = presence;
        self
    }

    /// Records that `seq` is now the latest event of its type. Returns the
    /// types that no longer fit and are forgotten, oldest first.
    pub fn publish(&mut self, event: &str, seq: u64, bytes: usize) -> Vec<Latest> {
        if self.presence && crate::presence::is_presence_event(event) {
            return Vec::new();
        }
        if let Some(at) = self.types.iter().position(|t| t.event == event) {
            let old = self.types.remove(at);
            self.bytes -= old.bytes;
        }
        self.types.push(Latest {
            event: event.to_owned(),
            seq,
            bytes,
        });
        self.bytes += bytes;
        let mut forgotten = Vec::new();
        while self.types.len() > MAX_STATE_TYPES || self.bytes > self.max_bytes {
            let old = self.types.remove(0);
            self.bytes -= old.bytes;
            forgotten.push(old);
        }
        forgotten
    }

    /// Whether `seq` is the latest event of `event`: overwriting its row in
    /// the ring would lose that type's state, so it must be kept elsewhere.
    pub fn is_latest(&self, event: &str, seq: u64) -> bool {
        self.types.iter().any(|t| t.event == event && t.seq == seq)
    }

    /// Forgets the types whose latest event is at or below `seq` (expired).
    pub fn forget_through(&mut self, seq: u64) -> Vec<Latest> {
        let (gone, kept): (Vec<Latest>, Vec<Latest>) = std::mem::take(&mut self.types)
            .into_iter()
            .partition(|t| t.seq <= seq);
        self.bytes = kept.iter().map(|t| t.bytes).sum();
        self.types = kept;
        gone
    }

    /// The latest events, in sequence order.
    pub fn latest(&self) -> impl Iterator<Item = &Latest> {
        self.types.iter()
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// Events published before this instant (milliseconds since the epoch) have
/// outlived the history TTL.
pub fn expiry_cutoff_ms(now_ms: u64, ttl_seconds: u64) -> u64 {
    now_ms.saturating_sub(ttl_seconds.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cursor_gets_current_state() {
        assert_eq!(attach(None, 10, Some(1)), Attach::CurrentState);
        assert_eq!(attach(None, 0, None), Attach::CurrentState);
    }

    #[test]
    fn a_cursor_inside_history_replays_after_it() {
        assert_eq!(attach(Some(4), 10, Some(1)), Attach::Replay { after: 4 });
        assert_eq!(attach(Some(0), 10, Some(1)), Attach::Replay { after: 0 });
        // The oldest retained event is exactly the first one needed.
        assert_eq!(attach(Some(4), 10, Some(5)), Attach::Replay { after: 4 });
    }

    #[test]
    fn an_up_to_date_cursor_replays_nothing_even_with_empty_history() {
        assert_eq!(attach(Some(10), 10, Some(3)), Attach::Replay { after: 10 });
        assert_eq!(attach(Some(10), 10, None), Attach::Replay { after: 10 });
        assert_eq!(attach(Some(0), 0, None), Attach::Replay { after: 0 });
    }

    #[test]
    fn a_gap_before_history_is_a_reset() {
        assert_eq!(attach(Some(3), 10, Some(5)), Attach::Reset);
        assert_eq!(attach(Some(3), 10, None), Attach::Reset);
    }

    #[test]
    fn a_cursor_ahead_of_the_channel_is_a_reset() {
        assert_eq!(attach(Some(11), 10, Some(1)), Attach::Reset);
        assert_eq!(attach(Some(5), 0, None), Attach::Reset);
    }

    #[test]
    fn the_ring_holds_the_newest_size_events() {
        let ring = Ring::new(1000);
        assert_eq!(ring.oldest(0), None);
        assert_eq!(ring.oldest(10), Some(1));
        assert_eq!(ring.oldest(1000), Some(1));
        assert_eq!(ring.oldest(1001), Some(2));
        assert_eq!(ring.oldest(2500), Some(1501));
        assert_eq!(ring.overwrites(1000), None);
        assert_eq!(ring.overwrites(1001), Some(1));
        assert_eq!(ring.slot(1001), ring.slot(1));
        // Every event the ring holds has its own slot.
        let held: std::collections::HashSet<u64> =
            (1501..=2500).map(|seq| ring.slot(seq)).collect();
        assert_eq!(held.len(), 1000);
        let one = Ring::new(1);
        assert_eq!(
            (one.oldest(5), one.overwrites(5), one.slot(5)),
            (Some(5), Some(4), 0)
        );
    }

    #[test]
    fn the_current_state_keeps_the_latest_of_each_type() {
        let mut state = CurrentState::new(65_536);
        assert!(state.publish("a", 1, 10).is_empty());
        assert!(state.publish("b", 2, 10).is_empty());
        assert!(state.publish("a", 3, 10).is_empty());
        assert!(state.is_latest("a", 3) && !state.is_latest("a", 1) && state.is_latest("b", 2));
        let seqs: Vec<u64> = state.latest().map(|t| t.seq).collect();
        assert_eq!(seqs, [2, 3], "in sequence order");
        assert_eq!(state.forget_through(2).len(), 1);
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn presence_events_are_not_state_on_a_channel_with_presence() {
        let mut state = CurrentState::new(65_536).with_presence(true);
        state.publish("a", 1, 10);
        assert!(state.publish(crate::presence::JOINED, 2, 10).is_empty());
        assert!(state.publish(crate::presence::LEFT, 3, 10).is_empty());
        assert!(!state.is_latest(crate::presence::JOINED, 2));
        assert_eq!(state.len(), 1);
        // Elsewhere the names are a publisher's like any other.
        let mut state = CurrentState::new(65_536);
        state.publish(crate::presence::JOINED, 1, 10);
        assert!(state.is_latest(crate::presence::JOINED, 1));
    }

    #[test]
    fn the_current_state_is_bounded_by_types_and_bytes() {
        let mut state = CurrentState::new(65_536);
        for seq in 1..=MAX_STATE_TYPES as u64 {
            assert!(state.publish(&format!("t{seq}"), seq, 1).is_empty());
        }
        let forgotten = state.publish("new", 1000, 1);
        assert_eq!(
            forgotten
                .iter()
                .map(|t| t.event.as_str())
                .collect::<Vec<_>>(),
            ["t1"]
        );
        assert_eq!(state.len(), MAX_STATE_TYPES);
        let forgotten = state.publish("big", 1001, MAX_STATE_BYTES);
        assert_eq!(
            forgotten.len(),
            MAX_STATE_TYPES,
            "every older type makes room"
        );
        assert!(state.is_latest("big", 1001));
        // One event of the largest allowed size always fits.
        let mut state = CurrentState::new(2 * MAX_STATE_BYTES);
        assert!(state.publish("huge", 1, 2 * MAX_STATE_BYTES).is_empty());
    }

    #[test]
    fn expiry_cutoff_does_not_underflow() {
        assert_eq!(expiry_cutoff_ms(5_000, 86_400), 0);
        assert_eq!(expiry_cutoff_ms(100_000, 60), 40_000);
    }
}
