//! Settings from wrangler vars.
//!
//! Read through a lookup function so that this crate needs no runtime: the
//! Worker passes `|name| env.var(name)`, tests pass a closure over a list.
//! A value that is set but wrong is an error naming the variable, never a
//! silent fallback to the default: a typo in `MAX_EVENT_BYTES` should stop a
//! deploy, not quietly run with other limits than the operator wrote down.
//! An empty (or all-whitespace) value counts as unset.

use crate::channel::{is_prefix, ChannelName};
use crate::residency::Residency;
use crate::token::VerifierConfig;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub keepalive_seconds: u64,
    pub max_channels_per_stream: usize,
    pub max_event_bytes: usize,
    pub history_size: usize,
    pub history_ttl_seconds: u64,
    pub retry_ms: u64,
    pub tenant_claim: String,
    /// The claim that must be `access` when present (`token_type` and
    /// `typ` must be too, whatever this says).
    pub token_type_claim: String,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_leeway_seconds: u64,
    /// Least time between two fetches of `JWKS_URL` (a token with an unknown
    /// `kid` refetches no sooner).
    pub jwks_refresh_cooldown_seconds: u64,
    /// Exact origins (`https://app.example`) that get CORS headers.
    pub allowed_origins: Vec<String>,
    /// Channel prefixes whose channels have presence (`crate::presence`).
    pub presence_prefixes: Vec<String>,
    /// Streams a channel's object serves itself before it spreads further
    /// streams over shard objects.
    pub shard_subscribers: u64,
    /// How often a stream opened with an API key checks that the key still
    /// exists: the longest a deleted key's stream stays open. Each check is
    /// one KV read per stream.
    pub api_key_recheck_seconds: u64,
    /// How often an open stream writes a usage point (with the `USAGE`
    /// dataset bound), at first; `crate::usage::progress_wait` stretches it.
    pub usage_interval_seconds: u64,
    /// Streams one tenant may have open at once; 0 is no limit.
    pub max_streams_per_tenant: u64,
    /// The period the `PUBLISH_QUOTA` rate-limit binding was created with:
    /// the `Retry-After` of a publish over it.
    pub publish_quota_period_seconds: u64,
    /// Which Durable Object jurisdiction each tenant's objects live in.
    pub residency: Residency,
    /// The token claim that, when present, must name the jurisdiction of the
    /// tenant's data (`crate::residency`).
    pub jurisdiction_claim: String,
    /// 0: every stream holds its own socket to its channel's object. Above
    /// 0: the streams of one channel in one isolate share one socket (the
    /// hub), and its owner hands it on after dispatching this many wakes to
    /// the other streams, so no invocation pays a channel's fan-out for
    /// ever against its CPU limit.
    pub hub_dispatch_budget: u64,
    /// What a stream's response body is made of (`STREAM_BODY`).
    pub stream_body: StreamBody,
    /// Which requests get a log line (`REQUEST_LOG`).
    pub request_log: RequestLog,
}

/// Which requests the Worker writes its `request` log line for. A line is a
/// `console.log` that costs the runtime more CPU than a small publish's
/// whole handling (docs/benchmarks.md), and Cloudflare already records every
/// invocation with its status, so only refusals and failures are logged
/// unless every request is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestLog {
    /// Requests answered with a status of 400 or more.
    Failures,
    /// Every request.
    All,
}

impl RequestLog {
    pub fn logs(self, status: u16) -> bool {
        self == RequestLog::All || status >= 400
    }
}

/// The response body of a stream. The two trade memory against delivery
/// cost; docs/benchmarks.md has both measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamBody {
    /// workerd's native byte pipe: the cheapest write and the shortest
    /// fan-out tail, and a 64 KiB buffer per open stream in the runtime.
    Native,
    /// A JavaScript stream the relay fills: no buffer of its own, about half
    /// the memory per idle stream, more CPU per delivery.
    Script,
}

