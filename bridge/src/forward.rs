//! One publish request to the edge, and what its answer means for a retry.
//!
//! Every answer falls in one of these cases, because they call for opposite
//! handling:
//! - 202 with one result per event: done.
//! - Any other 4xx: the request itself is wrong (malformed event, bad
//!   credential). Sending it again would fail the same way, so it is not
//!   retried. The problem's `code` becomes the reason that is logged, counted
//!   and written to the dead-letter stream.
//! - Everything else is sent again, unchanged. Every event has an idempotency
//!   key, which is what makes "send again" safe: the edge answers
//!   `duplicate: true` for what it already has and delivers nothing twice.
//!   How long a lane keeps trying depends on what went wrong ([`Failure`]):
//!   an edge that is away or asks for time is waited for without limit, while
//!   an edge that is up and keeps failing on one request spends that
//!   request's retry budget (see `batcher`), so one poisoned event cannot
//!   hold up the events behind it.

use crate::credential::Credential;
use edgestream_core::message::PublishResponse;
use edgestream_core::origin::{publish_body, OriginEvent};
use std::time::Duration;

/// The longest `Retry-After` taken at its word; a larger value (a proxy's
/// mistake, or a date) is capped here so a lane cannot sleep for days.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(600);

pub struct Forwarder {
    client: reqwest::Client,
    url: String,
    health_url: String,
    credential: Credential,
}

/// Why an attempt that will be retried failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// The request never reached the edge (connection refused, DNS, TLS
    /// handshake): the edge is away, which says nothing about the events.
    Unreached,
    /// 429 or 503: the edge is shedding load or cannot serve for now, and may
    /// say for how long.
    Throttled { retry_after: Option<Duration> },
    /// The edge answered with an error (500 and the other 5xx not listed
    /// here, or a 2xx it did not fill in): it ran and failed on this request.
    Failed,
    /// No answer came (timeout, 408, 502, 504, connection lost mid-request):
    /// either the edge is in trouble or this request makes it hang.
    Unanswered,
}

impl Failure {
    /// Whether this attempt counts against the request's retry budget.
    /// `edge_up` answers whether the edge serves other requests right now; it
    /// is asked only when the failure alone cannot tell a request that hangs
    /// the edge from an edge that is down.
    pub async fn counts<F: std::future::Future<Output = bool>>(
        self,
        edge_up: impl FnOnce() -> F,
    ) -> bool {
        match self {
            Failure::Unreached | Failure::Throttled { .. } => false,
            Failure::Failed => true,
            Failure::Unanswered => edge_up().await,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// Send the same batch again, after a backoff (at least `Retry-After`).
    Retryable { failure: Failure, reason: String },
    /// The edge refused the request: never send it again as it is.
    Rejected {
        status: u16,
        code: String,
        detail: String,
    },
}

impl Forwarder {
    pub fn new(edge_url: &str, credential: Credential, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // A redirect would carry the credential somewhere EDGE_URL does
            // not name; the edge never redirects a publish.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("edgestream-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let base = edge_url.trim_end_matches('/');
        Ok(Forwarder {
            client,
            url: format!("{base}/v1/publish"),
            health_url: format!("{base}/healthz"),
            credential,
        })
    }

    /// Sends one `{"events":[...]}` request as `tenant` (`None`: the bridge's
    /// platform identity).
    pub async fn send(
        &self,
        events: &[&OriginEvent],
        tenant: Option<&str>,
    ) -> Result<PublishResponse, SendError> {
        let body = publish_body(events.iter().copied());
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::AUTHORIZATION,
                self.credential.authorization(tenant),
            )
            .body(body)
            .send()
            .await
            .map_err(network_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.bytes().await.map_err(network_error)?;
        classify(status, &text, retry_after, events.len())
    }

    /// Whether the edge answers its health check now, quickly. Asked after a
    /// request went unanswered, to tell "this request hangs the edge" from
    /// "the edge is down".
    pub async fn edge_up(&self) -> bool {
        let probe = self
            .client
            .get(&self.health_url)
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        matches!(probe, Ok(r) if r.status().is_success())
    }
}

fn network_error(err: reqwest::Error) -> SendError {
    let failure = if err.is_connect() {
        Failure::Unreached
    } else {
        Failure::Unanswered
    };
    SendError::Retryable {
        failure,
        reason: describe(&err),
    }
}

/// `Retry-After` in seconds, as the edge sends it. An HTTP date is not read:
/// the lane's own backoff applies instead.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds = value.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds).min(RETRY_AFTER_MAX))
}

/// Turns a status and body into the outcome (pure, so it is unit-tested).
pub fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    sent: usize,
) -> Result<PublishResponse, SendError> {
    let retry = |failure| SendError::Retryable {
        failure,
        reason: format!("edge answered {status}: {}", preview(body)),
    };
    match status {
        200..=299 => match serde_json::from_slice::<PublishResponse>(body) {
            Ok(response) if response.results.len() == sent => Ok(response),
            // The events may be stored; the idempotency keys make asking
            // again harmless, and the answer tells which.
            _ => Err(retry(Failure::Failed)),
        },
        429 | 503 => Err(retry(Failure::Throttled { retry_after })),
        408 | 502 | 504 => Err(retry(Failure::Unanswered)),
        400..=499 => {
            #[derive(serde::Deserialize)]
            struct Problem {
                code: Option<String>,
                detail: Option<String>,
            }
            let problem = serde_json::from_slice::<Problem>(body).ok();
            let code = problem
                .as_ref()
                .and_then(|p| p.code.clone())
                .filter(|c| {
                    !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic())
                })
                .unwrap_or_else(|| format!("http_{status}"));
            let detail = problem
                .and_then(|p| p.detail)
                .unwrap_or_else(|| preview(body));
            Err(SendError::Rejected {
                status,
                code,
                detail,
            })
        }
        _ => Err(retry(Failure::Failed)),
    }
}

