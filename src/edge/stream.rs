//! `GET /v1/stream`: authenticates, passes the tenant gate, attaches one
//! WebSocket per channel to the channels' Durable Objects (or their shards),
//! and returns the `text/event-stream` response that the pump (`pump.rs`)
//! then feeds.
//!
//! The Worker, not the Durable Object, holds the browser's response: the
//! objects then only hold hibernatable sockets and cost nothing while idle.
//! Opening a stream asks no per-tenant object: the channels themselves
//! refuse revoked users and tokens, and a stream quota is counted from the
//! isolate's leased block of slots (`quota.rs`).

use std::time::Duration;

use edgestream_core::authority::Authority;
use edgestream_core::channel::{authorize_tenant, requested_channels, ChannelName};
use edgestream_core::cursor::Cursor;
use edgestream_core::merge::Merge;
use edgestream_core::message::MAX_BATCH_EVENTS;
use edgestream_core::problem::Problem;
use edgestream_core::protocol::channel::{Delivery, Subscribe};
use edgestream_core::revocation::stream_tags;
use worker::{Env, Headers, Request, Response, WebSocket};

use super::attach::attach;
use super::auth::{self, Identity, Sources};
use super::body::Body;
use super::channel_client::ChannelClient;
use super::config::Config;
use super::http::internal;
use super::pump::{OpenStream, Pump};
use super::quota;
use super::tickets;
use super::usage::Usage;

pub async fn open(
    req: Request,
    env: &Env,
    config: &Config,
    usage: &Usage,
) -> Result<Response, Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let identity = auth::authenticate(&req, &url, env, config, Sources::HeaderOrQuery, now).await?;
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let names_channels = query.iter().any(|(k, _)| k == "channel" || k == "channels");
    let max_channels = config.settings.max_channels_per_stream;
    let requested = |query: &[(String, String)]| {
        requested_channels(
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            max_channels,
        )
    };
    let resume = resume_cursor(&req, &url)?;
    // Everything about the request is checked before a ticket is redeemed,
    // so a malformed request does not use it up.
    let (claims, channels, api_key) = match identity {
        Identity::Claims { claims, api_key } => (claims, requested(&query)?, api_key),
        Identity::Ticket(ticket) => {
            let requested = if names_channels {
                requested(&query)?
            } else {
                Vec::new()
            };
            let grant = tickets::redeem(env, &ticket).await?;
            let api_key = grant.api_key.clone();
            let (claims, channels) = grant.redeem(requested, now)?;
            (claims, channels, api_key)
        }
    };
    let authority = Authority::of(&claims)?;
    let tenant = authority.tenant()?;
    usage.acts_for(tenant);
    authorize_tenant(Some(tenant), &channels)?;
    let jurisdiction = config.placement(tenant, &claims)?;
    let slot = quota::admit_stream(env, &config.settings, jurisdiction, tenant).await?;
    let tags = stream_tags(claims.subject.as_deref(), claims.jti.as_deref());

    // With a cursor, a channel it does not name was never seen: everything in
    // its history is new to the client.
    let positions: Vec<Option<u64>> = channels
        .iter()
        .map(|channel| {
            resume
                .as_ref()
                .map(|c| c.get(channel.as_str()).unwrap_or(0))
        })
        .collect();
    let delivery = if channels.len() == 1 {
        Delivery::Frames
    } else {
        Delivery::Relay
    };
    // A stream of one channel joins its isolate's hub of that channel, when
    // hubs are on; presence counts streams by their sockets, so its channels
    // take none.
    let budget = config.settings.hub_dispatch_budget;
    let hub_join =
        (budget > 0 && channels.len() == 1 && !config.settings.has_presence(&channels[0]))
            .then_some(positions[0]);
    let sockets = if hub_join.is_some() {
        Vec::new()
    } else {
        let attached = futures_util::future::join_all(channels.iter().zip(&positions).map(
            |(channel, after)| {
                let subscribe = Subscribe {
                    after: *after,
                    delivery,
                    tags: tags.clone(),
                    subject: claims.subject.clone(),
                };
                async move { attach(env, jurisdiction, channel, &subscribe).await }
            },
        ))
        .await;
        all_attached(attached)?
    };
    let first_channel = channels[0].clone();

    let body = Body::open(config.settings.stream_body);
    let readable = body.readable();
    let names: Vec<&str> = channels.iter().map(ChannelName::as_str).collect();
    let merge = Merge::new(&names, &positions);
    let settings = &config.settings;
    let usage = usage.stream(
        tenant,
        channels.len(),
        Duration::from_secs(settings.usage_interval_seconds),
    );
    let mut pump = Pump::new(OpenStream {
        env: env.clone(),
        channels,
        jurisdiction,
        merge,
        tags,
        subject: claims.subject.clone(),
        body,
        signal: req.inner().signal(),
        expires_at: claims.expires_at,
        keepalive: Duration::from_secs(settings.keepalive_seconds),
        retry_ms: settings.retry_ms,
        // A whole publish batch of the largest events may arrive at once; a
        // client that reads keeps up with that, so only more is lagging.
        max_pending_bytes: MAX_BATCH_EVENTS * settings.max_event_bytes + (1 << 20),
        api_key,
        api_key_recheck: Duration::from_secs(settings.api_key_recheck_seconds),
        usage,
    });
    if let Some(after) = hub_join {
        pump.join_hub(budget);
        let joined = match ChannelClient::channel(env, jurisdiction, first_channel.as_str()) {
            Ok(client) => pump.hub_opening(&client, after).await,
            Err(problem) => Err(problem),
        };
        if let Err(problem) = joined.and_then(|text| pump.hub_joined(text)) {
            pump.abandon();
            return Err(problem);
        }
    }
    wasm_bindgen_futures::spawn_local(quota::holding(slot, pump.run(sockets)));

    let headers = Headers::new();
    for (name, value) in [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache, no-transform"),
        ("X-Accel-Buffering", "no"),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .stream(readable))
}

/// Every channel's socket, or the first refusal (a revoked stream before an
/// overloaded channel) with the sockets that were accepted closed unread.
fn all_attached(attached: Vec<Result<WebSocket, Problem>>) -> Result<Vec<WebSocket>, Problem> {
    let refusal = attached
        .iter()
        .filter_map(|a| a.as_ref().err())
        .min_by_key(|problem| problem.code != "revoked")
        .cloned();
    match refusal {
        None => Ok(attached.into_iter().flatten().collect()),
        Some(problem) => {
            for socket in attached.into_iter().flatten() {
                let _ = socket.accept();
                let _ = socket.close(Some(1000), Some("not admitted"));
            }
            Err(problem)
        }
    }
}

/// The resume point: the `Last-Event-ID` header wins over `?lastEventId=`.
fn resume_cursor(req: &Request, url: &worker::Url) -> Result<Option<Cursor>, Problem> {
    let header = req.headers().get("Last-Event-ID").ok().flatten();
    let query = || {
        url.query_pairs()
            .find(|(k, _)| k == "lastEventId")
            .map(|(_, v)| v.into_owned())
    };
    match header.or_else(query) {
        Some(id) if !id.is_empty() => Cursor::parse(&id).map(Some).map_err(Problem::from),
        _ => Ok(None),
    }
}
