//! Publishing: at a fixed rate, or as fast as the peer accepts.
//!
//! Each publisher keeps one request in flight, so its events are published
//! in order and the order a subscriber sees can be checked against it.
//! Usually each publisher owns a disjoint set of channels; when publishers
//! share channels (`many-publishers`), each numbers its own events, and only
//! each publisher's order is checked. Parallelism comes from several
//! publishers (one connection each), never from reordering one publisher.
//!
//! Batching: a publish operation carries up to `batch` events when the peer
//! can take several (edgestream's `{"events":[...]}` up to 100, the Django
//! view's list, pipelined Valkey `PUBLISH`es); nchan takes one message per
//! request. In rate mode, events that came due while a request was in flight
//! go out together in the next one; each event's timestamp is taken when its
//! request is built, so latency starts when the event leaves the publisher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde::Serialize;

use crate::http;
use crate::payload::{self, now_us};
use crate::peers::{Endpoint, Out, PublishReq, Via};
use crate::valkey;

/// Retries of one rejected publish (429/503) before the run gives up.
const MAX_RETRIES: u32 = 50;

pub struct Plan {
    pub channels: Arc<Vec<String>>,
    /// Indices into `channels` this publisher publishes to.
    pub owned: Vec<u32>,
    /// The publisher's index in its payloads (0 when channels are not shared).
    pub publisher: u32,
    /// Events this publisher sends to each of its channels.
    pub events_per_channel: u64,
    /// Events per second for this publisher; `None` is as fast as accepted.
    pub rate: Option<f64>,
    pub batch: usize,
    pub pad: Arc<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PubStats {
    pub events: u64,
    pub operations: u64,
    pub retries: u64,
    /// Seconds from the first send to the last acknowledgement.
    pub duration_s: f64,
    #[serde(skip)]
    pub first_send: Option<Instant>,
    #[serde(skip)]
    pub last_ack: Option<Instant>,
}

impl PubStats {
    pub fn merge(&mut self, other: &PubStats) {
        self.events += other.events;
        self.operations += other.operations;
        self.retries += other.retries;
        self.first_send = match (self.first_send, other.first_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ack = match (self.last_ack, other.last_ack) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let (Some(a), Some(b)) = (self.first_send, self.last_ack) {
            self.duration_s = (b - a).as_secs_f64();
        }
    }
}

/// A connection to wherever events go.
pub enum Conn {
    Http(http::Sender),
    Valkey(valkey::Publisher),
}

impl Conn {
    pub async fn open(ep: &Endpoint) -> Result<Conn, String> {
        match ep.via {
            Via::Http => Ok(Conn::Http(
                http::connect(ep.addr, Duration::from_secs(10))
                    .await
                    .map_err(|e| format!("publish connect: {e}"))?,
            )),
            Via::Valkey(addr) => Ok(Conn::Valkey(valkey::Publisher::connect(addr).await?)),
        }
    }

    /// Sends the events; returns the number of retries it took. `strict`:
    /// a Valkey message that reached no subscriber is an error (during
    /// warm-up it is expected while listeners attach).
    pub async fn send(
        &mut self,
        ep: &Endpoint,
        events: &[Out<'_>],
        strict: bool,
    ) -> Result<u64, String> {
        let mut retries = 0;
        for req in ep.publish_requests(events) {
            match (req, &mut *self) {
                (
                    PublishReq::Http {
                        path,
                        headers,
                        body,
                    },
                    Conn::Http(sender),
                ) => {
                    // A kept-alive connection the server closed while it was
                    // idle is replaced; nothing was sent on it, so this is safe.
                    if sender.is_closed() || sender.ready().await.is_err() {
                        *sender = http::connect(ep.addr, Duration::from_secs(10))
                            .await
                            .map_err(|e| {
                                format!("publish reconnect: {}", http::describe(e.as_ref()))
                            })?;
                    }
                    retries += send_http(sender, ep, &path, &headers, body).await?;
                }
                (PublishReq::Valkey(messages), Conn::Valkey(publisher)) => {
                    let least = publisher.publish_all(&messages).await?;
                    if least == 0 && strict {
                        return Err(
                            "a Valkey PUBLISH reached no subscriber (is the listener attached?)"
                                .to_owned(),
                        );
                    }
                }
                _ => return Err("publish request does not match the connection".to_owned()),
            }
        }
        Ok(retries)
    }
}

async fn send_http(
    sender: &mut http::Sender,
    ep: &Endpoint,
    path: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<u64, String> {
    for attempt in 0..=MAX_RETRIES {
        let (status, answer) =
            http::send(sender, Method::POST, ep.addr, path, headers, body.clone())
                .await
                .map_err(|e| format!("publish: {}", http::describe(e.as_ref())))?;
        if status.is_success() {
            return Ok(u64::from(attempt));
        }
        if status.as_u16() != 429 && status.as_u16() != 503 {
            return Err(format!(
                "publish answered {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            ));
        }
        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt + 1))).await;
    }
    Err(format!(
        "publish still rejected after {MAX_RETRIES} retries"
    ))
}

/// Publishes the plan's measured events.
pub async fn run(ep: Arc<Endpoint>, plan: Plan) -> Result<PubStats, String> {
    let mut conn = Conn::open(&ep).await?;
    let batch = ep.max_batch(plan.batch);
    let per_channel = plan.events_per_channel;
    let total = per_channel * plan.owned.len() as u64;
    // Event i is the (i / owned)-th event of channel owned[i % owned].
    let nth = |i: u64| {
        let channel = plan.owned[(i % plan.owned.len() as u64) as usize];
        (channel, i / plan.owned.len() as u64 + 1)
    };
    let mut stats = PubStats::default();
    let t0 = Instant::now();
    let mut next = 0u64;
    while next < total {
        let due = match plan.rate {
            Some(rate) => ((t0.elapsed().as_secs_f64() * rate) as u64 + 1).min(total),
            None => total,
        };
        if due <= next {
            let rate = plan.rate.unwrap_or(f64::INFINITY);
            let at = t0 + Duration::from_secs_f64(next as f64 / rate);
            tokio::time::sleep_until(at.into()).await;
            continue;
        }
        let end = due.min(next + batch as u64);
        let ts = now_us();
        let events: Vec<Out<'_>> = (next..end)
            .map(|i| {
                let (channel, seq) = nth(i);
                Out {
                    channel: &plan.channels[channel as usize],
                    event: payload::TICK,
                    data: payload::tick(channel, plan.publisher, seq, ts, &plan.pad),
                }
            })
            .collect();
        stats.first_send.get_or_insert_with(Instant::now);
        stats.retries += conn.send(&ep, &events, true).await?;
        stats.last_ack = Some(Instant::now());
        stats.operations += 1;
        stats.events += end - next;
        next = end;
    }
    if let (Some(a), Some(b)) = (stats.first_send, stats.last_ack) {
        stats.duration_s = (b - a).as_secs_f64();
    }
    Ok(stats)
}

/// Publishes one warm-up event to every channel.
pub async fn warmup(
    ep: &Endpoint,
    conn: &mut Conn,
    channels: &[String],
    round: u64,
    batch: usize,
) -> Result<(), String> {
    let batch = ep.max_batch(batch);
    let events: Vec<Out<'_>> = channels
        .iter()
        .enumerate()
        .map(|(i, c)| Out {
            channel: c,
            event: payload::WARMUP,
            data: payload::warmup(i as u32, round),
        })
        .collect();
    for chunk in events.chunks(batch) {
        conn.send(ep, chunk, false).await?;
    }
    Ok(())
}
