//! Data residency: the Durable Object jurisdiction a tenant's channel, shard,
//! tenant and ticket objects live in.
//!
//! One rule makes "a channel never moves" hold: the jurisdiction of a
//! tenant's objects is a function of the tenant id and the deployment's
//! configuration alone ([`Residency::of`]). A token's jurisdiction claim
//! never chooses a place; it is an assertion that must agree with the
//! configuration ([`Residency::admit`]). If a claim could choose, two tokens
//! of one tenant (one with the claim, one without, or two naming different
//! jurisdictions) would address two different objects for the same channel
//! name, each with its own history and sequence numbers. Objects, once
//! running, address their shards and their tenant's object in the
//! jurisdiction of their own id, which the platform fixed when the id was
//! made, so what the configuration says can never move data that already
//! sits somewhere.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::is_canonical_uuid;
use crate::config::ConfigError;
use crate::problem::Problem;

/// The Durable Object jurisdictions the platform offers (its data location
/// reference). A name outside this list is refused, never passed on: the
/// runtime would either throw or, worse, a later platform could read it
/// differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Jurisdiction {
    /// The European Union.
    Eu,
    /// The United States.
    Us,
    /// FedRAMP-Moderate data centers.
    Fedramp,
    /// FedRAMP-High data centers.
    FedrampHigh,
}

impl Jurisdiction {
    pub const ALL: [Jurisdiction; 4] = [
        Jurisdiction::Eu,
        Jurisdiction::Us,
        Jurisdiction::Fedramp,
        Jurisdiction::FedrampHigh,
    ];

    /// The platform's name, exactly: no other case or spelling is read as it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Jurisdiction::Eu => "eu",
            Jurisdiction::Us => "us",
            Jurisdiction::Fedramp => "fedramp",
            Jurisdiction::FedrampHigh => "fedramp-high",
        }
    }

    /// The jurisdiction an object's own id reports (`ctx.id.jurisdiction`):
    /// none for an id made outside any jurisdiction. A name this code does
    /// not know is an error, so an object never addresses its peers outside
    /// the place it was made in.
    pub fn of_object(reported: Option<&str>) -> Result<Option<Self>, String> {
        match reported {
            None => Ok(None),
            Some(name) => Self::parse(name)
                .map(Some)
                .ok_or_else(|| format!("the object's id names an unknown jurisdiction {name:?}")),
        }
    }

    /// An object's jurisdiction from what its id reports now and what it
    /// saved when an id last reported one. An id made in a jurisdiction can
    /// come without it (an object woken by an alarm the platform stored
    /// without it), so a jurisdiction once seen is kept; two that differ
    /// cannot both be true of one object, and the object refuses to run.
    pub fn settle(reported: Option<Self>, saved: Option<Self>) -> Result<Option<Self>, String> {
        match (reported, saved) {
            (Some(now), Some(before)) if now != before => Err(format!(
                "the object's id says jurisdiction {now}, its storage {before}"
            )),
            (Some(j), _) | (None, Some(j)) => Ok(Some(j)),
            (None, None) => Ok(None),
        }
    }

    fn names() -> String {
        Self::ALL.map(Jurisdiction::as_str).join(", ")
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Jurisdiction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Jurisdiction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Jurisdiction::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown jurisdiction {name:?}")))
    }
}

/// The text an optional jurisdiction travels as between objects: its name,
/// or `-` for none (no jurisdiction's name is `-`).
pub fn to_wire(jurisdiction: Option<Jurisdiction>) -> &'static str {
    jurisdiction.map_or("-", Jurisdiction::as_str)
}

pub fn from_wire(text: &str) -> Option<Option<Jurisdiction>> {
    match text {
        "-" => Some(None),
        name => Jurisdiction::parse(name).map(Some),
    }
}

/// Where each tenant's objects live, from `DEFAULT_JURISDICTION` and
/// `TENANT_JURISDICTIONS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Residency {
    /// For every tenant the map does not name; none keeps them outside any
    /// jurisdiction, as before residency existed.
    default: Option<Jurisdiction>,
    tenants: BTreeMap<String, Jurisdiction>,
}

