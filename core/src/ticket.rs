//! Stream tickets: short-lived, single-use credentials for `GET /v1/stream`,
//! so that a browser's long-lived token need not sit in a URL (where
//! proxies, logs and `Referer` headers keep it).
//!
//! A ticket is an unguessable random id; what it grants is stored under it by
//! the relay and handed out at most once. Single use is enforced by storage
//! with one writer per ticket, not here; this module decides what a grant
//! allows.

use crate::channel::ChannelName;
use crate::problem::Problem;
use crate::residency::Jurisdiction;
use crate::token::Claims;
use serde::{Deserialize, Serialize};

/// How long a ticket can be redeemed after it was issued.
pub const TICKET_TTL_SECONDS: u64 = 60;
/// Random bytes in a ticket id (rendered as lowercase hex).
pub const TICKET_BYTES: usize = 32;

/// The body of `POST /v1/tickets`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    channels: Vec<String>,
}

/// Parses `POST /v1/tickets`: 1 to `max_channels` valid channel names.
pub fn parse_ticket_request(body: &[u8], max_channels: usize) -> Result<Vec<ChannelName>, Problem> {
    // A derived struct also reads a JSON array of its fields (`[[...]]`);
    // the body is an object and nothing else.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Problem::invalid_body("expected {\"channels\": [...]}"));
    }
    let request: TicketRequest = serde_json::from_slice(body)
        .map_err(|e| Problem::invalid_body(format!("expected {{\"channels\": [...]}}: {e}")))?;
    crate::channel::requested_channels(
        request.channels.iter().map(|c| ("channel", c.as_str())),
        max_channels,
    )
}

/// A ticket id as issued: exactly `2 * TICKET_BYTES` lowercase hex digits,
/// after `<jurisdiction>.` when its tenant's data lives in a jurisdiction.
/// The prefix is where the ticket's object was made, the only way to find
/// it again, since an object's id depends on its jurisdiction. Anything else
/// is refused before it reaches storage. Returns the jurisdiction.
pub fn check_ticket_shape(ticket: &str) -> Result<Option<Jurisdiction>, Problem> {
    let malformed = || Problem::invalid_token("the ticket is malformed");
    let (jurisdiction, random) = match ticket.split_once('.') {
        None => (None, ticket),
        Some((name, random)) => (
            Some(Jurisdiction::parse(name).ok_or_else(malformed)?),
            random,
        ),
    };
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if random.len() != 2 * TICKET_BYTES || !random.bytes().all(hex) {
        return Err(malformed());
    }
    Ok(jurisdiction)
}

/// The id of a ticket with `random` (hex) for a tenant placed in
/// `jurisdiction`; [`check_ticket_shape`] reads it back.
pub fn ticket_id(jurisdiction: Option<Jurisdiction>, random: &str) -> String {
    match jurisdiction {
        None => random.to_owned(),
        Some(j) => format!("{j}.{random}"),
    }
}

/// What a ticket grants, stored under its id until it is redeemed or expires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketGrant {
    pub subject: Option<String>,
    pub tenant: String,
    pub jti: Option<String>,
    pub channels: Vec<String>,
    /// Until when the ticket may be redeemed.
    pub redeem_before: u64,
    /// When the credential that asked for the ticket expires: a stream opened
    /// with the ticket closes then, as it would have with the credential.
    pub stream_expires_at: u64,
    /// The fingerprint of the API key that asked for the ticket: a stream
    /// opened with the ticket ends when the key is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The jurisdiction the ticket was issued for: a stream opened with it
    /// asserts that jurisdiction as a token's claim would, so a ticket issued
    /// before its tenant was placed elsewhere opens nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Jurisdiction>,
}

impl TicketGrant {
    /// A grant for `channels`, which the caller has already passed through the
    /// tenant gate. A ticket always belongs to one tenant.
    pub fn new(
        claims: &Claims,
        channels: &[ChannelName],
        now_unix: u64,
        api_key: Option<String>,
    ) -> Result<Self, Problem> {
        let tenant = claims.tenant.clone().ok_or_else(Problem::tenant_missing)?;
        Ok(TicketGrant {
            subject: claims.subject.clone(),
            tenant,
            jti: claims.jti.clone(),
            channels: channels.iter().map(|c| c.as_str().to_owned()).collect(),
            redeem_before: now_unix + TICKET_TTL_SECONDS,
            stream_expires_at: claims.expires_at,
            api_key,
            jurisdiction: None,
        })
    }

    /// The grant, issued for a tenant whose data lives in `jurisdiction`.
    pub fn in_jurisdiction(self, jurisdiction: Option<Jurisdiction>) -> Self {
        TicketGrant {
            jurisdiction,
            ..self
        }
    }

