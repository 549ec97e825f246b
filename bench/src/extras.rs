//! Measurements besides the scenarios: bundle size, start-up time to the
//! first served stream, the hibernation probe, stream set-up by tenant
//! layout, the noisy tenant and the cost estimate.

use std::fmt::Write;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::http;
use crate::peers::{Ctx, PeerKind};
use crate::scenario::Scenario;
use crate::Results;

/// Start-ups measured per peer (the median is reported).
const STARTUP_RUNS: usize = 3;

/// The extras that `--only-extra` can pick alone.
pub const ALONE: [&str; 1] = ["noisy"];

pub async fn measure(
    ctx: &Ctx,
    peers: &[PeerKind],
    results: &Results,
    only: Option<&str>,
) -> Value {
    if only == Some("noisy") {
        return json!({ "noisy_tenant": crate::noisy::measure(ctx).await });
    }
    eprintln!("bench: extras: bundle size");
    let size = size(ctx);
    let mut startup = Vec::new();
    for &kind in peers {
        eprintln!("bench: extras: start-up of {}", kind.name());
        startup.push(start_up(ctx, kind).await);
    }
    eprintln!("bench: extras: hibernation probe (about 30 s)");
    let hibernation = crate::hibernation::probe(ctx, 20, 5, 15.0).await;
    let setup = if peers.contains(&PeerKind::Edgestream) {
        eprintln!("bench: extras: stream set-up, one tenant against a tenant per stream");
        crate::setup::measure(ctx).await
    } else {
        Value::Null
    };
    let noisy = if peers.contains(&PeerKind::Edgestream) {
        crate::noisy::measure(ctx).await
    } else {
        Value::Null
    };
    json!({
        "size": size,
        "startup": startup,
        "hibernation": hibernation,
        "setup_by_tenant": setup,
        "noisy_tenant": noisy,
        "cost": crate::cost::estimate(&results.runs),
    })
}

fn gzip_len(bytes: &[u8]) -> Option<usize> {
    let mut child = Command::new("gzip")
        .arg("-9")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    Some(out.stdout.len())
}

fn size(ctx: &Ctx) -> Value {
    let mut files = Vec::new();
    for name in ["build/index_bg.wasm", "build/index.js"] {
        let path = ctx.root.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut entry =
                    json!({ "file": name, "bytes": bytes.len(), "gzip_bytes": gzip_len(&bytes) });
                if name.ends_with(".wasm") {
                    if let Some(code) = without_custom_sections(&bytes) {
                        entry["code_bytes"] = json!(code.len());
                        entry["code_gzip_bytes"] = json!(gzip_len(&code));
                    }
                }
                files.push(entry);
            }
            Err(e) => files.push(json!({ "file": name, "error": e.to_string() })),
        }
    }
    Value::Array(files)
}

/// The module without its custom sections (function names, producers):
/// what is left when a deploy strips them.
fn without_custom_sections(wasm: &[u8]) -> Option<Vec<u8>> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return None;
    }
    let mut out = wasm[..8].to_vec();
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        let (size, len) = leb128(&wasm[at + 1..])?;
        let end = at + 1 + len + size as usize;
        if end > wasm.len() {
            return None;
        }
        if id != 0 {
            out.extend_from_slice(&wasm[at..end]);
        }
        at = end;
    }
    Some(out)
}

fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Time from spawning the peer's server to its health check, and to the
/// first bytes of a stream right after.
async fn start_up(ctx: &Ctx, kind: PeerKind) -> Value {
    let scenario = Scenario::defaults().remove(0);
    let mut samples = Vec::new();
    for i in 0..STARTUP_RUNS {
        let log = format!("startup-{}-{i}", kind.name());
        let mut target = match crate::start_peer(ctx, kind, &scenario, &log).await {
            Ok(t) => t,
            Err(e) => return json!({ "peer": kind.name(), "error": e }),
        };
        let ep = Arc::clone(&target.ep);
        let channel = format!("bench:{}:startup-{i}", ctx.tenant);
        let (path, headers) = ep.subscribe(&channel);
        let began = Instant::now();
        let first = async {
            let mut sender = http::connect(ep.addr, Duration::from_secs(10)).await?;
            let response = http::get_stream(&mut sender, ep.addr, &path, &headers).await?;
            if response.status() != 200 {
                return Err(format!("status {}", response.status()).into());
            }
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                if frame?.data_ref().is_some_and(|d| !d.is_empty()) {
                    return Ok(());
                }
            }
            Err::<(), http::Error>("stream ended".into())
        };
        let stream_ms = match tokio::time::timeout(Duration::from_secs(30), first).await {
            Ok(Ok(())) => began.elapsed().as_secs_f64() * 1000.0,
            Ok(Err(e)) => return json!({ "peer": kind.name(), "error": e.to_string() }),
            Err(_) => return json!({ "peer": kind.name(), "error": "first stream timed out" }),
        };
        let _ = target.alive();
        samples.push((target.started_in_ms, stream_ms));
        drop(target);
    }
    samples.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
    let (health, stream) = samples[samples.len() / 2];
    json!({
        "peer": kind.name(),
        "to_health_ms": health,
        "first_stream_after_ms": stream,
        "to_first_stream_ms": health + stream,
        "runs": samples.len(),
    })
}

