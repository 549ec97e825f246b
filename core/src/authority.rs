//! Who a verified credential acts for: one tenant, or the platform.
//!
//! Platform rights are explicit. A credential acts without a tenant only when
//! its scope says so ([`PLATFORM_SCOPE`]); a credential that names no tenant
//! and lacks that scope acts for no one, so a missing claim, a renamed
//! `TENANT_CLAIM` or an API key created without a tenant fails closed
//! instead of silently reaching every tenant.

use crate::channel::{authorize_tenant, ChannelName};
use crate::problem::Problem;
use crate::token::Claims;

/// The scope that makes a credential without a tenant a platform credential.
pub const PLATFORM_SCOPE: &str = "events:platform";
pub const PUBLISH_SCOPE: &str = "events:publish";
pub const ADMIN_SCOPE: &str = "events:admin";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority {
    /// Acts for this tenant only, whatever else its scope says.
    Tenant(String),
    /// Acts across tenants where an endpoint allows it.
    Platform,
}

impl Authority {
    pub fn of(claims: &Claims) -> Result<Self, Problem> {
        match &claims.tenant {
            Some(tenant) => Ok(Authority::Tenant(tenant.clone())),
            None if claims.has_scope(PLATFORM_SCOPE) => Ok(Authority::Platform),
            None => Err(Problem::tenant_missing()),
        }
    }

    /// Every channel belongs to the credential's tenant; a platform
    /// credential may name any. Fails the whole request on one channel of
    /// another tenant.
    pub fn admit(&self, channels: &[ChannelName]) -> Result<(), Problem> {
        match self {
            Authority::Tenant(tenant) => authorize_tenant(Some(tenant), channels),
            Authority::Platform if channels.is_empty() => Err(Problem::no_channels()),
            Authority::Platform => Ok(()),
        }
    }

    /// The tenant, where an endpoint takes tenant credentials only (streams,
    /// tickets): a platform credential is refused there.
    pub fn tenant(&self) -> Result<&str, Problem> {
        match self {
            Authority::Tenant(tenant) => Ok(tenant),
            Authority::Platform => Err(Problem::tenant_missing()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
    const B: &str = "11111111-2222-4333-8444-555555555555";

    fn claims(tenant: Option<&str>, scope: &str) -> Claims {
        Claims {
            subject: Some("u".into()),
            tenant: tenant.map(Into::into),
            scopes: scope.split_whitespace().map(Into::into).collect(),
            expires_at: 10,
            jti: None,
            jurisdiction: None,
        }
    }

    fn channel(tenant: &str) -> ChannelName {
        ChannelName::build("scan", tenant, "r").unwrap()
    }

    #[test]
    fn a_tenant_credential_reaches_its_own_tenant_only_even_with_the_platform_scope() {
        for scope in ["events:publish", "events:publish events:platform"] {
            let authority = Authority::of(&claims(Some(A), scope)).unwrap();
            assert_eq!(authority, Authority::Tenant(A.into()));
            assert!(authority.admit(&[channel(A)]).is_ok());
            assert_eq!(
                authority.admit(&[channel(A), channel(B)]).unwrap_err().code,
                "channel_forbidden"
            );
            assert_eq!(authority.tenant(), Ok(A));
        }
    }

    #[test]
    fn no_tenant_is_platform_only_with_the_platform_scope() {
        let platform = Authority::of(&claims(None, "events:publish events:platform")).unwrap();
        assert!(platform.admit(&[channel(A), channel(B)]).is_ok());
        assert_eq!(platform.admit(&[]).unwrap_err().code, "no_channels");
        assert_eq!(platform.tenant().unwrap_err().code, "tenant_missing");
        for scope in [
            "events:publish",
            "",
            "events:admin",
            "events:platformx",
            "platform",
        ] {
            assert_eq!(
                Authority::of(&claims(None, scope)).unwrap_err().code,
                "tenant_missing",
                "{scope}"
            );
        }
    }
}
