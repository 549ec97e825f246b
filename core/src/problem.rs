//! Errors as RFC 9457 problem details with stable codes.
//!
//! Every failure a client can see is a [`Problem`]. The `code` is the part of
//! the contract clients branch on, so each one has exactly one constructor
//! here and nowhere else invents codes. `title` is fixed per code; `detail`
//! says what went wrong in this request.
//!
//! `detail` is echoed to the client and usually logged, so callers must never
//! put credential text in it: token errors go through
//! [`TokenError`](crate::token::TokenError), whose messages are static.

use serde::Serialize;
use std::fmt;

/// The realm every `WWW-Authenticate` challenge names.
const REALM: &str = "edgestream";

/// An RFC 9457 problem: the status, the stable code and, for 401/403 caused
/// by credentials, the `WWW-Authenticate` challenge to send with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub www_authenticate: Option<String>,
    /// Seconds the client should wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// The JSON body, in the field order clients see in the contract.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl Problem {
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    pub fn new(
        status: u16,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// The `application/problem+json` body. `type` is a URN rather than a URL
    /// so that it never suggests a page that might not exist.
    pub fn to_json(&self) -> String {
        let body = Body {
            kind: format!("urn:edgestream:problem:{}", self.code),
            title: self.title,
            status: self.status,
            detail: &self.detail,
            code: self.code,
        };
        serde_json::to_string(&body).expect("a struct of strings and an integer always serialises")
    }

    fn challenge(mut self, challenge: String) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    /// No credential at all. RFC 6750 section 3.1: a request without
    /// authentication gets a challenge without an `error` attribute.
    pub fn missing_credentials() -> Self {
        Problem::new(
            401,
            "missing_credentials",
            "Missing credentials",
            "send a Bearer token in the Authorization header or an access_token query parameter",
        )
        .challenge(format!("Bearer realm=\"{REALM}\""))
    }

    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Problem::new(401, "invalid_token", "Invalid token", detail)
            .challenge(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""))
    }

    /// A valid token that lacks `scope`. The scope goes into the challenge
    /// (RFC 6750 section 3), reduced to the characters a scope token may hold
    /// (and spaces between tokens) so that the header stays well-formed.
    pub fn insufficient_scope(scope: &str) -> Self {
        let scope: String = scope
            .chars()
            .filter(|&c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\'))
            .collect();
        Problem::new(
            403,
            "insufficient_scope",
            "Insufficient scope",
            format!("this request needs a token with the \"{scope}\" scope"),
        )
        .challenge(format!(
            "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
        ))
    }

    pub fn invalid_channel(detail: impl Into<String>) -> Self {
        Problem::new(400, "invalid_channel", "Invalid channel", detail)
    }

    pub fn channel_forbidden(detail: impl Into<String>) -> Self {
        Problem::new(403, "channel_forbidden", "Channel forbidden", detail)
    }

    /// A credential (a token's jurisdiction claim, or a ticket) that names
    /// another Durable Object jurisdiction than the one the configuration
    /// places its tenant's data in (`crate::residency`).
    pub fn jurisdiction_mismatch(detail: impl Into<String>) -> Self {
        Problem::new(
            403,
            "jurisdiction_mismatch",
            "Jurisdiction mismatch",
            detail,
        )
    }

    pub fn platform_only() -> Self {
        Problem::new(
            403,
            "platform_only",
            "Platform credential required",
            "this endpoint takes a platform credential: the events:platform scope and no tenant",
        )
    }

    pub fn revoked() -> Self {
        Problem::new(
            403,
            "revoked",
            "Access revoked",
            "streams for this user or token have been revoked for now",
        )
    }

    pub fn tenant_missing() -> Self {
        Problem::new(
            403,
            "tenant_missing",
            "Tenant missing",
            "the credential names no tenant and has no events:platform scope, so it may act on no channel",
        )
    }

    pub fn too_many_channels(max: usize) -> Self {
        Problem::new(
            400,
            "too_many_channels",
            "Too many channels",
            format!("a stream may carry at most {max} channels"),
        )
    }

    pub fn no_channels() -> Self {
        Problem::new(
            400,
            "no_channels",
            "No channels",
            "name at least one channel with channel=<name> or channels=<a>,<b>",
        )
    }

    pub fn invalid_cursor(detail: impl Into<String>) -> Self {
        Problem::new(400, "invalid_cursor", "Invalid cursor", detail)
    }

    pub fn invalid_body(detail: impl Into<String>) -> Self {
        Problem::new(400, "invalid_body", "Invalid body", detail)
    }

    pub fn batch_too_large(max: usize) -> Self {
        Problem::new(
            400,
            "batch_too_large",
            "Batch too large",
            format!("a publish request may carry at most {max} events"),
        )
    }

    pub fn event_too_large(max: usize) -> Self {
        Problem::new(
            413,
            "event_too_large",
            "Event too large",
            format!("an event's data may be at most {max} bytes of compact JSON"),
        )
    }

    /// A request body over `max` bytes, refused as soon as it is seen to be.
    pub fn body_too_large(max: usize) -> Self {
        Problem::new(
            413,
            "body_too_large",
            "Body too large",
            format!("the request body may be at most {max} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Problem::new(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as application/json",
        )
    }

    pub fn not_found() -> Self {
        Problem::new(404, "not_found", "Not found", "no such endpoint")
    }

    /// A channel whose prefix `PRESENCE_PREFIXES` does not name: it tracks
    /// no presence, so there is no list to show.
    pub fn presence_disabled(prefix: &str) -> Self {
        Problem::new(
            404,
            "presence_disabled",
            "Presence not enabled",
            format!("channels with the prefix \"{prefix}\" have no presence (PRESENCE_PREFIXES)"),
        )
    }

    pub fn method_not_allowed() -> Self {
        Problem::new(
            405,
            "method_not_allowed",
            "Method not allowed",
            "this endpoint does not accept that method",
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(500, "internal", "Internal error", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(503, "unavailable", "Service unavailable", detail)
    }

    /// An object that refused or failed to take the work (overloaded,
    /// restarting for a deploy, unreachable). Nothing was lost: the request
    /// did not take effect unless its answer says so, and retrying after
    /// `retry_after` seconds (jittered by the caller, so that a crowd of
    /// clients does not come back at once) is safe.
    pub fn overloaded(detail: impl Into<String>) -> Self {
        Problem::new(503, "overloaded", "Overloaded", detail)
    }

    /// A tenant over one of its quotas (open streams, publishes per second).
    pub fn quota_exceeded(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut problem = Problem::new(429, "quota_exceeded", "Quota exceeded", detail);
        problem.retry_after = Some(retry_after);
        problem
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl fmt::Display for Problem {
    /// `<status> <code>: <detail>`, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn json_body_has_the_contract_fields() {
        let p = Problem::invalid_channel("bad \"name\"");
        let v: Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(
            v,
            json!({
                "type": "urn:edgestream:problem:invalid_channel",
                "title": "Invalid channel",
                "status": 400,
                "detail": "bad \"name\"",
                "code": "invalid_channel",
            })
        );
        assert!(p.to_json().starts_with("{\"type\":"));
    }

    #[test]
    fn missing_credentials_challenge_has_no_error_attribute() {
        let p = Problem::missing_credentials();
        assert_eq!(p.status, 401);
        assert_eq!(
            p.www_authenticate.as_deref(),
            Some("Bearer realm=\"edgestream\"")
        );
    }

    #[test]
    fn invalid_token_challenge_names_the_error() {
        let p = Problem::invalid_token("token has expired");
        assert_eq!(p.status, 401);
        assert_eq!(
            p.www_authenticate.as_deref(),
            Some("Bearer realm=\"edgestream\", error=\"invalid_token\"")
        );
    }

    #[test]
    fn insufficient_scope_challenge_names_the_scope() {
        let p = Problem::insufficient_scope("events:publish");
        assert_eq!(p.status, 403);
        assert_eq!(
            p.www_authenticate.as_deref(),
            Some("Bearer realm=\"edgestream\", error=\"insufficient_scope\", scope=\"events:publish\"")
        );
    }

    #[test]
    fn scope_cannot_break_out_of_the_challenge() {
        let p = Problem::insufficient_scope("a\", error=\"none\r\nSet-Cookie: x");
        let header = p.www_authenticate.unwrap();
        assert!(!header.contains('\r') && !header.contains('\n'));
        assert_eq!(header.matches('"').count(), 6, "{header}");
    }

    #[test]
    fn non_credential_problems_carry_no_challenge() {
        for p in [
            Problem::invalid_channel("x"),
            Problem::channel_forbidden("x"),
            Problem::tenant_missing(),
            Problem::too_many_channels(5),
            Problem::no_channels(),
            Problem::invalid_cursor("x"),
            Problem::invalid_body("x"),
            Problem::batch_too_large(100),
            Problem::event_too_large(65536),
            Problem::unsupported_media_type(),
            Problem::body_too_large(16384),
            Problem::not_found(),
            Problem::presence_disabled("chat"),
            Problem::method_not_allowed(),
            Problem::internal("x"),
            Problem::unavailable("x"),
            Problem::overloaded("x"),
            Problem::quota_exceeded("x", 1),
        ] {
            assert!(p.www_authenticate.is_none(), "{}", p.code);
        }
    }

    #[test]
    fn stable_codes_and_statuses() {
        let cases = [
            (Problem::missing_credentials(), 401, "missing_credentials"),
            (Problem::invalid_token("x"), 401, "invalid_token"),
            (Problem::insufficient_scope("s"), 403, "insufficient_scope"),
            (Problem::invalid_channel("x"), 400, "invalid_channel"),
            (Problem::channel_forbidden("x"), 403, "channel_forbidden"),
            (Problem::tenant_missing(), 403, "tenant_missing"),
            (Problem::platform_only(), 403, "platform_only"),
            (
                Problem::jurisdiction_mismatch("x"),
                403,
                "jurisdiction_mismatch",
            ),
            (Problem::revoked(), 403, "revoked"),
            (Problem::too_many_channels(5), 400, "too_many_channels"),
            (Problem::no_channels(), 400, "no_channels"),
            (Problem::invalid_cursor("x"), 400, "invalid_cursor"),
            (Problem::invalid_body("x"), 400, "invalid_body"),
            (Problem::batch_too_large(100), 400, "batch_too_large"),
            (Problem::event_too_large(1), 413, "event_too_large"),
            (
                Problem::unsupported_media_type(),
                415,
                "unsupported_media_type",
            ),
            (Problem::not_found(), 404, "not_found"),
            (Problem::presence_disabled("chat"), 404, "presence_disabled"),
            (Problem::method_not_allowed(), 405, "method_not_allowed"),
            (Problem::internal("x"), 500, "internal"),
            (Problem::unavailable("x"), 503, "unavailable"),
            (Problem::overloaded("x"), 503, "overloaded"),
            (Problem::quota_exceeded("x", 2), 429, "quota_exceeded"),
            (Problem::body_too_large(1), 413, "body_too_large"),
        ];
        for (p, status, code) in cases {
            assert_eq!((p.status, p.code), (status, code));
        }
    }

    #[test]
    fn waits_travel_with_the_problems_that_ask_for_them() {
        assert_eq!(Problem::quota_exceeded("x", 7).retry_after, Some(7));
        assert_eq!(Problem::overloaded("x").retry_after, None);
        assert_eq!(Problem::overloaded("x").retry_after(3).retry_after, Some(3));
        assert!(!Problem::overloaded("x")
            .retry_after(3)
            .to_json()
            .contains("retry"));
    }

    #[test]
    fn limits_appear_in_the_detail() {
        assert!(Problem::too_many_channels(5).detail.contains('5'));
        assert!(Problem::batch_too_large(100).detail.contains("100"));
        assert!(Problem::event_too_large(65536).detail.contains("65536"));
    }
}
