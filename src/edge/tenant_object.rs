//! The Tenant Durable Object: one per tenant, off every stream's path. It
//! holds the tenant's revocations and the channels its streams use, and
//! carries out kicks.
//!
//! Channels register here (at their first stream or publish, then daily)
//! and learn the revocations in force; a kick records its revocation and
//! sends itself to every registered channel, which closes the matching
//! sockets and refuses the revoked tags from then on. So opening a stream
//! asks no per-tenant object anything, and a kick reaches a stream that is
//! attaching at that moment: its channel either still had it (and closes it)
//! or already knew (and refuses it).
//!
//! A kick is swept over the channels in parallel, a bounded number at a
//! time, each channel on its own (one that fails is retried, never stops the
//! rest); what one request does not finish, the object's alarm continues
//! until every channel has it. Padding the tenant's list with throw-away
//! channels therefore delays a kick but cannot escape it.
//!
//! With `MAX_STREAMS_PER_TENANT` it also keeps the tenant's ledger of stream
//! slots (`edgestream_core::quota`): isolates lease blocks of slots here and
//! hand them to streams themselves, so it is asked once per block and on
//! renewals, never per stream. Leases are stored, so a restarted object
//! still counts the slots it granted.

use std::cell::{Cell, RefCell};

use edgestream_core::protocol::channel::Kick;
use edgestream_core::protocol::tenant::{KickOrder, KickReport, Revocations, TenantRequest};
use edgestream_core::quota::{Lease, LeaseAsk, Ledger, LedgerChange};
use edgestream_core::revocation::{Revocation, MAX_REVOCATIONS};
use futures_util::StreamExt;
use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State};

use super::channel_client::ChannelClient;
use super::channel_object::bad_request;
use super::log;
use super::objects::Arrived;
use super::sql::{int, text};

