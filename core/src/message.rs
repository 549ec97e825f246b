//! The publish body (`POST /v1/publish`), shared by the Worker, which parses
//! it, and the bridge, which validates what it forwards with it. Parsing is strict because whatever
//! passes is stored and fanned out. (What a Channel Durable Object sends to
//! its streams is in [`crate::relay`].)

use crate::channel::ChannelName;
use crate::problem::Problem;
use crate::sse::RESERVED_EVENT_PREFIX;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// Most events in one publish request.
pub const MAX_BATCH_EVENTS: usize = 100;
const MAX_EVENT_TYPE_CHARS: usize = 64;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// One validated event ready for a channel: data is the compact JSON text of
/// the `data` value.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishEvent {
    pub channel: ChannelName,
    pub event: String,
    pub data: String,
    pub idempotency_key: Option<String>,
}

/// The 202 body: one result per event, in request order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishResponse {
    pub results: Vec<PublishResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishResult {
    pub channel: String,
    /// The event's sequence number in its channel.
    pub id: u64,
    /// True when the idempotency key was seen before and `id` is the
    /// original event's; nothing was delivered this time.
    pub duplicate: bool,
}

/// One event of the body as it arrives. `data` stays raw so that it is
/// checked and minified without building a `Value` tree.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent<'a> {
    channel: String,
    event: String,
    #[serde(borrow, default, deserialize_with = "null_is_present")]
    data: Option<&'a RawValue>,
    idempotency_key: Option<String>,
}

/// Either body form. The single form's fields and `events` are all optional
/// here so that mixing them can be reported as such.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBody<'a> {
    #[serde(borrow)]
    events: Option<Vec<WireEvent<'a>>>,
    channel: Option<String>,
    event: Option<String>,
    #[serde(borrow, default, deserialize_with = "null_is_present")]
    data: Option<&'a RawValue>,
    idempotency_key: Option<String>,
}

/// Tells a `"data": null` (present, a JSON null, allowed) from a missing
/// `data` (refused): a plain `Option` would read both as `None`.
fn null_is_present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Parses a `POST /v1/publish` body: a single event object or
/// `{"events":[...]}` with 1 to 100 events. Unknown fields are refused so a
/// misspelt `idempotency_key` cannot silently turn off deduplication.
pub fn parse_publish_body(
    body: &[u8],
    max_event_bytes: usize,
) -> Result<Vec<PublishEvent>, Problem> {
    let body: WireBody = serde_json::from_slice(body).map_err(|err| {
        Problem::invalid_body(format!("body is not a valid publish request: {err}"))
    })?;
    let single_given = body.channel.is_some()
        || body.event.is_some()
        || body.data.is_some()
        || body.idempotency_key.is_some();
    match body.events {
        Some(_) if single_given => Err(Problem::invalid_body(
            "send either one event or {\"events\":[...]}, not both",
        )),
        Some(events) if events.is_empty() => Err(Problem::invalid_body("events must not be empty")),
        Some(events) if events.len() > MAX_BATCH_EVENTS => {
            Err(Problem::batch_too_large(MAX_BATCH_EVENTS))
        }
        Some(events) => events
            .into_iter()
            .enumerate()
            .map(|(i, event)| {
                validate(event, max_event_bytes).map_err(|p| at(p, &format!("events[{i}]: ")))
            })
            .collect(),
        None => {
            let event = WireEvent {
                channel: body.channel.ok_or_else(|| missing("channel"))?,
                event: body.event.ok_or_else(|| missing("event"))?,
                data: body.data,
                idempotency_key: body.idempotency_key,
            };
            Ok(vec![validate(event, max_event_bytes)?])
        }
    }
}

fn missing(field: &str) -> Problem {
    Problem::invalid_body(format!("missing field `{field}`"))
}

/// Prefixes a problem's detail with where in the batch it happened.
fn at(mut problem: Problem, path: &str) -> Problem {
    problem.detail.insert_str(0, path);
    problem
}

fn validate(event: WireEvent<'_>, max_event_bytes: usize) -> Result<PublishEvent, Problem> {
    let channel = ChannelName::parse(&event.channel)
        .map_err(|err| Problem::invalid_channel(format!("channel: {err}")))?;
    if !is_event_type(&event.event) {
        return Err(Problem::invalid_body(format!(
            "event: must be 1-{MAX_EVENT_TYPE_CHARS} characters of A-Z, a-z, 0-9, '_', '.' and '-', \
             not starting with \"{RESERVED_EVENT_PREFIX}\""
        )));
    }
    let data = minify(event.data.ok_or_else(|| missing("data"))?.get());
    if data.len() > max_event_bytes {
        return Err(Problem::event_too_large(max_event_bytes));
    }
    if let Some(key) = &event.idempotency_key {
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_CHARS
            || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Problem::invalid_body(format!(
                "idempotency_key: must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
            )));
        }
    }
    Ok(PublishEvent {
        channel,
        event: event.event,
        data,
        idempotency_key: event.idempotency_key,
    })
}