    /// Redeems the grant for a stream of `requested` channels (none means all
    /// of the ticket's). Returns the identity the stream runs as and its
    /// channels. Asking for a channel the ticket does not name is refused.
    pub fn redeem(
        self,
        requested: Vec<ChannelName>,
        now_unix: u64,
    ) -> Result<(Claims, Vec<ChannelName>), Problem> {
        if now_unix >= self.redeem_before {
            return Err(Problem::invalid_token("the ticket has expired"));
        }
        let channels = if requested.is_empty() {
            self.channels
                .iter()
                .map(|c| ChannelName::parse(c).map_err(Problem::from))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            if let Some(extra) = requested
                .iter()
                .find(|c| !self.channels.iter().any(|g| g == c.as_str()))
            {
                return Err(Problem::channel_forbidden(format!(
                    "the ticket does not grant channel \"{extra}\""
                )));
            }
            requested
        };
        let claims = Claims {
            subject: self.subject,
            tenant: Some(self.tenant),
            scopes: Vec::new(),
            expires_at: self.stream_expires_at,
            jti: self.jti,
            jurisdiction: self.jurisdiction.map(|j| j.as_str().to_owned()),
        };
        Ok((claims, channels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";

    fn channel(resource: &str) -> ChannelName {
        ChannelName::parse(&format!("scan-progress:{TENANT}:{resource}")).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            subject: Some("user-1".into()),
            tenant: Some(TENANT.into()),
            scopes: vec![],
            expires_at: 5_000,
            jti: Some("j1".into()),
            jurisdiction: None,
        }
    }

    #[test]
    fn a_grant_redeems_for_its_channels_and_keeps_the_credential_expiry() {
        let grant =
            TicketGrant::new(&claims(), &[channel("a"), channel("b")], 1_000, None).unwrap();
        assert_eq!(grant.redeem_before, 1_000 + TICKET_TTL_SECONDS);
        let (who, channels) = grant.clone().redeem(vec![], 1_010).unwrap();
        assert_eq!(channels, vec![channel("a"), channel("b")]);
        assert_eq!(who.tenant.as_deref(), Some(TENANT));
        assert_eq!(who.expires_at, 5_000);
        assert!(
            who.scopes.is_empty(),
            "a ticket never carries publish rights"
        );
        let (_, subset) = grant.redeem(vec![channel("b")], 1_010).unwrap();
        assert_eq!(subset, vec![channel("b")]);
    }

    #[test]
    fn a_grant_refuses_other_channels_and_expires() {
        let grant =
            TicketGrant::new(&claims(), &[channel("a")], 1_000, Some("f00d".into())).unwrap();
        let stored: TicketGrant =
            serde_json::from_str(&serde_json::to_string(&grant).unwrap()).unwrap();
        assert_eq!(
            stored.api_key.as_deref(),
            Some("f00d"),
            "the key's fingerprint travels with the grant"
        );
        let err = grant
            .clone()
            .redeem(vec![channel("a"), channel("z")], 1_001)
            .unwrap_err();
        assert_eq!((err.status, err.code), (403, "channel_forbidden"));
        let err = grant
            .redeem(vec![], 1_000 + TICKET_TTL_SECONDS)
            .unwrap_err();
        assert_eq!((err.status, err.code), (401, "invalid_token"));
    }

    #[test]
    fn a_grant_carries_its_jurisdiction_to_the_stream_it_opens() {
        let grant = TicketGrant::new(&claims(), &[channel("a")], 1_000, None)
            .unwrap()
            .in_jurisdiction(Some(Jurisdiction::Eu));
        let stored = serde_json::to_string(&grant).unwrap();
        assert!(stored.contains(r#""jurisdiction":"eu""#), "{stored}");
        let grant: TicketGrant = serde_json::from_str(&stored).unwrap();
        let (redeemed, _) = grant.redeem(Vec::new(), 1_001).unwrap();
        assert_eq!(redeemed.jurisdiction.as_deref(), Some("eu"));
        // A grant stored before jurisdictions existed asserts none.
        let plain = TicketGrant::new(&claims(), &[channel("a")], 1_000, None).unwrap();
        let stored = serde_json::to_string(&plain).unwrap();
        assert!(!stored.contains("jurisdiction"));
        let (redeemed, _) = serde_json::from_str::<TicketGrant>(&stored)
            .unwrap()
            .redeem(Vec::new(), 1_001)
            .unwrap();
        assert_eq!(redeemed.jurisdiction, None);
    }

    #[test]
    fn a_platform_credential_gets_no_ticket() {
        let platform = Claims {
            tenant: None,
            ..claims()
        };
        assert_eq!(
            TicketGrant::new(&platform, &[channel("a")], 0, None)
                .unwrap_err()
                .code,
            "tenant_missing"
        );
    }

    #[test]
    fn ticket_shape() {
        let random = "ab".repeat(TICKET_BYTES);
        assert_eq!(check_ticket_shape(&random), Ok(None));
        for j in Jurisdiction::ALL {
            let id = ticket_id(Some(j), &random);
            assert_eq!(check_ticket_shape(&id), Ok(Some(j)), "{id}");
        }
        assert_eq!(ticket_id(None, &random), random);
        for bad in [
            "",
            "AB".repeat(TICKET_BYTES).as_str(),
            &"a".repeat(63),
            &"g".repeat(64),
            "../../etc",
            &format!("mars.{random}"),
            &format!("EU.{random}"),
            &format!(".{random}"),
            &format!("eu.eu.{random}"),
            &format!("eu.{random}."),
            "eu.",
        ] {
            assert!(check_ticket_shape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ticket_requests() {
        let body = format!(r#"{{"channels":["scan-progress:{TENANT}:a"]}}"#);
        assert_eq!(
            parse_ticket_request(body.as_bytes(), 5).unwrap(),
            vec![channel("a")]
        );
        assert_eq!(
            parse_ticket_request(br#"{"channels":[]}"#, 5)
                .unwrap_err()
                .code,
            "no_channels"
        );
        assert_eq!(
            parse_ticket_request(b"{}", 5).unwrap_err().code,
            "invalid_body"
        );
        assert_eq!(
            parse_ticket_request(br#"{"channels":["x"]}"#, 5)
                .unwrap_err()
                .code,
            "invalid_channel"
        );
    }
}
