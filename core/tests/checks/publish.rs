//! The publish body (`POST /v1/publish`): one event object or
//! `{"events":[...]}`.

use super::channel::is_channel;
use super::json::{self, Member};
use super::problem::assert_client_error;
use edgestream_core::message::{parse_publish_body, PublishEvent, MAX_BATCH_EVENTS};
use edgestream_core::sse::RESERVED_EVENT_PREFIX;

const EVENT_FIELDS: [&str; 4] = ["channel", "event", "data", "idempotency_key"];

/// The event type grammar of the contract: 1-64 of `A-Z a-z 0-9 _ . -`,
/// outside the relay's own `stream-` names.
pub fn is_event_type(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with(RESERVED_EVENT_PREFIX)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// An idempotency key of the contract: 1-128 visible ASCII characters.
pub fn is_idempotency_key(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Any bytes: a refusal is a 4xx problem; an accepted body is an object of
/// either form, without duplicate or unknown members, with 1 to 100 events,
/// each of which is exactly what the body said (data compacted, nothing
/// else changed), within the size limit and safe for the relay's line
/// format; and writing the events out again parses to the same events.
pub fn check_body(body: &[u8], max_event_bytes: usize) {
    let events = match parse_publish_body(body, max_event_bytes) {
        Ok(events) => events,
        Err(problem) => {
            assert_client_error(&problem);
            let codes = [
                "invalid_body",
                "invalid_channel",
                "batch_too_large",
                "event_too_large",
            ];
            assert!(codes.contains(&problem.code), "{problem:?}");
            return;
        }
    };
    let top = json::members(body).expect("an accepted body is an object");
    assert!(!json::has_duplicates(&top), "duplicate members accepted");
    // A member that is `null` says nothing, and the parser reads it as
    // absent: `"events": null` beside a single event, or `"channel": null`
    // beside `events`, does not mix the forms.
    let (nulls, top): (Vec<Member>, Vec<Member>) =
        top.into_iter().partition(|(_, v)| v.get() == "null");
    let sources: Vec<Vec<Member>> = match json::last(&top, "events") {
        Some(list) => {
            assert_eq!(top.len(), 1, "events mixed with single-event members");
            serde_json::from_str::<Vec<Box<serde_json::value::RawValue>>>(list.get())
                .expect("events is an array")
                .iter()
                .map(|raw| json::members(raw.get().as_bytes()).expect("each event is an object"))
                .collect()
        }
        None => vec![top
            .into_iter()
            .chain(nulls.into_iter().filter(|(n, _)| n != "events"))
            .collect()],
    };
    assert!((1..=MAX_BATCH_EVENTS).contains(&events.len()));
    assert_eq!(events.len(), sources.len());
    for (event, source) in events.iter().zip(&sources) {
        check_event(event, source, max_event_bytes);
    }
    let again = parse_publish_body(&render(&events), max_event_bytes);
    assert_eq!(again.as_deref(), Ok(&events[..]));
}

fn check_event(event: &PublishEvent, source: &[Member], max_event_bytes: usize) {
    assert!(!json::has_duplicates(source), "duplicate members accepted");
    assert!(source
        .iter()
        .all(|(name, _)| EVENT_FIELDS.contains(&name.as_str())));
    let string = |name| {
        json::last(source, name)
            .and_then(|raw| serde_json::from_str::<Option<String>>(raw.get()).ok())
    };
    assert!(is_channel(event.channel.as_str()));
    assert_eq!(
        string("channel").flatten().as_deref(),
        Some(event.channel.as_str())
    );
    assert!(is_event_type(&event.event), "{:?}", event.event);
    assert_eq!(
        string("event").flatten().as_deref(),
        Some(event.event.as_str())
    );
    let data = json::last(source, "data").expect("accepted without data");
    assert_eq!(event.data, json::compact(data.get()));
    assert!(json::is_json(&event.data) && !event.data.contains(['\n', '\r']));
    assert!(event.data.len() <= max_event_bytes);
    assert_eq!(string("idempotency_key").flatten(), event.idempotency_key);
    if let Some(key) = &event.idempotency_key {
        assert!(is_idempotency_key(key), "{key:?}");
    }
}

/// The events as a body of the form that suits their number.
fn render(events: &[PublishEvent]) -> Vec<u8> {
    let object = |e: &PublishEvent| {
        let mut text = format!(
            "{{\"channel\":{},\"event\":{},\"data\":{}",
            serde_json::to_string(e.channel.as_str()).unwrap(),
            serde_json::to_string(&e.event).unwrap(),
            e.data
        );
        if let Some(key) = &e.idempotency_key {
            text.push_str(&format!(
                ",\"idempotency_key\":{}",
                serde_json::to_string(key).unwrap()
            ));
        }
        text.push('}');
        text
    };
    match events {
        [one] => object(one).into_bytes(),
        many => {
            let list: Vec<String> = many.iter().map(object).collect();
            format!("{{\"events\":[{}]}}", list.join(",")).into_bytes()
        }
    }
}
