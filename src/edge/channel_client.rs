//! The Worker's side of the Channel Durable Object's internal protocol: attach
//! a stream, page history, publish a batch. The object's side is in
//! `channel_object.rs`; both travel as requests to the object's stub, which
//! only the Worker can reach.

use edgestream_core::channel::ChannelName;
use edgestream_core::message::PublishEvent;
use edgestream_core::problem::Problem;
use serde_json::value::RawValue;
use worker::{Headers, ObjectNamespace, Request, RequestInit, WebSocket};

use super::channel_object::{ChannelEvent, ChannelPublish, ChannelPublished};
use super::http::internal;
use super::objects;

/// How a stream wants its live events.
#[derive(Clone, Copy)]
pub enum Delivery {
    /// Pre-rendered SSE frames (`edgestream_core::frames`): a stream of one
    /// channel, whose event ids are the channel's own.
    Frames,
    /// Relay records (`edgestream_core::relay`): a stream of several channels
    /// builds ids that name all of them.
    Relay,
}

/// Opens a hibernatable WebSocket to the channel's object. `after` is the last
/// sequence number the client saw; `None` asks for the current state. `tags`
/// (hex-based, URL-safe) mark the socket so a kick can find it.
pub async fn attach(
    namespace: &ObjectNamespace,
    channel: &ChannelName,
    after: Option<u64>,
    delivery: Delivery,
    tags: &[String],
) -> Result<WebSocket, Problem> {
    let mut url = match delivery {
        Delivery::Frames => "https://channel/subscribe?frames&",
        Delivery::Relay => "https://channel/subscribe?",
    }
    .to_owned();
    if let Some(after) = after {
        url.push_str(&format!("after={after}&"));
    }
    for tag in tags {
        url.push_str(&format!("tag={tag}&"));
    }
    let headers = Headers::new();
    headers.set("Upgrade", "websocket").map_err(internal)?;
    let request =
        Request::new_with_init(&url, RequestInit::new().with_headers(headers)).map_err(internal)?;
    let response = objects::stub_in(namespace, channel.as_str())?
        .fetch_with_request(request)
        .await
        .map_err(internal)?;
    response
        .websocket()
        .ok_or_else(|| Problem::unavailable("the channel did not accept the stream"))
}

/// One page of history after `after`, as a relay message.
pub async fn history_page(namespace: &ObjectNamespace, channel: &str, after: u64) -> Result<String, Problem> {
    let url = format!("https://channel/history?after={after}");
    let response = objects::stub_in(namespace, channel)?
        .fetch_with_str(&url)
        .await
        .map_err(internal)?;
    if response.status_code() != 200 {
        return Err(Problem::unavailable("the channel could not read its history"));
    }
    objects::text(response).await
}

/// Hands a batch of one channel's events to its object, which assigns ids.
pub async fn publish(
    namespace: &ObjectNamespace,
    channel: &ChannelName,
    events: &[&PublishEvent],
) -> Result<ChannelPublished, Problem> {
    let mut batch = ChannelPublish {
        channel: channel.as_str(),
        events: Vec::with_capacity(events.len()),
    };
    for event in events {
        let data: &RawValue = serde_json::from_str(&event.data)
            .map_err(|_| Problem::internal("event data is not JSON"))?;
        batch.events.push(ChannelEvent {
            event: &event.event,
            data,
            idempotency_key: event.idempotency_key.as_deref(),
        });
    }
    let stub = objects::stub_in(namespace, channel.as_str())?;
    let response = objects::post(&stub, "https://channel/publish", &batch).await?;
    if response.status_code() != 200 {
        return Err(Problem::unavailable("the channel could not store the events"));
    }
    objects::json(response).await
}
