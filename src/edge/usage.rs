//! Usage data points (`edgestream_core::usage`) written to the optional
//! Analytics Engine dataset bound as `USAGE`. Without the binding nothing is
//! written and nothing else changes.
//!
//! A write is not awaited and its failure changes no answer: usage is
//! counted next to the relay's work, never in its way.

use std::cell::RefCell;
use std::time::Duration;

use edgestream_core::problem::Problem;
use edgestream_core::usage::{self, DataPoint, Delivered, Metric, StreamMeter};
use futures_util::stream::{self, Stream};
use worker::{AnalyticsEngineDataPointBuilder, AnalyticsEngineDataset, Delay, Env};

use super::log;

/// The binding's name in wrangler.toml.
const BINDING: &str = "USAGE";

/// One request's dataset, and the tenant its credential acts for once known.
pub struct Usage {
    dataset: Option<AnalyticsEngineDataset>,
    tenant: RefCell<Option<String>>,
}

impl Usage {
    pub fn new(env: &Env) -> Self {
        Usage {
            dataset: env.analytics_engine(BINDING).ok(),
            tenant: RefCell::new(None),
        }
    }

    /// The request's verified credential acts for `tenant`: a refusal from
    /// here on is that tenant's. Before this, a refusal has no tenant: an
    /// unverified claim must not put points in a tenant's name.
    pub fn acts_for(&self, tenant: &str) {
        if self.dataset.is_some() {
            *self.tenant.borrow_mut() = Some(tenant.to_owned());
        }
    }

    /// The request was answered with `problem`.
    pub fn refusal(&self, problem: &Problem, route: &str) {
        let metric = Metric::Refusal {
            code: problem.code,
            status: problem.status,
            route,
        };
        self.write(&metric, self.tenant.borrow().as_deref());
    }

    pub fn write(&self, metric: &Metric, tenant: Option<&str>) {
        if let Some(dataset) = &self.dataset {
            write(dataset, &metric.point(tenant));
        }
    }

    /// A stream of `tenant` opens now (its open point is written).
    pub fn stream(&self, tenant: &str, channels: usize, every: Duration) -> StreamUsage {
        let (meter, open) = StreamMeter::open(channels, now_ms());
        self.write(&open, Some(tenant));
        StreamUsage {
            dataset: self.dataset.clone(),
            tenant: tenant.to_owned(),
            meter,
            every,
        }
    }
}

/// The usage of one open stream, written by its pump.
pub struct StreamUsage {
    dataset: Option<AnalyticsEngineDataset>,
    tenant: String,
    meter: StreamMeter,
    every: Duration,
}

impl StreamUsage {
    /// When the stream writes its progress points; none without the binding.
    pub fn ticks(&self) -> Option<impl Stream<Item = ()>> {
        let every = self.every;
        self.dataset.as_ref()?;
        Some(stream::unfold(0, move |written| async move {
            Delay::from(usage::progress_wait(every, written)?).await;
            Some(((), written + 1))
        }))
    }

    /// The stream has delivered `total` so far.
    pub fn progress(&mut self, total: Delivered) {
        if let Some(dataset) = &self.dataset {
            if let Some(metric) = self.meter.progress(now_ms(), total) {
                write(dataset, &metric.point(Some(&self.tenant)));
            }
        }
    }

    /// The stream ended for `cause`, having delivered `total`.
    pub fn end(&mut self, total: Delivered, cause: &str) {
        if let Some(dataset) = &self.dataset {
            let metric = self.meter.end(now_ms(), total, cause);
            write(dataset, &metric.point(Some(&self.tenant)));
        }
    }
}

fn write(dataset: &AnalyticsEngineDataset, point: &DataPoint) {
    let written = AnalyticsEngineDataPointBuilder::new()
        .indexes([point.index])
        .blobs(point.blobs)
        .doubles(point.doubles)
        .write_to(dataset);
    if written.is_err() {
        log::warn(
            "usage data point not written",
            serde_json::json!({ "kind": point.blobs[0] }),
        );
    }
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}
