//! Ending streams on purpose: `POST /v1/admin/kick` ends a tenant's live
//! streams, or one user's, or those opened with one token (`jti`), and keeps a
//! revoked user or token out until the revocation expires. This generalises
//! django-eventstream's `channel_permission_changed`.
//!
//! Streams are found through tags on their channel sockets. A tag is a hash
//! of the subject or token id, so that identifiers of any length and content
//! fit the runtime's tag limits and never appear in storage as they are.

use std::collections::BTreeMap;

use crate::channel::is_canonical_uuid;
use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Default and longest time a revocation lasts.
pub const DEFAULT_REVOCATION_SECONDS: u64 = 86_400;
pub const MAX_REVOCATION_SECONDS: u64 = 30 * 86_400;
const MAX_IDENTIFIER_BYTES: usize = 1024;
/// Most revocations a tenant holds at once. Every channel object of the
/// tenant keeps them in memory and checks each attach against them, so they
/// are bounded; a kick that would pass the bound is refused rather than
/// forgetting an older revocation (which would let a revoked user back in).
pub const MAX_REVOCATIONS: usize = 10_000;

/// Whose streams a kick ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every live stream of the tenant; new connections are still admitted
    /// (and pass the gate again), as after a permission change.
    Tenant,
    /// One user's streams, and the user is refused until the revocation ends.
    User(String),
    /// Streams opened with one token, which is refused until it ends.
    Token(String),
}

impl Target {
    /// The socket tag of the streams this target names; none for a tenant,
    /// whose streams are all of a channel's sockets.
    pub fn tag(&self) -> Option<String> {
        match self {
            Target::Tenant => None,
            Target::User(subject) => Some(user_tag(subject)),
            Target::Token(jti) => Some(token_tag(jti)),
        }
    }
}

/// A validated kick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kick {
    pub tenant: String,
    pub target: Target,
    /// Unix seconds until which a revoked user or token is refused.
    pub until: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KickRequest {
    tenant: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

/// Parses `POST /v1/admin/kick`: `{"tenant", "user"?, "jti"?, "ttl_seconds"?}`,
/// naming at most one of `user` and `jti`.
pub fn parse_kick(body: &[u8], now_unix: u64) -> Result<Kick, Problem> {
    // A derived struct also reads a JSON array of its fields (`["<tenant>"]`
    // is a kick of the whole tenant); the body is an object and nothing else.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Problem::invalid_body(
            "expected {\"tenant\", \"user\"?, \"jti\"?, \"ttl_seconds\"?}",
        ));
    }
    let request: KickRequest = serde_json::from_slice(body).map_err(|e| {
        Problem::invalid_body(format!(
            "expected {{\"tenant\", \"user\"?, \"jti\"?, \"ttl_seconds\"?}}: {e}"
        ))
    })?;
    if !is_canonical_uuid(&request.tenant) {
        return Err(Problem::invalid_body(
            "tenant must be a lowercase hyphenated UUID",
        ));
    }
    let identifier = |value: String, name: &str| {
        if value.is_empty() || value.len() > MAX_IDENTIFIER_BYTES {
            return Err(Problem::invalid_body(format!(
                "{name} must be 1-{MAX_IDENTIFIER_BYTES} bytes"
            )));
        }
        Ok(value)
    };
    let target = match (request.user, request.jti) {
        (None, None) => Target::Tenant,
        (Some(user), None) => Target::User(identifier(user, "user")?),
        (None, Some(jti)) => Target::Token(identifier(jti, "jti")?),
        (Some(_), Some(_)) => {
            return Err(Problem::invalid_body("name one of user and jti, not both"))
        }
    };
    let ttl = request.ttl_seconds.unwrap_or(DEFAULT_REVOCATION_SECONDS);
    if ttl == 0 || ttl > MAX_REVOCATION_SECONDS {
        return Err(Problem::invalid_body(format!(
            "ttl_seconds must be 1-{MAX_REVOCATION_SECONDS}"
        )));
    }
    Ok(Kick {
        tenant: request.tenant,
        target,
        until: now_unix + ttl,
    })
}

/// A revoked socket tag, and until when (milliseconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub tag: String,
    pub until_ms: u64,
}

/// The revocations of one tenant in force, as an object holds them to check
/// attaches, publishes and ticket requests without asking anyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationSet {
    until_ms: BTreeMap<String, u64>,
}

/// A revocation that would pass [`MAX_REVOCATIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyRevocations;

impl RevocationSet {
    /// Adds a revocation; one already held for the tag lasts until the later
    /// of the two ends.
    pub fn insert(
        &mut self,
        revocation: Revocation,
        now_ms: u64,
    ) -> Result<(), TooManyRevocations> {
        if let Some(until) = self.until_ms.get_mut(&revocation.tag) {
            *until = (*until).max(revocation.until_ms);
            return Ok(());
        }
        if self.until_ms.len() >= MAX_REVOCATIONS {
            self.expire(now_ms);
            if self.until_ms.len() >= MAX_REVOCATIONS {
                return Err(TooManyRevocations);
            }
        }
        self.until_ms.insert(revocation.tag, revocation.until_ms);
        Ok(())
    }

    /// Whether any of `tags` is revoked at `now_ms`.
    pub fn revokes<S: AsRef<str>>(&self, tags: &[S], now_ms: u64) -> bool {
        tags.iter().any(|tag| {
            self.until_ms
                .get(tag.as_ref())
                .is_some_and(|&until| until > now_ms)
        })
    }

    /// Forgets revocations that have ended.
    pub fn expire(&mut self, now_ms: u64) {
        self.until_ms.retain(|_, until| *until > now_ms);
    }

