//! `POST /v1/publish`: a publisher's events, validated whole, grouped per
//! channel and handed to each channel's Durable Object, which assigns ids.
//!
//! A batch is all or nothing from the publisher's view: every event is
//! checked (names, tenant, sizes) before any channel is written, so only an
//! object that cannot be reached can fail part of a batch, and then the
//! answer is 503 `overloaded` and the publisher retries the batch; events
//! with idempotency keys (the bridge and the Python package always send
//! them) are stored once however often that happens.

use edgestream_core::authority::{Authority, PUBLISH_SCOPE};
use edgestream_core::channel::ChannelName;
use edgestream_core::message::{
    parse_publish_body, PublishEvent, PublishResponse, PublishResult, MAX_BATCH_EVENTS,
};
use edgestream_core::presence;
use edgestream_core::problem::Problem;
use edgestream_core::protocol::channel::Published;
use edgestream_core::revocation::stream_tags;
use edgestream_core::usage::Metric;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use worker::{Env, Request, Url};

use super::auth;
use super::channel_client::ChannelClient;
use super::config::Config;
use super::http::{internal, json, read_body, require_json};
use super::quota;
use super::usage::Usage;

/// A Worker invocation may have six connections open at once.
const PARALLEL_CHANNELS: usize = 6;

pub async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    usage: &Usage,
) -> Result<worker::Response, Problem> {
    let url: Url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let claims = auth::require_scope(&req, &url, env, config, PUBLISH_SCOPE, now).await?;
    let authority = Authority::of(&claims)?;
    if let Authority::Tenant(tenant) = &authority {
        usage.acts_for(tenant);
    }
    require_json(&req)?;
    // JSON framing around each event is small next to MAX_EVENT_BYTES, so
    // twice the data budget of a full batch is ample.
    let max_event_bytes = config.settings.max_event_bytes;
    let body = read_body(
        &req,
        MAX_BATCH_EVENTS * max_event_bytes * 2,
        Problem::body_too_large,
    )
    .await?;
    let events = parse_publish_body(&body, max_event_bytes)?;
    let channels: Vec<ChannelName> = events.iter().map(|e| e.channel.clone()).collect();
    authority.admit(&channels)?;
    for event in &events {
        presence::check_publish(&config.settings, &event.channel, &event.event)?;
    }
    // Every channel's place is decided before any is written: a platform
    // credential's batch may span tenants, and a refusal must leave none of
    // it stored.
    let groups = group_by_channel(&events)
        .into_iter()
        .map(|(channel, indices)| {
            let jurisdiction = config.placement(channel.tenant(), &claims)?;
            Ok((channel, jurisdiction, indices))
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    // Counted only once the batch is known to be valid, and before any
    // channel is written, so a refused batch stores nothing.
    let mut tenants: Vec<&str> = channels.iter().map(ChannelName::tenant).collect();
    tenants.sort_unstable();
    tenants.dedup();
    quota::admit_publish(env, &config.settings, &tenants).await?;
    let tags = stream_tags(claims.subject.as_deref(), claims.jti.as_deref());

    let published: Vec<(Vec<usize>, Published)> = stream::iter(groups.into_iter().enumerate())
        .map(|(group, (channel, jurisdiction, indices))| {
            let (events, tags) = (&events, &tags);
            async move {
                let batch: Vec<&PublishEvent> = indices.iter().map(|&i| &events[i]).collect();
                let answer = ChannelClient::channel(env, jurisdiction, channel.as_str())?
                    .publish(channel.as_str(), tags, &batch)
                    .await?;
                // Written as each channel answers: a channel that stored its
                // events is counted even if another one of the batch failed.
                let outcomes = batch.iter().zip(&answer.results);
                let stored =
                    outcomes.map(|(event, result)| (event.data.as_str(), result.duplicate));
                usage.write(&Metric::published(channel, stored, group == 0), None);
                Ok::<_, Problem>((indices, answer))
            }
        })
        .buffered(PARALLEL_CHANNELS)
        .try_collect()
        .await?;

    let mut results: Vec<Option<PublishResult>> = vec![None; events.len()];
    for (indices, answer) in published {
        if answer.results.len() != indices.len() {
            return Err(Problem::internal(
                "a channel answered a different number of events",
            ));
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
        match groups
            .iter_mut()
            .find(|(channel, _)| **channel == event.channel)
        {
            Some((_, indices)) => indices.push(i),
            None => groups.push((&event.channel, vec![i])),
        }
    }
    groups
}
