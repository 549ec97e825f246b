//! Events as origins put them into Valkey, decoded for the bridge.
//!
//! An origin reaches the bridge in one of three shapes:
//! - django-eventstream's own Pub/Sub message, which `send_event()` publishes
//!   on `events_channel` when `EVENTSTREAM_REDIS` is set:
//!   `{"channel": .., "event_type": .., "data": "<JSON text>", "pub_id": ..}`.
//!   `data` is a *string* holding JSON (send_event JSON-encodes the value
//!   before it builds the message), so it is decoded once more here: the edge
//!   must see `{"pct":42}`, not `"{\"pct\": 42}"`. With `json_encode=False`
//!   the string may be any text; text that is not JSON is forwarded as a JSON
//!   string, which is what a browser reading `event.data` can still parse.
//! - the native form, the publish body's own event:
//!   `{"channel": .., "event": .., "data": <any JSON>, "idempotency_key": ..}`.
//! - a Valkey Streams entry, either with the fields `channel`, `event` (or
//!   `event_type`), `data` (JSON text), `idempotency_key`, or with a single
//!   `message` field holding one of the two JSON messages above.
//!
//! `data` is kept as the publisher's JSON text ([`RawValue`]), never as a
//! `serde_json::Value`: a `Value` would sort object keys and respell numbers,
//! and the contract is that data reaches subscribers as the publisher wrote it
//! (the Worker only drops insignificant whitespace).
//!
//! Validation is not repeated here: [`validate`] runs the Worker's own parser
//! ([`crate::message::parse_publish_body`]) on the event, so the bridge can
//! skip a malformed event without a round trip and can never disagree with
//! the edge about what is malformed.

use crate::message::parse_publish_body;
use crate::problem::Problem;
use serde::Serialize;
use serde_json::value::{to_raw_value, RawValue};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// One event on its way to `POST /v1/publish`. Serializes to exactly the
/// publish body's event object.
#[derive(Clone, Debug, Serialize)]
pub struct OriginEvent {
    pub channel: String,
    pub event: String,
    /// The payload as JSON text.
    pub data: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl PartialEq for OriginEvent {
    fn eq(&self, other: &Self) -> bool {
        self.channel == other.channel
            && self.event == other.event
            && self.data.get() == other.data.get()
            && self.idempotency_key == other.idempotency_key
    }
}

/// Which shape a message had; the bridge logs it and tests check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginForm {
    /// django-eventstream's `{"channel","event_type","data","pub_id"}`.
    Django,
    /// The publish body's `{"channel","event","data","idempotency_key"}`.
    Native,
    /// A Streams entry with one field per event attribute.
    StreamFields,
}

