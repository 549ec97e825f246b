//! Which credential a request presents: the `Authorization` header alone
//! decides when it is there, and a query credential counts only without it.

use super::problem::assert_client_error;
use edgestream_core::credentials::{select_credential, Credential};

/// Values at least this long cannot hide inside the fixed error messages,
/// so an error detail or challenge that contains one has echoed it. (The
/// problem's JSON is not searched: its fixed members are longer, and a
/// value may be a piece of them.)
const ECHO_PROBE_CHARS: usize = 64;

/// Any header and query values: the selection follows the precedence rules,
/// a selected credential is a whitespace-free token taken verbatim from
/// where it was presented, and a refusal is a 401 that echoes nothing.
pub fn check_selection(header: Option<&str>, tokens: &[&str], tickets: &[&str]) {
    let result = select_credential(header, tokens, tickets);
    match (header, &result) {
        (Some(header), Ok(credential)) => {
            let (scheme, value) = match credential {
                Credential::Bearer(v) => ("bearer", *v),
                Credential::ApiKey(v) => ("api-key", *v),
                other => panic!("a header selected a query credential: {other:?}"),
            };
            assert!(is_token68(value), "{header:?} gave {value:?}");
            let trimmed = header.trim_matches([' ', '\t']);
            let presented = trimmed
                .strip_suffix(value)
                .expect("the value ends the header");
            assert!(
                presented.ends_with(' ')
                    && presented.trim_end_matches(' ').eq_ignore_ascii_case(scheme),
                "{header:?}"
            );
        }
        (None, Ok(Credential::QueryToken(token))) => {
            assert_eq!((tokens, tickets.len()), (&[*token][..], 0));
            assert!(!token.is_empty());
        }
        (None, Ok(Credential::Ticket(ticket))) => {
            assert_eq!((tokens.len(), tickets), (0, &[*ticket][..]));
            assert!(!ticket.is_empty());
        }
        (None, Ok(other)) => panic!("no header, yet {other:?}"),
        (_, Err(problem)) => {
            assert_client_error(problem);
            assert_eq!(problem.status, 401, "{problem:?}");
            let presented = header
                .into_iter()
                .chain(tokens.iter().copied())
                .chain(tickets.iter().copied());
            for value in presented.filter(|v| v.chars().count() >= ECHO_PROBE_CHARS) {
                let challenge = problem.www_authenticate.as_deref().unwrap_or_default();
                assert!(
                    !problem.detail.contains(value) && !challenge.contains(value),
                    "echoed {value:?}"
                );
            }
        }
    }
    if header.is_none() && tokens.len() + tickets.len() == 1 {
        let value = tokens.iter().chain(tickets).next().expect("one value");
        assert_eq!(result.is_ok(), !value.is_empty(), "{tokens:?} {tickets:?}");
    }
}

/// Scheme names are case-insensitive (RFC 9110 section 11.1): every casing
/// of a scheme selects the same credential.
pub fn check_scheme_case(scheme: &str, value: &str) {
    let header = format!("{scheme} {value}");
    let canonical = select_credential(Some(&header), &[], &[]);
    for variant in [scheme.to_ascii_lowercase(), scheme.to_ascii_uppercase()] {
        let header = format!("{variant} {value}");
        let got = select_credential(Some(&header), &[], &[]);
        assert_eq!(got.is_ok(), canonical.is_ok(), "{variant:?}");
        if let (Ok(got), Ok(canonical)) = (got, &canonical) {
            assert_eq!(&got, canonical);
        }
    }
}

/// A non-empty value without whitespace, as a selected credential must be.
fn is_token68(value: &str) -> bool {
    !value.is_empty() && !value.contains(|c: char| c.is_ascii_whitespace())
}
