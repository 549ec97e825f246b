//! Request and response helpers shared by the handlers: bounded bodies,
//! problem+json, JSON bodies and CORS.

use edgestream_core::problem::Problem;
use js_sys::Uint8Array;
use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{Headers, Method, Request, Response};

/// Largest body of the small JSON requests (tickets, kicks, dev tokens).
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

/// Maps a runtime error to a 500 problem. The runtime's message can name
/// internals (and, for a body, echo client input), so it goes to the log
/// only as its kind, and the client gets a generic detail.
pub fn internal(error: worker::Error) -> Problem {
    let kind = match &error {
        worker::Error::JsError(_) | worker::Error::Internal(_) => "javascript",
        worker::Error::SerdeJsonError(_) | worker::Error::SerdeWasmBindgenError(_) => {
            "serialisation"
        }
        _ => "runtime",
    };
    super::log::error("runtime error", kind);
    Problem::internal("the relay failed to handle the request")
}

/// A request built from web-sys's `RequestInit`. worker's `RequestInit`
/// converts Cloudflare's `cf` properties on every request, code that was a
/// hundredth of the wasm module, and no request the relay makes sets them.
pub fn request(url: &str, init: &web_sys::RequestInit) -> worker::Result<Request> {
    web_sys::Request::new_with_str_and_init(url, init)
        .map(Request::from)
        .map_err(worker::Error::from)
}

/// Reads a request body, refusing it with `too_large` as soon as more than
/// `limit` bytes have arrived, whatever `Content-Length` says (a chunked or
/// HTTP/2 body declares none). A declared length over the limit is refused
/// before anything is read.
pub async fn read_body(
    req: &Request,
    limit: usize,
    too_large: fn(usize) -> Problem,
) -> Result<Vec<u8>, Problem> {
    let declared = req.headers().get("Content-Length").ok().flatten();
    if declared
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large(limit));
    }
    let Some(stream) = req.inner().body() else {
        return Ok(Vec::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::new();
    loop {
        let read = JsFuture::from(reader.read())
            .await
            .map_err(|_| Problem::invalid_body("the body could not be read"))?;
        let read: web_sys::ReadableStreamReadResult = read.unchecked_into();
        if read.get_done().unwrap_or(true) {
            return Ok(body);
        }
        let chunk: Uint8Array = read.get_value().unchecked_into();
        if body.len() + chunk.length() as usize > limit {
            let _ = reader.cancel();
            return Err(too_large(limit));
        }
        let at = body.len();
        body.resize(at + chunk.length() as usize, 0);
        chunk.copy_to(&mut body[at..]);
    }
}

/// Refuses a body that is not `application/json` (`415`): a cross-site page
/// can send a form or `text/plain` body without asking, but not JSON.
pub fn require_json(req: &Request) -> Result<(), Problem> {
    let content_type = req
        .headers()
        .get("Content-Type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type())
    }
}

pub fn problem(problem: &Problem) -> Response {
    let headers = Headers::new();
    let _ = headers.set("Content-Type", Problem::CONTENT_TYPE);
    if let Some(challenge) = &problem.www_authenticate {
        let _ = headers.set("WWW-Authenticate", challenge);
    }
    if let Some(seconds) = retry_after(problem) {
        let _ = headers.set("Retry-After", &seconds.to_string());
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

/// The `Retry-After` of a problem: as the problem says, and for an object
/// that refused work a random 1-5 seconds, so that clients refused together
/// do not all come back in the same second.
fn retry_after(problem: &Problem) -> Option<u64> {
    problem.retry_after.or_else(|| {
        (problem.code == "overloaded").then(|| 1 + (js_sys::Math::random() * 5.0) as u64)
    })
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
    // No `Access-Control-Allow-Credentials`: no cookie or HTTP
    // authentication is ever used, and allowing them would make a future
    // cookie readable cross-site.
    let _ = headers.set("Access-Control-Allow-Origin", origin);
    if *method != Method::Options {
        let _ = headers.set(
            "Access-Control-Expose-Headers",
            "WWW-Authenticate, Retry-After",
        );
    }
    response
}
