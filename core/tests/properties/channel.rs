//! Channel names: `<prefix>:<tenant>:<resource>`.

use crate::checks::channel::{check_build, check_name};
use crate::config::config;
use crate::strategies::{any_channel, channel_parts, hostile, mutated, prefix, resource, tenant};
use proptest::prelude::*;

proptest! {
    #![proptest_config(config(128))]

    /// A name built from valid parts parses, re-renders to the same text
    /// and has exactly those parts.
    #[test]
    fn valid_names_round_trip((p, t, r) in channel_parts()) {
        check_build(&p, &t, &r);
        check_name(&format!("{p}:{t}:{r}"));
    }

    /// Valid, near-valid (case changes, `%3A`, unicode, overlong, CR/LF/NUL)
    /// and hostile text is accepted exactly when the contract's grammar says so.
    #[test]
    fn any_text_is_judged_by_the_grammar(s in any_channel()) {
        check_name(&s);
    }

    /// Building never escapes or splits: hostile parts are refused, and
    /// what is built has the parts it was built from.
    #[test]
    fn building_from_hostile_parts(
        p in prop_oneof![prefix(), mutated(prefix()), hostile(4)],
        t in prop_oneof![tenant(), mutated(tenant()), hostile(4)],
        r in prop_oneof![resource(), mutated(resource()), hostile(4)],
    ) {
        check_build(&p, &t, &r);
    }
}
