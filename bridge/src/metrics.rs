//! Prometheus counters, served as text on an optional local port.
//!
//! The bridge is a pipe: what matters is what went in (received), what came
//! out (forwarded), what was tried again (retried), what could never be sent
//! (rejected, dead-lettered, dropped) and how far behind it runs (lag,
//! queued). With those an operator can tell "the edge is down" (retried
//! climbs, forwarded stalls) from "an origin sends garbage" (rejected climbs).
//!
//! The endpoint is a few lines over a TCP listener rather than a web
//! framework: it answers one GET for a scraper on a private address, and
//! the bridge already has enough moving parts.

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
            "Messages that can never be delivered (malformed, or refused by the edge with a 4xx), skipped.",
            rejected,
        );
        family(
            "edgestream_bridge_retried_total",
            "counter",
            "Publish requests sent again after a network error, a timeout, a 429 or a 5xx.",
            vec![(String::new(), self.retried.load(Relaxed) as f64)],
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

/// Serves `GET /metrics` until the process ends.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_labels() {
        let m = Metrics::new();
        m.received(Source::PubSub);
        m.received(Source::PubSub);
        m.forwarded(Source::Streams, 3, 1);
        m.rejected(Source::PubSub, "invalid_channel", 2);
        m.rejected(Source::PubSub, "we\"ird", 1);
        m.dropped("queue_full", 4);
        m.retried();
        m.queued(5);
        m.queued(-2);
        m.lag(std::time::Duration::from_millis(1500));
        assert_eq!(
            m.summary(),
            "received=2 forwarded=3 duplicates=1 rejected=3 dropped=4 retried=1"
        );
        let text = m.render();
        for line in [
            "edgestream_bridge_received_total{source=\"pubsub\"} 2",
            "edgestream_bridge_received_total{source=\"streams\"} 0",
            "edgestream_bridge_forwarded_total{source=\"streams\"} 3",
            "edgestream_bridge_duplicates_total{source=\"streams\"} 1",
            "edgestream_bridge_rejected_total{source=\"pubsub\",reason=\"invalid_channel\"} 2",
            "edgestream_bridge_rejected_total{source=\"pubsub\",reason=\"we\\\"ird\"} 1",
            "edgestream_bridge_dropped_total{reason=\"queue_full\"} 4",
            "edgestream_bridge_retried_total 1",
            "edgestream_bridge_queued_events 3",
            "edgestream_bridge_lag_seconds 1.5",
            "# TYPE edgestream_bridge_retried_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let m = Metrics::new();
        m.received(Source::Streams);
        let addr = serve("127.0.0.1:0".parse().unwrap(), m).await.unwrap();
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).await.unwrap();
            text
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.contains("edgestream_bridge_received_total{source=\"streams\"} 1"));
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
    }
}
