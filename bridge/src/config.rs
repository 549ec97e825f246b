//! Command-line flags and environment variables.
//!
//! Every option has a flag and an environment variable, so the bridge runs
//! the same from a shell, a container or a process supervisor. The names the
//! contract fixes (`VALKEY_URL`, `EDGE_URL`, `PUBLISH_API_KEY`,
//! `PUBLISH_TOKEN`, `JWT_SECRET`, `TENANT_CLAIM`) are used as they are; the
//! bridge's own settings are `BRIDGE_*`. The defaults are the local stack's,
//! so `scripts/dev` starts the bridge with nothing but `JWT_SECRET` and
//! `EDGE_URL`.

use crate::credential::{Credential, Minter};
use crate::tenancy::{parse_route, Route, SourceName, TenantMap};
use crate::valkey::TlsFiles;
use clap::{ArgGroup, Parser, Subcommand};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
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
/// backoff, in order per channel.
#[derive(Debug, Clone, Parser)]
#[command(name = "edgestream-bridge", version, about, long_about)]
#[command(subcommand_negates_reqs = true)]
#[command(group(ArgGroup::new("credential").required(true).args([
    "publish_api_key", "publish_api_key_file", "publish_token", "publish_token_file", "jwt_secret",
])))]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Valkey (or Redis) to read from:
    /// redis[s]://[user:password@]host:port[/db]. rediss:// is TLS; the user
    /// and password are an ACL user's. Pub/Sub ignores the database number.
    #[arg(
        long,
        env = "VALKEY_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub valkey_url: String,

    /// PEM file of the CA(s) that sign Valkey's TLS certificate, instead of
    /// the system roots.
    #[arg(long, env = "VALKEY_CA_FILE")]
    pub valkey_ca_file: Option<PathBuf>,

    /// PEM client certificate (chain) for a Valkey that requires one.
    #[arg(long, env = "VALKEY_CLIENT_CERT", requires = "valkey_client_key")]
    pub valkey_client_cert: Option<PathBuf>,

    /// PEM private key of --valkey-client-cert.
    #[arg(long, env = "VALKEY_CLIENT_KEY", requires = "valkey_client_cert")]
    pub valkey_client_key: Option<PathBuf>,

    /// Base URL of the edgestream Worker; events go to <EDGE_URL>/v1/publish.
    /// https:// except for a relay on this machine (127.0.0.1, ::1, localhost).
    #[arg(long, env = "EDGE_URL", default_value = "http://127.0.0.1:8787")]
    pub edge_url: String,

    /// An API key with the events:publish scope, sent as
    /// `Authorization: Api-Key <key>`. The preferred credential. Prefer the
    /// variable or the file: a flag shows in the process list.
    #[arg(long, env = "PUBLISH_API_KEY", hide_env_values = true)]
    pub publish_api_key: Option<String>,

    /// A file holding the API key (a mounted secret, systemd's LoadCredential).
    #[arg(long, env = "PUBLISH_API_KEY_FILE")]
    pub publish_api_key_file: Option<PathBuf>,

    /// A publisher JWT (scope `events:publish`) sent as a Bearer token. It
    /// must outlive the process.
    #[arg(long, env = "PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,

    /// A file holding the publisher JWT.
    #[arg(long, env = "PUBLISH_TOKEN_FILE")]
    pub publish_token_file: Option<PathBuf>,

    /// For local use only: the Worker's HS256 secret, from which the bridge
    /// mints its own short-lived publisher tokens. Whoever holds it can mint
    /// any token, so never give it to a deployed bridge.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// `iss` claim of minted tokens (set it when the Worker has JWT_ISSUER).
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// `aud` claim of minted tokens (set it when the Worker has JWT_AUDIENCE).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The claim minted tokens carry their tenant in (the Worker's TENANT_CLAIM).
    #[arg(long, env = "TENANT_CLAIM", default_value = "tenant_id")]
    pub tenant_claim: String,

    /// Lifetime of a minted token, in seconds; a new one is minted when less
    /// than a fifth of it is left.
    #[arg(long, env = "BRIDGE_TOKEN_TTL_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(30..=86400))]
    pub token_ttl_seconds: u64,

    /// Makes the bridge tenant-scoped: `pubsub:<channel>=<tenant>` or
    /// `stream:<key>=<tenant>` (repeat the flag; comma-separated in the
    /// variable). Every source then needs one; an event whose channel names
    /// another tenant is refused, and minted tokens carry the tenant.
    #[arg(long = "tenant", env = "BRIDGE_TENANTS", value_delimiter = ',', value_parser = parse_route)]
    pub tenants: Vec<Route>,

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

    /// Where Streams entries that can never be delivered (malformed, refused
    /// by the edge with a 4xx, or out of retries) are copied, with the
    /// reason, before they are acknowledged. Default: "<stream>:dead-letter".
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

    /// First retry delay, in milliseconds; it doubles per attempt, with
    /// jitter, up to --retry-max-ms. A Retry-After from the edge is waited
    /// for at least.
    #[arg(long, env = "BRIDGE_RETRY_INITIAL_MS", default_value_t = 100)]
    pub retry_initial_ms: u64,

    /// Longest retry delay, in milliseconds (also the longest wait between
    /// Valkey reconnection attempts).
    #[arg(long, env = "BRIDGE_RETRY_MAX_MS", default_value_t = 5_000)]
    pub retry_max_ms: u64,

    /// Failed attempts of one event, alone in its request, before it is
    /// given up (dead-lettered for Streams). Only failures of an edge that is
    /// up count: a 5xx answer, or no answer while its health check passes.
    /// An edge that is unreachable or answers 429/503 is waited for without
    /// limit.
    #[arg(long, env = "BRIDGE_RETRY_BUDGET", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub retry_budget: u32,

    /// Timeout of one publish request, in milliseconds.
    #[arg(long, env = "BRIDGE_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// On SIGTERM or SIGINT, how long queued and in-flight batches may take
    /// to finish, in seconds. Streams entries left then stay pending in
    /// Valkey and are sent by the next run.
    #[arg(long, env = "BRIDGE_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub shutdown_timeout_seconds: u64,

    /// Serve Prometheus metrics at http://<addr>/metrics and a health check
    /// at /healthz (e.g. 127.0.0.1:9464). Off when not given.
    #[arg(long, env = "BRIDGE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log level: error, warn, info, debug or trace. Logs are JSON lines on
    /// stderr.
    #[arg(long, env = "BRIDGE_LOG_LEVEL", default_value = "info")]
    pub log_level: tracing::Level,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Exits 0 when the bridge running on this host answers its health check
    /// (GET /healthz on BRIDGE_METRICS_ADDR), 1 otherwise. For container
    /// health checks, in an image that has no shell or curl.
    Probe,
}