/// How long a channel stays on the tenant's list after it last registered
/// (channels register daily while they are in use).
const CHANNEL_MEMORY_MS: u64 = 7 * 86_400_000;
/// Channels a kick is sent to at once (an object has six connections).
const PARALLEL_CHANNELS: usize = 6;
/// Channels one request or one alarm run sweeps; the alarm does the rest.
const SWEEP_BATCH: usize = 300;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS revocations (tag TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS channels (name TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kicks (
  id INTEGER PRIMARY KEY, tag TEXT, until_ms INTEGER, after TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retries (kick INTEGER NOT NULL, channel TEXT NOT NULL, PRIMARY KEY (kick, channel));
CREATE TABLE IF NOT EXISTS leases (
  holder TEXT PRIMARY KEY, slots INTEGER NOT NULL, expires_ms INTEGER NOT NULL, seq INTEGER NOT NULL);
";

#[durable_object]
pub struct TenantObject {
    state: State,
    sql: SqlStorage,
    env: Env,
    alarm_set: Cell<bool>,
    /// The stream-slot leases, read from storage at the first ask.
    ledger: RefCell<Option<Ledger>>,
}

/// A kick being swept: its channels are done in name order up to `after`.
#[derive(Deserialize)]
struct Sweep {
    id: u64,
    tag: Option<String>,
    until_ms: Option<u64>,
    after: String,
}

/// What one sweep of a kick did.
struct Swept {
    closed: u64,
    unfinished: bool,
}

impl DurableObject for TenantObject {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(SCHEMA, None) {
            log::error("tenant schema", &e.to_string());
        }
        Self {
            state,
            sql,
            env,
            alarm_set: Cell::new(false),
            ledger: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let arrived = Arrived::read(&mut req).await?;
        let now = worker::Date::now().as_millis();
        match TenantRequest::parse(&arrived.incoming()) {
            Ok(TenantRequest::Register(register)) => {
                self.sql.exec(
                    "INSERT OR REPLACE INTO channels (name, seen_ms) VALUES (?, ?)",
                    vec![text(&register.channel), int(now)],
                )?;
                self.ensure_alarm().await?;
                Response::ok(
                    Revocations {
                        revocations: self.revocations(now)?,
                    }
                    .to_json(),
                )
            }
            Ok(TenantRequest::Kick(order)) => self.kick(&order, now).await,
            Ok(TenantRequest::Lease(ask)) => self.lease(&ask, now),
            Err(error) => bad_request(&error),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_set.set(false);
        let now = worker::Date::now().as_millis();
        self.sql.exec(
            "DELETE FROM revocations WHERE until_ms <= ?",
            vec![int(now)],
        )?;
        self.sql.exec(
            "DELETE FROM channels WHERE seen_ms <= ?",
            vec![int(now.saturating_sub(CHANNEL_MEMORY_MS))],
        )?;
        let mut unfinished = false;
        for sweep in self.sweeps()? {
            unfinished |= self.sweep(&sweep).await?.unfinished;
        }
        if unfinished {
            // Go on at once: a kick is not done until every channel has it.
            self.state.storage().set_alarm(100i64).await?;
            self.alarm_set.set(true);
        } else {
            self.ensure_alarm().await?;
        }
        Response::ok("")
    }
}

impl TenantObject {
    /// Decides a lease ask in the ledger and stores what it changed before
    /// answering, so a grant is never lost to a restart.
    fn lease(&self, ask: &LeaseAsk, now: u64) -> Result<Response> {
        let mut ledger = self.ledger.borrow_mut();
        if ledger.is_none() {
            let stored: Vec<Lease> = self
                .sql
                .exec("SELECT holder, slots, expires_ms, seq FROM leases", None)?
                .to_array()?;
            *ledger = Some(Ledger::from_leases(stored));
        }
        let ledger = ledger.get_or_insert_with(Ledger::default);
        let (grant, changes) = ledger.ask(ask, now);
        for change in changes {
            match change {
                LedgerChange::Put(lease) => self.sql.exec(
                    "INSERT OR REPLACE INTO leases (holder, slots, expires_ms, seq) VALUES (?, ?, ?, ?)",
                    vec![
                        text(&lease.holder),
                        int(lease.slots),
                        int(lease.expires_ms),
                        int(lease.seq),
                    ],
                )?,
                LedgerChange::Remove(holder) => self
                    .sql
                    .exec("DELETE FROM leases WHERE holder = ?", vec![text(&holder)])?,
            };
        }
        Response::ok(grant.to_json())
    }

    /// Records the kick's revocation, then sweeps the first batch of
    /// channels; the alarm finishes the sweep.
    async fn kick(&self, order: &KickOrder, now: u64) -> Result<Response> {
        if let Some(tag) = &order.tag {
            if !self.revoked(tag)?
                && self.count(
                    "SELECT COUNT(*) AS n FROM revocations WHERE until_ms > ?",
                    now,
                )? >= MAX_REVOCATIONS as u64
            {
                return Ok(Response::empty()?.with_status(429));
            }
            self.sql.exec(
                "INSERT INTO revocations (tag, until_ms) VALUES (?, ?)
                 ON CONFLICT (tag) DO UPDATE SET until_ms = MAX(until_ms, excluded.until_ms)",
                vec![text(tag), int(order.until_ms)],
            )?;
        }
        let channels = self.count(
            "SELECT COUNT(*) AS n FROM channels WHERE seen_ms > ?",
            now.saturating_sub(CHANNEL_MEMORY_MS),
        )?;
        let id = self.count_rows("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM kicks", vec![])?;
        self.sql.exec(
            "INSERT INTO kicks (id, tag, until_ms, after) VALUES (?, ?, ?, '')",
            vec![
                int(id),
                order
                    .tag
                    .as_deref()
                    .map_or(worker::SqlStorageValue::Null, text),
                order
                    .tag
                    .as_ref()
                    .map_or(worker::SqlStorageValue::Null, |_| int(order.until_ms)),
            ],
        )?;
        let sweep = Sweep {
            id,
            tag: order.tag.clone(),
            until_ms: order.tag.as_ref().map(|_| order.until_ms),
            after: String::new(),
        };
        let swept = self.sweep(&sweep).await?;
        let pending = if swept.unfinished {
            self.pending(id)?
        } else {
            0
        };
        if swept.unfinished {
            self.state.storage().set_alarm(100i64).await?;
            self.alarm_set.set(true);
        } else {
            self.ensure_alarm().await?;
        }
        Response::ok(
            KickReport {
                channels,
                closed: swept.closed,
                pending,
            }
            .to_json(),
        )
    }

    /// Sends the kick to its next batch of channels and to those that failed
    /// before.
    async fn sweep(&self, sweep: &Sweep) -> Result<Swept> {
        #[derive(Deserialize)]
        struct Name {
            name: String,
        }
        let retries: Vec<Name> = self
            .sql
            .exec(
                "SELECT channel AS name FROM retries WHERE kick = ? LIMIT ?",
                vec![int(sweep.id), int(SWEEP_BATCH as u64)],
            )?
            .to_array()?;
        let fresh: Vec<Name> = self
            .sql
            .exec(
                "SELECT name FROM channels WHERE name > ? ORDER BY name LIMIT ?",
                vec![
                    text(&sweep.after),
                    int((SWEEP_BATCH - retries.len()) as u64),
                ],
            )?
            .to_array()?;
        let after = fresh.last().map_or(sweep.after.clone(), |n| n.name.clone());
        let kick = Kick {
            tag: sweep.tag.clone(),
            until_ms: sweep.until_ms,
        };
        let env = &self.env;
        let kick = &kick;
        // The tenant's channels live where this object does.
        let jurisdiction =
            super::objects::own_jurisdiction(&self.state).map_err(worker::Error::RustError)?;
        let outcomes = futures_util::stream::iter(retries.iter().chain(&fresh))
            .map(|channel| async move {
                let sent = match ChannelClient::channel(env, jurisdiction, &channel.name) {
                    Ok(client) => client.kick(kick).await,
                    Err(problem) => Err(problem),
                };
                (channel.name.as_str(), sent)
            })
            .buffer_unordered(PARALLEL_CHANNELS)
            .collect::<Vec<_>>()
            .await;
        let mut closed = 0;
        for (channel, outcome) in outcomes {
            match outcome {
                Ok(kicked) => {
                    closed += kicked.closed;
                    self.sql.exec(
                        "DELETE FROM retries WHERE kick = ? AND channel = ?",
                        vec![int(sweep.id), text(channel)],
                    )?;
                }
                Err(problem) => {
                    log::warn(
                        "kick to a channel failed; retrying",
                        serde_json::json!({ "code": problem.code }),
                    );
                    self.sql.exec(
                        "INSERT OR IGNORE INTO retries (kick, channel) VALUES (?, ?)",
                        vec![int(sweep.id), text(channel)],
                    )?;
                }
            }
        }
        self.sql.exec(
            "UPDATE kicks SET after = ? WHERE id = ?",
            vec![text(&after), int(sweep.id)],
        )?;
        let more_channels = fresh.len() == SWEEP_BATCH - retries.len();
        let retrying =
            self.count("SELECT COUNT(*) AS n FROM retries WHERE kick = ?", sweep.id)? > 0;
        let unfinished = more_channels || retrying;
        if !unfinished {
            self.sql
                .exec("DELETE FROM kicks WHERE id = ?", vec![int(sweep.id)])?;
        }
        Ok(Swept { closed, unfinished })
    }

    /// Channels a kick still has to reach.
    fn pending(&self, id: u64) -> Result<u64> {
        let Some(sweep) = self.sweeps()?.into_iter().find(|s| s.id == id) else {
            return Ok(0);
        };
        Ok(self.count_text(
            "SELECT COUNT(*) AS n FROM channels WHERE name > ?",
            &sweep.after,
        )? + self.count("SELECT COUNT(*) AS n FROM retries WHERE kick = ?", id)?)
    }

    fn sweeps(&self) -> Result<Vec<Sweep>> {
        self.sql
            .exec(
                "SELECT id, tag, until_ms, after FROM kicks ORDER BY id",
                None,
            )?
            .to_array()
    }

    fn revocations(&self, now: u64) -> Result<Vec<Revocation>> {
        self.sql
            .exec(
                "SELECT tag, until_ms FROM revocations WHERE until_ms > ?",
                vec![int(now)],
            )?
            .to_array()
    }

    fn revoked(&self, tag: &str) -> Result<bool> {
        Ok(self.count_text("SELECT COUNT(*) AS n FROM revocations WHERE tag = ?", tag)? > 0)
    }

    fn count(&self, sql: &str, value: u64) -> Result<u64> {
        self.count_rows(sql, vec![int(value)])
    }

    fn count_text(&self, sql: &str, value: &str) -> Result<u64> {
        self.count_rows(sql, vec![text(value)])
    }

    fn count_rows(&self, sql: &str, bindings: Vec<worker::SqlStorageValue>) -> Result<u64> {
        #[derive(Deserialize)]
        struct Count {
            n: u64,
        }
        let rows: Vec<Count> = self.sql.exec(sql, bindings)?.to_array()?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    /// Schedules the hourly sweep of expired rows; at most one alarm is
    /// pending at a time.
    async fn ensure_alarm(&self) -> Result<()> {
        if self.alarm_set.get() {
            return Ok(());
        }
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(3_600_000i64).await?;
        }
        self.alarm_set.set(true);
        Ok(())
    }
}
