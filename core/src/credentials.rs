//! Which credential a request presents.
//!
//! The contract's precedence is strict: when an `Authorization` header is
//! present it alone decides, even when it is broken. Falling back to the
//! query string after a bad header would let whoever controls a link (query
//! strings end up in links, logs and `Referer`s) choose the identity a request
//! runs under. API keys are accepted from the header only for the same reason.

use crate::problem::Problem;

/// A credential as presented, borrowed from the request. Nothing here has
/// been verified yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `Authorization: Bearer <jwt>`.
    Bearer(&'a str),
    /// `Authorization: Api-Key <key>`.
    ApiKey(&'a str),
    /// `?access_token=<jwt>` (RFC 6750 section 2.3), only without a header.
    QueryToken(&'a str),
    /// `?ticket=<ticket>`: a short-lived, single-use stream ticket, only
    /// without a header, so that long-lived tokens need not sit in URLs.
    Ticket(&'a str),
}

/// Picks the request's credential.
///
/// `authorization` is the `Authorization` header if present (even if empty);
/// `query_tokens` and `query_tickets` are every value of the `access_token`
/// and `ticket` query parameters. Without a header, exactly one query
/// credential must be present: two are ambiguous, and ambiguity is refused.
/// Schemes are matched case-insensitively (RFC 9110 section 11.1). No error
/// detail ever contains the credential itself.
pub fn select_credential<'a>(
    authorization: Option<&'a str>,
    query_tokens: &[&'a str],
    query_tickets: &[&'a str],
) -> Result<Credential<'a>, Problem> {
    if let Some(header) = authorization {
        return from_header(header);
    }
    match (query_tokens, query_tickets) {
        ([], []) => Err(Problem::missing_credentials()),
        ([token], []) => non_empty(token, "access_token").map(Credential::QueryToken),
        ([], [ticket]) => non_empty(ticket, "ticket").map(Credential::Ticket),
        ([_, _, ..], []) => Err(Problem::invalid_token("access_token given more than once")),
        ([], [_, _, ..]) => Err(Problem::invalid_token("ticket given more than once")),
        _ => Err(Problem::invalid_token(
            "give either access_token or ticket, not both",
        )),
    }
}

fn non_empty<'a>(value: &'a str, name: &str) -> Result<&'a str, Problem> {
    if value.is_empty() {
        return Err(Problem::invalid_token(format!("{name} is empty")));
    }
    Ok(value)
}

fn from_header(header: &str) -> Result<Credential<'_>, Problem> {
    let header = header.trim_matches(|c| c == ' ' || c == '\t');
    if header.is_empty() {
        return Err(Problem::invalid_token("the Authorization header is empty"));
    }
    let Some((scheme, value)) = header.split_once(' ') else {
        return Err(Problem::invalid_token(
            "the Authorization header has a scheme but no credential",
        ));
    };
    let value = value.trim_start_matches(' ');
    // A token68 has no whitespace; anything after a space would be a second
    // credential or auth-params that no scheme here takes.
    if value.is_empty() || value.contains(|c: char| c.is_ascii_whitespace()) {
        return Err(Problem::invalid_token(
            "the Authorization header must be '<scheme> <credential>'",
        ));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credential::Bearer(value))
    } else if scheme.eq_ignore_ascii_case("api-key") {
        Ok(Credential::ApiKey(value))
    } else {
        Err(Problem::invalid_token(
            "the Authorization scheme must be Bearer or Api-Key",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";

    #[test]
    fn bearer_header() {
        assert_eq!(
            select_credential(Some("Bearer abc"), &[], &[]),
            Ok(Credential::Bearer("abc"))
        );
        assert_eq!(
            select_credential(Some("bearer abc"), &[], &[]),
            Ok(Credential::Bearer("abc"))
        );
        assert_eq!(
            select_credential(Some("BEARER  abc"), &[], &[]),
            Ok(Credential::Bearer("abc"))
        );
    }

    #[test]
    fn api_key_header() {
        assert_eq!(
            select_credential(Some("Api-Key k1"), &[], &[]),
            Ok(Credential::ApiKey("k1"))
        );
        assert_eq!(
            select_credential(Some("api-key k1"), &[], &[]),
            Ok(Credential::ApiKey("k1"))
        );
    }

    #[test]
    fn broken_header_fails_without_falling_back_to_the_query() {
        for header in [
            "",
            " ",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Token abc",
            "Bearer a b",
            "Bearer\tabc",
            "Bearerabc",
            "ApiKey k",
        ] {
            let err = select_credential(Some(header), &[JWT], &[]).unwrap_err();
            assert_eq!((err.status, err.code), (401, "invalid_token"), "{header:?}");
        }
    }

    #[test]
    fn valid_header_wins_over_query() {
        assert_eq!(
            select_credential(Some("Bearer h"), &["q"], &[]),
            Ok(Credential::Bearer("h"))
        );
        assert_eq!(
            select_credential(Some("Api-Key k"), &["q", "r"], &[]),
            Ok(Credential::ApiKey("k"))
        );
    }

    #[test]
    fn query_token_only_without_header() {
        assert_eq!(
            select_credential(None, &[JWT], &[]),
            Ok(Credential::QueryToken(JWT))
        );
    }

    #[test]
    fn query_token_given_twice_is_refused() {
        let err = select_credential(None, &[JWT, JWT], &[]).unwrap_err();
        assert_eq!(err.code, "invalid_token");
        assert_eq!(err.detail, "access_token given more than once");
        assert_eq!(
            select_credential(None, &["", JWT], &[]).unwrap_err().code,
            "invalid_token"
        );
    }

    #[test]
    fn empty_query_token_is_invalid_not_missing() {
        assert_eq!(
            select_credential(None, &[""], &[]).unwrap_err().code,
            "invalid_token"
        );
    }

    #[test]
    fn ticket_only_without_header_and_never_with_a_query_token() {
        assert_eq!(
            select_credential(None, &[], &["t1"]),
            Ok(Credential::Ticket("t1"))
        );
        assert_eq!(
            select_credential(Some("Bearer h"), &[], &["t1"]),
            Ok(Credential::Bearer("h"))
        );
        for (tokens, tickets) in [
            (&[JWT][..], &["t1"][..]),
            (&[], &["t1", "t2"]),
            (&[], &[""]),
        ] {
            let err = select_credential(None, tokens, tickets).unwrap_err();
            assert_eq!((err.status, err.code), (401, "invalid_token"));
        }
    }

    #[test]
    fn nothing_presented_is_missing_credentials() {
        let err = select_credential(None, &[], &[]).unwrap_err();
        assert_eq!(err.code, "missing_credentials");
        assert_eq!(
            err.www_authenticate.as_deref(),
            Some("Bearer realm=\"edgestream\"")
        );
    }

    #[test]
    fn errors_never_echo_the_credential() {
        for (header, query) in [
            (Some("Token secret-value"), vec![]),
            (Some("Bearer secret-value extra"), vec![]),
            (None, vec!["secret-value", "secret-value"]),
        ] {
            let err = select_credential(header, &query, &[]).unwrap_err();
            assert!(
                !err.detail.contains("secret-value") && !err.to_json().contains("secret-value")
            );
        }
    }
}
