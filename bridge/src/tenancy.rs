//! Tenant-scoped bridges: which tenant each Valkey source may publish for.
//!
//! Without a map the bridge is a platform publisher: whatever reaches its
//! Pub/Sub channels or its stream is forwarded to whichever tenant the event's
//! channel names, so anyone who can write to that Valkey can write to every
//! tenant. A map closes that: each source (a Pub/Sub channel, or the stream)
//! belongs to one tenant, an event whose channel names another tenant is
//! refused here, before it is sent, and the bridge publishes with a credential
//! of that tenant. Combined with Valkey ACLs that let each origin write only
//! its own channel or stream, one tenant's origin cannot publish for another.
//!
//! The map is all or nothing: once any source is mapped, every source must
//! be, so a source added later cannot silently run with platform rights.

use edgestream_core::channel::ChannelName;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Where an event was read from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceName {
    PubSub(String),
    Stream(String),
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceName::PubSub(channel) => write!(f, "pubsub:{channel}"),
            SourceName::Stream(key) => write!(f, "stream:{key}"),
        }
    }
}

/// One `pubsub:<channel>=<tenant>` or `stream:<key>=<tenant>` setting.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub source: SourceName,
    pub tenant: String,
}

/// Parses one route, for clap. The tenant is last and a UUID (no `=`), so
/// the name may contain `=` and `:`.
pub fn parse_route(text: &str) -> Result<Route, String> {
    let usage = "expected pubsub:<channel>=<tenant uuid> or stream:<key>=<tenant uuid>";
    let (source, tenant) = text.rsplit_once('=').ok_or(usage)?;
    let source = match source.split_once(':') {
        Some(("pubsub", name)) if !name.is_empty() => SourceName::PubSub(name.to_owned()),
        Some(("stream", name)) if !name.is_empty() => SourceName::Stream(name.to_owned()),
        _ => return Err(format!("{usage}, not {text:?}")),
    };
    if !edgestream_core::channel::is_canonical_uuid(tenant) {
        return Err(format!(
            "{source}: the tenant must be a lowercase hyphenated UUID, not {tenant:?}"
        ));
    }
    Ok(Route {
        source,
        tenant: tenant.to_owned(),
    })
}

#[derive(Clone, Debug, Default)]
pub struct TenantMap {
    routes: HashMap<SourceName, Arc<str>>,
}

/// Why an event may not be forwarded from its source.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub expected: Arc<str>,
    pub found: String,
}

impl Refusal {
    /// The reason label of metrics and dead letters.
    pub const REASON: &'static str = "tenant_mismatch";
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the channel belongs to tenant {}, the source to tenant {}",
            Self::REASON,
            self.found,
            self.expected
        )
    }
}

impl TenantMap {
    /// Builds the map and checks that it covers every configured source.
    pub fn new(routes: &[Route], sources: &[SourceName]) -> Result<Self, String> {
        let mut map: HashMap<SourceName, Arc<str>> = HashMap::new();
        for route in routes {
            if let Some(other) = map.get(&route.source) {
                if **other != *route.tenant {
                    return Err(format!("{} is mapped to two tenants", route.source));
                }
            }
            map.insert(route.source.clone(), route.tenant.as_str().into());
        }
        if !map.is_empty() {
            if let Some(unmapped) = sources.iter().find(|s| !map.contains_key(s)) {
                return Err(format!(
                    "{unmapped} has no tenant: with --tenant, every source needs one"
                ));
            }
            if let Some(unused) = map.keys().find(|s| !sources.contains(s)) {
                return Err(format!(
                    "--tenant maps {unused}, which the bridge does not read"
                ));
            }
        }
        Ok(TenantMap { routes: map })
    }

    /// The distinct tenants, for the start-up log; none on a platform bridge.
    pub fn tenants(&self) -> Vec<&str> {
        let mut tenants: Vec<&str> = self.routes.values().map(|t| &**t).collect();
        tenants.sort_unstable();
        tenants.dedup();
        tenants
    }

