//! `GET /subscribe` (a WebSocket upgrade): a stream attaches to the channel.
//!
//! `after` is the last sequence number the stream has on this channel; none
//! asks for the channel's current state first. The object queues what the
//! stream must see before any live event (state, or a `reset`, then
//! `live <head>`; see [`crate::relay`]) and from then on sends every publish.
//! `tags` (from [`crate::revocation::stream_tags`]) mark the socket so that a
//! kick finds it, and are checked against the tenant's revocations first.
//! `subject` (the credential's `sub`) is what presence lists, on channels
//! that have it; it travels hex-encoded, since internal queries are never
//! escaped.

use serde::{Deserialize, Serialize};

use super::super::query::{self, pairs, Query};
use super::super::{Call, ProtocolError};

pub const PATH: &str = "/subscribe";

/// How a stream wants its live events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Pre-rendered SSE frames ([`crate::frames`]): a stream of this one
    /// channel, whose event ids are the channel's own.
    Frames,
    /// Relay records ([`crate::relay`]): a stream of several channels builds
    /// ids that name all of them.
    Relay,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub after: Option<u64>,
    pub delivery: Delivery,
    pub tags: Vec<String>,
    pub subject: Option<String>,
}

impl Subscribe {
    pub fn call(&self) -> Call {
        let mut query = Query::new();
        if let Some(after) = self.after {
            query = query.pair("after", &after.to_string());
        }
        if self.delivery == Delivery::Frames {
            query = query.flag("frames");
        }
        for tag in &self.tags {
            query = query.pair("tag", tag);
        }
        if let Some(subject) = &self.subject {
            query = query.pair("subject", &hex(subject.as_bytes()));
        }
        Call {
            upgrade: true,
            ..Call::get(PATH, query)
        }
    }

    pub fn parse(query: &str) -> Result<Self, ProtocolError> {
        let mut subscribe = Subscribe {
            after: None,
            delivery: Delivery::Relay,
            tags: Vec::new(),
            subject: None,
        };
        for (name, value) in pairs(query) {
            match name {
                "after" => subscribe.after = Some(query::number("after", value)?),
                "frames" => subscribe.delivery = Delivery::Frames,
                "tag" => subscribe.tags.push(value.to_owned()),
                "subject" => subscribe.subject = Some(unhex(value)?),
                other => {
                    return Err(ProtocolError::new(format!(
                        "subscribe: unknown parameter {other}"
                    )))
                }
            }
        }
        Ok(subscribe)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(value: &str) -> Result<String, ProtocolError> {
    let bad = || ProtocolError::new("subscribe: subject is not hex-encoded UTF-8");
    if !value.len().is_multiple_of(2) || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let bytes = (0..value.len())
        .step_by(2)
        .map(|i| {
            value
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// The answer when the channel has as many streams as it serves itself:
/// attach to this shard instead (see [`super::shard`]). (A stream with a
/// revoked tag is refused with a `revoked` status, like every request.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToShard {
    pub shard: u32,
}

impl ToShard {
    pub fn to_json(&self) -> String {
        super::super::to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        super::super::json(body, "to shard")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for subscribe in [
            Subscribe {
                after: None,
                delivery: Delivery::Relay,
                tags: vec![],
                subject: None,
            },
            Subscribe {
                after: Some(0),
                delivery: Delivery::Frames,
                tags: vec!["u:00ab".into(), "j:ff".into()],
                subject: Some("user 1&x=ü".into()),
            },
            Subscribe {
                after: Some(u64::MAX),
                delivery: Delivery::Relay,
                tags: vec!["u:1".into()],
                subject: Some(String::new()),
            },
        ] {
            let call = subscribe.call();
            assert!(call.upgrade);
            assert_eq!(call.path, PATH);
            assert_eq!(Subscribe::parse(&call.query).unwrap(), subscribe);
        }
    }

    #[test]
    fn a_redirect_round_trips() {
        assert_eq!(
            ToShard::parse(ToShard { shard: 4 }.to_json().as_bytes()),
            Ok(ToShard { shard: 4 })
        );
    }

    #[test]
    fn unknown_or_malformed_parameters_are_refused() {
        for query in [
            "after=x",
            "after=",
            "after=+1",
            "whatever=1",
            "subject=6",
            "subject=zz",
            "subject=ff",
            "subject=+1",
        ] {
            assert!(Subscribe::parse(query).is_err(), "{query}");
        }
    }
}
