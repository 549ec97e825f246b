//! One stream's view of its channels: turns what the channels send (relay
//! messages from their sockets, pages of their history) into the stream's
//! SSE frames, in order, each event once, with ids that name every channel.
//!
//! A channel's messages are only ever contiguous from where the stream is:
//! whenever one starts past the next sequence number the stream expects (the
//! channel's `live <head>` is ahead of the stream's cursor after an attach,
//! or events were missed while a socket was re-attached or a shard push
//! failed), the channel's live messages are held back and the gap is paged
//! in from the channel's history first ([`Merge::wants_page`]). Whatever
//! arrives twice (a page and a held message that overlap, state sent again on
//! a re-attach) is dropped by sequence number. So every path through the
//! relay (a first attach, a resume, a re-attach after the channel's object
//! restarted, a shard) ends in the same promise: nothing lost, nothing twice.
//!
//! The Worker's pump does the I/O and feeds this; everything it decides is
//! here, where it is tested without a runtime.

use crate::cursor::CursorEncoder;
use crate::relay::{self, RelayRecord};
use crate::sse;

/// The state of one stream of `channels` (by index, as the stream opened them).
#[derive(Debug)]
pub struct Merge {
    names: Vec<String>,
    cursor: CursorEncoder,
    id: String,
    catchups: Vec<Option<Catchup>>,
    /// The channel's current socket has not sent its `live` record yet.
    opening: Vec<bool>,
    held_bytes: usize,
    /// A page of history is being fetched.
    paging: bool,
    /// Events written so far, for the stream's usage points.
    written: u64,
}

/// A channel the stream is behind on: events up to `until` are paged in from
/// history, and its live messages are held until they are.
#[derive(Debug)]
struct Catchup {
    until: u64,
    held: Vec<String>,
}

/// A record the stream could not read (a bug between versions); the caller
/// logs that it happened, never the record, which holds event data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRecord;

impl Merge {
    /// `positions` are where the stream starts on each channel: from its
    /// cursor, or none for a channel the stream has never seen.
    pub fn new(names: &[&str], positions: &[Option<u64>]) -> Self {
        let mut cursor = CursorEncoder::new(names.iter().copied());
        for (index, position) in positions.iter().enumerate() {
            if let Some(seq) = position {
                cursor.set(index, *seq);
            }
        }
        Merge {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            cursor,
            id: String::new(),
            catchups: names.iter().map(|_| None).collect(),
            opening: names.iter().map(|_| true).collect(),
            held_bytes: 0,
            paging: false,
            written: 0,
        }
    }

    /// The last sequence number delivered on channel `index`.
    pub fn position(&self, index: usize) -> Option<u64> {
        self.cursor.get(index)
    }

    /// Moves channel `index` to `seq`: events up to it were delivered by
    /// another path (a stream of one channel writes its live frames itself).
    pub fn delivered(&mut self, index: usize, seq: u64) {
        if self.cursor.get(index).is_none_or(|seen| seq > seen) {
            self.cursor.set(index, seq);
        }
    }

    /// Channel `index` has a new socket (a re-attach). Until its opening
    /// ends with `live <head>`, the channel is not live: the object may flush
    /// events it counted in that head after the opening, so a live path
    /// released before it would write them and the page of the gap again.
    pub fn attached(&mut self, index: usize) {
        self.opening[index] = true;
    }

    /// Whether channel `index` is up to date with what its socket sent.
    pub fn is_live(&self, index: usize) -> bool {
        !self.opening[index] && self.catchups[index].is_none() && self.cursor.get(index).is_some()
    }

    /// Events this stream has written (the live frames of a stream of one
    /// channel are the pump's to count: they do not pass through here).
    pub fn events_written(&self) -> u64 {
        self.written
    }

    /// Bytes of live messages held back while pages come in.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// A message from channel `index`'s socket: written now, or held while
    /// the channel catches up.
    pub fn live(&mut self, out: &mut String, index: usize, message: &str) -> Result<(), BadRecord> {
        if let Some(catchup) = &mut self.catchups[index] {
            self.held_bytes += message.len();
            catchup.held.push(message.to_owned());
            return Ok(());
        }
        if let Some(first) = first_event(message) {
            let seen = self.cursor.get(index);
            if seen.is_some_and(|seen| first > seen + 1) {
                // Events before this message are missing: page them in first.
                self.held_bytes += message.len();
                self.catchups[index] = Some(Catchup {
                    until: first - 1,
                    held: vec![message.to_owned()],
                });
                return Ok(());
            }
        }
        self.encode(out, index, message)
    }

