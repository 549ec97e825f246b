//! `edgestream-bridge`: forwards events from Valkey to edgestream's
//! `POST /v1/publish`, so origins that publish into Valkey (a Django app with
//! django-eventstream and `EVENTSTREAM_REDIS`, or any service that can
//! `PUBLISH` or `XADD`) reach edge subscribers without a code change.
//!
//! ```text
//! Valkey ──SUBSCRIBE──▶ source_pubsub ──┐                ┌─▶ lane 0 ──POST /v1/publish──▶ edge
//!        ──XREADGROUP─▶ source_streams ─┴─▶ Dispatcher ──┼─▶ lane 1 ──…
//!                         ▲                 (by channel) └─▶ lane N
//!                         └──── Acker: XACK / dead-letter ◀── verdicts
//! ```
//!
//! Sources decode and validate (with the Worker's own rules, from
//! `edgestream-core`), lanes batch and retry ([`batcher`]), the forwarder
//! speaks HTTP ([`forward`]). Shutdown on SIGTERM or SIGINT: sources stop
//! reading, lanes finish what is queued and in flight (bounded by
//! `--shutdown-timeout-seconds`), acknowledgements are written, then the
//! process exits 0. A second signal exits at once.

mod backoff;
mod batcher;
mod config;
mod credential;
mod forward;
mod metrics;
mod source_pubsub;
mod source_streams;

use backoff::Backoff;
use batcher::LaneSettings;
use clap::Parser;
use config::Config;
use credential::Credential;
use forward::Forwarder;
use metrics::Metrics;
use source_pubsub::{KeyMaker, PubSubSource};
use source_streams::{Acker, StreamSettings, StreamSource};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_max_level(config.log_level)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if let Err(err) = config.validate() {
        tracing::error!("{err}");
        return std::process::ExitCode::from(2);
    }
    // TLS for https:// edges, with ring as the crypto provider (no C++ or
    // cmake toolchain needed to build it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let client = redis::Client::open(config.valkey_url.as_str())
        .map_err(|e| format!("VALKEY_URL is not usable: {e}"))?;
    let credential = Credential::from_config(&config);
    let minted = credential.is_minted();
    let forwarder = Arc::new(Forwarder::new(
        config.publish_url(),
        credential,
        Duration::from_millis(config.request_timeout_ms),
    )?);
    let metrics = Metrics::new();
    if let Some(addr) = config.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone())
            .await
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        tracing::info!("metrics on http://{bound}/metrics");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (deadline_tx, deadline_rx) = watch::channel::<Option<Instant>>(None);
    let retry_initial = Duration::from_millis(config.retry_initial_ms);
    let retry_max = Duration::from_millis(config.retry_max_ms);

    let (verdict_tx, verdict_rx) = match config.stream {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let (dispatcher, lanes) = batcher::start(
        config.lanes as usize,
        config.queue_capacity,
        LaneSettings {
            batch_max: config.batch_max as usize,
            linger: config.linger(),
            retry_initial,
            retry_max,
        },
        forwarder,
        metrics.clone(),
        verdict_tx.clone(),
        deadline_rx.clone(),
    );

    let mut sources = Vec::new();
    let mut acker = None;
    if !config.no_pubsub {
        let source = PubSubSource {
            client: client.clone(),
            channels: config
                .pubsub_channels
                .iter()
                .filter(|c| !c.is_empty())
                .cloned()
                .collect(),
            dispatcher: dispatcher.clone(),
            metrics: metrics.clone(),
            max_event_bytes: config.max_event_bytes,
            backoff: Backoff::new(retry_initial, retry_max),
            keys: KeyMaker::new(),
        };
        sources.push(tokio::spawn(source.run(stop_rx.clone())));
    }
    if let (Some(stream), Some(verdicts), Some(verdict_rx)) =
        (config.stream.clone(), verdict_tx, verdict_rx)
    {
        let settings = Arc::new(StreamSettings {
            dead_letter: config.dead_letter_key().unwrap_or_default(),
            stream,
            group: config.group.clone(),
            consumer: config.consumer_name(),
            claim_idle: Duration::from_millis(config.claim_idle_ms),
            read_count: config.read_count,
            max_event_bytes: config.max_event_bytes,
            retry_initial,
            retry_max,
        });
        let in_flight = Arc::new(Mutex::new(Default::default()));
        let source = StreamSource {
            client: client.clone(),
            settings: settings.clone(),
            dispatcher: dispatcher.clone(),
            metrics: metrics.clone(),
            in_flight: in_flight.clone(),
            verdicts,
        };
        sources.push(tokio::spawn(source.run(stop_rx.clone())));
        let acker_task = Acker {
            client: client.clone(),
            settings,
            metrics: metrics.clone(),
            in_flight,
            deadline: deadline_rx.clone(),
        };
        acker = Some(tokio::spawn(acker_task.run(verdict_rx)));
    }
    // Lanes end when the last dispatcher is gone, i.e. when the sources end.
    drop(dispatcher);
    tracing::info!(
        edge = %config.publish_url(),
        valkey = %redacted(&config.valkey_url),
        credential = if minted { "minted from JWT_SECRET" } else { "PUBLISH_TOKEN" },
        lanes = config.lanes,
        "edgestream-bridge started"
    );

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let which = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    let timeout = config.shutdown_timeout();
    tracing::info!("{which}: finishing queued and in-flight batches (at most {timeout:?})");
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    let deadline = Instant::now() + timeout;
    let _ = deadline_tx.send(Some(deadline));
    let _ = stop_tx.send(true);
    for task in sources {
        let _ = task.await;
    }
    for lane in lanes {
        let _ = lane.await;
    }
    if let Some(acker) = acker {
        // The acker has its own deadline check; the margin covers one last
        // Valkey round trip.
        let _ = tokio::time::timeout_at((deadline + Duration::from_secs(2)).into(), acker).await;
    }
    tracing::info!("stopped: {}", metrics.summary());
    Ok(())
}

/// The URL without its password, for the log.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_the_log() {
        assert_eq!(
            super::redacted("redis://u:secret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(
            super::redacted("redis://:secret@h:6379"),
            "redis://:***@h:6379"
        );
        assert_eq!(
            super::redacted("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
