//! Command-line flags and environment variables.
//!
//! Every option has a flag and an environment variable, so the bridge runs
//! the same from a shell, a container or a process supervisor. The names the
//! contract fixes (`VALKEY_URL`, `EDGE_URL`, `PUBLISH_TOKEN`, `JWT_SECRET`)
//! are used as they are; the bridge's own settings are `BRIDGE_*`. The
//! defaults are the local stack's, so `scripts/dev` starts the bridge with
//! nothing but `JWT_SECRET` and `EDGE_URL`.

use clap::{ArgGroup, Parser};
use std::net::SocketAddr;
use std::time::Duration;

/// Forwards events from Valkey to edgestream's `POST /v1/publish`.
///
/// Sources: Pub/Sub (on by default, channel `events_channel`), which carries
/// django-eventstream's own message, so `send_event()` with `EVENTSTREAM_REDIS`
/// reaches the edge unchanged, and the native form
/// `{"channel","event","data","idempotency_key"}`; and a Valkey Stream read
/// with a consumer group (`--stream`), which gives at-least-once delivery
/// across bridge restarts and, with the entry id as idempotency key, exactly
/// once at the edge. Events are sent in batches of up to 100, retried with
/// backoff on network errors and 5xx, in order per channel.
#[derive(Debug, Clone, Parser)]
#[command(name = "edgestream-bridge", version, about, long_about)]
#[command(group(ArgGroup::new("credential").required(true).args(["publish_token", "jwt_secret"])))]
pub struct Config {
    /// Valkey (or Redis) to read from: redis://[user:password@]host:port[/db].
    #[arg(long, env = "VALKEY_URL", default_value = "redis://127.0.0.1:6379")]
    pub valkey_url: String,

    /// Base URL of the edgestream Worker; events go to <EDGE_URL>/v1/publish.
    #[arg(long, env = "EDGE_URL", default_value = "http://127.0.0.1:8787")]
    pub edge_url: String,

    /// A publisher JWT (scope `events:publish`) sent as is. Use it when the
    /// bridge must not hold the signing secret; it must outlive the process.
    /// Prefer the variable: a flag shows in the process list.
    #[arg(long, env = "PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,

    /// The Worker's HS256 secret: the bridge mints its own short-lived
    /// platform publisher tokens (no tenant claim) and renews them before
    /// they expire. Prefer the variable: a flag shows in the process list.
    #[arg(
        long,
        env = "JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "publish_token"
    )]
    pub jwt_secret: Option<String>,

    /// `iss` claim of minted tokens (set it when the Worker has JWT_ISSUER).
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// `aud` claim of minted tokens (set it when the Worker has JWT_AUDIENCE).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Lifetime of a minted token, in seconds; a new one is minted when less
    /// than a fifth of it is left.
    #[arg(long, env = "BRIDGE_TOKEN_TTL_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(30..=86400))]
    pub token_ttl_seconds: u64,

    /// Pub/Sub channel to subscribe to (repeat the flag for several;
    /// comma-separated in the variable).
    #[arg(
        long = "pubsub-channel",
        env = "BRIDGE_PUBSUB_CHANNELS",
        value_delimiter = ',',
        default_value = "events_channel"
    )]
    pub pubsub_channels: Vec<String>,

    /// Do not subscribe to Pub/Sub at all (use with --stream).
    #[arg(long, env = "BRIDGE_NO_PUBSUB")]
    pub no_pubsub: bool,

    /// Read this Valkey Stream with a consumer group (created, with the
    /// stream, if missing, from the stream's first entry).
    #[arg(long, env = "BRIDGE_STREAM")]
    pub stream: Option<String>,

    /// Consumer group of the Streams source.
    #[arg(long, env = "BRIDGE_GROUP", default_value = "edgestream-bridge")]
    pub group: String,

    /// Consumer name within the group. Keep it stable across restarts of the
    /// same bridge (the default is the host name) so that a restarted bridge
    /// resumes its own unacknowledged entries first, in order.
    #[arg(long, env = "BRIDGE_CONSUMER")]
    pub consumer: Option<String>,

    /// Where Streams entries that can never be delivered (malformed, or
    /// refused by the edge with a 4xx) are copied, with the reason, before they
    /// are acknowledged. Default: "<stream>:dead-letter".
    #[arg(long, env = "BRIDGE_DEAD_LETTER_STREAM")]
    pub dead_letter_stream: Option<String>,

    /// Entries another consumer has held unacknowledged this long (a crashed
    /// bridge under another name) are claimed with XAUTOCLAIM, in milliseconds.
    #[arg(long, env = "BRIDGE_CLAIM_IDLE_MS", default_value_t = 30_000)]
    pub claim_idle_ms: u64,

    /// Entries read from the stream per XREADGROUP.
    #[arg(long, env = "BRIDGE_READ_COUNT", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub read_count: u64,

    /// Most events per publish request (the edge takes at most 100).
    #[arg(long, env = "BRIDGE_BATCH_MAX", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub batch_max: u64,

    /// How long a batch that is not full waits for more events, in
    /// milliseconds. Only a quiet source waits: under load batches fill up.
    #[arg(long, env = "BRIDGE_LINGER_MS", default_value_t = 5)]
    pub linger_ms: u64,

    /// Publish requests in flight at once. Channels are spread over this many
    /// lanes by name and each lane sends one request at a time, which is
    /// what keeps every channel's order.
    #[arg(long, env = "BRIDGE_LANES", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub lanes: u64,

    /// Events a lane holds while the edge is slow or down. Streams stop
    /// reading when it is full; Pub/Sub, which Valkey cannot hold back, drops
    /// (and counts) what does not fit.
    #[arg(long, env = "BRIDGE_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub queue_capacity: usize,

    /// Largest event data, compact JSON bytes; keep it equal to the Worker's
    /// MAX_EVENT_BYTES so oversized events are skipped without a round trip.
    #[arg(long, env = "MAX_EVENT_BYTES", default_value_t = 65_536)]
    pub max_event_bytes: usize,

    /// First retry delay after a network error or 5xx, in milliseconds; it
    /// doubles per attempt, with jitter, up to --retry-max-ms.
    #[arg(long, env = "BRIDGE_RETRY_INITIAL_MS", default_value_t = 100)]
    pub retry_initial_ms: u64,

    /// Longest retry delay, in milliseconds (also the longest wait between
    /// Valkey reconnection attempts).
    #[arg(long, env = "BRIDGE_RETRY_MAX_MS", default_value_t = 5_000)]
    pub retry_max_ms: u64,

    /// Timeout of one publish request, in milliseconds.
    #[arg(long, env = "BRIDGE_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// On SIGTERM or SIGINT, how long queued and in-flight batches may take
    /// to finish, in seconds. Streams entries left then stay pending in
    /// Valkey and are sent by the next run.
    #[arg(long, env = "BRIDGE_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub shutdown_timeout_seconds: u64,

    /// Serve Prometheus metrics at http://<addr>/metrics (e.g.
    /// 127.0.0.1:9464). Off when not given.
    #[arg(long, env = "BRIDGE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "BRIDGE_LOG_LEVEL", default_value = "info")]
    pub log_level: tracing::Level,
}

