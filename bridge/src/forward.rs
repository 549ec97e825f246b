//! One publish request to the edge, and what its answer means for a retry.
//!
//! The answer is sorted into three cases, because they call for opposite
//! handling:
//! - 202 with one result per event: done.
//! - a network error, a timeout, 408, 429 or any 5xx: the edge may or may not
//!   have stored the batch, so it is sent again, unchanged. Every event has an
//!   idempotency key, which is what makes "send again" safe: the edge answers
//!   `duplicate: true` for what it already has and delivers nothing twice.
//! - any other 4xx: the request itself is wrong (malformed event, bad
//!   credential); sending it again would fail the same way, so it is not
//!   retried. The problem's `code` becomes the reason that is logged, counted
//!   and written to the dead-letter stream.

use crate::credential::Credential;
use edgestream_core::message::PublishResponse;
use edgestream_core::origin::{publish_body, OriginEvent};
use std::time::Duration;

pub struct Forwarder {
    client: reqwest::Client,
    url: String,
    credential: Credential,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// Send the same batch again after a backoff (or after `retry_after`).
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The edge refused the request: never send it again as it is.
    Rejected {
        status: u16,
        code: String,
        detail: String,
    },
}

impl Forwarder {
    pub fn new(url: String, credential: Credential, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("edgestream-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Forwarder {
            client,
            url,
            credential,
        })
    }

    /// Sends one `{"events":[...]}` request.
    pub async fn send(&self, events: &[&OriginEvent]) -> Result<PublishResponse, SendError> {
        let body = publish_body(events.iter().copied());
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", self.credential.bearer()),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retryable {
                reason: describe(&e),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.bytes().await.map_err(|e| SendError::Retryable {
            reason: describe(&e),
            retry_after: None,
        })?;
        classify(status, &text, retry_after, events.len())
    }
}

/// Turns a status and body into the outcome (pure, so it is unit-tested).
pub fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    sent: usize,
) -> Result<PublishResponse, SendError> {
    match status {
        200..=299 => match serde_json::from_slice::<PublishResponse>(body) {
            Ok(response) if response.results.len() == sent => Ok(response),
            // The events may be stored; the idempotency keys make asking
            // again harmless, and the answer tells which.
            _ => Err(SendError::Retryable {
                reason: format!("unexpected {status} answer: {}", preview(body)),
                retry_after: None,
            }),
        },
        408 | 429 | 500..=599 => Err(SendError::Retryable {
            reason: format!("edge answered {status}: {}", preview(body)),
            retry_after,
        }),
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
        _ => Err(SendError::Retryable {
            reason: format!("unexpected status {status}"),
            retry_after: None,
        }),
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

    #[test]
    fn accepted() {
        let response = classify(202, OK.as_bytes(), None, 2).unwrap();
        assert_eq!(response.results.len(), 2);
        assert!(response.results[1].duplicate);
    }

    #[test]
    fn an_unreadable_success_is_retried() {
        assert!(matches!(
            classify(202, OK.as_bytes(), None, 3),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            classify(202, b"<html>", None, 2),
            Err(SendError::Retryable { .. })
        ));
    }

    #[test]
    fn server_errors_and_throttling_are_retried() {
        for status in [500, 502, 503, 504, 429, 408] {
            assert!(
                matches!(
                    classify(status, b"", None, 1),
                    Err(SendError::Retryable { .. })
                ),
                "{status}"
            );
        }
        let retry = classify(429, b"", Some(Duration::from_secs(3)), 1).unwrap_err();
        assert_eq!(
            retry,
            SendError::Retryable {
                reason: "edge answered 429: ".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
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
}