    /// The tenant an event read from `source` publishes as (`None` for a
    /// platform bridge), or the refusal. `channel` has been validated, so it
    /// parses; anything else is refused too, as the gate fails closed.
    pub fn admit(&self, source: &SourceName, channel: &str) -> Result<Option<Arc<str>>, Refusal> {
        if self.routes.is_empty() {
            return Ok(None);
        }
        let expected = self
            .routes
            .get(source)
            .cloned()
            .unwrap_or_else(|| "".into());
        let found = ChannelName::parse(channel)
            .map(|c| c.tenant().to_owned())
            .unwrap_or_default();
        if expected.is_empty() || *expected != *found {
            return Err(Refusal { expected, found });
        }
        Ok(Some(expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
    const B: &str = "7f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f";

    fn pubsub(name: &str) -> SourceName {
        SourceName::PubSub(name.into())
    }

    #[test]
    fn routes_parse_with_the_tenant_last() {
        assert_eq!(
            parse_route(&format!("pubsub:events_channel={A}")).unwrap(),
            Route {
                source: pubsub("events_channel"),
                tenant: A.into()
            }
        );
        let odd = parse_route(&format!("stream:a=b:c={B}")).unwrap();
        assert_eq!(odd.source, SourceName::Stream("a=b:c".into()));
        for bad in [
            format!("events_channel={A}"),
            format!("pubsub:={A}"),
            format!("queue:x={A}"),
            "pubsub:x".into(),
            "pubsub:x=not-a-uuid".into(),
            format!("pubsub:x={}", A.to_uppercase()),
        ] {
            assert!(parse_route(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_routes_the_bridge_is_a_platform_publisher() {
        let map = TenantMap::new(&[], &[pubsub("events_channel")]).unwrap();
        assert!(map.tenants().is_empty());
        let channel = format!("scan:{A}:1");
        assert_eq!(map.admit(&pubsub("events_channel"), &channel), Ok(None));
    }

    #[test]
    fn an_event_for_another_tenant_is_refused() {
        let routes = [
            parse_route(&format!("pubsub:a-events={A}")).unwrap(),
            parse_route(&format!("stream:b-events={B}")).unwrap(),
        ];
        let sources = [pubsub("a-events"), SourceName::Stream("b-events".into())];
        let map = TenantMap::new(&routes, &sources).unwrap();
        assert_eq!(map.tenants(), [A, B]);
        let a = map.admit(&pubsub("a-events"), &format!("scan:{A}:1"));
        assert_eq!(a.unwrap().as_deref(), Some(A));
        let crossed = map
            .admit(&pubsub("a-events"), &format!("scan:{B}:1"))
            .unwrap_err();
        assert_eq!(crossed.found, B);
        assert_eq!(
            crossed.to_string(),
            format!("tenant_mismatch: the channel belongs to tenant {B}, the source to tenant {A}")
        );
        // Fail closed on what cannot happen after validation.
        assert!(map.admit(&pubsub("a-events"), "not a channel").is_err());
        assert!(map.admit(&pubsub("other"), &format!("scan:{A}:1")).is_err());
    }

    #[test]
    fn a_partial_or_contradictory_map_is_a_configuration_error() {
        let a = parse_route(&format!("pubsub:a={A}")).unwrap();
        let a_to_b = parse_route(&format!("pubsub:a={B}")).unwrap();
        let err =
            TenantMap::new(std::slice::from_ref(&a), &[pubsub("a"), pubsub("b")]).unwrap_err();
        assert!(err.contains("pubsub:b has no tenant"), "{err}");
        let err = TenantMap::new(&[a.clone(), a_to_b], &[pubsub("a")]).unwrap_err();
        assert!(err.contains("two tenants"), "{err}");
        let stream = parse_route(&format!("stream:x={A}")).unwrap();
        let err = TenantMap::new(&[a.clone(), stream], &[pubsub("a")]).unwrap_err();
        assert!(err.contains("does not read"), "{err}");
        assert!(TenantMap::new(&[a.clone(), a], &[pubsub("a")]).is_ok());
    }
}
