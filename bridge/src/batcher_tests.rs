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
