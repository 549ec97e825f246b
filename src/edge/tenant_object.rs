//! The Tenant Durable Object: one per tenant. It admits new streams (refusing
//! revoked users and tokens), remembers which channels the tenant's streams
//! attach to, and carries out kicks by asking each of those channels' objects
//! to close the matching sockets.

use std::cell::Cell;

use edgestream_core::revocation::stream_tags;
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, SqlStorage, State,
};

use super::sql::{int, text};

/// How long a channel stays on the tenant's list after its last attach: a
/// stream longer-lived than this is missed by a kick, so it is generous.
const CHANNEL_MEMORY_MS: u64 = 7 * 86_400_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS revocations (tag TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS channels (name TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL);
";

/// `POST /admit`: a stream about to attach.
#[derive(Serialize, Deserialize)]
pub struct Admission {
    pub subject: Option<String>,
    pub jti: Option<String>,
    pub channels: Vec<String>,
}

/// `POST /kick`: whose streams to end, and until when to refuse them.
#[derive(Serialize, Deserialize)]
pub struct KickOrder {
    /// The socket tag to close; none closes every socket of the tenant's channels.
    pub tag: Option<String>,
    pub until_ms: u64,
}

#[durable_object]
pub struct TenantObject {
    state: State,
    sql: SqlStorage,
    env: Env,
    alarm_set: Cell<bool>,
}

impl DurableObject for TenantObject {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let _ = sql.exec(SCHEMA, None);
        Self { state, sql, env, alarm_set: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let now = worker::Date::now().as_millis();
        match req.path().as_str() {
            "/admit" => {
                let admission: Admission = req.json().await?;
                if self.revoked(&admission, now)? {
                    return Ok(Response::empty()?.with_status(403));
                }
                // Rewritten at most hourly per channel: rows written are billed,
                // and a kick only needs to know the channel was in use lately.
                for channel in &admission.channels {
                    self.sql.exec(
                        "INSERT INTO channels (name, seen_ms) VALUES (?, ?)
                         ON CONFLICT (name) DO UPDATE SET seen_ms = excluded.seen_ms
                         WHERE seen_ms < excluded.seen_ms - 3600000",
                        vec![text(channel), int(now)],
                    )?;
                }
                self.ensure_alarm().await?;
                Ok(Response::empty()?.with_status(204))
            }
            "/kick" => {
                let order: KickOrder = req.json().await?;
                if let Some(tag) = &order.tag {
                    self.sql.exec(
                        "INSERT OR REPLACE INTO revocations (tag, until_ms) VALUES (?, MAX(?, COALESCE((SELECT until_ms FROM revocations WHERE tag = ?), 0)))",
                        vec![text(tag), int(order.until_ms), text(tag)],
                    )?;
                    self.ensure_alarm().await?;
                }
                let closed = self.kick_channels(order.tag.as_deref(), now).await?;
                Response::from_json(&serde_json::json!({ "closed": closed }))
            }
            _ => Ok(Response::empty()?.with_status(404)),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_set.set(false);
        let now = worker::Date::now().as_millis();
        self.sql
            .exec("DELETE FROM revocations WHERE until_ms <= ?", vec![int(now)])?;
        self.sql.exec(
            "DELETE FROM channels WHERE seen_ms <= ?",
            vec![int(now.saturating_sub(CHANNEL_MEMORY_MS))],
        )?;
        #[derive(Deserialize)]
        struct Left {
            n: u64,
        }
        let left: Vec<Left> = self
            .sql
            .exec(
                "SELECT (SELECT COUNT(*) FROM revocations) + (SELECT COUNT(*) FROM channels) AS n",
                None,
            )?
            .to_array()?;
        if left.first().is_some_and(|l| l.n > 0) {
            self.ensure_alarm().await?;
        }
        Response::ok("")
    }
}

impl TenantObject {
    fn revoked(&self, admission: &Admission, now: u64) -> Result<bool> {
        for tag in stream_tags(admission.subject.as_deref(), admission.jti.as_deref()) {
            let hits: Vec<serde_json::Value> = self
                .sql
                .exec(
                    "SELECT 1 AS hit FROM revocations WHERE tag = ? AND until_ms > ?",
                    vec![text(&tag), int(now)],
                )?
                .to_array()?;
            if !hits.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Asks every channel the tenant's streams attached to recently to close
    /// the matching sockets; returns how many were closed.
    async fn kick_channels(&self, tag: Option<&str>, now: u64) -> Result<u64> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
        }
        let channels: Vec<Row> = self
            .sql
            .exec(
                "SELECT name FROM channels WHERE seen_ms > ?",
                vec![int(now.saturating_sub(CHANNEL_MEMORY_MS))],
            )?
            .to_array()?;
        let namespace = self.env.durable_object("CHANNELS")?;
        let body = serde_json::json!({ "tag": tag }).to_string();
        let mut closed = 0;
        for channel in channels {
            let stub = namespace.id_from_name(&channel.name)?.get_stub()?;
            let request = Request::new_with_init(
                "https://channel/kick",
                RequestInit::new()
                    .with_method(Method::Post)
                    .with_body(Some(body.clone().into())),
            )?;
            let mut response = stub.fetch_with_request(request).await?;
            #[derive(Deserialize)]
            struct Kicked {
                closed: u64,
            }
            closed += response.json::<Kicked>().await.map_or(0, |k| k.closed);
        }
        Ok(closed)
    }

    /// Schedules the hourly sweep; at most one alarm is pending at a time.
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

