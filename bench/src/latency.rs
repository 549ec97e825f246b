//! Latency and throughput bookkeeping shared by all subscribers.
//!
//! Subscribers record into a small local buffer and merge it into one shared
//! histogram now and then, so thousands of tasks neither hold a histogram each
//! (hundreds of MB at 5,000 streams) nor contend on a lock per event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency tracked (60 s); anything above is clamped to it.
const MAX_US: u64 = 60_000_000;
/// Width of the delivery-rate time series buckets.
pub const BUCKET_MS: u64 = 100;
/// Buckets kept: 20 minutes, longer than any run.
const BUCKETS: usize = 12_000;

pub struct Recorder {
    hist: Mutex<Histogram<u64>>,
    deliveries: Vec<AtomicU64>,
    start: Instant,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// (percentile, ms) pairs for plots.
    pub cdf: Vec<(f64, f64)>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Recorder {
            hist: Mutex::new(
                Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
            ),
            deliveries: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            start,
        }
    }

    pub fn local(self: &Arc<Self>) -> Local {
        Local {
            recorder: Arc::clone(self),
            latencies: Vec::with_capacity(LOCAL_CAPACITY),
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let hist = self.hist.lock().expect("histogram lock");
        let ms = |us: u64| us as f64 / 1000.0;
        let count = hist.len();
        if count == 0 {
            return LatencySummary::default();
        }
        let mut cdf = Vec::new();
        for p in CDF_POINTS {
            cdf.push((p, ms(hist.value_at_quantile(p / 100.0))));
        }
        LatencySummary {
            count,
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p95_ms: ms(hist.value_at_quantile(0.95)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            p999_ms: ms(hist.value_at_quantile(0.999)),
            max_ms: ms(hist.max()),
            mean_ms: hist.mean() / 1000.0,
            cdf,
        }
    }

    /// Deliveries per `BUCKET_MS` since the start, trailing zeros removed.
    pub fn series(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .deliveries
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        while v.last() == Some(&0) {
            v.pop();
        }
        v
    }
}

const LOCAL_CAPACITY: usize = 256;
const CDF_POINTS: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99,
    100.0,
];

/// A subscriber's buffer; flushed when full and when dropped.
pub struct Local {
    recorder: Arc<Recorder>,
    latencies: Vec<u64>,
}

impl Local {
    pub fn record(&mut self, latency_us: u64) {
        self.latencies.push(latency_us.clamp(1, MAX_US));
        let bucket = (self.recorder.start.elapsed().as_millis() as u64 / BUCKET_MS) as usize;
        if let Some(slot) = self.recorder.deliveries.get(bucket) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        if self.latencies.len() == LOCAL_CAPACITY {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.latencies.is_empty() {
            return;
        }
        let mut hist = self.recorder.hist.lock().expect("histogram lock");
        for &v in &self.latencies {
            let _ = hist.record(v);
        }
        self.latencies.clear();
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.flush();
    }
}