    /// The revocations in force, to hand on (to a shard, in an answer).
    pub fn in_force(&self, now_ms: u64) -> Vec<Revocation> {
        self.until_ms
            .iter()
            .filter(|(_, &until)| until > now_ms)
            .map(|(tag, &until_ms)| Revocation {
                tag: tag.clone(),
                until_ms,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.until_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until_ms.is_empty()
    }
}

/// The tags of a stream opened by `subject` with token `jti`: what its
/// sockets carry and what a revocation of either names.
pub fn stream_tags(subject: Option<&str>, jti: Option<&str>) -> Vec<String> {
    subject
        .map(user_tag)
        .into_iter()
        .chain(jti.map(token_tag))
        .collect()
}

/// The tag of a user's sockets and revocation.
pub fn user_tag(subject: &str) -> String {
    tag("u", subject)
}

/// The tag of a token's sockets and revocation.
pub fn token_tag(jti: &str) -> String {
    tag("j", jti)
}

fn tag(kind: &str, value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";

    #[test]
    fn kicks_name_a_tenant_and_at_most_one_of_user_and_jti() {
        let kick = parse_kick(format!(r#"{{"tenant":"{TENANT}"}}"#).as_bytes(), 100).unwrap();
        assert_eq!(kick.target, Target::Tenant);
        assert_eq!(kick.until, 100 + DEFAULT_REVOCATION_SECONDS);
        let kick = parse_kick(
            format!(r#"{{"tenant":"{TENANT}","user":"42","ttl_seconds":60}}"#).as_bytes(),
            100,
        )
        .unwrap();
        assert_eq!((kick.target, kick.until), (Target::User("42".into()), 160));
        let kick = parse_kick(
            format!(r#"{{"tenant":"{TENANT}","jti":"abc"}}"#).as_bytes(),
            0,
        )
        .unwrap();
        assert_eq!(kick.target, Target::Token("abc".into()));
    }

    #[test]
    fn bad_kicks_are_refused() {
        for body in [
            "{}".to_owned(),
            r#"{"tenant":"not-a-uuid"}"#.to_owned(),
            format!(r#"{{"tenant":"{}"}}"#, TENANT.to_uppercase()),
            format!(r#"{{"tenant":"{TENANT}","user":"a","jti":"b"}}"#),
            format!(r#"{{"tenant":"{TENANT}","user":""}}"#),
            format!(r#"{{"tenant":"{TENANT}","ttl_seconds":0}}"#),
            format!(r#"{{"tenant":"{TENANT}","ttl_seconds":99999999}}"#),
            format!(r#"{{"tenant":"{TENANT}","everyone":true}}"#),
        ] {
            assert_eq!(
                parse_kick(body.as_bytes(), 0).unwrap_err().code,
                "invalid_body",
                "{body}"
            );
        }
    }

    #[test]
    fn a_revocation_set_refuses_revoked_tags_until_they_end() {
        let mut set = RevocationSet::default();
        let user = user_tag("42");
        set.insert(
            Revocation {
                tag: user.clone(),
                until_ms: 100,
            },
            0,
        )
        .unwrap();
        assert!(set.revokes(&[token_tag("x"), user.clone()], 99));
        assert!(!set.revokes(std::slice::from_ref(&user), 100));
        assert!(!set.revokes::<String>(&[], 0));
        // A second revocation of the same tag extends, never shortens.
        set.insert(
            Revocation {
                tag: user.clone(),
                until_ms: 50,
            },
            0,
        )
        .unwrap();
        set.insert(
            Revocation {
                tag: user.clone(),
                until_ms: 200,
            },
            0,
        )
        .unwrap();
        assert!(set.revokes(std::slice::from_ref(&user), 150));
        assert_eq!(
            set.in_force(150),
            vec![Revocation {
                tag: user.clone(),
                until_ms: 200
            }]
        );
        assert!(set.in_force(200).is_empty());
        set.expire(200);
        assert!(set.is_empty());
    }

    #[test]
    fn a_full_revocation_set_refuses_rather_than_forgets() {
        let mut set = RevocationSet::default();
        for i in 0..MAX_REVOCATIONS {
            set.insert(
                Revocation {
                    tag: format!("u:{i}"),
                    until_ms: 10 + i as u64 % 2,
                },
                0,
            )
            .unwrap();
        }
        assert_eq!(
            set.insert(
                Revocation {
                    tag: "u:new".into(),
                    until_ms: 99
                },
                0
            ),
            Err(TooManyRevocations)
        );
        assert!(set.revokes(&["u:0"], 5), "nothing was dropped to make room");
        // Once some have ended there is room again.
        set.insert(
            Revocation {
                tag: "u:new".into(),
                until_ms: 99,
            },
            10,
        )
        .unwrap();
        assert!(set.revokes(&["u:new"], 50));
        assert!(!set.revokes(&["u:0"], 10));
    }

    #[test]
    fn tags_are_short_fixed_and_distinct_per_kind() {
        let long = "x".repeat(1000);
        assert_eq!(user_tag(&long).len(), 34);
        assert_eq!(user_tag("42"), user_tag("42"));
        assert_ne!(user_tag("42"), token_tag("42"));
        assert!(!user_tag("a:b").contains("a:b"));
        assert_eq!(Target::User("42".into()).tag(), Some(user_tag("42")));
        assert_eq!(Target::Tenant.tag(), None);
        assert_eq!(
            stream_tags(Some("42"), Some("j")),
            vec![user_tag("42"), token_tag("j")]
        );
        assert_eq!(stream_tags(None, Some("j")), vec![token_tag("j")]);
        assert!(stream_tags(None, None).is_empty());
    }
}
