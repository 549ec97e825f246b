//! The relay wire format: what a Channel Durable Object sends to the streams
//! attached to it, over their WebSockets or as a history page.
//!
//! A message carries one or more records, one per line, so a published batch
//! costs one `send` per subscriber instead of one per event, and the Worker
//! splits it without parsing any JSON:
//!
//! ```text
//! <seq> <event-type> <data>      an event (live, replayed or current state)
//! reset <head-seq>               the requested resume point is not in history
//! live <head-seq>                attach is complete: what follows is live
//! ```
//!
//! Every attach ends with `live`, so a stream knows each channel's position
//! even on a channel that has never had an event, and its event ids name all
//! of its channels from the first event on. A `live` head above the stream's
//! cursor tells the stream to page the gap in from history first.
//!
//! This works because neither field can contain the separators: sequence
//! numbers are digits, event types are validated to `[A-Za-z0-9_.-]`, and
//! `data` is compact JSON text, in which a newline can only appear escaped.

use std::fmt::Write;

/// The size a relay message is cut at. WebSocket messages have a size limit
/// in the runtime, and a stream hands each message to its client in one
/// write, so a large batch travels as several messages.
pub const MESSAGE_BYTES: usize = 256 * 1024;

/// One record of a relay message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayRecord<'a> {
    Event {
        seq: u64,
        event: &'a str,
        data: &'a str,
    },
    /// The stream's cursor for this channel is unusable (older than history,
    /// or ahead of the channel after its storage was reset). The channel's
    /// current state follows; `head` is its latest sequence number.
    Reset { head: u64 },
    /// Attach is complete; the channel's latest sequence number.
    Live { head: u64 },
}

/// Builds relay messages, starting a new one whenever the current one has
/// reached [`MESSAGE_BYTES`]. A single record is never split.
#[derive(Debug, Default)]
pub struct RelayWriter {
    messages: Vec<String>,
}

impl RelayWriter {
    pub fn event(&mut self, seq: u64, event: &str, data: &str) {
        debug_assert!(!event.contains([' ', '\n']) && !data.contains('\n'));
        let _ = write!(
            self.line(event.len() + data.len() + 24),
            "{seq} {event} {data}"
        );
    }

    pub fn reset(&mut self, head: u64) {
        let _ = write!(self.line(26), "reset {head}");
    }

    pub fn live(&mut self, head: u64) {
        let _ = write!(self.line(25), "live {head}");
    }

    /// Bytes written so far, over all messages.
    pub fn len(&self) -> usize {
        self.messages.iter().map(String::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn into_messages(self) -> Vec<String> {
        self.messages
    }

    /// The message a record of about `size` bytes goes in, with the line
    /// separator already written.
    fn line(&mut self, size: usize) -> &mut String {
        let full = self
            .messages
            .last()
            .is_none_or(|m| m.len() + size > MESSAGE_BYTES && !m.is_empty());
        if full {
            self.messages
                .push(String::with_capacity(size.min(MESSAGE_BYTES)));
        }
        let message = self
            .messages
            .last_mut()
            .expect("a message was just ensured");
        if !message.is_empty() {
            message.push('\n');
        }
        message
    }
}

/// Iterates over the records of a relay message. A malformed record is
/// yielded as `Err` with its text so the caller can log it; records after it
/// are still read.
pub fn records(message: &str) -> impl Iterator<Item = Result<RelayRecord<'_>, &str>> {
    message
        .split('\n')
        .filter(|line| !line.is_empty())
        .map(parse_record)
}

fn parse_record(line: &str) -> Result<RelayRecord<'_>, &str> {
    let mut parts = line.splitn(3, ' ');
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return Err(line);
    };
    let record = match (first, parts.next()) {
        ("reset", None) => digits(second).map(|head| RelayRecord::Reset { head }),
        ("live", None) => digits(second).map(|head| RelayRecord::Live { head }),
        (seq, Some(data)) if !second.is_empty() => digits(seq).map(|seq| RelayRecord::Event {
            seq,
            event: second,
            data,
        }),
        _ => None,
    };
    record.ok_or(line)
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_message(writer: RelayWriter) -> String {
        let mut messages = writer.into_messages();
        assert_eq!(messages.len(), 1);
        messages.pop().unwrap()
    }

    #[test]
    fn a_batch_round_trips_in_order() {
        let mut writer = RelayWriter::default();
        writer.event(1, "scan.progress", r#"{"pct":1,"note":"a b\nc"}"#);
        writer.reset(7);
        writer.event(8, "scan.completed", "null");
        writer.live(8);
        let message = one_message(writer);
        let parsed: Vec<_> = records(&message).collect();
        assert_eq!(
            parsed,
            vec![
                Ok(RelayRecord::Event {
                    seq: 1,
                    event: "scan.progress",
                    data: r#"{"pct":1,"note":"a b\nc"}"#
                }),
                Ok(RelayRecord::Reset { head: 7 }),
                Ok(RelayRecord::Event {
                    seq: 8,
                    event: "scan.completed",
                    data: "null"
                }),
                Ok(RelayRecord::Live { head: 8 }),
            ]
        );
    }

    #[test]
    fn data_keeps_its_spaces() {
        let mut writer = RelayWriter::default();
        writer.event(3, "x.y", r#""a  b c""#);
        let message = one_message(writer);
        assert_eq!(
            records(&message).next(),
            Some(Ok(RelayRecord::Event {
                seq: 3,
                event: "x.y",
                data: r#""a  b c""#
            }))
        );
    }

    #[test]
    fn large_batches_are_cut_into_messages_without_splitting_records() {
        let data = format!("\"{}\"", "x".repeat(100_000));
        let mut writer = RelayWriter::default();
        for seq in 1..=10 {
            writer.event(seq, "blob.sent", &data);
        }
        writer.live(10);
        let messages = writer.into_messages();
        assert!(messages.len() >= 4, "{} messages", messages.len());
        let mut seqs = Vec::new();
        for message in &messages {
            assert!(message.len() <= MESSAGE_BYTES + data.len() + 24);
            for record in records(message) {
                match record.unwrap() {
                    RelayRecord::Event { seq, data: d, .. } => {
                        assert_eq!(d, data);
                        seqs.push(seq);
                    }
                    RelayRecord::Live { head } => assert_eq!(head, 10),
                    RelayRecord::Reset { .. } => panic!("no reset was written"),
                }
            }
        }
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_larger_than_a_message_travels_alone() {
        let data = format!("\"{}\"", "x".repeat(MESSAGE_BYTES));
        let mut writer = RelayWriter::default();
        writer.live(0);
        writer.event(1, "blob.sent", &data);
        writer.live(1);
        assert_eq!(writer.into_messages().len(), 3);
    }

    #[test]
    fn malformed_records_are_reported_not_skipped_silently() {
        let message = "12\nx y z\nreset -1\n+5 a.b 1\nlive 3 x\n5  1\n5 a.b 1";
        let parsed: Vec<_> = records(message).collect();
        let expected_errors = ["12", "x y z", "reset -1", "+5 a.b 1", "live 3 x", "5  1"];
        for (got, want) in parsed.iter().zip(expected_errors) {
            assert_eq!(*got, Err(want));
        }
        assert_eq!(
            parsed[6],
            Ok(RelayRecord::Event {
                seq: 5,
                event: "a.b",
                data: "1"
            })
        );
    }

    #[test]
    fn an_empty_page_has_no_records() {
        assert_eq!(records("").count(), 0);
    }
}
