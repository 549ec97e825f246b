//! Bridge messages: django-eventstream's Pub/Sub message, the native form,
//! and Valkey Streams entries, decoded into the events the bridge forwards.

use super::json;
use edgestream_core::message::parse_publish_body;
use edgestream_core::origin::{
    decode_message, decode_stream_entry, publish_body, validate, OriginEvent, OriginForm,
};

/// The size limit the checks validate with: the contract's default.
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// JSON's insignificant whitespace, which a value's text does not keep at
/// its ends.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Any payload: a decoded event says what the message said, in the form
/// its members select (`event_type` is django-eventstream's, whose `data`
/// string is decoded once more when it holds JSON and kept as a string
/// otherwise), and the bridge's verdict on it is the edge's.
pub fn check_message(payload: &[u8]) {
    let decoded = decode_message(payload);
    let Ok((event, form)) = decoded else {
        let reason = decoded.unwrap_err().reason();
        assert!(["not_json", "unrecognised_message"].contains(&reason));
        return;
    };
    let members = json::members(payload).expect("a decoded message is an object");
    let string = |name| {
        json::last(&members, name).and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    };
    assert_eq!(string("channel").as_deref(), Some(event.channel.as_str()));
    let data = json::last(&members, "data")
        .expect("decoded without data")
        .get();
    match form {
        OriginForm::Django => {
            assert!(json::last(&members, "event").is_none());
            assert_eq!(string("event_type").as_deref(), Some(event.event.as_str()));
            assert_eq!(event.idempotency_key, None);
            match serde_json::from_str::<String>(data) {
                Ok(text) if json::is_json(&text) => {
                    assert_eq!(event.data.get(), text.trim_matches(JSON_WHITESPACE));
                }
                Ok(text) => {
                    assert_eq!(
                        serde_json::from_str::<String>(event.data.get()).ok(),
                        Some(text)
                    );
                }
                Err(_) => assert_eq!(event.data.get(), data),
            }
        }
        OriginForm::Native => {
            assert!(json::last(&members, "event_type").is_none());
            assert_eq!(string("event").as_deref(), Some(event.event.as_str()));
            assert_eq!(event.data.get(), data);
            assert_eq!(string("idempotency_key"), event.idempotency_key);
        }
        OriginForm::StreamFields => panic!("a Pub/Sub message decoded as a Streams entry"),
    }
    check_forwarding(&event);
}

/// Any Streams entry: a single `message` field is exactly that message;
/// otherwise the fields are the event's, in any order.
pub fn check_stream_entry(fields: &[(Vec<u8>, Vec<u8>)]) {
    let pairs = || fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
    let decoded = decode_stream_entry(pairs());
    if let [(name, payload)] = fields {
        if name == b"message" {
            assert_eq!(decoded, decode_message(payload));
        }
    }
    let names_distinct = fields
        .iter()
        .enumerate()
        .all(|(i, (name, _))| fields[..i].iter().all(|(n, _)| n != name));
    if names_distinct {
        let reversed = decode_stream_entry(pairs().rev());
        match (&decoded, &reversed) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (a, b) => assert_eq!(a.is_ok(), b.is_ok(), "{a:?} / {b:?}"),
        }
    }
    if let Ok((event, form)) = decoded {
        if form == OriginForm::StreamFields {
            let field = |name: &[u8]| fields.iter().rev().find(|(n, _)| n == name);
            let text =
                |name: &[u8]| field(name).map(|(_, v)| String::from_utf8(v.clone()).unwrap());
            assert_eq!(text(b"channel").as_deref(), Some(event.channel.as_str()));
            assert_eq!(
                text(b"event").or(text(b"event_type")).as_deref(),
                Some(event.event.as_str())
            );
            assert_eq!(text(b"idempotency_key"), event.idempotency_key);
            let data = text(b"data").expect("decoded without data");
            if json::is_json(&data) {
                assert_eq!(event.data.get(), data.trim_matches(JSON_WHITESPACE));
            } else {
                assert_eq!(
                    serde_json::from_str::<String>(event.data.get()).ok(),
                    Some(data)
                );
            }
        }
        check_forwarding(&event);
    }
}

/// The bridge accepts an event exactly when the edge accepts the batch body
/// it sends, and the edge then stores what the origin published.
pub fn check_forwarding(event: &OriginEvent) {
    let verdict = validate(event, MAX_EVENT_BYTES);
    let body = publish_body([event]);
    let parsed = parse_publish_body(&body, MAX_EVENT_BYTES);
    assert_eq!(verdict.is_ok(), parsed.is_ok(), "{verdict:?} / {parsed:?}");
    match parsed {
        Ok(events) => {
            let [stored] = &events[..] else {
                panic!("one event, {} stored", events.len())
            };
            assert_eq!(stored.channel.as_str(), event.channel);
            assert_eq!(stored.event, event.event);
            assert_eq!(stored.data, json::compact(event.data.get()));
            assert_eq!(stored.idempotency_key, event.idempotency_key);
        }
        Err(problem) => assert_eq!(verdict.unwrap_err().code, problem.code),
    }
}

/// A batch body is JSON with one entry per event, whatever the events hold.
pub fn check_batch(events: &[OriginEvent]) {
    let body = publish_body(events);
    let members = json::members(&body).expect("the batch body is an object");
    let list = json::last(&members, "events")
        .expect("the body has events")
        .get();
    let list: Vec<Box<serde_json::value::RawValue>> =
        serde_json::from_str(list).expect("events is an array");
    assert_eq!(list.len(), events.len());
}
