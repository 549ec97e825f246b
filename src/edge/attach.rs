//! Attaching a stream to one of its channels: the channel's object takes the
//! socket, or names the shard that will.

use edgestream_core::channel::ChannelName;
use edgestream_core::problem::Problem;
use edgestream_core::protocol::channel::Subscribe;
use edgestream_core::residency::Jurisdiction;
use worker::{Env, WebSocket};

use super::channel_client::{Attached, ChannelClient};

pub async fn attach(
    env: &Env,
    jurisdiction: Option<Jurisdiction>,
    channel: &ChannelName,
    subscribe: &Subscribe,
) -> Result<WebSocket, Problem> {
    match ChannelClient::channel(env, jurisdiction, channel.as_str())?
        .subscribe(subscribe)
        .await?
    {
        Attached::Socket(socket) => Ok(socket),
        Attached::Shard(shard) => {
            match ChannelClient::shard(env, jurisdiction, channel.as_str(), shard)?
                .subscribe(subscribe)
                .await?
            {
                Attached::Socket(socket) => Ok(socket),
                // A shard never sends a stream on.
                Attached::Shard(_) => Err(Problem::overloaded(
                    "the channel's shard did not take the stream",
                )),
            }
        }
    }
}