impl Residency {
    /// Parses the two settings (trimmed, empty meaning unset). Any name that
    /// is not a platform jurisdiction, any tenant that is not a canonical
    /// UUID, and any tenant named twice is an error naming the variable: a
    /// typo must stop the deploy rather than place a tenant's data in the
    /// default location.
    pub fn parse(default: Option<&str>, tenants: Option<&str>) -> Result<Self, ConfigError> {
        let default = match default {
            None => None,
            Some(name) => Some(Jurisdiction::parse(name).ok_or_else(|| ConfigError {
                variable: "DEFAULT_JURISDICTION",
                reason: format!(
                    "must be one of {}, got \"{}\"",
                    Jurisdiction::names(),
                    name.escape_debug()
                ),
            })?),
        };
        let mut map = BTreeMap::new();
        for entry in tenants.into_iter().flat_map(|list| list.split(',')) {
            let error = |reason: String| ConfigError {
                variable: "TENANT_JURISDICTIONS",
                reason,
            };
            let entry = entry.trim();
            let (tenant, name) = entry
                .split_once('=')
                .map(|(t, n)| (t.trim(), n.trim()))
                .ok_or_else(|| {
                    error(format!(
                        "each entry is <tenant uuid>=<jurisdiction>, got \"{}\"",
                        entry.escape_debug()
                    ))
                })?;
            if !is_canonical_uuid(tenant) {
                return Err(error(format!(
                    "\"{}\" is not a tenant id (a lowercase hyphenated UUID)",
                    tenant.escape_debug()
                )));
            }
            let jurisdiction = Jurisdiction::parse(name).ok_or_else(|| {
                error(format!(
                    "tenant {tenant}: the jurisdiction must be one of {}, got \"{}\"",
                    Jurisdiction::names(),
                    name.escape_debug()
                ))
            })?;
            if map.insert(tenant.to_owned(), jurisdiction).is_some() {
                return Err(error(format!("tenant {tenant} is named twice")));
            }
        }
        Ok(Residency {
            default,
            tenants: map,
        })
    }

    /// Where `tenant`'s objects live. The only place a jurisdiction is
    /// chosen; it reads no request.
    pub fn of(&self, tenant: &str) -> Option<Jurisdiction> {
        self.tenants.get(tenant).copied().or(self.default)
    }

    /// The jurisdiction a request for `tenant`'s channels runs in, given the
    /// jurisdiction claim of its token (or the jurisdiction a ticket was
    /// issued for). No claim asserts nothing; a claim must name exactly the
    /// jurisdiction the configuration places the tenant in, and anything else
    /// (another jurisdiction, one the platform does not have, a claim for a
    /// tenant the configuration keeps outside any jurisdiction) is refused:
    /// the issuer expects the data where the claim says, and serving it from
    /// anywhere else would break that expectation silently.
    pub fn admit(
        &self,
        tenant: &str,
        claim: Option<&str>,
    ) -> Result<Option<Jurisdiction>, Problem> {
        let placed = self.of(tenant);
        match claim {
            None => Ok(placed),
            Some(claimed) if Some(claimed) == placed.map(Jurisdiction::as_str) => Ok(placed),
            Some(claimed) => Err(Problem::jurisdiction_mismatch(mismatch(claimed, placed))),
        }
    }
}

