//! The Channel Durable Object: one per channel name. It owns the channel's
//! sequence counter, bounded history, latest event per type and idempotency
//! keys (all in SQLite storage, so they survive restarts and deploys), and fans
//! events out to the streams attached to it.
//!
//! Streams attach as WebSockets accepted through the hibernation API: between
//! events the object holds no request in flight, so it can hibernate while its
//! subscribers stay connected (the Worker, which bills CPU rather than wall
//! time, holds the browsers' SSE responses).
//!
//! Storage calls are synchronous, so everything an attach or a publish does
//! runs without yielding: a publish can never interleave with a replay, which
//! is what makes resume gap-free and duplicate-free.

use std::cell::Cell;

use edgestream_core::config::Settings;
use edgestream_core::frames::FramesWriter;
use edgestream_core::history::{self, Attach};
use edgestream_core::relay::{self, RelayWriter};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use wasm_bindgen::JsCast;
use js_sys::Uint8Array;

use super::sql::{int, text};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

/// Internal request from the Worker: a batch of validated events for this channel.
#[derive(Serialize, Deserialize)]
pub struct ChannelPublish<'a> {
    /// The object's own name: event ids of pre-rendered frames carry it.
    pub channel: &'a str,
    #[serde(borrow)]
    pub events: Vec<ChannelEvent<'a>>,
}

#[derive(Serialize, Deserialize)]
pub struct ChannelEvent<'a> {
    pub event: &'a str,
    /// Compact JSON text, carried without re-encoding it as a string.
    #[serde(borrow)]
    pub data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<&'a str>,
}

/// The object's answer: one result per event, in order.
#[derive(Serialize, Deserialize)]
pub struct ChannelPublished {
    pub results: Vec<Published>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
pub struct Published {
    pub id: u64,
    pub duplicate: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY, event TEXT NOT NULL, data TEXT NOT NULL, published_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latest (
  event TEXT PRIMARY KEY, seq INTEGER NOT NULL, data TEXT NOT NULL, published_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
  key TEXT PRIMARY KEY, seq INTEGER NOT NULL, published_ms INTEGER NOT NULL);
";

/// The close code of a socket ended by a kick; the stream tells its client.
pub const KICKED: u16 = 4001;

/// Socket tags for how a stream takes live events (see `Delivery`).
const FRAMES_TAG: &str = "frames";
const RELAY_TAG: &str = "relay";

#[durable_object]
pub struct ChannelObject {
    state: State,
    sql: SqlStorage,
    settings: Option<Settings>,
    /// Cached `head.seq`; only this object writes it, so the cache stays true
    /// for the object's lifetime.
    head: Cell<Option<u64>>,
    alarm_set: Cell<bool>,
}

impl DurableObject for ChannelObject {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(SCHEMA, None) {
            log_error("schema", &e.to_string());
        }
        let settings = Settings::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
            .map_err(|e| log_error("configuration", &e.to_string()))
            .ok();
        Self {
            state,
            sql,
            settings,
            head: Cell::new(None),
            alarm_set: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Some(settings) = &self.settings else {
            return Response::error("misconfigured", 503);
        };
        let url = req.url()?;
        match url.path() {
            "/subscribe" => {
                let mut cursor = None;
                let mut tags = vec![RELAY_TAG.to_owned()];
                for (name, value) in url.query_pairs() {
                    match &*name {
                        "after" => cursor = value.parse::<u64>().ok(),
                        "frames" => FRAMES_TAG.clone_into(&mut tags[0]),
                        "tag" => tags.push(value.into_owned()),
                        _ => {}
                    }
                }
                self.attach(cursor, &tags)
            }
            "/kick" => {
                #[derive(Deserialize)]
                struct Kick {
                    tag: Option<String>,
                }
                let kick: Kick = req.json().await?;
                let sockets = match &kick.tag {
                    Some(tag) => self.state.get_websockets_with_tag(tag),
                    None => self.state.get_websockets(),
                };
                for socket in &sockets {
                    let _ = socket.close(Some(KICKED), Some("kicked"));
                }
                Response::from_json(&serde_json::json!({ "closed": sockets.len() }))
            }
            "/publish" => {
                let body = req.bytes().await?;
                let batch: ChannelPublish = serde_json::from_slice(&body)
                    .map_err(|e| worker::Error::RustError(format!("bad publish batch: {e}")))?;
                let results = self.publish(&batch, settings)?;
                self.ensure_alarm().await?;
                Response::from_json(&ChannelPublished { results })
            }
            "/history" => {
                let after = url
                    .query_pairs()
                    .find(|(k, _)| k == "after")
                    .and_then(|(_, v)| v.parse::<u64>().ok())
                    .unwrap_or(0);
                Response::ok(self.history_page(after)?)
            }
            "/stats" => Response::from_json(&serde_json::json!({
                "subscribers": self.state.get_websockets().len(),
                "storage_bytes": self.sql.database_size(),
                "head": self.head()?,
                "oldest": self.oldest()?,
            })),
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_set.set(false);
        if let Some(settings) = &self.settings {
            let cutoff = history::expiry_cutoff_ms(now_ms(), settings.history_ttl_seconds);
            // Expiry may take the newest event with it: the head is kept first.
            self.sql.exec(
                "INSERT OR REPLACE INTO head (id, seq) VALUES (1, ?)",
                vec![int(self.head()?)],
            )?;
            self.sql
                .exec("DELETE FROM events WHERE published_ms < ?", vec![int(cutoff)])?;
            for table in ["latest", "idempotency"] {
                self.sql.exec(
                    &format!("DELETE FROM {table} WHERE published_ms < ?"),
                    vec![int(cutoff)],
                )?;
            }
            // Keep sweeping while anything is left to expire.
            let remaining: Vec<Count> = self
                .sql
                .exec("SELECT COUNT(*) AS n FROM idempotency", None)?
                .to_array()?;
            let events_left = self.oldest()?.is_some();
            if events_left || remaining.first().is_some_and(|c| c.n > 0) {
                self.ensure_alarm().await?;
            }
        }
        Response::ok("")
    }

    async fn websocket_message(&self, _ws: WebSocket, _msg: WebSocketIncomingMessage) -> Result<()> {
        // Streams only listen; nothing they send means anything.
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _clean: bool) -> Result<()> {
        // Complete the closing handshake so the runtime releases the socket.
        let code = u16::try_from(code).ok().filter(|c| *c == 1000 || (3000..5000).contains(c));
        let _ = ws.close(code.or(Some(1000)), Some("closed"));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let _ = ws.close(Some(1011), Some("error"));
        Ok(())
    }
}

impl ChannelObject {
    /// Accepts a stream's WebSocket and, before any publish can run, queues
    /// what the stream must see first. A stream with a usable cursor gets
    /// only `live <head>` and pages the gap in from history itself, at the
    /// pace its client reads; otherwise it gets the current state (after a
    /// `reset` when its cursor was unusable).
    fn attach(&self, cursor: Option<u64>, tags: &[String]) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.state.accept_websocket_with_tags(&pair.server, &tags);
        let head = self.head()?;
        let mut writer = RelayWriter::default();
        match history::attach(cursor, head, self.oldest()?) {
            Attach::Replay { .. } => {}
            Attach::CurrentState => self.write_current_state(&mut writer)?,
            Attach::Reset => {
                writer.reset(head);
                self.write_current_state(&mut writer)?;
            }
        }
        writer.live(head);
        for message in writer.into_messages() {
            pair.server.send_with_str(&message)?;
        }
        Response::from_websocket(pair.client)
    }

