//! The channels a stream request asks for, and the tenant gate.

use crate::checks::channel::{check_gate, check_request};
use crate::config::config;
use crate::strategies::{any_channel, channel, hostile, mutated, tenant, TENANTS};
use edgestream_core::channel::ChannelName;
use proptest::prelude::*;

/// A query parameter: the two that name channels, near misses of their
/// names, and others a stream request carries.
fn pair() -> impl Strategy<Value = (String, String)> {
    let key = prop_oneof![
        4 => Just("channel"),
        3 => Just("channels"),
        1 => proptest::sample::select(&["Channel", "channel[]", "channels ", "lastEventId", "access_token"][..]),
    ];
    let list = proptest::collection::vec(any_channel(), 0..4).prop_map(|names| names.join(","));
    let value = prop_oneof![3 => channel(), 2 => any_channel(), 2 => list];
    (key.prop_map(str::to_owned), value)
}

/// A token's tenant: none, one that channels use, or a near miss of one.
fn token_tenant() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        4 => tenant().prop_map(Some),
        2 => mutated(proptest::sample::select(&TENANTS[..]).prop_map(str::to_owned)).prop_map(Some),
        1 => (proptest::sample::select(&TENANTS[..]), proptest::sample::select(&["upper", " ", "{}"][..]))
            .prop_map(|(t, how)| Some(match how {
                "upper" => t.to_uppercase(),
                " " => format!(" {t}"),
                _ => format!("{{{t}}}"),
            })),
        1 => hostile(4).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// `channel=`/`channels=` parse as the contract says (every item a
    /// name, duplicates once, 1 to `max` names, the whole request failing on
    /// one bad item), and the gate admits the result only for a token of
    /// each name's own tenant.
    #[test]
    fn requests_are_read_as_the_contract_says(
        query in proptest::collection::vec(pair(), 0..6),
        max in 0..7usize,
        tenant in token_tenant(),
    ) {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        check_request(&query, max, tenant.as_deref());
    }

    /// The gate never admits a channel whose parsed tenant differs from the
    /// token's, whatever the mix.
    #[test]
    fn the_gate_admits_only_the_tokens_tenant(
        names in proptest::collection::vec(channel(), 0..6),
        tenant in token_tenant(),
    ) {
        let channels: Vec<ChannelName> = names.iter().map(|n| ChannelName::parse(n).unwrap()).collect();
        check_gate(tenant.as_deref(), &channels);
    }
}
