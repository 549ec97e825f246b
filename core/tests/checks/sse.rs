//! The SSE writer: whatever the fields hold, a frame is exactly one event (or
//! one comment, or one retry) to a browser, with the fields it was given.

use super::sse_reader::{self, normalise_newlines, Event};
use edgestream_core::sse;

/// A single-line field as the writer must leave it: without CR, LF and NUL.
pub fn sanitised(value: &str) -> String {
    value.replace(['\r', '\n', '\0'], "")
}

/// One event frame: the reader dispatches exactly the given id, type and data
/// (line breaks in data normalised, single-line fields sanitised), and the
/// frame holds no line but `id`, `event` and `data` fields and the final
/// blank line.
pub fn check_event(id: Option<&str>, event: &str, data: &str) {
    let mut frame = String::new();
    sse::write_event(&mut frame, id, event, data);
    let read = sse_reader::read(&frame);
    let kind = sanitised(event);
    let expected = Event {
        last_id: id.map(sanitised).unwrap_or_default(),
        kind: if kind.is_empty() {
            "message".into()
        } else {
            kind
        },
        data: normalise_newlines(data),
    };
    assert_eq!(read.events, [expected], "{frame:?}");
    assert!(
        read.retries.is_empty()
            && read.comments.is_empty()
            && read.ignored.is_empty()
            && read.empty_dispatches == 0
            && read.unterminated.is_empty(),
        "a frame carried more than its event: {frame:?} read as {read:?}"
    );
    assert_frame_shape(&frame);
    let (lines, _) = sse_reader::split_lines(&frame);
    let fields = usize::from(id.is_some()) + usize::from(!event.is_empty());
    assert_eq!(lines.len(), fields + data_lines(data) + 1, "{frame:?}");
}

/// A comment frame: the reader sees only comments, one per line of `text`.
pub fn check_comment(text: &str) {
    let mut frame = String::new();
    sse::write_comment(&mut frame, text);
    let read = sse_reader::read(&frame);
    assert!(
        read.events.is_empty() && read.ignored.is_empty(),
        "{frame:?}"
    );
    assert_eq!(read.comments.len(), data_lines(text), "{frame:?}");
    assert_eq!(read.empty_dispatches, 1, "{frame:?}");
    assert_frame_shape(&frame);
}

/// A retry frame sets exactly that reconnection time.
pub fn check_retry(ms: u64) {
    let mut frame = String::new();
    sse::write_retry(&mut frame, ms);
    let read = sse_reader::read(&frame);
    assert_eq!(read.retries, [ms]);
    assert!(read.events.is_empty() && read.ignored.is_empty());
    assert_frame_shape(&frame);
}

/// Frames appended to one buffer stay separate: reading the concatenation
/// gives each frame's events in order, so no frame bleeds into the next.
pub fn check_concatenation(events: &[(Option<String>, String, String)]) {
    let mut stream = String::new();
    let mut expected = Vec::new();
    let mut last_id = String::new();
    for (id, event, data) in events {
        sse::write_event(&mut stream, id.as_deref(), event, data);
        sse::write_comment(&mut stream, sse::KEEP_ALIVE);
        if let Some(id) = id {
            last_id = sanitised(id);
        }
        let kind = sanitised(event);
        expected.push(Event {
            last_id: last_id.clone(),
            kind: if kind.is_empty() {
                "message".into()
            } else {
                kind
            },
            data: normalise_newlines(data),
        });
    }
    assert_eq!(sse_reader::read(&stream).events, expected);
}

/// LF-terminated lines only, no CR anywhere, and exactly one blank line,
/// which ends the frame.
fn assert_frame_shape(frame: &str) {
    assert!(!frame.contains('\r'), "{frame:?}");
    let (lines, rest) = sse_reader::split_lines(frame);
    assert!(rest.is_empty(), "{frame:?}");
    let blank: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].is_empty()).collect();
    assert_eq!(blank, [lines.len() - 1], "{frame:?}");
}

/// How many lines the client's parser sees in `text`: an empty text and a
/// trailing terminator each still count as one (empty) line.
fn data_lines(text: &str) -> usize {
    sse_reader::split_lines(text).0.len() + 1
}
