//! Channel names and the tenant gate.
//!
//! A channel name is `<prefix>:<tenant_id>:<resource_id>`. Tenant isolation
//! rests entirely on reading the tenant out of that name, so this module is
//! the only place names are built or parsed: if a name could be built with a
//! `:` inside a segment, `a:<tenant>:x` and `a:<other>:y` would stop meaning
//! what they say. Every name that exists as a [`ChannelName`] has passed
//! [`ChannelName::parse`].

use crate::problem::Problem;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Longest whole name. The segment limits already keep a valid name under
/// 231 bytes; checking the whole length first bounds the work done on a
/// hostile value before anything is split.
pub const MAX_NAME_BYTES: usize = 255;
const MAX_PREFIX_CHARS: usize = 64;
const MAX_RESOURCE_CHARS: usize = 128;
/// How much of a rejected value is echoed back in a problem detail.
const ECHO_CHARS: usize = 64;

/// A validated channel name. Holds the name once plus where the tenant and
/// resource segments start, so the accessors are free, and the tenant as the
/// gate compares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName {
    name: String,
    tenant_start: usize,
    resource_start: usize,
    tenant_id: TenantId,
}

/// A tenant id: a UUID that was written in its one canonical text form,
/// lowercase and hyphenated 8-4-4-4-12.
///
/// The `uuid` crate parses; it also takes the braced, URN, unhyphenated and
/// uppercase spellings, and those are refused here rather than normalised,
/// so that one tenant has one spelling: a channel name, a Durable Object
/// name and a log line that say the same tenant say it with the same text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Uuid);

impl TenantId {
    pub fn parse(s: &str) -> Option<Self> {
        let uuid = Uuid::try_parse(s).ok()?;
        let canonical = uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == s;
        canonical.then_some(TenantId(uuid))
    }
}

/// Why a string is not a channel name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelError(Reason);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    TooLong,
    SegmentCount,
    SeparatorInSegment,
    Prefix,
    Tenant,
    Resource,
}

impl ChannelName {
    pub fn parse(s: &str) -> Result<Self, ChannelError> {
        if s.len() > MAX_NAME_BYTES {
            return Err(ChannelError(Reason::TooLong));
        }
        let mut segments = s.split(':');
        let (Some(prefix), Some(tenant), Some(resource), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(ChannelError(Reason::SegmentCount));
        };
        if !is_prefix(prefix) {
            return Err(ChannelError(Reason::Prefix));
        }
        let tenant_id = TenantId::parse(tenant).ok_or(ChannelError(Reason::Tenant))?;
        if !is_resource(resource) {
            return Err(ChannelError(Reason::Resource));
        }
        let tenant_start = prefix.len() + 1;
        Ok(ChannelName {
            name: s.to_owned(),
            tenant_start,
            resource_start: tenant_start + tenant.len() + 1,
            tenant_id,
        })
    }

    /// Builds a name from its parts. A part containing `:` is an error: it is
    /// never escaped, because an escaped separator is still a second way to
    /// spell a name.
    pub fn build(prefix: &str, tenant: &str, resource: &str) -> Result<Self, ChannelError> {
        if [prefix, tenant, resource]
            .iter()
            .any(|part| part.contains(':'))
        {
            return Err(ChannelError(Reason::SeparatorInSegment));
        }
        ChannelName::parse(&format!("{prefix}:{tenant}:{resource}"))
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn prefix(&self) -> &str {
        &self.name[..self.tenant_start - 1]
    }

    pub fn tenant(&self) -> &str {
        &self.name[self.tenant_start..self.resource_start - 1]
    }

    pub fn resource(&self) -> &str {
        &self.name[self.resource_start..]
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

/// `a-z 0-9 -`, 1-64 characters, starting with a letter.
pub fn is_prefix(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_PREFIX_CHARS
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `s` is a tenant id in its canonical text (see [`TenantId`]).
pub fn is_canonical_uuid(s: &str) -> bool {
    TenantId::parse(s).is_some()
}

/// `A-Z a-z 0-9 - _ .`, 1-128 characters.
fn is_resource(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_RESOURCE_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for ChannelName {
    type Err = ChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChannelName::parse(s)
    }
}

impl Serialize for ChannelName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

/// Deserialising goes through [`ChannelName::parse`], so a name read from a
/// message or from storage is held to the same rules as one from a request.
impl<'de> Deserialize<'de> for ChannelName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ChannelName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Reason::TooLong => "channel must be at most 255 bytes",
            Reason::SegmentCount => "channel must have exactly 3 ':'-separated segments",
            Reason::SeparatorInSegment => "channel segments must not contain ':'",
            Reason::Prefix => {
                "channel prefix must be 1-64 characters of a-z, 0-9 and '-', starting with a letter"
            }
            Reason::Tenant => {
                "channel tenant must be a UUID in lowercase hyphenated 8-4-4-4-12 form"
            }
            Reason::Resource => {
                "channel resource must be 1-128 characters of A-Z, a-z, 0-9, '-', '_' and '.'"
            }
        })
    }
}

