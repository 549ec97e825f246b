//! A monthly Cloudflare bill for mostly-idle streams, for edgestream's design
//! (the Worker holds each SSE response, channel objects only hold
//! hibernatable WebSockets) against a Durable Object that serves SSE itself
//! (it can never hibernate while a stream is open, so it bills wall time).
//!
//! Prices are the published list prices of Workers Paid and Durable Objects
//! (compute and SQLite storage) when this was written; they are parameters
//! here, not facts the benchmark measured. What the benchmark does measure
//! (CPU per delivery and per stream set-up in workerd, hibernation itself) is
//! taken from the run when present; otherwise stated assumptions are used.
//! Rows written per event are counted by the channel objects themselves in
//! every edgestream scenario; the bill takes the highest of those figures.

use serde::Serialize;
use serde_json::Value;

/// Workers Paid and Durable Objects list prices (USD).
#[derive(Clone, Debug, Serialize)]
pub struct Prices {
    pub base_per_month: f64,
    pub worker_requests_included: f64,
    pub worker_per_million_requests: f64,
    pub worker_cpu_ms_included: f64,
    pub worker_per_million_cpu_ms: f64,
    pub do_requests_included: f64,
    pub do_per_million_requests: f64,
    pub do_gb_s_included: f64,
    pub do_per_million_gb_s: f64,
    /// Memory billed per active object, GB.
    pub do_gb_per_object: f64,
    pub rows_written_included: f64,
    pub per_million_rows_written: f64,
}

pub const PRICES: Prices = Prices {
    base_per_month: 5.0,
    worker_requests_included: 10e6,
    worker_per_million_requests: 0.30,
    worker_cpu_ms_included: 30e6,
    worker_per_million_cpu_ms: 0.02,
    do_requests_included: 1e6,
    do_per_million_requests: 0.15,
    do_gb_s_included: 400_000.0,
    do_per_million_gb_s: 12.50,
    do_gb_per_object: 0.128,
    rows_written_included: 50e6,
    per_million_rows_written: 1.00,
};

