//! The Streams source: a Valkey Stream read with a consumer group, for
//! at-least-once delivery across bridge crashes and Valkey restarts.
//!
//! The rules that make it lose nothing and duplicate nothing:
//! - An entry is acknowledged (XACK) only after the edge answered 202 for
//!   it. Until then it stays in the group's pending list, so a bridge that
//!   crashes mid-batch finds it again.
//! - On every (re)connection the reader first replays its own pending
//!   entries (`XREADGROUP ... 0`) before it reads new ones (`>`), so a
//!   restarted bridge with the same consumer name resends what was in flight,
//!   in stream order, before anything newer of the same channel.
//! - Entries another consumer left pending longer than `--claim-idle-ms` (a
//!   bridge that died under another name) are taken over with XAUTOCLAIM.
//! - The entry id (prefixed with the stream name) is the idempotency key, so
//!   when a resent entry had in fact reached the edge before the crash, the
//!   edge answers `duplicate: true` and delivers nothing twice.
//! - An entry that can never be delivered (malformed, another tenant's, a
//!   4xx, or out of retries) is copied to the dead-letter stream with the
//!   reason, then acknowledged, in one MULTI/EXEC: it is never lost and never
//!   blocks the entries behind it.
//!
//! The reader uses its own connection because XREADGROUP BLOCK holds a
//! connection for the whole wait; acknowledgements go over another.

use crate::backoff::Backoff;
use crate::batcher::{Deadline, Dispatcher, Envelope, StreamTicket, Ticket, Verdict};
use crate::metrics::{Metrics, Source};
use crate::tenancy::{Refusal, SourceName, TenantMap};
use crate::valkey;
use edgestream_core::origin::{decode_stream_entry, validate};
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How long one XREADGROUP waits for new entries; also how often the reader
/// looks at the claim timer.
const BLOCK_MS: u64 = 1_000;
/// Longest a command may take; above BLOCK_MS so a blocking read is not cut.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(BLOCK_MS / 1000 + 5);
/// The dead-letter stream keeps about this many entries.
const DEAD_LETTER_MAXLEN: u64 = 100_000;

pub struct StreamSettings {
    pub stream: String,
    pub group: String,
    pub consumer: String,
    pub dead_letter: String,
    pub claim_idle: Duration,
    pub read_count: u64,
    pub max_event_bytes: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub tenants: Arc<TenantMap>,
}

/// Entries read and not yet settled in Valkey. The reader skips them when it
/// replays the pending list (after a reconnection, or when XAUTOCLAIM hands
/// back entries that are only slow because the edge is down), so an entry is
/// never queued twice at once.
pub type InFlight = Arc<Mutex<HashSet<String>>>;

/// One entry as Valkey returned it; `fields` is `None` for an entry that was
/// deleted (XDEL, trimming) while it was pending.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    pub id: String,
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

pub struct StreamSource {
    pub client: redis::Client,
    pub settings: Arc<StreamSettings>,
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    pub in_flight: InFlight,
    /// Verdicts for entries that never reach a lane (malformed ones).
    pub verdicts: mpsc::UnboundedSender<Verdict>,
}

pub async fn connect(client: &redis::Client) -> Result<MultiplexedConnection, String> {
    valkey::connect(client, RESPONSE_TIMEOUT)
        .await
        .map_err(|e| valkey::explain(&e).to_string())
}

