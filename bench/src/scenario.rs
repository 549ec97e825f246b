//! Scenarios and the procedure that runs one of them against one peer:
//! connect every subscriber, warm up until each has seen an event (so no
//! peer is measured while it is still attaching listeners), publish the
//! measured events, wait for them to drain, then check every subscriber.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::latency::{LatencySummary, BUCKET_MS};
use crate::payload;
use crate::peers::Target;
use crate::publisher::{self, Conn, Plan, PubStats};
use crate::rss::{RoleUsage, Sampler};
use crate::subscriber::{self, Shared, Spec, SubResult};
use crate::verify::Outcome;

#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: String,
    pub channels: usize,
    pub subs_per_channel: usize,
    pub events_per_channel: u64,
    /// Total events per second over all channels; `None`: as fast as accepted.
    pub rate: Option<f64>,
    /// Most events per publish operation (where the peer takes batches).
    pub batch: usize,
    /// Concurrent publishers (each owns a share of the channels, unless
    /// `shared_channels`).
    pub publishers: usize,
    /// Every publisher publishes to every channel, `events_per_channel`
    /// split between them, each numbering its own events.
    pub shared_channels: bool,
    pub payload_bytes: usize,
    /// Idle scenario: seconds the open streams are left alone before the
    /// final event checks that they all still work.
    pub hold_s: f64,
    /// Publish through Valkey (`PUBLISH events_channel`) instead of HTTP.
    pub via_valkey: bool,
    /// Streams being opened at once.
    pub connect_concurrency: usize,
    /// Give up waiting for deliveries after this long without progress.
    pub stall_s: f64,
}

impl Scenario {
    pub fn subscribers(&self) -> usize {
        self.channels * self.subs_per_channel
    }

    pub fn is_idle(&self) -> bool {
        self.name == "idle"
    }

    /// Publishers actually run: each needs a channel of its own unless they
    /// share them.
    pub fn publisher_count(&self) -> usize {
        if self.shared_channels {
            self.publishers.max(1)
        } else {
            self.publishers.clamp(1, self.channels.max(1))
        }
    }

    /// Events publisher `p` sends to each channel it publishes to.
    pub fn events_of_publisher(&self, p: usize) -> u64 {
        if !self.shared_channels {
            return self.events_per_channel;
        }
        let n = self.publisher_count() as u64;
        self.events_per_channel / n + u64::from((p as u64) < self.events_per_channel % n)
    }

    /// What a subscriber expects from each publisher index of its channel's
    /// payloads (one index, 0, when channels are not shared).
    pub fn expected_per_publisher(&self) -> Vec<u64> {
        if self.shared_channels {
            (0..self.publisher_count())
                .map(|p| self.events_of_publisher(p))
                .collect()
        } else {
            vec![self.events_per_channel]
        }
    }

    /// The scenarios of issue 6 at full size.
    pub fn defaults() -> Vec<Scenario> {
        let base = Scenario {
            name: String::new(),
            channels: 1,
            subs_per_channel: 1000,
            events_per_channel: 300,
            rate: Some(10.0),
            batch: 100,
            publishers: 1,
            shared_channels: false,
            payload_bytes: 128,
            hold_s: 0.0,
            via_valkey: false,
            connect_concurrency: 100,
            stall_s: 15.0,
        };
        vec![
            Scenario {
                name: "fanout".into(),
                ..base.clone()
            },
            Scenario {
                name: "max-rate".into(),
                events_per_channel: 2000,
                rate: None,
                ..base.clone()
            },
            // The same with one event per publish request, as nchan takes them.
            Scenario {
                name: "max-rate-single".into(),
                events_per_channel: 300,
                rate: None,
                batch: 1,
                ..base.clone()
            },
            // Eight publishers on one channel, one event per request each:
            // what the channel object does with publishes that arrive while
            // it is fanning out.
            Scenario {
                name: "many-publishers".into(),
                events_per_channel: 800,
                rate: None,
                batch: 1,
                publishers: 8,
                shared_channels: true,
                ..base.clone()
            },
            Scenario {
                name: "burst".into(),
                subs_per_channel: 100,
                events_per_channel: 10_000,
                rate: None,
                ..base.clone()
            },
            Scenario {
                name: "breadth".into(),
                channels: 1000,
                subs_per_channel: 1,
                events_per_channel: 10,
                rate: Some(1000.0),
                publishers: 4,
                ..base.clone()
            },
            Scenario {
                name: "idle".into(),
                channels: 100,
                subs_per_channel: 50,
                events_per_channel: 1,
                rate: None,
                publishers: 2,
                hold_s: 15.0,
                ..base.clone()
            },
            Scenario {
                name: "bridge".into(),
                subs_per_channel: 100,
                events_per_channel: 1000,
                rate: Some(100.0),
                via_valkey: true,
                ..base
            },
        ]
    }

