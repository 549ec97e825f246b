//! The Worker's entry point: routes a request to its handler, turns every
//! failure into problem+json, applies CORS and writes one structured log line.
//!
//! Handlers return `Result<Response, Problem>` so that an error can never leave
//! the Worker as anything but an RFC 9457 document with a stable code.

mod admin;
mod attach;
mod auth;
mod body;
mod channel_client;
mod channel_hubs;
mod channel_object;
mod channel_store;
mod channels;
mod config;
mod dev;
mod fanout;
mod frame_tap;
mod http;
mod hub;
mod log;
mod objects;
mod publish;
mod pump;
mod quota;
mod relay_socket;
mod shard_object;
mod signatures;
mod sql;
mod stream;
mod tenant_client;
mod tenant_object;
mod tickets;
mod usage;

use edgestream_core::config::RequestLog;
use edgestream_core::problem::Problem;
use worker::{event, Context, Env, Method, Request, Response};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = worker::Date::now().as_millis();
    let method = req.method();
    let path = req.path();
    let origin = req.headers().get("Origin").ok().flatten();

    // The same JavaScript request (not a copy of its body), to drain it after a refusal.
    let raw = Clone::clone(req.inner());
    let config = config::Config::load(&env);
    let usage = usage::Usage::new(&env);
    let answer = match &config {
        Ok(config) => route(req, &env, config, &usage, &method, &path).await,
        Err(problem) => Err(problem.clone()),
    };
    let mut response = answer.unwrap_or_else(|problem| {
        usage.refusal(&problem, usage_route(&path));
        http::problem(&problem)
    });
    if response.status_code() >= 400 {
        drain_body(&raw).await;
    }
    let allowed_origins = config
        .as_ref()
        .map_or(&[][..], |c| &c.settings.allowed_origins[..]);
    if response.status_code() == 405 {
        if let Some(allow) = allowed_methods(&path) {
            let _ = response.headers_mut().set("Allow", allow);
        }
    }
    // Errors get CORS headers too, so a page can read why it was refused.
    let response = http::with_cors(response, origin.as_deref(), allowed_origins, &method);

    // The route, never the query (`access_token` must not reach a log) nor
    // a channel in the path (it names a tenant). Without settings the answer
    // is a configuration failure, which is logged.
    let request_log = config
        .as_ref()
        .map_or(RequestLog::Failures, |c| c.settings.request_log);
    if request_log.logs(response.status_code()) {
        log::info(
            "request",
            serde_json::json!({
                "method": method.to_string(),
                "path": route_name(&path),
                "status": response.status_code(),
                "ms": worker::Date::now().as_millis().saturating_sub(started),
            }),
        );
    }
    Ok(response)
}

/// Reads what a refused request left of its body, when that is small. A
/// response that leaves the body unread makes the connection unusable for the
/// next request, and in front of `wrangler dev` (miniflare's entry worker) the
/// client's kept-alive connection is then reset under its next request: a
/// publisher whose token was refused saw its following, valid publish fail.
async fn drain_body(raw: &web_sys::Request) {
    const MAX_DRAINED_BYTES: usize = 1 << 20;
    let declared = raw.headers().get("Content-Length").ok().flatten();
    let small = declared
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n <= MAX_DRAINED_BYTES);
    if small && !raw.body_used() {
        if let Ok(read) = raw.array_buffer() {
            let _ = wasm_bindgen_futures::JsFuture::from(read).await;
        }
    }
}

async fn route(
    req: Request,
    env: &Env,
    config: &config::Config,
    usage: &usage::Usage,
    method: &Method,
    path: &str,
) -> Result<Response, Problem> {
    if dev::is_dev_path(path) && dev::enabled(&req, env) {
        return dev::handle(req, env, config, method, path).await;
    }
    match (method, path) {
        (Method::Get, "/healthz") => http::json(200, &serde_json::json!({"status": "ok"})),
        (Method::Get, "/v1/stream") => stream::open(req, env, config, usage).await,
        (Method::Post, "/v1/publish") => publish::handle(req, env, config, usage).await,
        (Method::Post, "/v1/tickets") => tickets::issue(req, env, config, usage).await,
        (Method::Post, "/v1/admin/kick") => admin::kick(req, env, config).await,
        (Method::Get, _) if path.starts_with(channels::PREFIX) => {
            channels::handle(req, env, config, usage, path).await
        }
        (Method::Options, "/v1/stream" | "/v1/publish" | "/v1/tickets") => Ok(http::preflight()),
        (Method::Options, _) if path.starts_with(channels::PREFIX) => Ok(http::preflight()),
        _ if allowed_methods(path).is_some() => Err(Problem::method_not_allowed()),
        _ => Err(Problem::not_found()),
    }
}

/// The methods each route answers, for `Allow` on a 405 (OPTIONS is the
/// CORS preflight).
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/healthz" => Some("GET"),
        "/v1/stream" => Some("GET, OPTIONS"),
        "/v1/publish" | "/v1/tickets" => Some("POST, OPTIONS"),
        "/v1/admin/kick" => Some("POST"),
        _ if path.starts_with(channels::PREFIX) => Some("GET, OPTIONS"),
        _ => None,
    }
}

/// The route as usage points name it: unknown paths are all one, so no
/// client-chosen text reaches a point.
fn usage_route(path: &str) -> &str {
    if allowed_methods(path).is_some() {
        route_name(path)
    } else {
        "other"
    }
}

/// The path as the request log names it.
fn route_name(path: &str) -> &str {
    if path.starts_with(channels::PREFIX) && path.ends_with("/presence") {
        "/v1/channels/{channel}/presence"
    } else if path.starts_with(channels::PREFIX) {
        "/v1/channels/{channel}"
    } else {
        path
    }
}
