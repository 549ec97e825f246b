//! The systems under test and how one scenario maps onto each of them.
//!
//! A scenario speaks in channels, subscribers and events; a [`Target`] turns
//! that into the peer's own subscribe URL, publish requests and event format,
//! so every peer gets the same load from the same generator and payloads.

pub mod django;
pub mod edgestream;
pub mod nchan;

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use serde::Serialize;

use crate::process::Proc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerKind {
    Edgestream,
    /// edgestream with its hub off (`HUB_DISPATCH_BUDGET=0`): a socket per
    /// stream, the design before the hub was the default.
    EdgestreamSockets,
    /// edgestream with `STREAM_BODY=script`: response bodies the relay fills
    /// from JavaScript instead of workerd's pipe.
    EdgestreamScript,
    Nchan,
    Django,
}

impl PeerKind {
    /// Any shape of edgestream: they differ only in the worker's vars.
    pub fn is_edgestream(self) -> bool {
        self.edgestream_vars().is_some()
    }

    /// The worker vars of a shape of edgestream; None for the other peers.
    pub fn edgestream_vars(self) -> Option<Vec<(String, String)>> {
        let var = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
        match self {
            PeerKind::Edgestream => Some(Vec::new()),
            PeerKind::EdgestreamSockets => Some(var("HUB_DISPATCH_BUDGET", "0")),
            PeerKind::EdgestreamScript => Some(var("STREAM_BODY", "script")),
            PeerKind::Nchan | PeerKind::Django => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Edgestream => "edgestream",
            PeerKind::EdgestreamSockets => "edgestream-sockets",
            PeerKind::EdgestreamScript => "edgestream-script",
            PeerKind::Nchan => "nchan",
            PeerKind::Django => "django-eventstream",
        }
    }

    pub fn parse(s: &str) -> Option<PeerKind> {
        match s {
            "edgestream" => Some(PeerKind::Edgestream),
            "edgestream-sockets" => Some(PeerKind::EdgestreamSockets),
            "edgestream-script" => Some(PeerKind::EdgestreamScript),
            "nchan" => Some(PeerKind::Nchan),
            "django" | "django-eventstream" => Some(PeerKind::Django),
            _ => None,
        }
    }
}

/// How events reach the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The peer's HTTP publish endpoint.
    Http,
    /// `PUBLISH events_channel` on Valkey with django-eventstream's message
    /// format: django-eventstream's own listener, or edgestream-bridge.
    Valkey(SocketAddr),
}

/// Everything a run needs to start servers.
pub struct Ctx {
    /// The repository root (the current directory of `bench/run`).
    pub root: PathBuf,
    /// Scratch space for configs and logs (under `target/`).
    pub work: PathBuf,
    /// HS256 secret given to edgestream (and the bridge) for this run.
    pub secret: String,
    /// Tenant of every channel of the run.
    pub tenant: String,
    pub django_workers: usize,
    /// Profile edgestream's isolate into this folder (`--profile`).
    pub profile_dir: Option<PathBuf>,
}

/// One event to publish.
pub struct Out<'a> {
    pub channel: &'a str,
    pub event: &'static str,
    pub data: String,
}

/// One publish operation.
pub enum PublishReq {
    Http {
        path: String,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Messages for `PUBLISH events_channel`, sent pipelined.
    Valkey(Vec<Vec<u8>>),
}

/// A running peer: its processes and how to reach it.
pub struct Target {
    pub ep: std::sync::Arc<Endpoint>,
    /// Processes whose memory and CPU count as the peer's, by role
    /// (`server`, `launcher`, `valkey`, `bridge`).
    pub processes: Vec<Proc>,
    /// Time from spawning the server to its health check answering.
    pub started_in_ms: f64,
    /// The process that starts and stops a CPU profile on SIGUSR1 / SIGUSR2.
    pub profiler_pid: Option<u32>,
}

impl Target {
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes
            .iter()
            .map(|p| (p.name.clone(), p.pid()))
            .collect()
    }

