//! The Pub/Sub source: `SUBSCRIBE events_channel` (and any other channels
//! configured), one event per message.
//!
//! Pub/Sub is fire-and-forget in Valkey: a message published while the
//! bridge is disconnected is gone, and Valkey cannot be asked to hold
//! messages back. So this source never blocks on the edge (a full lane drops
//! the event and counts it), reconnects with backoff when the connection
//! fails, and pings the connection so that one that silently died (a
//! half-open TCP connection) is noticed within seconds. Its guarantee is
//! at-most-once from Valkey, exactly-once from the bridge to the edge: each
//! event gets an idempotency key before its first attempt, so the bridge's
//! own retries never duplicate it. Use the Streams source when the origin
//! needs more.
//!
//! Pub/Sub channels are global to the server: the database number of
//! `VALKEY_URL` does not separate them. Separate origins by channel name, by
//! ACL channel patterns (`&pattern`), or by a Valkey of their own.

use crate::backoff::Backoff;
use crate::batcher::{unix_ms, Dispatcher, Envelope, Ticket};
use crate::metrics::{Metrics, Source};
use crate::tenancy::{Refusal, SourceName, TenantMap};
use crate::valkey::{self, CONNECT_TIMEOUT};
use edgestream_core::origin::{decode_message, validate};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PubSubSource {
    pub client: redis::Client,
    pub channels: Vec<String>,
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    pub max_event_bytes: usize,
    pub backoff: Backoff,
    pub keys: KeyMaker,
    pub tenants: Arc<TenantMap>,
}

/// Idempotency keys for events that come without one: unique to this run of
/// the bridge (a random prefix) and to the event (a counter).
pub struct KeyMaker {
    run: String,
    next: AtomicU64,
}

impl KeyMaker {
    pub fn new() -> Self {
        KeyMaker {
            run: format!("{:012x}", fastrand::u64(..) >> 16),
            next: AtomicU64::new(1),
        }
    }

    pub fn next(&self) -> String {
        format!(
            "bridge-{}-{}",
            self.run,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

impl Default for KeyMaker {
    fn default() -> Self {
        Self::new()
    }
}

impl PubSubSource {
    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut connected_before = false;
        while !*stop.borrow() {
            // The session watches `stop` itself and returns Ok when it turns.
            let result = self.session(&mut stop, connected_before).await;
            match result {
                Ok(()) => break,
                Err(err) => {
                    connected_before = true;
                    self.metrics.reconnected(Source::PubSub);
                    let delay = self.backoff.next_delay();
                    tracing::warn!(
                        error = %err,
                        retry_in_ms = delay.as_millis() as u64,
                        "Pub/Sub connection lost; reconnecting"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => break,
                    }
                }
            }
        }
        tracing::info!("Pub/Sub source stopped");
    }

    /// One connection's life: subscribe, then read until it fails or `stop`.
    async fn session(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        reconnect: bool,
    ) -> Result<(), String> {
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| valkey::explain(&e).to_string())?;
        let (mut sink, mut messages) = pubsub.split();
        for channel in &self.channels {
            sink.subscribe(channel)
                .await
                .map_err(|e| format!("SUBSCRIBE {channel}: {}", valkey::explain(&e)))?;
        }
        self.backoff.reset();
        tracing::info!(
            channels = ?self.channels,
            "{} Pub/Sub",
            if reconnect { "resubscribed to" } else { "subscribed to" }
        );
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => self.handle(message.get_channel_name(), message.get_payload_bytes()),
                    None => return Err("connection closed".into()),
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(format!("ping failed: {}", valkey::explain(&e))),
                        Err(_) => return Err("ping timed out".into()),
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// One message: decode, validate, check its tenant, queue. A bad
    /// message is logged (without its data), counted and skipped; nothing
    /// here can stop the source.
    fn handle(&self, channel: &str, payload: &[u8]) {
        self.metrics.received(Source::PubSub);
        let (mut event, form) = match decode_message(payload) {
            Ok(decoded) => decoded,
            Err(err) => {
                self.metrics.rejected(Source::PubSub, err.reason(), 1);
                tracing::warn!(
                    pubsub_channel = channel,
                    reason = err.reason(),
                    bytes = payload.len(),
                    "skipped a message: {err}"
                );
                return;
            }
        };
        if let Err(problem) = validate(&event, self.max_event_bytes) {
            self.metrics.rejected(Source::PubSub, problem.code, 1);
            tracing::warn!(
                pubsub_channel = channel, channel = %truncate(&event.channel), event = %truncate(&event.event),
                reason = problem.code, detail = %problem.detail, "skipped a message"
            );
            return;
        }
        let source = SourceName::PubSub(channel.to_owned());
        let tenant = match self.tenants.admit(&source, &event.channel) {
            Ok(tenant) => tenant,
            Err(refusal) => {
                self.metrics.rejected(Source::PubSub, Refusal::REASON, 1);
                tracing::warn!(
                    pubsub_channel = channel, channel = %event.channel, event = %truncate(&event.event),
                    reason = Refusal::REASON, "refused a message for another tenant: {refusal}"
                );
                return;
            }
        };
        if event.idempotency_key.is_none() {
            event.idempotency_key = Some(self.keys.next());
        }
        tracing::trace!(form = ?form, channel = %event.channel, "queued");
        let envelope = Envelope {
            event,
            ticket: Ticket::PubSub,
            born_ms: unix_ms(),
            tenant,
        };
        if let Err(envelope) = self.dispatcher.try_send(envelope) {
            self.metrics.dropped("queue_full", 1);
            tracing::warn!(channel = %envelope.event.channel, reason = "queue_full", "queue full (the edge is slow or down): dropped a Pub/Sub event");
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_and_valid_idempotency_keys() {
        let keys = KeyMaker::new();
        let (a, b) = (keys.next(), keys.next());
        assert_ne!(a, b);
        assert_ne!(KeyMaker::new().next(), KeyMaker::new().next());
        assert!(
            a.len() <= 128 && a.bytes().all(|c| c.is_ascii_graphic()),
            "{a}"
        );
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc"), "abc");
        assert_eq!(truncate(&"é".repeat(200)).chars().count(), 120);
    }
}
