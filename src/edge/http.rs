//! Response helpers shared by the handlers: problem+json, JSON bodies and CORS.

use edgestream_core::problem::Problem;
use serde::Serialize;
use worker::{Headers, Method, Response};

/// Maps a runtime error to a 500 problem. The runtime's message can name
/// internals, so it goes to the log and the client gets a generic detail.
pub fn internal(error: worker::Error) -> Problem {
    worker::console_error!(
        "{}",
        serde_json::json!({"level": "error", "msg": "runtime error", "error": error.to_string()})
    );
    Problem::internal("the relay failed to handle the request")
}

pub fn problem(problem: &Problem) -> Response {
    let headers = Headers::new();
    let _ = headers.set("Content-Type", Problem::CONTENT_TYPE);
    if let Some(challenge) = &problem.www_authenticate {
        let _ = headers.set("WWW-Authenticate", challenge);
    }
    Response::builder()
        .with_status(problem.status)
        .with_headers(headers)
        .fixed(problem.to_json().into_bytes())
}

pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response, Problem> {
    Response::builder()
        .with_status(status)
        .from_json(body)
        .map_err(internal)
}

/// Answers a CORS preflight. The origin check happens in [`with_cors`], which
/// adds `Access-Control-Allow-Origin` only for allowed origins, so a preflight
/// from anywhere else gets no permission.
pub fn preflight() -> Response {
    let headers = Headers::new();
    let _ = headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    let _ = headers.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, Last-Event-ID",
    );
    let _ = headers.set("Access-Control-Max-Age", "600");
    Response::builder()
        .with_status(204)
        .with_headers(headers)
        .empty()
}

/// Adds CORS headers for an origin listed in `ALLOWED_ORIGINS` (exact match).
pub fn with_cors(
    mut response: Response,
    origin: Option<&str>,
    allowed: &[String],
    method: &Method,
) -> Response {
    let headers = response.headers_mut();
    let _ = headers.append("Vary", "Origin");
    let Some(origin) = origin.filter(|o| allowed.iter().any(|a| a == o)) else {
        return response;
    };
    let _ = headers.set("Access-Control-Allow-Origin", origin);
    let _ = headers.set("Access-Control-Allow-Credentials", "true");
    if *method != Method::Options {
        let _ = headers.set("Access-Control-Expose-Headers", "WWW-Authenticate");
    }
    response
}
