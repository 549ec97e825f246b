//! A typed client for a channel's object and its shards: the Worker, the
//! tenant's object and a channel's shards all call channels through it, with
//! the requests of `edgestream_core::protocol::channel`.

use edgestream_core::message::PublishEvent;
use edgestream_core::problem::Problem;
use edgestream_core::protocol::channel::shard::{
    retire_call, shard_name, stats_call, Push, ShardLoad,
};
use edgestream_core::protocol::channel::{
    hub, presence, publish, reset, stats, subscribe, Admit, ChannelStats, History, HubJoin,
    HubJoined, HubSubscribe, Join, Joined, Kick, Kicked, PresenceList, Published, ShardRoster,
    Subscribe, ToShard,
};
use edgestream_core::protocol::Call;
use edgestream_core::residency::Jurisdiction;
use worker::{Env, ObjectNamespace, Response, Stub, WebSocket};

use super::objects::{self, text};

/// The namespaces of channel and shard objects.
pub const CHANNELS: &str = "CHANNELS";
pub const SHARDS: &str = "SHARDS";

/// What a subscribe got.
pub enum Attached {
    Socket(WebSocket),
    /// The channel sends the stream to this shard.
    Shard(u32),
}

pub struct ChannelClient {
    stub: Stub,
}

impl ChannelClient {
    /// The object of `channel`, whose tenant's data lives in `jurisdiction`.
    pub fn channel(
        env: &Env,
        jurisdiction: Option<Jurisdiction>,
        channel: &str,
    ) -> Result<Self, Problem> {
        Self::named(&namespace(env, CHANNELS)?, jurisdiction, channel)
    }

    /// A shard of `channel`: always in the channel's own jurisdiction.
    pub fn shard(
        env: &Env,
        jurisdiction: Option<Jurisdiction>,
        channel: &str,
        shard: u32,
    ) -> Result<Self, Problem> {
        Self::named(
            &namespace(env, SHARDS)?,
            jurisdiction,
            &shard_name(channel, shard),
        )
    }

    fn named(
        namespace: &ObjectNamespace,
        jurisdiction: Option<Jurisdiction>,
        name: &str,
    ) -> Result<Self, Problem> {
        Ok(ChannelClient {
            stub: objects::stub(namespace, jurisdiction, name)?,
        })
    }

    pub async fn subscribe(&self, subscribe: &Subscribe) -> Result<Attached, Problem> {
        let response = objects::send(&self.stub, &subscribe.call()).await?;
        if response.status_code() == 101 {
            return response
                .websocket()
                .map(Attached::Socket)
                .ok_or_else(|| Problem::overloaded("the channel did not take the stream"));
        }
        let response = ok(response, subscribe::PATH)?;
        let redirect = ToShard::parse(text(response).await?.as_bytes()).map_err(protocol)?;
        Ok(Attached::Shard(redirect.shard))
    }

    /// Attaches the socket of this isolate's hub of the channel.
    pub async fn hub(&self, subscribe: &HubSubscribe) -> Result<WebSocket, Problem> {
        let response = objects::send(&self.stub, &subscribe.call()).await?;
        if response.status_code() != 101 {
            ok(response, hub::PATH)?;
            return Err(Problem::overloaded("the channel did not take the hub"));
        }
        response
            .websocket()
            .ok_or_else(|| Problem::overloaded("the channel did not take the hub"))
    }

    /// Streams join their isolate's hub, each as its query
    /// ([`HubJoin::call_of`]): for each, in order, what it must see before
    /// any live event (relay text), or none if it is revoked.
    pub async fn hub_join(
        &self,
        hub: u64,
        joiners: &[String],
    ) -> Result<Vec<Option<String>>, Problem> {
        let answer = text(self.ok(&HubJoin::call_of(hub, joiners)).await?).await?;
        HubJoined::parse(answer.as_bytes(), joiners.len())
            .map(HubJoined::into_answers)
            .map_err(protocol)
    }

    pub async fn history(&self, after: u64) -> Result<String, Problem> {
        text(self.ok(&History { after }.call()).await?).await
    }