impl Config {
    /// Checks what clap cannot: the URLs, the sources and the tenant map.
    pub fn validate(&self) -> Result<(), String> {
        if self.no_pubsub && self.stream.is_none() {
            return Err("--no-pubsub without --stream leaves nothing to read".into());
        }
        if !self.no_pubsub && self.pubsub_channels.iter().all(|c| c.is_empty()) {
            return Err("--pubsub-channel must name a channel".into());
        }
        check_edge_url(&self.edge_url)?;
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err("--retry-initial-ms must be at least 1 and at most --retry-max-ms".into());
        }
        if self.tenant_claim.is_empty() {
            return Err("TENANT_CLAIM is empty".into());
        }
        self.tenant_map().map(|_| ())
    }

    /// The sources this configuration reads.
    pub fn sources(&self) -> Vec<SourceName> {
        let mut sources = Vec::new();
        if !self.no_pubsub {
            sources.extend(self.subscribed().into_iter().map(SourceName::PubSub));
        }
        sources.extend(self.stream.iter().cloned().map(SourceName::Stream));
        sources
    }

    /// The Pub/Sub channels to subscribe to.
    pub fn subscribed(&self) -> Vec<String> {
        self.pubsub_channels
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect()
    }

    pub fn tenant_map(&self) -> Result<TenantMap, String> {
        TenantMap::new(&self.tenants, &self.sources())
    }

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.valkey_ca_file.clone(),
            client_cert: self.valkey_client_cert.clone(),
            client_key: self.valkey_client_key.clone(),
        }
    }

    /// The publisher credential, with files read now so a missing one stops
    /// the start.
    pub fn credential(&self) -> Result<Credential, String> {
        let given = |value: &Option<String>, file: &Option<PathBuf>, name: &str| {
            let text = match (value, file) {
                (Some(value), _) => value.clone(),
                (None, Some(path)) => read_secret(path, name)?,
                (None, None) => return Ok(None),
            };
            let text = text.trim().to_owned();
            if text.is_empty() {
                return Err(format!("{name} is set but empty"));
            }
            Ok(Some(text))
        };
        if let Some(key) = given(
            &self.publish_api_key,
            &self.publish_api_key_file,
            "PUBLISH_API_KEY",
        )? {
            edgestream_core::api_key::check_shape(&key)
                .map_err(|_| "PUBLISH_API_KEY is not an API key (printable ASCII, no spaces, at most 256 bytes)".to_string())?;
            return Ok(Credential::ApiKey(key));
        }
        if let Some(token) = given(
            &self.publish_token,
            &self.publish_token_file,
            "PUBLISH_TOKEN",
        )? {
            if token.split('.').count() != 3 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("PUBLISH_TOKEN is not a JWT".into());
            }
            return Ok(Credential::Token(token));
        }
        match given(&self.jwt_secret, &None, "JWT_SECRET")? {
            Some(secret) => Ok(Credential::Minted(Minter::new(
                secret.as_bytes(),
                self.token_ttl_seconds,
                self.jwt_issuer.clone(),
                self.jwt_audience.clone(),
                self.tenant_claim.clone(),
            ))),
            None => Err("no credential: set PUBLISH_API_KEY (or PUBLISH_TOKEN)".into()),
        }
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

    /// Where `probe` finds the running bridge: the metrics address, with a
    /// wildcard bind reached over loopback.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        let mut addr = self.metrics_addr?;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        Some(addr)
    }
}

fn read_secret(path: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("{name}_FILE: cannot read {}: {e}", path.display()))
}

/// https:// anywhere; http:// only to this machine, since the credential
/// travels in every request.
pub fn check_edge_url(url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("EDGE_URL is not a URL ({e}): {url:?}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("EDGE_URL must not carry a user or password".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("EDGE_URL must not have a query or fragment".into());
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "EDGE_URL {url:?} is plain http:// to another host: the credential would travel in clear. \
             Use https://, or http:// only to 127.0.0.1, ::1 or localhost"
        )),
        other => Err(format!("EDGE_URL must be https:// (or http:// on loopback), not {other}://")),
    }
}

pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
