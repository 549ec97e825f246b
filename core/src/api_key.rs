//! API keys: long-lived credentials for services, accepted from the
//! `Authorization: Api-Key <key>` header only.
//!
//! The relay never stores a key, only its SHA-256 fingerprint, next to what
//! the key may do. A leaked store then grants nothing, and looking a key up
//! by its fingerprint needs no comparison that could leak timing.

use crate::problem::Problem;
use crate::token::Claims;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest key looked at; a longer one cannot be ours.
const MAX_KEY_BYTES: usize = 256;

/// The lookup key of an API key: lowercase hex SHA-256 of its text.
pub fn fingerprint(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses what cannot be a key before any lookup.
pub fn check_shape(key: &str) -> Result<(), Problem> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::invalid_token("the API key is malformed"));
    }
    Ok(())
}

/// What an API key may do, as stored under its fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// A name for logs and audits, never the key.
    pub name: String,
    /// The tenant it acts for; none makes it a platform key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Space-separated scopes, as in a JWT's `scope`.
    #[serde(default)]
    pub scope: String,
    /// Unix seconds after which the key is refused; none never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl ApiKeyRecord {
    /// The identity the key grants now, the same shape a token grants.
    pub fn claims(&self, now_unix: u64) -> Result<Claims, Problem> {
        if self.expires_at.is_some_and(|at| now_unix >= at) {
            return Err(Problem::invalid_token("the API key has expired"));
        }
        if self.tenant.as_deref() == Some("") {
            return Err(Problem::invalid_token("the API key's tenant is empty"));
        }
        Ok(Claims {
            subject: Some(format!("api-key:{}", self.name)),
            tenant: self.tenant.clone(),
            scopes: self
                .scope
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            expires_at: self.expires_at.unwrap_or(u64::MAX),
            jti: None,
            jurisdiction: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_lowercase_hex_sha256() {
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn shapes_that_cannot_be_keys_are_refused() {
        for bad in ["", "has space", "tab\there", "é", &"k".repeat(257)] {
            assert_eq!(
                check_shape(bad).unwrap_err().code,
                "invalid_token",
                "{bad:?}"
            );
        }
        assert!(check_shape("es_0123456789abcdef").is_ok());
    }

    #[test]
    fn a_record_grants_its_tenant_and_scopes() {
        let record: ApiKeyRecord = serde_json::from_str(
            r#"{"name":"billing","tenant":"0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19","scope":"events:publish"}"#,
        )
        .unwrap();
        let claims = record.claims(1_000).unwrap();
        assert_eq!(
            claims.tenant.as_deref(),
            Some("0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19")
        );
        assert!(claims.has_scope("events:publish"));
        assert_eq!(claims.subject.as_deref(), Some("api-key:billing"));
        assert_eq!(claims.expires_at, u64::MAX);
    }

    #[test]
    fn expired_keys_and_unknown_fields_are_refused() {
        let record = ApiKeyRecord {
            name: "old".into(),
            tenant: None,
            scope: String::new(),
            expires_at: Some(100),
        };
        assert_eq!(record.claims(100).unwrap_err().code, "invalid_token");
        assert!(record.claims(99).is_ok());
        assert!(serde_json::from_str::<ApiKeyRecord>(r#"{"name":"x","admin":true}"#).is_err());
    }

    #[test]
    fn an_empty_tenant_is_not_a_platform_key() {
        let record = ApiKeyRecord {
            name: "x".into(),
            tenant: Some(String::new()),
            scope: String::new(),
            expires_at: None,
        };
        assert!(record.claims(0).is_err());
    }
}
