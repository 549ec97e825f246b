//! nchan: Debian's nginx with libnginx-mod-nchan, one worker process, started
//! with the configuration in `bench/peers/nchan/nginx.conf` (placeholders
//! filled in per run).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Ctx, Endpoint, Out, PeerKind, PublishReq, Target, Via};
use crate::process::{free_port, wait_healthy, Proc};

const NGINX: &str = "/usr/sbin/nginx";
const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

pub fn installed() -> bool {
    std::path::Path::new(NGINX).exists() && std::path::Path::new(MODULE).exists()
}

pub async fn start(ctx: &Ctx, log_name: &str) -> Result<Target, String> {
    if !installed() {
        return Err("nginx with nchan is not installed (run bench/peers/install)".to_owned());
    }
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let dir = ctx.work.join(log_name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let template_path = ctx.root.join("bench/peers/nchan/nginx.conf");
    let template = std::fs::read_to_string(&template_path)
        .map_err(|e| format!("{}: {e}", template_path.display()))?;
    let config = template
        .replace("@MODULE@", MODULE)
        .replace("@DIR@", &dir.display().to_string())
        .replace("@PORT@", &port.to_string());
    let config_path = dir.join("nginx.conf");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let mut command = Command::new(NGINX);
    command.arg("-p").arg(&dir).arg("-c").arg(&config_path);
    let spawned = Instant::now();
    let mut server = Proc::spawn("server", command, &ctx.work.join(format!("{log_name}.log")))?;
    wait_healthy(&mut server, addr, "/healthz", Duration::from_secs(30)).await?;
    Ok(Target {
        ep: std::sync::Arc::new(Endpoint {
            kind: PeerKind::Nchan,
            via: Via::Http,
            addr,
            sub_token: None,
            pub_token: None,
            stats: None,
        }),
        processes: vec![server],
        started_in_ms: spawned.elapsed().as_secs_f64() * 1000.0,
        profiler_pid: None,
    })
}

/// One `POST /pub/<channel>` per event (nchan takes one message per
/// request); the event type travels in `X-EventSource-Event`.
pub fn publish_request(e: &Out<'_>) -> PublishReq {
    PublishReq::Http {
        path: format!("/pub/{}", e.channel),
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("X-EventSource-Event".to_owned(), e.event.to_owned()),
        ],
        body: Bytes::from(e.data.clone()),
    }
}
