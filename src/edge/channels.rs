//! `GET /v1/channels/{channel}`: what is going on in a channel, for a
//! credential of its tenant or a platform one: open streams (over all its
//! shards), the latest id and when it was published, and how many events
//! history holds for resume. `GET /v1/channels/{channel}/presence`: the
//! subjects with streams open on it, for a channel with presence.

use edgestream_core::authority::Authority;
use edgestream_core::channel::{channel_in_path, ChannelName};
use edgestream_core::problem::Problem;
use edgestream_core::time::rfc3339;
use worker::{Env, Request, Response};

use super::auth::{self, Sources};
use super::channel_client::ChannelClient;
use super::config::Config;
use super::http::{internal, json};
use super::usage::Usage;

pub const PREFIX: &str = "/v1/channels/";
const PRESENCE_SUFFIX: &str = "/presence";

pub async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    usage: &Usage,
    path: &str,
) -> Result<Response, Problem> {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    // A channel name has no '/', so the suffix cannot be part of one.
    match rest.strip_suffix(PRESENCE_SUFFIX) {
        Some(encoded) => presence(req, env, config, usage, encoded).await,
        None => stats(req, env, config, usage, rest).await,
    }
}

/// Authenticates the request, checks that its credential may see the
/// channel named (percent-encoded) by `encoded`, and reaches that channel in
/// its tenant's jurisdiction.
async fn admitted(
    req: &Request,
    env: &Env,
    config: &Config,
    usage: &Usage,
    encoded: &str,
) -> Result<(ChannelName, ChannelClient), Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let (claims, _) = auth::authenticate(req, &url, env, config, Sources::HeaderOnly, now)
        .await?
        .into_claims()?;
    let authority = Authority::of(&claims)?;
    if let Authority::Tenant(tenant) = &authority {
        usage.acts_for(tenant);
    }
    let channel = channel_in_path(encoded)?;
    authority.admit(std::slice::from_ref(&channel))?;
    let jurisdiction = config.placement(channel.tenant(), &claims)?;
    ChannelClient::channel(env, jurisdiction, channel.as_str()).map(|client| (channel, client))
}

async fn stats(
    req: Request,
    env: &Env,
    config: &Config,
    usage: &Usage,
    encoded: &str,
) -> Result<Response, Problem> {
    let (channel, client) = admitted(&req, env, config, usage, encoded).await?;
    let stats = client.stats().await?;
    json(
        200,
        &serde_json::json!({
            "channel": channel.as_str(),
            "streams": stats.streams,
            "last_id": stats.last_id,
            "last_event_at": stats.last_event_ms.map(rfc3339),
            "history": stats.history,
        }),
    )
}

async fn presence(
    req: Request,
    env: &Env,
    config: &Config,
    usage: &Usage,
    encoded: &str,
) -> Result<Response, Problem> {
    let (channel, client) = admitted(&req, env, config, usage, encoded).await?;
    if !config.settings.has_presence(&channel) {
        return Err(Problem::presence_disabled(channel.prefix()));
    }
    let list = client.presence().await?;
    json(
        200,
        &serde_json::json!({
            "channel": channel.as_str(),
            "subjects": list.subjects,
            "truncated": list.truncated,
            "anonymous": list.anonymous,
        }),
    )
}