impl StreamSource {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let s = &self.settings;
        let mut backoff = Backoff::new(s.retry_initial, s.retry_max);
        let mut connected_before = false;
        while !*stop.borrow() {
            let result = tokio::select! {
                result = self.session(&mut backoff, connected_before) => result,
                _ = stop.changed() => break,
            };
            let err = match result {
                Ok(()) => "connection ended".to_string(),
                Err(err) => err,
            };
            connected_before = true;
            self.metrics.reconnected(Source::Streams);
            let delay = backoff.next_delay();
            tracing::warn!(
                stream = %s.stream,
                error = %err,
                retry_in_ms = delay.as_millis() as u64,
                "Streams connection lost; reconnecting"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => break,
            }
        }
        tracing::info!(stream = %s.stream, "Streams source stopped");
    }

    /// One connection's life; returns only with the error that ended it.
    async fn session(&self, backoff: &mut Backoff, reconnect: bool) -> Result<(), String> {
        let s = &self.settings;
        let mut conn = connect(&self.client).await?;
        ensure_group(&mut conn, s).await?;
        backoff.reset();
        // 1. Our own pending entries, oldest first.
        let mut cursor = "0-0".to_string();
        let mut replayed = 0usize;
        loop {
            let entries = self.read(&mut conn, &cursor, None).await?;
            let Some(last) = entries.last() else { break };
            cursor = last.id.clone();
            replayed += self.queue(entries).await;
        }
        tracing::info!(
            stream = %s.stream, group = %s.group, consumer = %s.consumer, replayed,
            "{} the stream", if reconnect { "reconnected to" } else { "reading" }
        );
        // 2. Entries a dead consumer left behind; 3. new entries.
        let mut next_claim = Instant::now();
        loop {
            if Instant::now() >= next_claim {
                self.claim(&mut conn).await?;
                next_claim = Instant::now() + s.claim_idle.max(Duration::from_secs(1)) / 2;
            }
            let entries = self.read(&mut conn, ">", Some(BLOCK_MS)).await?;
            self.queue(entries).await;
        }
    }

    async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        from: &str,
        block_ms: Option<u64>,
    ) -> Result<Vec<RawEntry>, String> {
        let s = &self.settings;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&s.group)
            .arg(&s.consumer)
            .arg("COUNT")
            .arg(s.read_count);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(&s.stream).arg(from);
        match cmd.query_async::<Value>(conn).await {
            Ok(value) => parse_read_reply(value),
            Err(err) if err.code() == Some("NOGROUP") => {
                // The stream or group vanished (Valkey restarted without
                // persistence, or someone deleted the key): create it again.
                tracing::warn!(stream = %s.stream, "consumer group missing; creating it again");
                ensure_group(conn, s).await?;
                Ok(Vec::new())
            }
            Err(err) => Err(format!("XREADGROUP: {}", valkey::explain(&err))),
        }
    }

    /// XAUTOCLAIM over the whole pending list, taking entries idle longer
    /// than `claim_idle`.
    async fn claim(&self, conn: &mut MultiplexedConnection) -> Result<(), String> {
        let s = &self.settings;
        let mut cursor = "0-0".to_string();
        let mut claimed = 0usize;
        for _ in 0..1000 {
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&s.stream)
                .arg(&s.group)
                .arg(&s.consumer)
                .arg(s.claim_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(s.read_count)
                .query_async(conn)
                .await
                .map_err(|e| format!("XAUTOCLAIM: {}", valkey::explain(&e)))?;
            let (next, entries) = parse_autoclaim_reply(reply)?;
            claimed += self.queue(entries).await;
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
        if claimed > 0 {
            self.metrics.claimed(claimed as u64);
            tracing::info!(stream = %s.stream, claimed, "claimed entries another consumer left pending");
        }
        Ok(())
    }

    /// Queues entries for the lanes, in order; returns how many were new to
    /// this process.
    async fn queue(&self, entries: Vec<RawEntry>) -> usize {
        let mut queued = 0;
        for entry in entries {
            if !self.in_flight.lock().unwrap().insert(entry.id.clone()) {
                continue;
            }
            queued += 1;
            self.metrics.received(Source::Streams);
            match self.envelope(entry) {
                Ok(envelope) => {
                    if let Err(envelope) = self.dispatcher.send(envelope).await {
                        // Lanes are gone: shutting down. Leave it pending.
                        if let Ticket::Stream(t) = envelope.ticket {
                            self.in_flight.lock().unwrap().remove(&t.id);
                        }
                    }
                }
                Err((ticket, reason, label)) => {
                    self.metrics.rejected(Source::Streams, label, 1);
                    tracing::warn!(stream = %self.settings.stream, id = %ticket.id, reason = label, detail = %reason, "skipped an entry");
                    let _ = self
                        .verdicts
                        .send(Verdict::Rejected(vec![(ticket, reason)]));
                }
            }
        }
        queued
    }

    /// Decodes and validates an entry; on failure returns what the
    /// dead-letter stream needs and the metric label.
    #[allow(clippy::result_large_err)]
    fn envelope(&self, entry: RawEntry) -> Result<Envelope, (StreamTicket, String, &'static str)> {
        let s = &self.settings;
        let ticket = StreamTicket {
            id: entry.id,
            fields: Arc::new(entry.fields.clone().unwrap_or_default()),
        };
        let Some(fields) = entry.fields else {
            return Err((
                ticket,
                "the entry was deleted while pending".into(),
                "deleted_entry",
            ));
        };
        let pairs = fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        let (mut event, _form) = match decode_stream_entry(pairs) {
            Ok(decoded) => decoded,
            Err(err) => return Err((ticket, err.to_string(), err.reason())),
        };
        if let Err(problem) = validate(&event, s.max_event_bytes) {
            return Err((
                ticket,
                format!("{}: {}", problem.code, problem.detail),
                problem.code,
            ));
        }
        let tenant = match s
            .tenants
            .admit(&SourceName::Stream(s.stream.clone()), &event.channel)
        {
            Ok(tenant) => tenant,
            Err(refusal) => return Err((ticket, refusal.to_string(), Refusal::REASON)),
        };
        if event.idempotency_key.is_none() {
            event.idempotency_key = Some(entry_key(&s.stream, &ticket.id));
        }
        let born_ms = ticket
            .id
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(crate::batcher::unix_ms);
        Ok(Envelope {
            event,
            ticket: Ticket::Stream(ticket),
            born_ms,
            tenant,
        })
    }
}

