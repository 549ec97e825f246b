//! edgestream: the built bundle in workerd, started by `bench/serve-worker.mjs`
//! through miniflare's API (never `wrangler dev`, whose development proxy in
//! front of workerd would be measured instead). Optionally with Valkey and
//! edgestream-bridge in front, for the bridge path.
//!
//! The launcher also answers, on a second loopback socket, what a channel's
//! object reports about itself, `rows_written` included: the public
//! `GET /v1/channels/{channel}` leaves that out, and the launcher reaches the
//! object through miniflare's binding, so the Worker exposes nothing for it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgestream_core::protocol::channel::ChannelStats;
use hyper::Method;
use serde_json::json;

use super::{query_escape, Ctx, Endpoint, Out, PeerKind, PublishReq, Target, Via};
use crate::http;
use crate::payload::now_us;
use crate::process::{free_port, wait_healthy, Proc};
use crate::valkey;

/// Path of the bridge binary, relative to the repository root, unless
/// `EDGESTREAM_BRIDGE_BIN` names another build (the test suite runs the
/// static one it has just built, as the integration tests do).
const BRIDGE_BINARY: &str = "target/release/edgestream-bridge";

pub fn bridge_binary(root: &Path) -> PathBuf {
    match std::env::var_os("EDGESTREAM_BRIDGE_BIN") {
        Some(path) => root.join(path),
        None => root.join(BRIDGE_BINARY),
    }
}

pub struct Options {
    /// Which shape of edgestream this is (reported as such).
    pub kind: PeerKind,
    /// Publish through Valkey and edgestream-bridge instead of HTTP.
    pub bridge: bool,
    /// Wrap the Durable Object class to log each construction (hibernation probe).
    pub probe: bool,
    /// Extra worker vars.
    pub vars: Vec<(String, String)>,
    /// Rate-limiting bindings: (name, limit, period in seconds).
    pub ratelimits: Vec<(String, u64, u64)>,
    pub log_name: String,
}

pub async fn start(ctx: &Ctx, options: &Options) -> Result<Target, String> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let stats_port = free_port()?;
    let stats: SocketAddr = ([127, 0, 0, 1], stats_port).into();
    let mut command = Command::new("node");
    command
        .current_dir(&ctx.root)
        .arg("bench/serve-worker.mjs")
        .arg("--port")
        .arg(port.to_string())
        .arg("--stats-port")
        .arg(stats_port.to_string())
        .env("BENCH_JWT_SECRET", &ctx.secret);
    if options.probe {
        command.arg("--probe-hibernation");
    }
    if let Some(dir) = &ctx.profile_dir {
        command
            .arg("--profile-dir")
            .arg(dir)
            .env("BENCH_PROFILE_NAME", &options.log_name);
    }
    for (k, v) in &options.vars {
        command.arg("--var").arg(format!("{k}={v}"));
    }
    for (name, limit, period) in &options.ratelimits {
        command
            .arg("--ratelimit")
            .arg(format!("{name}={limit}/{period}"));
    }
    let log = ctx.work.join(format!("{}.log", options.log_name));
    let spawned = Instant::now();
    let mut launcher = Proc::spawn("launcher", command, &log)?;
    wait_healthy(&mut launcher, addr, "/healthz", Duration::from_secs(120)).await?;
    let started_in_ms = spawned.elapsed().as_secs_f64() * 1000.0;
    wait_healthy(&mut launcher, stats, "/healthz", Duration::from_secs(30)).await?;

    let profiler_pid = ctx.profile_dir.as_ref().map(|_| launcher.pid());
    let mut processes = vec![launcher];
    let via = if options.bridge {
        let (valkey, valkey_addr) =
            valkey::start_server(ctx, &format!("{}-valkey", options.log_name)).await?;
        processes.push(valkey);
        let binary = bridge_binary(&ctx.root);
        let mut command = Command::new(binary);
        command
            .current_dir(&ctx.root)
            .env("VALKEY_URL", format!("redis://{valkey_addr}"))
            .env("EDGE_URL", format!("http://{addr}"))
            .env("JWT_SECRET", &ctx.secret)
            .env("BRIDGE_LOG_LEVEL", "warn");
        let bridge = Proc::spawn(
            "bridge",
            command,
            &ctx.work.join(format!("{}-bridge.log", options.log_name)),
        )?;
        processes.push(bridge);
        Via::Valkey(valkey_addr)
    } else {
        Via::Http
    };
    Ok(Target {
        ep: std::sync::Arc::new(Endpoint {
            kind: options.kind,
            via,
            addr,
            sub_token: Some(token(ctx, &ctx.tenant, false)),
            pub_token: Some(token(ctx, &ctx.tenant, true)),
            stats: Some(stats),
        }),
        processes,
        started_in_ms,
        profiler_pid,
    })
}

/// A subscriber or publisher JWT for `tenant`, valid for two hours.
pub fn token(ctx: &Ctx, tenant: &str, publisher: bool) -> String {
    let exp = now_us() / 1_000_000 + 7200;
    let mut claims = json!({
        "sub": if publisher { "bench-publisher" } else { "bench-subscriber" },
        "tenant_id": tenant,
        "exp": exp,
        "token_type": "access",
    });
    if publisher {
        claims["scope"] = json!("events:publish");
    }
    edgestream_core::token::sign_hs256(&claims, ctx.secret.as_bytes())
}

/// `POST /v1/publish` with `{"events":[...]}`: `data` is embedded as the
/// JSON value it is, which is what the relay stores and sends.
pub fn publish_request(target: &Endpoint, events: &[Out<'_>]) -> PublishReq {
    let mut body =
        String::with_capacity(events.iter().map(|e| e.data.len() + 96).sum::<usize>() + 16);
    body.push_str(r#"{"events":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"channel":"#);
        body.push_str(&super::json_string(e.channel));
        body.push_str(r#","event":""#);
        body.push_str(e.event);
        body.push_str(r#"","data":"#);
        body.push_str(&e.data);
        body.push('}');
    }
    body.push_str("]}");
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(token) = &target.pub_token {
        headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
    }
    PublishReq::Http {
        path: "/v1/publish".to_owned(),
        headers,
        body: Bytes::from(body),
    }
}

/// SQLite rows the objects of `channels` have written since they started,
/// summed, from the launcher's stats socket (`stats`).
pub async fn rows_written(stats: SocketAddr, channels: &[String]) -> Result<u64, String> {
    let mut sender = http::connect(stats, Duration::from_secs(10))
        .await
        .map_err(|e| format!("channel stats: {}", http::describe(e.as_ref())))?;
    let mut rows = 0;
    for channel in channels {
        let path = format!("/channel-stats?channel={}", query_escape(channel));
        let (status, body) = http::send(&mut sender, Method::GET, stats, &path, &[], Bytes::new())
            .await
            .map_err(|e| format!("channel stats: {}", http::describe(e.as_ref())))?;
        if !status.is_success() {
            return Err(format!(
                "channel stats answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        rows += ChannelStats::parse(&body)
            .map_err(|e| format!("channel stats: {e}"))?
            .rows_written;
    }
    Ok(rows)
}
