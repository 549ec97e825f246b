//! Kicks (`POST /v1/admin/kick`): whose streams end, and for how long a
//! revoked user or token stays out.

use super::channel::is_uuid;
use super::json;
use super::problem::assert_client_error;
use edgestream_core::revocation::{
    parse_kick, Target, DEFAULT_REVOCATION_SECONDS, MAX_REVOCATION_SECONDS,
};

const FIELDS: [&str; 4] = ["tenant", "user", "jti", "ttl_seconds"];

/// Any body: an accepted kick names a canonical tenant, at most one of a
/// user and a token, each 1-1024 bytes, and lasts 1 second to 30 days from
/// now; it is what the body said, without duplicate or unknown members. A
/// refusal is a 400.
pub fn check_body(body: &[u8], now_unix: u64) {
    let kick = match parse_kick(body, now_unix) {
        Ok(kick) => kick,
        Err(problem) => {
            assert_eq!((problem.status, problem.code), (400, "invalid_body"));
            assert_client_error(&problem);
            return;
        }
    };
    let members = json::members(body).expect("an accepted kick is an object");
    assert!(
        !json::has_duplicates(&members)
            && members.iter().all(|(n, _)| FIELDS.contains(&n.as_str()))
    );
    let field = |name| {
        json::last(&members, name)
            .and_then(|raw| serde_json::from_str::<Option<String>>(raw.get()).ok())
            .flatten()
    };
    assert!(is_uuid(&kick.tenant));
    assert_eq!(field("tenant").as_deref(), Some(kick.tenant.as_str()));
    let identifier = match &kick.target {
        Target::Tenant => {
            assert_eq!((field("user"), field("jti")), (None, None));
            None
        }
        Target::User(user) => {
            assert_eq!((field("user").as_ref(), field("jti")), (Some(user), None));
            Some(user)
        }
        Target::Token(jti) => {
            assert_eq!((field("user"), field("jti").as_ref()), (None, Some(jti)));
            Some(jti)
        }
    };
    assert!(identifier.is_none_or(|id| (1..=1024).contains(&id.len())));
    let ttl = json::last(&members, "ttl_seconds")
        .and_then(|raw| serde_json::from_str::<Option<u64>>(raw.get()).ok())
        .flatten()
        .unwrap_or(DEFAULT_REVOCATION_SECONDS);
    assert!((1..=MAX_REVOCATION_SECONDS).contains(&ttl));
    assert_eq!(kick.until, now_unix + ttl);
}