/// A variable that is set to something unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keepalive_seconds: 15,
            max_channels_per_stream: 5,
            max_event_bytes: 65_536,
            history_size: 1000,
            history_ttl_seconds: 86_400,
            retry_ms: 3000,
            tenant_claim: "tenant_id".to_owned(),
            token_type_claim: "token_type".to_owned(),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_seconds: 30,
            jwks_refresh_cooldown_seconds: 60,
            allowed_origins: Vec::new(),
            presence_prefixes: Vec::new(),
            shard_subscribers: DEFAULT_SHARD_SUBSCRIBERS,
            api_key_recheck_seconds: 60,
            usage_interval_seconds: 300,
            max_streams_per_tenant: 0,
            publish_quota_period_seconds: 60,
            residency: Residency::default(),
            jurisdiction_claim: "jurisdiction".to_owned(),
            hub_dispatch_budget: 10_000_000,
            stream_body: StreamBody::Native,
            request_log: RequestLog::Failures,
        }
    }
}

/// The default of `SHARD_SUBSCRIBERS`. A channel object's send to one socket
/// is serial work (docs/scaling.md has the measured cost); at this many
/// streams one event is a few milliseconds of it, and a shard's round trip
/// costs less than the sends it takes over.
pub const DEFAULT_SHARD_SUBSCRIBERS: u64 = 2000;