/// What a refused claim is told. The claim is quoted only when it is a
/// jurisdiction's name: a token's claim is client text, and echoing any
/// string of it into a problem (and the log) would carry token content.
fn mismatch(claimed: &str, placed: Option<Jurisdiction>) -> String {
    let claimed = match Jurisdiction::parse(claimed) {
        Some(j) => format!("the credential names jurisdiction \"{j}\""),
        None => "the credential names a jurisdiction that does not exist".to_owned(),
    };
    match placed {
        Some(j) => format!("{claimed}, but this tenant's data lives in \"{j}\""),
        None => format!("{claimed}, but this tenant's data lives in no jurisdiction"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
    const B: &str = "1c8d3e5f-9b2a-4d4c-8f8e-7b6e5d4c3b2a";
    const C: &str = "2d7e4f6a-ac3b-4e5d-9a9f-8c7f6e5d4c3b";

    fn residency(default: Option<&str>, tenants: &str) -> Residency {
        Residency::parse(default, Some(tenants).filter(|t| !t.is_empty())).unwrap()
    }

    #[test]
    fn jurisdiction_names_are_the_platforms_exactly() {
        for j in Jurisdiction::ALL {
            assert_eq!(Jurisdiction::parse(j.as_str()), Some(j));
            assert_eq!(from_wire(to_wire(Some(j))), Some(Some(j)));
        }
        assert_eq!(from_wire(to_wire(None)), Some(None));
        for bad in [
            "EU",
            "Eu",
            " eu",
            "eu ",
            "europe",
            "fedramp_high",
            "",
            "-x",
            "us-east",
        ] {
            assert_eq!(Jurisdiction::parse(bad), None, "{bad:?}");
        }
        assert_eq!(from_wire("EU"), None);
        assert_eq!(from_wire(""), None);
    }

    #[test]
    fn jurisdictions_serialise_as_their_names_and_refuse_others() {
        let json = serde_json::to_string(&Some(Jurisdiction::FedrampHigh)).unwrap();
        assert_eq!(json, "\"fedramp-high\"");
        assert_eq!(
            serde_json::from_str::<Jurisdiction>("\"eu\"").unwrap(),
            Jurisdiction::Eu
        );
        assert!(serde_json::from_str::<Jurisdiction>("\"mars\"").is_err());
        assert!(serde_json::from_str::<Jurisdiction>("1").is_err());
    }

    #[test]
    fn an_object_trusts_only_a_known_jurisdiction_on_its_id() {
        assert_eq!(Jurisdiction::of_object(None), Ok(None));
        assert_eq!(
            Jurisdiction::of_object(Some("eu")),
            Ok(Some(Jurisdiction::Eu))
        );
        assert!(Jurisdiction::of_object(Some("moon")).is_err());
        assert!(Jurisdiction::of_object(Some("")).is_err());
    }

    #[test]
    fn a_jurisdiction_once_seen_stays_with_the_object() {
        use Jurisdiction::{Eu, Us};
        assert_eq!(Jurisdiction::settle(None, None), Ok(None));
        assert_eq!(Jurisdiction::settle(Some(Eu), None), Ok(Some(Eu)));
        assert_eq!(Jurisdiction::settle(Some(Eu), Some(Eu)), Ok(Some(Eu)));
        // An alarm's wake-up without the jurisdiction keeps the saved one.
        assert_eq!(Jurisdiction::settle(None, Some(Eu)), Ok(Some(Eu)));
        assert!(Jurisdiction::settle(Some(Us), Some(Eu)).is_err());
    }

    #[test]
    fn unset_places_nothing() {
        let r = Residency::parse(None, None).unwrap();
        assert_eq!(r, Residency::default());
        assert_eq!(r.of(A), None);
        assert_eq!(r.admit(A, None), Ok(None));
    }

    #[test]
    fn the_map_wins_over_the_default_and_the_default_covers_the_rest() {
        let r = residency(Some("eu"), &format!("{A}=fedramp, {B} = us"));
        assert_eq!(r.of(A), Some(Jurisdiction::Fedramp));
        assert_eq!(r.of(B), Some(Jurisdiction::Us));
        assert_eq!(r.of(C), Some(Jurisdiction::Eu));
        let r = residency(None, &format!("{A}=eu"));
        assert_eq!(r.of(A), Some(Jurisdiction::Eu));
        assert_eq!(r.of(C), None);
    }

    #[test]
    fn a_tenant_is_matched_by_its_exact_id() {
        let r = residency(None, &format!("{A}=eu"));
        assert_eq!(r.of(&A.to_uppercase()), None);
        assert_eq!(r.of(&format!("{A} ")), None);
        assert_eq!(r.of(&A[..35]), None);
    }

    #[test]
    fn bad_configuration_names_the_variable() {
        let default = Residency::parse(Some("europe"), None).unwrap_err();
        assert_eq!(default.variable, "DEFAULT_JURISDICTION");
        assert!(default.reason.contains("eu, us, fedramp, fedramp-high"));
        for bad in [
            format!("{A}=mars"),
            format!("{A}=EU"),
            format!("{A}="),
            A.to_owned(),
            format!("{A}=eu=us"),
            "not-a-uuid=eu".to_owned(),
            format!("{}=eu", A.to_uppercase()),
            format!("{{{A}}}=eu"),
            format!("{A}=eu,"),
            format!("{A}=eu,{B}=us,{A}=eu"),
            format!("{A}=eu,{A}=us"),
            "=eu".to_owned(),
        ] {
            let error = Residency::parse(None, Some(&bad)).unwrap_err();
            assert_eq!(error.variable, "TENANT_JURISDICTIONS", "{bad}");
        }
    }

    #[test]
    fn no_claim_runs_where_the_configuration_says() {
        let r = residency(None, &format!("{A}=eu"));
        assert_eq!(r.admit(A, None), Ok(Some(Jurisdiction::Eu)));
        assert_eq!(r.admit(B, None), Ok(None));
    }

    #[test]
    fn a_claim_that_agrees_is_admitted() {
        let r = residency(Some("us"), &format!("{A}=eu"));
        assert_eq!(r.admit(A, Some("eu")), Ok(Some(Jurisdiction::Eu)));
        assert_eq!(r.admit(B, Some("us")), Ok(Some(Jurisdiction::Us)));
    }

    #[test]
    fn a_claim_never_chooses_a_place() {
        let r = residency(None, &format!("{A}=eu"));
        // Another jurisdiction than the tenant's.
        let refused = r.admit(A, Some("fedramp")).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (403, "jurisdiction_mismatch")
        );
        assert!(refused.detail.contains("\"fedramp\"") && refused.detail.contains("\"eu\""));
        // A tenant kept outside any jurisdiction is not moved into one by a
        // token: otherwise the same channel would exist twice.
        let refused = r.admit(B, Some("eu")).unwrap_err();
        assert_eq!(refused.code, "jurisdiction_mismatch");
        assert!(refused.detail.contains("no jurisdiction"));
        // What the configuration says is unchanged by any claim.
        assert_eq!(r.of(B), None);
    }

    #[test]
    fn an_unknown_or_misspelt_claim_is_refused_without_echoing_it() {
        let r = residency(Some("eu"), "");
        for claim in ["EU", "mars", "", " eu", "eu\n", "-", "<script>"] {
            let refused = r.admit(A, Some(claim)).unwrap_err();
            assert_eq!(refused.code, "jurisdiction_mismatch", "{claim:?}");
            if !claim.is_empty() {
                assert!(!refused.detail.contains(claim), "{claim:?}");
            }
        }
    }
}
