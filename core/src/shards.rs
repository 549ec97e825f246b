//! Where a channel's next stream attaches: to the channel's own object up to
//! `SHARD_SUBSCRIBERS` streams, then to shard objects, filled in order (see
//! [`crate::protocol::channel::shard`] for what shards do). The channel's
//! object keeps this placement; the shards report how many streams they hold
//! in every answer to a push, so the counts stay close to the truth without a
//! round trip per stream.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The channel's object takes the stream itself.
    Here,
    Shard(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    limit: u64,
    shards: BTreeMap<u32, Load>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Load {
    /// As the shard last reported.
    streams: u64,
    /// Sent to the shard since it last reported.
    placed: u64,
    /// The shard joined since it last reported.
    joined: bool,
    /// The shard is in the list the channel's object stored, which a new
    /// instance of the object pushes to: it has joined, or was loaded.
    saved: bool,
}

impl Placement {
    /// `limit` streams per object; settings keep it at 2 or more.
    pub fn new(limit: u64, active: impl IntoIterator<Item = u32>) -> Self {
        Placement {
            limit,
            shards: active
                .into_iter()
                .map(|shard| {
                    let load = Load {
                        saved: true,
                        ..Load::default()
                    };
                    (shard, load)
                })
                .collect(),
        }
    }

    /// Places a stream, given how many the channel's object holds itself.
    pub fn place(&mut self, own_streams: u64) -> Place {
        if own_streams < self.limit {
            return Place::Here;
        }
        let limit = self.limit;
        let open = self
            .shards
            .iter()
            .find(|(_, load)| load.streams + load.placed < limit)
            .map(|(&shard, _)| shard);
        let shard = open.unwrap_or_else(|| {
            (0..)
                .find(|shard| !self.shards.contains_key(shard))
                .expect("fewer than 2^32 shards")
        });
        self.shards.entry(shard).or_default().placed += 1;
        Place::Shard(shard)
    }

    /// A shard reported its streams (answering a push, a retire or a stats
    /// request). Streams placed on it before the report are in the count.
    pub fn report(&mut self, shard: u32, streams: u64) {
        let load = self.shards.entry(shard).or_default();
        *load = Load {
            streams,
            saved: load.saved,
            ..Load::default()
        };
    }

    /// A shard that starts serving: it joins before it takes a stream, so it
    /// is not idle until it next reports. A retire asked of the shard before
    /// the join then finds it busy and keeps it, instead of leaving the
    /// stream on a shard no publish is pushed to.
    ///
    /// Returns whether the stored list of shards must be written again: a
    /// shard that a stream was placed on is active here before it joins,
    /// but an instance of the object that starts after a reset knows only
    /// the stored list, and would neither push to nor reset a shard missing
    /// from it, whose streams would then wait forever.
    #[must_use]
    pub fn join(&mut self, shard: u32) -> bool {
        let load = self.shards.entry(shard).or_default();
        load.joined = true;
        !std::mem::replace(&mut load.saved, true)
    }

    /// Shards with no streams and none placed or joined since they said so.
    pub fn idle(&self) -> Vec<u32> {
        self.shards
            .iter()
            .filter(|(_, load)| load.streams == 0 && load.placed == 0 && !load.joined)
            .map(|(&shard, _)| shard)
            .collect()
    }

    pub fn retire(&mut self, shard: u32) {
        self.shards.remove(&shard);
    }

    /// The shards a publish is pushed to.
    pub fn active(&self) -> impl Iterator<Item = u32> + '_ {
        self.shards.keys().copied()
    }

    /// Streams on shards, as last reported.
    pub fn shard_streams(&self) -> u64 {
        self.shards.values().map(|load| load.streams).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_stay_on_the_channel_until_the_limit_then_fill_shards_in_order() {
        let mut placement = Placement::new(3, []);
        assert_eq!(placement.place(0), Place::Here);
        assert_eq!(placement.place(2), Place::Here);
        let placed: Vec<Place> = (0..7).map(|_| placement.place(3)).collect();
        use Place::Shard;
        assert_eq!(
            placed,
            [
                Shard(0),
                Shard(0),
                Shard(0),
                Shard(1),
                Shard(1),
                Shard(1),
                Shard(2)
            ]
        );
        assert_eq!(placement.active().collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn reports_free_room_and_idle_shards_retire() {
        let mut placement = Placement::new(2, [0, 1]);
        placement.report(0, 2);
        placement.report(1, 0);
        assert_eq!(placement.idle(), [1]);
        assert_eq!(
            placement.place(5),
            Place::Shard(1),
            "the first shard with room"
        );
        assert!(
            placement.idle().is_empty(),
            "a shard a stream was just sent to is not idle"
        );
        placement.report(0, 0);
        placement.report(1, 1);
        assert_eq!(placement.idle(), [0]);
        assert_eq!(placement.shard_streams(), 1);
        placement.retire(0);
        assert_eq!(placement.place(5), Place::Shard(1));
        assert_eq!(
            placement.place(5),
            Place::Shard(0),
            "a retired index is used again"
        );
    }

    #[test]
    fn a_shard_is_saved_when_it_first_joins_even_if_a_stream_was_placed_on_it() {
        let mut placement = Placement::new(1, [0]);
        assert!(
            !placement.join(0),
            "shard 0 was loaded from the stored list"
        );
        assert_eq!(placement.place(1), Place::Shard(0));
        placement.report(0, 1);
        assert_eq!(placement.place(1), Place::Shard(1));
        assert_eq!(placement.active().collect::<Vec<_>>(), [0, 1]);
        placement.report(1, 0);
        assert!(placement.join(1), "shard 1 is active but not stored yet");
        assert!(!placement.join(1), "stored by the first join");
        placement.report(1, 1);
        assert!(!placement.join(1), "a report keeps it stored");
    }

    #[test]
    fn a_shard_that_joins_while_it_is_retired_stays() {
        let mut placement = Placement::new(2, [0]);
        placement.report(0, 0);
        assert_eq!(placement.idle(), [0], "the channel asks shard 0 to retire");
        // A stream placed before the channel restarted joins shard 0 while
        // the retire is under way.
        assert!(!placement.join(0), "loaded from the stored list");
        assert!(
            placement.idle().is_empty(),
            "the retire's answer must not remove it"
        );
        placement.report(0, 1);
        assert_eq!(placement.shard_streams(), 1);
    }
}