impl Settings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let defaults = Settings::default();
        let number =
            |name: &'static str, default: u64, min: u64, max: u64, why: &str| match get(name) {
                None => Ok(default),
                Some(value) => parse_number(&value, min, max).ok_or_else(|| ConfigError {
                    variable: name,
                    reason: format!(
                        "must be a whole number from {min} to {max}{why}, got \"{value}\""
                    ),
                }),
            };
        let size = |name, default: usize, min, max, why| {
            number(name, default as u64, min, max, why).map(|n| n as usize)
        };

        let tenant_claim = get("TENANT_CLAIM").unwrap_or(defaults.tenant_claim);
        let token_type_claim = match get("TOKEN_TYPE_CLAIM") {
            None => defaults.token_type_claim,
            Some(name) => token_type_claim(name, &tenant_claim)?,
        };
        let jurisdiction_claim = match get("JURISDICTION_CLAIM") {
            None => defaults.jurisdiction_claim,
            Some(name) => jurisdiction_claim(name, &tenant_claim, &token_type_claim)?,
        };
        let residency = Residency::parse(
            get("DEFAULT_JURISDICTION").as_deref(),
            get("TENANT_JURISDICTIONS").as_deref(),
        )?;

        Ok(Settings {
            keepalive_seconds: number(
                "KEEPALIVE_SECONDS",
                defaults.keepalive_seconds,
                1,
                3600,
                "",
            )?,
            max_channels_per_stream: size(
                "MAX_CHANNELS_PER_STREAM",
                defaults.max_channels_per_stream,
                1,
                5,
                " (a Worker invocation has 6 outgoing connections, one per channel plus one spare)",
            )?,
            max_event_bytes: size(
                "MAX_EVENT_BYTES",
                defaults.max_event_bytes,
                1,
                1_048_576,
                " (an event must fit one Durable Object storage row and one WebSocket message)",
            )?,
            history_size: size("HISTORY_SIZE", defaults.history_size, 1, 100_000, "")?,
            history_ttl_seconds: number(
                "HISTORY_TTL_SECONDS",
                defaults.history_ttl_seconds,
                1,
                31_536_000,
                "",
            )?,
            retry_ms: number("RETRY_MS", defaults.retry_ms, 100, 600_000, "")?,
            tenant_claim,
            token_type_claim,
            jwt_issuer: get("JWT_ISSUER"),
            jwt_audience: get("JWT_AUDIENCE"),
            jwt_leeway_seconds: number(
                "JWT_LEEWAY_SECONDS",
                defaults.jwt_leeway_seconds,
                0,
                300,
                "",
            )?,
            jwks_refresh_cooldown_seconds: number(
                "JWKS_REFRESH_COOLDOWN_SECONDS",
                defaults.jwks_refresh_cooldown_seconds,
                1,
                3600,
                "",
            )?,
            allowed_origins: match get("ALLOWED_ORIGINS") {
                None => Vec::new(),
                Some(list) => parse_origins(&list)?,
            },
            presence_prefixes: match get("PRESENCE_PREFIXES") {
                None => Vec::new(),
                Some(list) => parse_prefixes(&list)?,
            },
            shard_subscribers: number(
                "SHARD_SUBSCRIBERS",
                defaults.shard_subscribers,
                2,
                32_768,
                " (a Durable Object holds at most 32,768 hibernatable WebSockets)",
            )?,
            api_key_recheck_seconds: number(
                "API_KEY_RECHECK_SECONDS",
                defaults.api_key_recheck_seconds,
                1,
                3600,
                "",
            )?,
            usage_interval_seconds: number(
                "USAGE_INTERVAL_SECONDS",
                defaults.usage_interval_seconds,
                1,
                86_400,
                "",
            )?,
            max_streams_per_tenant: number(
                "MAX_STREAMS_PER_TENANT",
                defaults.max_streams_per_tenant,
                0,
                10_000_000,
                " (0 is no limit)",
            )?,
            publish_quota_period_seconds: match get("PUBLISH_QUOTA_PERIOD_SECONDS").as_deref() {
                None => defaults.publish_quota_period_seconds,
                Some("10") => 10,
                Some("60") => 60,
                Some(value) => {
                    return Err(ConfigError {
                        variable: "PUBLISH_QUOTA_PERIOD_SECONDS",
                        reason: format!(
                        "must be 10 or 60 (the periods a rate-limit binding has), got \"{value}\""
                    ),
                    })
                }
            },
            residency,
            jurisdiction_claim,
            hub_dispatch_budget: number(
                "HUB_DISPATCH_BUDGET",
                defaults.hub_dispatch_budget,
                0,
                100_000_000,
                " (0 keeps a socket per stream)",
            )?,
            stream_body: one_of(
                "STREAM_BODY",
                get("STREAM_BODY"),
                defaults.stream_body,
                &[
                    ("native", StreamBody::Native),
                    ("script", StreamBody::Script),
                ],
            )?,
            request_log: one_of(
                "REQUEST_LOG",
                get("REQUEST_LOG"),
                defaults.request_log,
                &[("failures", RequestLog::Failures), ("all", RequestLog::All)],
            )?,
        })
    }

    /// Whether `origin` (an `Origin` header) may read responses cross-origin.
    /// Exact comparison: browsers send origins in one canonical spelling, and
    /// configured ones were checked to be in that spelling.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed == origin)
    }

    /// Whether the channel's prefix is one `PRESENCE_PREFIXES` names.
    pub fn has_presence(&self, channel: &ChannelName) -> bool {
        self.presence_prefixes
            .iter()
            .any(|prefix| prefix == channel.prefix())
    }

    /// The JWT rules these settings describe, with the secret (`JWT_SECRET`,
    /// a secret rather than a var) supplied by the caller.
    pub fn verifier_config(&self, secret: Vec<u8>) -> VerifierConfig {
        VerifierConfig {
            secret,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            tenant_claim: self.tenant_claim.clone(),
            token_type_claim: self.token_type_claim.clone(),
            jurisdiction_claim: self.jurisdiction_claim.clone(),
            leeway_seconds: self.jwt_leeway_seconds,
            ..VerifierConfig::default()
        }
    }
}

/// Claims the verifier reads for something else. Naming one of them as the
/// token type claim would demand that, say, `exp` be the string `access`,
/// which refuses every token for a reason no log line would make clear.
const CLAIMS_WITH_ANOTHER_MEANING: [&str; 9] = [
    "exp", "nbf", "iat", "iss", "aud", "sub", "user_id", "jti", "scope",
];

/// `TOKEN_TYPE_CLAIM`: a claim name of 1-64 ASCII letters, digits and
/// `_ - . :` (what issuers use for claim names, and nothing a log line could
/// be confused by), not a claim the relay reads for another purpose.
fn token_type_claim(name: String, tenant_claim: &str) -> Result<String, ConfigError> {
    let error = |reason: String| ConfigError {
        variable: "TOKEN_TYPE_CLAIM",
        reason,
    };
    well_formed_claim(&name).map_err(error)?;
    if CLAIMS_WITH_ANOTHER_MEANING.contains(&name.as_str()) || name == tenant_claim {
        return Err(error(format!(
            "\"{name}\" is a claim the relay reads for another purpose; \
             name the claim your issuer puts the token type in (token_type or typ)"
        )));
    }
    Ok(name)
}

