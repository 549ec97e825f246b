//! Pre-rendered frames: what a Channel Durable Object sends to the streams of
//! exactly one channel.
//!
//! Such a stream's event id is `quote(channel):seq`, the same for every
//! subscriber, so the object renders each published event's SSE frame once
//! and every stream writes the bytes to its response as they are, from a
//! JavaScript listener in the Worker (`frame_tap.js`), without copying them
//! into wasm, parsing or encoding. Streams of several channels build ids that
//! name all their channels and keep the [`relay`](crate::relay) records.
//!
//! A stream sometimes has to drop the events it already has (live events held
//! back while it paged in history), so a message carries the sequence number
//! and end offset of every frame in it. Layout, little-endian:
//!
//! ```text
//! u32 n | n × f64 seq | n × u32 end of frame i in the frames | frames (UTF-8 SSE)
//! ```
//!
//! Sequence numbers are `f64` because that is what JavaScript reads directly;
//! they stay below 2^53, where every integer is exact.

use crate::cursor::CursorEncoder;
use crate::relay::MESSAGE_BYTES;
use crate::sse;

/// Builds frames messages for one channel, starting a new message whenever
/// the current one has reached [`MESSAGE_BYTES`]. A frame is never split.
#[derive(Debug)]
pub struct FramesWriter {
    ids: CursorEncoder,
    id: String,
    messages: Vec<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    seqs: Vec<u64>,
    ends: Vec<u32>,
    frames: String,
}

impl FramesWriter {
    pub fn new(channel: &str) -> Self {
        Self {
            ids: CursorEncoder::new([channel]),
            id: String::new(),
            messages: Vec::new(),
        }
    }

    pub fn event(&mut self, seq: u64, event: &str, data: &str) {
        self.ids.set(0, seq);
        self.ids.encode_into(&mut self.id);
        let full = self.messages.last().is_none_or(|m| {
            !m.frames.is_empty() && m.frames.len() + data.len() + event.len() > MESSAGE_BYTES
        });
        if full {
            self.messages.push(Pending::default());
        }
        let message = self
            .messages
            .last_mut()
            .expect("a message was just ensured");
        sse::write_event(&mut message.frames, Some(&self.id), event, data);
        message.seqs.push(seq);
        message
            .ends
            .push(u32::try_from(message.frames.len()).expect("a message stays far below 4 GiB"));
    }

    pub fn into_messages(self) -> Vec<Vec<u8>> {
        self.messages
            .into_iter()
            .map(|m| {
                let n = m.seqs.len();
                let mut out = Vec::with_capacity(4 + 12 * n + m.frames.len());
                out.extend_from_slice(
                    &u32::try_from(n)
                        .expect("few frames per message")
                        .to_le_bytes(),
                );
                for seq in &m.seqs {
                    out.extend_from_slice(&(*seq as f64).to_le_bytes());
                }
                for end in &m.ends {
                    out.extend_from_slice(&end.to_le_bytes());
                }
                out.extend_from_slice(m.frames.as_bytes());
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader `frame_tap.js` implements: the frames after `cursor`.
    fn frames_after(message: &[u8], cursor: u64) -> (Vec<u64>, &str) {
        let n = u32::from_le_bytes(message[..4].try_into().unwrap()) as usize;
        let seq = |i: usize| {
            f64::from_le_bytes(message[4 + 8 * i..12 + 8 * i].try_into().unwrap()) as u64
        };
        let end = |i: usize| {
            let at = 4 + 8 * n + 4 * i;
            u32::from_le_bytes(message[at..at + 4].try_into().unwrap()) as usize
        };
        let frames = std::str::from_utf8(&message[4 + 12 * n..]).unwrap();
        let first_new = (0..n).find(|&i| seq(i) > cursor).unwrap_or(n);
        let start = if first_new == 0 {
            0
        } else {
            end(first_new - 1)
        };
        ((first_new..n).map(seq).collect(), &frames[start..])
    }

    #[test]
    fn frames_are_the_sse_a_single_channel_stream_writes() {
        let mut writer = FramesWriter::new("orders:4f5c:a b");
        writer.event(7, "order.created", r#"{"id":1}"#);
        writer.event(8, "", "null");
        let messages = writer.into_messages();
        assert_eq!(messages.len(), 1);
        let (seqs, frames) = frames_after(&messages[0], 0);
        assert_eq!(seqs, vec![7, 8]);
        assert_eq!(
            frames,
            "id: orders%3A4f5c%3Aa%20b:7\nevent: order.created\ndata: {\"id\":1}\n\n\
             id: orders%3A4f5c%3Aa%20b:8\ndata: null\n\n"
        );
    }

    #[test]
    fn a_reader_can_drop_the_frames_it_already_has() {
        let mut writer = FramesWriter::new("c:t:r");
        for seq in 10..=13 {
            writer.event(seq, "x", &seq.to_string());
        }
        let message = &writer.into_messages()[0];
        let (seqs, frames) = frames_after(message, 11);
        assert_eq!(seqs, vec![12, 13]);
        assert_eq!(
            frames,
            "id: c%3At%3Ar:12\nevent: x\ndata: 12\n\nid: c%3At%3Ar:13\nevent: x\ndata: 13\n\n"
        );
        assert_eq!(frames_after(message, 13), (vec![], ""));
        assert_eq!(frames_after(message, 9).0, vec![10, 11, 12, 13]);
    }

    #[test]
    fn large_batches_are_cut_without_splitting_frames() {
        let data = format!("\"{}\"", "x".repeat(100_000));
        let mut writer = FramesWriter::new("c:t:r");
        for seq in 1..=10 {
            writer.event(seq, "blob.sent", &data);
        }
        let messages = writer.into_messages();
        assert!(messages.len() >= 4, "{} messages", messages.len());
        let mut seqs = Vec::new();
        for message in &messages {
            assert!(message.len() <= MESSAGE_BYTES + data.len() + 64);
            let (in_message, frames) = frames_after(message, 0);
            assert_eq!(frames.matches("\n\n").count(), in_message.len());
            seqs.extend(in_message);
        }
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn sequence_numbers_survive_the_f64_encoding() {
        let mut writer = FramesWriter::new("c:t:r");
        let big = (1u64 << 53) - 1;
        writer.event(big, "x", "1");
        assert_eq!(frames_after(&writer.into_messages()[0], 0).0, vec![big]);
    }
}