    /// Seconds-long sizes for the smoke run.
    pub fn smoke() -> Vec<Scenario> {
        Scenario::defaults()
            .into_iter()
            .map(|mut s| {
                match s.name.as_str() {
                    "fanout" => {
                        (s.subs_per_channel, s.events_per_channel, s.rate) = (20, 20, Some(100.0))
                    }
                    "max-rate" => (s.subs_per_channel, s.events_per_channel) = (20, 300),
                    "max-rate-single" => (s.subs_per_channel, s.events_per_channel) = (20, 50),
                    "many-publishers" => (s.subs_per_channel, s.events_per_channel) = (20, 80),
                    "burst" => (s.subs_per_channel, s.events_per_channel) = (10, 500),
                    "breadth" => (s.channels, s.events_per_channel, s.rate) = (20, 5, Some(200.0)),
                    "idle" => (s.channels, s.subs_per_channel, s.hold_s) = (5, 10, 1.0),
                    "bridge" => {
                        (s.subs_per_channel, s.events_per_channel, s.rate) = (5, 20, Some(200.0))
                    }
                    _ => {}
                }
                s.stall_s = 10.0;
                s
            })
            .collect()
    }

    /// Applies `field=value` (sizes are parameters).
    pub fn set(&mut self, field: &str, value: &str) -> Result<(), String> {
        let name = self.name.clone();
        let bad = |_: std::num::ParseIntError| format!("{name}.{field}: bad value {value:?}");
        let badf = |_: std::num::ParseFloatError| format!("{name}.{field}: bad value {value:?}");
        match field {
            "channels" => self.channels = value.parse().map_err(bad)?,
            "subs" => self.subs_per_channel = value.parse().map_err(bad)?,
            "events" => self.events_per_channel = value.parse().map_err(bad)?,
            "rate" => {
                self.rate = if value == "max" {
                    None
                } else {
                    Some(value.parse().map_err(badf)?)
                }
            }
            "batch" => self.batch = value.parse().map_err(bad)?,
            "publishers" => self.publishers = value.parse().map_err(bad)?,
            "payload" => self.payload_bytes = value.parse().map_err(bad)?,
            "hold" => self.hold_s = value.parse().map_err(badf)?,
            "concurrency" => self.connect_concurrency = value.parse().map_err(bad)?,
            "stall" => self.stall_s = value.parse().map_err(badf)?,
            _ => return Err(format!("unknown scenario field {field:?}")),
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnectStats {
    pub subscribers: usize,
    pub failed: usize,
    /// Seconds until every stream had delivered its first bytes.
    pub total_s: f64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl ConnectStats {
    /// From each opened stream's set-up time (ms), of `subscribers` tried in
    /// `total_s` seconds.
    pub fn new(subscribers: usize, failed: usize, total_s: f64, mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if ms.is_empty() {
                0.0
            } else {
                ms[((ms.len() - 1) as f64 * p).round() as usize]
            }
        };
        ConnectStats {
            subscribers,
            failed,
            total_s,
            per_s: if total_s > 0.0 {
                ms.len() as f64 / total_s
            } else {
                0.0
            },
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Delivery {
    pub outcome: Outcome,
    pub subscribers_with_loss: usize,
    pub subscribers_incomplete: usize,
    /// Measured deliveries per second, first publish to last delivery.
    pub per_s: f64,
    pub duration_s: f64,
    pub warmup_rounds: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct IdleStats {
    /// Server RSS (MiB) before the streams, with them open, and after the hold.
    pub rss_before_mb: f64,
    pub rss_open_mb: f64,
    pub rss_after_hold_mb: f64,
    pub per_stream_kb: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub peer: String,
    pub scenario: Scenario,
    pub ok: bool,
    pub failure: Option<String>,
    pub server_start_ms: f64,
    pub connect: ConnectStats,
    pub publish: PubStats,
    /// Events accepted per second by the publish side.
    pub publish_per_s: f64,
    pub delivery: Delivery,
    pub latency: LatencySummary,
    /// Measured deliveries per bucket of `series_bucket_ms`, from the start of publishing.
    pub series: Vec<u64>,
    pub series_bucket_ms: u64,
    pub usage: BTreeMap<String, RoleUsage>,
    /// Server CPU (user + system, all server processes) from the first
    /// measured publish to the end of the drain, seconds.
    pub server_cpu_s: f64,
    /// CPU of the load generator itself over the same phase, seconds (to
    /// tell whether the client, not the server, was the limit).
    pub client_cpu_s: f64,
    /// Server CPU spent opening the streams, per stream, microseconds.
    pub connect_cpu_us_per_stream: f64,
    /// That CPU per measured delivery, microseconds.
    pub server_cpu_us_per_delivery: f64,
    /// CPU in the channel objects' own code per measured delivery, from the
    /// profile (`--profile` with a bundle that kept its names), microseconds:
    /// the part of a delivery that stays serial per channel on Cloudflare.
    /// The profiler's own overhead is in it.
    pub channel_object_us_per_delivery: Option<f64>,
    pub idle: Option<IdleStats>,
    /// SQLite rows the channel objects wrote for the measured events
    /// (edgestream), in all and per event published.
    pub rows_written: Option<u64>,
    pub rows_written_per_event: Option<f64>,
    /// Why the rows could not be counted, when they could not.
    pub rows_unmeasured: Option<String>,
    pub errors: Vec<String>,
    pub error_count: u64,
    /// The machine's 1-minute load average at the start and the end of the
    /// run: other work on the shared machine shows up here.
    pub load_start: f64,
    pub load_end: f64,
}

/// The 1-minute load average.
pub fn load_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) used by this process so far.
fn client_cpu_s() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

async fn wait_for(shared: &Shared, timeout: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() >= timeout {
            return false;
        }
        tokio::select! {
            _ = shared.progress.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    true
}

/// Server-side RSS (all roles but the node launcher), MiB.
fn server_rss(sampler: &Sampler) -> f64 {
    sampler
        .current()
        .iter()
        .filter(|(role, _)| role.as_str() != "launcher")
        .map(|(_, mb)| mb)
        .sum()
}

/// V8's CPU profiler in the launcher of the server under test (edgestream
/// only), started and stopped by signal around one measured phase.
struct Profiler<'a> {
    pid: Option<u32>,
    dir: Option<&'a std::path::Path>,
}

impl Profiler<'_> {
    async fn start(&self) {
        if let (Some(pid), Some(_)) = (self.pid, self.dir) {
            unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the profile and waits (bounded) until the launcher has written
    /// it and its summary, so the next phase or the server's stop cannot cut
    /// it short. Returns the summary's CPU time in the channel object's own
    /// code, in ms, when the bundle kept its function names.
    async fn stop(&self) -> Option<f64> {
        let (Some(pid), Some(dir)) = (self.pid, self.dir) else {
            return None;
        };
        let count = || std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let before = count();
        unsafe { libc::kill(pid as i32, libc::SIGUSR2) };
        for _ in 0..200 {
            if count() >= before + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let newest = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".summary.json"))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(newest.path()).ok()?).ok()?;
        summary.get("channel_object_ms")?.as_f64()
    }
}

pub async fn run(
    scenario: &Scenario,
    target: &mut Target,
    tenant: &str,
    run_id: &str,
    profile_dir: Option<&std::path::Path>,
) -> RunResult {
    let ep = Arc::clone(&target.ep);
    let n = scenario.subscribers();
    let channels: Arc<Vec<String>> = Arc::new(
        (0..scenario.channels)
            .map(|i| format!("bench:{tenant}:{run_id}-c{i}"))
            .collect(),
    );
    let load_start = load_1m();
    let sampler = Sampler::start(target.pids());
    let start = Instant::now();
    let shared = Shared::new(start);
    let mut failure: Option<String> = None;

    let mut idle = None;
    if scenario.is_idle() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        idle = Some(IdleStats {
            rss_before_mb: server_rss(&sampler),
            ..Default::default()
        });
    }

    // 1. Subscribers.
    let roots = target.pids();
    let cpu_connect_start = crate::rss::server_cpu_s(&roots);
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(scenario.connect_concurrency.max(1)));
    // The set-up phase gets a profile of its own (the first of the run's
    // two): opening a stream and delivering to it are different paths.
    let setup_profiler = Profiler {
        pid: target.profiler_pid,
        dir: profile_dir,
    };
    setup_profiler.start().await;
    let connect_start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for index in 0..n {
        let channel = (index % scenario.channels) as u32;
        let (path, headers) = ep.subscribe(&channels[channel as usize]);
        let spec = Spec {
            index,
            channel,
            path,
            headers,
            expected: scenario.expected_per_publisher(),
        };
        tasks.push(tokio::spawn(subscriber::run(
            spec,
            Arc::clone(&ep),
            Arc::clone(&shared),
            Arc::clone(&slots),
            stop_rx.clone(),
        )));
    }
    let connect_timeout = Duration::from_secs(60 + n as u64 / 50);
    let all_connected = wait_for(&shared, connect_timeout, || {
        shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) >= n
    })
    .await;
    let connect_total = connect_start.elapsed().as_secs_f64();
    let connect_cpu_s = crate::rss::server_cpu_s(&roots) - cpu_connect_start;
    let _ = setup_profiler.stop().await;
    let connected = shared.connected.load(Ordering::Relaxed);
    if !all_connected || connected < n {
        failure = Some(format!("{} of {n} streams opened", connected));
    }

    // 2. Idle: memory with every stream open, then after the hold.
    if let Some(idle) = idle.as_mut() {
        if failure.is_none() {
            tokio::time::sleep(Duration::from_secs(2)).await;
            idle.rss_open_mb = server_rss(&sampler);
            idle.per_stream_kb = (idle.rss_open_mb - idle.rss_before_mb) * 1024.0 / n as f64;
            tokio::time::sleep(Duration::from_secs_f64(scenario.hold_s)).await;
            idle.rss_after_hold_mb = server_rss(&sampler);
        }
    }

    // 3. Warm-up until every subscriber has seen an event.
    let mut warmup_rounds = 0;
    if failure.is_none() {
        match Conn::open(&ep).await {
            Err(e) => failure = Some(format!("warm-up: {e}")),
            Ok(mut conn) => {
                let mut warmed = false;
                for round in 1..=40 {
                    warmup_rounds = round;
                    if let Err(e) =
                        publisher::warmup(&ep, &mut conn, &channels, round, scenario.batch).await
                    {
                        failure = Some(format!("warm-up: {e}"));
                        break;
                    }
                    if wait_for(&shared, Duration::from_millis(1500), || {
                        shared.warm.load(Ordering::Relaxed) >= n
                            || shared.failed.load(Ordering::Relaxed) > 0
                    })
                    .await
                    {
                        warmed = shared.failed.load(Ordering::Relaxed) == 0;
                        break;
                    }
                }
                if failure.is_none() && !warmed {
                    failure = Some(format!(
                        "warm-up: {} of {n} subscribers saw an event",
                        shared.warm.load(Ordering::Relaxed)
                    ));
                }
            }
        }
    }

    // 4. Measured events, and the rows the channel objects write for them
    // (their counts before and after; edgestream only).
    let rows_before = match ep.stats {
        Some(stats) if failure.is_none() => {
            Some(crate::peers::edgestream::rows_written(stats, &channels).await)
        }
        _ => None,
    };
    let cpu_before = crate::rss::server_cpu_s(&roots);
    let client_cpu_before = client_cpu_s();
    let profiler = Profiler {
        pid: target.profiler_pid,
        dir: profile_dir,
    };
    profiler.start().await;
    let publish_start = Instant::now();
    let mut publish = PubStats::default();
    if failure.is_none() {
        let publishers = scenario.publisher_count();
        let pad = Arc::new(payload::padding(scenario.payload_bytes));
        let mut handles = Vec::new();
        for p in 0..publishers {
            let owned: Vec<u32> = (0..scenario.channels as u32)
                .filter(|c| scenario.shared_channels || *c as usize % publishers == p)
                .collect();
            let share = if scenario.shared_channels {
                1.0 / publishers as f64
            } else {
                owned.len() as f64 / scenario.channels as f64
            };
            let plan = Plan {
                channels: Arc::clone(&channels),
                owned,
                publisher: if scenario.shared_channels {
                    p as u32
                } else {
                    0
                },
                events_per_channel: scenario.events_of_publisher(p),
                rate: scenario.rate.map(|r| r * share),
                batch: scenario.batch,
                pad: Arc::clone(&pad),
            };
            handles.push(tokio::spawn(publisher::run(Arc::clone(&ep), plan)));
        }
        for h in handles {
            match h.await {
                Ok(Ok(stats)) => publish.merge(&stats),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(e) => failure = failure.or(Some(format!("publisher panicked: {e}"))),
            }
        }
    }

    // 5. Drain: until every subscriber is complete, or no progress for `stall_s`.
    if failure.is_none() {
        let mut last = shared.delivered.load(Ordering::Relaxed);
        let mut last_change = Instant::now();
        loop {
            if shared.complete.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) >= n
            {
                break;
            }
            let now = shared.delivered.load(Ordering::Relaxed);
            if now != last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed().as_secs_f64() > scenario.stall_s {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Linger briefly so that duplicates arriving after completion are seen.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let server_cpu = crate::rss::server_cpu_s(&roots) - cpu_before;
    let client_cpu = client_cpu_s() - client_cpu_before;
    let rows = match (ep.stats, rows_before) {
        (Some(stats), Some(before)) if failure.is_none() => Some(
            match (
                before,
                crate::peers::edgestream::rows_written(stats, &channels).await,
            ) {
                (Ok(before), Ok(after)) if after >= before => Ok(after - before),
                // The counts start with each object: one restarted meanwhile.
                (Ok(_), Ok(_)) => Err("a channel object restarted while measured".to_owned()),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
        ),
        _ => None,
    };
    let channel_object_ms = profiler.stop().await;
    let _ = stop_tx.send(true);
    let mut results: Vec<SubResult> = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(r) = t.await {
            results.push(r);
        }
    }
    if let Err(e) = target.alive() {
        failure = failure.or(Some(e));
    }
    let usage = sampler.finish().await;

    // 6. Verdict.
    let mut outcome = Outcome::default();
    let mut with_loss = 0;
    let mut incomplete = 0;
    let mut connect_ms: Vec<f64> = Vec::with_capacity(n);
    for r in &results {
        outcome.add(&r.outcome);
        if r.outcome.lost > 0 {
            with_loss += 1;
        }
        if r.outcome.received < r.outcome.expected {
            incomplete += 1;
        }
        if let Some(ms) = r.connect_ms {
            connect_ms.push(ms);
        }
    }
    let connect = ConnectStats::new(
        n,
        shared.failed.load(Ordering::Relaxed),
        connect_total,
        connect_ms,
    );
    let first_send_us = publish
        .first_send
        .map(|t| (t - start).as_micros() as u64)
        .unwrap_or(0);
    let last_delivery_us = shared.last_delivery_us.load(Ordering::Relaxed);
    let duration_s = last_delivery_us.saturating_sub(first_send_us) as f64 / 1e6;
    let delivery = Delivery {
        outcome,
        subscribers_with_loss: with_loss,
        subscribers_incomplete: incomplete,
        per_s: if duration_s > 0.0 {
            outcome.received as f64 / duration_s
        } else {
            0.0
        },
        duration_s,
        warmup_rounds,
    };
    if failure.is_none() && !outcome.clean() {
        failure = Some(format!(
            "delivery check failed: {} of {} events lost ({} subscribers short), {} duplicates, {} out of order, {} foreign, {} id gaps",
            outcome.lost, outcome.expected, with_loss, outcome.duplicates, outcome.out_of_order, outcome.foreign,
            outcome.relay_seq_breaks
        ));
    }
    let rows_written_per_event = match &rows {
        Some(Ok(rows)) if publish.events > 0 => Some(*rows as f64 / publish.events as f64),
        _ => None,
    };
    let error_count = shared.error_count.load(Ordering::Relaxed);
    if failure.is_none() && error_count > 0 {
        failure = Some(format!("{error_count} stream errors"));
    }
    let skip = (publish_start - start).as_millis() as usize / BUCKET_MS as usize;
    let series: Vec<u64> = shared.recorder.series().into_iter().skip(skip).collect();
    let errors = shared.errors.lock().expect("errors lock").clone();
    RunResult {
        peer: ep.label(),
        scenario: scenario.clone(),
        ok: failure.is_none(),
        failure,
        server_start_ms: target.started_in_ms,
        connect,
        publish_per_s: if publish.duration_s > 0.0 {
            publish.events as f64 / publish.duration_s
        } else {
            0.0
        },
        publish,
        delivery,
        latency: shared.recorder.summary(),
        series,
        series_bucket_ms: BUCKET_MS,
        usage,
        server_cpu_s: server_cpu,
        client_cpu_s: client_cpu,
        connect_cpu_us_per_stream: if connected > 0 {
            connect_cpu_s * 1e6 / connected as f64
        } else {
            0.0
        },
        server_cpu_us_per_delivery: if outcome.received > 0 {
            server_cpu * 1e6 / outcome.received as f64
        } else {
            0.0
        },
        channel_object_us_per_delivery: channel_object_ms
            .filter(|_| outcome.received > 0)
            .map(|ms| ms * 1e3 / outcome.received as f64),
        idle,
        rows_written: rows.as_ref().and_then(|r| r.as_ref().ok().copied()),
        rows_written_per_event,
        rows_unmeasured: rows.and_then(Result::err),
        errors,
        error_count,
        load_start,
        load_end: load_1m(),
    }
}
