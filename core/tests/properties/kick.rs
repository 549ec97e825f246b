//! Kick requests.

use crate::checks::kick::check_body;
use crate::config::config;
use crate::strategies::TENANTS;
use crate::strategies::{hostile, json_text, mutated, object, quoted, tenant, ws};
use edgestream_core::revocation::parse_kick;
use proptest::prelude::*;

/// A kick body: mostly the fields a kick has, each right, wrong or null,
/// sometimes a stranger or a field twice, in any order.
fn body() -> impl Strategy<Value = String> {
    let identifier = || {
        prop_oneof![
            4 => hostile(4).prop_map(|u| quoted(&u)),
            1 => Just(quoted(&"u".repeat(1025))),
            1 => Just("null".to_owned()),
            1 => Just("42".to_owned()),
        ]
    };
    let ttl = prop_oneof![
        (0..3_000_000u64).prop_map(|t| t.to_string()),
        proptest::sample::select(
            &[
                "0",
                "1",
                "2592000",
                "2592001",
                "-1",
                "1.5",
                "1e3",
                "null",
                "18446744073709551616"
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    let extra = prop_oneof![
        ("[a-z_]{1,8}", json_text()),
        proptest::sample::select(&["tenant", "user", "jti", "ttl_seconds"][..])
            .prop_map(|n| (n.to_owned(), quoted("x"))),
    ];
    (
        proptest::option::weighted(
            0.9,
            prop_oneof![3 => tenant(), 1 => mutated(tenant())].prop_map(|t| quoted(&t)),
        ),
        proptest::option::of(identifier()),
        proptest::option::weighted(0.3, identifier()),
        proptest::option::of(ttl),
        proptest::option::weighted(0.2, extra),
        proptest::collection::vec(any::<proptest::sample::Index>(), 4),
        proptest::collection::vec(ws(), 8),
    )
        .prop_map(|(tenant, user, jti, ttl, extra, order, ws)| {
            let mut members: Vec<(String, String)> = [
                ("tenant", tenant),
                ("user", user),
                ("jti", jti),
                ("ttl_seconds", ttl),
            ]
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect();
            members.extend(extra);
            for (i, at) in order.into_iter().enumerate() {
                if !members.is_empty() {
                    let len = members.len();
                    members.swap(i % len, at.index(len));
                }
            }
            object(&members, &ws)
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// An accepted kick is what the body said, within its bounds.
    #[test]
    fn kicks_are_what_the_body_said(body in body(), now in 0..2_000_000_000u64) {
        check_body(body.as_bytes(), now);
    }
}

/// Found with the `ticket` fuzz target's array finding: `["<tenant>"]` was
/// read as `{"tenant":"<tenant>"}`, a kick of every stream of the tenant.
#[test]
fn an_array_is_not_a_kick() {
    let tenant = quoted(TENANTS[0]);
    for body in [format!("[{tenant}]"), format!("[{tenant},\"42\",null,60]")] {
        let problem = parse_kick(body.as_bytes(), 0).unwrap_err();
        assert_eq!(problem.code, "invalid_body", "{body}");
        check_body(body.as_bytes(), 0);
    }
}