fn f(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or(0.0)
}

fn usd(x: f64) -> String {
    if x >= 100.0 {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("${out}")
    } else {
        format!("${x:.2}")
    }
}

pub fn markdown(extras: &Value) -> String {
    let mut md = String::new();
    if let Some(files) = extras.pointer("/size").and_then(Value::as_array) {
        let _ = writeln!(
            md,
            "### Bundle size\n\n| file | bytes | gzip -9 | without custom sections (names) | that, gzip -9 |\n|---|---:|---:|---:|---:|"
        );
        let kib =
            |v: Option<u64>| v.map_or("–".into(), |b| format!("{:.1} KiB", b as f64 / 1024.0));
        for file in files {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {} |",
                file.pointer("/file").and_then(Value::as_str).unwrap_or("?"),
                kib(file.pointer("/bytes").and_then(Value::as_u64)),
                kib(file.pointer("/gzip_bytes").and_then(Value::as_u64)),
                kib(file.pointer("/code_bytes").and_then(Value::as_u64)),
                kib(file.pointer("/code_gzip_bytes").and_then(Value::as_u64)),
            );
        }
        let _ = writeln!(md);
    }
    if let Some(peers) = extras.pointer("/startup").and_then(Value::as_array) {
        let _ = writeln!(
            md,
            "### Start-up: process start to first served stream\n\nMedian of {STARTUP_RUNS} starts. For edgestream the process is `node bench/serve-worker.mjs` (node loads miniflare and wrangler's config reader, then starts workerd); the first stream also instantiates the first channel object.\n\n| peer | to health check, ms | then first stream bytes, ms | total, ms |\n|---|---:|---:|---:|"
        );
        for p in peers {
            let name = p.pointer("/peer").and_then(Value::as_str).unwrap_or("?");
            if let Some(e) = p.pointer("/error").and_then(Value::as_str) {
                let _ = writeln!(md, "| {name} | error: {e} | | |");
                continue;
            }
            let _ = writeln!(
                md,
                "| {name} | {:.0} | {:.1} | {:.0} |",
                f(p, "/to_health_ms"),
                f(p, "/first_stream_after_ms"),
                f(p, "/to_first_stream_ms")
            );
        }
        let _ = writeln!(md);
    }
    if let Some(h) = extras.pointer("/hibernation") {
        let _ = writeln!(md, "### Hibernation in workerd\n");
        if let Some(e) = h.pointer("/error").and_then(Value::as_str) {
            let _ = writeln!(md, "The probe failed: `{e}`\n");
        } else {
            let c = |k: &str| {
                h.pointer(&format!("/constructions/{k}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            let r = |k: &str| f(h, &format!("/server_rss_mb/{k}"));
            let _ = writeln!(
                md,
                "{} channels × {} streams ({} streams). Channel-object constructions counted from the probe's log: {} after the streams attached, {} after a publish 3 s later (same instances), {} during an idle hold of {:.1} s, {} after the next publish: **{} of {} objects were evicted and rebuilt** while every stream stayed on its original connection ({} streams dropped; delivery of all three events exactly once, in order: {}). The first event after the hold reached every stream {:.0} ms after it was published. workerd RSS, MiB: {:.1} before the streams, {:.1} with them open, {:.1} while active, {:.1} after the idle hold, {:.1} after waking.\n",
                h.pointer("/channels").and_then(Value::as_u64).unwrap_or(0),
                h.pointer("/streams").and_then(Value::as_u64).unwrap_or(0) / h.pointer("/channels").and_then(Value::as_u64).unwrap_or(1).max(1),
                h.pointer("/streams").and_then(Value::as_u64).unwrap_or(0),
                c("after_open"),
                c("after_short_gap"),
                c("during_idle"),
                f(h, "/idle_s"),
                c("after_idle"),
                h.pointer("/objects_rebuilt_after_idle").and_then(Value::as_u64).unwrap_or(0),
                h.pointer("/channels").and_then(Value::as_u64).unwrap_or(0),
                h.pointer("/streams_dropped").and_then(Value::as_u64).unwrap_or(0),
                if h.pointer("/delivery_clean").and_then(Value::as_bool) == Some(true) { "yes" } else { "**no**" },
                f(h, "/first_event_after_idle_ms"),
                r("before_streams"),
                r("streams_open"),
                r("active"),
                r("after_idle"),
                r("after_wake"),
            );
        }
    }
    if let Some(setup) = extras.pointer("/setup_by_tenant").filter(|s| !s.is_null()) {
        let _ = writeln!(
            md,
            "### Stream set-up: one tenant against a tenant per stream\n"
        );
        if let Some(e) = setup.pointer("/error").and_then(Value::as_str) {
            let _ = writeln!(md, "The measurement failed: `{e}`\n");
        } else {
            let _ = writeln!(
                md,
                "edgestream, {} streams opened {} at a time, each on a channel of its own: all of one tenant, or each of its own tenant (its own token). Every stream opens a new channel object (and a new tenant object in the second layout). The layouts alternate (A B B A) on one server, fresh channels and tenants every round; medians of {} rounds each.\n\n| layout | streams/s per round | streams/s (median) | set-up p99, ms | server CPU per stream, µs |\n|---|---:|---:|---:|---:|",
                setup.pointer("/streams").and_then(Value::as_u64).unwrap_or(0),
                setup.pointer("/concurrency").and_then(Value::as_u64).unwrap_or(0),
                setup.pointer("/rounds").and_then(Value::as_array).map_or(0, |r| r.len() / 2),
            );
            for (key, layout, label) in [
                ("one_tenant", "one-tenant", "1 tenant × N channels"),
                (
                    "tenant_per_stream",
                    "tenant-per-stream",
                    "N tenants × 1 channel",
                ),
            ] {
                let per_round: Vec<String> = setup
                    .pointer("/rounds")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|r| r.pointer("/layout").and_then(Value::as_str) == Some(layout))
                    .map(|r| format!("{:.0}", f(r, "/connect/per_s")))
                    .collect();
                let _ = writeln!(
                    md,
                    "| {label} | {} | {:.0} | {:.1} | {:.0} |",
                    per_round.join(", "),
                    f(setup, &format!("/{key}/per_s")),
                    f(setup, &format!("/{key}/p99_ms")),
                    f(setup, &format!("/{key}/server_cpu_us_per_stream")),
                );
            }
            let _ = writeln!(
                md,
                "\nOne tenant's rate over a tenant per stream's: **{:.2}×**.\n",
                f(setup, "/ratio")
            );
            let failed = setup
                .pointer("/failed")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if failed > 0 {
                let first: Vec<String> = setup
                    .pointer("/rounds")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.pointer("/first_errors")?.as_array()?.first()?.as_str())
                    .take(3)
                    .map(|e| format!("`{}`", e.replace('`', "'")))
                    .collect();
                let _ = writeln!(
                    md,
                    "**{failed} streams did not open** (rates are of those that did); first errors: {}.\n",
                    first.join("; ")
                );
            }
        }
    }
    if let Some(noisy) = extras.pointer("/noisy_tenant").filter(|n| !n.is_null()) {
        md.push_str(&crate::noisy::markdown(noisy));
    }
    if let Some(cost) = extras.pointer("/cost") {
        let _ = writeln!(
            md,
            "### Cost estimate: 10,000 mostly-idle streams for a month\n\nInputs: {}. Streams reconnect hourly (token lifetime). List prices (Workers Paid, Durable Objects compute and SQLite storage) as published when this was written.\n\n| workload | design | Worker requests | Worker CPU ms | DO requests | DO GB-s | rows written | monthly bill |\n|---|---|---:|---:|---:|---:|---:|---:|",
            cost.pointer("/inputs/source").and_then(Value::as_str).unwrap_or("")
        );
        for case in cost
            .pointer("/cases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let w = format!(
                "{} streams on {} channels, {} events/channel/hour",
                f(case, "/workload/streams"),
                f(case, "/workload/channels"),
                f(case, "/workload/events_per_channel_per_hour")
            );
            for (key, label) in [
                (
                    "edgestream",
                    "edgestream (Worker holds SSE, objects hibernate)",
                ),
                ("do_holds_sse", "object holds SSE itself"),
            ] {
                let b = |k: &str| f(case, &format!("/{key}/{k}"));
                let _ = writeln!(
                    md,
                    "| {w} | {label} | {:.2} M | {:.2} M | {:.2} M | {:.3} M | {:.2} M | **{}** |",
                    b("worker_requests") / 1e6,
                    b("worker_cpu_ms") / 1e6,
                    b("do_requests") / 1e6,
                    b("do_gb_s") / 1e6,
                    b("rows_written") / 1e6,
                    usd(b("usd_total"))
                );
            }
        }
        let _ = writeln!(md);
    }
    md
}