/// `JURISDICTION_CLAIM`: a well-formed claim name that no other rule reads:
/// a claim shared with the tenant or the token type would have to be both a
/// tenant id (or `access`) and a jurisdiction, and refuse every token.
fn jurisdiction_claim(
    name: String,
    tenant_claim: &str,
    token_type_claim: &str,
) -> Result<String, ConfigError> {
    let error = |reason: String| ConfigError {
        variable: "JURISDICTION_CLAIM",
        reason,
    };
    well_formed_claim(&name).map_err(error)?;
    let taken = [tenant_claim, token_type_claim, "token_type", "typ"];
    if CLAIMS_WITH_ANOTHER_MEANING.contains(&name.as_str()) || taken.contains(&name.as_str()) {
        return Err(error(format!(
            "\"{name}\" is a claim the relay reads for another purpose; \
             name the claim your issuer puts the jurisdiction in"
        )));
    }
    Ok(name)
}

/// 1-64 ASCII letters, digits and `_ - . :` (what issuers use for claim
/// names, and nothing a log line could be confused by).
fn well_formed_claim(name: &str) -> Result<(), String> {
    let well_formed = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if well_formed {
        return Ok(());
    }
    Err(format!(
        "must be a claim name of 1-64 letters, digits, '_', '-', '.' or ':', got \"{}\"",
        name.escape_debug()
    ))
}

/// A setting that names one of a few kinds, spelled exactly.
fn one_of<T: Copy>(
    variable: &'static str,
    value: Option<String>,
    default: T,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match choices.iter().find(|(name, _)| *name == value) {
        Some((_, kind)) => Ok(*kind),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Err(ConfigError {
                variable,
                reason: format!(
                    "must be {}, got \"{}\"",
                    names.join(" or "),
                    value.escape_debug()
                ),
            })
        }
    }
}

/// Digits only, within `min..=max`.
fn parse_number(value: &str, min: u64, max: u64) -> Option<u64> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|n| (min..=max).contains(n))
}

/// Comma- and/or whitespace-separated origins, each `http(s)://host[:port]`
/// in the lower-case form browsers send. Anything else (a path, a trailing
/// slash, `*`, upper case) could never equal an `Origin` header, so it is
/// refused here instead of silently matching nothing.
fn parse_origins(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut origins: Vec<String> = Vec::new();
    for origin in list
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
    {
        if !is_origin(origin) {
            return Err(ConfigError {
                variable: "ALLOWED_ORIGINS",
                reason: format!(
                    "\"{origin}\" is not an exact origin like https://app.example or http://127.0.0.1:3000 \
                     (lower case, no path, no trailing slash, no wildcard)"
                ),
            });
        }
        if !origins.iter().any(|o| o == origin) {
            origins.push(origin.to_owned());
        }
    }
    Ok(origins)
}

/// Comma- and/or whitespace-separated channel prefixes. A prefix no channel
/// name could have would silently turn presence on for nothing.
fn parse_prefixes(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut prefixes: Vec<String> = Vec::new();
    for prefix in list
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
    {
        if !is_prefix(prefix) {
            return Err(ConfigError {
                variable: "PRESENCE_PREFIXES",
                reason: format!(
                    "\"{}\" is not a channel prefix (1-64 characters of a-z, 0-9 and '-', \
                     starting with a letter, without the ':')",
                    prefix.escape_debug()
                ),
            });
        }
        if !prefixes.iter().any(|p| p == prefix) {
            prefixes.push(prefix.to_owned());
        }
    }
    Ok(prefixes)
}

