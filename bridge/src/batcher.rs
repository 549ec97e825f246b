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
//! A batch is one request per tenant: a tenant-scoped bridge publishes each
//! tenant's events with that tenant's credential, so a batch is cut where the
//! tenant changes (in order, so per-channel order holds).
//!
//! Retries never end while the edge is away or asks for time (unreachable,
//! 429, 503): the events wait, and Streams stop reading. But an edge that is
//! up and keeps failing one request must not hold up the lane behind it:
//! after [`SPLIT_AFTER`] such failures a batch is sent again one event at a
//! time, and an event alone that fails `--retry-budget` times is given up
//! (counted as `retries_exhausted`; a Streams entry goes to the dead-letter
//! stream, from where it can be replayed). The same one-at-a-time fallback
//! finds the bad events of a batch the edge refused with a 400 or 413.
//!
//! After the edge's verdict the lane tells the source what became of each
//! event ([`Verdict`]): the Streams source acknowledges delivered entries and
//! dead-letters rejected ones; Pub/Sub has nothing to acknowledge.

use crate::backoff::Backoff;
use crate::forward::{is_per_event, Failure, Forwarder, SendError};
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
    /// The tenant it is published as; `None` on a platform bridge.
    pub tenant: Option<Arc<str>>,
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
    pub retry_budget: u32,
}

/// Counted failures of a batch of several events before it is split.
pub const SPLIT_AFTER: u32 = 2;

/// The reason label of events given up after their retry budget.
pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";

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
    /// The retry budget is spent: the edge is up and keeps failing this
    /// request.
    Exhausted {
        attempts: u32,
        reason: String,
    },
    /// The shutdown deadline came first.
    GaveUp,
}

impl Lane {
    async fn run(mut self) {
        while let Some(batch) =
            next_batch(&mut self.rx, self.settings.batch_max, self.settings.linger).await
        {
            let n = batch.len() as i64;
            for run in runs(batch, |e| e.tenant.clone()) {
                self.deliver(run).await;
            }
            self.metrics.queued(-n);
        }
        tracing::debug!(lane = self.index, "lane drained");
    }

    /// Delivers events of one tenant, as one request while that works.
    async fn deliver(&mut self, batch: Vec<Envelope>) {
        if batch.len() == 1 {
            return self.deliver_alone(batch).await;
        }
        let budget = SPLIT_AFTER.min(self.settings.retry_budget);
        match self.send(&batch, budget).await {
            Outcome::Sent(duplicates) => self.settle_sent(&batch, &duplicates),
            Outcome::Rejected {
                status,
                code,
                detail,
            } if is_per_event(status) => {
                tracing::warn!(
                    lane = self.index, status, %code, %detail, events = batch.len(),
                    "edge refused a batch; sending its events one at a time to find the bad ones"
                );
                self.one_at_a_time(batch).await;
            }
            Outcome::Rejected {
                status,
                code,
                detail,
            } => self.settle_rejected(batch, status, &code, &detail),
            Outcome::Exhausted { reason, .. } => {
                tracing::warn!(
                    lane = self.index, events = batch.len(), %reason,
                    "the edge keeps failing a batch; sending its events one at a time so that one bad event holds up only itself"
                );
                self.one_at_a_time(batch).await;
            }
            Outcome::GaveUp => self.settle_abandoned(batch),
        }
    }

    async fn one_at_a_time(&mut self, batch: Vec<Envelope>) {
        for envelope in batch {
            self.deliver_alone(vec![envelope]).await;
        }
    }

    async fn deliver_alone(&mut self, single: Vec<Envelope>) {
        match self.send(&single, self.settings.retry_budget).await {
            Outcome::Sent(duplicates) => self.settle_sent(&single, &duplicates),
            Outcome::Rejected {
                status,
                code,
                detail,
            } => self.settle_rejected(single, status, &code, &detail),
            Outcome::Exhausted { attempts, reason } => {
                self.settle_exhausted(single, attempts, &reason)
            }
            Outcome::GaveUp => self.settle_abandoned(single),
        }
    }

