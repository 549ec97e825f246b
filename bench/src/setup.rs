//! Stream set-up by tenant layout: N streams on N channels of one tenant
//! against N streams of N tenants with one channel each. A stream open that
//! went through one object per tenant would queue behind that object in the
//! first layout, and the ratio of the two rates shows whether it does
//! (issue 13 asks for at least 0.8). Every stream opens a new channel object
//! (and, in the second layout, a new tenant object), so the rounds run in
//! the order A B B A on one server, each on fresh channels and tenants: the
//! objects left from earlier rounds and the machine's other work weigh on
//! both layouts alike.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::peers::{self, Ctx, Endpoint};
use crate::scenario::ConnectStats;
use crate::subscriber::{self, Shared, Spec};

/// Streams (and channels) per round of one layout.
const STREAMS: usize = 250;
/// Streams being opened at once, as in the scenarios.
const CONCURRENCY: usize = 100;
/// Rounds of each layout; the median (of two: the mean) is reported.
const ROUNDS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Layout {
    /// One tenant, every stream on a channel of its own.
    OneTenant,
    /// A tenant per stream, one channel each.
    TenantPerStream,
}

#[derive(Serialize)]
struct Round {
    layout: Layout,
    round: usize,
    connect: ConnectStats,
    server_cpu_us_per_stream: f64,
    first_errors: Vec<String>,
}

pub async fn measure(ctx: &Ctx) -> Value {
    run(ctx).await.unwrap_or_else(|e| json!({ "error": e }))
}

async fn run(ctx: &Ctx) -> Result<Value, String> {
    let options = peers::edgestream::Options {
        kind: crate::PeerKind::Edgestream,
        bridge: false,
        probe: false,
        vars: Vec::new(),
        ratelimits: Vec::new(),
        log_name: "setup-by-tenant".into(),
    };
    let mut target = peers::edgestream::start(ctx, &options).await?;
    let ep = Arc::clone(&target.ep);
    let roots = target.pids();
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let mut layouts = [Layout::OneTenant, Layout::TenantPerStream];
        if !round.is_multiple_of(2) {
            layouts.reverse();
        }
        for layout in layouts {
            let cpu_before = crate::rss::server_cpu_s(&roots);
            let opened = open_all(ctx, &ep, layout, round).await?;
            let cpu = crate::rss::server_cpu_s(&roots) - cpu_before;
            rounds.push(Round {
                layout,
                round,
                server_cpu_us_per_stream: cpu * 1e6 / STREAMS as f64,
                connect: opened.connect,
                first_errors: opened.first_errors,
            });
            // Let the ended streams' invocations finish before the next round.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    target.alive()?;
    drop(target);
    let median = |layout: Layout, get: fn(&Round) -> f64| {
        let mut values: Vec<f64> = rounds
            .iter()
            .filter(|r| r.layout == layout)
            .map(get)
            .collect();
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        if values.len().is_multiple_of(2) {
            (values[mid - 1] + values[mid]) / 2.0
        } else {
            values[mid]
        }
    };
    let summary = |layout: Layout| {
        json!({
            "per_s": median(layout, |r| r.connect.per_s),
            "p99_ms": median(layout, |r| r.connect.p99_ms),
            "server_cpu_us_per_stream": median(layout, |r| r.server_cpu_us_per_stream),
        })
    };
    let failed: usize = rounds.iter().map(|r| r.connect.failed).sum();
    let one = median(Layout::OneTenant, |r| r.connect.per_s);
    let many = median(Layout::TenantPerStream, |r| r.connect.per_s);
    Ok(json!({
        "streams": STREAMS,
        "concurrency": CONCURRENCY,
        "one_tenant": summary(Layout::OneTenant),
        "tenant_per_stream": summary(Layout::TenantPerStream),
        "ratio": if many > 0.0 { one / many } else { 0.0 },
        "failed": failed,
        "rounds": rounds,
    }))
}

/// Opens `STREAMS` streams in `layout` and closes them once all are open.
async fn open_all(
    ctx: &Ctx,
    ep: &Arc<Endpoint>,
    layout: Layout,
    round: usize,
) -> Result<Opened, String> {
    let shared = Shared::new(Instant::now());
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut specs = Vec::with_capacity(STREAMS);
    for index in 0..STREAMS {
        let (path, headers) = match layout {
            Layout::OneTenant => {
                ep.subscribe(&format!("bench:{}:setup-{round}-c{index}", ctx.tenant))
            }
            Layout::TenantPerStream => {
                let tenant = crate::random_uuid();
                let token = peers::edgestream::token(ctx, &tenant, false);
                ep.subscribe_as(&format!("bench:{tenant}:setup-{round}"), Some(&token))
            }
        };
        specs.push(Spec {
            index,
            channel: 0,
            path,
            headers,
            expected: Vec::new(),
        });
    }
    let started = Instant::now();
    let tasks: Vec<_> = specs
        .into_iter()
        .map(|spec| {
            tokio::spawn(subscriber::run(
                spec,
                Arc::clone(ep),
                Arc::clone(&shared),
                Arc::clone(&slots),
                stop_rx.clone(),
            ))
        })
        .collect();
    let deadline = started + Duration::from_secs(120);
    while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < STREAMS
        && Instant::now() < deadline
    {
        tokio::select! {
            _ = shared.progress.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let total_s = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let mut ms = Vec::with_capacity(STREAMS);
    for task in tasks {
        if let Some(connect_ms) = task.await.ok().and_then(|r| r.connect_ms) {
            ms.push(connect_ms);
        }
    }
    let failed = STREAMS - ms.len();
    let errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(Opened {
        connect: ConnectStats::new(STREAMS, failed, total_s, ms),
        first_errors: errors.into_iter().take(3).collect(),
    })
}

/// One round's streams: those that failed to open count in `failed`, and
/// the rate is of those that opened.
struct Opened {
    connect: ConnectStats,
    first_errors: Vec<String>,
}
