//! What a ticket's object is asked: to hold a grant until it is redeemed
//! once ([`crate::ticket`] decides what a grant allows).

use super::{json, to_json, Call, Incoming, Method, ProtocolError};
use crate::ticket::TicketGrant;

const ISSUE_PATH: &str = "/issue";
const REDEEM_PATH: &str = "/redeem";

/// The status of an answer to a redeem when the ticket is unknown, used or
/// expired.
pub const UNKNOWN: u16 = 404;

#[derive(Debug, PartialEq)]
pub enum TicketRequest {
    /// Hold this grant; answered 201.
    Issue(TicketGrant),
    /// Hand the grant out and forget it; answered with the grant, or
    /// [`UNKNOWN`].
    Redeem,
}

impl TicketRequest {
    pub fn issue(grant: &TicketGrant) -> Call {
        Call::post(ISSUE_PATH, to_json(grant))
    }

    pub fn redeem() -> Call {
        Call::post(REDEEM_PATH, String::new())
    }

    pub fn parse(incoming: &Incoming<'_>) -> Result<Self, ProtocolError> {
        Ok(match (incoming.method, incoming.path) {
            (Method::Post, ISSUE_PATH) => TicketRequest::Issue(json(incoming.body, "issue")?),
            (Method::Post, REDEEM_PATH) => TicketRequest::Redeem,
            (method, path) => {
                return Err(ProtocolError::new(format!(
                    "ticket: no request {method:?} {path}"
                )))
            }
        })
    }
}

/// Parses a redeemed grant.
pub fn grant(body: &[u8]) -> Result<TicketGrant, ProtocolError> {
    json(body, "grant")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let grant = TicketGrant {
            subject: Some("u".into()),
            tenant: "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19".into(),
            jti: None,
            channels: vec!["c:t:r".into()],
            redeem_before: 5,
            stream_expires_at: 9,
            api_key: None,
            jurisdiction: Some(crate::residency::Jurisdiction::Fedramp),
        };
        let call = TicketRequest::issue(&grant);
        let body = call.body.clone().unwrap();
        let incoming = Incoming {
            method: call.method,
            path: call.path,
            query: "",
            body: body.as_bytes(),
        };
        assert_eq!(
            TicketRequest::parse(&incoming).unwrap(),
            TicketRequest::Issue(grant.clone())
        );
        let call = TicketRequest::redeem();
        let incoming = Incoming {
            method: call.method,
            path: call.path,
            query: "",
            body: b"",
        };
        assert_eq!(
            TicketRequest::parse(&incoming).unwrap(),
            TicketRequest::Redeem
        );
        assert_eq!(super::grant(body.as_bytes()).unwrap(), grant);
    }
}
