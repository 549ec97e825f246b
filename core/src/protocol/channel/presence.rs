//! `GET /presence`: the subjects present on a channel, for
//! `GET /v1/channels/{channel}/presence` (see [`crate::presence`]).
//! `POST /presence-report`: a shard's subjects, which it sends its channel
//! whenever they change and after it joins; `GET /shard-presence` asks a
//! shard for them (a channel that restarted).

use serde::{Deserialize, Serialize};

use super::super::{json, to_json, Call, ProtocolError, Query};

pub const PATH: &str = "/presence";
pub const REPORT_PATH: &str = "/presence-report";
pub const SHARD_PATH: &str = "/shard-presence";

pub fn call() -> Call {
    Call::get(PATH, Query::new())
}

pub fn shard_call() -> Call {
    Call::get(SHARD_PATH, Query::new())
}

/// The subjects of a shard's streams, each with its streams there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRoster {
    pub shard: u32,
    pub subjects: Vec<Present>,
}

impl ShardRoster {
    pub fn call(&self) -> Call {
        Call::post(REPORT_PATH, to_json(self))
    }

    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "shard roster")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceList {
    /// Announced subjects in order, each with its open streams.
    pub subjects: Vec<Present>,
    /// Some subjects did not fit the bound and are not listed.
    pub truncated: bool,
    /// Open streams without a subject to list.
    pub anonymous: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Present {
    pub subject: String,
    pub streams: u64,
}

impl PresenceList {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "presence")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let list = PresenceList {
            subjects: vec![Present {
                subject: "user:1 \"x\"".into(),
                streams: 2,
            }],
            truncated: true,
            anonymous: 3,
        };
        assert_eq!(PresenceList::parse(list.to_json().as_bytes()), Ok(list));
        assert_eq!(call().url(), "https://object/presence");
        assert!(PresenceList::parse(b"{}").is_err());
        let roster = ShardRoster {
            shard: 2,
            subjects: vec![Present {
                subject: "a".into(),
                streams: 1,
            }],
        };
        assert_eq!(
            ShardRoster::parse(roster.to_json().as_bytes()),
            Ok(roster.clone())
        );
        assert_eq!(roster.call().path, REPORT_PATH);
        assert_eq!(shard_call().url(), "https://object/shard-presence");
    }
}
