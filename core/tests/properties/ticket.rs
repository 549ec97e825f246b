//! Stream ticket requests and ticket ids.

use crate::checks::ticket::{check_redeem, check_request, check_shape};
use crate::config::config;
use crate::strategies::TENANTS;
use crate::strategies::{any_channel, channel, json_text, mutated, object, quoted, tenant, ws};
use edgestream_core::channel::ChannelName;
use edgestream_core::ticket::parse_ticket_request;
use edgestream_core::token::Claims;
use proptest::prelude::*;

fn body() -> impl Strategy<Value = String> {
    let list = proptest::collection::vec(any_channel(), 0..7).prop_map(|names| {
        format!(
            "[{}]",
            names
                .iter()
                .map(|n| quoted(n))
                .collect::<Vec<_>>()
                .join(",")
        )
    });
    let member = prop_oneof![
        4 => list.prop_map(|l| ("channels".to_owned(), l)),
        1 => json_text().prop_map(|v| ("channels".to_owned(), v)),
        1 => ("[a-z]{1,8}", json_text()),
    ];
    (
        proptest::collection::vec(member, 0..3),
        proptest::collection::vec(ws(), 8),
    )
        .prop_map(|(members, ws)| object(&members, &ws))
}

proptest! {
    #![proptest_config(config(128))]

    /// A ticket request is `{"channels":[...]}` read like a stream's list.
    #[test]
    fn requests_are_channel_lists(body in body(), max in 1..7usize) {
        check_request(body.as_bytes(), max);
    }

    /// A ticket id is exactly 64 lowercase hex digits.
    #[test]
    fn ids_are_64_lowercase_hex_digits(ticket in prop_oneof!["[0-9a-f]{64}", mutated("[0-9a-f]{64}".prop_map(String::from)), "[0-9a-fA-F]{62,66}"]) {
        check_shape(&ticket);
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// A ticket opens only what it grants, as its tenant, without publish
    /// rights, within its lifetime.
    #[test]
    fn tickets_open_only_what_they_grant(
        granted in proptest::collection::vec(channel(), 0..4),
        requested in proptest::collection::vec(channel(), 0..3),
        reuse in proptest::collection::vec(any::<proptest::sample::Index>(), 0..3),
        tenant in proptest::option::weighted(0.9, tenant()),
        issued in 0..1_000_000u64,
        age in 0..120u64,
    ) {
        let parse = |names: &[String]| names.iter().map(|n| ChannelName::parse(n).unwrap()).collect::<Vec<_>>();
        let granted = parse(&granted);
        let mut requested = parse(&requested);
        if !granted.is_empty() {
            requested.extend(reuse.iter().map(|i| granted[i.index(granted.len())].clone()));
        }
        let claims = Claims {
            subject: Some("user-1".into()),
            tenant,
            scopes: vec!["events:publish".into()],
            expires_at: issued + 3_600,
            jti: None,
            jurisdiction: None,
        };
        check_redeem(&claims, &granted, &requested, issued, issued + age);
    }
}

/// Found by the `ticket` fuzz target: `[[]]` was read as
/// `{"channels":[]}`, because a derived struct also reads a JSON array of
/// its fields, so an array holding a channel list was a ticket request.
#[test]
fn an_array_is_not_a_ticket_request() {
    let list = format!("[{}]", quoted(&format!("scan-progress:{}:a", TENANTS[0])));
    for body in [
        "[[]]".to_owned(),
        format!("[{list}]"),
        format!(" \n[{list}]"),
    ] {
        let problem = parse_ticket_request(body.as_bytes(), 5).unwrap_err();
        assert_eq!(problem.code, "invalid_body", "{body}");
        check_request(body.as_bytes(), 5);
    }
}
