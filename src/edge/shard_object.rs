//! The Shard Durable Object: serves a share of a busy channel's streams (see
//! `edgestream_core::protocol::channel::shard`). It holds their hibernatable
//! sockets and fans each push from the channel out to them exactly as the
//! channel does to its own; it writes nothing. What a newly attached stream
//! must see first (the current state, or where live delivery starts) it
//! learns from the channel when it starts serving and keeps current from the
//! pushes, so a stream's attach is answered here without asking the channel.
//!
//! On a channel with presence the shard keeps each stream's subject on its
//! socket and reports the subjects of its streams to the channel whenever
//! they change (one report in flight at a time, the latest roster next).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use edgestream_core::channel::ChannelName;
use edgestream_core::config::Settings;
use edgestream_core::history::CurrentState;
use edgestream_core::presence::listable;
use edgestream_core::protocol::channel::presence::Present;
use edgestream_core::protocol::channel::shard::{ShardLoad, ShardRequest};
use edgestream_core::protocol::channel::{Kick, Kicked, ShardRoster, Subscribe};
use edgestream_core::relay::{self, RelayRecord, RelayWriter};
use edgestream_core::residency::Jurisdiction;
use edgestream_core::revocation::RevocationSet;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use super::channel_client::{ChannelClient, REVOKED};
use super::channel_object::{bad_request, close_handshake, KICKED};
use super::fanout::{self, delivery_tag};
use super::log;
use super::objects::Arrived;

#[durable_object]
pub struct ShardObject {
    shard: std::result::Result<Rc<Shard>, String>,
}

struct Shard {
    state: State,
    env: Env,
    channel: String,
    /// Where this object was made: it joins and reports to its channel
    /// there, and takes pushes only from there.
    jurisdiction: Option<Jurisdiction>,
    index: u32,
    max_event_bytes: usize,
    /// The channel has presence (its presence events are no state).
    presence: bool,
    memory: RefCell<Memory>,
}

#[derive(Default)]
struct Memory {
    /// Whether the channel pushes to this shard and what it told it holds.
    /// Lost when the object is evicted; it joins again before taking a stream.
    joined: bool,
    /// Streams whose subscribe waits on a join. The channel retires a shard
    /// that answers a push or a retire with no streams; a join in flight
    /// marks the shard joined when it completes, after such an answer, and
    /// the stream would then be served by a shard the channel no longer
    /// pushes to. So these count as streams in those answers.
    joining: u64,
    head: u64,
    state: Option<KnownState>,
    revocations: RevocationSet,
    /// Streams per subject, rebuilt from the sockets when first needed.
    roster: Option<BTreeMap<String, u64>>,
    reporting: bool,
    /// The roster changed while a report was in flight.
    report_again: bool,
}

/// The channel's current state as this shard keeps it.
struct KnownState {
    bounds: CurrentState,
    events: BTreeMap<String, (u64, String)>,
}

impl KnownState {
    fn new(max_event_bytes: usize, presence: bool) -> Self {
        KnownState {
            bounds: CurrentState::new(max_event_bytes).with_presence(presence),
            events: BTreeMap::new(),
        }
    }

    fn apply(&mut self, seq: u64, event: &str, data: &str) {
        for forgotten in self.bounds.publish(event, seq, data.len()) {
            self.events.remove(&forgotten.event);
        }
        // Presence events are no state on a channel with presence.
        if self.bounds.is_latest(event, seq) {
            self.events.insert(event.to_owned(), (seq, data.to_owned()));
        }
    }

    /// Takes what `newer` knows of a type where it is newer than this.
    fn merge(&mut self, newer: KnownState) {
        let mut events: Vec<(String, (u64, String))> = newer.events.into_iter().collect();
        events.sort_by_key(|(_, (seq, _))| *seq);
        for (event, (seq, data)) in events {
            if self.events.get(&event).is_none_or(|(held, _)| *held < seq) {
                self.apply(seq, &event, &data);
            }
        }
    }

    fn write(&self, writer: &mut RelayWriter) {
        for latest in self.bounds.latest() {
            if let Some((seq, data)) = self.events.get(&latest.event) {
                writer.event(*seq, &latest.event, data);
            }
        }
    }
}

