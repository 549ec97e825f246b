//! Evidence, in workerd, that an idle channel object hibernates while its
//! subscribers stay connected: the reason edgestream's Worker, not the
//! Durable Object, holds the SSE responses.
//!
//! workerd evicts an object that has had no request in flight and no
//! non-hibernatable connection for 10 seconds (`ActorContainer::
//! handleShutdown` in workerd's `server.c++`), moving its accepted WebSockets
//! into the hibernation manager, and constructs it again when an event
//! arrives for it. The worker is started with a wrapper that logs every
//! construction of the channel object class, so the probe can count them:
//! after a short gap the same instance serves the next publish (no new
//! construction); after an idle hold longer than the eviction timeout each
//! channel's object is constructed anew, while the same SSE connections go on
//! receiving every event exactly once. That an object was evicted at all
//! shows it held nothing but hibernatable sockets: workerd never evicts an
//! object with a request in flight.
//!
//! What this cannot show locally: Cloudflare's billing, and production's
//! eviction timing; both are taken from Cloudflare's documentation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::payload;
use crate::peers::{self, Ctx, Out};
use crate::publisher::Conn;
use crate::rss::Sampler;
use crate::subscriber::{self, Shared, Spec};

fn constructions(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().filter(|l| l.contains("do-constructed")).count())
        .unwrap_or(0)
}

fn server_mb(s: &Sampler) -> f64 {
    s.current().get("server").copied().unwrap_or(0.0)
}

pub async fn probe(ctx: &Ctx, channels: usize, subs: usize, hold_s: f64) -> Value {
    match run(ctx, channels, subs, hold_s).await {
        Ok(v) => v,
        Err(e) => json!({ "error": e }),
    }
}

async fn run(ctx: &Ctx, channels: usize, subs: usize, hold_s: f64) -> Result<Value, String> {
    let log_name = "hibernation-probe";
    let options = peers::edgestream::Options {
        kind: crate::PeerKind::Edgestream,
        bridge: false,
        probe: true,
        vars: Vec::new(),
        ratelimits: Vec::new(),
        log_name: log_name.into(),
    };
    let mut target = peers::edgestream::start(ctx, &options).await?;
    let log = ctx.work.join(format!("{log_name}.log"));
    let ep = Arc::clone(&target.ep);
    let sampler = Sampler::start(target.pids());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server_mb(&sampler);

    let names: Vec<String> = (0..channels)
        .map(|i| format!("bench:{}:hibernation-c{i}", ctx.tenant))
        .collect();
    let n = channels * subs;
    let shared = Shared::new(Instant::now());
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(50));
    let mut tasks = Vec::new();
    for index in 0..n {
        let channel = (index % channels) as u32;
        let (path, headers) = ep.subscribe(&names[channel as usize]);
        let spec = Spec {
            index,
            channel,
            path,
            headers,
            expected: vec![3],
        };
        tasks.push(tokio::spawn(subscriber::run(
            spec,
            Arc::clone(&ep),
            Arc::clone(&shared),
            Arc::clone(&slots),
            stop_rx.clone(),
        )));
    }
    let wait = |what: &'static str, goal: usize, connected: bool| {
        let shared = Arc::clone(&shared);
        async move {
            let start = Instant::now();
            loop {
                let have = if connected {
                    shared.connected.load(Ordering::Relaxed)
                } else {
                    shared.delivered.load(Ordering::Relaxed) as usize
                };
                if have >= goal {
                    return Ok(());
                }
                if shared.failed.load(Ordering::Relaxed) > 0
                    || start.elapsed() > Duration::from_secs(60)
                {
                    return Err(format!(
                        "{what}: {have} of {goal}; errors: {:?}",
                        shared.errors.lock().map(|e| e.clone())
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait("streams opened", n, true).await?;
    let after_open = constructions(&log);
    let rss_open = server_mb(&sampler);
    let mut conn = Conn::open(&ep).await?;
    publish(&ep, &mut conn, &names, 1).await?;
    wait("first event", n, false).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    publish(&ep, &mut conn, &names, 2).await?;
    wait("event after a 3 s gap", 2 * n, false).await?;
    let after_short_gap = constructions(&log);
    let rss_active = server_mb(&sampler);
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(hold_s)).await;
    let rss_idle = server_mb(&sampler);
    let during_idle = constructions(&log) - after_short_gap;
    let woke_at = Instant::now();
    publish(&ep, &mut conn, &names, 3).await?;
    wait("event after the idle hold", 3 * n, false).await?;
    let wake_ms = woke_at.elapsed().as_secs_f64() * 1000.0;
    let after_idle = constructions(&log);
    let rss_after = server_mb(&sampler);
    let idle_s = (woke_at - idle_start).as_secs_f64();

    let _ = stop_tx.send(true);
    let mut outcome = crate::verify::Outcome::default();
    for t in tasks {
        if let Ok(r) = t.await {
            outcome.add(&r.outcome);
        }
    }
    let _ = target.alive();
    drop(sampler);
    drop(target);
    let failed = shared.failed.load(Ordering::Relaxed);
    let rebuilt = after_idle - after_short_gap;
    Ok(json!({
        "channels": channels,
        "streams": n,
        "idle_s": idle_s,
        "constructions": {
            "after_open": after_open,
            "after_short_gap": after_short_gap,
            "during_idle": during_idle,
            "after_idle": after_idle,
        },
        "objects_rebuilt_after_idle": rebuilt,
        "hibernated_every_channel": rebuilt == channels && after_short_gap == after_open,
        "streams_dropped": failed,
        "delivery": outcome,
        "delivery_clean": outcome.clean() && failed == 0,
        "first_event_after_idle_ms": wake_ms,
        "server_rss_mb": {
            "before_streams": rss_before,
            "streams_open": rss_open,
            "active": rss_active,
            "after_idle": rss_idle,
            "after_wake": rss_after,
        },
    }))
}

/// Publishes event `seq` to every channel.
async fn publish(
    ep: &crate::peers::Endpoint,
    conn: &mut Conn,
    names: &[String],
    seq: u64,
) -> Result<(), String> {
    let ts = payload::now_us();
    let events: Vec<Out<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, c)| Out {
            channel: c,
            event: payload::TICK,
            data: payload::tick(i as u32, 0, seq, ts, ""),
        })
        .collect();
    for chunk in events.chunks(ep.max_batch(100)) {
        conn.send(ep, chunk, true).await?;
    }
    Ok(())
}
