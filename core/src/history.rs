//! History bookkeeping for one channel: what a subscriber gets when it
//! attaches, and what the bounded history may forget.
//!
//! The Channel Durable Object keeps the rows in SQLite; the decisions live
//! here so they can be tested without a runtime.

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

/// The highest sequence number that may be deleted so that at most
/// `history_size` events remain, or `None` when nothing needs to go.
pub fn trim_through(head: u64, history_size: u64) -> Option<u64> {
    head.checked_sub(history_size).filter(|&floor| floor > 0)
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
    fn trimming_keeps_history_size_events() {
        assert_eq!(trim_through(10, 1000), None);
        assert_eq!(trim_through(1000, 1000), None);
        assert_eq!(trim_through(1001, 1000), Some(1));
        assert_eq!(trim_through(2500, 1000), Some(1500));
    }

    #[test]
    fn expiry_cutoff_does_not_underflow() {
        assert_eq!(expiry_cutoff_ms(5_000, 86_400), 0);
        assert_eq!(expiry_cutoff_ms(100_000, 60), 40_000);
    }
}
