//! `GET /v1/channels/{channel}`: what is going on in a channel, for a
//! credential of its tenant or a platform one: open streams (over all its
//! shards), the latest id and when it was published, and how many events
//! history holds for resume.

use edgestream_core::authority::Authority;
use edgestream_core::channel::channel_in_path;
use edgestream_core::problem::Problem;
use edgestream_core::time::rfc3339;
use worker::{Env, Request, Response};

use super::auth::{self, Sources};
use super::channel_client::ChannelClient;
use super::config::Config;
use super::http::{internal, json};

pub const PREFIX: &str = "/v1/channels/";

pub async fn stats(
    req: Request,
    env: &Env,
    config: &Config,
    path: &str,
) -> Result<Response, Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let (claims, _) = auth::authenticate(&req, &url, env, config, Sources::HeaderOnly, now)
        .await?
        .into_claims()?;
    let authority = Authority::of(&claims)?;
    let channel = channel_in_path(path.strip_prefix(PREFIX).unwrap_or_default())?;
    authority.admit(std::slice::from_ref(&channel))?;
    let stats = ChannelClient::channel(env, channel.as_str())?
        .stats()
        .await?;
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
