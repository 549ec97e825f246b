//! API keys and their stored records.

use crate::checks::api_key::{check_key, check_record};
use crate::config::config;
use crate::strategies::{hostile, json_text, object, quoted, tenant, ws};
use proptest::prelude::*;

/// A record's members: right and wrong types, an empty tenant, unknown
/// members.
fn record() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        ("[a-z-]{0,8}").prop_map(|n| ("name".to_owned(), quoted(&n))),
        prop_oneof![tenant(), Just(String::new())].prop_map(|t| ("tenant".to_owned(), quoted(&t))),
        "(events:[a-z]{1,8}[ \t]{0,2}){0,3}".prop_map(|s| ("scope".to_owned(), quoted(&s))),
        (0..3_000u64).prop_map(|at| ("expires_at".to_owned(), at.to_string())),
        ("[a-z_]{1,10}", json_text()),
    ];
    (
        proptest::collection::vec(member, 0..6),
        proptest::collection::vec(ws(), 8),
    )
        .prop_map(|(members, ws)| object(&members, &ws))
}

proptest! {
    #![proptest_config(config(128))]

    /// The shape check admits exactly 1-256 visible ASCII characters, and
    /// fingerprints are 64 hex digits of the whole key.
    #[test]
    fn keys_are_shaped_and_fingerprinted(key in prop_oneof![hostile(8), "[!-~]{1,300}"]) {
        check_key(&key);
    }

    /// A record grants what it says and nothing for an empty tenant.
    #[test]
    fn records_grant_what_they_say(json in record(), now in 0..3_000u64) {
        check_record(&json, now);
    }
}
