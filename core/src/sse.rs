//! Server-Sent Events framing (WHATWG HTML, "Server-sent events").
//!
//! Each writer appends one complete frame, ending in a blank line, to a
//! caller-owned buffer, so the stream can batch several frames into one chunk
//! without extra allocations, and a frame is never split by another writer.
//!
//! The parser on the other side splits fields on CR, LF and CRLF, so any of
//! them inside a value would start a new field: a client-chosen event type
//! with a newline could forge an `id:` or `retry:` line. Data is therefore
//! split into one `data:` line per line, and the single-line fields (`id`,
//! `event`) are sanitised by removing CR, LF and NUL, as django-eventstream
//! does. The public inputs are already validated upstream (event types in
//! [`message`](crate::message), ids are [`cursor`](crate::cursor) encodings);
//! sanitising here keeps the framing safe on its own, in release builds too.

/// Prefix of the event types the relay itself emits. Publishers may not use
/// it, so a client can trust that `stream-*` events come from the relay.
pub const RESERVED_EVENT_PREFIX: &str = "stream-";
/// First event of every stream: `{"channels":[...]}`.
pub const STREAM_OPEN: &str = "stream-open";
/// A resume point is no longer in history: `{"channels":[...]}`.
pub const STREAM_RESET: &str = "stream-reset";
/// Sent before the relay closes a started stream: `{"code":..,"message":..}`.
pub const STREAM_ERROR: &str = "stream-error";
/// Text of the periodic comment that keeps proxies from timing the stream out.
pub const KEEP_ALIVE: &str = "keep-alive";

/// Appends an event frame: `id:` (if any), `event:` (unless empty, which
/// means the default `message` type), then one `data:` line per line of
/// `data`, then a blank line. Empty data still gets a `data:` line, so the
/// client dispatches an event with empty data rather than none.
pub fn write_event(out: &mut String, id: Option<&str>, event: &str, data: &str) {
    // Runs once per event per stream: one reservation, then plain copies.
    out.reserve(id.map_or(0, str::len) + event.len() + data.len() + 24);
    if let Some(id) = id {
        write_single_line_field(out, "id", id);
    }
    if !event.is_empty() {
        write_single_line_field(out, "event", event);
    }
    for line in lines(data) {
        out.push_str("data:");
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push('\n');
}

/// Appends a comment frame (`: <text>` per line, then a blank line). Clients
/// ignore comments; proxies see traffic.
pub fn write_comment(out: &mut String, text: &str) {
    for line in lines(text) {
        out.push(':');
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push('\n');
}

/// Appends a `retry:` frame: the client's reconnection delay in milliseconds.
pub fn write_retry(out: &mut String, ms: u64) {
    out.push_str("retry: ");
    out.push_str(&ms.to_string());
    out.push_str("\n\n");
}

fn write_single_line_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        out.extend(value.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')));
    } else {
        out.push_str(value);
    }
    out.push('\n');
}

/// Splits on CRLF, CR and LF alike, as the client's parser does.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.bytes().position(|b| b == b'\r' || b == b'\n') {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>, event: &str, data: &str) -> String {
        let mut out = String::new();
        write_event(&mut out, id, event, data);
        out
    }

    /// A client-side parser per the WHATWG algorithm, reduced to what the
    /// tests need: the dispatched (id, event type, data) triples.
    fn parse(stream: &str) -> Vec<(String, String, String)> {
        let (mut events, mut last_id, mut kind, mut data) =
            (Vec::new(), String::new(), String::new(), String::new());
        for line in lines(stream) {
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    let kind = std::mem::take(&mut kind);
                    events.push((
                        last_id.clone(),
                        if kind.is_empty() {
                            "message".into()
                        } else {
                            kind
                        },
                        std::mem::take(&mut data),
                    ));
                }
                kind.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" if !value.contains('\0') => last_id = value.into(),
                "event" => kind = value.into(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                _ => {}
            }
        }
        events
    }

    #[test]
    fn single_line_event_with_id() {
        assert_eq!(
            event(Some("scan%3Ax:4"), "scan.progress", r#"{"pct":42}"#),
            "id: scan%3Ax:4\nevent: scan.progress\ndata: {\"pct\":42}\n\n"
        );
    }

    #[test]
    fn without_id_or_type() {
        assert_eq!(event(None, "", "x"), "data: x\n\n");
    }

    #[test]
    fn multi_line_data_gets_a_data_line_per_line() {
        assert_eq!(
            event(None, "e", "a\nb\r\nc\rd"),
            "event: e\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn multi_line_data_round_trips_through_a_client_parser() {
        for data in [
            "a\nb",
            "a\n\nb",
            "a\n",
            "\n",
            " leading space",
            "x\r\ny",
            "",
            "{\"k\":\"v\"}",
        ] {
            let parsed = parse(&event(Some("1"), "t", data));
            let expected = data.replace("\r\n", "\n");
            assert_eq!(parsed, [("1".into(), "t".into(), expected)], "{data:?}");
        }
    }

    #[test]
    fn empty_data_is_a_single_data_line() {
        // The client's data buffer is then "\n", not empty, so it dispatches
        // an event whose data is "".
        assert_eq!(event(None, "e", ""), "event: e\ndata:\n\n");
    }

    #[test]
    fn newlines_in_id_or_type_cannot_inject_fields() {
        let out = event(Some("1\nretry: 1"), "x\r\ndata: forged\n\nevent: y", "real");
        assert_eq!(
            out,
            "id: 1retry: 1\nevent: xdata: forgedevent: y\ndata: real\n\n"
        );
        assert_eq!(parse(&out).len(), 1);
        assert_eq!(
            event(Some("a\0b"), "e", "d"),
            "id: ab\nevent: e\ndata: d\n\n"
        );
    }

    #[test]
    fn comment_frames() {
        let mut out = String::new();
        write_comment(&mut out, KEEP_ALIVE);
        assert_eq!(out, ": keep-alive\n\n");
        out.clear();
        write_comment(&mut out, "a\nid: 9\r\n");
        assert_eq!(out, ": a\n: id: 9\n:\n\n");
        assert!(parse(&out).is_empty());
    }

    #[test]
    fn retry_frame() {
        let mut out = String::new();
        write_retry(&mut out, 3000);
        assert_eq!(out, "retry: 3000\n\n");
    }

    #[test]
    fn frames_append() {
        let mut out = String::new();
        write_retry(&mut out, 1000);
        write_event(&mut out, None, STREAM_OPEN, "{\"channels\":[]}");
        write_comment(&mut out, KEEP_ALIVE);
        assert_eq!(
            out,
            "retry: 1000\n\nevent: stream-open\ndata: {\"channels\":[]}\n\n: keep-alive\n\n"
        );
    }

    #[test]
    fn relay_event_types_are_reserved() {
        for name in [STREAM_OPEN, STREAM_RESET, STREAM_ERROR] {
            assert!(name.starts_with(RESERVED_EVENT_PREFIX));
        }
    }
}