    pub async fn publish(
        &self,
        channel: &str,
        tags: &[String],
        events: &[&PublishEvent],
    ) -> Result<Published, Problem> {
        self.json(&publish::call(channel, tags, events)).await
    }

    pub async fn kick(&self, kick: &Kick) -> Result<Kicked, Problem> {
        let answer = text(self.ok(&kick.call()).await?).await?;
        Kicked::parse(answer.as_bytes()).map_err(protocol)
    }

    pub async fn admit(&self, tags: Vec<String>) -> Result<(), Problem> {
        self.ok(&Admit { tags }.call()).await.map(drop)
    }

    pub async fn stats(&self) -> Result<ChannelStats, Problem> {
        let answer = text(self.ok(&stats::call()).await?).await?;
        ChannelStats::parse(answer.as_bytes()).map_err(protocol)
    }

    pub async fn presence(&self) -> Result<PresenceList, Problem> {
        let answer = text(self.ok(&presence::call()).await?).await?;
        PresenceList::parse(answer.as_bytes()).map_err(protocol)
    }

    /// Tells the channel the subjects of a shard's streams.
    pub async fn report_roster(&self, roster: &ShardRoster) -> Result<(), Problem> {
        self.ok(&roster.call()).await.map(drop)
    }

    /// Asks a shard for the subjects of its streams.
    pub async fn shard_roster(&self) -> Result<ShardRoster, Problem> {
        let answer = text(self.ok(&presence::shard_call()).await?).await?;
        ShardRoster::parse(answer.as_bytes()).map_err(protocol)
    }

    pub async fn join(&self, shard: u32) -> Result<Joined, Problem> {
        let answer = text(self.ok(&Join { shard }.call()).await?).await?;
        Joined::parse(answer.as_bytes()).map_err(protocol)
    }

    /// Sends a publish to a shard, naming the jurisdiction of the channel's
    /// object that sends it.
    pub async fn push(
        &self,
        jurisdiction: Option<Jurisdiction>,
        channel: &str,
        relay: &str,
    ) -> Result<ShardLoad, Problem> {
        self.load(&Push::call(jurisdiction, channel, relay)).await
    }

    /// Resets the object (and a channel's shards). The object aborts while
    /// it answers, so the call's failure is its expected outcome.
    pub async fn reset(&self) {
        drop(objects::send(&self.stub, &reset::call()).await);
    }

    pub async fn retire(&self) -> Result<ShardLoad, Problem> {
        self.load(&retire_call()).await
    }

    pub async fn shard_stats(&self) -> Result<ShardLoad, Problem> {
        self.load(&stats_call()).await
    }

    async fn load(&self, call: &Call) -> Result<ShardLoad, Problem> {
        let answer = text(self.ok(call).await?).await?;
        ShardLoad::parse(answer.as_bytes()).map_err(protocol)
    }

    async fn json(&self, call: &Call) -> Result<Published, Problem> {
        let answer = text(self.ok(call).await?).await?;
        serde_json::from_str(&answer).map_err(|e| protocol(e.to_string()))
    }

    /// Sends `call` and maps the object's refusals to problems.
    async fn ok(&self, call: &Call) -> Result<Response, Problem> {
        ok(objects::send(&self.stub, call).await?, call.path)
    }
}

/// The status of an object's answer to a call by a revoked user or token.
pub const REVOKED: u16 = 403;

fn ok(response: Response, path: &str) -> Result<Response, Problem> {
    match response.status_code() {
        200 | 204 => Ok(response),
        REVOKED => Err(Problem::revoked()),
        status => {
            super::log::error("object refused a call", &format!("{path} {status}"));
            Err(Problem::overloaded("the relay is busy; retry shortly"))
        }
    }
}

fn namespace(env: &Env, binding: &str) -> Result<ObjectNamespace, Problem> {
    env.durable_object(binding).map_err(super::http::internal)
}

fn protocol(error: impl ToString) -> Problem {
    super::log::error("bad answer from an object", &error.to_string());
    Problem::overloaded("the relay is busy; retry shortly")
}
