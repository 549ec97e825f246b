//! A channel's SQLite storage: the history ring, the current state that
//! outlived it, the tenant's revocations and a few values (`meta`). What to
//! keep and for how long is decided in `edgestream_core::history`; this file
//! only reads and writes rows, and counts the rows it writes (they are
//! billed, and the benchmark reports them per event).
//!
//! ```text
//! ring        slot → seq, event, data, key, ms   one row per event, overwritten HISTORY_SIZE events later
//! state       event → seq, data, ms              a type's latest event, copied here before the ring overwrites it
//! revocations tag → until_ms                     the tenant's, pushed by its object
//! meta        name → value                       head (saved before history is dropped), ring size, registration, shards, the channel name
//! presence    subject → leaving_ms               announced subjects (presence channels only), and when each leaves
//! ```
//!
//! Every statement is synchronous, so whatever a request does between two
//! awaits happens as one step that no other request can see half done.

use std::cell::Cell;
use std::collections::HashMap;

use edgestream_core::history::{CurrentState, Ring};
use edgestream_core::presence;
use edgestream_core::relay::{RelayWriter, MESSAGE_BYTES};
use edgestream_core::revocation::Revocation;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use worker::{Result, SqlCursor, SqlStorage, SqlStorageValue};

use super::sql::{int, text};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ring (
  slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,
  key TEXT, ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (
  event TEXT PRIMARY KEY, seq INTEGER NOT NULL, data TEXT NOT NULL, ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (tag TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS presence (subject TEXT PRIMARY KEY, leaving_ms INTEGER);
";

pub struct Store {
    sql: SqlStorage,
    ring: Ring,
    rows_written: Cell<u64>,
}

/// An event as history replays it.
#[derive(Deserialize)]
pub struct EventRow {
    pub seq: u64,
    pub event: String,
    pub data: String,
}

/// What a publish overwrites in the ring.
#[derive(Deserialize)]
pub struct Overwritten {
    pub seq: u64,
    pub event: String,
    pub key: Option<String>,
}

impl Store {
    /// Opens the storage with a ring of `history_size` slots, creating the
    /// tables, moving a channel stored by an earlier version into them, and
    /// re-slotting the ring when `HISTORY_SIZE` changed.
    pub fn open(sql: SqlStorage, history_size: u64) -> Result<Self> {
        sql.exec(SCHEMA, None)?;
        let mut store = Store {
            sql,
            ring: Ring::new(history_size),
            rows_written: Cell::new(0),
        };
        store.migrate_tables()?;
        match store.meta::<u64>("ring_size")? {
            Some(size) if size == history_size => {}
            Some(_) => store.resize()?,
            None => store.set_meta("ring_size", &history_size)?,
        }
        Ok(store)
    }

    /// Rows written since the object started.
    pub fn rows_written(&self) -> u64 {
        self.rows_written.get()
    }

    /// The latest sequence number: the newest event in the ring, or the head
    /// saved before history was dropped.
    pub fn head(&self) -> Result<u64> {
        #[derive(Deserialize)]
        struct Head {
            seq: Option<u64>,
        }
        let newest: Vec<Head> = self.query("SELECT MAX(seq) AS seq FROM ring", vec![])?;
        let newest = newest.first().and_then(|h| h.seq).unwrap_or(0);
        Ok(newest.max(self.meta("head")?.unwrap_or(0)))
    }

    /// When event `seq` was published, if the ring still holds it.
    pub fn published_ms(&self, seq: u64) -> Result<Option<u64>> {
        #[derive(Deserialize)]
        struct Ms {
            ms: u64,
        }
        let rows: Vec<Ms> = self.query(
            "SELECT ms FROM ring WHERE slot = ? AND seq = ?",
            vec![self.slot(seq), int(seq)],
        )?;
        Ok(rows.first().map(|r| r.ms))
    }

    /// The oldest event still held and not expired, when `head` is the
    /// newest: `published_ms` grows with `seq`, so the unexpired events are a
    /// suffix of the ring, found by bisection over point reads.
    pub fn oldest(&self, head: u64, cutoff_ms: u64) -> Result<Option<u64>> {
        let Some(mut low) = self.ring.oldest(head) else {
            return Ok(None);
        };
        let alive =
            |seq| -> Result<bool> { Ok(self.published_ms(seq)?.is_some_and(|ms| ms >= cutoff_ms)) };
        if alive(low)? {
            return Ok(Some(low));
        }
        if !alive(head)? {
            return Ok(None);
        }
        // Invariant: `low` is gone, `high` is alive.
        let mut high = head;
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if alive(mid)? {
                high = mid;
            } else {
                low = mid;
            }
        }
        Ok(Some(high))
    }

    /// What publishing `seq` will overwrite, if anything.
    pub fn overwritten(&self, seq: u64) -> Result<Option<Overwritten>> {
        let Some(old) = self.ring.overwrites(seq) else {
            return Ok(None);
        };
        let rows = self.query(
            "SELECT seq, event, key FROM ring WHERE slot = ? AND seq = ?",
            vec![self.slot(old), int(old)],
        )?;
        Ok(rows.into_iter().next())
    }

    /// Keeps the ring row of event `seq` as its type's state: it is the
    /// latest of its type and about to be overwritten.
    pub fn keep_as_state(&self, seq: u64) -> Result<()> {
        self.write(
            "INSERT OR REPLACE INTO state (event, seq, data, ms) SELECT event, seq, data, ms FROM ring WHERE slot = ?",
            vec![self.slot(seq)],
        )
    }

    /// Stores an event in its slot, replacing what the slot held: one row.
    pub fn write_event(
        &self,
        seq: u64,
        event: &str,
        data: &str,
        key: Option<&str>,
        ms: u64,
    ) -> Result<()> {
        self.write(
            "INSERT INTO ring (slot, seq, event, data, key, ms) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (slot) DO UPDATE SET seq = excluded.seq, event = excluded.event,
               data = excluded.data, key = excluded.key, ms = excluded.ms",
            vec![
                self.slot(seq),
                int(seq),
                text(event),
                text(data),
                key.map_or(SqlStorageValue::Null, text),
                int(ms),
            ],
        )
    }

    /// Drops a type from the kept state (it no longer fits the state's bounds).
    pub fn forget_state(&self, event: &str) -> Result<()> {
        self.write("DELETE FROM state WHERE event = ?", vec![text(event)])
    }

    /// Every type's latest event that has not expired, from the ring and the
    /// kept state, for building the current state after a start. Sizes are of
    /// `data`.
    pub fn latest_per_type(&self, cutoff_ms: u64) -> Result<Vec<(String, u64, usize)>> {
        #[derive(Deserialize)]
        struct Latest {
            event: String,
            seq: u64,
            bytes: usize,
        }
        let rows: Vec<Latest> = self.query(
            "SELECT event, MAX(seq) AS seq, LENGTH(data) AS bytes FROM (
               SELECT event, seq, data FROM ring WHERE ms >= ?1
               UNION ALL SELECT event, seq, data FROM state WHERE ms >= ?1)
             GROUP BY event ORDER BY seq",
            vec![int(cutoff_ms)],
        )?;
        Ok(rows
            .into_iter()
            .map(|l| (l.event, l.seq, l.bytes))
            .collect())
    }

    /// The current state's events, in sequence order.
    pub fn state_events(&self, state: &CurrentState, head: u64) -> Result<Vec<EventRow>> {
        let mut rows = Vec::with_capacity(state.len());
        let oldest = self.ring.oldest(head).unwrap_or(u64::MAX);
        for latest in state.latest() {
            let found: Vec<EventRow> = if latest.seq >= oldest {
                self.query(
                    "SELECT seq, event, data FROM ring WHERE slot = ? AND seq = ?",
                    vec![self.slot(latest.seq), int(latest.seq)],
                )?
            } else {
                self.query(
                    "SELECT seq, event, data FROM state WHERE event = ? AND seq = ?",
                    vec![text(&latest.event), int(latest.seq)],
                )?
            };
            rows.extend(found);
        }
        Ok(rows)
    }

    /// Idempotency keys of the events held and not expired.
    pub fn keys(&self, cutoff_ms: u64) -> Result<HashMap<String, u64>> {
        #[derive(Deserialize)]
        struct Key {
            key: String,
            seq: u64,
        }
        let rows: Vec<Key> = self.query(
            "SELECT key, seq FROM ring WHERE key IS NOT NULL AND ms >= ?",
            vec![int(cutoff_ms)],
        )?;
        Ok(rows.into_iter().map(|k| (k.key, k.seq)).collect())
    }

    /// Writes the events after `after` (up to `head`) into `writer` until it
    /// holds a relay message's worth. The caller has checked that they are
    /// all held.
    pub fn page(&self, after: u64, head: u64, writer: &mut RelayWriter) -> Result<()> {
        let mut next = after + 1;
        while next <= head && writer.len() < MESSAGE_BYTES {
            // Slots run in sequence order until the ring wraps. Rows are read
            // one at a time, so a page of large events reads no more of them
            // than it holds.
            let first = self.ring.slot(next);
            let count = (head - next + 1).min(self.ring.size() - first);
            let rows = self.sql.exec(
                "SELECT seq, event, data FROM ring WHERE slot >= ? AND slot < ? ORDER BY slot",
                vec![int(first), int(first + count)],
            )?;
            for row in rows.next::<EventRow>() {
                let row = row?;
                if row.seq != next {
                    // Only an event that expired between the caller's check
                    // and now: the stream sees the gap and pages again.
                    return Ok(());
                }
                writer.event(row.seq, &row.event, &row.data);
                next += 1;
                if writer.len() >= MESSAGE_BYTES {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Drops all history and kept state once every event has expired,
    /// keeping the head so that sequence numbers go on.
    pub fn drop_history(&self, head: u64) -> Result<()> {
        self.set_meta("head", &head)?;
        self.write("DELETE FROM ring", vec![])?;
        self.write("DELETE FROM state", vec![])
    }

    pub fn revocations(&self) -> Result<Vec<Revocation>> {
        self.query("SELECT tag, until_ms FROM revocations", vec![])
    }

    pub fn revoke(&self, revocation: &Revocation) -> Result<()> {
        self.write(
            "INSERT INTO revocations (tag, until_ms) VALUES (?, ?)
             ON CONFLICT (tag) DO UPDATE SET until_ms = MAX(until_ms, excluded.until_ms)",
            vec![text(&revocation.tag), int(revocation.until_ms)],
        )
    }

    pub fn expire_revocations(&self, now_ms: u64) -> Result<()> {
        self.write(
            "DELETE FROM revocations WHERE until_ms <= ?",
            vec![int(now_ms)],
        )
    }

    /// The announced subjects, with when each is leaving if it is.
    pub fn presence(&self) -> Result<Vec<(String, Option<u64>)>> {
        #[derive(Deserialize)]
        struct Announced {
            subject: String,
            leaving_ms: Option<u64>,
        }
        let rows: Vec<Announced> =
            self.query("SELECT subject, leaving_ms FROM presence", vec![])?;
        Ok(rows
            .into_iter()
            .map(|row| (row.subject, row.leaving_ms))
            .collect())
    }

    pub fn set_presence(&self, subject: &str, row: presence::Row) -> Result<()> {
        match row {
            presence::Row::Present => self.write(
                "INSERT OR REPLACE INTO presence (subject, leaving_ms) VALUES (?, NULL)",
                vec![text(subject)],
            ),
            presence::Row::Leaving(at) => self.write(
                "INSERT OR REPLACE INTO presence (subject, leaving_ms) VALUES (?, ?)",
                vec![text(subject), int(at)],
            ),
            presence::Row::Gone => self.write(
                "DELETE FROM presence WHERE subject = ?",
                vec![text(subject)],
            ),
        }
    }

    pub fn meta<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        #[derive(Deserialize)]
        struct Value {
            value: String,
        }
        let rows: Vec<Value> =
            self.query("SELECT value FROM meta WHERE name = ?", vec![text(name)])?;
        Ok(rows
            .first()
            .and_then(|v| serde_json::from_str(&v.value).ok()))
    }

    pub fn set_meta<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let value =
            serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.write(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
            vec![text(name), text(&value)],
        )
    }

    fn slot(&self, seq: u64) -> SqlStorageValue {
        int(self.ring.slot(seq))
    }

    fn query<T: DeserializeOwned>(
        &self,
        sql: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<T>> {
        self.sql.exec(sql, bindings)?.to_array()
    }

    fn write(&self, sql: &str, bindings: Vec<SqlStorageValue>) -> Result<()> {
        let cursor: SqlCursor = self.sql.exec(sql, bindings)?;
        self.rows_written
            .set(self.rows_written.get() + cursor.rows_written() as u64);
        Ok(())
    }

    /// Moves the rows of a ring of another size into this one: the newest
    /// `HISTORY_SIZE` events are kept (an operator changed the setting).
    fn resize(&mut self) -> Result<()> {
        let head = self.head()?;
        let keep_from = self.ring.oldest(head).unwrap_or(1);
        self.write(
            "CREATE TEMP TABLE moved AS SELECT seq, event, data, key, ms FROM ring WHERE seq >= ?",
            vec![int(keep_from)],
        )?;
        self.set_meta("head", &head)?;
        self.write("DELETE FROM ring", vec![])?;
        self.write(
            "INSERT INTO ring (slot, seq, event, data, key, ms) SELECT seq % ?, seq, event, data, key, ms FROM moved",
            vec![int(self.ring.size())],
        )?;
        self.write("DROP TABLE moved", vec![])?;
        self.set_meta("ring_size", &self.ring.size())
    }

    /// Channels stored by the version before the ring kept history in
    /// `events`, state in `latest`, keys in `idempotency` and the head in
    /// `head`; they move into the ring once.
    fn migrate_tables(&mut self) -> Result<()> {
        #[derive(Deserialize)]
        struct Count {
            n: u64,
        }
        let old: Vec<Count> = self.query(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            vec![],
        )?;
        if old.first().is_none_or(|c| c.n == 0) {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Head {
            seq: Option<u64>,
        }
        let heads: Vec<Head> = self.query(
            "SELECT MAX(seq) AS seq FROM (SELECT seq FROM head UNION ALL SELECT MAX(seq) AS seq FROM events)",
            vec![],
        )?;
        let head = heads.first().and_then(|h| h.seq).unwrap_or(0);
        let keep_from = self.ring.oldest(head).unwrap_or(1);
        self.write(
            "INSERT OR REPLACE INTO ring (slot, seq, event, data, key, ms)
             SELECT e.seq % ?, e.seq, e.event, e.data, i.key, e.published_ms
             FROM events e LEFT JOIN idempotency i ON i.seq = e.seq WHERE e.seq >= ?",
            vec![int(self.ring.size()), int(keep_from)],
        )?;
        self.write(
            "INSERT OR REPLACE INTO state (event, seq, data, ms) SELECT event, seq, data, published_ms FROM latest",
            vec![],
        )?;
        self.set_meta("head", &head)?;
        self.set_meta("ring_size", &self.ring.size())?;
        for table in ["events", "latest", "idempotency", "head"] {
            self.write(&format!("DROP TABLE IF EXISTS {table}"), vec![])?;
        }
        Ok(())
    }
}