impl std::error::Error for ChannelError {}

impl From<ChannelError> for Problem {
    fn from(err: ChannelError) -> Self {
        Problem::invalid_channel(err.to_string())
    }
}

/// A rejected value as it may be echoed in a problem detail and a log line:
/// at most 64 characters, everything outside printable ASCII replaced by `?`.
fn echo(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(ECHO_CHARS)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if value.chars().nth(ECHO_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

/// Parses the stream's requested channels from query pairs (already
/// percent-decoded): every `channel=<name>` (repeatable) and every
/// `channels=<a>,<b>`. Duplicates are dropped, keeping the first occurrence's
/// position. An empty item (`channel=`, `channels=a,,b`) is a malformed name,
/// not something to skip: the whole request fails rather than carry fewer
/// channels than the client asked for.
///
/// Stops as soon as more than `max` distinct channels are seen, so a query
/// with thousands of names costs no more than one with `max + 1`.
pub fn requested_channels<'a>(
    query: impl IntoIterator<Item = (&'a str, &'a str)>,
    max: usize,
) -> Result<Vec<ChannelName>, Problem> {
    let mut channels: Vec<ChannelName> = Vec::new();
    for (key, value) in query {
        let names: Box<dyn Iterator<Item = &str>> = match key {
            "channel" => Box::new(std::iter::once(value)),
            "channels" => Box::new(value.split(',')),
            _ => continue,
        };
        for name in names {
            let channel = ChannelName::parse(name)
                .map_err(|err| Problem::invalid_channel(format!("{err}: \"{}\"", echo(name))))?;
            if channels.contains(&channel) {
                continue;
            }
            if channels.len() == max {
                return Err(Problem::too_many_channels(max));
            }
            channels.push(channel);
        }
    }
    if channels.is_empty() {
        return Err(Problem::no_channels());
    }
    Ok(channels)
}

/// The channel a URL path segment names (`/v1/channels/{channel}`), which
/// clients percent-encode (`:` as `%3A`). A malformed escape or text that is
/// not UTF-8 once decoded is `invalid_channel`, like a malformed name.
pub fn channel_in_path(encoded: &str) -> Result<ChannelName, Problem> {
    let decoded = crate::percent::decode_strict(encoded)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            Problem::invalid_channel("the channel in the path is not percent-encoded UTF-8")
        })?;
    ChannelName::parse(&decoded)
        .map_err(|err| Problem::invalid_channel(format!("{err}: \"{}\"", echo(&decoded))))
}