    /// The stream's live path on channel `index` found events missing before
    /// `first` (the frames of a stream of one channel): page up to it.
    pub fn gap(&mut self, index: usize, first: u64) {
        match &mut self.catchups[index] {
            Some(catchup) => catchup.until = catchup.until.max(first.saturating_sub(1)),
            None => {
                self.catchups[index] = Some(Catchup {
                    until: first.saturating_sub(1),
                    held: Vec::new(),
                })
            }
        }
    }

    /// The next page to fetch: the first channel still catching up, from
    /// where the stream is on it. None while a page is in flight.
    pub fn wants_page(&mut self) -> Option<(usize, u64)> {
        if self.paging {
            return None;
        }
        let index = self.catchups.iter().position(Option::is_some)?;
        self.paging = true;
        Some((index, self.cursor.get(index).unwrap_or(0)))
    }

    /// A page of channel `index`'s history arrived. When it reaches the point
    /// where the gap ended (or holds nothing more), the held messages follow.
    /// Returns whether the channel is caught up now.
    pub fn page(&mut self, out: &mut String, index: usize, page: &str) -> Result<bool, BadRecord> {
        self.paging = false;
        let result = self.encode(out, index, page);
        let Some(catchup) = &self.catchups[index] else {
            return result.map(|()| true);
        };
        let caught_up = self.cursor.get(index).unwrap_or(0) >= catchup.until;
        if !caught_up && !page.is_empty() {
            return result.map(|()| false);
        }
        let catchup = self.catchups[index].take().expect("checked above");
        let mut held = result;
        for message in catchup.held {
            self.held_bytes -= message.len();
            // A held message may itself start past a gap (a second one):
            // `live` notices and catches up again.
            held = held.and(self.live(out, index, &message));
        }
        held.map(|()| self.catchups[index].is_none())
    }

    /// A page could not be fetched; the next `wants_page` asks again.
    pub fn page_failed(&mut self) {
        self.paging = false;
    }

    /// Appends the SSE frames of one relay message from channel `index`.
    fn encode(&mut self, out: &mut String, index: usize, message: &str) -> Result<(), BadRecord> {
        // After a reset the channel's current state follows, at or below the
        // head the cursor was moved to; only then is an old sequence expected.
        let mut state_after_reset = false;
        let mut bad = Ok(());
        for record in relay::records(message) {
            match record {
                Ok(RelayRecord::Event { seq, event, data }) => {
                    let seen = self.cursor.get(index);
                    if seen.is_some_and(|seen| seq <= seen) && !state_after_reset {
                        continue;
                    }
                    self.cursor
                        .set(index, seen.map_or(seq, |seen| seq.max(seen)));
                    self.cursor.encode_into(&mut self.id);
                    sse::write_event(out, Some(&self.id), event, data);
                    self.written += 1;
                }
                Ok(RelayRecord::Reset { head }) => {
                    state_after_reset = true;
                    self.cursor.set(index, head);
                    let reset = serde_json::json!({ "channels": [self.names[index]] }).to_string();
                    sse::write_event(out, None, sse::STREAM_RESET, &reset);
                }
                Ok(RelayRecord::Live { head }) => {
                    self.opening[index] = false;
                    match self.cursor.get(index) {
                        Some(seen) if head > seen => self.gap(index, head + 1),
                        // No position yet (no cursor, no state): live from here.
                        None => self.cursor.set(index, head),
                        Some(_) => {}
                    }
                }
                Err(_) => bad = Err(BadRecord),
            }
        }
        bad
    }
}

/// The sequence number of a relay message's first event, if it starts with one.
fn first_event(message: &str) -> Option<u64> {
    match relay::records(message).next()? {
        Ok(RelayRecord::Event { seq, .. }) => Some(seq),
        _ => None,
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
