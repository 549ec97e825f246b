//! One SSE subscriber: opens its stream, reads every event, checks it
//! (exactly once, in order) and records its latency.
//!
//! Subscribers report progress through shared counters rather than channels,
//! so the scenario can wait for "all connected", "all warmed up" and "all
//! complete" without a message per event.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tokio::sync::{watch, Notify, Semaphore};

use crate::http;
use crate::latency::Recorder;
use crate::payload::{self, Parsed};
use crate::peers::Endpoint;
use crate::sse;
use crate::verify::{Outcome, StreamCheck};

/// Errors kept verbatim per run; the rest are only counted.
const MAX_ERRORS_KEPT: usize = 20;

pub struct Shared {
    pub recorder: Arc<Recorder>,
    pub connected: AtomicUsize,
    pub warm: AtomicUsize,
    pub complete: AtomicUsize,
    pub failed: AtomicUsize,
    pub delivered: AtomicU64,
    /// Microseconds since `recorder`'s start of the latest measured delivery.
    pub last_delivery_us: AtomicU64,
    pub progress: Notify,
    pub errors: Mutex<Vec<String>>,
    pub error_count: AtomicU64,
    pub start: Instant,
}

impl Shared {
    pub fn new(start: Instant) -> Arc<Shared> {
        Arc::new(Shared {
            recorder: Arc::new(Recorder::new(start)),
            connected: AtomicUsize::new(0),
            warm: AtomicUsize::new(0),
            complete: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            delivered: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            progress: Notify::new(),
            errors: Mutex::new(Vec::new()),
            error_count: AtomicU64::new(0),
            start,
        })
    }

    pub fn error(&self, message: String) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().expect("errors lock");
        if errors.len() < MAX_ERRORS_KEPT {
            errors.push(message);
        }
    }
}

pub struct Spec {
    pub index: usize,
    pub channel: u32,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Measured events this subscriber must receive from each publisher of
    /// its channel (sequence 1..=expected[p] from publisher p).
    pub expected: Vec<u64>,
}

pub struct SubResult {
    pub outcome: Outcome,
    /// Time from starting to connect to the first bytes of the stream.
    pub connect_ms: Option<f64>,
    pub failed: bool,
}

/// Runs until `stop` turns true, the stream ends, or it fails.
pub async fn run(
    spec: Spec,
    ep: Arc<Endpoint>,
    shared: Arc<Shared>,
    connect_slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> SubResult {
    let mut checker = StreamCheck::new(&spec.expected);
    let mut result = SubResult {
        outcome: Outcome::default(),
        connect_ms: None,
        failed: false,
    };
    let fail = |shared: &Shared, what: String| {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        shared.error(format!("subscriber {}: {what}", spec.index));
        shared.progress.notify_waiters();
    };

    let permit = connect_slots.acquire_owned().await;
    let begun = Instant::now();
    let opened = async {
        let mut sender = http::connect(ep.addr, Duration::from_secs(10)).await?;
        let response = http::get_stream(&mut sender, ep.addr, &spec.path, &spec.headers).await?;
        Ok::<_, http::Error>((sender, response))
    };
    let (_sender, response) = match tokio::time::timeout(Duration::from_secs(30), opened).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            fail(&shared, format!("connect: {}", http::describe(e.as_ref())));
            result.failed = true;
            result.outcome = checker.outcome();
            return result;
        }
        Err(_) => {
            fail(&shared, "connect: timed out".to_owned());
            result.failed = true;
            result.outcome = checker.outcome();
            return result;
        }
    };
    if response.status() != 200 {
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        fail(
            &shared,
            format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ),
        );
        result.failed = true;
        result.outcome = checker.outcome();
        return result;
    }
    let mut body = response.into_body();
    let mut parser = sse::Parser::default();
    let mut local = shared.recorder.local();
    let mut connected = false;
    let mut warm = false;
    let mut complete = false;
    let mut permit = permit.ok();
    let mut stream_errors: Vec<String> = Vec::new();
    let ended = loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = stop.changed() => break None,
        };
        let data = match frame {
            None => break Some("the stream ended".to_owned()),
            Some(Err(e)) => break Some(format!("read: {}", http::describe(&e))),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        if !connected {
            connected = true;
            result.connect_ms = Some(begun.elapsed().as_secs_f64() * 1000.0);
            permit.take();
            shared.connected.fetch_add(1, Ordering::Relaxed);
            shared.progress.notify_waiters();
        }
        let mut ticks = 0u64;
        parser.feed(&data, |event| {
            if event.event == b"stream-error" {
                stream_errors.push(String::from_utf8_lossy(event.data).into_owned());
                return;
            }
            match payload::parse(event.data) {
                Parsed::Tick {
                    channel,
                    publisher,
                    seq,
                    ts_us,
                } => {
                    if channel != spec.channel {
                        checker.foreign += 1;
                        return;
                    }
                    checker.record(publisher, seq);
                    local.record(payload::now_us().saturating_sub(ts_us));
                    ticks += 1;
                }
                Parsed::Warmup { channel } => {
                    if channel == spec.channel && !warm {
                        warm = true;
                        shared.warm.fetch_add(1, Ordering::Relaxed);
                        shared.progress.notify_waiters();
                    }
                }
                Parsed::Other => return,
            }
            if let Some(seq) = event.id.and_then(|id| ep.relay_seq(id)) {
                checker.record_relay_seq(seq);
            }
        });
        if ticks > 0 {
            shared.delivered.fetch_add(ticks, Ordering::Relaxed);
            let at = shared.start.elapsed().as_micros() as u64;
            shared.last_delivery_us.fetch_max(at, Ordering::Relaxed);
            if !complete && checker.complete() {
                complete = true;
                shared.complete.fetch_add(1, Ordering::Relaxed);
                shared.progress.notify_waiters();
            }
        }
    };
    for e in stream_errors {
        shared.error(format!("subscriber {}: stream-error {e}", spec.index));
    }
    if let Some(why) = ended {
        if !connected {
            result.failed = true;
        }
        fail(&shared, why);
    }
    drop(local);
    result.outcome = checker.outcome();
    result
}
