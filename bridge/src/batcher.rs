//! Lanes: batching, retries and per-channel order.
//!
//! Sources hand validated events to a [`Dispatcher`], which puts each on one
//! of N lanes chosen by a hash of its channel name. A lane is a queue and a
//! task that sends one publish request at a time: it takes what is queued (up
//! to 100 events), waits a few milliseconds for more only when the queue ran
//! dry, sends, retries the same batch until the edge answers, and only then
//! takes the next batch. Because a channel always maps to the same lane and a
//! lane never has two requests in flight, a channel's events reach the edge in
//! the order they were read, even across retries; lanes exist so that a slow
//! or retrying channel holds up only a fraction of the others and so that N
//! requests can be in flight.
//!
//! After the edge's verdict the lane tells the source what became of each
//! event ([`Verdict`]): the Streams source acknowledges delivered entries and
//! dead-letters rejected ones; Pub/Sub has nothing to acknowledge.

use crate::backoff::Backoff;
use crate::forward::{is_per_event, Forwarder, SendError};
use crate::metrics::{Metrics, RequestOutcome, Source};
use edgestream_core::origin::OriginEvent;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout_at;

/// An event on its way, with what its source needs to settle it.
#[derive(Debug)]
pub struct Envelope {
    pub event: OriginEvent,
    pub ticket: Ticket,
    /// When the event entered Valkey (Streams) or the bridge (Pub/Sub), in
    /// Unix milliseconds, for the lag gauge.
    pub born_ms: u64,
}

#[derive(Debug, Clone)]
pub enum Ticket {
    PubSub,
    Stream(StreamTicket),
}

/// A Streams entry: its id, to acknowledge it, and its fields, to copy them
/// to the dead-letter stream if it must be rejected.
#[derive(Debug, Clone)]
pub struct StreamTicket {
    pub id: String,
    pub fields: Arc<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Envelope {
    pub fn source(&self) -> Source {
        match self.ticket {
            Ticket::PubSub => Source::PubSub,
            Ticket::Stream(_) => Source::Streams,
        }
    }
}

/// What became of Streams entries, for the source to settle in Valkey.
#[derive(Debug)]
pub enum Verdict {
    /// The edge has them (new or duplicate): acknowledge.
    Delivered(Vec<String>),
    /// They can never be delivered: dead-letter with the reason, then
    /// acknowledge.
    Rejected(Vec<(StreamTicket, String)>),
    /// Shutdown came first: leave them pending for the next run.
    Abandoned(Vec<String>),
}

/// The shutdown deadline: `None` while running; once set, retries and
/// in-flight requests stop at that instant.
pub type Deadline = watch::Receiver<Option<Instant>>;

#[derive(Clone)]
pub struct LaneSettings {
    pub batch_max: usize,
    pub linger: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// Routes events to lanes by channel.
#[derive(Clone)]
pub struct Dispatcher {
    lanes: Vec<mpsc::Sender<Envelope>>,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    fn lane(&self, channel: &str) -> &mpsc::Sender<Envelope> {
        &self.lanes[lane_of(channel, self.lanes.len())]
    }

    // The error gives the envelope back, so it is as large as an envelope.
    #[allow(clippy::result_large_err)]
    /// Waits for room: the Streams source, which can leave entries in Valkey,
    /// simply reads more slowly while the edge is slow.
    pub async fn send(&self, envelope: Envelope) -> Result<(), Envelope> {
        self.metrics.queued(1);
        self.lane(&envelope.event.channel)
            .send(envelope)
            .await
            .map_err(|e| {
                self.metrics.queued(-1);
                e.0
            })
    }