impl DurableObject for ShardObject {
    fn new(state: State, env: Env) -> Self {
        let shard = Shard::open(state, env)
            .map(Rc::new)
            .inspect_err(|reason| log::error("shard object cannot start", reason));
        ShardObject { shard }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(shard) = &self.shard else {
            return Response::error("misconfigured", 503);
        };
        let arrived = Arrived::read(&mut req).await?;
        match ShardRequest::parse(&arrived.incoming()) {
            Ok(request) => shard.handle(request).await,
            Err(error) => bad_request(&error),
        }
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _msg: WebSocketIncomingMessage,
    ) -> Result<()> {
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        close_handshake(&ws, code);
        if let Ok(shard) = &self.shard {
            shard.closed(&ws)?;
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let _ = ws.close(Some(1011), Some("error"));
        if let Ok(shard) = &self.shard {
            shard.closed(&ws)?;
        }
        Ok(())
    }
}

impl Shard {
    fn open(state: State, env: Env) -> std::result::Result<Self, String> {
        let settings = Settings::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
            .map_err(|e| e.to_string())?;
        let name = state.id().name().ok_or("the object has no name")?;
        let (channel, index) = name.rsplit_once('#').ok_or("not a shard name")?;
        let index = index.parse().map_err(|_| "not a shard number")?;
        let presence = ChannelName::parse(channel).is_ok_and(|c| settings.has_presence(&c));
        Ok(Shard {
            channel: channel.to_owned(),
            jurisdiction: super::objects::own_jurisdiction(&state)?,
            index,
            max_event_bytes: settings.max_event_bytes,
            presence,
            state,
            env,
            memory: RefCell::default(),
        })
    }

    async fn handle(self: &Rc<Self>, request: ShardRequest<'_>) -> Result<Response> {
        match request {
            ShardRequest::Subscribe(subscribe) => self.subscribe(&subscribe).await,
            ShardRequest::Push(push) if !push.belongs(self.jurisdiction, &self.channel) => {
                log::error(
                    "push refused",
                    "a push came from another jurisdiction or for another channel",
                );
                Response::error("push for another place", 409)
            }
            ShardRequest::Push(push) => {
                self.apply(push.relay);
                fanout::send_relay(&self.state, push.channel, push.relay);
                self.placement_load()
            }
            ShardRequest::Kick(kick) => self.kick(&kick),
            ShardRequest::Retire => {
                // Joins again before it takes another stream.
                self.memory.borrow_mut().joined = false;
                self.placement_load()
            }
            ShardRequest::Stats => self.load(),
            ShardRequest::Presence => Response::ok(self.roster().to_json()),
            ShardRequest::Reset => super::objects::abort(&self.state),
        }
    }

    /// The subjects of this shard's streams.
    fn roster(&self) -> ShardRoster {
        let mut memory = self.memory.borrow_mut();
        let roster = self.loaded_roster(&mut memory);
        ShardRoster {
            shard: self.index,
            subjects: roster
                .iter()
                .map(|(subject, streams)| Present {
                    subject: subject.clone(),
                    streams: *streams,
                })
                .collect(),
        }
    }

