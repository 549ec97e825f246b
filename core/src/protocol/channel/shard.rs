//! Shards: more streams on one channel than one object should serve.
//!
//! A channel's object takes streams itself up to `SHARD_SUBSCRIBERS`; beyond
//! that it answers a subscribe with [`Refused::Shard`](super::Refused) and
//! the stream attaches to that shard's object instead. The channel object
//! stays the one writer (sequence numbers, history, idempotency keys); it
//! sends each publish once per shard ([`Push`]), and the shard fans it out to
//! its own sockets exactly as the channel does to its own. A shard learns
//! what a newly attached stream must see first from the channel when it
//! starts serving ([`Join`]), and keeps it current from the pushes.
//!
//! A shard that has no streams left is retired ([`Retire`]); it joins again
//! before it takes another stream, so a push never misses a shard that has
//! streams. A stream that still misses events (a push that failed, a shard
//! that restarted) sees a gap in sequence numbers and pages it in from the
//! channel's history, like a resuming stream.

use serde::{Deserialize, Serialize};

use super::super::{json, text, to_json, Call, Incoming, Method, ProtocolError, Query};
use super::subscribe::Subscribe;
use super::Kick;
use crate::residency::{self, Jurisdiction};
use crate::revocation::Revocation;

pub const JOIN_PATH: &str = "/join";
const PUSH_PATH: &str = "/push";
const RETIRE_PATH: &str = "/retire";
const STATS_PATH: &str = "/shard-stats";

/// The shard object's name: one namespace holds every channel's shards.
pub fn shard_name(channel: &str, shard: u32) -> String {
    format!("{channel}#{shard}")
}

/// Shard `shard` starts serving streams (channel request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    pub shard: u32,
}

impl Join {
    pub fn call(&self) -> Call {
        Call::post(JOIN_PATH, to_json(self))
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "join")
    }
}

/// What the channel tells a joining shard: where the channel is, its current
/// state (a relay message of the latest event of each type) and the tenant's
/// revocations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub head: u64,
    pub state: String,
    pub revocations: Vec<Revocation>,
}

impl Joined {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "joined")
    }
}

/// One publish, as the channel sends it to each shard: the jurisdiction the
/// channel's object lives in (a shard takes events only from its own, see
/// [`Push::belongs`]), the channel's name (a shard renders frames with it)
/// and the relay message of the events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push<'a> {
    pub jurisdiction: Option<Jurisdiction>,
    pub channel: &'a str,
    pub relay: &'a str,
}

impl<'a> Push<'a> {
    pub fn call(jurisdiction: Option<Jurisdiction>, channel: &str, relay: &str) -> Call {
        let jurisdiction = residency::to_wire(jurisdiction);
        Call::post(PUSH_PATH, format!("{jurisdiction}\n{channel}\n{relay}"))
    }

    fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let (jurisdiction, rest) = text(body, "push")?
            .split_once('\n')
            .ok_or_else(|| ProtocolError::new("push: no jurisdiction line"))?;
        let jurisdiction = residency::from_wire(jurisdiction)
            .ok_or_else(|| ProtocolError::new("push: unknown jurisdiction"))?;
        let (channel, relay) = rest
            .split_once('\n')
            .ok_or_else(|| ProtocolError::new("push: no channel line"))?;
        Ok(Push {
            jurisdiction,
            channel,
            relay,
        })
    }

    /// Whether a shard whose own id is in `shard` and that serves `channel`
    /// takes this push: only events of its own channel, from an object in its
    /// own jurisdiction. Anything else is a channel object of the same name
    /// in another place, whose events must not reach this shard's streams.
    pub fn belongs(&self, shard: Option<Jurisdiction>, channel: &str) -> bool {
        self.jurisdiction == shard && self.channel == channel
    }
}

/// A shard's answer to a push, a retire or a stats request: the streams it
/// holds now, so the channel can count them and retire empty shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLoad {
    pub streams: u64,
}

impl ShardLoad {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "shard load")
    }
}

pub fn retire_call() -> Call {
    Call::post(RETIRE_PATH, String::new())
}

pub fn stats_call() -> Call {
    Call::get(STATS_PATH, Query::new())
}

/// A request to a shard's object, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum ShardRequest<'a> {
    Subscribe(Subscribe),
    Push(Push<'a>),
    Kick(Kick),
    /// The channel stops pushing unless the shard still has streams.
    Retire,
    Stats,
    /// The subjects of its streams, for presence.
    Presence,
    /// Drop memory and sockets (development only).
    Reset,
}