    #[allow(clippy::result_large_err)]
    /// Never waits: Pub/Sub cannot be held back (Valkey would drop the
    /// subscriber once its output buffer fills), so what does not fit is
    /// dropped and counted.
    pub fn try_send(&self, envelope: Envelope) -> Result<(), Envelope> {
        self.metrics.queued(1);
        self.lane(&envelope.event.channel)
            .try_send(envelope)
            .map_err(|e| {
                self.metrics.queued(-1);
                match e {
                    mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e) => e,
                }
            })
    }
}

/// The lane of a channel. `DefaultHasher::new()` has fixed keys, so the
/// mapping is the same for every run of the same build.
pub fn lane_of(channel: &str, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    channel.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// Starts `count` lanes; they end once every [`Dispatcher`] clone is dropped
/// and their queues are empty (or the shutdown deadline passed).
pub fn start(
    count: usize,
    capacity: usize,
    settings: LaneSettings,
    forwarder: Arc<Forwarder>,
    metrics: Arc<Metrics>,
    verdicts: Option<mpsc::UnboundedSender<Verdict>>,
    deadline: Deadline,
) -> (Dispatcher, Vec<tokio::task::JoinHandle<()>>) {
    let mut senders = Vec::with_capacity(count);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        senders.push(tx);
        let lane = Lane {
            index,
            rx,
            settings: settings.clone(),
            forwarder: forwarder.clone(),
            metrics: metrics.clone(),
            verdicts: verdicts.clone(),
            deadline: deadline.clone(),
        };
        handles.push(tokio::spawn(lane.run()));
    }
    (
        Dispatcher {
            lanes: senders,
            metrics,
        },
        handles,
    )
}

struct Lane {
    index: usize,
    rx: mpsc::Receiver<Envelope>,
    settings: LaneSettings,
    forwarder: Arc<Forwarder>,
    metrics: Arc<Metrics>,
    verdicts: Option<mpsc::UnboundedSender<Verdict>>,
    deadline: Deadline,
}

enum Outcome {
    Sent(Vec<bool>),
    Rejected {
        status: u16,
        code: String,
        detail: String,
    },
    GaveUp,
}

impl Lane {
    async fn run(mut self) {
        while let Some(batch) =
            next_batch(&mut self.rx, self.settings.batch_max, self.settings.linger).await
        {
            let n = batch.len() as i64;
            self.deliver(batch).await;
            self.metrics.queued(-n);
        }
        tracing::debug!(lane = self.index, "lane drained");
    }

    async fn deliver(&mut self, batch: Vec<Envelope>) {
        match self.send(&batch).await {
            Outcome::Sent(duplicates) => self.settle_sent(&batch, &duplicates),
            Outcome::Rejected {
                status,
                code,
                detail,
            } if batch.len() > 1 && is_per_event(status) => {
                tracing::warn!(
                    lane = self.index, status, %code, %detail,
                    "edge refused a batch of {}; sending its events one at a time to find the bad ones",
                    batch.len()
                );
                for envelope in batch {
                    let single = vec![envelope];
                    match self.send(&single).await {
                        Outcome::Sent(duplicates) => self.settle_sent(&single, &duplicates),
                        Outcome::Rejected {
                            status,
                            code,
                            detail,
                        } => self.settle_rejected(single, status, &code, &detail),
                        Outcome::GaveUp => self.settle_abandoned(single),
                    }
                }
            }
            Outcome::Rejected {
                status,
                code,
                detail,
            } => self.settle_rejected(batch, status, &code, &detail),
            Outcome::GaveUp => self.settle_abandoned(batch),
        }
    }