    /// Sends until the edge gives a verdict, the request has failed `budget`
    /// times in a way that counts ([`Failure::counts`]), or the shutdown
    /// deadline passes.
    async fn send(&mut self, batch: &[Envelope], budget: u32) -> Outcome {
        let events: Vec<&OriginEvent> = batch.iter().map(|e| &e.event).collect();
        let tenant = batch[0].tenant.clone();
        let mut backoff = Backoff::new(self.settings.retry_initial, self.settings.retry_max);
        let mut spent = 0;
        loop {
            // A request in flight when the deadline passes is given up: for
            // Streams the entries stay pending and the next run sends them
            // again, which the idempotency keys make harmless.
            let result = tokio::select! {
                result = self.forwarder.send(&events, tenant.as_deref()) => result,
                _ = deadline_passed(self.deadline.clone()) => return Outcome::GaveUp,
            };
            let (failure, reason) = match result {
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
                Err(SendError::Retryable { failure, reason }) => (failure, reason),
            };
            self.metrics.request(RequestOutcome::Failed);
            if matches!(failure, Failure::Throttled { .. }) {
                self.metrics.throttled();
            }
            let forwarder = &self.forwarder;
            if failure.counts(|| forwarder.edge_up()).await {
                spent += 1;
                if spent >= budget {
                    return Outcome::Exhausted {
                        attempts: backoff.attempts() + 1,
                        reason,
                    };
                }
            }
            let delay = match failure {
                Failure::Throttled {
                    retry_after: Some(retry_after),
                } => backoff.after_refusal(retry_after),
                _ => backoff.next_delay(),
            };
            let attempts = backoff.attempts();
            // Loud on the first failure, then once in a while.
            if attempts == 1 || attempts.is_multiple_of(10) {
                tracing::warn!(
                    lane = self.index,
                    attempts,
                    events = events.len(),
                    failure = ?failure,
                    retry_in_ms = delay.as_millis() as u64,
                    %reason,
                    "publish failed; retrying"
                );
            }
            if !self.sleep_unless_shutdown(delay).await {
                return Outcome::GaveUp;
            }
            self.metrics.retried();
        }
    }

    /// Sleeps for `delay`; false, at once, when the shutdown deadline comes
    /// first (it may be set while sleeping).
    async fn sleep_unless_shutdown(&mut self, delay: Duration) -> bool {
        let wake = Instant::now() + delay;
        loop {
            if self.deadline.borrow().is_some_and(|at| wake > at) {
                return false;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => return true,
                changed = self.deadline.changed() => {
                    if changed.is_err() {
                        // No deadline can come any more.
                        tokio::time::sleep_until(wake.into()).await;
                        return true;
                    }
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
            lane = self.index, status, %code, %detail, ?channels, events = batch.len(),
            "edge refused events; not retrying"
        );
        let reason = format!("edge {status} {code}: {detail}");
        self.give_up(batch, code, &reason);
    }

    fn settle_exhausted(&self, single: Vec<Envelope>, attempts: u32, reason: &str) {
        let event = &single[0].event;
        tracing::warn!(
            lane = self.index, channel = %event.channel, event = %event.event, attempts, %reason,
            "the edge keeps failing this event while it serves others; giving up on it"
        );
        let reason = format!("{RETRIES_EXHAUSTED}: {attempts} attempts, the last: {reason}");
        self.give_up(single, RETRIES_EXHAUSTED, &reason);
    }

    /// Counts events that will never be delivered; Streams entries go to the
    /// dead-letter stream with `reason`.
    fn give_up(&self, batch: Vec<Envelope>, label: &str, reason: &str) {
        let mut dead = Vec::new();
        for envelope in batch {
            self.metrics.rejected(envelope.source(), label, 1);
            if let Ticket::Stream(ticket) = envelope.ticket {
                dead.push((ticket, reason.to_owned()));
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

/// Splits a batch into runs of consecutive items with the same key (the
/// tenant a request is sent as), keeping their order.
pub fn runs<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    for item in items {
        match out.last_mut() {
            Some(run) if key(&run[0]) == key(&item) => run.push(item),
            _ => out.push(vec![item]),
        }
    }
    out
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
#[path = "batcher_tests.rs"]
mod tests;
