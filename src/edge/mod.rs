//! The Worker's entry point: routes a request to its handler, turns every
//! failure into problem+json, applies CORS and writes one structured log line.
//!
//! Handlers return `Result<Response, Problem>` so that an error can never leave
//! the Worker as anything but an RFC 9457 document with a stable code.

mod auth;
mod channel_object;
mod config;
mod http;
mod publish;
mod stream;

use edgestream_core::problem::Problem;
use worker::{event, Context, Env, Method, Request, Response};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = worker::Date::now().as_millis();
    let method = req.method();
    let path = req.path();
    let origin = req.headers().get("Origin").ok().flatten();

    let outcome = match config::Config::load(&env) {
        Ok(config) => route(req, &env, &config, &method, &path).await.map(|r| (r, config)),
        Err(problem) => Err(problem),
    };
    let (response, allowed_origins) = match outcome {
        Ok((response, config)) => (response, config.settings.allowed_origins),
        Err(problem) => (http::problem(&problem), Vec::new()),
    };
    let response = http::with_cors(response, origin.as_deref(), &allowed_origins, &method);

    // The path, never the query: `access_token` must not reach a log.
    worker::console_log!(
        "{}",
        serde_json::json!({
            "level": "info",
            "msg": "request",
            "method": method.to_string(),
            "path": path,
            "status": response.status_code(),
            "ms": worker::Date::now().as_millis().saturating_sub(started),
        })
    );
    Ok(response)
}

async fn route(
    req: Request,
    env: &Env,
    config: &config::Config,
    method: &Method,
    path: &str,
) -> Result<Response, Problem> {
    match (method, path) {
        (Method::Get, "/healthz") => http::json(200, &serde_json::json!({"status": "ok"})),
        (Method::Get, "/v1/stream") => stream::open(req, env, config).await,
        (Method::Post, "/v1/publish") => publish::handle(req, env, config).await,
        (Method::Options, "/v1/stream" | "/v1/publish") => Ok(http::preflight()),
        (_, "/healthz" | "/v1/stream" | "/v1/publish") => Err(Problem::method_not_allowed()),
        _ => Err(Problem::not_found()),
    }
}
