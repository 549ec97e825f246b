use super::*;

#[test]
fn renders_every_family_with_labels() {
    let m = Metrics::new();
    m.received(Source::PubSub);
    m.received(Source::PubSub);
    m.forwarded(Source::Streams, 3, 1);
    m.rejected(Source::PubSub, "invalid_channel", 2);
    m.rejected(Source::PubSub, "we\"ird", 1);
    m.dropped("queue_full", 4);
    m.retried();
    m.throttled();
    m.claimed(7);
    m.queued(5);
    m.queued(-2);
    m.lag(std::time::Duration::from_millis(1500));
    assert_eq!(
        m.summary(),
        "received=2 forwarded=3 duplicates=1 rejected=3 dropped=4 retried=1"
    );
    let text = m.render();
    for line in [
        "edgestream_bridge_received_total{source=\"pubsub\"} 2",
        "edgestream_bridge_received_total{source=\"streams\"} 0",
        "edgestream_bridge_forwarded_total{source=\"streams\"} 3",
        "edgestream_bridge_duplicates_total{source=\"streams\"} 1",
        "edgestream_bridge_rejected_total{source=\"pubsub\",reason=\"invalid_channel\"} 2",
        "edgestream_bridge_rejected_total{source=\"pubsub\",reason=\"we\\\"ird\"} 1",
        "edgestream_bridge_dropped_total{reason=\"queue_full\"} 4",
        "edgestream_bridge_retried_total 1",
        "edgestream_bridge_throttled_total 1",
        "edgestream_bridge_claimed_total 7",
        "edgestream_bridge_queued_events 3",
        "edgestream_bridge_lag_seconds 1.5",
        "# TYPE edgestream_bridge_retried_total counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn serves_metrics_over_http() {
    let m = Metrics::new();
    m.received(Source::Streams);
    let addr = serve("127.0.0.1:0".parse().unwrap(), m).await.unwrap();
    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text
    };
    let ok = get("/metrics").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert!(ok.contains("edgestream_bridge_received_total{source=\"streams\"} 1"));
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200 OK"));
    assert!(tokio::task::spawn_blocking(move || probe(addr))
        .await
        .unwrap());
    assert!(get("/").await.starts_with("HTTP/1.1 404"));
}

#[test]
fn the_probe_fails_without_a_bridge() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    assert!(!probe(addr));
}
