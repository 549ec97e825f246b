//! Which credential a request presents.

use crate::checks::credentials::{check_scheme_case, check_selection};
use crate::config::config;
use crate::strategies::{hostile, mutated};
use proptest::prelude::*;

/// A token68 value, sometimes long enough that an echo would be caught.
fn value() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9._~+/=-]{1,12}", "secret-[A-Za-z0-9]{64,80}"]
}

/// An `Authorization` header: a scheme (right, near miss or other) with
/// separators of every kind around a value, or hostile text.
fn header() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        3 => proptest::sample::select(&["Bearer", "Api-Key"][..]).prop_map(str::to_owned),
        2 => mutated(proptest::sample::select(&["Bearer", "Api-Key"][..]).prop_map(str::to_owned)),
        1 => proptest::sample::select(&["Basic", "Token", "ApiKey", ""][..]).prop_map(str::to_owned),
    ];
    let gap = "[ \t]{0,3}";
    prop_oneof![
        4 => (gap, scheme, "[ \t]{0,3}", prop_oneof![value(), hostile(3)], "[ \t]{0,2}")
            .prop_map(|(a, s, b, v, c)| format!("{a}{s}{b}{v}{c}")),
        1 => hostile(6),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// A header decides alone; a query credential counts only without one,
    /// and only alone; what is selected is a whitespace-free value taken as
    /// presented; refusals are 401s that echo nothing.
    #[test]
    fn selection_follows_the_precedence_rules(
        header in proptest::option::of(header()),
        tokens in proptest::collection::vec(prop_oneof![value(), Just(String::new())], 0..3),
        tickets in proptest::collection::vec(prop_oneof![value(), Just(String::new())], 0..3),
    ) {
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let tickets: Vec<&str> = tickets.iter().map(String::as_str).collect();
        check_selection(header.as_deref(), &tokens, &tickets);
    }

    /// Every casing of a scheme selects the same credential.
    #[test]
    fn schemes_are_case_insensitive(
        scheme in prop_oneof![Just("Bearer".to_owned()), Just("Api-Key".to_owned()), "[A-Za-z-]{1,8}"],
        value in value(),
    ) {
        check_scheme_case(&scheme, &value);
    }
}

/// Found by the `credentials` fuzz target: a query token that is itself the
/// start of a problem document's JSON is found in that JSON without being
/// echoed. The check looks for echoes where they would be, in the detail
/// and the challenge.
#[test]
fn a_value_that_is_part_of_the_problem_text_is_not_an_echo() {
    let value = r#"{"type":"urn:edgestream:problem:invalid_token","title":"Invalid "#;
    check_selection(None, &[value, value], &[]);
    check_selection(Some(&format!("Token {value}")), &[], &[value]);
}