/// The idempotency key of an entry: `<stream>:<entry id>`, which stays the
/// same however often the entry is delivered. (The bare id when the stream's
/// name cannot be part of a key.)
pub fn entry_key(stream: &str, id: &str) -> String {
    let key = format!("{stream}:{id}");
    if key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic()) {
        key
    } else {
        id.to_owned()
    }
}

/// Creates the group (and the stream) if missing. It starts at the first
/// entry, not at `$`: entries written before the bridge first ran are
/// delivered too.
async fn ensure_group(conn: &mut MultiplexedConnection, s: &StreamSettings) -> Result<(), String> {
    let created: Result<Value, _> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&s.stream)
        .arg(&s.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(_) => {
            tracing::info!(stream = %s.stream, group = %s.group, "created the consumer group");
            Ok(())
        }
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        Err(err) => Err(format!("XGROUP CREATE: {}", valkey::explain(&err))),
    }
}

/// Settles verdicts in Valkey: XACK delivered entries; XADD rejected ones to
/// the dead-letter stream and XACK them, atomically. Retries (reconnecting)
/// until done, or until the shutdown deadline; an entry left unacknowledged
/// is only sent once more by a later run, which the edge deduplicates.
pub struct Acker {
    pub client: redis::Client,
    pub settings: Arc<StreamSettings>,
    pub metrics: Arc<Metrics>,
    pub in_flight: InFlight,
    pub deadline: Deadline,
}

