//! `GET /stats`: what `GET /v1/channels/{channel}` reports about a channel.

use serde::{Deserialize, Serialize};

use super::super::{json, to_json, Call, ProtocolError, Query};

pub const PATH: &str = "/stats";

pub fn call() -> Call {
    Call::get(PATH, Query::new())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Open streams, the channel's own and its shards' together.
    pub streams: u64,
    /// The latest sequence number, none before the first event.
    pub last_id: Option<u64>,
    /// When the latest event was published (milliseconds since the epoch).
    pub last_event_ms: Option<u64>,
    /// Events held for resume.
    pub history: u64,
    /// SQLite rows the object has written since it started (storage is
    /// billed per row; the benchmark reports this per event). Not part of
    /// the public answer.
    pub rows_written: u64,
}

impl ChannelStats {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "stats")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let stats = ChannelStats {
            streams: 3,
            last_id: Some(9),
            last_event_ms: Some(1),
            history: 9,
            rows_written: 12,
        };
        assert_eq!(ChannelStats::parse(stats.to_json().as_bytes()), Ok(stats));
        assert_eq!(call().url(), "https://object/stats");
    }
}