    /// One page of history after `after`: at least one event when there is
    /// one, then more until the page reaches a relay message's size. If the
    /// events after `after` are no longer all in history, the page is a
    /// `reset` with the current state instead.
    fn history_page(&self, after: u64) -> Result<String> {
        let head = self.head()?;
        let mut writer = RelayWriter::default();
        match history::attach(Some(after), head, self.oldest()?) {
            Attach::Replay { after } => {
                let rows = self.sql.exec(
                    "SELECT seq, event, data FROM events WHERE seq > ? ORDER BY seq",
                    vec![int(after)],
                )?;
                for row in rows.next::<EventRow>() {
                    let row = row?;
                    writer.event(row.seq, &row.event, &row.data);
                    if writer.len() >= relay::MESSAGE_BYTES {
                        break;
                    }
                }
            }
            Attach::CurrentState | Attach::Reset => {
                writer.reset(head);
                self.write_current_state(&mut writer)?;
            }
        }
        Ok(writer.into_messages().join("\n"))
    }

    fn write_current_state(&self, writer: &mut RelayWriter) -> Result<()> {
        let rows = self
            .sql
            .exec("SELECT seq, event, data FROM latest ORDER BY seq", None)?;
        for row in rows.next::<EventRow>() {
            let row = row?;
            writer.event(row.seq, &row.event, &row.data);
        }
        Ok(())
    }