/// The tenant gate, failing closed: a token without a tenant may open no
/// channel, and one channel of another tenant fails the whole request, so a
/// client never gets a stream that silently lacks what it asked for. An empty
/// channel list authorises nothing.
pub fn authorize_tenant(
    token_tenant: Option<&str>,
    channels: &[ChannelName],
) -> Result<(), Problem> {
    let Some(tenant) = token_tenant else {
        return Err(Problem::tenant_missing());
    };
    if channels.is_empty() {
        return Err(Problem::no_channels());
    }
    // A token tenant in another spelling (upper case, braces) matches no
    // channel, as every channel's tenant is canonical.
    let tenant = TenantId::parse(tenant);
    match channels
        .iter()
        .find(|channel| Some(channel.tenant_id()) != tenant)
    {
        Some(channel) => Err(Problem::channel_forbidden(format!(
            "the token's tenant may not access channel \"{channel}\""
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn a_channel_in_a_path_is_percent_decoded_strictly() {
        let name = "scan:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:r.1";
        let encoded = "scan%3A0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19%3ar.1";
        assert_eq!(channel_in_path(encoded).unwrap().as_str(), name);
        assert_eq!(channel_in_path(name).unwrap().as_str(), name);
        for bad in ["scan%3", "scan%zz", "scan%+f", "%FF", "scan%3Aother", ""] {
            assert_eq!(
                channel_in_path(bad).unwrap_err().code,
                "invalid_channel",
                "{bad}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
    const OTHER: &str = "11111111-2222-4333-8444-555555555555";

    fn name(prefix: &str, tenant: &str, resource: &str) -> String {
        format!("{prefix}:{tenant}:{resource}")
    }

    fn reason(s: &str) -> Reason {
        ChannelName::parse(s).unwrap_err().0
    }

    #[test]
    fn parses_and_exposes_segments() {
        let c = ChannelName::parse(&name("scan-progress", T, "Scan_42.v1")).unwrap();
        assert_eq!(c.prefix(), "scan-progress");
        assert_eq!(c.tenant(), T);
        assert_eq!(c.resource(), "Scan_42.v1");
        assert_eq!(c.as_str(), name("scan-progress", T, "Scan_42.v1"));
        assert_eq!(c.to_string(), c.as_str());
        assert_eq!(
            name("scan-progress", T, "Scan_42.v1")
                .parse::<ChannelName>()
                .unwrap(),
            c
        );
    }

    #[test]
    fn build_equals_parse() {
        let built = ChannelName::build("scan", T, "42").unwrap();
        assert_eq!(built, ChannelName::parse(&name("scan", T, "42")).unwrap());
    }

    #[test]
    fn extra_separator_is_rejected_not_split() {
        assert_eq!(reason(&format!("a:{T}:x:y")), Reason::SegmentCount);
        assert_eq!(reason(&format!("a:{T}:")), Reason::Resource);
        assert_eq!(reason(&format!("a:{T}:x:")), Reason::SegmentCount);
    }

    #[test]
    fn builder_refuses_separator_in_any_segment() {
        for (p, t, r) in [
            ("a:b", T, "x"),
            ("a", "0b9c2f4e:8a1d", "x"),
            ("a", T, "x:y"),
            ("a", T, ":"),
            ("a", &format!("{T}:a"), "x"),
        ] {
            assert_eq!(
                ChannelName::build(p, t, r).unwrap_err().0,
                Reason::SeparatorInSegment,
                "{p} {t} {r}"
            );
        }
        // The builder must not be a way around the gate: putting the other
        // tenant's id into the resource cannot produce a name in that tenant.
        assert!(ChannelName::build("a", T, &format!("{OTHER}:x")).is_err());
    }

    #[test]
    fn percent_encoded_separator_is_just_an_invalid_character() {
        assert_eq!(reason(&format!("a%3A{T}%3Ax")), Reason::SegmentCount);
        assert_eq!(reason(&format!("a:{T}:x%3Ay")), Reason::Resource);
        assert_eq!(reason(&format!("a%3Ab:{T}:x")), Reason::Prefix);
    }

    #[test]
    fn wrong_segment_counts() {
        assert_eq!(reason(""), Reason::SegmentCount);
        assert_eq!(reason("a"), Reason::SegmentCount);
        assert_eq!(reason(&format!("a:{T}")), Reason::SegmentCount);
        assert_eq!(reason(&format!("a:{T}:x:y")), Reason::SegmentCount);
        assert_eq!(reason("::"), Reason::Prefix);
        assert_eq!(reason(&format!(":{T}:x")), Reason::Prefix);
        assert_eq!(reason("a::x"), Reason::Tenant);
    }

    #[test]
    fn tenant_must_be_a_canonical_uuid() {
        for bad in [
            "0B9C2F4E-8A1D-4C3B-9E7F-6A5D4C3B2A19",
            "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2A19",
            "0b9c2f4e8a1d4c3b9e7f6a5d4c3b2a19",
            "0b9c2f4e-8a1d-4c3b-9e7f6a5d4c3b2a19-",
            "{0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19}",
            "urn:uuid:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19",
            "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a1",
            "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a190",
            "0b9c2f4-e8a1d-4c3b-9e7f-6a5d4c3b2a19",
            "0b9c2f4g-8a1d-4c3b-9e7f-6a5d4c3b2a19",
            "0b9c2f4e_8a1d_4c3b_9e7f_6a5d4c3b2a19",
            " 0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a1",
            "tenant",
        ] {
            assert!(ChannelName::parse(&name("a", bad, "x")).is_err(), "{bad}");
            assert!(ChannelName::build("a", bad, "x").is_err(), "{bad}");
        }
        assert!(
            ChannelName::parse(&name("a", "00000000-0000-0000-0000-000000000000", "x")).is_ok()
        );
    }

    #[test]
    fn tenant_id_is_the_uuid_behind_the_canonical_text() {
        let id = TenantId::parse(T).unwrap();
        assert_eq!(ChannelName::build("a", T, "1").unwrap().tenant_id(), id);
        assert_eq!(id.0.to_string(), T);
        assert_ne!(TenantId::parse(OTHER).unwrap(), id);
        // Spellings the uuid crate itself accepts, refused here.
        for other_spelling in [
            T.to_uppercase(),
            T.replace('-', ""),
            format!("{{{T}}}"),
            format!("urn:uuid:{T}"),
        ] {
            assert!(Uuid::try_parse(&other_spelling).is_ok(), "{other_spelling}");
            assert_eq!(TenantId::parse(&other_spelling), None, "{other_spelling}");
        }
        // Any version and variant is a tenant id: the nil and max UUIDs too.
        for edge in [
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ] {
            assert!(TenantId::parse(edge).is_some(), "{edge}");
        }
    }

    #[test]
    fn prefix_rules() {
        assert!(ChannelName::build("a", T, "x").is_ok());
        assert!(ChannelName::build("a-1-b", T, "x").is_ok());
        assert!(ChannelName::build(&"a".repeat(64), T, "x").is_ok());
        for bad in [
            "1scan",
            "-scan",
            "Scan",
            "sCan",
            "scan_progress",
            "scan.progress",
            "",
            " scan",
            "scän",
        ] {
            assert_eq!(
                ChannelName::build(bad, T, "x").unwrap_err().0,
                Reason::Prefix,
                "{bad}"
            );
        }
        assert_eq!(
            ChannelName::build(&"a".repeat(65), T, "x").unwrap_err().0,
            Reason::Prefix
        );
    }

    #[test]
    fn resource_rules() {
        assert!(ChannelName::build("a", T, &"R".repeat(128)).is_ok());
        assert!(ChannelName::build("a", T, "A-z_0.9").is_ok());
        for bad in [
            "", "a b", "a/b", "../x", "é", "x\u{0}", "x\n", "%2F", "a+b", "a,b", "a;b",
        ] {
            assert_eq!(
                ChannelName::build("a", T, bad).unwrap_err().0,
                Reason::Resource,
                "{bad:?}"
            );
        }
        assert_eq!(
            ChannelName::build("a", T, &"R".repeat(129)).unwrap_err().0,
            Reason::Resource
        );
    }

    #[test]
    fn whole_name_is_capped_before_splitting() {
        let long = name("a", T, &"x".repeat(255));
        assert_eq!(reason(&long), Reason::TooLong);
        assert_eq!(reason(&":".repeat(256)), Reason::TooLong);
        let longest_valid = name(&"a".repeat(64), T, &"x".repeat(128));
        assert!(longest_valid.len() <= MAX_NAME_BYTES);
        assert!(ChannelName::parse(&longest_valid).is_ok());
    }

    #[test]
    fn errors_read_as_reasons_and_become_invalid_channel() {
        let err = ChannelName::parse("a:b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "channel must have exactly 3 ':'-separated segments"
        );
        let p: Problem = err.into();
        assert_eq!((p.status, p.code), (400, "invalid_channel"));
    }

    #[test]
    fn serde_uses_the_string_and_validates_on_the_way_in() {
        let c = ChannelName::build("scan", T, "1").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"scan:{T}:1\""));
        assert_eq!(serde_json::from_str::<ChannelName>(&json).unwrap(), c);
        let err = serde_json::from_str::<ChannelName>(&format!("\"scan:{T}:1:2\"")).unwrap_err();
        assert!(err.to_string().contains("3 ':'-separated"), "{err}");
        assert!(serde_json::from_str::<ChannelName>("42").is_err());
    }

    #[test]
    fn ordering_and_hashing_follow_the_name() {
        let a = ChannelName::build("a", T, "1").unwrap();
        let b = ChannelName::build("b", T, "1").unwrap();
        assert!(a < b);
        let set: std::collections::HashSet<_> = [a.clone(), a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    fn a(r: &str) -> String {
        name("a", T, r)
    }

    #[test]
    fn requested_channels_from_repeated_and_comma_parameters() {
        let (c1, c2, c3) = (a("1"), a("2"), a("3"));
        let list = format!("{c2},{c3}");
        let got = requested_channels(
            [
                ("channel", c1.as_str()),
                ("access_token", "x"),
                ("channels", list.as_str()),
            ],
            5,
        )
        .unwrap();
        let got: Vec<_> = got.iter().map(ChannelName::as_str).collect();
        assert_eq!(got, [c1.as_str(), c2.as_str(), c3.as_str()]);
    }

    #[test]
    fn requested_channels_dedupes_keeping_first_position() {
        let (c1, c2) = (a("1"), a("2"));
        let list = format!("{c2},{c1},{c2}");
        let got =
            requested_channels([("channel", c1.as_str()), ("channels", list.as_str())], 2).unwrap();
        let got: Vec<_> = got.iter().map(ChannelName::as_str).collect();
        assert_eq!(got, [c1.as_str(), c2.as_str()]);
    }

    #[test]
    fn requested_channels_counts_distinct_names_against_the_limit() {
        let names: Vec<String> = (0..6).map(|i| a(&i.to_string())).collect();
        let pairs = |n: usize| {
            names[..n]
                .iter()
                .map(|s| ("channel", s.as_str()))
                .collect::<Vec<_>>()
        };
        assert_eq!(requested_channels(pairs(5), 5).unwrap().len(), 5);
        let err = requested_channels(pairs(6), 5).unwrap_err();
        assert_eq!(err.code, "too_many_channels");
        let mut repeated = pairs(5);
        repeated.extend(pairs(5));
        assert_eq!(requested_channels(repeated, 5).unwrap().len(), 5);
    }

    #[test]
    fn requested_channels_rejects_empty_items() {
        let c1 = a("1");
        for list in [
            format!("{c1},"),
            format!(",{c1}"),
            format!("{c1},,{c1}"),
            String::new(),
        ] {
            let err = requested_channels([("channels", list.as_str())], 5).unwrap_err();
            assert_eq!(err.code, "invalid_channel", "{list}");
        }
        let err = requested_channels([("channel", "")], 5).unwrap_err();
        assert_eq!(err.code, "invalid_channel");
    }

    #[test]
    fn requested_channels_without_any_is_no_channels() {
        let err = requested_channels([("access_token", "x"), ("Channel", "y")], 5).unwrap_err();
        assert_eq!(err.code, "no_channels");
        assert_eq!(requested_channels([], 5).unwrap_err().code, "no_channels");
    }

    #[test]
    fn requested_channels_fails_whole_request_on_one_bad_name() {
        let good = a("1");
        let err =
            requested_channels([("channel", good.as_str()), ("channel", "nope")], 5).unwrap_err();
        assert_eq!(err.code, "invalid_channel");
        assert!(err.detail.contains("\"nope\""), "{}", err.detail);
    }

    #[test]
    fn bad_value_is_echoed_truncated_and_sanitized() {
        let hostile = format!("x\r\n{}\u{7}é", "y".repeat(200));
        let err = requested_channels([("channel", hostile.as_str())], 5).unwrap_err();
        assert!(!err.detail.contains('\r') && !err.detail.contains('\n'));
        assert!(!err.detail.contains('é') && !err.detail.contains('\u{7}'));
        assert!(err.detail.len() < 200, "{}", err.detail);
        assert!(err.detail.ends_with("...\""), "{}", err.detail);
    }

    #[test]
    fn gate_allows_own_tenant() {
        let channels = [
            ChannelName::build("a", T, "1").unwrap(),
            ChannelName::build("b", T, "2").unwrap(),
        ];
        assert!(authorize_tenant(Some(T), &channels).is_ok());
    }

    #[test]
    fn gate_refuses_token_without_tenant() {
        let channels = [ChannelName::build("a", T, "1").unwrap()];
        assert_eq!(
            authorize_tenant(None, &channels).unwrap_err().code,
            "tenant_missing"
        );
    }

    #[test]
    fn gate_fails_whole_request_for_one_foreign_channel() {
        let channels = [
            ChannelName::build("a", T, "1").unwrap(),
            ChannelName::build("a", OTHER, "1").unwrap(),
        ];
        let err = authorize_tenant(Some(T), &channels).unwrap_err();
        assert_eq!((err.status, err.code), (403, "channel_forbidden"));
    }

    #[test]
    fn gate_compares_exactly() {
        let channels = [ChannelName::build("a", T, "1").unwrap()];
        for near in [
            T.to_uppercase(),
            format!(" {T}"),
            format!("{T} "),
            format!("{{{T}}}"),
            String::new(),
        ] {
            assert_eq!(
                authorize_tenant(Some(&near), &channels).unwrap_err().code,
                "channel_forbidden",
                "{near}"
            );
        }
    }

    #[test]
    fn gate_authorises_nothing_for_no_channels() {
        assert_eq!(
            authorize_tenant(Some(T), &[]).unwrap_err().code,
            "no_channels"
        );
    }
}
