//! The publisher credential sent with every publish request.
//!
//! Either a token given by the operator (`PUBLISH_TOKEN`), sent as is, or
//! tokens the bridge mints itself from `JWT_SECRET`. Minted tokens are short
//! lived on purpose: a token that leaks from a log or a proxy is useless
//! within minutes, while the secret itself never leaves the process. They
//! carry no tenant claim, so they are platform publishers that may publish to
//! any tenant's channels, which is what a bridge serving every origin needs.

use edgestream_core::token::sign_hs256;
use serde_json::json;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub enum Credential {
    Static(String),
    Minted(Minter),
}

pub struct Minter {
    secret: Vec<u8>,
    ttl_seconds: u64,
    issuer: Option<String>,
    audience: Option<String>,
    /// The current token and its `exp`.
    current: Mutex<Option<(String, u64)>>,
}

impl Credential {
    pub fn from_config(config: &crate::config::Config) -> Self {
        match (&config.publish_token, &config.jwt_secret) {
            (Some(token), _) => Credential::Static(token.clone()),
            (None, Some(secret)) => Credential::Minted(Minter {
                secret: secret.as_bytes().to_vec(),
                ttl_seconds: config.token_ttl_seconds,
                issuer: config.jwt_issuer.clone(),
                audience: config.jwt_audience.clone(),
                current: Mutex::new(None),
            }),
            (None, None) => unreachable!("clap requires one of the two"),
        }
    }

    /// The token for the next request.
    pub fn bearer(&self) -> String {
        match self {
            Credential::Static(token) => token.clone(),
            Credential::Minted(minter) => minter.token(now_unix()),
        }
    }

    pub fn is_minted(&self) -> bool {
        matches!(self, Credential::Minted(_))
    }
}

impl Minter {
    /// The cached token while more than a fifth of its lifetime is left,
    /// else a new one. `iat` is set slightly in the past so that an edge whose
    /// clock is a little behind does not refuse it as issued in the future.
    fn token(&self, now: u64) -> String {
        let mut current = self.current.lock().unwrap();
        if let Some((token, exp)) = current.as_ref() {
            if *exp > now + self.ttl_seconds / 5 {
                return token.clone();
            }
        }
        let exp = now + self.ttl_seconds;
        let mut claims = json!({
            "scope": "events:publish",
            "sub": "edgestream-bridge",
            "token_type": "access",
            "iat": now.saturating_sub(5),
            "exp": exp,
        });
        if let Some(iss) = &self.issuer {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = &self.audience {
            claims["aud"] = json!(aud);
        }
        let token = sign_hs256(&claims, &self.secret);
        *current = Some((token.clone(), exp));
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
    use edgestream_core::token::{JwtVerifier, VerifierConfig};

    fn minter(issuer: Option<&str>, audience: Option<&str>) -> Minter {
        Minter {
            secret: b"secret-0123456789-0123456789-0123456789".to_vec(),
            ttl_seconds: 300,
            issuer: issuer.map(Into::into),
            audience: audience.map(Into::into),
            current: Mutex::new(None),
        }
    }

    #[test]
    fn minted_tokens_are_platform_publishers_the_worker_accepts() {
        let now = 1_700_000_000;
        let token = minter(None, None).token(now);
        let verifier = JwtVerifier::new(VerifierConfig {
            secret: b"secret-0123456789-0123456789-0123456789".to_vec(),
            ..VerifierConfig::default()
        });
        let claims = verifier.verify(&token, now).unwrap();
        assert!(claims.has_scope("events:publish"));
        assert_eq!(claims.tenant, None);
        assert_eq!(claims.expires_at, now + 300);
        assert!(verifier.verify(&token, now + 400).is_err());
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let now = 1_700_000_000;
        let token = minter(Some("https://auth.example"), Some("edgestream")).token(now);
        let verifier = JwtVerifier::new(VerifierConfig {
            secret: b"secret-0123456789-0123456789-0123456789".to_vec(),
            issuer: Some("https://auth.example".into()),
            audience: Some("edgestream".into()),
            ..VerifierConfig::default()
        });
        assert!(verifier.verify(&token, now).is_ok());
    }

    #[test]
    fn tokens_are_reused_until_a_fifth_of_their_life_is_left() {
        let m = minter(None, None);
        let first = m.token(1_000);
        assert_eq!(m.token(1_000 + 239), first);
        assert_ne!(m.token(1_000 + 241), first);
        let credential = Credential::Minted(m);
        assert!(credential.is_minted());
        assert_eq!(credential.bearer().split('.').count(), 3);
    }
}
