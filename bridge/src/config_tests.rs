use super::*;
use clap::CommandFactory;

const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";

fn parse(args: &[&str]) -> Result<Config, clap::Error> {
    Config::try_parse_from(std::iter::once("edgestream-bridge").chain(args.iter().copied()))
}

/// The environment may hold a credential (a developer's shell); the tests
/// that count credentials need it empty.
fn no_credential_in_env() -> bool {
    [
        "PUBLISH_API_KEY",
        "PUBLISH_API_KEY_FILE",
        "PUBLISH_TOKEN",
        "PUBLISH_TOKEN_FILE",
        "JWT_SECRET",
    ]
    .iter()
    .all(|v| std::env::var_os(v).is_none())
}

#[test]
fn clap_definition_is_consistent() {
    Config::command().debug_assert();
}

#[test]
fn defaults_are_the_local_stack() {
    let config = parse(&["--jwt-secret", "s"]).unwrap();
    assert_eq!(config.valkey_url, "redis://127.0.0.1:6379");
    assert_eq!(config.edge_url, "http://127.0.0.1:8787");
    assert_eq!(config.pubsub_channels, ["events_channel"]);
    assert_eq!(config.batch_max, 100);
    assert_eq!(config.tenant_claim, "tenant_id");
    assert_eq!(config.retry_budget, 10);
    assert!(config.stream.is_none() && !config.no_pubsub);
    assert!(config.validate().is_ok());
    assert!(config.credential().unwrap().is_minted());
}

#[test]
fn one_credential_is_required() {
    if no_credential_in_env() {
        assert!(parse(&[]).is_err());
    }
    for pair in [
        ["--publish-token", "a.b.c", "--jwt-secret", "s"],
        ["--publish-api-key", "es_k", "--publish-token", "a.b.c"],
        ["--publish-api-key", "es_k", "--publish-api-key-file", "/k"],
    ] {
        assert!(parse(&pair).is_err(), "{pair:?}");
    }
    let key = parse(&["--publish-api-key", "es_k"]).unwrap();
    assert_eq!(
        key.credential().unwrap().authorization(None),
        "Api-Key es_k"
    );
    let token = parse(&["--publish-token", "a.b.c"]).unwrap();
    assert_eq!(
        token.credential().unwrap().authorization(None),
        "Bearer a.b.c"
    );
}

#[test]
fn credentials_are_checked_and_read_from_files() {
    for bad in [
        ["--publish-api-key", "has space"],
        ["--publish-token", "not-a-jwt"],
        ["--publish-api-key", "  "],
    ] {
        let err = parse(&bad).unwrap().credential().err().unwrap();
        assert!(
            !err.contains(bad[1].trim()) || bad[1].trim().is_empty(),
            "the value is not echoed: {err}"
        );
    }
    let dir = std::env::temp_dir().join(format!("edgestream-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("publish-api-key");
    std::fs::write(&file, "es_from_a_file\n").unwrap();
    let config = parse(&["--publish-api-key-file", file.to_str().unwrap()]).unwrap();
    assert_eq!(
        config.credential().unwrap().authorization(None),
        "Api-Key es_from_a_file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = parse(&["--publish-token-file", "/nonexistent/token"]).unwrap();
    let err = missing.credential().err().unwrap();
    assert!(
        err.contains("PUBLISH_TOKEN_FILE: cannot read /nonexistent/token"),
        "{err}"
    );
}

#[test]
fn plain_http_only_to_this_machine() {
    for ok in [
        "http://127.0.0.1:8787",
        "http://127.1.2.3:8787/",
        "http://localhost:8787",
        "http://[::1]:8787",
        "https://relay.example.com",
        "https://relay.example.com/prefix/",
    ] {
        assert!(check_edge_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://relay.example.com",
        "http://10.0.0.5:8787",
        "http://localhost.example.com",
        "http://[::ffff:10.0.0.1]",
        "ftp://relay.example.com",
        "127.0.0.1:8787",
        "https://user:pw@relay.example.com",
        "https://relay.example.com/?token=x",
    ] {
        assert!(check_edge_url(bad).is_err(), "{bad}");
    }
    let err = check_edge_url("http://relay.example.com").unwrap_err();
    assert!(err.contains("in clear"), "{err}");
}

#[test]
fn checks_beyond_clap() {
    let config = parse(&["--jwt-secret", "s", "--no-pubsub"]).unwrap();
    assert!(config.validate().is_err());
    let config = parse(&["--jwt-secret", "s", "--no-pubsub", "--stream", "events"]).unwrap();
    assert!(config.validate().is_ok());
    assert_eq!(
        config.dead_letter_key().as_deref(),
        Some("events:dead-letter")
    );
    assert_eq!(config.sources(), [SourceName::Stream("events".into())]);
    let config = parse(&["--jwt-secret", "s", "--edge-url", "http://edge.example"]).unwrap();
    assert!(config.validate().is_err());
    assert!(parse(&["--jwt-secret", "s", "--batch-max", "101"]).is_err());
    assert!(parse(&["--jwt-secret", "s", "--retry-budget", "0"]).is_err());
    assert!(parse(&["--jwt-secret", "s", "--valkey-client-cert", "/c.pem"]).is_err());
}

#[test]
fn several_pubsub_channels() {
    let config = parse(&[
        "--jwt-secret",
        "s",
        "--pubsub-channel",
        "a",
        "--pubsub-channel",
        "b,c",
    ])
    .unwrap();
    assert_eq!(config.pubsub_channels, ["a", "b", "c"]);
}

#[test]
fn a_tenant_map_covers_every_source() {
    let route = format!("pubsub:events_channel={TENANT}");
    let config = parse(&["--publish-api-key", "k", "--tenant", &route]).unwrap();
    assert!(config.validate().is_ok());
    assert_eq!(config.tenant_map().unwrap().tenants(), [TENANT]);
    let config = parse(&[
        "--publish-api-key",
        "k",
        "--tenant",
        &route,
        "--stream",
        "events",
    ])
    .unwrap();
    let err = config.validate().unwrap_err();
    assert!(err.contains("stream:events has no tenant"), "{err}");
    let both = format!("{route},stream:events={TENANT}");
    let config = parse(&[
        "--publish-api-key",
        "k",
        "--tenant",
        &both,
        "--stream",
        "events",
    ])
    .unwrap();
    assert!(config.validate().is_ok());
    assert!(parse(&["--publish-api-key", "k", "--tenant", "events_channel"]).is_err());
}

#[test]
fn probe_needs_no_credential_and_finds_the_bridge_over_loopback() {
    let config = parse(&["--metrics-addr", "0.0.0.0:9464", "probe"]).unwrap();
    assert!(matches!(config.command, Some(Command::Probe)));
    assert_eq!(config.probe_addr(), Some("127.0.0.1:9464".parse().unwrap()));
    let config = parse(&["--metrics-addr", "[::]:9464", "probe"]).unwrap();
    assert_eq!(config.probe_addr(), Some("[::1]:9464".parse().unwrap()));
    let config = parse(&["--metrics-addr", "10.0.0.5:9464", "probe"]).unwrap();
    assert_eq!(config.probe_addr(), Some("10.0.0.5:9464".parse().unwrap()));
}
