//! Which credential a request presents.
//!
//! The contract's precedence is strict: when an `Authorization` header is
//! present it alone decides, even when it is broken. Falling back to the
//! query string after a bad header would let whoever controls a link (query
//! strings end up in links, logs and `Referer`s) choose the identity a request
//! runs under. API keys are accepted from the header only for the same reason.

use crate::percent;
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
}

/// Query parameters whose values are credentials and must not reach a log.
const SECRET_PARAMS: [&str; 2] = ["access_token", "ticket"];

/// Picks the request's credential.
///
/// `authorization` is the `Authorization` header if present (even if empty);
/// `query_tokens` is every value of the `access_token` query parameter.
/// Schemes are matched case-insensitively (RFC 9110 section 11.1). No error
/// detail ever contains the credential itself.
pub fn select_credential<'a>(
    authorization: Option<&'a str>,
    query_tokens: &[&'a str],
) -> Result<Credential<'a>, Problem> {
    if let Some(header) = authorization {
        return from_header(header);
    }
    match query_tokens {
        [] => Err(Problem::missing_credentials()),
        [""] => Err(Problem::invalid_token("access_token is empty")),
        [token] => Ok(Credential::QueryToken(token)),
        _ => Err(Problem::invalid_token("access_token given more than once")),
    }
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

/// Replaces the values of credential query parameters (`access_token`,
/// `ticket`) with `[redacted]`, so that a URL can be logged. Takes a whole
/// URL or just its query. Names are compared after percent-decoding and
/// case-insensitively: a parser that accepts `access%5Ftoken` as the token must
/// not find a logger that leaves it in place.
pub fn redact_query(url_or_query: &str) -> String {
    let (head, rest) = match url_or_query.find('?') {
        Some(at) => url_or_query.split_at(at + 1),
        None => ("", url_or_query),
    };
    let (query, fragment) = match rest.find('#') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => format!("{name}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}{fragment}", pairs.join("&"))
}

fn is_secret_param(raw_name: &str) -> bool {
    let name = percent::decode_form(raw_name);
    SECRET_PARAMS
        .iter()
        .any(|secret| name.eq_ignore_ascii_case(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";

    #[test]
    fn bearer_header() {
        assert_eq!(
            select_credential(Some("Bearer abc"), &[]),
            Ok(Credential::Bearer("abc"))
        );
        assert_eq!(
            select_credential(Some("bearer abc"), &[]),
            Ok(Credential::Bearer("abc"))
        );
        assert_eq!(
            select_credential(Some("BEARER  abc"), &[]),
            Ok(Credential::Bearer("abc"))
        );
    }

    #[test]
    fn api_key_header() {
        assert_eq!(
            select_credential(Some("Api-Key k1"), &[]),
            Ok(Credential::ApiKey("k1"))
        );
        assert_eq!(
            select_credential(Some("api-key k1"), &[]),
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
            let err = select_credential(Some(header), &[JWT]).unwrap_err();
            assert_eq!((err.status, err.code), (401, "invalid_token"), "{header:?}");
        }
    }

    #[test]
    fn valid_header_wins_over_query() {
        assert_eq!(
            select_credential(Some("Bearer h"), &["q"]),
            Ok(Credential::Bearer("h"))
        );
        assert_eq!(
            select_credential(Some("Api-Key k"), &["q", "r"]),
            Ok(Credential::ApiKey("k"))
        );
    }

    #[test]
    fn query_token_only_without_header() {
        assert_eq!(
            select_credential(None, &[JWT]),
            Ok(Credential::QueryToken(JWT))
        );
    }

    #[test]
    fn query_token_given_twice_is_refused() {
        let err = select_credential(None, &[JWT, JWT]).unwrap_err();
        assert_eq!(err.code, "invalid_token");
        assert_eq!(err.detail, "access_token given more than once");
        assert_eq!(
            select_credential(None, &["", JWT]).unwrap_err().code,
            "invalid_token"
        );
    }

    #[test]
    fn empty_query_token_is_invalid_not_missing() {
        assert_eq!(
            select_credential(None, &[""]).unwrap_err().code,
            "invalid_token"
        );
    }

    #[test]
    fn nothing_presented_is_missing_credentials() {
        let err = select_credential(None, &[]).unwrap_err();
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
            let err = select_credential(header, &query).unwrap_err();
            assert!(
                !err.detail.contains("secret-value") && !err.to_json().contains("secret-value")
            );
        }
    }

    #[test]
    fn redacts_tokens_in_urls_and_queries() {
        assert_eq!(
            redact_query(
                "https://edge.example/v1/stream?channel=a&access_token=eyJ.x.y&lastEventId=1"
            ),
            "https://edge.example/v1/stream?channel=a&access_token=[redacted]&lastEventId=1"
        );
        assert_eq!(redact_query("access_token=abc"), "access_token=[redacted]");
        assert_eq!(redact_query("?ticket=abc&x=1"), "?ticket=[redacted]&x=1");
        assert_eq!(
            redact_query("/s?access_token=a&access_token=b#frag"),
            "/s?access_token=[redacted]&access_token=[redacted]#frag"
        );
    }

    #[test]
    fn redaction_sees_through_encoded_and_cased_names() {
        assert_eq!(
            redact_query("access%5Ftoken=abc"),
            "access%5Ftoken=[redacted]"
        );
        assert_eq!(
            redact_query("%61ccess_token=abc"),
            "%61ccess_token=[redacted]"
        );
        assert_eq!(redact_query("ACCESS_TOKEN=abc"), "ACCESS_TOKEN=[redacted]");
        assert_eq!(redact_query("x=1&Ticket=abc"), "x=1&Ticket=[redacted]");
    }

    #[test]
    fn redaction_leaves_everything_else_alone() {
        for s in [
            "",
            "https://edge.example/v1/stream",
            "/s?channel=a:b:c&x",
            "/s?access_tokens=1&my_ticket=2",
            "/s#access_token=1",
            "/s?access_token",
            "/access_token=1",
        ] {
            assert_eq!(redact_query(s), s);
        }
    }
}
