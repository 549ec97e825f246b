//! A noisy tenant: tenant A floods publishes (several connections, batches,
//! as fast as the relay answers, ignoring `Retry-After` as a misbehaving
//! client would) to a channel with streams of its own, while tenant B's
//! channel of subscribers measures fan-out latency at a steady rate. Run
//! three times on fresh servers: B alone, B beside the flood without quotas,
//! and B beside the flood with the publish quota (and a stream quota well
//! above B's streams, so its leases are exercised too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::http;
use crate::peers::{self, Ctx};
use crate::scenario::{self, Scenario};

/// B's streams, events and rate: the fan-out that is measured.
const B_SUBS: usize = 200;
const B_EVENTS: u64 = 200;
const B_RATE: f64 = 20.0;
/// A's flood: connections publishing at once, events per publish, and the
/// streams on A's channel that every accepted event fans out to.
const FLOODERS: usize = 4;
const FLOOD_BATCH: usize = 20;
const A_STREAMS: usize = 50;
/// The quota run: publishes per tenant per period (B publishes one event per
/// request at `B_RATE`, well inside it), and streams per tenant.
const QUOTA_PUBLISHES: u64 = 400;
const QUOTA_PERIOD_S: u64 = 10;
const QUOTA_STREAMS: u64 = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Alone,
    FloodNoQuota,
    FloodWithQuota,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Alone => "B alone",
            Mode::FloodNoQuota => "A floods, no quotas",
            Mode::FloodWithQuota => "A floods, with quotas",
        }
    }
}

#[derive(Default)]
struct FloodCount {
    accepted: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
}

pub async fn measure(ctx: &Ctx) -> Value {
    let mut runs = Vec::new();
    for mode in [Mode::Alone, Mode::FloodNoQuota, Mode::FloodWithQuota] {
        eprintln!("bench: extras: noisy tenant: {}", mode.name());
        runs.push(
            run(ctx, mode)
                .await
                .unwrap_or_else(|e| json!({ "mode": mode.name(), "error": e })),
        );
    }
    json!({
        "b_subscribers": B_SUBS,
        "b_events": B_EVENTS,
        "b_rate": B_RATE,
        "flooders": FLOODERS,
        "flood_batch": FLOOD_BATCH,
        "a_streams": A_STREAMS,
        "quota": {
            "publishes": QUOTA_PUBLISHES,
            "period_s": QUOTA_PERIOD_S,
            "streams": QUOTA_STREAMS,
        },
        "runs": runs,
    })
}

async fn run(ctx: &Ctx, mode: Mode) -> Result<Value, String> {
    let quotas = mode == Mode::FloodWithQuota;
    let options = peers::edgestream::Options {
        kind: peers::PeerKind::Edgestream,
        bridge: false,
        probe: false,
        vars: if quotas {
            vec![
                ("MAX_STREAMS_PER_TENANT".into(), QUOTA_STREAMS.to_string()),
                (
                    "PUBLISH_QUOTA_PERIOD_SECONDS".into(),
                    QUOTA_PERIOD_S.to_string(),
                ),
            ]
        } else {
            Vec::new()
        },
        ratelimits: if quotas {
            vec![("PUBLISH_QUOTA".into(), QUOTA_PUBLISHES, QUOTA_PERIOD_S)]
        } else {
            Vec::new()
        },
        log_name: format!("noisy-{}", mode as u8),
    };
    let mut target = peers::edgestream::start(ctx, &options).await?;
    let ep = Arc::clone(&target.ep);
    let noisy = crate::random_uuid();
    let channel = format!("bench:{noisy}:flood");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = Vec::new();
    let count = Arc::new(FloodCount::default());
    if mode != Mode::Alone {
        let token = peers::edgestream::token(ctx, &noisy, false);
        for _ in 0..A_STREAMS {
            let (path, headers) = ep.subscribe_as(&channel, Some(&token));
            background.push(tokio::spawn(drain(ep.addr, path, headers, stop_rx.clone())));
        }
        let body = flood_body(&channel);
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                "Authorization".to_owned(),
                format!("Bearer {}", peers::edgestream::token(ctx, &noisy, true)),
            ),
        ];
        for _ in 0..FLOODERS {
            background.push(tokio::spawn(flood(
                ep.addr,
                headers.clone(),
                body.clone(),
                Arc::clone(&count),
                stop_rx.clone(),
            )));
        }
    }
    let fanout = Scenario {
        name: "noisy-b".into(),
        subs_per_channel: B_SUBS,
        events_per_channel: B_EVENTS,
        rate: Some(B_RATE),
        batch: 1,
        ..Scenario::defaults().remove(0)
    };
    let result = scenario::run(
        &fanout,
        &mut target,
        &ctx.tenant,
        &format!("noisy-{}", mode as u8),
        None,
    )
    .await;
    let _ = stop_tx.send(true);
    for task in background {
        let _ = task.await;
    }
    target.alive()?;
    drop(target);
    let publish_s = result.delivery.duration_s.max(0.001);
    Ok(json!({
        "mode": mode.name(),
        "ok": result.ok,
        "failure": result.failure,
        "latency": result.latency,
        "delivered_per_s": result.delivery.per_s,
        "b_publish_retries": result.publish.retries,
        "flood": {
            "accepted_requests": count.accepted.load(Ordering::Relaxed),
            "refused_requests": count.refused.load(Ordering::Relaxed),
            "other": count.other.load(Ordering::Relaxed),
            "accepted_events_per_s": count.accepted.load(Ordering::Relaxed) as f64 * FLOOD_BATCH as f64 / publish_s,
        },
        "server_cpu_s": result.server_cpu_s,
    }))
}