    /// Sends until the edge gives a verdict, or the shutdown deadline passes.
    async fn send(&mut self, batch: &[Envelope]) -> Outcome {
        let events: Vec<&OriginEvent> = batch.iter().map(|e| &e.event).collect();
        let mut backoff = Backoff::new(self.settings.retry_initial, self.settings.retry_max);
        loop {
            let deadline = *self.deadline.borrow();
            // A request in flight when the deadline passes is given up: for
            // Streams the entries stay pending and the next run sends them
            // again, which the idempotency keys make harmless.
            let result = tokio::select! {
                result = self.forwarder.send(&events) => result,
                _ = deadline_passed(self.deadline.clone()) => return Outcome::GaveUp,
            };
            match result {
                Ok(response) => {
                    self.metrics.request(RequestOutcome::Accepted);
                    if backoff.attempts() > 0 {
                        tracing::info!(
                            lane = self.index,
                            attempts = backoff.attempts() + 1,
                            "edge accepted the batch after retrying"
                        );
                    }
                    return Outcome::Sent(response.results.iter().map(|r| r.duplicate).collect());
                }
                Err(SendError::Rejected {
                    status,
                    code,
                    detail,
                }) => {
                    self.metrics.request(RequestOutcome::Rejected);
                    return Outcome::Rejected {
                        status,
                        code,
                        detail,
                    };
                }
                Err(SendError::Retryable {
                    reason,
                    retry_after,
                }) => {
                    self.metrics.request(RequestOutcome::Failed);
                    let delay = backoff.next_delay().max(retry_after.unwrap_or_default());
                    let attempts = backoff.attempts();
                    // Loud on the first failure, then once in a while.
                    if attempts == 1 || attempts.is_multiple_of(10) {
                        tracing::warn!(
                            lane = self.index,
                            attempts,
                            events = events.len(),
                            "publish failed, retrying in {delay:?}: {reason}"
                        );
                    }
                    let wake = Instant::now() + delay;
                    if deadline.is_some_and(|at| wake > at) {
                        return Outcome::GaveUp;
                    }
                    // Sleep, but wake early if shutdown sets a deadline that
                    // comes before the retry.
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(wake.into()) => break,
                            changed = self.deadline.changed() => {
                                let gave_up = match *self.deadline.borrow() {
                                    Some(at) => wake > at,
                                    None => false,
                                };
                                if gave_up {
                                    return Outcome::GaveUp;
                                }
                                if changed.is_err() {
                                    // No more changes can come; just sleep.
                                    tokio::time::sleep_until(wake.into()).await;
                                    break;
                                }
                            }
                        }
                    }
                    self.metrics.retried();
                }
            }
        }
    }

    fn settle_sent(&self, batch: &[Envelope], duplicates: &[bool]) {
        let now = unix_ms();
        let oldest = batch.iter().map(|e| e.born_ms).min().unwrap_or(now);
        self.metrics
            .lag(Duration::from_millis(now.saturating_sub(oldest)));
        let mut acks = Vec::new();
        for (envelope, &duplicate) in batch.iter().zip(duplicates) {
            let (new, dup) = if duplicate { (0, 1) } else { (1, 0) };
            self.metrics.forwarded(envelope.source(), new, dup);
            if let Ticket::Stream(ticket) = &envelope.ticket {
                acks.push(ticket.id.clone());
            }
        }
        if !acks.is_empty() {
            self.verdict(Verdict::Delivered(acks));
        }
    }

    fn settle_rejected(&self, batch: Vec<Envelope>, status: u16, code: &str, detail: &str) {
        let channels: Vec<&str> = batch
            .iter()
            .map(|e| e.event.channel.as_str())
            .take(3)
            .collect();
        tracing::warn!(
            lane = self.index, status, %code, %detail, ?channels,
            "edge refused {} event(s); not retrying", batch.len()
        );
        let reason = format!("edge {status} {code}: {detail}");
        let mut dead = Vec::new();
        for envelope in batch {
            self.metrics.rejected(envelope.source(), code, 1);
            if let Ticket::Stream(ticket) = envelope.ticket {
                dead.push((ticket, reason.clone()));
            }
        }
        if !dead.is_empty() {
            self.verdict(Verdict::Rejected(dead));
        }
    }

    fn settle_abandoned(&self, batch: Vec<Envelope>) {
        let mut pending = Vec::new();
        let mut dropped = 0;
        for envelope in batch {
            match envelope.ticket {
                Ticket::Stream(ticket) => pending.push(ticket.id),
                Ticket::PubSub => dropped += 1,
            }
        }
        if dropped > 0 {
            tracing::warn!(
                lane = self.index,
                dropped,
                "shutdown timeout: Pub/Sub events not delivered"
            );
            self.metrics.dropped("shutdown", dropped);
        }
        if !pending.is_empty() {
            self.verdict(Verdict::Abandoned(pending));
        }
    }

    fn verdict(&self, verdict: Verdict) {
        if let Some(tx) = &self.verdicts {
            let _ = tx.send(verdict);
        }
    }
}

/// Resolves once a shutdown deadline is set and has passed; never before.
async fn deadline_passed(mut deadline: Deadline) {
    loop {
        let at = *deadline.borrow_and_update();
        if let Some(at) = at {
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        if deadline.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The next batch: whatever is queued, up to `max`; when the queue runs dry
/// before that, more is awaited until `linger` after the batch's first event.
/// `None` once the queue is closed and empty.
pub async fn next_batch<T>(
    rx: &mut mpsc::Receiver<T>,
    max: usize,
    linger: Duration,
) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let until = tokio::time::Instant::now() + linger;
    let mut batch = Vec::with_capacity(max.min(128));
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                if linger.is_zero() {
                    break;
                }
                match timeout_at(until, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    Some(batch)
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
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
}
