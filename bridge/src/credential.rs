//! The publisher credential sent with every publish request.
//!
//! In production the bridge holds a credential that can do nothing but
//! publish: an API key (`PUBLISH_API_KEY`, sent as `Authorization: Api-Key`,
//! preferred: the relay stores only its fingerprint and it can be revoked on
//! its own) or a publisher JWT (`PUBLISH_TOKEN`). Either may be scoped to a
//! tenant or, with `events:platform`, to every tenant.
//!
//! Minting from `JWT_SECRET` is for the local stack only. That secret is the
//! relay's own signing key: whoever holds it can mint admin and subscriber
//! tokens for any tenant, which a process reading an origin's Valkey should
//! never be able to do. Minted tokens are short lived, carry
//! `events:publish` only, and are tenant-scoped when the bridge is (see
//! [`crate::tenancy`]); otherwise they claim `events:platform`, the scope that
//! lets a credential act without a tenant.

use edgestream_core::token::sign_hs256;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The scopes of a minted token without a tenant.
pub const PLATFORM_SCOPE: &str = "events:publish events:platform";
/// The scope of a minted token for one tenant.
pub const TENANT_SCOPE: &str = "events:publish";

pub enum Credential {
    ApiKey(String),
    Token(String),
    Minted(Minter),
}

pub struct Minter {
    pub secret: Vec<u8>,
    pub ttl_seconds: u64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// The claim the relay reads the tenant from (`TENANT_CLAIM`).
    pub tenant_claim: String,
    /// The current token and its `exp`, per tenant (`None`: platform).
    current: Mutex<HashMap<Option<String>, (String, u64)>>,
}

impl Credential {
    /// The `Authorization` header value for a request on behalf of `tenant`.
    /// A given key or token is the same for every tenant: the relay checks
    /// what it allows.
    pub fn authorization(&self, tenant: Option<&str>) -> String {
        match self {
            Credential::ApiKey(key) => format!("Api-Key {key}"),
            Credential::Token(token) => format!("Bearer {token}"),
            Credential::Minted(minter) => format!("Bearer {}", minter.token(tenant, now_unix())),
        }
    }

    /// What kind of credential this is, for the start-up log (never the value).
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ApiKey(_) => "API key",
            Credential::Token(_) => "PUBLISH_TOKEN",
            Credential::Minted(_) => "minted from JWT_SECRET (local use only)",
        }
    }

    pub fn is_minted(&self) -> bool {
        matches!(self, Credential::Minted(_))
    }
}

impl Minter {
    pub fn new(
        secret: &[u8],
        ttl_seconds: u64,
        issuer: Option<String>,
        audience: Option<String>,
        tenant_claim: String,
    ) -> Self {
        Minter {
            secret: secret.to_vec(),
            ttl_seconds,
            issuer,
            audience,
            tenant_claim,
            current: Mutex::new(HashMap::new()),
        }
    }

    /// The cached token of `tenant` while more than a fifth of its lifetime is
    /// left, else a new one. `iat` is set slightly in the past so that an
    /// edge whose clock is a little behind does not refuse it as issued in
    /// the future.
    fn token(&self, tenant: Option<&str>, now: u64) -> String {
        let mut current = self.current.lock().unwrap();
        let key = tenant.map(str::to_owned);
        if let Some((token, exp)) = current.get(&key) {
            if *exp > now + self.ttl_seconds / 5 {
                return token.clone();
            }
        }
        let exp = now + self.ttl_seconds;
        let mut claims = json!({
            "scope": if tenant.is_some() { TENANT_SCOPE } else { PLATFORM_SCOPE },
            "sub": "edgestream-bridge",
            "token_type": "access",
            "iat": now.saturating_sub(5),
            "exp": exp,
        });
        if let Some(tenant) = tenant {
            claims[&self.tenant_claim] = json!(tenant);
        }
        if let Some(iss) = &self.issuer {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = &self.audience {
            claims["aud"] = json!(aud);
        }
        let token = sign_hs256(&claims, &self.secret);
        current.insert(key, (token.clone(), exp));
        token
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgestream_core::keys::native::VerifyNatively;
    use edgestream_core::token::{JwtVerifier, VerifierConfig};

    const SECRET: &[u8] = b"secret-0123456789-0123456789-0123456789";
    const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";

    fn minter(issuer: Option<&str>, audience: Option<&str>) -> Minter {
        Minter::new(
            SECRET,
            300,
            issuer.map(Into::into),
            audience.map(Into::into),
            "tenant_id".into(),
        )
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            ..VerifierConfig::default()
        })
    }

    #[test]
    fn platform_tokens_say_so_explicitly() {
        let now = 1_700_000_000;
        let token = minter(None, None).token(None, now);
        let claims = verifier().verify_now(&token, now).unwrap();
        assert!(claims.has_scope("events:publish"));
        assert!(claims.has_scope("events:platform"));
        assert!(!claims.has_scope("events:admin"));
        assert_eq!(claims.tenant, None);
        assert_eq!(claims.expires_at, now + 300);
        assert!(verifier().verify_now(&token, now + 400).is_err());
    }

    #[test]
    fn tenant_tokens_carry_the_tenant_and_no_platform_right() {
        let now = 1_700_000_000;
        let token = minter(None, None).token(Some(TENANT), now);
        let claims = verifier().verify_now(&token, now).unwrap();
        assert_eq!(claims.tenant.as_deref(), Some(TENANT));
        assert!(claims.has_scope("events:publish"));
        assert!(!claims.has_scope("events:platform"));
        // Under the claim name the relay is configured with.
        let mut custom = minter(None, None);
        custom.tenant_claim = "org".into();
        let token = custom.token(Some(TENANT), now);
        let reads = |claim: &str| {
            JwtVerifier::new(VerifierConfig {
                secret: SECRET.to_vec(),
                tenant_claim: claim.into(),
                ..VerifierConfig::default()
            })
            .verify_now(&token, now)
            .unwrap()
            .tenant
        };
        assert_eq!(reads("org").as_deref(), Some(TENANT));
        assert_eq!(reads("tenant_id"), None);
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let now = 1_700_000_000;
        let token = minter(Some("https://auth.example"), Some("edgestream")).token(None, now);
        let verifier = JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            issuer: Some("https://auth.example".into()),
            audience: Some("edgestream".into()),
            ..VerifierConfig::default()
        });
        assert!(verifier.verify_now(&token, now).is_ok());
    }

    #[test]
    fn tokens_are_reused_per_tenant_until_a_fifth_of_their_life_is_left() {
        let m = minter(None, None);
        let first = m.token(None, 1_000);
        let tenant = m.token(Some(TENANT), 1_000);
        assert_ne!(first, tenant);
        assert_eq!(m.token(None, 1_000 + 239), first);
        assert_eq!(m.token(Some(TENANT), 1_000 + 239), tenant);
        assert_ne!(m.token(None, 1_000 + 241), first);
    }

    #[test]
    fn header_values() {
        assert_eq!(
            Credential::ApiKey("es_k".into()).authorization(Some(TENANT)),
            "Api-Key es_k"
        );
        assert_eq!(
            Credential::Token("t".into()).authorization(None),
            "Bearer t"
        );
        let minted = Credential::Minted(minter(None, None));
        assert!(minted.is_minted());
        let header = minted.authorization(None);
        assert!(header.starts_with("Bearer ") && header.split('.').count() == 3);
    }
}
