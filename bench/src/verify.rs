//! Exactly-once, in-order delivery check for one subscriber: per publisher
//! of its channel, and over the relay's ids.
//!
//! A bitmap of the sequence numbers seen makes the accounting exact: a
//! duplicate is a number seen twice, a reordering is a number that arrives
//! after a larger one, and a loss is a number never seen by the end. A gap
//! counter alone would mistake a late event for a loss and then miss the
//! duplicate that a retry might deliver.

use serde::Serialize;

pub struct Checker {
    expected: u64,
    seen: Vec<u64>,
    distinct: u64,
    highest: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub relay_seq_breaks: u64,
}

impl Outcome {
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.foreign == 0
            && self.relay_seq_breaks == 0
    }

    pub fn add(&mut self, other: &Outcome) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
        self.relay_seq_breaks += other.relay_seq_breaks;
    }
}

impl Checker {
    /// Expects sequence numbers `1..=expected`.
    pub fn new(expected: u64) -> Self {
        Checker {
            expected,
            seen: vec![0; (expected as usize).div_ceil(64)],
            distinct: 0,
            highest: 0,
            duplicates: 0,
            out_of_order: 0,
            foreign: 0,
        }
    }

    /// Records one measured event.
    pub fn record(&mut self, seq: u64) {
        if seq == 0 || seq > self.expected {
            self.foreign += 1;
            return;
        }
        let (word, bit) = (((seq - 1) / 64) as usize, (seq - 1) % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.distinct += 1;
        if seq < self.highest {
            self.out_of_order += 1;
        }
        self.highest = self.highest.max(seq);
    }

    /// Every expected event has arrived (duplicates aside).
    pub fn complete(&self) -> bool {
        self.distinct == self.expected
    }

    pub fn outcome(&self) -> Outcome {
        Outcome {
            expected: self.expected,
            received: self.distinct,
            lost: self.expected - self.distinct,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            foreign: self.foreign,
            relay_seq_breaks: 0,
        }
    }
}

/// One subscriber's check. Publishers of one channel are not ordered among
/// themselves, so each publisher's events are checked on their own: exactly
/// once, in that publisher's order. The relay's ids, when the peer exposes
/// one sequence per channel (edgestream), cover every publisher and must step
/// by exactly one per event, warm-ups included.
pub struct StreamCheck {
    publishers: Vec<Checker>,
    /// Events naming a publisher the channel does not have.
    pub foreign: u64,
    last_relay_seq: Option<u64>,
    relay_seq_breaks: u64,
}

impl StreamCheck {
    /// Expects sequence numbers `1..=expected[p]` from publisher `p`.
    pub fn new(expected: &[u64]) -> Self {
        StreamCheck {
            publishers: expected.iter().map(|&n| Checker::new(n)).collect(),
            foreign: 0,
            last_relay_seq: None,
            relay_seq_breaks: 0,
        }
    }

    /// Records event `seq` of `publisher`.
    pub fn record(&mut self, publisher: u32, seq: u64) {
        match self.publishers.get_mut(publisher as usize) {
            Some(checker) => checker.record(seq),
            None => self.foreign += 1,
        }
    }

    /// Records the relay's sequence number carried in the event id.
    pub fn record_relay_seq(&mut self, seq: u64) {
        if let Some(last) = self.last_relay_seq {
            if seq != last + 1 {
                self.relay_seq_breaks += 1;
            }
        }
        self.last_relay_seq = Some(seq);
    }

    /// Every publisher's events have all arrived (duplicates aside).
    pub fn complete(&self) -> bool {
        self.publishers.iter().all(Checker::complete)
    }

    pub fn outcome(&self) -> Outcome {
        let mut outcome = Outcome {
            foreign: self.foreign,
            relay_seq_breaks: self.relay_seq_breaks,
            ..Outcome::default()
        };
        for checker in &self.publishers {
            outcome.add(&checker.outcome());
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_is_clean() {
        let mut c = Checker::new(130);
        for seq in 1..=130 {
            c.record(seq);
        }
        assert!(c.complete());
        assert!(c.outcome().clean());
    }

    #[test]
    fn loss_duplicate_and_reorder_are_told_apart() {
        let mut c = Checker::new(5);
        for seq in [1, 3, 2, 3, 9] {
            c.record(seq);
        }
        let o = c.outcome();
        assert_eq!(
            (o.received, o.lost, o.duplicates, o.out_of_order, o.foreign),
            (3, 2, 1, 1, 1)
        );
        assert!(!o.clean());
    }

    #[test]
    fn relay_ids_must_step_by_one() {
        let mut c = StreamCheck::new(&[1]);
        for seq in [4, 5, 7, 8] {
            c.record_relay_seq(seq);
        }
        assert_eq!(c.outcome().relay_seq_breaks, 1);
    }

    #[test]
    fn publishers_interleave_but_each_keeps_its_order() {
        let mut c = StreamCheck::new(&[3, 2]);
        for (publisher, seq) in [(1, 1), (0, 1), (0, 2), (1, 2), (0, 3)] {
            c.record(publisher, seq);
        }
        assert!(c.complete());
        assert!(c.outcome().clean());
        assert_eq!(c.outcome().received, 5);

        let mut c = StreamCheck::new(&[2, 2]);
        for (publisher, seq) in [(0, 2), (1, 1), (0, 1), (1, 1), (2, 1)] {
            c.record(publisher, seq);
        }
        let o = c.outcome();
        assert!(!c.complete());
        assert_eq!(
            (o.received, o.lost, o.duplicates, o.out_of_order, o.foreign),
            (3, 1, 1, 1, 1)
        );
    }
}
