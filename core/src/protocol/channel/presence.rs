//! `GET /presence`: the subjects present on a channel, for
//! `GET /v1/channels/{channel}/presence` (see [`crate::presence`]).

use serde::{Deserialize, Serialize};

use super::super::{json, to_json, Call, ProtocolError, Query};

pub const PATH: &str = "/presence";

pub fn call() -> Call {
    Call::get(PATH, Query::new())
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
    }
}