impl Acker {
    pub async fn run(self, mut verdicts: mpsc::UnboundedReceiver<Verdict>) {
        let s = &self.settings;
        let mut conn: Option<MultiplexedConnection> = None;
        let mut backoff = Backoff::new(s.retry_initial, s.retry_max);
        while let Some(first) = verdicts.recv().await {
            let mut acks = Vec::new();
            let mut dead = Vec::new();
            let mut abandoned = Vec::new();
            let mut next = Some(first);
            while let Some(v) = next.take() {
                match v {
                    Verdict::Delivered(ids) => acks.extend(ids),
                    Verdict::Rejected(entries) => dead.extend(entries),
                    Verdict::Abandoned(ids) => abandoned.extend(ids),
                }
                if acks.len() + dead.len() < 5_000 {
                    next = verdicts.try_recv().ok();
                }
            }
            self.forget(&abandoned);
            if acks.is_empty() && dead.is_empty() {
                continue;
            }
            loop {
                let result = match conn.as_mut() {
                    Some(c) => self.settle(c, &acks, &dead).await,
                    None => match connect(&self.client).await {
                        Ok(c) => {
                            conn = Some(c);
                            continue;
                        }
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(()) => {
                        backoff.reset();
                        self.metrics.dead_lettered(dead.len() as u64);
                        self.forget(&acks);
                        self.forget(&dead.iter().map(|(t, _)| t.id.clone()).collect::<Vec<_>>());
                        break;
                    }
                    Err(err) => {
                        conn = None;
                        let delay = backoff.next_delay();
                        let at = *self.deadline.borrow();
                        if at.is_some_and(|at| Instant::now() + delay > at) {
                            tracing::warn!(stream = %s.stream, error = %err, pending = acks.len() + dead.len(), "shutdown: entries stay pending");
                            return;
                        }
                        tracing::warn!(stream = %s.stream, error = %err, retry_in_ms = delay.as_millis() as u64, "cannot acknowledge yet; retrying");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }

    async fn settle(
        &self,
        conn: &mut MultiplexedConnection,
        acks: &[String],
        dead: &[(StreamTicket, String)],
    ) -> Result<(), String> {
        let s = &self.settings;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (ticket, reason) in dead {
            let cmd = pipe
                .cmd("XADD")
                .arg(&s.dead_letter)
                .arg("MAXLEN")
                .arg("~")
                .arg(DEAD_LETTER_MAXLEN)
                .arg("*");
            for (k, v) in ticket.fields.iter() {
                cmd.arg(k.as_slice()).arg(v.as_slice());
            }
            cmd.arg("dead_letter_reason")
                .arg(reason)
                .arg("dead_letter_entry_id")
                .arg(&ticket.id);
            cmd.ignore();
        }
        let ids: Vec<&str> = acks
            .iter()
            .map(String::as_str)
            .chain(dead.iter().map(|(t, _)| t.id.as_str()))
            .collect();
        for chunk in ids.chunks(1000) {
            pipe.cmd("XACK")
                .arg(&s.stream)
                .arg(&s.group)
                .arg(chunk)
                .ignore();
        }
        pipe.query_async::<()>(conn)
            .await
            .map_err(|e| valkey::explain(&e).to_string())
    }

    fn forget(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let mut set = self.in_flight.lock().unwrap();
        for id in ids {
            set.remove(id);
        }
    }
}

/// XREADGROUP's reply: `[[stream, [[id, [field, value, ...]], ...]]]`, nil
/// when BLOCK timed out; an entry's field list is nil when the entry was
/// deleted. (RESP3 servers send the outer level as a map.)
pub fn parse_read_reply(value: Value) -> Result<Vec<RawEntry>, String> {
    let streams = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.pop().unwrap()),
                other => Err(format!("unexpected XREADGROUP stream: {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        other => return Err(format!("unexpected XREADGROUP reply: {other:?}")),
    };
    let mut out = Vec::new();
    for entries in streams {
        out.extend(parse_entries(entries)?);
    }
    Ok(out)
}

/// XAUTOCLAIM's reply: `[next cursor, [entries...], [deleted ids...]]`.
pub fn parse_autoclaim_reply(value: Value) -> Result<(String, Vec<RawEntry>), String> {
    let Value::Array(mut parts) = value else {
        return Err(format!("unexpected XAUTOCLAIM reply: {value:?}"));
    };
    if parts.len() < 2 {
        return Err("XAUTOCLAIM reply too short".into());
    }
    let entries = parts.remove(1);
    let cursor = text(parts.remove(0)).ok_or("XAUTOCLAIM cursor is not text")?;
    Ok((cursor, parse_entries(entries)?))
}

fn parse_entries(entries: Value) -> Result<Vec<RawEntry>, String> {
    let entries = match entries {
        Value::Array(entries) => entries,
        Value::Nil => return Ok(Vec::new()),
        other => return Err(format!("unexpected entry list: {other:?}")),
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(mut parts) = entry else {
            return Err(format!("unexpected entry: {entry:?}"));
        };
        if parts.len() != 2 {
            return Err("entry is not [id, fields]".into());
        }
        let fields = parts.pop().unwrap();
        let id = text(parts.pop().unwrap()).ok_or("entry id is not text")?;
        let fields = match fields {
            Value::Nil => None,
            Value::Array(flat) => {
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((
                        bytes(k).ok_or("field name is not a string")?,
                        bytes(v).ok_or("field value is not a string")?,
                    ));
                }
                Some(pairs)
            }
            Value::Map(map) => Some(
                map.into_iter()
                    .map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("field is not a string")?,
            ),
            other => return Err(format!("unexpected fields: {other:?}")),
        };
        out.push(RawEntry { id, fields });
    }
    Ok(out)
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn text(value: Value) -> Option<String> {
    bytes(value).and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
#[path = "source_streams_tests.rs"]
mod tests;