/// `A-Z a-z 0-9 _ . -`, 1-64 characters, outside the relay's `stream-` names.
fn is_event_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_EVENT_TYPE_CHARS
        && !s.starts_with(RESERVED_EVENT_PREFIX)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Drops the whitespace between tokens of already-valid JSON. Everything
/// else (key order, number spelling, string escapes) stays as the publisher
/// wrote it. Compact JSON has no raw line breaks, since JSON strings cannot
/// hold any, so the data is always one SSE `data:` line.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &str = "scan-progress:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:42";
    const MAX: usize = 65536;

    fn parse(body: &str) -> Result<Vec<PublishEvent>, Problem> {
        parse_publish_body(body.as_bytes(), MAX)
    }

    fn single(fields: serde_json::Value) -> String {
        let mut body = json!({"channel": C, "event": "scan.progress", "data": {"pct": 42}});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.to_string()
    }

    fn code(body: &str) -> &'static str {
        parse(body).unwrap_err().code
    }

    #[test]
    fn single_event() {
        let events = parse(&single(json!({"idempotency_key": "k-1"}))).unwrap();
        assert_eq!(
            events,
            [PublishEvent {
                channel: ChannelName::parse(C).unwrap(),
                event: "scan.progress".into(),
                data: r#"{"pct":42}"#.into(),
                idempotency_key: Some("k-1".into()),
            }]
        );
    }

    #[test]
    fn batch_keeps_order() {
        let body = json!({"events": [
            {"channel": C, "event": "a", "data": 1},
            {"channel": C, "event": "b", "data": "two", "idempotency_key": "x"},
        ]});
        let events = parse(&body.to_string()).unwrap();
        let got: Vec<_> = events
            .iter()
            .map(|e| (e.event.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(got, [("a", "1"), ("b", "\"two\"")]);
    }

    #[test]
    fn data_is_any_json_value_including_null_and_is_made_compact() {
        let body = format!(
            "{{\"channel\":\"{C}\",\"event\":\"e\",\"data\":\n  {{ \"a\" : [ 1 , 2.50 , \"x y\\n\\\" z\" ] ,\r\n\t\"b\":null }} }}"
        );
        assert_eq!(
            parse(&body).unwrap()[0].data,
            r#"{"a":[1,2.50,"x y\n\" z"],"b":null}"#
        );
        for (value, compact) in [
            ("null", "null"),
            ("true", "true"),
            (" 0 ", "0"),
            ("\"\"", "\"\""),
            ("[ ]", "[]"),
            ("\"a \\\\\"", "\"a \\\\\""),
        ] {
            let body = format!("{{\"channel\":\"{C}\",\"event\":\"e\",\"data\":{value}}}");
            assert_eq!(parse(&body).unwrap()[0].data, compact, "{value}");
        }
    }

    #[test]
    fn compact_data_keeps_the_publishers_key_order() {
        let body = format!("{{\"channel\":\"{C}\",\"event\":\"e\",\"data\":{{\"z\":1,\"a\":2}}}}");
        assert_eq!(parse(&body).unwrap()[0].data, r#"{"z":1,"a":2}"#);
    }

    #[test]
    fn missing_data_is_refused_but_null_is_not() {
        let body = json!({"channel": C, "event": "e"}).to_string();
        assert_eq!(parse(&body).unwrap_err().detail, "missing field `data`");
        let body = json!({"events": [{"channel": C, "event": "e"}]}).to_string();
        assert_eq!(
            parse(&body).unwrap_err().detail,
            "events[0]: missing field `data`"
        );
        assert!(parse(&single(json!({"data": null}))).is_ok());
    }

    #[test]
    fn missing_channel_or_event() {
        assert_eq!(
            code(&json!({"event": "e", "data": 1}).to_string()),
            "invalid_body"
        );
        assert_eq!(
            code(&json!({"channel": C, "data": 1}).to_string()),
            "invalid_body"
        );
        assert_eq!(code("{}"), "invalid_body");
        assert_eq!(
            code(&json!({"events": [{"event": "e", "data": 1}]}).to_string()),
            "invalid_body"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse(&single(json!({"idempotencyKey": "k"}))).unwrap_err();
        assert_eq!(err.code, "invalid_body");
        assert!(err.detail.contains("idempotencyKey"), "{}", err.detail);
        let body =
            json!({"events": [{"channel": C, "event": "e", "data": 1, "extra": 1}]}).to_string();
        assert_eq!(code(&body), "invalid_body");
    }

    #[test]
    fn mixing_single_and_batch_is_refused() {
        let body =
            json!({"events": [{"channel": C, "event": "e", "data": 1}], "channel": C}).to_string();
        assert!(parse(&body).unwrap_err().detail.contains("not both"));
        let body =
            json!({"events": [{"channel": C, "event": "e", "data": 1}], "data": null}).to_string();
        assert_eq!(code(&body), "invalid_body");
    }

    #[test]
    fn batch_size_limits() {
        let event = json!({"channel": C, "event": "e", "data": 1});
        let batch = |n: usize| json!({ "events": vec![event.clone(); n] }).to_string();
        assert_eq!(parse(&batch(100)).unwrap().len(), 100);
        assert_eq!(code(&batch(101)), "batch_too_large");
        assert_eq!(code(&batch(0)), "invalid_body");
        assert_eq!(code(r#"{"events":null}"#), "invalid_body");
        assert_eq!(code(r#"{"events":{}}"#), "invalid_body");
    }

    #[test]
    fn not_json_or_not_an_object() {
        for body in [
            "",
            "not json",
            "{",
            "[]",
            "null",
            "\"x\"",
            "{\"channel\":1}",
            "\u{feff}{}",
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.code, "invalid_body", "{body}");
            assert!(
                err.detail
                    .starts_with("body is not a valid publish request: "),
                "{}",
                err.detail
            );
        }
        assert_eq!(
            parse_publish_body(&[0xff, 0xfe], MAX).unwrap_err().code,
            "invalid_body"
        );
    }

    #[test]
    fn channel_is_validated() {
        for bad in ["", "a:b:c", &format!("{C}:x"), &C.to_uppercase()] {
            assert_eq!(
                code(&single(json!({ "channel": bad }))),
                "invalid_channel",
                "{bad}"
            );
        }
        let body = json!({"events": [{"channel": C, "event": "e", "data": 1}, {"channel": "x", "event": "e", "data": 1}]});
        let err = parse(&body.to_string()).unwrap_err();
        assert!(
            err.detail.starts_with("events[1]: channel: "),
            "{}",
            err.detail
        );
    }

    #[test]
    fn event_type_rules() {
        for good in [
            "scan.progress",
            "a",
            "A-Z_0.9",
            &"e".repeat(64),
            "stream",
            "streams-x",
            "Stream-open",
            "message",
        ] {
            assert!(parse(&single(json!({ "event": good }))).is_ok(), "{good}");
        }
        for bad in [
            "",
            "stream-open",
            "stream-error",
            "stream-",
            "a b",
            "a\nid: 1",
            "a:b",
            "é",
            &"e".repeat(65),
        ] {
            assert_eq!(
                code(&single(json!({ "event": bad }))),
                "invalid_body",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn idempotency_key_rules() {
        assert!(parse(&single(json!({"idempotency_key": "~!x".repeat(42) + "ab"}))).is_ok());
        for bad in [
            json!(""),
            json!("a b"),
            json!("a\n"),
            json!("é"),
            json!("k".repeat(129)),
            json!(1),
        ] {
            assert_eq!(
                code(&single(json!({ "idempotency_key": bad }))),
                "invalid_body",
                "{bad}"
            );
        }
        assert_eq!(
            parse(&single(json!({"idempotency_key": null}))).unwrap()[0].idempotency_key,
            None
        );
    }

    #[test]
    fn event_size_is_measured_on_compact_data() {
        let max = 16;
        let fits =
            format!("{{\"channel\":\"{C}\",\"event\":\"e\",\"data\":[ 1, 2, 3, 4, 5, 6, 7 ]}}");
        assert_eq!(
            parse_publish_body(fits.as_bytes(), max).unwrap()[0].data,
            "[1,2,3,4,5,6,7]"
        );
        let over = format!(
            "{{\"channel\":\"{C}\",\"event\":\"e\",\"data\":\"{}\"}}",
            "x".repeat(15)
        );
        let err = parse_publish_body(over.as_bytes(), max).unwrap_err();
        assert_eq!((err.status, err.code), (413, "event_too_large"));
    }

    #[test]
    fn response_shape() {
        let response = PublishResponse {
            results: vec![PublishResult {
                channel: C.into(),
                id: 7,
                duplicate: false,
            }],
        };
        let text = serde_json::to_string(&response).unwrap();
        assert_eq!(
            text,
            format!("{{\"results\":[{{\"channel\":\"{C}\",\"id\":7,\"duplicate\":false}}]}}")
        );
        assert_eq!(
            serde_json::from_str::<PublishResponse>(&text).unwrap(),
            response
        );
    }
}