impl Config {
    /// Checks what clap cannot: the URLs and that at least one source is on.
    pub fn validate(&self) -> Result<(), String> {
        if self.no_pubsub && self.stream.is_none() {
            return Err("--no-pubsub without --stream leaves nothing to read".into());
        }
        if !self.no_pubsub && self.pubsub_channels.iter().all(|c| c.is_empty()) {
            return Err("--pubsub-channel must name a channel".into());
        }
        let scheme = self.edge_url.split("://").next().unwrap_or_default();
        if !matches!(scheme, "http" | "https") || !self.edge_url.contains("://") {
            return Err(format!(
                "EDGE_URL must be an http:// or https:// URL, not {:?}",
                self.edge_url
            ));
        }
        if self.publish_token.as_deref().is_some_and(str::is_empty)
            || self.jwt_secret.as_deref().is_some_and(str::is_empty)
        {
            return Err("PUBLISH_TOKEN or JWT_SECRET is set but empty".into());
        }
        if let Err(err) = redis::Client::open(self.valkey_url.as_str()) {
            return Err(format!("VALKEY_URL is not usable: {err}"));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err("--retry-initial-ms must be at least 1 and at most --retry-max-ms".into());
        }
        Ok(())
    }

    /// `<EDGE_URL>/v1/publish`, whether or not EDGE_URL ends with a slash.
    pub fn publish_url(&self) -> String {
        format!("{}/v1/publish", self.edge_url.trim_end_matches('/'))
    }

    pub fn consumer_name(&self) -> String {
        self.consumer.clone().unwrap_or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            if host.is_empty() {
                "edgestream-bridge".into()
            } else {
                host
            }
        })
    }

    pub fn dead_letter_key(&self) -> Option<String> {
        let stream = self.stream.as_ref()?;
        Some(
            self.dead_letter_stream
                .clone()
                .unwrap_or_else(|| format!("{stream}:dead-letter")),
        )
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("edgestream-bridge").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_local_stack() {
        let config = parse(&["--jwt-secret", "s"]).unwrap();
        assert_eq!(config.valkey_url, "redis://127.0.0.1:6379");
        assert_eq!(config.publish_url(), "http://127.0.0.1:8787/v1/publish");
        assert_eq!(config.pubsub_channels, ["events_channel"]);
        assert_eq!(config.batch_max, 100);
        assert!(config.stream.is_none() && !config.no_pubsub);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_credential_is_required_and_only_one() {
        if std::env::var_os("JWT_SECRET").is_none() && std::env::var_os("PUBLISH_TOKEN").is_none() {
            assert!(parse(&[]).is_err());
        }
        assert!(parse(&["--publish-token", "t", "--jwt-secret", "s"]).is_err());
        assert!(parse(&["--publish-token", "t"]).is_ok());
    }

    #[test]
    fn checks_beyond_clap() {
        let config = parse(&["--jwt-secret", "s", "--no-pubsub"]).unwrap();
        assert!(config.validate().is_err());
        let config = parse(&["--jwt-secret", "s", "--no-pubsub", "--stream", "events"]).unwrap();
        assert!(config.validate().is_ok());
        assert_eq!(
            config.dead_letter_key().as_deref(),
            Some("events:dead-letter")
        );
        let config = parse(&["--jwt-secret", "s", "--edge-url", "127.0.0.1:8787"]).unwrap();
        assert!(config.validate().is_err());
        let config =
            parse(&["--jwt-secret", "s", "--valkey-url", "http://127.0.0.1:6379"]).unwrap();
        assert!(config.validate().is_err());
        let config = parse(&["--jwt-secret", "s", "--edge-url", "https://edge.example/"]).unwrap();
        assert_eq!(config.publish_url(), "https://edge.example/v1/publish");
        assert!(parse(&["--jwt-secret", "s", "--batch-max", "101"]).is_err());
    }

    #[test]
    fn several_pubsub_channels() {
        let config = parse(&[
            "--jwt-secret",
            "s",
            "--pubsub-channel",
            "a",
            "--pubsub-channel",
            "b,c",
        ])
        .unwrap();
        assert_eq!(config.pubsub_channels, ["a", "b", "c"]);
    }
}