#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub streams: f64,
    pub channels: f64,
    /// Events published per channel per hour ("mostly idle").
    pub events_per_channel_per_hour: f64,
    /// Streams reconnect this often (token lifetime), per hour.
    pub reconnects_per_stream_per_hour: f64,
    pub hours_per_month: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Inputs {
    /// workerd CPU per delivered event, µs (measured: fan-out scenario).
    pub cpu_us_per_delivery: f64,
    /// workerd CPU per stream set-up, µs (measured: idle scenario).
    pub cpu_us_per_stream_open: f64,
    /// Wall time a channel object is busy per publish, ms (assumed).
    pub do_ms_per_publish: f64,
    /// Wall time a channel object is busy per attach, ms (assumed).
    pub do_ms_per_attach: f64,
    /// SQLite rows written per published event (measured: the highest
    /// figure of the scenarios).
    pub rows_written_per_event: f64,
    pub source: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Bill {
    pub worker_requests: f64,
    pub worker_cpu_ms: f64,
    pub do_requests: f64,
    pub do_gb_s: f64,
    pub rows_written: f64,
    pub usd_workers: f64,
    pub usd_do_requests: f64,
    pub usd_do_duration: f64,
    pub usd_rows: f64,
    pub usd_total: f64,
}

fn over(used: f64, included: f64, per_million: f64) -> f64 {
    (used - included).max(0.0) / 1e6 * per_million
}

fn bill(w: &Workload, i: &Inputs, p: &Prices, do_holds_sse: bool) -> Bill {
    let opens = w.streams * w.reconnects_per_stream_per_hour * w.hours_per_month;
    let events = w.channels * w.events_per_channel_per_hour * w.hours_per_month;
    let deliveries = events * (w.streams / w.channels);
    let worker_requests = opens + events;
    let worker_cpu_ms =
        (deliveries * i.cpu_us_per_delivery + opens * i.cpu_us_per_stream_open) / 1000.0;
    // Each stream attaches to its channel object (one request), each publish
    // is one request; alarms (at most one a day per channel) are negligible.
    let do_requests = opens + events + w.channels * w.hours_per_month / 24.0;
    let seconds = w.hours_per_month * 3600.0;
    let do_gb_s = if do_holds_sse {
        // An object with an SSE response in flight never hibernates.
        w.channels * seconds * p.do_gb_per_object
    } else {
        (events * i.do_ms_per_publish + opens * i.do_ms_per_attach) / 1000.0 * p.do_gb_per_object
    };
    let rows_written = events * i.rows_written_per_event;
    let usd_workers = p.base_per_month
        + over(
            worker_requests,
            p.worker_requests_included,
            p.worker_per_million_requests,
        )
        + over(
            worker_cpu_ms,
            p.worker_cpu_ms_included,
            p.worker_per_million_cpu_ms,
        );
    let usd_do_requests = over(
        do_requests,
        p.do_requests_included,
        p.do_per_million_requests,
    );
    let usd_do_duration = over(do_gb_s, p.do_gb_s_included, p.do_per_million_gb_s);
    let usd_rows = over(
        rows_written,
        p.rows_written_included,
        p.per_million_rows_written,
    );
    Bill {
        worker_requests,
        worker_cpu_ms,
        do_requests,
        do_gb_s,
        rows_written,
        usd_workers,
        usd_do_requests,
        usd_do_duration,
        usd_rows,
        usd_total: usd_workers + usd_do_requests + usd_do_duration + usd_rows,
    }
}

/// Rows per event when no run counted them: an event's ring row, its copy
/// into the current state and its eventual delete, the most one event writes.
const ASSUMED_ROWS_PER_EVENT: f64 = 3.0;

/// The highest rows-per-event figure of edgestream's successful runs, with
/// its scenario.
fn most_rows_per_event(runs: &[Value]) -> Option<(f64, String)> {
    runs.iter()
        .filter(|r| {
            r.pointer("/peer").and_then(Value::as_str) == Some("edgestream")
                && r.pointer("/ok").and_then(Value::as_bool) == Some(true)
        })
        .filter_map(|r| {
            Some((
                r.pointer("/rows_written_per_event")?.as_f64()?,
                r.pointer("/scenario/name")?.as_str()?.to_owned(),
            ))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The estimate, with CPU figures from `runs` when they are there.
pub fn estimate(runs: &[Value]) -> Value {
    let find = |scenario: &str, pointer: &str| {
        runs.iter()
            .find(|r| {
                r.pointer("/peer").and_then(Value::as_str) == Some("edgestream")
                    && r.pointer("/scenario/name").and_then(Value::as_str) == Some(scenario)
                    && r.pointer("/ok").and_then(Value::as_bool) == Some(true)
            })
            .and_then(|r| r.pointer(pointer).and_then(Value::as_f64))
            .filter(|v| *v > 0.0)
    };
    let measured_delivery = find("fanout", "/server_cpu_us_per_delivery");
    let measured_open = find("idle", "/connect_cpu_us_per_stream");
    let measured_rows = most_rows_per_event(runs);
    let rows_source = match &measured_rows {
        Some((rows, scenario)) => format!(
            "{rows:.2} SQLite rows written per event, counted by the channel objects (the highest figure of the scenarios, in `{scenario}`)"
        ),
        None => format!("{ASSUMED_ROWS_PER_EVENT} SQLite rows written per event, assumed (not measured in this run)"),
    };
    let inputs = Inputs {
        cpu_us_per_delivery: measured_delivery.unwrap_or(50.0),
        cpu_us_per_stream_open: measured_open.unwrap_or(2000.0),
        do_ms_per_publish: 5.0,
        do_ms_per_attach: 5.0,
        rows_written_per_event: measured_rows.map_or(ASSUMED_ROWS_PER_EVENT, |(rows, _)| rows),
        source: format!(
            "CPU per delivery {}, CPU per stream set-up {}; object busy time per publish and attach assumed 5 ms; {rows_source}",
            if measured_delivery.is_some() { "measured in workerd (fan-out run)" } else { "assumed" },
            if measured_open.is_some() { "measured in workerd (idle run)" } else { "assumed" }
        ),
    };
    let mut cases = Vec::new();
    for (channels, events_per_hour) in [(10_000.0, 12.0), (1_000.0, 12.0), (10_000.0, 60.0)] {
        let w = Workload {
            streams: 10_000.0,
            channels,
            events_per_channel_per_hour: events_per_hour,
            reconnects_per_stream_per_hour: 1.0,
            hours_per_month: 720.0,
        };
        let edge = bill(&w, &inputs, &PRICES, false);
        let holder = bill(&w, &inputs, &PRICES, true);
        cases
            .push(serde_json::json!({ "workload": w, "edgestream": edge, "do_holds_sse": holder }));
    }
    serde_json::json!({ "prices": PRICES, "inputs": inputs, "cases": cases })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_that_holds_streams_bills_wall_time() {
        let w = Workload {
            streams: 10_000.0,
            channels: 10_000.0,
            events_per_channel_per_hour: 12.0,
            reconnects_per_stream_per_hour: 1.0,
            hours_per_month: 720.0,
        };
        let i = Inputs {
            cpu_us_per_delivery: 50.0,
            cpu_us_per_stream_open: 2000.0,
            do_ms_per_publish: 5.0,
            do_ms_per_attach: 5.0,
            rows_written_per_event: 3.0,
            source: String::new(),
        };
        let holder = bill(&w, &i, &PRICES, true);
        // 10,000 objects × 2,592,000 s × 0.128 GB = 3.32e9 GB-s.
        assert!((holder.do_gb_s - 3.317_76e9).abs() < 1e6);
        let edge = bill(&w, &i, &PRICES, false);
        assert!(edge.usd_do_duration < 1.0 && holder.usd_do_duration > 40_000.0);
    }

    #[test]
    fn rows_per_event_come_from_the_runs() {
        let run = |peer: &str, scenario: &str, ok: bool, rows: f64| {
            serde_json::json!({
                "peer": peer, "ok": ok, "rows_written_per_event": rows,
                "scenario": { "name": scenario },
            })
        };
        let runs = vec![
            run("edgestream", "fanout", true, 1.0),
            run("edgestream", "burst", true, 1.25),
            run("edgestream", "idle", false, 9.0),
            run("nchan", "fanout", true, 7.0),
        ];
        let measured = estimate(&runs);
        assert_eq!(measured["inputs"]["rows_written_per_event"], 1.25);
        assert!(measured["inputs"]["source"]
            .as_str()
            .is_some_and(|s| s.contains("in `burst`")));
        let assumed = estimate(&[]);
        assert_eq!(assumed["inputs"]["rows_written_per_event"], 3.0);
    }
}
