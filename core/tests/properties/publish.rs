//! The publish body.

use crate::checks::publish::check_body;
use crate::config::config;
use crate::strategies::{any_channel, channel, hostile, json_text, mutated, object, quoted, ws};
use edgestream_core::message::parse_publish_body;
use proptest::prelude::*;

const MAX_EVENT_BYTES: usize = 64 * 1024;

/// An event type: valid, reserved, near misses.
fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_.-]{1,64}",
        1 => Just("stream-open".to_owned()),
        2 => mutated("[a-z]{1,8}\\.[a-z]{1,8}".prop_map(String::from)),
    ]
}

/// One event's members: each field right, wrong or missing, sometimes twice
/// or misspelt.
fn event_members() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        "[!-~]{1,12}",
        mutated("[a-z0-9-]{1,12}".prop_map(String::from)),
        Just("k".repeat(129))
    ];
    (
        prop_oneof![8 => channel(), 2 => any_channel()]
            .prop_map(|c| ("channel".to_owned(), quoted(&c))),
        event_type().prop_map(|e| ("event".to_owned(), quoted(&e))),
        json_text().prop_map(|d| ("data".to_owned(), d)),
        proptest::option::of(prop_oneof![
            key.prop_map(|k| quoted(&k)),
            Just("null".to_owned()),
            Just("1".to_owned())
        ]),
        proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(
                    &[
                        "channel",
                        "event",
                        "data",
                        "idempotency_key",
                        "idempotencyKey",
                        "events",
                        "Channel"
                    ][..]
                )
                .prop_map(str::to_owned),
                "[a-z]{1,6}",
            ],
            0..2,
        ),
        proptest::collection::vec(any::<proptest::sample::Index>(), 3),
        json_text(),
        any::<u8>(),
    )
        .prop_map(
            |(channel, event, data, key, extra, order, extra_value, drop)| {
                let mut members = vec![channel, event, data];
                members.extend(key.map(|k| ("idempotency_key".to_owned(), k)));
                if drop % 8 == 0 {
                    members.remove(usize::from(drop / 8) % members.len());
                }
                for (i, name) in extra.into_iter().enumerate() {
                    let value = if i == 0 {
                        extra_value.clone()
                    } else {
                        quoted("x")
                    };
                    members.push((name, value));
                }
                for (i, at) in order.into_iter().enumerate() {
                    let len = members.len();
                    members.swap(i % len, at.index(len));
                }
                members
            },
        )
}

/// A body of either form, written with whitespace anywhere.
fn body() -> impl Strategy<Value = String> {
    let single = (event_members(), proptest::collection::vec(ws(), 16))
        .prop_map(|(m, ws)| object(&m, &ws))
        .boxed();
    let batch = (
        proptest::collection::vec(single.clone(), 0..5),
        proptest::collection::vec(ws(), 4),
        proptest::option::of(channel()),
    )
        .prop_map(|(events, ws, mixed)| {
            let mut members = vec![(
                "events".to_owned(),
                format!("[{}]", events.join(&format!("{},", ws[0]))),
            )];
            members.extend(mixed.map(|c: String| ("channel".to_owned(), quoted(&c))));
            object(&members, &ws)
        });
    prop_oneof![3 => single, 2 => batch]
}

proptest! {
    #![proptest_config(config(96))]

    /// Bodies of either form with fields right, wrong, missing, duplicated
    /// or misspelt: what is accepted is exactly what was sent (data only
    /// compacted) and re-parses to the same events; refusals are 4xx.
    #[test]
    fn bodies_are_taken_as_written(body in body()) {
        check_body(body.as_bytes(), MAX_EVENT_BYTES);
    }

    /// Near-valid bodies: a valid body with its text edited.
    #[test]
    fn edited_bodies(body in mutated(body())) {
        check_body(body.as_bytes(), MAX_EVENT_BYTES);
    }

    /// Arbitrary bytes never yield a 5xx.
    #[test]
    fn any_bytes(body in prop_oneof![proptest::collection::vec(any::<u8>(), 0..64), hostile(16).prop_map(String::into_bytes)]) {
        check_body(&body, MAX_EVENT_BYTES);
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// The size limit holds on compact data, whatever the limit.
    #[test]
    fn the_size_limit_holds(body in body(), max in 0..64usize) {
        check_body(body.as_bytes(), max);
    }
}

proptest! {
    #![proptest_config(config(8))]

    /// Batches around the limit of 100 events.
    #[test]
    fn batches_around_the_limit(n in 98..=102usize, c in channel()) {
        let event = format!("{{\"channel\":{},\"event\":\"e\",\"data\":1}}", quoted(&c));
        let body = format!("{{\"events\":[{}]}}", vec![event; n].join(","));
        check_body(body.as_bytes(), MAX_EVENT_BYTES);
    }
}

/// A `null` member says nothing: `"events": null` beside a single event
/// is read as absent, so the body is the single event.
#[test]
fn a_null_member_is_an_absent_one() {
    let channel = quoted("a:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:x");
    let body = format!("{{\"events\":null,\"channel\":{channel},\"event\":\"e\",\"data\":1}}");
    assert_eq!(
        parse_publish_body(body.as_bytes(), MAX_EVENT_BYTES)
            .unwrap()
            .len(),
        1
    );
    check_body(body.as_bytes(), MAX_EVENT_BYTES);
}
