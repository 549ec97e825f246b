use super::*;

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_full_batches_without_waiting() {
    let (tx, mut rx) = mpsc::channel(1000);
    for i in 0..250 {
        tx.send(i).await.unwrap();
    }
    let start = tokio::time::Instant::now();
    let a = next_batch(&mut rx, 100, Duration::from_millis(5))
        .await
        .unwrap();
    let b = next_batch(&mut rx, 100, Duration::from_millis(5))
        .await
        .unwrap();
    assert_eq!(a, (0..100).collect::<Vec<_>>());
    assert_eq!(b, (100..200).collect::<Vec<_>>());
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_quiet_queue_waits_at_most_the_linger() {
    let (tx, mut rx) = mpsc::channel(10);
    tx.send(1).await.unwrap();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        tx.send(2).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.send(3).await.unwrap();
    });
    let start = tokio::time::Instant::now();
    let batch = next_batch(&mut rx, 100, Duration::from_millis(5))
        .await
        .unwrap();
    assert_eq!(batch, [1, 2]);
    assert_eq!(start.elapsed(), Duration::from_millis(5));
    assert_eq!(next_batch(&mut rx, 100, Duration::ZERO).await.unwrap(), [3]);
    sender.await.unwrap();
    assert!(next_batch(&mut rx, 100, Duration::ZERO).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_closed_queue_ends_the_batch_at_once() {
    let (tx, mut rx) = mpsc::channel(10);
    tx.send(1).await.unwrap();
    drop(tx);
    let start = tokio::time::Instant::now();
    assert_eq!(
        next_batch(&mut rx, 100, Duration::from_secs(1))
            .await
            .unwrap(),
        [1]
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(next_batch(&mut rx, 100, Duration::from_secs(1))
        .await
        .is_none());
}

#[test]
fn a_channel_always_takes_the_same_lane_and_lanes_are_used() {
    let channels: Vec<String> = (0..400)
        .map(|i| format!("scan-progress:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:{i}"))
        .collect();
    let mut used = [0usize; 4];
    for c in &channels {
        let lane = lane_of(c, 4);
        assert_eq!(lane, lane_of(c, 4));
        used[lane] += 1;
    }
    assert!(used.iter().all(|&n| n > 50), "{used:?}");
    assert_eq!(lane_of("x", 1), 0);
}

#[test]
fn batches_are_cut_where_the_tenant_changes_and_keep_their_order() {
    let items = vec![("a", 1), ("a", 2), ("b", 3), ("a", 4), ("a", 5), ("b", 6)];
    let cut = runs(items, |(tenant, _)| *tenant);
    assert_eq!(
        cut,
        [
            vec![("a", 1), ("a", 2)],
            vec![("b", 3)],
            vec![("a", 4), ("a", 5)],
            vec![("b", 6)]
        ]
    );
    assert!(runs(Vec::<u8>::new(), |x| *x).is_empty());
    assert_eq!(runs(vec![1, 1, 1], |_| ()).len(), 1);
}

mod lanes {
    //! A lane against a small HTTP edge on loopback that fails what the
    //! test says, to see which verdicts come out.
    use super::super::*;
    use crate::credential::Credential;
    use edgestream_core::origin::data_from_text;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const CHANNEL: &str = "scan:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:1";

    /// Serves `/v1/publish`: 500 for a body that contains "poison", else 202
    /// with one result per event. `/healthz` answers 200.
    async fn edge() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    loop {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 4096];
                        let head_end = loop {
                            let n = socket.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            request.extend_from_slice(&buf[..n]);
                            if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                        };
                        let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while request.len() < head_end + length {
                            let n = socket.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            request.extend_from_slice(&buf[..n]);
                        }
                        let body = String::from_utf8_lossy(&request[head_end..]).into_owned();
                        let (status, answer) = if head.starts_with("get /healthz") {
                            ("200 OK", String::new())
                        } else if body.contains("poison") {
                            (
                                "500 Internal Server Error",
                                "{\"code\":\"internal\"}".to_owned(),
                            )
                        } else {
                            let n = body.matches("\"channel\"").count();
                            let results: Vec<String> = (1..=n)
                                .map(|id| format!("{{\"channel\":\"{CHANNEL}\",\"id\":{id},\"duplicate\":false}}"))
                                .collect();
                            (
                                "202 Accepted",
                                format!("{{\"results\":[{}]}}", results.join(",")),
                            )
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn envelope(id: &str, data: &str) -> Envelope {
        Envelope {
            event: OriginEvent {
                channel: CHANNEL.into(),
                event: "seq".into(),
                data: data_from_text(data),
                idempotency_key: Some(format!("k-{id}")),
            },
            ticket: Ticket::Stream(StreamTicket {
                id: id.into(),
                fields: Arc::new(Vec::new()),
            }),
            born_ms: 0,
            tenant: None,
        }
    }

    fn settings(retry_budget: u32) -> LaneSettings {
        LaneSettings {
            batch_max: 100,
            linger: Duration::from_millis(20),
            retry_initial: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
            retry_budget,
        }
    }

    fn forwarder(url: &str) -> Arc<Forwarder> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let credential = Credential::ApiKey("es_test".into());
        Arc::new(Forwarder::new(url, credential, Duration::from_secs(2)).unwrap())
    }

    #[tokio::test]
    async fn a_poisoned_event_is_given_up_and_the_others_go_through_in_order() {
        let url = edge().await;
        let (verdict_tx, mut verdicts) = mpsc::unbounded_channel();
        let (_deadline_tx, deadline) = watch::channel(None);
        let metrics = Metrics::new();
        let (dispatcher, lanes) = start(
            1,
            100,
            settings(3),
            forwarder(&url),
            metrics.clone(),
            Some(verdict_tx),
            deadline,
        );
        for (id, data) in [("1-0", "1"), ("2-0", "\"poison\""), ("3-0", "3")] {
            dispatcher.send(envelope(id, data)).await.unwrap();
        }
        drop(dispatcher);
        for lane in lanes {
            lane.await.unwrap();
        }
        let mut delivered = Vec::new();
        let mut rejected = Vec::new();
        while let Ok(verdict) = verdicts.try_recv() {
            match verdict {
                Verdict::Delivered(ids) => delivered.extend(ids),
                Verdict::Rejected(dead) => rejected.extend(dead),
                Verdict::Abandoned(ids) => panic!("abandoned {ids:?}"),
            }
        }
        assert_eq!(delivered, ["1-0", "3-0"]);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0.id, "2-0");
        assert!(
            rejected[0]
                .1
                .starts_with("retries_exhausted: 3 attempts, the last: edge answered 500"),
            "{}",
            rejected[0].1
        );
        assert!(metrics.render().contains("reason=\"retries_exhausted\"} 1"));
    }

    #[tokio::test]
    async fn an_unreachable_edge_spends_no_budget_and_shutdown_leaves_events_pending() {
        // A port nothing listens on: every attempt is refused.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let (verdict_tx, mut verdicts) = mpsc::unbounded_channel();
        let (deadline_tx, deadline) = watch::channel(None);
        let metrics = Metrics::new();
        let (dispatcher, lanes) = start(
            1,
            100,
            settings(1),
            forwarder(&url),
            metrics.clone(),
            Some(verdict_tx),
            deadline,
        );
        dispatcher.send(envelope("1-0", "1")).await.unwrap();
        drop(dispatcher);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = deadline_tx.send(Some(Instant::now()));
        for lane in lanes {
            lane.await.unwrap();
        }
        match verdicts.try_recv() {
            Ok(Verdict::Abandoned(ids)) => assert_eq!(ids, ["1-0"]),
            other => panic!("{other:?}"),
        }
        assert!(
            metrics.summary().contains("rejected=0"),
            "{}",
            metrics.summary()
        );
        assert!(
            !metrics.summary().contains("retried=0"),
            "{}",
            metrics.summary()
        );
    }
}
