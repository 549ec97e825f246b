//! `POST /kick`: close the sockets of the streams a kick names, and remember
//! the revocation it carries so that those streams cannot attach again while
//! it lasts. Sent by the tenant's object to every channel its tenant uses,
//! and by a channel to its shards.

use serde::{Deserialize, Serialize};

use super::super::{json, to_json, Call, ProtocolError};
use crate::revocation::Revocation;

pub const PATH: &str = "/kick";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kick {
    /// The socket tag to close; none closes every socket (a tenant kick,
    /// which revokes nothing: its streams may reconnect at once).
    pub tag: Option<String>,
    /// Until when the tag stays refused (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl Kick {
    pub fn call(&self) -> Call {
        Call::post(PATH, to_json(self))
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "kick")
    }

    /// The revocation to remember, if the kick carries one.
    pub fn revocation(&self) -> Option<Revocation> {
        Some(Revocation {
            tag: self.tag.clone()?,
            until_ms: self.until_ms?,
        })
    }
}

/// How many sockets a kick closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kicked {
    pub closed: u64,
}

impl Kicked {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "kicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let kick = Kick {
            tag: Some("u:0a".into()),
            until_ms: Some(9),
        };
        assert_eq!(
            Kick::parse(kick.call().body.unwrap().as_bytes()),
            Ok(kick.clone())
        );
        assert_eq!(
            kick.revocation(),
            Some(Revocation {
                tag: "u:0a".into(),
                until_ms: 9
            })
        );
        let tenant = Kick {
            tag: None,
            until_ms: None,
        };
        assert_eq!(
            Kick::parse(tenant.call().body.unwrap().as_bytes()),
            Ok(tenant.clone())
        );
        assert_eq!(tenant.revocation(), None);
        assert_eq!(
            Kicked::parse(Kicked { closed: 3 }.to_json().as_bytes()),
            Ok(Kicked { closed: 3 })
        );
        assert!(Kick::parse(br#"{"tag":null,"everyone":true}"#).is_err());
    }
}