impl<'a> ShardRequest<'a> {
    pub fn parse(incoming: &Incoming<'a>) -> Result<Self, ProtocolError> {
        Ok(match (incoming.method, incoming.path) {
            (Method::Get, super::subscribe::PATH) => {
                ShardRequest::Subscribe(Subscribe::parse(incoming.query)?)
            }
            (Method::Post, PUSH_PATH) => ShardRequest::Push(Push::parse(incoming.body)?),
            (Method::Post, super::kick::PATH) => ShardRequest::Kick(Kick::parse(incoming.body)?),
            (Method::Post, RETIRE_PATH) => ShardRequest::Retire,
            (Method::Get, STATS_PATH) => ShardRequest::Stats,
            (Method::Get, super::presence::SHARD_PATH) => ShardRequest::Presence,
            (Method::Post, super::reset::PATH) => ShardRequest::Reset,
            (method, path) => {
                return Err(ProtocolError::new(format!(
                    "shard: no request {method:?} {path}"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::channel::Delivery;

    fn parse(call: &Call) -> ShardRequest<'_> {
        let body = call.body.as_deref().unwrap_or("").as_bytes();
        ShardRequest::parse(&Incoming {
            method: call.method,
            path: call.path,
            query: &call.query,
            body,
        })
        .unwrap()
    }

    fn push_body(body: &str) -> Result<ShardRequest<'_>, ProtocolError> {
        ShardRequest::parse(&Incoming {
            method: Method::Post,
            path: PUSH_PATH,
            query: "",
            body: body.as_bytes(),
        })
    }

    #[test]
    fn a_push_names_its_jurisdiction_or_is_refused() {
        // The format before jurisdictions: its first line is a channel name.
        assert!(push_body("c:t:r\n1 a.b {}").is_err());
        assert!(push_body("mars\nc:t:r\n1 a.b {}").is_err());
        assert!(push_body("EU\nc:t:r\n1 a.b {}").is_err());
        assert!(push_body("eu\nc:t:r").is_err());
        assert!(push_body("").is_err());
    }

    #[test]
    fn a_shard_takes_pushes_only_from_its_own_place_and_channel() {
        let push = Push {
            jurisdiction: Some(Jurisdiction::Eu),
            channel: "c:t:r",
            relay: "",
        };
        assert!(push.belongs(Some(Jurisdiction::Eu), "c:t:r"));
        assert!(!push.belongs(None, "c:t:r"));
        assert!(!push.belongs(Some(Jurisdiction::Us), "c:t:r"));
        assert!(!push.belongs(Some(Jurisdiction::Eu), "c:t:other"));
        let global = Push {
            jurisdiction: None,
            ..push
        };
        assert!(global.belongs(None, "c:t:r"));
        assert!(!global.belongs(Some(Jurisdiction::Eu), "c:t:r"));
    }

    #[test]
    fn shard_requests_round_trip() {
        let subscribe = Subscribe {
            after: None,
            delivery: Delivery::Relay,
            tags: vec![],
            subject: None,
        };
        assert_eq!(parse(&subscribe.call()), ShardRequest::Subscribe(subscribe));
        for jurisdiction in [
            None,
            Some(Jurisdiction::Eu),
            Some(Jurisdiction::FedrampHigh),
        ] {
            let push = Push::call(jurisdiction, "c:t:r", "1 a.b {}\n2 a.b null");
            assert_eq!(
                parse(&push),
                ShardRequest::Push(Push {
                    jurisdiction,
                    channel: "c:t:r",
                    relay: "1 a.b {}\n2 a.b null"
                })
            );
        }
        assert_eq!(parse(&retire_call()), ShardRequest::Retire);
        assert_eq!(parse(&stats_call()), ShardRequest::Stats);
        assert_eq!(
            parse(&super::super::presence::shard_call()),
            ShardRequest::Presence
        );
        assert_eq!(parse(&super::super::reset::call()), ShardRequest::Reset);
        let kick = Kick {
            tag: Some("u:1".into()),
            until_ms: Some(5),
        };
        assert_eq!(parse(&kick.call()), ShardRequest::Kick(kick));
    }

    #[test]
    fn answers_round_trip() {
        let joined = Joined {
            head: 4,
            state: "3 a.b 1".into(),
            revocations: vec![Revocation {
                tag: "u:1".into(),
                until_ms: 2,
            }],
        };
        assert_eq!(Joined::parse(joined.to_json().as_bytes()), Ok(joined));
        assert_eq!(
            ShardLoad::parse(ShardLoad { streams: 7 }.to_json().as_bytes()),
            Ok(ShardLoad { streams: 7 })
        );
        assert_eq!(shard_name("c:t:r", 3), "c:t:r#3");
    }
}
