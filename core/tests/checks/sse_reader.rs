//! An event stream reader that follows the WHATWG algorithm ("Server-sent
//! events", section 9.2.6) step by step, and also reports everything a
//! browser would silently skip, so a check can tell a frame that parses the
//! same from one that carries nothing but what it should.

/// One dispatched event, as a browser's `MessageEvent` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The last event ID buffer at dispatch time.
    pub last_id: String,
    /// `message` when no `event` field set a type.
    pub kind: String,
    pub data: String,
}

/// Everything a stream contained, in the reader's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    pub events: Vec<Event>,
    /// Each `retry` field with a valid value.
    pub retries: Vec<u64>,
    pub comments: Vec<String>,
    /// Lines a browser ignores: unknown field names, `retry` with a value
    /// that is not digits, `id` with a NUL.
    pub ignored: Vec<String>,
    /// Blank lines that dispatched nothing (empty data buffer).
    pub empty_dispatches: usize,
    /// Text after the last line terminator, which a browser holds back.
    pub unterminated: String,
}

/// Reads a whole stream. A leading U+FEFF is dropped, as the decoder does.
pub fn read(stream: &str) -> Stream {
    let mut out = Stream::default();
    let (mut last_id, mut kind, mut data) = (String::new(), String::new(), String::new());
    let text = stream.strip_prefix('\u{feff}').unwrap_or(stream);
    let (lines, rest) = split_lines(text);
    out.unterminated = rest.to_owned();
    for line in lines {
        if line.is_empty() {
            if data.is_empty() {
                out.empty_dispatches += 1;
                kind.clear();
                continue;
            }
            data.pop();
            out.events.push(Event {
                last_id: last_id.clone(),
                kind: if kind.is_empty() {
                    "message".to_owned()
                } else {
                    std::mem::take(&mut kind)
                },
                data: std::mem::take(&mut data),
            });
            kind.clear();
            continue;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.comments.push(comment.to_owned());
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => kind = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => last_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                out.retries.push(value.parse().unwrap_or(u64::MAX));
            }
            _ => out.ignored.push(line.to_owned()),
        }
    }
    out
}

/// The lines of `text` ended by CRLF, LF or CR, and what follows the last
/// terminator. A CR at the very end is a terminator on its own, as the
/// stream parser cannot wait for an LF that may never come.
pub fn split_lines(text: &str) -> (Vec<&str>, &str) {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    (lines, rest)
}

/// `data` as the reader gives it back: every line terminator becomes LF.
pub fn normalise_newlines(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}
