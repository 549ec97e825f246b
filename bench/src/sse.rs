//! An incremental Server-Sent Events parser (WHATWG HTML, "Server-sent
//! events"), reduced to what the benchmark reads: each dispatched event's
//! type, data and the `id` field it carried.
//!
//! It works on bytes as they arrive, whatever the chunking, and reuses its
//! buffers: thousands of subscribers run it in one process, so a per-event
//! allocation would be measured as the peer's cost.

use memchr::memchr;

/// One dispatched event, borrowed from the parser until the next `feed`.
#[derive(Debug)]
pub struct Event<'a> {
    /// The event type; empty means the default `message`.
    pub event: &'a [u8],
    pub data: &'a [u8],
    /// The `id:` field of this event, if it had one.
    pub id: Option<&'a [u8]>,
}

#[derive(Default)]
pub struct Parser {
    pending: Vec<u8>,
    event: Vec<u8>,
    data: Vec<u8>,
    id: Vec<u8>,
    has_id: bool,
    has_data: bool,
    /// Comment lines seen (keep-alives, nchan's `: hi`).
    pub comments: u64,
}

impl Parser {
    /// Feeds a chunk; calls `on_event` for every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(Event<'_>)) {
        if self.pending.is_empty() {
            let consumed = self.lines(chunk, &mut on_event);
            self.pending.extend_from_slice(&chunk[consumed..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let consumed = self.lines(&pending, &mut on_event);
            pending.drain(..consumed);
            self.pending = pending;
        }
    }

    /// Processes every complete line of `buf`; returns the bytes consumed.
    fn lines(&mut self, buf: &[u8], on_event: &mut impl FnMut(Event<'_>)) -> usize {
        let mut at = 0;
        while let Some(nl) = memchr(b'\n', &buf[at..]) {
            let mut line = &buf[at..at + nl];
            at += nl + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            self.line(line, on_event);
        }
        at
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if line.is_empty() {
            if self.has_data {
                if self.data.last() == Some(&b'\n') {
                    self.data.pop();
                }
                on_event(Event {
                    event: &self.event,
                    data: &self.data,
                    id: self.has_id.then_some(self.id.as_slice()),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            self.has_id = false;
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" => {
                self.id.clear();
                self.id.extend_from_slice(value);
                self.has_id = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<(String, String, Option<String>)> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| {
                out.push((
                    String::from_utf8_lossy(e.event).into_owned(),
                    String::from_utf8_lossy(e.data).into_owned(),
                    e.id.map(|i| String::from_utf8_lossy(i).into_owned()),
                ))
            });
        }
        out
    }

    #[test]
    fn frames_split_anywhere() {
        let stream = b"retry: 1000\n\nevent: stream-open\ndata: {\"channels\":[]}\n\n: keep-alive\n\nid: a%3Ab:1\nevent: t\ndata: {\"x\":1}\n\n";
        let whole = parse_all(&[stream]);
        assert_eq!(whole.len(), 2);
        assert_eq!(
            whole[1],
            ("t".into(), "{\"x\":1}".into(), Some("a%3Ab:1".into()))
        );
        for split in 1..stream.len() {
            assert_eq!(
                parse_all(&[&stream[..split], &stream[split..]]),
                whole,
                "split at {split}"
            );
        }
    }

    #[test]
    fn empty_data_dispatches_and_crlf_is_a_line_end() {
        let got = parse_all(&[b"event: stream-open\r\ndata:\r\n\r\ndata: a\ndata: b\n\n"]);
        assert_eq!(
            got,
            vec![
                ("stream-open".into(), "".into(), None),
                ("".into(), "a\nb".into(), None)
            ]
        );
    }
}