    /// Assigns sequence numbers, stores the events and fans them out in one
    /// message per attached stream, rendered once for all streams that take
    /// the same form.
    fn publish(&self, batch: &ChannelPublish, settings: &Settings) -> Result<Vec<Published>> {
        let now = now_ms();
        let mut head = self.head()?;
        let mut results = Vec::with_capacity(batch.events.len());
        // Each form is rendered only when a socket takes it.
        let relay_sockets = self.state.get_websockets_with_tag(RELAY_TAG);
        let frames_sockets = self.state.get_websockets_with_tag(FRAMES_TAG);
        let mut relay = (!relay_sockets.is_empty()).then(RelayWriter::default);
        let mut frames = (!frames_sockets.is_empty()).then(|| FramesWriter::new(batch.channel));
        for event in &batch.events {
            if let Some(key) = event.idempotency_key {
                let seen: Vec<SeqRow> = self
                    .sql
                    .exec("SELECT seq FROM idempotency WHERE key = ?", vec![text(key)])?
                    .to_array()?;
                if let Some(row) = seen.first() {
                    results.push(Published { id: row.seq, duplicate: true });
                    continue;
                }
            }
            head += 1;
            let data = event.data.get();
            self.sql.exec(
                "INSERT INTO events (seq, event, data, published_ms) VALUES (?, ?, ?, ?)",
                vec![int(head), text(event.event), text(data), int(now)],
            )?;
            self.sql.exec(
                "INSERT OR REPLACE INTO latest (event, seq, data, published_ms) VALUES (?, ?, ?, ?)",
                vec![text(event.event), int(head), text(data), int(now)],
            )?;
            if let Some(key) = event.idempotency_key {
                self.sql.exec(
                    "INSERT INTO idempotency (key, seq, published_ms) VALUES (?, ?, ?)",
                    vec![text(key), int(head), int(now)],
                )?;
            }
            if let Some(relay) = &mut relay {
                relay.event(head, event.event, data);
            }
            if let Some(frames) = &mut frames {
                frames.event(head, event.event, data);
            }
            results.push(Published { id: head, duplicate: false });
        }
        self.head.set(Some(head));
        if let Some(through) = history::trim_through(head, settings.history_size as u64) {
            self.sql
                .exec("DELETE FROM events WHERE seq <= ?", vec![int(through)])?;
        }
        if let Some(relay) = relay {
            fan_out(&relay_sockets, relay.into_messages().iter().map(|m| JsValue::from_str(m)));
        }
        if let Some(frames) = frames {
            fan_out(&frames_sockets, frames.into_messages().iter().map(|m| Uint8Array::from(&m[..]).into()));
        }
        Ok(results)
    }

    /// The channel's latest sequence number: the newest event in history, or
    /// the `head` row for when history has expired. Publishes do not write
    /// that row (a row written per publish is billed, and trimming always
    /// keeps the newest event); the alarm writes it before expiring events.
    fn head(&self) -> Result<u64> {
        if let Some(head) = self.head.get() {
            return Ok(head);
        }
        let rows: Vec<SeqRow> = self
            .sql
            .exec(
                "SELECT COALESCE(MAX(seq), 0) AS seq FROM (SELECT seq FROM head WHERE id = 1 UNION ALL SELECT MAX(seq) AS seq FROM events)",
                None,
            )?
            .to_array()?;
        let head = rows.first().map_or(0, |r| r.seq);
        self.head.set(Some(head));
        Ok(head)
    }

    fn oldest(&self) -> Result<Option<u64>> {
        let rows: Vec<SeqRow> = self
            .sql
            .exec("SELECT seq FROM events ORDER BY seq LIMIT 1", None)?
            .to_array()?;
        Ok(rows.first().map(|r| r.seq))
    }

    /// Schedules the TTL sweep; at most one alarm is pending at a time.
    async fn ensure_alarm(&self) -> Result<()> {
        if self.alarm_set.get() {
            return Ok(());
        }
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            let ttl_ms = self.settings.as_ref().map_or(86_400, |s| s.history_ttl_seconds) * 1000;
            storage.set_alarm(ttl_ms as i64).await?;
        }
        self.alarm_set.set(true);
        Ok(())
    }
}

#[derive(Deserialize)]
struct EventRow {
    seq: u64,
    event: String,
    data: String,
}

#[derive(Deserialize)]
struct SeqRow {
    seq: u64,
}

#[derive(Deserialize)]
struct Count {
    n: u64,
}

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen only for `send` with a value that is already a
    /// JavaScript string or byte array (web-sys's `send_with_str` converts on
    /// every call).
    type Socket;
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send(this: &Socket, data: &JsValue) -> std::result::Result<(), JsValue>;
}

/// Sends every message to every socket. Each message is one JavaScript value
/// for all of them: converted from wasm memory once, not once per subscriber.
fn fan_out(sockets: &[WebSocket], messages: impl Iterator<Item = JsValue>) {
    let messages: Vec<JsValue> = messages.collect();
    for ws in sockets {
        let socket: &web_sys::WebSocket = ws.as_ref();
        for message in &messages {
            // A socket that fails here is closing; its close handler cleans up.
            let _ = socket.unchecked_ref::<Socket>().send(message);
        }
    }
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

fn log_error(msg: &str, error: &str) {
    worker::console_error!(
        "{}",
        serde_json::json!({"level": "error", "msg": msg, "error": error})
    );
}