    fn loaded_roster<'m>(&self, memory: &'m mut Memory) -> &'m mut BTreeMap<String, u64> {
        memory.roster.get_or_insert_with(|| {
            let mut roster = BTreeMap::new();
            for ws in self.state.get_websockets() {
                if let Ok(Some(subject)) = ws.deserialize_attachment::<String>() {
                    *roster.entry(subject).or_insert(0) += 1;
                }
            }
            roster
        })
    }

    /// A stream's socket closed: the channel hears of the streams left.
    fn closed(self: &Rc<Self>, ws: &WebSocket) -> Result<()> {
        let Some(subject) = ws.deserialize_attachment::<String>().ok().flatten() else {
            return Ok(());
        };
        ws.serialize_attachment(serde_json::Value::Null)?;
        let remaining = super::objects::sockets_with(&self.state, &subject);
        {
            let mut memory = self.memory.borrow_mut();
            let roster = self.loaded_roster(&mut memory);
            if remaining == 0 {
                roster.remove(&subject);
            } else {
                roster.insert(subject, remaining);
            }
        }
        self.report();
        Ok(())
    }

    /// Sends the roster to the channel, after the report in flight if any.
    fn report(self: &Rc<Self>) {
        {
            let mut memory = self.memory.borrow_mut();
            if memory.reporting {
                memory.report_again = true;
                return;
            }
            memory.reporting = true;
        }
        let shard = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                shard.memory.borrow_mut().report_again = false;
                let roster = shard.roster();
                let reported =
                    match ChannelClient::channel(&shard.env, shard.jurisdiction, &shard.channel) {
                        Ok(client) => client.report_roster(&roster).await,
                        Err(problem) => Err(problem),
                    };
                if let Err(problem) = reported {
                    log::error("presence report failed", &problem.detail);
                }
                let mut memory = shard.memory.borrow_mut();
                if !memory.report_again {
                    memory.reporting = false;
                    return;
                }
            }
        });
    }

    /// Keeps the head and the current state current from a push.
    fn apply(&self, relay: &str) {
        let mut memory = self.memory.borrow_mut();
        for record in relay::records(relay) {
            if let Ok(RelayRecord::Event { seq, event, data }) = record {
                memory.head = memory.head.max(seq);
                if let Some(state) = memory.state.as_mut() {
                    state.apply(seq, event, data);
                }
            }
        }
    }

    async fn subscribe(self: &Rc<Self>, subscribe: &Subscribe) -> Result<Response> {
        // A cursor ahead of the head means this shard fell behind its channel
        // (pushes failed, or the channel restarted without counting it among
        // its shards): it joins again, which brings the head up and puts it
        // back on the channel's push list, before a cursor counts as unusable.
        let behind = {
            let memory = self.memory.borrow();
            !memory.joined || subscribe.after.is_some_and(|after| after > memory.head)
        };
        if behind {
            self.memory.borrow_mut().joining += 1;
            let joined = self.join().await;
            self.memory.borrow_mut().joining -= 1;
            joined?;
            if self.presence {
                // The channel may have forgotten this shard's streams, or
                // never heard of those that survived an eviction.
                self.report();
            }
        }
        let response = self.accept(subscribe)?;
        Ok(response)
    }

    fn accept(self: &Rc<Self>, subscribe: &Subscribe) -> Result<Response> {
        let now = worker::Date::now().as_millis();
        let mut memory = self.memory.borrow_mut();
        if memory.revocations.revokes(&subscribe.tags, now) {
            return Ok(Response::empty()?.with_status(REVOKED));
        }
        let subject = listable(subscribe.subject.as_deref()).filter(|_| self.presence);
        if subject.is_some() {
            // Counted before the new socket, which is added below.
            self.loaded_roster(&mut memory);
        }
        let pair = WebSocketPair::new()?;
        let mut tags: Vec<&str> = vec![delivery_tag(subscribe.delivery)];
        tags.extend(subscribe.tags.iter().map(String::as_str));
        self.state.accept_websocket_with_tags(&pair.server, &tags);
        if let Some(subject) = subject {
            pair.server.serialize_attachment(subject)?;
            *self
                .loaded_roster(&mut memory)
                .entry(subject.to_owned())
                .or_insert(0) += 1;
        }
        let mut writer = RelayWriter::default();
        // A stream that resumes pages its gap in from the channel's history,
        // which also decides whether that gap can still be filled; only a
        // cursor ahead of the channel is known here to be unusable.
        let state = match subscribe.after {
            None => true,
            Some(after) if after > memory.head => {
                writer.reset(memory.head);
                true
            }
            Some(_) => false,
        };
        if state {
            if let Some(state) = &memory.state {
                state.write(&mut writer);
            }
        }
        writer.live(memory.head);
        for message in writer.into_messages() {
            pair.server.send_with_str(&message)?;
        }
        drop(memory);
        if subject.is_some() {
            self.report();
        }
        Response::from_websocket(pair.client)
    }

    /// Tells the channel this shard serves streams again and learns what they
    /// must see first. Pushes that arrive meanwhile are kept: the head only
    /// moves forward, and the state keeps the newer event of each type.
    async fn join(&self) -> Result<()> {
        {
            // Pushes that arrive while the channel answers are kept here.
            let mut memory = self.memory.borrow_mut();
            if memory.state.is_none() {
                memory.state = Some(KnownState::new(self.max_event_bytes, self.presence));
            }
        }
        let client = ChannelClient::channel(&self.env, self.jurisdiction, &self.channel)
            .map_err(|p| worker::Error::RustError(p.detail))?;
        let joined = client
            .join(self.index)
            .await
            .map_err(|p| worker::Error::RustError(p.detail))?;
        let now = worker::Date::now().as_millis();
        let mut memory = self.memory.borrow_mut();
        let mut state = KnownState::new(self.max_event_bytes, self.presence);
        for record in relay::records(&joined.state) {
            if let Ok(RelayRecord::Event { seq, event, data }) = record {
                state.apply(seq, event, data);
            }
        }
        if let Some(newer) = memory.state.take() {
            state.merge(newer);
        }
        memory.state = Some(state);
        memory.head = memory.head.max(joined.head);
        for revocation in joined.revocations {
            let _ = memory.revocations.insert(revocation, now);
        }
        memory.joined = true;
        Ok(())
    }

    fn kick(&self, kick: &Kick) -> Result<Response> {
        let now = worker::Date::now().as_millis();
        if let Some(revocation) = kick.revocation() {
            let _ = self.memory.borrow_mut().revocations.insert(revocation, now);
        }
        let sockets = match &kick.tag {
            Some(tag) => self.state.get_websockets_with_tag(tag),
            None => self.state.get_websockets(),
        };
        for socket in &sockets {
            let _ = socket.close(Some(KICKED), Some("kicked"));
        }
        Response::ok(
            Kicked {
                closed: sockets.len() as u64,
            }
            .to_json(),
        )
    }

    /// The streams this shard serves, for stats.
    fn load(&self) -> Result<Response> {
        Self::answer(self.state.get_websockets().len() as u64)
    }

    /// The streams this shard serves or is about to, for the answers the
    /// channel decides to retire it on.
    fn placement_load(&self) -> Result<Response> {
        let joining = self.memory.borrow().joining;
        Self::answer(self.state.get_websockets().len() as u64 + joining)
    }

    fn answer(streams: u64) -> Result<Response> {
        Response::ok(ShardLoad { streams }.to_json())
    }
}