/// Why a message could not be read as an event at all (before the publish
/// rules are even checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not UTF-8 or not JSON.
    NotJson(String),
    /// JSON, but not an object.
    NotAnObject,
    /// A required field is absent.
    Missing(&'static str),
    /// A field has the wrong JSON type (or, in a Streams entry, is not UTF-8).
    WrongType(&'static str),
    /// A field that neither form has (a misspelt `idempotency_key` must not
    /// silently turn off deduplication).
    UnknownField(String),
    /// Both `event` and `event_type`: which form was meant is unclear.
    Ambiguous,
}

impl DecodeError {
    /// A stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::NotJson(_) => "not_json",
            DecodeError::NotAnObject
            | DecodeError::Missing(_)
            | DecodeError::WrongType(_)
            | DecodeError::UnknownField(_)
            | DecodeError::Ambiguous => "unrecognised_message",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotJson(err) => write!(f, "message is not JSON: {err}"),
            DecodeError::NotAnObject => f.write_str("message is not a JSON object"),
            DecodeError::Missing(field) => write!(f, "missing field `{field}`"),
            DecodeError::WrongType(field) => write!(f, "field `{field}` has the wrong type"),
            DecodeError::UnknownField(field) => write!(f, "unknown field `{field}`"),
            DecodeError::Ambiguous => {
                f.write_str("both `event` and `event_type`: send one form or the other")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

const NATIVE_FIELDS: [&str; 4] = ["channel", "event", "data", "idempotency_key"];

/// Decodes a Pub/Sub payload: django-eventstream's message or the native form.
pub fn decode_message(payload: &[u8]) -> Result<(OriginEvent, OriginForm), DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let value: &RawValue =
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let fields: HashMap<Cow<'_, str>, &RawValue> =
        serde_json::from_str(value.get()).map_err(|_| DecodeError::NotAnObject)?;
    let field = |name: &str| fields.get(name).copied();
    let channel = string_field(field("channel"), "channel")?;
    match (field("event"), field("event_type")) {
        (Some(_), Some(_)) => Err(DecodeError::Ambiguous),
        (None, None) => Err(DecodeError::Missing("event")),
        (None, Some(event_type)) => {
            // django-eventstream's message. Its other fields (`pub_id`, and
            // whatever a later version adds) mean nothing at the edge.
            let event = string_field(Some(event_type), "event_type")?;
            let data = field("data").ok_or(DecodeError::Missing("data"))?;
            let data = match serde_json::from_str::<String>(data.get()) {
                Ok(text) => data_from_text(&text),
                // `json_encode=False` with a value that is not a string: the
                // message already holds it as JSON.
                Err(_) => data.to_owned(),
            };
            Ok((
                OriginEvent {
                    channel,
                    event,
                    data,
                    idempotency_key: None,
                },
                OriginForm::Django,
            ))
        }
        (Some(event), None) => {
            if let Some(unknown) = fields.keys().find(|k| !NATIVE_FIELDS.contains(&k.as_ref())) {
                return Err(DecodeError::UnknownField(unknown.to_string()));
            }
            let event = string_field(Some(event), "event")?;
            let data = field("data")
                .ok_or(DecodeError::Missing("data"))?
                .to_owned();
            let idempotency_key = match field("idempotency_key") {
                None => None,
                Some(raw) if raw.get() == "null" => None,
                Some(raw) => Some(string_field(Some(raw), "idempotency_key")?),
            };
            Ok((
                OriginEvent {
                    channel,
                    event,
                    data,
                    idempotency_key,
                },
                OriginForm::Native,
            ))
        }
    }
}

/// Decodes a Streams entry from its field/value pairs.
pub fn decode_stream_entry<'a, I>(fields: I) -> Result<(OriginEvent, OriginForm), DecodeError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut message = None;
    let (mut channel, mut event, mut event_type, mut data, mut key) =
        (None, None, None, None, None);
    let mut count = 0;
    for (name, value) in fields {
        count += 1;
        let slot = match name {
            b"message" => {
                message = Some(value);
                continue;
            }
            b"channel" => (&mut channel, "channel"),
            b"event" => (&mut event, "event"),
            b"event_type" => (&mut event_type, "event_type"),
            b"data" => (&mut data, "data"),
            b"idempotency_key" => (&mut key, "idempotency_key"),
            other => {
                return Err(DecodeError::UnknownField(
                    String::from_utf8_lossy(other).into(),
                ))
            }
        };
        let text = std::str::from_utf8(value).map_err(|_| DecodeError::WrongType(slot.1))?;
        *slot.0 = Some(text);
    }
    if let Some(message) = message {
        if count > 1 {
            return Err(DecodeError::UnknownField(
                "`message` together with other fields".into(),
            ));
        }
        return decode_message(message);
    }
    let channel = channel.ok_or(DecodeError::Missing("channel"))?.to_owned();
    let event = match (event, event_type) {
        (Some(_), Some(_)) => return Err(DecodeError::Ambiguous),
        (None, None) => return Err(DecodeError::Missing("event")),
        (Some(e), None) | (None, Some(e)) => e.to_owned(),
    };
    let data = data_from_text(data.ok_or(DecodeError::Missing("data"))?);
    Ok((
        OriginEvent {
            channel,
            event,
            data,
            idempotency_key: key.map(str::to_owned),
        },
        OriginForm::StreamFields,
    ))
}

/// Text that is JSON is the payload itself; any other text (django-eventstream
/// with `json_encode=False`, a Streams field someone filled by hand) becomes a
/// JSON string, so the edge always gets valid JSON and never loses the text.
pub fn data_from_text(text: &str) -> Box<RawValue> {
    match serde_json::from_str::<Box<RawValue>>(text) {
        Ok(raw) => raw,
        Err(_) => to_raw_value(text).expect("a string always serializes"),
    }
}

/// Checks an event against the publish rules of the Worker (channel name,
/// event type, data size, idempotency key) with the Worker's own parser.
pub fn validate(event: &OriginEvent, max_event_bytes: usize) -> Result<(), Problem> {
    let body = serde_json::to_vec(event).map_err(|e| Problem::invalid_body(e.to_string()))?;
    parse_publish_body(&body, max_event_bytes).map(|_| ())
}

/// The `{"events":[...]}` body for a batch.
pub fn publish_body<'a, I>(events: I) -> Vec<u8>
where
    I: IntoIterator<Item = &'a OriginEvent>,
{
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, event).expect("an event always serializes");
    }
    body.extend_from_slice(b"]}");
    body
}

