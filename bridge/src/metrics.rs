//! Prometheus counters, served as text on an optional local port.
//!
//! The bridge is a pipe: what matters is what went in (received), what came
//! out (forwarded), what was tried again (retried, throttled), what could
//! never be sent (rejected, dead-lettered, dropped) and how far behind it
//! runs (lag, queued). With those an operator can tell "the edge is down"
//! (retried climbs, forwarded stalls) from "the edge sheds load" (throttled
//! climbs) from "an origin sends garbage" (rejected climbs).
//!
//! The endpoint is a few lines over a TCP listener rather than a web
//! framework: it answers a scraper's GET /metrics and a liveness probe's
//! GET /healthz on a private address, and the bridge already has enough
//! moving parts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    PubSub,
    Streams,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::PubSub => "pubsub",
            Source::Streams => "streams",
        }
    }
}

#[derive(Default)]
struct PerSource {
    received: AtomicU64,
    forwarded: AtomicU64,
    duplicates: AtomicU64,
    reconnects: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    pubsub: PerSource,
    streams: PerSource,
    retried: AtomicU64,
    throttled: AtomicU64,
    claimed: AtomicU64,
    requests_accepted: AtomicU64,
    requests_failed: AtomicU64,
    requests_rejected: AtomicU64,
    dead_lettered: AtomicU64,
    queued: AtomicI64,
    /// Milliseconds, as a float's bits would need more care than this is worth.
    lag_ms: AtomicU64,
    /// (source, reason) -> count, for events that can never be delivered.
    rejected: Mutex<BTreeMap<(Source, String), u64>>,
    /// reason -> count, for events given up without a verdict from the edge.
    dropped: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    fn of(&self, source: Source) -> &PerSource {
        match source {
            Source::PubSub => &self.pubsub,
            Source::Streams => &self.streams,
        }
    }

    pub fn received(&self, source: Source) {
        self.of(source).received.fetch_add(1, Relaxed);
    }

    /// The edge answered 202 for `new` new events and `duplicates` repeats.
    pub fn forwarded(&self, source: Source, new: u64, duplicates: u64) {
        self.of(source).forwarded.fetch_add(new, Relaxed);
        self.of(source).duplicates.fetch_add(duplicates, Relaxed);
    }

    pub fn reconnected(&self, source: Source) {
        self.of(source).reconnects.fetch_add(1, Relaxed);
    }

    pub fn rejected(&self, source: Source, reason: &str, n: u64) {
        let mut map = self.rejected.lock().unwrap();
        *map.entry((source, reason.to_owned())).or_default() += n;
    }

    pub fn dropped(&self, reason: &'static str, n: u64) {
        *self.dropped.lock().unwrap().entry(reason).or_default() += n;
    }

    pub fn dead_lettered(&self, n: u64) {
        self.dead_lettered.fetch_add(n, Relaxed);
    }

    pub fn retried(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// The edge answered 429 or 503.
    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }

    /// Streams entries taken over from another consumer.
    pub fn claimed(&self, n: u64) {
        self.claimed.fetch_add(n, Relaxed);
    }

