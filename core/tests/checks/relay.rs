//! Relay records: the text lines a channel's object sends to its streams
//! (`<seq> <event> <data>`, `reset <head>`, `live <head>`).

use edgestream_core::relay::{records, RelayRecord, RelayWriter, MESSAGE_BYTES};

/// A record the writer is given, owned so generators can build it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Event {
        seq: u64,
        event: String,
        data: String,
    },
    Reset {
        head: u64,
    },
    Live {
        head: u64,
    },
}

impl Record {
    fn as_relay(&self) -> RelayRecord<'_> {
        match self {
            Record::Event { seq, event, data } => RelayRecord::Event {
                seq: *seq,
                event,
                data,
            },
            Record::Reset { head } => RelayRecord::Reset { head: *head },
            Record::Live { head } => RelayRecord::Live { head: *head },
        }
    }

    fn write(&self, writer: &mut RelayWriter) {
        match self {
            Record::Event { seq, event, data } => writer.event(*seq, event, data),
            Record::Reset { head } => writer.reset(*head),
            Record::Live { head } => writer.live(*head),
        }
    }
}

/// Any text as a received message: one result per non-empty line, in order;
/// a refused line comes back as itself; an accepted record has the shape
/// the writer gives records (its number only digits) and, written again,
/// reads back the same.
pub fn check_message(message: &str) {
    let lines: Vec<&str> = message.split('\n').filter(|l| !l.is_empty()).collect();
    let parsed: Vec<_> = records(message).collect();
    assert_eq!(parsed.len(), lines.len(), "{message:?}");
    for (line, record) in lines.iter().zip(parsed) {
        match record {
            Err(text) => assert_eq!(text, *line),
            Ok(record) => {
                let number = match record {
                    RelayRecord::Event { event, .. } => {
                        assert!(!event.is_empty() && !event.contains(' '), "{line:?}");
                        line.split(' ').next()
                    }
                    RelayRecord::Reset { .. } | RelayRecord::Live { .. } => line.split(' ').nth(1),
                };
                let number = number.unwrap_or_default();
                assert!(
                    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
                    "{line:?}"
                );
                let mut writer = RelayWriter::default();
                write_relay(&mut writer, record);
                let again = writer.into_messages().concat();
                assert_eq!(
                    records(&again).collect::<Vec<_>>(),
                    [Ok(record)],
                    "{line:?}"
                );
            }
        }
    }
}

fn write_relay(writer: &mut RelayWriter, record: RelayRecord<'_>) {
    match record {
        RelayRecord::Event { seq, event, data } => writer.event(seq, event, data),
        RelayRecord::Reset { head } => writer.reset(head),
        RelayRecord::Live { head } => writer.live(head),
    }
}

/// Records the object may write (event types without spaces or newlines,
/// data without newlines: validated, compact JSON): the messages read back
/// as exactly those records in order, `len` counts every byte, and a message
/// passes [`MESSAGE_BYTES`] only when it holds a single record.
pub fn check_writer(batch: &[Record]) {
    let mut writer = RelayWriter::default();
    for record in batch {
        record.write(&mut writer);
    }
    assert_eq!(writer.is_empty(), batch.is_empty());
    let len = writer.len();
    let messages = writer.into_messages();
    assert_eq!(len, messages.iter().map(String::len).sum::<usize>());
    let mut read = Vec::new();
    for message in &messages {
        let in_message: Vec<_> = records(message).collect();
        assert!(
            message.len() <= MESSAGE_BYTES || in_message.len() == 1,
            "{} records in {} bytes",
            in_message.len(),
            message.len()
        );
        read.extend(in_message);
    }
    let expected: Vec<_> = batch.iter().map(|r| Ok(r.as_relay())).collect();
    assert_eq!(read, expected);
}
