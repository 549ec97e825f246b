//! A Worker isolate's hub for one channel: the streams of that channel in
//! one isolate share one WebSocket to the object instead of one each.
//!
//! - `POST /hub/join` ([`super::hub_join`]): the streams that joined the hub
//!   learn what they must see before any live event, and are checked against
//!   the revocations. Live frames then reach them through the hub.
//! - `GET /hub` (a WebSocket upgrade, from the stream that owns the hub):
//!   the object sends the socket every event after `after` from history,
//!   then every publish as pre-rendered frames, in one order, so a hub that
//!   attaches again from where it was sees no gap and no repeat.
//! - On that socket the hub reports its stream count ([`HubReport`]), which
//!   the object keeps on the socket ([`HubSeat`]); the object sends the hub
//!   the tags a kick names ([`HubKick`]) and the hub ends those of its
//!   streams, and asks it for its count when stats are read ([`HubCount`]).
//!
//! Each hub carries a random id in its joins and its attach, so that the
//! object counts the streams that joined a hub whose owner has not attached
//! yet (`crate::hubs`).

use serde::{Deserialize, Serialize};

use super::super::query::{self, pairs, Query};
use super::super::{to_json, Call, ProtocolError};

pub const PATH: &str = "/hub";

/// The owner of a hub attaches its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubSubscribe {
    /// The hub's id, the same in its streams' joins.
    pub hub: u64,
    /// The last sequence number the hub handed to its streams.
    pub after: u64,
    /// Streams the hub serves at the time it attaches.
    pub streams: u64,
}

impl HubSubscribe {
    pub fn call(&self) -> Call {
        Call {
            upgrade: true,
            ..Call::get(
                PATH,
                Query::new()
                    .pair("hub", &self.hub.to_string())
                    .pair("after", &self.after.to_string())
                    .pair("streams", &self.streams.to_string()),
            )
        }
    }

    pub fn parse(query: &str) -> Result<Self, ProtocolError> {
        let (mut hub, mut after, mut streams) = (None, None, None);
        for (name, value) in pairs(query) {
            match name {
                "hub" => hub = Some(query::number("hub", value)?),
                "after" => after = Some(query::number("after", value)?),
                "streams" => streams = Some(query::number("streams", value)?),
                other => {
                    return Err(ProtocolError::new(format!(
                        "hub: unknown parameter {other}"
                    )))
                }
            }
        }
        match (hub, after, streams) {
            (Some(hub), Some(after), Some(streams)) => Ok(HubSubscribe {
                hub,
                after,
                streams,
            }),
            _ => Err(ProtocolError::new("hub: expected hub, after and streams")),
        }
    }
}

/// What a hub sends on its socket whenever its stream count changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubReport {
    pub streams: u64,
}

impl HubReport {
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// What the object keeps on a hub's socket: which hub it is and the count
/// it last reported (kept through hibernation, as attachments are).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSeat {
    pub hub: u64,
    pub streams: u64,
}

/// What the object sends every hub when stats are read: each answers with a
/// [`HubCounted`] of the same `id`, so that the stats count each stream as
/// its hub knows it now, not as it last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubCount {
    pub count: u64,
}

impl HubCount {
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// A hub's answer to the [`HubCount`] `counted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubCounted {
    pub counted: u64,
    pub hub: u64,
    pub streams: u64,
}

/// What the object sends a hub for a kick that names a tag: the hub ends
/// its streams that carry it and answers with a [`HubKicked`] of the same
/// `id`, so that the kick's report counts them. (A kick of every stream
/// closes the socket.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubKick {
    pub kick: String,
    pub id: u64,
}

/// A hub's answer to the [`HubKick`] `kicked`: how many of its streams it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubKicked {
    pub kicked: u64,
    pub hub: u64,
    pub closed: u64,
}

impl HubKicked {
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// Everything a hub sends its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HubMessage {
    Report(HubReport),
    Kicked(HubKicked),
    Counted(HubCounted),
}

impl HubMessage {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        super::super::json(text.as_bytes(), "hub message")
    }
}

impl HubKick {
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for subscribe in [
            HubSubscribe {
                hub: 0,
                after: 0,
                streams: 1,
            },
            HubSubscribe {
                hub: (1 << 53) - 1,
                after: u64::MAX,
                streams: 10_000,
            },
        ] {
            let call = subscribe.call();
            assert!(call.upgrade);
            assert_eq!(call.path, PATH);
            assert_eq!(HubSubscribe::parse(&call.query), Ok(subscribe));
        }
        let report = HubReport { streams: 12 };
        assert_eq!(
            HubMessage::parse(&report.to_json()),
            Ok(HubMessage::Report(report))
        );
        let kicked = HubKicked {
            kicked: 3,
            hub: 77,
            closed: 2,
        };
        assert_eq!(
            HubMessage::parse(&kicked.to_json()),
            Ok(HubMessage::Kicked(kicked))
        );
        let counted = HubCounted {
            counted: 4,
            hub: 77,
            streams: 0,
        };
        assert_eq!(
            HubMessage::parse(&to_json(&counted)),
            Ok(HubMessage::Counted(counted))
        );
        assert_eq!(HubCount { count: 4 }.to_json(), r#"{"count":4}"#);
        assert_eq!(
            HubKick {
                kick: "u:0a".into(),
                id: 9
            }
            .to_json(),
            r#"{"kick":"u:0a","id":9}"#
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for query in [
            "",
            "after=1",
            "streams=1",
            "after=1&streams=1",
            "hub=1&after=x&streams=1",
            "hub=x&after=1&streams=1",
            "hub=1&after=1&streams=1&x=2",
        ] {
            assert!(HubSubscribe::parse(query).is_err(), "{query}");
        }
        for text in [
            "",
            "{}",
            r#"{"streams":-1}"#,
            r#"{"streams":1,"x":2}"#,
            r#"{"kicked":1}"#,
            r#"{"kicked":1,"closed":2}"#,
            r#"{"kicked":1,"closed":2,"streams":3}"#,
            r#"{"counted":1,"streams":3}"#,
            r#"{"counted":1,"hub":2}"#,
            r#"{"kicked":-1,"closed":2}"#,
            "live 3",
        ] {
            assert!(HubMessage::parse(text).is_err(), "{text}");
        }
    }
}
