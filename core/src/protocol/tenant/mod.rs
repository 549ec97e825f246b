//! What a tenant's object is asked: by channel objects, to register and learn
//! the tenant's revocations ([`Register`]), and by the Worker, to carry out a
//! kick ([`KickOrder`]) and, with `MAX_STREAMS_PER_TENANT`, to lease a block
//! of stream slots ([`LeaseAsk`], answered with a [`LeaseGrant`]). Opening a
//! stream reaches this object only when its isolate's block is used up: the
//! channel checks revocations itself, from what it learnt here.

use serde::{Deserialize, Serialize};

use super::{json, to_json, Call, Incoming, Method, ProtocolError};
pub use crate::quota::{LeaseAsk, LeaseGrant};
use crate::revocation::Revocation;

const REGISTER_PATH: &str = "/register";
const KICK_PATH: &str = "/kick";
const LEASE_PATH: &str = "/lease";

/// A channel of the tenant has streams (sent once per activation of the
/// channel's object, and at most hourly while it stays active), so that
/// kicks reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub channel: String,
}

impl Register {
    pub fn call(&self) -> Call {
        Call::post(REGISTER_PATH, to_json(self))
    }
}

/// The tenant's revocations in force, the answer to [`Register`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    pub revocations: Vec<Revocation>,
}

impl Revocations {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "revocations")
    }
}

/// `POST /v1/admin/kick`, validated: whose streams to end, and until when to
/// refuse them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickOrder {
    /// The socket tag to close; none closes every stream of the tenant.
    pub tag: Option<String>,
    pub until_ms: u64,
}

impl KickOrder {
    pub fn call(&self) -> Call {
        Call::post(KICK_PATH, to_json(self))
    }
}

/// What a kick did by the time the tenant's object answered: every channel
/// it was sent to, the sockets they closed, and the channels still to be
/// reached (retried from the object's alarm until done).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KickReport {
    pub channels: u64,
    pub closed: u64,
    pub pending: u64,
}

impl KickReport {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "kick report")
    }
}

impl LeaseAsk {
    pub fn call(&self) -> Call {
        Call::post(LEASE_PATH, to_json(self))
    }
}

impl LeaseGrant {
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        json(body, "lease grant")
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum TenantRequest {
    Register(Register),
    Kick(KickOrder),
    Lease(LeaseAsk),
}

impl TenantRequest {
    pub fn parse(incoming: &Incoming<'_>) -> Result<Self, ProtocolError> {
        Ok(match (incoming.method, incoming.path) {
            (Method::Post, REGISTER_PATH) => {
                TenantRequest::Register(json(incoming.body, "register")?)
            }
            (Method::Post, KICK_PATH) => TenantRequest::Kick(json(incoming.body, "kick order")?),
            (Method::Post, LEASE_PATH) => TenantRequest::Lease(json(incoming.body, "lease ask")?),
            (method, path) => {
                return Err(ProtocolError::new(format!(
                    "tenant: no request {method:?} {path}"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(call: &Call) -> TenantRequest {
        let body = call.body.as_deref().unwrap_or("").as_bytes();
        TenantRequest::parse(&Incoming {
            method: call.method,
            path: call.path,
            query: &call.query,
            body,
        })
        .unwrap()
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let register = Register {
            channel: "c:t:r".into(),
        };
        assert_eq!(parse(&register.call()), TenantRequest::Register(register));
        let order = KickOrder {
            tag: Some("j:ab".into()),
            until_ms: 10,
        };
        assert_eq!(parse(&order.call()), TenantRequest::Kick(order));
        let revocations = Revocations {
            revocations: vec![Revocation {
                tag: "u:1".into(),
                until_ms: 3,
            }],
        };
        assert_eq!(
            Revocations::parse(revocations.to_json().as_bytes()),
            Ok(revocations)
        );
        let report = KickReport {
            channels: 3,
            closed: 2,
            pending: 1,
        };
        assert_eq!(KickReport::parse(report.to_json().as_bytes()), Ok(report));
        let ask = LeaseAsk {
            holder: "h".into(),
            seq: 4,
            want: 9,
            limit: 100,
        };
        assert_eq!(parse(&ask.call()), TenantRequest::Lease(ask));
        let grant = LeaseGrant {
            seq: 4,
            slots: 9,
            expires_in_ms: 30_000,
        };
        assert_eq!(LeaseGrant::parse(grant.to_json().as_bytes()), Ok(grant));
        let unknown_field = Incoming {
            method: Method::Post,
            path: LEASE_PATH,
            query: "",
            body: br#"{"holder":"h","seq":1,"want":1,"limit":1,"extra":1}"#,
        };
        assert!(TenantRequest::parse(&unknown_field).is_err());
        let unknown = Incoming {
            method: Method::Post,
            path: "/admit",
            query: "",
            body: b"{}",
        };
        assert!(TenantRequest::parse(&unknown).is_err());
    }
}