/// Statuses where one bad event fails the whole batch: the edge validates
/// the body before it stores anything, so such a batch is sent again one
/// event at a time and only the bad events are rejected.
pub fn is_per_event(status: u16) -> bool {
    matches!(status, 400 | 413)
}

fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"results":[{"channel":"a:b:c","id":1,"duplicate":false},{"channel":"a:b:c","id":2,"duplicate":true}]}"#;

    fn failure(result: Result<PublishResponse, SendError>) -> Failure {
        match result {
            Err(SendError::Retryable { failure, .. }) => failure,
            other => panic!("not retryable: {other:?}"),
        }
    }

    #[test]
    fn accepted() {
        let response = classify(202, OK.as_bytes(), None, 2).unwrap();
        assert_eq!(response.results.len(), 2);
        assert!(response.results[1].duplicate);
    }

    #[test]
    fn an_unreadable_success_is_a_failure_of_the_edge() {
        assert_eq!(
            failure(classify(202, OK.as_bytes(), None, 3)),
            Failure::Failed
        );
        assert_eq!(failure(classify(202, b"<html>", None, 2)), Failure::Failed);
    }

    #[test]
    fn throttling_carries_retry_after() {
        let three = Some(Duration::from_secs(3));
        for status in [429, 503] {
            assert_eq!(
                failure(classify(status, b"", three, 1)),
                Failure::Throttled { retry_after: three },
                "{status}"
            );
        }
        assert_eq!(
            classify(503, b"{\"code\":\"overloaded\"}", None, 1).unwrap_err(),
            SendError::Retryable {
                failure: Failure::Throttled { retry_after: None },
                reason: "edge answered 503: {\"code\":\"overloaded\"}".into()
            }
        );
    }

    #[test]
    fn server_errors_and_missing_answers() {
        for status in [500, 501, 505, 520, 599] {
            assert_eq!(
                failure(classify(status, b"", None, 1)),
                Failure::Failed,
                "{status}"
            );
        }
        for status in [408, 502, 504] {
            assert_eq!(
                failure(classify(status, b"", None, 1)),
                Failure::Unanswered,
                "{status}"
            );
        }
        assert_eq!(failure(classify(302, b"", None, 1)), Failure::Failed);
    }

    #[test]
    fn client_errors_are_rejected_with_the_problem_code() {
        let body = br#"{"type":"about:blank","title":"Bad Request","status":400,"code":"invalid_channel","detail":"events[3]: channel: bad"}"#;
        assert_eq!(
            classify(400, body, None, 5).unwrap_err(),
            SendError::Rejected {
                status: 400,
                code: "invalid_channel".into(),
                detail: "events[3]: channel: bad".into()
            }
        );
        assert_eq!(
            classify(401, b"nope", None, 1).unwrap_err(),
            SendError::Rejected {
                status: 401,
                code: "http_401".into(),
                detail: "nope".into()
            }
        );
        assert!(is_per_event(400) && is_per_event(413) && !is_per_event(401) && !is_per_event(403));
    }

    #[test]
    fn retry_after_is_seconds_and_capped() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400"), Some(RETRY_AFTER_MAX));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[tokio::test]
    async fn only_an_edge_that_is_up_makes_a_failure_count() {
        let up = || async { true };
        let down = || async { false };
        assert!(Failure::Failed.counts(down).await);
        assert!(Failure::Unanswered.counts(up).await);
        assert!(!Failure::Unanswered.counts(down).await);
        assert!(!Failure::Unreached.counts(up).await);
        let throttled = Failure::Throttled {
            retry_after: Some(Duration::from_secs(1)),
        };
        assert!(!throttled.counts(up).await);
    }
}