    pub fn request(&self, outcome: RequestOutcome) {
        match outcome {
            RequestOutcome::Accepted => &self.requests_accepted,
            RequestOutcome::Failed => &self.requests_failed,
            RequestOutcome::Rejected => &self.requests_rejected,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn queued(&self, delta: i64) {
        self.queued.fetch_add(delta, Relaxed);
    }

    pub fn lag(&self, lag: std::time::Duration) {
        self.lag_ms.store(lag.as_millis() as u64, Relaxed);
    }

    /// One line for the log at exit: what went in and what came out.
    pub fn summary(&self) -> String {
        let rejected: u64 = self.rejected.lock().unwrap().values().sum();
        let dropped: u64 = self.dropped.lock().unwrap().values().sum();
        let sum = |f: fn(&PerSource) -> &AtomicU64| {
            f(&self.pubsub).load(Relaxed) + f(&self.streams).load(Relaxed)
        };
        format!(
            "received={} forwarded={} duplicates={} rejected={rejected} dropped={dropped} retried={}",
            sum(|p| &p.received),
            sum(|p| &p.forwarded),
            sum(|p| &p.duplicates),
            self.retried.load(Relaxed),
        )
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let sources = [Source::PubSub, Source::Streams];
        let mut family = |name: &str, kind: &str, help: &str, series: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in series {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let per = |f: fn(&PerSource) -> &AtomicU64| -> Vec<(String, f64)> {
            sources
                .iter()
                .map(|s| {
                    (
                        format!("{{source=\"{}\"}}", s.label()),
                        f(self.of(*s)).load(Relaxed) as f64,
                    )
                })
                .collect()
        };
        family(
            "edgestream_bridge_received_total",
            "counter",
            "Messages read from Valkey, well-formed or not.",
            per(|p| &p.received),
        );
        family(
            "edgestream_bridge_forwarded_total",
            "counter",
            "Events the edge accepted (202) and delivered.",
            per(|p| &p.forwarded),
        );
        family(
            "edgestream_bridge_duplicates_total",
            "counter",
            "Events the edge had already (same idempotency key) and did not deliver again.",
            per(|p| &p.duplicates),
        );
        let rejected: Vec<(String, f64)> = self
            .rejected
            .lock()
            .unwrap()
            .iter()
            .map(|((s, reason), n)| {
                (
                    format!("{{source=\"{}\",reason=\"{}\"}}", s.label(), escape(reason)),
                    *n as f64,
                )
            })
            .collect();
        family(
            "edgestream_bridge_rejected_total",
            "counter",
            "Messages that can never be delivered (malformed, another tenant's, refused by the edge with a 4xx, or out of retries), skipped.",
            rejected,
        );
        family(
            "edgestream_bridge_retried_total",
            "counter",
            "Publish requests sent again after a network error, a timeout, a 429, a 503 or another 5xx.",
            vec![(String::new(), self.retried.load(Relaxed) as f64)],
        );
        family(
            "edgestream_bridge_throttled_total",
            "counter",
            "Publish requests the edge answered 429 or 503 (waited for at least Retry-After).",
            vec![(String::new(), self.throttled.load(Relaxed) as f64)],
        );
        family(
            "edgestream_bridge_claimed_total",
            "counter",
            "Streams entries claimed (XAUTOCLAIM) from a consumer that left them pending.",
            vec![(String::new(), self.claimed.load(Relaxed) as f64)],
        );
        family(
            "edgestream_bridge_publish_requests_total",
            "counter",
            "Publish requests by outcome.",
            [
                ("accepted", &self.requests_accepted),
                ("failed", &self.requests_failed),
                ("rejected", &self.requests_rejected),
            ]
            .iter()
            .map(|(o, c)| (format!("{{outcome=\"{o}\"}}"), c.load(Relaxed) as f64))
            .collect(),
        );
        family(
            "edgestream_bridge_dead_lettered_total",
            "counter",
            "Streams entries copied to the dead-letter stream.",
            vec![(String::new(), self.dead_lettered.load(Relaxed) as f64)],
        );
        let dropped: Vec<(String, f64)> = self
            .dropped
            .lock()
            .unwrap()
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n as f64))
            .collect();
        family(
            "edgestream_bridge_dropped_total",
            "counter",
            "Pub/Sub events given up without the edge's answer (queue full, or shutdown timeout).",
            dropped,
        );
        family(
            "edgestream_bridge_valkey_reconnects_total",
            "counter",
            "Connections to Valkey opened again after one failed.",
            per(|p| &p.reconnects),
        );
        family(
            "edgestream_bridge_queued_events",
            "gauge",
            "Events read from Valkey and not yet answered by the edge.",
            vec![(String::new(), self.queued.load(Relaxed).max(0) as f64)],
        );
        family(
            "edgestream_bridge_lag_seconds",
            "gauge",
            "Age of the oldest event of the last accepted batch (Streams: since XADD; Pub/Sub: since received).",
            vec![(String::new(), self.lag_ms.load(Relaxed) as f64 / 1000.0)],
        );
        out
    }
}

#[derive(Clone, Copy)]
pub enum RequestOutcome {
    Accepted,
    Failed,
    Rejected,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` and `GET /healthz` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut head = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                        let n = socket.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
                let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                let mut parts = line.split(|&b| b == b' ');
                let (method, path) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                let path = path.split(|&b| b == b'?').next().unwrap_or_default();
                let (status, body) = match (method, path) {
                    (b"GET", b"/metrics") => ("200 OK", metrics.render()),
                    (b"GET", b"/healthz") => ("200 OK", "ok\n".to_owned()),
                    (b"GET", _) => ("404 Not Found", "not found: try /metrics\n".to_owned()),
                    _ => ("405 Method Not Allowed", "GET only\n".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(bound)
}

/// The client side of `/healthz`, for `edgestream-bridge probe`: true when
/// a bridge serves it at `addr` within a few seconds. Blocking and without
/// the async runtime, since it is all the process does.
pub fn probe(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(3);
    let Ok(mut socket) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(timeout));
    let _ = socket.set_write_timeout(Some(timeout));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if socket.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match socket.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    head[..read].starts_with(b"HTTP/1.1 200 ")
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