fn is_origin(s: &str) -> bool {
    let Some(authority) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    !authority.is_empty()
        && authority.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
        })
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn error_for(vars: &[(&str, &str)]) -> &'static str {
        settings(vars).unwrap_err().variable
    }

    #[test]
    fn nothing_set_gives_the_documented_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(
            (
                s.keepalive_seconds,
                s.max_channels_per_stream,
                s.max_event_bytes,
                s.history_size
            ),
            (15, 5, 65_536, 1000)
        );
        assert_eq!(
            (s.history_ttl_seconds, s.retry_ms, s.jwt_leeway_seconds),
            (86_400, 3000, 30)
        );
        assert_eq!(s.tenant_claim, "tenant_id");
        assert_eq!(s.token_type_claim, "token_type");
        assert_eq!(s.api_key_recheck_seconds, 60);
        assert_eq!(s.usage_interval_seconds, 300);
        assert_eq!(s.max_streams_per_tenant, 0, "no stream quota unless set");
        assert_eq!(s.publish_quota_period_seconds, 60);
        assert_eq!(s.hub_dispatch_budget, 10_000_000, "the hub by default");
        assert_eq!(s.stream_body, StreamBody::Native);
        assert_eq!(s.request_log, RequestLog::Failures);
        assert!(s.jwt_issuer.is_none() && s.jwt_audience.is_none() && s.allowed_origins.is_empty());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let names = [
            "KEEPALIVE_SECONDS",
            "MAX_CHANNELS_PER_STREAM",
            "MAX_EVENT_BYTES",
            "HISTORY_SIZE",
            "HISTORY_TTL_SECONDS",
            "RETRY_MS",
            "TENANT_CLAIM",
            "TOKEN_TYPE_CLAIM",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
            "JWT_LEEWAY_SECONDS",
            "ALLOWED_ORIGINS",
            "PRESENCE_PREFIXES",
            "API_KEY_RECHECK_SECONDS",
            "USAGE_INTERVAL_SECONDS",
            "MAX_STREAMS_PER_TENANT",
            "PUBLISH_QUOTA_PERIOD_SECONDS",
            "HUB_DISPATCH_BUDGET",
            "STREAM_BODY",
            "REQUEST_LOG",
        ];
        for blank in ["", "  "] {
            let vars: Vec<_> = names.iter().map(|n| (*n, blank)).collect();
            assert_eq!(settings(&vars).unwrap(), Settings::default());
        }
    }

    #[test]
    fn reads_every_variable() {
        let s = settings(&[
            ("KEEPALIVE_SECONDS", "20"),
            ("MAX_CHANNELS_PER_STREAM", "3"),
            ("MAX_EVENT_BYTES", " 1024 "),
            ("HISTORY_SIZE", "50"),
            ("HISTORY_TTL_SECONDS", "600"),
            ("RETRY_MS", "5000"),
            ("TENANT_CLAIM", "org_id"),
            ("TOKEN_TYPE_CLAIM", "typ"),
            ("JWT_ISSUER", "https://api.example"),
            ("JWT_AUDIENCE", "edgestream"),
            ("JWT_LEEWAY_SECONDS", "0"),
            (
                "ALLOWED_ORIGINS",
                "https://app.example, http://127.0.0.1:3000 https://b.example",
            ),
            ("PRESENCE_PREFIXES", "chat"),
            ("SHARD_SUBSCRIBERS", "10"),
            ("API_KEY_RECHECK_SECONDS", "2"),
            ("USAGE_INTERVAL_SECONDS", "30"),
            ("MAX_STREAMS_PER_TENANT", "500"),
            ("PUBLISH_QUOTA_PERIOD_SECONDS", "10"),
            ("DEFAULT_JURISDICTION", "eu"),
            (
                "TENANT_JURISDICTIONS",
                "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19=fedramp",
            ),
            ("JURISDICTION_CLAIM", "region"),
            ("HUB_DISPATCH_BUDGET", "500"),
            ("STREAM_BODY", "script"),
            ("REQUEST_LOG", "all"),
        ])
        .unwrap();
        assert_eq!(
            s,
            Settings {
                keepalive_seconds: 20,
                max_channels_per_stream: 3,
                max_event_bytes: 1024,
                history_size: 50,
                history_ttl_seconds: 600,
                retry_ms: 5000,
                tenant_claim: "org_id".into(),
                token_type_claim: "typ".into(),
                jwt_issuer: Some("https://api.example".into()),
                jwt_audience: Some("edgestream".into()),
                jwt_leeway_seconds: 0,
                jwks_refresh_cooldown_seconds: 60,
                allowed_origins: vec![
                    "https://app.example".into(),
                    "http://127.0.0.1:3000".into(),
                    "https://b.example".into()
                ],
                presence_prefixes: vec!["chat".into()],
                shard_subscribers: 10,
                api_key_recheck_seconds: 2,
                usage_interval_seconds: 30,
                max_streams_per_tenant: 500,
                publish_quota_period_seconds: 10,
                residency: Residency::parse(
                    Some("eu"),
                    Some("0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19=fedramp")
                )
                .unwrap(),
                jurisdiction_claim: "region".into(),
                hub_dispatch_budget: 500,
                stream_body: StreamBody::Script,
                request_log: RequestLog::All,
            }
        );
    }

    #[test]
    fn bad_numbers_fail_loudly_naming_the_variable() {
        for value in [
            "abc",
            "-1",
            "+5",
            "1.5",
            "1e3",
            "5s",
            "0x10",
            "99999999999999999999999",
        ] {
            assert_eq!(
                error_for(&[("KEEPALIVE_SECONDS", value)]),
                "KEEPALIVE_SECONDS",
                "{value}"
            );
        }
        let err = settings(&[("MAX_EVENT_BYTES", "64k")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("MAX_EVENT_BYTES: must be a whole number"),
            "{err}"
        );
        assert!(err.to_string().contains("\"64k\""), "{err}");
    }

    #[test]
    fn out_of_range_values_fail_loudly() {
        for (name, bad, good) in [
            ("KEEPALIVE_SECONDS", "0", "3600"),
            ("KEEPALIVE_SECONDS", "3601", "1"),
            ("MAX_CHANNELS_PER_STREAM", "0", "1"),
            ("MAX_CHANNELS_PER_STREAM", "6", "5"),
            ("MAX_EVENT_BYTES", "0", "1048576"),
            ("MAX_EVENT_BYTES", "1048577", "1"),
            ("HISTORY_SIZE", "0", "100000"),
            ("HISTORY_SIZE", "100001", "1"),
            ("HISTORY_TTL_SECONDS", "0", "31536000"),
            ("RETRY_MS", "99", "100"),
            ("RETRY_MS", "600001", "600000"),
            ("JWT_LEEWAY_SECONDS", "301", "300"),
            ("API_KEY_RECHECK_SECONDS", "0", "1"),
            ("API_KEY_RECHECK_SECONDS", "3601", "3600"),
            ("USAGE_INTERVAL_SECONDS", "0", "1"),
            ("USAGE_INTERVAL_SECONDS", "86401", "86400"),
            ("MAX_STREAMS_PER_TENANT", "10000001", "10000000"),
            ("MAX_STREAMS_PER_TENANT", "-1", "0"),
            ("HUB_DISPATCH_BUDGET", "-1", "0"),
            ("HUB_DISPATCH_BUDGET", "100000001", "100000000"),
        ] {
            assert_eq!(error_for(&[(name, bad)]), name, "{name}={bad}");
            assert!(settings(&[(name, good)]).is_ok(), "{name}={good}");
        }
    }

    #[test]
    fn the_publish_quota_period_is_one_a_rate_limit_binding_has() {
        for bad in ["0", "1", "30", "61", "600", "1m", "ten"] {
            let err = settings(&[("PUBLISH_QUOTA_PERIOD_SECONDS", bad)]).unwrap_err();
            assert_eq!(err.variable, "PUBLISH_QUOTA_PERIOD_SECONDS", "{bad}");
            assert!(err.reason.contains("10 or 60"), "{err}");
        }
        for (good, period) in [("10", 10), (" 60 ", 60)] {
            let s = settings(&[("PUBLISH_QUOTA_PERIOD_SECONDS", good)]).unwrap();
            assert_eq!(s.publish_quota_period_seconds, period);
        }
    }

    #[test]
    fn the_stream_body_is_one_of_the_two_kinds() {
        for bad in ["Native", "js", "pipe", "script,native", "1"] {
            let err = settings(&[("STREAM_BODY", bad)]).unwrap_err();
            assert_eq!(err.variable, "STREAM_BODY", "{bad}");
            assert!(err.reason.contains("native or script"), "{err}");
        }
        for (good, kind) in [
            ("native", StreamBody::Native),
            (" script ", StreamBody::Script),
        ] {
            assert_eq!(
                settings(&[("STREAM_BODY", good)]).unwrap().stream_body,
                kind
            );
        }
    }

    #[test]
    fn the_request_log_has_failures_unless_every_request_is_asked_for() {
        for bad in ["errors", "ALL", "none", "1"] {
            let err = settings(&[("REQUEST_LOG", bad)]).unwrap_err();
            assert_eq!(err.variable, "REQUEST_LOG", "{bad}");
            assert!(err.reason.contains("failures or all"), "{err}");
        }
        let failures = settings(&[]).unwrap().request_log;
        assert!(!failures.logs(200) && !failures.logs(202) && !failures.logs(304));
        assert!(
            failures.logs(400) && failures.logs(401) && failures.logs(429) && failures.logs(503)
        );
        let all = settings(&[("REQUEST_LOG", "all")]).unwrap().request_log;
        assert!(all.logs(200) && all.logs(202) && all.logs(503));
    }

    #[test]
    fn channel_limit_error_explains_the_connection_budget() {
        let err = settings(&[("MAX_CHANNELS_PER_STREAM", "6")]).unwrap_err();
        assert!(err.reason.contains("6 outgoing connections"), "{err}");
    }

    #[test]
    fn origins_must_be_exact() {
        for bad in [
            "*",
            "app.example",
            "https://app.example/",
            "https://app.example/path",
            "https://App.Example",
            "HTTPS://app.example",
            "https://*.example",
            "null",
            "https://",
            "ftp://app.example",
            "https://user@app.example",
            "https://app.example?x",
        ] {
            assert_eq!(
                error_for(&[("ALLOWED_ORIGINS", bad)]),
                "ALLOWED_ORIGINS",
                "{bad}"
            );
        }
        let s = settings(&[(
            "ALLOWED_ORIGINS",
            "https://a.example,,https://a.example\thttp://[::1]:8080",
        )])
        .unwrap();
        assert_eq!(
            s.allowed_origins,
            ["https://a.example", "http://[::1]:8080"]
        );
    }

    #[test]
    fn presence_prefixes_are_channel_prefixes() {
        let s = settings(&[("PRESENCE_PREFIXES", "chat, room-2,,chat\tdoc")]).unwrap();
        assert_eq!(s.presence_prefixes, ["chat", "room-2", "doc"]);
        let channel = |prefix: &str| {
            ChannelName::build(prefix, "7a3e4c1b-9f2d-4e8a-b5c6-1d2e3f4a5b6c", "r").unwrap()
        };
        assert!(s.has_presence(&channel("chat")) && s.has_presence(&channel("doc")));
        assert!(!s.has_presence(&channel("chat2")) && !s.has_presence(&channel("cha")));
        assert!(!Settings::default().has_presence(&channel("chat")));
        for bad in [
            "Chat",
            "chat:",
            "chat:*",
            "*",
            "2chat",
            "-chat",
            "chat_room",
            &"c".repeat(65),
        ] {
            let err = settings(&[("PRESENCE_PREFIXES", bad)]).unwrap_err();
            assert_eq!(err.variable, "PRESENCE_PREFIXES", "{bad}");
            assert!(err.reason.contains("not a channel prefix"), "{err}");
        }
        assert_eq!(
            error_for(&[("PRESENCE_PREFIXES", "chat, Room")]),
            "PRESENCE_PREFIXES"
        );
    }

    #[test]
    fn origin_check_is_exact() {
        let s = settings(&[("ALLOWED_ORIGINS", "https://app.example")]).unwrap();
        assert!(s.allows_origin("https://app.example"));
        for other in [
            "https://app.example.evil",
            "https://evil.app.example",
            "http://app.example",
            "https://app.example:443",
            "https://app.example/",
            "null",
            "",
        ] {
            assert!(!s.allows_origin(other), "{other}");
        }
        assert!(!Settings::default().allows_origin("https://app.example"));
    }

    #[test]
    fn verifier_config_carries_the_jwt_settings() {
        let s = settings(&[
            ("JWT_ISSUER", "iss"),
            ("JWT_AUDIENCE", "aud"),
            ("TENANT_CLAIM", "org"),
            ("TOKEN_TYPE_CLAIM", "typ"),
            ("JWT_LEEWAY_SECONDS", "5"),
        ])
        .unwrap();
        let cfg = s.verifier_config(b"k".to_vec());
        assert_eq!(cfg.secret, b"k");
        assert_eq!(
            (cfg.issuer.as_deref(), cfg.audience.as_deref()),
            (Some("iss"), Some("aud"))
        );
        assert_eq!((cfg.tenant_claim.as_str(), cfg.leeway_seconds), ("org", 5));
        assert_eq!(cfg.token_type_claim, "typ");
    }

    #[test]
    fn token_type_claim_must_be_a_claim_name_without_another_meaning() {
        for good in ["typ", "token_type", "https:type", "kind.v2", "a"] {
            assert_eq!(
                settings(&[("TOKEN_TYPE_CLAIM", good)])
                    .unwrap()
                    .token_type_claim,
                good
            );
        }
        for bad in [
            "exp",
            "sub",
            "scope",
            "tenant_id",
            "token type",
            "typ\u{0}",
            "\"typ\"",
            "tÿp",
            &"t".repeat(65),
        ] {
            assert_eq!(
                error_for(&[("TOKEN_TYPE_CLAIM", bad)]),
                "TOKEN_TYPE_CLAIM",
                "{bad:?}"
            );
        }
        // The tenant claim, whatever TENANT_CLAIM names it.
        assert_eq!(
            error_for(&[("TENANT_CLAIM", "org"), ("TOKEN_TYPE_CLAIM", "org")]),
            "TOKEN_TYPE_CLAIM"
        );
        assert!(settings(&[("TENANT_CLAIM", "org"), ("TOKEN_TYPE_CLAIM", "tenant_id")]).is_ok());
        let err = settings(&[("TOKEN_TYPE_CLAIM", "exp")]).unwrap_err();
        assert!(err.reason.contains("another purpose"), "{err}");
    }

    #[test]
    fn residency_settings_fail_closed_naming_the_variable() {
        let s = settings(&[(
            "TENANT_JURISDICTIONS",
            "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19=eu",
        )])
        .unwrap();
        assert_eq!(
            s.residency.of("0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19"),
            Some(crate::residency::Jurisdiction::Eu)
        );
        assert_eq!(
            settings(&[("DEFAULT_JURISDICTION", " ")])
                .unwrap()
                .residency,
            Residency::default()
        );
        assert_eq!(
            error_for(&[("DEFAULT_JURISDICTION", "europe")]),
            "DEFAULT_JURISDICTION"
        );
        assert_eq!(
            error_for(&[(
                "TENANT_JURISDICTIONS",
                "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19=mars"
            )]),
            "TENANT_JURISDICTIONS"
        );
    }

    #[test]
    fn jurisdiction_claim_must_be_a_claim_no_other_rule_reads() {
        assert_eq!(settings(&[]).unwrap().jurisdiction_claim, "jurisdiction");
        for good in ["region", "https:jurisdiction", "j"] {
            assert_eq!(
                settings(&[("JURISDICTION_CLAIM", good)])
                    .unwrap()
                    .jurisdiction_claim,
                good
            );
        }
        for bad in [
            "exp",
            "scope",
            "tenant_id",
            "token_type",
            "typ",
            "a b",
            "j\u{0}",
            &"j".repeat(65),
        ] {
            assert_eq!(
                error_for(&[("JURISDICTION_CLAIM", bad)]),
                "JURISDICTION_CLAIM",
                "{bad:?}"
            );
        }
        assert_eq!(
            error_for(&[("TENANT_CLAIM", "org"), ("JURISDICTION_CLAIM", "org")]),
            "JURISDICTION_CLAIM"
        );
        assert_eq!(
            error_for(&[("TOKEN_TYPE_CLAIM", "kind"), ("JURISDICTION_CLAIM", "kind")]),
            "JURISDICTION_CLAIM"
        );
    }
}
