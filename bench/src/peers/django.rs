//! django-eventstream 5 on uvicorn, with its Redis backend
//! (`EVENTSTREAM_REDIS`) pointed at a local valkey-server: the system
//! edgestream replaces. The project is `bench/peers/django/`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{json_string, Ctx, Endpoint, Out, PeerKind, PublishReq, Target, Via};
use crate::process::{free_port, wait_healthy, Proc};
use crate::valkey;

pub async fn start(ctx: &Ctx, log_name: &str, via_valkey: bool) -> Result<Target, String> {
    let (valkey, valkey_addr) = valkey::start_server(ctx, &format!("{log_name}-valkey")).await?;
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut command = Command::new(ctx.root.join(".tools/venv/bin/uvicorn"));
    command
        .current_dir(&ctx.root)
        .args([
            "benchpeer.asgi:application",
            "--app-dir",
            "bench/peers/django",
        ])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--log-level", "warning", "--no-access-log"])
        .args(["--workers", &ctx.django_workers.to_string()])
        .env("BENCH_VALKEY_PORT", valkey_addr.port().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let spawned = Instant::now();
    let mut server = Proc::spawn("server", command, &ctx.work.join(format!("{log_name}.log")))?;
    wait_healthy(&mut server, addr, "/healthz", Duration::from_secs(60)).await?;
    Ok(Target {
        ep: std::sync::Arc::new(Endpoint {
            kind: PeerKind::Django,
            via: if via_valkey {
                Via::Valkey(valkey_addr)
            } else {
                Via::Http
            },
            addr,
            sub_token: None,
            pub_token: None,
            stats: None,
        }),
        processes: vec![server, valkey],
        started_in_ms: spawned.elapsed().as_secs_f64() * 1000.0,
        profiler_pid: None,
    })
}

/// `POST /publish` of the benchmark's Django project: a view that calls
/// `send_event()` once per event, as an origin API would. `data` is sent as
/// JSON text and passed with `json_encode=False`, so the payload reaches the
/// subscribers byte for byte (and Django does not pay for a re-encode).
pub fn publish_request(events: &[Out<'_>]) -> PublishReq {
    let mut body = String::from(r#"{"events":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"channel":{},"event":{},"data":{}}}"#,
            json_string(e.channel),
            json_string(e.event),
            json_string(&e.data)
        ));
    }
    body.push_str("]}");
    PublishReq::Http {
        path: "/publish".to_owned(),
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        body: Bytes::from(body),
    }
}
