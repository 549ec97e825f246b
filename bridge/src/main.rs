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
//! `edgestream-core`) and check each event's tenant against the source's
//! ([`tenancy`]); lanes batch and retry ([`batcher`]); the forwarder speaks
//! HTTP with the bridge's credential ([`forward`], [`credential`]);
//! [`valkey`] builds the client (TLS, ACL users) and explains its errors.
//! A configuration that cannot work (options, credential, a certificate or
//! password Valkey refuses) exits 2 at start. Shutdown on SIGTERM or SIGINT:
//! sources stop reading, lanes finish what is queued and in flight (bounded
//! by `--shutdown-timeout-seconds`), acknowledgements are written, then the
//! process exits 0. A second signal exits at once.

mod backoff;
mod batcher;
mod config;
mod credential;
mod forward;
mod metrics;
mod source_pubsub;
mod source_streams;
mod tenancy;
mod valkey;

use backoff::Backoff;
use batcher::LaneSettings;
use clap::Parser;
use config::{Command, Config};
use forward::Forwarder;
use metrics::Metrics;
use source_pubsub::{KeyMaker, PubSubSource};
use source_streams::{Acker, StreamSettings, StreamSource};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

/// Exit status of a configuration the bridge refuses to run with.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(Command::Probe) = config.command {
        return match config.probe_addr() {
            Some(addr) if metrics::probe(addr) => ExitCode::SUCCESS,
            Some(addr) => {
                eprintln!("edgestream-bridge probe: no healthy bridge at http://{addr}/healthz");
                ExitCode::FAILURE
            }
            None => {
                eprintln!("edgestream-bridge probe: BRIDGE_METRICS_ADDR is not set");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_max_level(config.log_level)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = config.validate() {
        tracing::error!(error = %err, "configuration refused");
        return ExitCode::from(EXIT_CONFIG);
    }
    // TLS for https:// edges and rediss:// Valkey, with ring as the crypto
    // provider (no C++ or cmake toolchain needed to build it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Config(err)) => {
            tracing::error!(error = %err, "configuration refused");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Stop::Failed(err)) => {
            tracing::error!(error = %err, "cannot run");
            ExitCode::FAILURE
        }
    }
}

enum Stop {
    /// Fix the configuration: retrying as it is cannot work.
    Config(String),
    Failed(String),
}

async fn run(config: Config) -> Result<(), Stop> {
    let client = valkey::client(&config.valkey_url, &config.tls_files()).map_err(Stop::Config)?;
    let credential = config.credential().map_err(Stop::Config)?;
    let tenants = Arc::new(config.tenant_map().map_err(Stop::Config)?);
    let edge_is_local =
        reqwest::Url::parse(&config.edge_url).is_ok_and(|u| config::is_loopback(&u));
    if credential.is_minted() && !edge_is_local {
        tracing::warn!(
            "JWT_SECRET is the relay's signing key and can mint any token; give a deployed bridge PUBLISH_API_KEY instead"
        );
    }
    let credential_kind = credential.kind();
    let forwarder = Arc::new(
        Forwarder::new(
            &config.edge_url,
            credential,
            Duration::from_millis(config.request_timeout_ms),
        )
        .map_err(Stop::Failed)?,
    );
    valkey::probe(&client).await.map_err(Stop::Config)?;
    let metrics = Metrics::new();
    if let Some(addr) = config.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone())
            .await
            .map_err(|e| Stop::Failed(format!("cannot serve metrics on {addr}: {e}")))?;
        tracing::info!(addr = %bound, "metrics on /metrics, health check on /healthz");
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
            retry_budget: config.retry_budget,
        },
        forwarder,
        metrics.clone(),
        verdict_tx.clone(),
        deadline_rx.clone(),
    );

    let mut sources = Vec::new();
    let mut acker = None;
    if !config.no_pubsub {
        if valkey::database(&client) != 0 {
            tracing::info!("Pub/Sub ignores the database number of VALKEY_URL: channels are shared by every database");
        }
        let source = PubSubSource {
            client: client.clone(),
            channels: config.subscribed(),
            dispatcher: dispatcher.clone(),
            metrics: metrics.clone(),
            max_event_bytes: config.max_event_bytes,
            backoff: Backoff::new(retry_initial, retry_max),
            keys: KeyMaker::new(),
            tenants: tenants.clone(),
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
            tenants: tenants.clone(),
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
        edge = %config.edge_url,
        valkey = %valkey::redacted(&config.valkey_url),
        credential = credential_kind,
        tenants = ?tenants.tenants(),
        lanes = config.lanes,
        "edgestream-bridge started"
    );

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Stop::Failed(e.to_string()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Stop::Failed(e.to_string()))?;
    let which = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    let timeout = config.shutdown_timeout();
    tracing::info!(
        signal = which,
        timeout_s = timeout.as_secs(),
        "finishing queued and in-flight batches"
    );
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