fn string_field(raw: Option<&RawValue>, name: &'static str) -> Result<String, DecodeError> {
    let raw = raw.ok_or(DecodeError::Missing(name))?;
    serde_json::from_str(raw.get()).map_err(|_| DecodeError::WrongType(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MAX_BATCH_EVENTS;
    use serde_json::json;

    const C: &str = "scan-progress:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:42";

    fn decode(payload: &str) -> Result<(OriginEvent, OriginForm), DecodeError> {
        decode_message(payload.as_bytes())
    }

    fn data(payload: &str) -> String {
        decode(payload).unwrap().0.data.get().to_owned()
    }

    /// What django-eventstream 5's `send_event()` publishes: Python's
    /// `json.dumps({"channel":..,"event_type":..,"data":json.dumps(data),"pub_id":..})`.
    fn django(data_json_text: &str, pub_id: &str) -> String {
        format!(
            "{{\"channel\": \"{C}\", \"event_type\": \"scan.progress\", \"data\": {}, \"pub_id\": {pub_id}}}",
            serde_json::to_string(data_json_text).unwrap()
        )
    }

    #[test]
    fn django_message_forwards_the_value_not_a_string() {
        let (event, form) = decode(&django("{\"pct\": 42, \"stage\": \"scan\"}", "null")).unwrap();
        assert_eq!(form, OriginForm::Django);
        assert_eq!(event.channel, C);
        assert_eq!(event.event, "scan.progress");
        // Key order and spelling as Python wrote them.
        assert_eq!(event.data.get(), "{\"pct\": 42, \"stage\": \"scan\"}");
        assert_eq!(event.idempotency_key, None);
        assert_eq!(
            data(&django("[1, 2.50, 1e400]", "\"7\"")),
            "[1, 2.50, 1e400]"
        );
        assert_eq!(data(&django("null", "null")), "null");
        assert_eq!(data(&django("\"text\"", "null")), "\"text\"");
    }

    #[test]
    fn django_json_encode_false_text_becomes_a_json_string() {
        assert_eq!(data(&django("hello world", "null")), "\"hello world\"");
        assert_eq!(
            data(&django("line 1\nline 2", "null")),
            "\"line 1\\nline 2\""
        );
        assert_eq!(data(&django("", "null")), "\"\"");
        assert_eq!(data(&django("{not json", "null")), "\"{not json\"");
    }

    #[test]
    fn django_json_encode_false_with_a_non_string_value() {
        let payload = format!("{{\"channel\":\"{C}\",\"event_type\":\"e\",\"data\":{{\"b\":1,\"a\":[true]}},\"pub_id\":null}}");
        assert_eq!(data(&payload), "{\"b\":1,\"a\":[true]}");
    }

    #[test]
    fn django_message_tolerates_new_fields_but_needs_its_own() {
        let payload = format!("{{\"channel\":\"{C}\",\"event_type\":\"e\",\"data\":\"1\",\"pub_id\":\"3\",\"extra\":1}}");
        assert!(decode(&payload).is_ok());
        let payload = format!("{{\"channel\":\"{C}\",\"event_type\":\"e\"}}");
        assert_eq!(decode(&payload).unwrap_err(), DecodeError::Missing("data"));
        let payload = "{\"event_type\":\"e\",\"data\":\"1\"}";
        assert_eq!(
            decode(payload).unwrap_err(),
            DecodeError::Missing("channel")
        );
        let payload = format!("{{\"channel\":\"{C}\",\"event_type\":7,\"data\":\"1\"}}");
        assert_eq!(
            decode(&payload).unwrap_err(),
            DecodeError::WrongType("event_type")
        );
    }

    #[test]
    fn native_form() {
        let payload = json!({"channel": C, "event": "scan.done", "data": {"z": 1, "a": 2}, "idempotency_key": "k-1"});
        let (event, form) = decode(&payload.to_string()).unwrap();
        assert_eq!(form, OriginForm::Native);
        assert_eq!(event.event, "scan.done");
        assert_eq!(event.idempotency_key.as_deref(), Some("k-1"));
        let raw = format!("{{\"channel\":\"{C}\",\"event\":\"e\",\"data\":{{\"z\":1,\"a\":2}}}}");
        assert_eq!(data(&raw), "{\"z\":1,\"a\":2}");
        let payload = json!({"channel": C, "event": "e", "data": null, "idempotency_key": null});
        let (event, _) = decode(&payload.to_string()).unwrap();
        assert_eq!((event.data.get(), event.idempotency_key), ("null", None));
    }

    #[test]
    fn native_form_is_strict() {
        let payload = json!({"channel": C, "event": "e", "data": 1, "idempotencyKey": "k"});
        assert_eq!(
            decode(&payload.to_string()).unwrap_err(),
            DecodeError::UnknownField("idempotencyKey".into())
        );
        let payload = json!({"channel": C, "event": "e"});
        assert_eq!(
            decode(&payload.to_string()).unwrap_err(),
            DecodeError::Missing("data")
        );
        let payload = json!({"channel": C, "event": "e", "data": 1, "idempotency_key": 5});
        assert_eq!(
            decode(&payload.to_string()).unwrap_err(),
            DecodeError::WrongType("idempotency_key")
        );
        let payload = json!({"channel": 1, "event": "e", "data": 1});
        assert_eq!(
            decode(&payload.to_string()).unwrap_err(),
            DecodeError::WrongType("channel")
        );
    }

    #[test]
    fn not_messages() {
        for bad in ["", "not json", "{", "{\"channel\":", "\u{feff}{}"] {
            assert_eq!(decode(bad).unwrap_err().reason(), "not_json", "{bad:?}");
        }
        assert_eq!(
            decode_message(&[0xff, 0x00]).unwrap_err().reason(),
            "not_json"
        );
        for bad in ["[]", "1", "null", "\"x\""] {
            assert_eq!(
                decode(bad).unwrap_err(),
                DecodeError::NotAnObject,
                "{bad:?}"
            );
        }
        assert_eq!(decode("{}").unwrap_err(), DecodeError::Missing("channel"));
        assert_eq!(
            decode(&format!("{{\"channel\":\"{C}\"}}")).unwrap_err(),
            DecodeError::Missing("event")
        );
        let both = json!({"channel": C, "event": "a", "event_type": "b", "data": 1});
        assert_eq!(
            decode(&both.to_string()).unwrap_err(),
            DecodeError::Ambiguous
        );
        assert_eq!(DecodeError::Ambiguous.reason(), "unrecognised_message");
    }

    fn entry<'a>(
        pairs: &'a [(&'a str, &'a str)],
    ) -> Result<(OriginEvent, OriginForm), DecodeError> {
        decode_stream_entry(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn stream_entry_with_fields() {
        let (event, form) = entry(&[
            ("channel", C),
            ("event", "scan.progress"),
            ("data", "{\"n\": 1}"),
        ])
        .unwrap();
        assert_eq!(form, OriginForm::StreamFields);
        assert_eq!(
            (event.event.as_str(), event.data.get()),
            ("scan.progress", "{\"n\": 1}")
        );
        let (event, _) = entry(&[
            ("channel", C),
            ("event_type", "e"),
            ("data", "plain text"),
            ("idempotency_key", "k"),
        ])
        .unwrap();
        assert_eq!(event.data.get(), "\"plain text\"");
        assert_eq!(event.idempotency_key.as_deref(), Some("k"));
    }

    #[test]
    fn stream_entry_with_a_message_field() {
        let native = json!({"channel": C, "event": "e", "data": [1]}).to_string();
        let (event, form) = entry(&[("message", &native)]).unwrap();
        assert_eq!((form, event.data.get()), (OriginForm::Native, "[1]"));
        let django = django("{\"a\": 1}", "null");
        let (event, form) = entry(&[("message", &django)]).unwrap();
        assert_eq!((form, event.data.get()), (OriginForm::Django, "{\"a\": 1}"));
        assert_eq!(
            entry(&[("message", "nope")]).unwrap_err().reason(),
            "not_json"
        );
    }

    #[test]
    fn stream_entry_errors() {
        assert_eq!(entry(&[]).unwrap_err(), DecodeError::Missing("channel"));
        assert_eq!(
            entry(&[("channel", C), ("data", "1")]).unwrap_err(),
            DecodeError::Missing("event")
        );
        assert_eq!(
            entry(&[("channel", C), ("event", "e")]).unwrap_err(),
            DecodeError::Missing("data")
        );
        assert_eq!(
            entry(&[
                ("channel", C),
                ("event", "e"),
                ("event_type", "e"),
                ("data", "1")
            ])
            .unwrap_err(),
            DecodeError::Ambiguous
        );
        assert_eq!(
            entry(&[("channel", C), ("event", "e"), ("data", "1"), ("ts", "1")]).unwrap_err(),
            DecodeError::UnknownField("ts".into())
        );
        assert!(matches!(
            entry(&[("message", "{}"), ("channel", C)]).unwrap_err(),
            DecodeError::UnknownField(_)
        ));
        let bad = decode_stream_entry([(&b"channel"[..], &[0xffu8][..])]).unwrap_err();
        assert_eq!(bad, DecodeError::WrongType("channel"));
    }

    fn event(channel: &str, event: &str, data: &str) -> OriginEvent {
        OriginEvent {
            channel: channel.into(),
            event: event.into(),
            data: data_from_text(data),
            idempotency_key: None,
        }
    }

    #[test]
    fn validation_is_the_workers() {
        assert!(validate(&event(C, "scan.progress", "{\"pct\": 1}"), 64).is_ok());
        assert_eq!(
            validate(&event("a:b:c", "e", "1"), 64).unwrap_err().code,
            "invalid_channel"
        );
        assert_eq!(
            validate(&event(C, "stream-open", "1"), 64)
                .unwrap_err()
                .code,
            "invalid_body"
        );
        assert_eq!(
            validate(&event(C, "a b", "1"), 64).unwrap_err().code,
            "invalid_body"
        );
        // Size counts compact data, as at the edge.
        let spaced = format!("[{}1]", "1, ".repeat(20));
        assert!(validate(&event(C, "e", &spaced), 43).is_ok());
        assert_eq!(
            validate(&event(C, "e", &spaced), 42).unwrap_err().code,
            "event_too_large"
        );
        let mut keyed = event(C, "e", "1");
        keyed.idempotency_key = Some("has space".into());
        assert_eq!(validate(&keyed, 64).unwrap_err().code, "invalid_body");
    }

    #[test]
    fn publish_body_is_what_the_worker_parses() {
        let mut events: Vec<OriginEvent> = (0..MAX_BATCH_EVENTS)
            .map(|i| {
                let mut e = event(C, "scan.progress", &format!("{{\"n\": {i}, \"a\": 0}}"));
                e.idempotency_key = Some(format!("k-{i}"));
                e
            })
            .collect();
        events[1].idempotency_key = None;
        let body = publish_body(&events);
        let parsed = parse_publish_body(&body, 1024).unwrap();
        assert_eq!(parsed.len(), MAX_BATCH_EVENTS);
        assert_eq!(parsed[7].data, "{\"n\":7,\"a\":0}");
        assert_eq!(parsed[7].idempotency_key.as_deref(), Some("k-7"));
        assert_eq!(parsed[1].idempotency_key, None);
        assert!(!String::from_utf8(body).unwrap().contains("null"));
    }
}
