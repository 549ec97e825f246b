//! Bridge messages: django-eventstream's, the native form, Streams entries.

use crate::checks::origin::{check_batch, check_message, check_stream_entry};
use crate::config::config;
use crate::strategies::{any_channel, hostile, json_text, mutated, object, quoted, ws};
use edgestream_core::origin::{data_from_text, OriginEvent};
use proptest::prelude::*;

/// Text as Python's `json.dumps` writes it (`ensure_ascii`: everything
/// outside ASCII as `\uXXXX`, astral characters as surrogate pairs).
fn python_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for unit in text.encode_utf16() {
        match unit {
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0x09 => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0x20..=0x7e => out.push(char::from(unit as u8)),
            _ => out.push_str(&format!("\\u{unit:04x}")),
        }
    }
    out.push('"');
    out
}

/// What `send_event()` publishes: `data` is JSON text (or, with
/// `json_encode=False`, any text or a JSON value), as Python formats it.
fn django_message() -> impl Strategy<Value = String> {
    let data = prop_oneof![
        4 => json_text().prop_map(|j| python_quoted(&j)),
        2 => hostile(6).prop_map(|t| python_quoted(&t)),
        1 => json_text(),
    ];
    let pub_id = prop_oneof![
        Just("null".to_owned()),
        "[0-9]{1,4}".prop_map(|n| python_quoted(&n))
    ];
    (
        any_channel(),
        mutated(Just("scan.progress".to_owned())),
        data,
        pub_id,
        proptest::option::of(("[a-z_]{1,8}", json_text())),
    )
        .prop_map(|(channel, event, data, pub_id, extra)| {
            let mut text = format!(
                "{{\"channel\": {}, \"event_type\": {}, \"data\": {data}, \"pub_id\": {pub_id}",
                python_quoted(&channel),
                python_quoted(&event)
            );
            if let Some((name, value)) = extra {
                text.push_str(&format!(", {}: {value}", quoted(&name)));
            }
            text.push('}');
            text
        })
}

/// Messages of any form, with members right, wrong, missing or doubled.
fn message() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        3 => any_channel().prop_map(|c| ("channel".to_owned(), quoted(&c))),
        2 => "[a-z.]{1,12}".prop_map(|e| ("event".to_owned(), quoted(&e))),
        2 => "[a-z.]{1,12}".prop_map(|e| ("event_type".to_owned(), quoted(&e))),
        3 => prop_oneof![json_text(), json_text().prop_map(|j| quoted(&j))].prop_map(|d| ("data".to_owned(), d)),
        1 => prop_oneof!["[!-~]{1,8}".prop_map(|k| quoted(&k)), Just("null".to_owned()), Just("5".to_owned())]
            .prop_map(|k| ("idempotency_key".to_owned(), k)),
        1 => ("[a-z_]{1,8}", json_text()),
    ];
    (
        proptest::collection::vec(member, 0..6),
        proptest::collection::vec(ws(), 8),
    )
        .prop_map(|(members, ws)| object(&members, &ws))
}

/// A Streams entry's fields: the event's, a `message`, strangers, bytes
/// that are not UTF-8.
fn stream_fields() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let name = prop_oneof![
        6 => proptest::sample::select(&["channel", "event", "event_type", "data", "idempotency_key", "message"][..]).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ];
    let value = prop_oneof![
        3 => any_channel().prop_map(String::into_bytes),
        3 => json_text().prop_map(String::into_bytes),
        2 => message().prop_map(String::into_bytes),
        2 => hostile(4).prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec((name.prop_map(String::into_bytes), value), 0..6)
}

/// The fields an entry needs, for valid-looking entries.
fn event_fields() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    (
        any_channel(),
        "[a-z.]{1,12}",
        prop_oneof![json_text(), hostile(4)],
        proptest::option::of("[!-~]{1,8}"),
        any::<bool>(),
    )
        .prop_map(|(channel, event, data, key, django)| {
            let mut fields = vec![
                (b"channel".to_vec(), channel.into_bytes()),
                (
                    if django {
                        b"event_type".to_vec()
                    } else {
                        b"event".to_vec()
                    },
                    event.into_bytes(),
                ),
                (b"data".to_vec(), data.into_bytes()),
            ];
            fields.extend(key.map(|k| (b"idempotency_key".to_vec(), k.into_bytes())));
            fields
        })
}

proptest! {
    #![proptest_config(config(128))]

    /// django-eventstream's own messages reach the edge as the value the
    /// origin sent, and the bridge judges them as the edge does.
    #[test]
    fn django_messages(payload in django_message()) {
        check_message(payload.as_bytes());
    }

    /// Messages of any form and near misses of them.
    #[test]
    fn any_messages(payload in prop_oneof![message(), mutated(django_message()), hostile(12)]) {
        check_message(payload.as_bytes());
    }

    /// Streams entries: one `message` field is that message, fields count
    /// in any order.
    #[test]
    fn stream_entries(fields in prop_oneof![event_fields(), stream_fields()]) {
        check_stream_entry(&fields);
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// A batch body is valid JSON with one entry per event, whatever the
    /// events hold.
    #[test]
    fn batch_bodies(events in proptest::collection::vec((hostile(6), hostile(4), json_text(), proptest::option::of(hostile(4))), 0..5)) {
        let events: Vec<OriginEvent> = events
            .into_iter()
            .map(|(channel, event, data, idempotency_key)| OriginEvent { channel, event, data: data_from_text(&data), idempotency_key })
            .collect();
        check_batch(&events);
    }
}
