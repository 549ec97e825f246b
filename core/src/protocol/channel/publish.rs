//! `POST /publish`: a batch of one channel's events, validated by the Worker,
//! for the channel's object to number, store and fan out.
//!
//! The body is text, one line per field, like the relay records the object
//! sends back, so that an event's `data` (already compact JSON) travels as
//! the publisher wrote it and neither side parses or re-encodes it:
//!
//! ```text
//! <channel>                    the object's own name (frames carry it in ids)
//! <tag> <tag> ...              the publisher's tags (empty line: none); a revoked one is refused
//! <event> <key> <data>         one line per event; <key> is `-` for none, `+<key>` otherwise
//! ```
//!
//! No field can contain a separator: channel names, tags and event types have
//! no spaces or line breaks by construction, idempotency keys are visible
//! ASCII, and compact JSON has no raw line break.

use serde::{Deserialize, Serialize};

use super::super::{text, Call, ProtocolError};
use crate::message::PublishEvent;

pub const PATH: &str = "/publish";

/// One event as the object sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub event: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// Compact JSON text.
    pub data: &'a str,
}

/// A parsed batch; borrows the request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    pub channel: &'a str,
    pub publisher_tags: Vec<&'a str>,
    pub events: Vec<Event<'a>>,
}

/// Builds the call for a batch of one channel's events, in publish order.
pub fn call(channel: &str, publisher_tags: &[String], events: &[&PublishEvent]) -> Call {
    let size: usize = events
        .iter()
        .map(|e| e.event.len() + e.data.len() + 140)
        .sum();
    let mut body = String::with_capacity(channel.len() + 40 * publisher_tags.len() + size);
    body.push_str(channel);
    body.push('\n');
    body.push_str(&publisher_tags.join(" "));
    for event in events {
        body.push('\n');
        body.push_str(&event.event);
        match &event.idempotency_key {
            Some(key) => {
                body.push_str(" +");
                body.push_str(key);
            }
            None => body.push_str(" -"),
        }
        body.push(' ');
        body.push_str(&event.data);
    }
    Call::post(PATH, body)
}

impl<'a> Publish<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let body = text(body, "publish")?;
        let mut lines = body.split('\n');
        let channel = lines
            .next()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("no channel"))?;
        let tags = lines.next().ok_or_else(|| bad("no tag line"))?;
        let publisher_tags = tags.split(' ').filter(|t| !t.is_empty()).collect();
        let events = lines.map(parse_event).collect::<Result<Vec<_>, _>>()?;
        if events.is_empty() {
            return Err(bad("no events"));
        }
        Ok(Publish {
            channel,
            publisher_tags,
            events,
        })
    }
}

fn parse_event(line: &str) -> Result<Event<'_>, ProtocolError> {
    let mut fields = line.splitn(3, ' ');
    let (Some(event), Some(key), Some(data)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad("an event line needs three fields"));
    };
    let idempotency_key = match key {
        "-" => None,
        key => Some(
            key.strip_prefix('+')
                .filter(|k| !k.is_empty())
                .ok_or_else(|| bad("bad key field"))?,
        ),
    };
    if event.is_empty() || data.is_empty() {
        return Err(bad("empty event or data"));
    }
    Ok(Event {
        event,
        idempotency_key,
        data,
    })
}

fn bad(what: &str) -> ProtocolError {
    ProtocolError::new(format!("publish: {what}"))
}

/// The object's answer: one outcome per event, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub results: Vec<Outcome>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The event's sequence number in the channel.
    pub id: u64,
    /// The idempotency key was seen before: `id` is the first event's, and
    /// nothing was stored or delivered this time.
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelName;

    const C: &str = "scan:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:r1";

    fn event(event: &str, data: &str, key: Option<&str>) -> PublishEvent {
        PublishEvent {
            channel: ChannelName::parse(C).unwrap(),
            event: event.into(),
            data: data.into(),
            idempotency_key: key.map(Into::into),
        }
    }

    #[test]
    fn a_batch_round_trips_with_any_key_the_validator_accepts() {
        let events = [
            event(
                "scan.progress",
                r#"{"pct":1,"note":"a b\nc \"q\" \\"}"#,
                Some(r#"a"b\c+-"#),
            ),
            event("scan.done", "null", None),
            event("x", r#""  spaced  ""#, Some("-")),
        ];
        let refs: Vec<&PublishEvent> = events.iter().collect();
        let call = call(C, &["u:00ff".into(), "j:abcd".into()], &refs);
        assert_eq!(call.path, PATH);
        let body = call.body.unwrap();
        let parsed = Publish::parse(body.as_bytes()).unwrap();
        assert_eq!(parsed.channel, C);
        assert_eq!(parsed.publisher_tags, ["u:00ff", "j:abcd"]);
        assert_eq!(
            parsed.events,
            [
                Event {
                    event: "scan.progress",
                    idempotency_key: Some(r#"a"b\c+-"#),
                    data: r#"{"pct":1,"note":"a b\nc \"q\" \\"}"#
                },
                Event {
                    event: "scan.done",
                    idempotency_key: None,
                    data: "null"
                },
                Event {
                    event: "x",
                    idempotency_key: Some("-"),
                    data: r#""  spaced  ""#
                },
            ]
        );
    }

    #[test]
    fn a_publisher_without_tags_sends_an_empty_tag_line() {
        let events = [event("a", "1", None)];
        let refs: Vec<&PublishEvent> = events.iter().collect();
        let body = call(C, &[], &refs).body.unwrap();
        assert_eq!(body, format!("{C}\n\na - 1"));
        assert!(Publish::parse(body.as_bytes())
            .unwrap()
            .publisher_tags
            .is_empty());
    }

    #[test]
    fn malformed_batches_are_protocol_errors() {
        for body in [
            "",
            "c",
            "c\n",
            "c\n\na -",
            "c\n\na x 1",
            "c\n\na + 1",
            "c\n\n - 1",
            "c\n\na - 1\n",
        ] {
            assert!(Publish::parse(body.as_bytes()).is_err(), "{body:?}");
        }
        assert!(Publish::parse(b"c\n\na - \xff").is_err());
    }
}