    /// Whether every process is still running.
    pub fn alive(&mut self) -> Result<(), String> {
        for p in &mut self.processes {
            if !p.alive() {
                return Err(format!("{} ({}) exited", p.name, self.ep.label()));
            }
        }
        Ok(())
    }
}

/// How to reach a running peer; shared by subscribers and publishers.
pub struct Endpoint {
    pub kind: PeerKind,
    pub via: Via,
    pub addr: SocketAddr,
    pub sub_token: Option<String>,
    pub pub_token: Option<String>,
    /// Where the channel objects' own stats can be read (edgestream).
    pub stats: Option<SocketAddr>,
}

impl Endpoint {
    pub fn label(&self) -> String {
        match self.via {
            Via::Http => self.kind.name().to_owned(),
            Via::Valkey(_) if self.kind.is_edgestream() => "edgestream (bridge)".to_owned(),
            Via::Valkey(_) => format!("{} (valkey)", self.kind.name()),
        }
    }

    /// Most events one publish operation may carry.
    pub fn max_batch(&self, wanted: usize) -> usize {
        match (self.kind, self.via) {
            (_, Via::Valkey(_)) => wanted.max(1),
            (
                PeerKind::Edgestream | PeerKind::EdgestreamSockets | PeerKind::EdgestreamScript,
                Via::Http,
            ) => wanted.clamp(1, 100),
            (PeerKind::Django, Via::Http) => wanted.max(1),
            (PeerKind::Nchan, Via::Http) => 1,
        }
    }

    /// Path and headers of a subscription to one channel.
    pub fn subscribe(&self, channel: &str) -> (String, Vec<(String, String)>) {
        self.subscribe_as(channel, self.sub_token.as_deref())
    }

    /// The same with a token of its own (a channel of another tenant).
    pub fn subscribe_as(
        &self,
        channel: &str,
        token: Option<&str>,
    ) -> (String, Vec<(String, String)>) {
        let mut headers = vec![("Accept".to_owned(), "text/event-stream".to_owned())];
        let path = match self.kind {
            PeerKind::Edgestream | PeerKind::EdgestreamSockets | PeerKind::EdgestreamScript => {
                if let Some(token) = token {
                    headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
                }
                format!("/v1/stream?channel={}", query_escape(channel))
            }
            PeerKind::Django => format!("/events/?channel={}", query_escape(channel)),
            PeerKind::Nchan => format!("/sub/{channel}"),
        };
        (path, headers)
    }

    /// The relay's per-channel sequence number in an event id, where the
    /// peer's ids carry one (edgestream: `percent-encode(channel):seq`).
    pub fn relay_seq(&self, id: &[u8]) -> Option<u64> {
        if !self.kind.is_edgestream() {
            return None;
        }
        let colon = memchr::memrchr(b':', id)?;
        std::str::from_utf8(&id[colon + 1..]).ok()?.parse().ok()
    }

    /// Publish operations for a batch of events (all of them, in order).
    pub fn publish_requests(&self, events: &[Out<'_>]) -> Vec<PublishReq> {
        match self.via {
            Via::Valkey(_) => vec![PublishReq::Valkey(
                events
                    .iter()
                    .map(|e| django_message(e).into_bytes())
                    .collect(),
            )],
            Via::Http => match self.kind {
                PeerKind::Edgestream | PeerKind::EdgestreamSockets | PeerKind::EdgestreamScript => {
                    vec![edgestream::publish_request(self, events)]
                }
                PeerKind::Django => vec![django::publish_request(events)],
                PeerKind::Nchan => events.iter().map(nchan::publish_request).collect(),
            },
        }
    }
}

/// django-eventstream's Pub/Sub message: `data` is the JSON text, as a string.
pub fn django_message(e: &Out<'_>) -> String {
    format!(
        r#"{{"channel":{},"event_type":{},"data":{},"pub_id":null}}"#,
        json_string(e.channel),
        json_string(e.event),
        json_string(&e.data)
    )
}

pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Percent-encodes a query value (channel names only need `:` escaped, but
/// this is correct for any input).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
