//! Development-only routes: the live demo page (`GET /demo` and its assets),
//! a token minter for it (`POST /dev/token`), and `POST /dev/reset`, which
//! resets a channel's objects as a deploy does, to watch streams survive it.
//!
//! They exist only when the var `DEV_MODE` is `1` *and* the request's URL
//! names a loopback host (`127.0.0.1`, `localhost`, `[::1]`). A deployed
//! Worker is reached through a public hostname, so it never serves them even
//! if `DEV_MODE` leaks into its configuration; everywhere else these paths are
//! an ordinary 404 problem.

use edgestream_core::channel::ChannelName;
use edgestream_core::problem::Problem;
use edgestream_core::token::sign_hs256;
use serde::Deserialize;
use std::net::{Ipv4Addr, Ipv6Addr};
use worker::{Env, Headers, Method, Request, Response, Url};

use super::channel_client::ChannelClient;
use super::config::Config;
use super::http::{json, read_body, require_json, SMALL_BODY_BYTES};

const INDEX_HTML: &str = include_str!("../../demo/index.html");
const APP_JS: &str = include_str!("../../demo/app.js");
const STYLE_CSS: &str = include_str!("../../demo/style.css");

/// Lifetime of a development token.
const TOKEN_TTL_SECONDS: u64 = 3600;

/// Whether `path` is one of the development routes.
pub fn is_dev_path(path: &str) -> bool {
    path == "/demo" || path.starts_with("/demo/") || path == "/dev/token" || path == "/dev/reset"
}

/// Whether development routes are served for this request.
pub fn enabled(req: &Request, env: &Env) -> bool {
    let dev_mode = env
        .var("DEV_MODE")
        .map(|v| v.to_string())
        .unwrap_or_default();
    dev_mode.trim() == "1" && req.url().is_ok_and(|url| is_loopback(&url))
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

pub async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    method: &Method,
    path: &str,
) -> Result<Response, Problem> {
    match (method, path) {
        (Method::Get, "/demo" | "/demo/") => asset(INDEX_HTML, "text/html; charset=utf-8"),
        (Method::Get, "/demo/app.js") => asset(APP_JS, "text/javascript; charset=utf-8"),
        (Method::Get, "/demo/style.css") => asset(STYLE_CSS, "text/css; charset=utf-8"),
        (Method::Post, "/dev/token") => token(req, env, config).await,
        (Method::Post, "/dev/reset") => reset(req, env, config).await,
        (_, "/dev/token" | "/dev/reset") => {
            let mut response = super::http::problem(&Problem::method_not_allowed());
            let _ = response.headers_mut().set("Allow", "POST");
            Ok(response)
        }
        _ => Err(Problem::not_found()),
    }
}

fn asset(body: &'static str, content_type: &str) -> Result<Response, Problem> {
    let headers = Headers::new();
    let _ = headers.set("Content-Type", content_type);
    let _ = headers.set("Cache-Control", "no-store");
    let _ = headers.set("X-Content-Type-Options", "nosniff");
    let _ = headers.set(
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.as_bytes().to_vec()))
}

/// The body of a development request, JSON only.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: &Request,
    expected: &str,
) -> Result<T, Problem> {
    require_json(req)?;
    let body = read_body(req, SMALL_BODY_BYTES, Problem::body_too_large).await?;
    serde_json::from_slice(&body).map_err(|_| Problem::invalid_body(format!("expected {expected}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    channel: String,
}

/// `POST /dev/reset {"channel": "<name>"}`: the channel's object and its
/// shards drop their memory and sockets, as a deploy or an eviction does to
/// them, while their storage stays. Streams of the channel re-attach.
async fn reset(req: Request, env: &Env, config: &Config) -> Result<Response, Problem> {
    let request: ResetRequest = json_body(&req, r#"{"channel": "<channel>"}"#).await?;
    let channel = ChannelName::parse(&request.channel)?;
    let jurisdiction = config.settings.residency.of(channel.tenant());
    ChannelClient::channel(env, jurisdiction, channel.as_str())?
        .reset()
        .await;
    Ok(Response::empty()
        .map_err(super::http::internal)?
        .with_status(204))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    tenant: String,
    #[serde(default)]
    publish: bool,
}

/// `POST /dev/token {"tenant": "<uuid>", "publish": bool}`: an HS256 access
/// token for that tenant, valid for an hour, with `events:publish` on request.
/// It names the tenant in the configured `TENANT_CLAIM` and carries the
/// configured issuer and audience, so the relay accepts it as it is set up.
async fn token(req: Request, env: &Env, config: &Config) -> Result<Response, Problem> {
    let request: TokenRequest =
        json_body(&req, r#"{"tenant": "<uuid>", "publish": true|false}"#).await?;
    // The tenant must be one a channel name accepts: canonical lowercase UUID.
    ChannelName::build("dev", &request.tenant, "token")
        .map_err(|_| Problem::invalid_body("tenant must be a lowercase hyphenated UUID"))?;
    let secret = env
        .secret("JWT_SECRET")
        .map(|s| s.to_string())
        .map_err(|_| Problem::unavailable("authentication is not configured"))?;
    let now = worker::Date::now().as_millis() / 1000;
    let expires_at = now + TOKEN_TTL_SECONDS;
    let settings = &config.settings;
    let mut claims = serde_json::json!({
        "sub": "dev-user",
        "iat": now,
        "exp": expires_at,
        "token_type": "access",
    });
    claims[settings.tenant_claim.as_str()] = serde_json::Value::from(request.tenant);
    if let Some(issuer) = &settings.jwt_issuer {
        claims["iss"] = serde_json::Value::from(issuer.as_str());
    }
    if let Some(audience) = &settings.jwt_audience {
        claims["aud"] = serde_json::Value::from(audience.as_str());
    }
    if request.publish {
        claims["scope"] = serde_json::Value::from("events:publish");
    }
    let token = sign_hs256(&claims, secret.as_bytes());
    json(
        200,
        &serde_json::json!({"token": token, "expires_at": expires_at}),
    )
}
