//! The relay wire format: what a Channel Durable Object sends down each attached
//! stream's WebSocket.
//!
//! One WebSocket text message carries one or more records, one per line, so a
//! published batch costs one `send` per subscriber instead of one per event,
//! and the Worker splits it without parsing any JSON:
//!
//! ```text
//! <seq> <event-type> <data>      an event (live, replayed or current state)
//! reset <head-seq>               the requested resume point is not in history
//! live <head-seq>                attach is complete: what follows is live
//! ```
//!
//! Every attach ends with `live`, so a stream knows each channel's position
//! even on a channel that has never had an event, and its event ids name all
//! of its channels from the first event on.
//!
//! This works because neither field can contain the separators: sequence
//! numbers are digits, event types are validated to `[A-Za-z0-9_.-]`, and
//! `data` is compact JSON text, in which a newline can only appear escaped.

use std::fmt::Write;

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
    /// Replay or state is complete; the channel's latest sequence number.
    Live { head: u64 },
}

/// Appends an event record to a relay message under construction.
pub fn push_event(message: &mut String, seq: u64, event: &str, data: &str) {
    debug_assert!(!event.contains([' ', '\n']) && !data.contains('\n'));
    if !message.is_empty() {
        message.push('\n');
    }
    let _ = write!(message, "{seq} {event} {data}");
}

/// Appends a reset record to a relay message under construction.
pub fn push_reset(message: &mut String, head: u64) {
    push_control(message, "reset", head);
}

/// Appends the record that ends an attach.
pub fn push_live(message: &mut String, head: u64) {
    push_control(message, "live", head);
}

fn push_control(message: &mut String, name: &str, head: u64) {
    if !message.is_empty() {
        message.push('\n');
    }
    let _ = write!(message, "{name} {head}");
}

/// Iterates over the records of a relay message. A malformed record is
/// yielded as `Err` with its text so the caller can log it; records after it
/// are still read.
pub fn records(message: &str) -> impl Iterator<Item = Result<RelayRecord<'_>, &str>> {
    message.split('\n').map(parse_record)
}

fn parse_record(line: &str) -> Result<RelayRecord<'_>, &str> {
    let mut parts = line.splitn(3, ' ');
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return Err(line);
    };
    let record = match (first, parts.next()) {
        ("reset", None) => digits(second).map(|head| RelayRecord::Reset { head }),
        ("live", None) => digits(second).map(|head| RelayRecord::Live { head }),
        (seq, Some(data)) if !second.is_empty() => {
            digits(seq).map(|seq| RelayRecord::Event { seq, event: second, data })
        }
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

    #[test]
    fn a_batch_round_trips_in_order() {
        let mut message = String::new();
        push_event(
            &mut message,
            1,
            "scan.progress",
            r#"{"pct":1,"note":"a b\nc"}"#,
        );
        push_reset(&mut message, 7);
        push_event(&mut message, 8, "scan.completed", "null");
        push_live(&mut message, 8);
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
        let mut message = String::new();
        push_event(&mut message, 3, "x.y", r#""a  b c""#);
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
    fn malformed_records_are_reported_not_skipped_silently() {
        let message = "12\nx y z\nreset -1\n+5 a.b 1\nlive 3 x\n5  1\n5 a.b 1";
        let parsed: Vec<_> = records(message).collect();
        let expected_errors = ["12", "x y z", "reset -1", "+5 a.b 1", "live 3 x", "5  1"];
        for (got, want) in parsed.iter().zip(expected_errors) {
            assert_eq!(*got, Err(want));
        }
        assert_eq!(
            parsed[6],
            Ok(RelayRecord::Event { seq: 5, event: "a.b", data: "1" })
        );
    }
}
