//! Stream tickets: the `POST /v1/tickets` body and ticket ids as presented.

use super::channel::expected_channels;
use super::json;
use super::problem::assert_client_error;
use edgestream_core::channel::ChannelName;
use edgestream_core::residency::Jurisdiction;
use edgestream_core::ticket::{
    check_ticket_shape, parse_ticket_request, TicketGrant, TICKET_TTL_SECONDS,
};
use edgestream_core::token::Claims;

/// Any body: an accepted request is `{"channels": [...]}` and nothing else,
/// and its channels are what a stream request with those names gets.
pub fn check_request(body: &[u8], max_channels: usize) {
    let parsed = parse_ticket_request(body, max_channels);
    let names: Option<Vec<String>> = json::members(body).and_then(|members| match &members[..] {
        [(name, list)] if name == "channels" => serde_json::from_str(list.get()).ok(),
        _ => None,
    });
    let expected = names.map(|names| {
        let query: Vec<(&str, &str)> = names.iter().map(|n| ("channel", n.as_str())).collect();
        expected_channels(&query, max_channels)
    });
    match (parsed, expected) {
        (Ok(channels), Some(Ok(expected))) => {
            assert_eq!(
                channels.iter().map(ChannelName::as_str).collect::<Vec<_>>(),
                expected
            );
        }
        (Err(problem), Some(Err(code))) => assert_eq!(problem.code, code),
        (Err(problem), None) => {
            assert_eq!(problem.code, "invalid_body");
            assert_client_error(&problem);
        }
        (got, expected) => panic!("got {got:?}, expected {expected:?}"),
    }
}

/// Any text: a ticket id is exactly 64 lowercase hex digits, after
/// `<jurisdiction>.` when there is one.
pub fn check_shape(ticket: &str) {
    let (named, random) = match ticket.split_once('.') {
        Some((name, random)) => (Jurisdiction::parse(name).map(Some), random),
        None => (Some(None), ticket),
    };
    let hex = random.len() == 64
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let shaped = named.is_some() && hex;
    match check_ticket_shape(ticket) {
        Ok(jurisdiction) => {
            assert!(shaped, "{ticket:?}");
            assert_eq!(Some(jurisdiction), named, "{ticket:?}");
        }
        Err(problem) => {
            assert!(!shaped, "{ticket:?}");
            assert_eq!((problem.status, problem.code), (401, "invalid_token"));
        }
    }
}

/// Redeeming a grant never opens a channel the grant does not name, never
/// carries publish rights, and runs as the grant's tenant until the
/// credential that asked for it expires.
pub fn check_redeem(
    claims: &Claims,
    granted: &[ChannelName],
    requested: &[ChannelName],
    issued: u64,
    now: u64,
) {
    let Ok(grant) = TicketGrant::new(claims, granted, issued, None) else {
        assert!(claims.tenant.is_none(), "a tenant credential got no ticket");
        return;
    };
    let names = |list: &[ChannelName]| {
        list.iter()
            .map(ChannelName::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    match grant.redeem(requested.to_vec(), now) {
        Ok((who, channels)) => {
            assert!(now < issued + TICKET_TTL_SECONDS);
            assert!(
                channels.iter().all(|c| granted.contains(c)),
                "{channels:?} beyond {granted:?}"
            );
            let expected = if requested.is_empty() {
                granted
            } else {
                requested
            };
            assert_eq!(names(&channels), names(expected));
            assert_eq!(who.tenant, claims.tenant);
            assert!(who.scopes.is_empty());
            assert_eq!(
                (who.subject.as_ref(), who.expires_at),
                (claims.subject.as_ref(), claims.expires_at)
            );
        }
        Err(problem) => {
            assert_client_error(&problem);
            let expired = now >= issued + TICKET_TTL_SECONDS;
            assert!(
                expired || requested.iter().any(|c| !granted.contains(c)),
                "{problem:?}"
            );
        }
    }
}
