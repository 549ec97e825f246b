//! `POST /v1/publish`: a publisher's events, validated, grouped per channel
//! and handed to each channel's Durable Object, which assigns the ids.

use edgestream_core::channel::{authorize_tenant, ChannelName};
use edgestream_core::message::{
    parse_publish_body, PublishEvent, PublishResponse, PublishResult, MAX_BATCH_EVENTS,
};
use edgestream_core::problem::Problem;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use worker::{Env, Request, Url};

use super::auth;
use super::channel_client;
use super::channel_object::ChannelPublished;
use super::config::Config;
use super::http::{internal, json};

const PUBLISH_SCOPE: &str = "events:publish";
/// A Worker invocation may have six connections open at once.
const PARALLEL_CHANNELS: usize = 6;

pub async fn handle(mut req: Request, env: &Env, config: &Config) -> Result<worker::Response, Problem> {
    let url: Url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let claims = auth::require_scope(&req, &url, env, config, PUBLISH_SCOPE, now).await?;
    let content_type = req.headers().get("Content-Type").ok().flatten().unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("application/json") {
        return Err(Problem::unsupported_media_type());
    }
    // Refuse an oversized body before reading it. JSON framing around each
    // event is small next to MAX_EVENT_BYTES, so twice the data budget is ample.
    let max_event_bytes = config.settings.max_event_bytes;
    let body_limit = MAX_BATCH_EVENTS * max_event_bytes * 2;
    let declared = req.headers().get("Content-Length").ok().flatten();
    if declared.and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n > body_limit) {
        return Err(Problem::event_too_large(max_event_bytes));
    }
    let body = req.bytes().await.map_err(internal)?;
    if body.len() > body_limit {
        return Err(Problem::event_too_large(max_event_bytes));
    }
    let events = parse_publish_body(&body, max_event_bytes)?;
    if claims.tenant.is_some() {
        let channels: Vec<ChannelName> = events.iter().map(|e| e.channel.clone()).collect();
        authorize_tenant(claims.tenant.as_deref(), &channels)?;
    }

    let namespace = env.durable_object("CHANNELS").map_err(internal)?;
    let groups = group_by_channel(&events);
    let published: Vec<(Vec<usize>, ChannelPublished)> = stream::iter(groups)
        .map(|(channel, indices)| {
            let namespace = &namespace;
            let events = &events;
            async move {
                let batch: Vec<&PublishEvent> = indices.iter().map(|&i| &events[i]).collect();
                let answer = channel_client::publish(namespace, channel, &batch).await?;
                Ok::<_, Problem>((indices, answer))
            }
        })
        .buffered(PARALLEL_CHANNELS)
        .try_collect()
        .await?;

    let mut results: Vec<Option<PublishResult>> = vec![None; events.len()];
    for (indices, answer) in published {
        if answer.results.len() != indices.len() {
            return Err(Problem::internal("a channel answered a different number of events"));
        }
        for (i, result) in indices.into_iter().zip(answer.results) {
            results[i] = Some(PublishResult {
                channel: events[i].channel.to_string(),
                id: result.id,
                duplicate: result.duplicate,
            });
        }
    }
    let results = results.into_iter().flatten().collect();
    json(202, &PublishResponse { results })
}

/// Groups event indices by channel, channels in order of first appearance and
/// events in publish order within each channel (ids are per channel, so this
/// keeps every channel's order exactly as published).
fn group_by_channel(events: &[PublishEvent]) -> Vec<(&ChannelName, Vec<usize>)> {
    let mut groups: Vec<(&ChannelName, Vec<usize>)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match groups.iter_mut().find(|(channel, _)| **channel == event.channel) {
            Some((_, indices)) => indices.push(i),
            None => groups.push((&event.channel, vec![i])),
        }
    }
    groups
}
