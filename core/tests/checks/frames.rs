//! Frames messages: the pre-rendered SSE a channel's object sends to the
//! streams of that one channel, read the way `src/edge/frame_tap.js` reads
//! them.

use super::sse_reader::{self, normalise_newlines, Event};
use edgestream_core::cursor::Cursor;
use edgestream_core::frames::FramesWriter;
use edgestream_core::relay::MESSAGE_BYTES;

/// One decoded message: `u32 n | n × f64 seq | n × u32 end | frames`.
struct Message<'a> {
    seqs: Vec<f64>,
    ends: Vec<usize>,
    frames: &'a str,
}

fn decode(message: &[u8]) -> Message<'_> {
    let word = |at: usize| u32::from_le_bytes(message[at..at + 4].try_into().unwrap());
    let n = word(0) as usize;
    let seqs = (0..n)
        .map(|i| f64::from_le_bytes(message[4 + 8 * i..12 + 8 * i].try_into().unwrap()))
        .collect();
    let ends = (0..n).map(|i| word(4 + 8 * n + 4 * i) as usize).collect();
    let frames = std::str::from_utf8(&message[4 + 12 * n..]).expect("frames are UTF-8");
    Message { seqs, ends, frames }
}

/// What `FrameTap.write` hands to the response for a stream at `cursor`:
/// the frames after the first whose sequence number is above it.
fn frames_after<'a>(message: &Message<'a>, cursor: f64) -> &'a str {
    let n = message.seqs.len();
    if n == 0 {
        return "";
    }
    let mut start = 0;
    if message.seqs[0] <= cursor {
        let mut first = 1;
        while first < n && message.seqs[first] <= cursor {
            first += 1;
        }
        if first == n {
            return "";
        }
        start = message.ends[first - 1];
    }
    &message.frames[start..]
}

/// Events in increasing sequence order (below 2^53, as the object keeps
/// them): every message is well formed, the messages carry every event once
/// and in order, each frame is read as exactly its event (id
/// `quote(channel):seq`, type, data) with no line the event did not have,
/// a stream at any cursor gets exactly the frames after it, and only a
/// message's first frame may take it past [`MESSAGE_BYTES`].
pub fn check_frames(channel: &str, events: &[(u64, String, String)]) {
    let mut writer = FramesWriter::new(channel);
    for (seq, event, data) in events {
        writer.event(*seq, event, data);
    }
    let messages = writer.into_messages();
    assert_eq!(messages.is_empty(), events.is_empty());
    let mut expected = events.iter();
    let mut previous_len: Option<usize> = None;
    for bytes in &messages {
        let message = decode(bytes);
        assert!(!message.seqs.is_empty(), "an empty message was sent");
        assert!(
            message.ends.windows(2).all(|w| w[0] < w[1]),
            "ends go backwards"
        );
        assert_eq!(message.ends.last().copied(), Some(message.frames.len()));
        for (i, &end) in message.ends.iter().enumerate() {
            let (seq, event, data) = expected.next().expect("no more events than written");
            let start = start_of(&message, i);
            assert_eq!(message.seqs[i], *seq as f64);
            check_frame(channel, *seq, event, data, &message.frames[start..end]);
            // A frame joins a message only while it is below the size, and
            // a new message starts only when the frame would not fit.
            assert!(start <= MESSAGE_BYTES, "frame {i} starts at {start}");
            if let (0, Some(previous)) = (i, previous_len) {
                assert!(
                    previous + event.len() + data.len() > MESSAGE_BYTES,
                    "cut early"
                );
            }
            assert_eq!(
                frames_after(&message, message.seqs[i]),
                &message.frames[end..]
            );
            assert_eq!(
                frames_after(&message, message.seqs[i] - 1.0),
                &message.frames[start..]
            );
        }
        previous_len = Some(message.frames.len());
    }
    assert!(expected.next().is_none(), "events went missing");
}

fn start_of(message: &Message<'_>, i: usize) -> usize {
    if i == 0 {
        0
    } else {
        message.ends[i - 1]
    }
}

fn check_frame(channel: &str, seq: u64, event: &str, data: &str, frame: &str) {
    let mut id = Cursor::default();
    id.set(channel, seq);
    let read = sse_reader::read(frame);
    let kind = event.replace(['\r', '\n', '\0'], "");
    let expected = Event {
        last_id: id.encode(),
        kind: if kind.is_empty() {
            "message".into()
        } else {
            kind
        },
        data: normalise_newlines(data),
    };
    assert_eq!(read.events, [expected], "{frame:?}");
    assert!(
        read.ignored.is_empty() && read.comments.is_empty() && read.retries.is_empty(),
        "{frame:?}"
    );
    assert!(
        read.unterminated.is_empty() && read.empty_dispatches == 0,
        "{frame:?}"
    );
}