fn flood_body(channel: &str) -> Bytes {
    let events: Vec<Value> = (0..FLOOD_BATCH)
        .map(|i| json!({ "channel": channel, "event": "flood", "data": { "i": i, "pad": "x".repeat(100) } }))
        .collect();
    Bytes::from(json!({ "events": events }).to_string())
}

/// Publishes the same batch again and again until stopped, counting answers.
async fn flood(
    addr: std::net::SocketAddr,
    headers: Vec<(String, String)>,
    body: Bytes,
    count: Arc<FloodCount>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(mut sender) = http::connect(addr, Duration::from_secs(10)).await else {
        count.other.fetch_add(1, Ordering::Relaxed);
        return;
    };
    while !*stop.borrow() {
        let sent = http::send(
            &mut sender,
            Method::POST,
            addr,
            "/v1/publish",
            &headers,
            body.clone(),
        );
        let outcome = tokio::select! {
            outcome = sent => outcome,
            _ = stop.changed() => return,
        };
        match outcome {
            Ok((status, _)) if status.as_u16() == 202 => {
                count.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, _)) if status.as_u16() == 429 => {
                count.refused.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                count.other.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                count.other.fetch_add(1, Ordering::Relaxed);
                match http::connect(addr, Duration::from_secs(10)).await {
                    Ok(fresh) => sender = fresh,
                    Err(_) => return,
                }
            }
        }
    }
}

/// A stream of A's that reads and discards what it is sent.
async fn drain(
    addr: std::net::SocketAddr,
    path: String,
    headers: Vec<(String, String)>,
    mut stop: watch::Receiver<bool>,
) {
    use http_body_util::BodyExt;
    let Ok(mut sender) = http::connect(addr, Duration::from_secs(10)).await else {
        return;
    };
    let Ok(response) = http::get_stream(&mut sender, addr, &path, &headers).await else {
        return;
    };
    let mut body = response.into_body();
    loop {
        tokio::select! {
            frame = body.frame() => if !matches!(frame, Some(Ok(_))) { return },
            _ = stop.changed() => return,
        }
    }
}

fn f(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or(0.0)
}

pub fn markdown(noisy: &Value) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Noisy tenant: one tenant's fan-out while another floods\n\n\
         Tenant B: {} streams on one channel, {} events at {}/s, one per publish. \
         Tenant A: {} connections publishing batches of {} events as fast as answered \
         (ignoring `Retry-After`) to a channel with {} streams. Each row on a fresh server. \
         With quotas: `PUBLISH_QUOTA` {} publishes per {} s per tenant, \
         `MAX_STREAMS_PER_TENANT` {}.\n\n\
         | run | B p50, ms | B p99, ms | B max, ms | B delivered/s | A publishes accepted | A publishes refused (429) | A events accepted/s | server CPU, s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|",
        noisy.pointer("/b_subscribers").and_then(Value::as_u64).unwrap_or(0),
        noisy.pointer("/b_events").and_then(Value::as_u64).unwrap_or(0),
        f(noisy, "/b_rate"),
        noisy.pointer("/flooders").and_then(Value::as_u64).unwrap_or(0),
        noisy.pointer("/flood_batch").and_then(Value::as_u64).unwrap_or(0),
        noisy.pointer("/a_streams").and_then(Value::as_u64).unwrap_or(0),
        noisy.pointer("/quota/publishes").and_then(Value::as_u64).unwrap_or(0),
        noisy.pointer("/quota/period_s").and_then(Value::as_u64).unwrap_or(0),
        noisy.pointer("/quota/streams").and_then(Value::as_u64).unwrap_or(0),
    );
    for run in noisy
        .pointer("/runs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mode = run.pointer("/mode").and_then(Value::as_str).unwrap_or("?");
        if let Some(e) = run.pointer("/error").and_then(Value::as_str) {
            let _ = writeln!(md, "| {mode} | error: {e} | | | | | | | |");
            continue;
        }
        let failed = match run.pointer("/failure").and_then(Value::as_str) {
            Some(why) => format!(" (**{why}**)"),
            None => String::new(),
        };
        let _ = writeln!(
            md,
            "| {mode}{failed} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} | {:.0} | {:.1} |",
            f(run, "/latency/p50_ms"),
            f(run, "/latency/p99_ms"),
            f(run, "/latency/max_ms"),
            f(run, "/delivered_per_s"),
            run.pointer("/flood/accepted_requests")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            run.pointer("/flood/refused_requests")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            f(run, "/flood/accepted_events_per_s"),
            f(run, "/server_cpu_s"),
        );
    }
    let _ = writeln!(md);
    md
}
