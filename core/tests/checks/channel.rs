//! Channel names, the `channel=`/`channels=` lists of a stream request, and
//! the tenant gate.

use super::problem::assert_client_error;
use edgestream_core::channel::{authorize_tenant, requested_channels, ChannelName};

/// The grammar of `DESIGN.md`, read from the contract rather than from
/// `channel.rs`: `<prefix>:<tenant>:<resource>`, at most 255 bytes; prefix
/// 1-64 of `a-z 0-9 -` starting with a letter; tenant a lowercase hyphenated
/// UUID; resource 1-128 of `A-Z a-z 0-9 - _ .`.
pub fn is_channel(s: &str) -> bool {
    let segments: Vec<&str> = s.split(':').collect();
    let [prefix, tenant, resource] = segments[..] else {
        return false;
    };
    s.len() <= 255
        && (1..=64).contains(&prefix.chars().count())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && is_uuid(tenant)
        && (1..=128).contains(&resource.chars().count())
        && resource
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Five groups of 8, 4, 4, 4 and 12 lowercase hex digits joined by `-`.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, len)| {
            group.len() == len && group.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        })
}

/// Any text: the parser accepts exactly the grammar, and a parsed name
/// re-renders to the same text, has the segments the text has, builds back
/// to itself and survives serde. Deserialising enforces the same rules.
pub fn check_name(s: &str) {
    let parsed = ChannelName::parse(s);
    assert_eq!(parsed.is_ok(), is_channel(s), "parse({s:?}) = {parsed:?}");
    let json = serde_json::Value::String(s.to_owned());
    let Ok(name) = parsed else {
        assert!(
            serde_json::from_value::<ChannelName>(json).is_err(),
            "{s:?}"
        );
        return;
    };
    assert_eq!(name.as_str(), s);
    assert_eq!(name.to_string(), s);
    let segments: Vec<&str> = s.split(':').collect();
    assert_eq!(
        [name.prefix(), name.tenant(), name.resource()],
        segments[..]
    );
    assert_eq!(
        ChannelName::build(name.prefix(), name.tenant(), name.resource()).as_ref(),
        Ok(&name)
    );
    assert_eq!(
        serde_json::from_value::<ChannelName>(json).ok().as_ref(),
        Some(&name)
    );
    assert_eq!(serde_json::to_value(&name).unwrap(), s);
}

/// Building from parts never splits or escapes: a part with `:` is refused,
/// and a built name has exactly the parts it was built from.
pub fn check_build(prefix: &str, tenant: &str, resource: &str) {
    let built = ChannelName::build(prefix, tenant, resource);
    if [prefix, tenant, resource].iter().any(|p| p.contains(':')) {
        assert!(built.is_err(), "{prefix:?} {tenant:?} {resource:?}");
        return;
    }
    let text = format!("{prefix}:{tenant}:{resource}");
    assert_eq!(built.is_ok(), is_channel(&text), "{text:?}");
    if let Ok(name) = built {
        assert_eq!(
            [name.prefix(), name.tenant(), name.resource()],
            [prefix, tenant, resource]
        );
    }
}

/// What a stream request's query asks for, decided from the contract: every
/// `channel` value and every comma-separated item of `channels` must be a
/// name, duplicates count once, at most `max` distinct names, at least one.
/// Returns the distinct names in first-seen order, or the problem code.
pub fn expected_channels(query: &[(&str, &str)], max: usize) -> Result<Vec<String>, &'static str> {
    let mut seen: Vec<String> = Vec::new();
    for &(key, value) in query {
        let items: Vec<&str> = match key {
            "channel" => vec![value],
            "channels" => value.split(',').collect(),
            _ => continue,
        };
        for item in items {
            if !is_channel(item) {
                return Err("invalid_channel");
            }
            if seen.iter().any(|s| s == item) {
                continue;
            }
            if seen.len() == max {
                return Err("too_many_channels");
            }
            seen.push(item.to_owned());
        }
    }
    if seen.is_empty() {
        return Err("no_channels");
    }
    Ok(seen)
}

/// `requested_channels` agrees with [`expected_channels`]; its refusals are
/// 4xx problems whose detail is printable, single-line and bounded however
/// hostile the echoed value is. The gate then admits the list only for a
/// token of the tenant every name carries in its text.
pub fn check_request(query: &[(&str, &str)], max: usize, token_tenant: Option<&str>) {
    let got = requested_channels(query.iter().copied(), max);
    match (&got, expected_channels(query, max)) {
        (Ok(names), Ok(expected)) => {
            let names: Vec<&str> = names.iter().map(ChannelName::as_str).collect();
            assert_eq!(names, expected, "{query:?}");
        }
        (Err(problem), Err(code)) => {
            assert_eq!(problem.code, code, "{query:?}: {problem:?}");
            assert_client_error(problem);
            assert!(
                problem
                    .detail
                    .chars()
                    .all(|c| c == ' ' || c.is_ascii_graphic())
                    && problem.detail.len() <= 256,
                "{:?}",
                problem.detail
            );
        }
        (got, expected) => panic!("{query:?}: got {got:?}, expected {expected:?}"),
    }
    if let Ok(names) = got {
        check_gate(token_tenant, &names);
    }
}

/// The tenant gate never admits a channel whose tenant, read from the
/// name's own text, differs from the token's, and never admits anything for
/// a token without a tenant or for no channels.
pub fn check_gate(token_tenant: Option<&str>, channels: &[ChannelName]) {
    let result = authorize_tenant(token_tenant, channels);
    let admitted = token_tenant.is_some()
        && !channels.is_empty()
        && channels
            .iter()
            .all(|c| c.as_str().split(':').nth(1) == token_tenant);
    assert_eq!(result.is_ok(), admitted, "{token_tenant:?} {channels:?}");
    if let Err(problem) = result {
        let code = match token_tenant {
            None => "tenant_missing",
            Some(_) if channels.is_empty() => "no_channels",
            Some(_) => "channel_forbidden",
        };
        assert_eq!(problem.code, code);
        assert_client_error(&problem);
    }
}
