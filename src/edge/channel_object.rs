//! The Channel Durable Object: one per channel name, the channel's only
//! writer. It numbers events, keeps the bounded history and the current
//! state (`channel_store.rs`), checks the tenant's revocations, and fans
//! events out to the streams attached to it and to its shards.
//!
//! Streams attach as WebSockets accepted through the hibernation API: between
//! events the object holds no request in flight, so it can hibernate while
//! its subscribers stay connected (the Worker, which bills CPU rather than
//! wall time, holds the browsers' SSE responses).
//!
//! Storage calls are synchronous, so what an attach or a publish does between
//! awaits runs as one step: a publish never interleaves with an attach's
//! reading of the head and the state. Fan-out is not part of that step: a
//! publish is stored and answered, and its events go out on the next turn of
//! the event loop together with those of every publish that arrived in the
//! meantime, one message per socket however many publishers there are.
//!
//! On a channel with presence (`edgestream_core::presence`) the object
//! counts each stream under its subject, keeps the count's seat on the
//! socket (it outlives hibernation) and the announced subjects in storage,
//! and publishes `presence.*` events like any other. A subject's grace
//! period shares the object's one alarm with the TTL sweep.
//!
//! Kicks and revocations reach the channel from its tenant's object, which
//! the channel registers with before it serves its first stream or publish
//! (and again daily); opening a stream never goes through the tenant.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use edgestream_core::channel::ChannelName;
use edgestream_core::config::{RequestLog, Settings};
use edgestream_core::history::{self, Attach, CurrentState};
use edgestream_core::presence::{Presence, Seat, Transition};
use edgestream_core::problem::Problem;
use edgestream_core::protocol::channel::{
    ChannelRequest, ChannelStats, Delivery, HubJoin, HubMessage, HubSeat, HubSubscribe, Joined,
    Kick, Kicked, Outcome, Publish, Published, ShardRoster, Subscribe, ToShard,
};
use edgestream_core::protocol::ProtocolError;
use edgestream_core::relay::RelayWriter;
use edgestream_core::residency::Jurisdiction;
use edgestream_core::revocation::RevocationSet;
use edgestream_core::shards::{Place, Placement};
use futures_channel::oneshot;
use futures_util::StreamExt;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use super::channel_client::{ChannelClient, REVOKED};
use super::channel_hubs::{self, Hubs};
use super::channel_store::Store;
use super::fanout::{self, delivery_tag, Pending, HUB_TAG};
use super::log;
use super::objects::Arrived;
use super::tenant_client::TenantClient;

/// The close code of a socket ended by a kick; the stream tells its client.
pub const KICKED: u16 = 4001;

/// How long a registration with the tenant's object holds: the tenant
/// forgets channels it has not heard from in a week.
const REGISTRATION_MS: u64 = 86_400_000;
/// Shard pushes in flight at once (a Durable Object has six connections).
const PARALLEL_SHARDS: usize = 6;

#[durable_object]
pub struct ChannelObject {
    channel: std::result::Result<Rc<Channel>, String>,
}

pub struct Channel {
    state: State,
    env: Env,
    name: ChannelName,
    /// Where this object was made: its shards and its tenant's object are
    /// addressed there, whatever the configuration says now.
    jurisdiction: Option<Jurisdiction>,
    settings: Settings,
    store: Store,
    memory: RefCell<Memory>,
    registration: RefCell<Registration>,
    outbox: RefCell<Outbox>,
    links: RefCell<BTreeMap<u32, Link>>,
    hubs: RefCell<Hubs>,
}

struct Memory {
    head: u64,
    /// When the newest event was published; 0 before the first.
    newest_ms: u64,
    /// Loaded when first needed: a publish into a full ring, or a stream
    /// that wants the current state.
    state: Option<CurrentState>,
    /// Idempotency key → sequence number, loaded at the first keyed publish.
    keys: Option<HashMap<String, u64>>,
    revocations: RevocationSet,
    registered_ms: u64,
    placement: Placement,
    alarm_set: bool,
    /// Only on a channel with presence.
    presence: Option<Presence>,
}

enum Registration {
    Needed,
    /// Requests waiting for the registration under way.
    InFlight(Vec<oneshot::Sender<bool>>),
    Done,
}

#[derive(Default)]
struct Outbox {
    events: Vec<Pending>,
    scheduled: bool,
}

/// A shard's pushes: one in flight at a time, so they arrive in order, and
/// what is published meanwhile goes out together in the next.
#[derive(Default)]
struct Link {
    in_flight: bool,
    pending: String,
}

impl DurableObject for ChannelObject {
    fn new(state: State, env: Env) -> Self {
        let channel = Channel::open(state, env)
            .map(Rc::new)
            .inspect_err(|reason| log::error("channel object cannot start", reason));
        if let Ok(channel) = &channel {
            // Subjects whose streams did not survive a restart leave unless
            // the streams re-attach; nothing else may wake the object for it.
            // Those on shards are asked for before the grace period ends.
            if channel.presence_deadline().is_some() {
                let channel = channel.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    channel.ask_shards().await;
                    if let Err(e) = channel.ensure_presence_alarm().await {
                        log::error("presence alarm not set", &e.to_string());
                    }
                });
            }
        }
        ChannelObject { channel }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(channel) = &self.channel else {
            return Response::error("misconfigured", 503);
        };
        let arrived = Arrived::read(&mut req).await?;
        match ChannelRequest::parse(&arrived.incoming()) {
            Ok(request) => channel.handle(request).await,
            Err(error) => bad_request(&error),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Ok(channel) = &self.channel {
            channel.presence_due()?;
            channel.expire().await?;
            channel.ensure_presence_alarm().await?;
        }
        Response::ok("")
    }

    async fn websocket_message(&self, ws: WebSocket, msg: WebSocketIncomingMessage) -> Result<()> {
        // Streams only listen; a hub reports how many streams it serves, and
        // the socket keeps the count (it outlives hibernation), and answers
        // what the object asked every hub.
        let (WebSocketIncomingMessage::String(text), Ok(channel)) = (msg, &self.channel) else {
            return Ok(());
        };
        let mut hubs = channel.hubs.borrow_mut();
        match HubMessage::parse(&text) {
            Ok(HubMessage::Report(report)) => {
                if let Some(seat) = channel_hubs::seat(&ws) {
                    ws.serialize_attachment(HubSeat {
                        streams: report.streams,
                        ..seat
                    })?;
                }
            }
            Ok(HubMessage::Kicked(kicked)) => {
                hubs.answered(kicked.kicked, kicked.hub, kicked.closed)
            }
            Ok(HubMessage::Counted(counted)) => {
                hubs.answered(counted.counted, counted.hub, counted.streams)
            }
            Err(error) => log::error("bad hub message", &error.to_string()),
        }
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
        if let Ok(channel) = &self.channel {
            channel.closed(&ws).await?;
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let _ = ws.close(Some(1011), Some("error"));
        if let Ok(channel) = &self.channel {
            channel.closed(&ws).await?;
        }
        Ok(())
    }
}

/// Completes the closing handshake so the runtime releases the socket.
pub fn close_handshake(ws: &WebSocket, code: usize) {
    let code = u16::try_from(code)
        .ok()
        .filter(|c| *c == 1000 || (3000..5000).contains(c));
    let _ = ws.close(code.or(Some(1000)), Some("closed"));
}

pub fn bad_request(error: &ProtocolError) -> Result<Response> {
    log::error("internal request refused", &error.to_string());
    Response::error("bad internal request", 400)
}

impl Channel {
    fn open(state: State, env: Env) -> std::result::Result<Self, String> {
        let settings = Settings::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
            .map_err(|e| e.to_string())?;
        let store = Store::open(state.storage().sql(), settings.history_size as u64)
            .map_err(|e| e.to_string())?;
        let saved: Option<String> = store.meta("name").map_err(|e| e.to_string())?;
        // An object woken by its alarm gets no name from the runtime, so the
        // name a request gave it is saved for then (one write per object).
        let name = match (state.id().name(), saved) {
            (Some(name), saved) => {
                if saved.as_deref() != Some(name.as_str()) {
                    store.set_meta("name", &name).map_err(|e| e.to_string())?;
                }
                name
            }
            (None, Some(saved)) => saved,
            (None, None) => return Err("the object has no name".into()),
        };
        let name = ChannelName::parse(&name).map_err(|e| format!("not a channel: {e}"))?;
        let saved: Option<Jurisdiction> = store.meta("jurisdiction").map_err(|e| e.to_string())?;
        let reported = super::objects::own_jurisdiction(&state)?;
        let jurisdiction = Jurisdiction::settle(reported, saved)?;
        if jurisdiction != saved {
            store
                .set_meta("jurisdiction", &jurisdiction)
                .map_err(|e| e.to_string())?;
        }
        let head = store.head().map_err(|e| e.to_string())?;
        let newest_ms = store
            .published_ms(head)
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        let mut revocations = RevocationSet::default();
        let now = now_ms();
        for revocation in store.revocations().map_err(|e| e.to_string())? {
            // Held rows fit: they were inserted through the same bound.
            let _ = revocations.insert(revocation, now);
        }
        let registered_ms = store
            .meta("registered_ms")
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        let shards: Vec<u32> = store
            .meta("shards")
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let presence = if settings.has_presence(&name) {
            let seats = state
                .get_websockets()
                .iter()
                .filter_map(|ws| ws.deserialize_attachment::<Seat>().ok().flatten())
                .collect::<Vec<_>>();
            let rows = store.presence().map_err(|e| e.to_string())?;
            let (presence, transitions) = Presence::restore(rows, seats, now);
            for transition in &transitions {
                store
                    .set_presence(transition.subject(), transition.row())
                    .map_err(|e| e.to_string())?;
            }
            Some(presence)
        } else {
            None
        };
        let memory = Memory {
            head,
            newest_ms,
            state: None,
            keys: None,
            revocations,
            registered_ms,
            placement: Placement::new(settings.shard_subscribers, shards),
            alarm_set: false,
            presence,
        };
        let registration = if now < registered_ms + REGISTRATION_MS {
            Registration::Done
        } else {
            Registration::Needed
        };
        Ok(Channel {
            state,
            env,
            name,
            jurisdiction,
            settings,
            store,
            memory: RefCell::new(memory),
            registration: RefCell::new(registration),
            outbox: RefCell::default(),
            links: RefCell::default(),
            hubs: RefCell::default(),
        })
    }

    async fn handle(self: &Rc<Self>, request: ChannelRequest<'_>) -> Result<Response> {
        match request {
            ChannelRequest::Subscribe(subscribe) => self.subscribe(&subscribe).await,
            ChannelRequest::History(history) => Response::ok(self.history_page(history.after)?),
            ChannelRequest::Publish(publish) => self.publish(&publish).await,
            ChannelRequest::Kick(kick) => self.kick(&kick).await,
            ChannelRequest::Admit(admit) => {
                self.register().await?;
                if self
                    .memory
                    .borrow()
                    .revocations
                    .revokes(&admit.tags, now_ms())
                {
                    return Ok(Response::empty()?.with_status(REVOKED));
                }
                Ok(Response::empty()?.with_status(204))
            }
            ChannelRequest::Stats => self.stats().await,
            ChannelRequest::Presence => match &self.memory.borrow().presence {
                Some(presence) => Response::ok(presence.list().to_json()),
                None => Response::error("no presence on this channel", 404),
            },
            ChannelRequest::ShardRoster(roster) => {
                self.shard_roster(&roster)?;
                self.schedule_flush();
                self.ensure_alarm().await?;
                self.ensure_presence_alarm().await?;
                Ok(Response::empty()?.with_status(204))
            }
            ChannelRequest::Reset => self.reset().await,
            ChannelRequest::Join(join) => self.join(join.shard).await,
            ChannelRequest::Hub(hub) => {
                self.register().await?;
                let response = self.accept_hub(&hub)?;
                self.ensure_alarm().await?;
                Ok(response)
            }
            ChannelRequest::HubJoin(join) => {
                self.register().await?;
                self.hub_join(&join)
            }
        }
    }

    /// A shard's streams changed: its subjects count as it says.
    fn shard_roster(&self, roster: &ShardRoster) -> Result<()> {
        let now = now_ms();
        let mut memory = self.memory.borrow_mut();
        let Some(transitions) = memory
            .presence
            .as_mut()
            .map(|p| p.shard_roster(roster.shard, &roster.subjects, now))
        else {
            return Ok(());
        };
        for transition in &transitions {
            self.apply_presence(&mut memory, transition, now)?;
        }
        Ok(())
    }

    /// Asks every shard for the subjects of its streams (the channel
    /// restarted and knows only its own).
    async fn ask_shards(self: &Rc<Self>) {
        let shards: Vec<u32> = self.memory.borrow().placement.active().collect();
        for shard in shards {
            let roster = match self.shard(shard) {
                Ok(client) => client.shard_roster().await,
                Err(problem) => Err(problem),
            };
            let applied = match roster {
                Ok(roster) => self.shard_roster(&roster).map_err(|e| e.to_string()),
                Err(problem) => Err(problem.detail),
            };
            if let Err(reason) = applied {
                log::error("shard presence not read", &reason);
            }
        }
        self.schedule_flush();
    }

    /// Accepts a stream's WebSocket, or sends it to a shard. Before any
    /// publish can run, queues what the stream must see first: with a usable
    /// cursor only `live <head>` (the stream pages the gap in from history at
    /// its client's pace), otherwise the current state (after a `reset` when
    /// the cursor was unusable).
    async fn subscribe(self: &Rc<Self>, subscribe: &Subscribe) -> Result<Response> {
        self.register().await?;
        let response = self.accept(subscribe)?;
        self.schedule_flush();
        self.ensure_alarm().await?;
        Ok(response)
    }

    /// The part of a subscribe that runs as one step.
    fn accept(&self, subscribe: &Subscribe) -> Result<Response> {
        let now = now_ms();
        let mut memory = self.memory.borrow_mut();
        if memory.revocations.revokes(&subscribe.tags, now) {
            return Ok(Response::empty()?.with_status(REVOKED));
        }
        let own = self.state.get_websockets().len() as u64;
        if let Place::Shard(shard) = memory.placement.place(own) {
            return Response::ok(ToShard { shard }.to_json());
        }
        let pair = WebSocketPair::new()?;
        let mut tags: Vec<&str> = vec![delivery_tag(subscribe.delivery)];
        tags.extend(subscribe.tags.iter().map(String::as_str));
        self.state.accept_websocket_with_tags(&pair.server, &tags);
        let writer = self.opening(&mut memory, subscribe.after, now)?;
        for message in writer.into_messages() {
            pair.server.send_with_str(&message)?;
        }
        // After `live`: the stream sees its own subject join.
        let transition = match memory.presence.as_mut() {
            Some(presence) => {
                let (seat, transition) = presence.open(subscribe.subject.as_deref());
                pair.server.serialize_attachment(&seat)?;
                transition
            }
            None => None,
        };
        if let Some(transition) = transition {
            self.apply_presence(&mut memory, &transition, now)?;
        }
        Response::from_websocket(pair.client)
    }

    /// Accepts a hub's socket and, in the same step (before any later publish
    /// is flushed), sends it every event after the hub's position as frames:
    /// the replay and the live events after it reach the hub in order. When
    /// history no longer holds them, nothing is replayed; each stream of the
    /// hub sees the gap and pages its own way through it (to a `reset`).
    fn accept_hub(&self, hub: &HubSubscribe) -> Result<Response> {
        let now = now_ms();
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[delivery_tag(Delivery::Frames), HUB_TAG]);
        pair.server.serialize_attachment(HubSeat {
            hub: hub.hub,
            streams: hub.streams,
        })?;
        self.hubs.borrow_mut().attached(hub.hub);
        let head = self.memory.borrow().head;
        let oldest = self.store.oldest(head, self.cutoff(now))?;
        let mut replayed = 0;
        if let Attach::Replay { mut after } = history::attach(Some(hub.after), head, oldest) {
            while after < head {
                let mut writer = RelayWriter::default();
                self.store.page(after, head, &mut writer)?;
                let page = writer.into_messages().join("\n");
                match fanout::send_frames(&pair.server, self.name.as_str(), &page) {
                    Some(last) if last > after => {
                        replayed += last - after;
                        after = last;
                    }
                    _ => break,
                }
            }
        }
        log::info(
            "hub attached",
            serde_json::json!({ "streams": hub.streams, "replayed": replayed }),
        );
        Response::from_websocket(pair.client)
    }

    /// What each stream joining a hub must see before any live event, as
    /// [`Channel::accept`] queues it on a stream's own socket, or its
    /// refusal when it is revoked. Presence counts streams by their sockets,
    /// so its channels take no hub.
    fn hub_join(&self, join: &HubJoin) -> Result<Response> {
        let now = now_ms();
        let mut memory = self.memory.borrow_mut();
        if memory.presence.is_some() {
            return Response::error("a channel with presence takes no hub", 409);
        }
        let revoked: Vec<bool> = join
            .streams
            .iter()
            .map(|joiner| memory.revocations.revokes(&joiner.tags, now))
            .collect();
        let joined = join.answer(&revoked, |after| {
            self.opening(&mut memory, after, now)
                .map(|writer| writer.into_messages().join("\n"))
        })?;
        let admitted = joined.streams.iter().flatten().count() as u64;
        if admitted > 0 {
            self.hubs
                .borrow_mut()
                .joined(&self.state, join.hub, admitted, now);
        }
        if self.settings.request_log == RequestLog::All {
            let refused = join.streams.len() as u64 - admitted;
            log::info(
                "hub joined",
                serde_json::json!({ "streams": admitted, "refused": refused }),
            );
        }
        Response::ok(joined.to_text())
    }

    /// What a stream resuming after `after` (or opening without a cursor)
    /// sees before any live event, on its own socket or through a hub: the
    /// current state, or a reset and the state, and then `live <head>`.
    fn opening(&self, memory: &mut Memory, after: Option<u64>, now: u64) -> Result<RelayWriter> {
        let head = memory.head;
        let mut writer = RelayWriter::default();
        match history::attach(after, head, self.store.oldest(head, self.cutoff(now))?) {
            Attach::Replay { .. } => {}
            Attach::CurrentState => self.write_state(memory, &mut writer, now)?,
            Attach::Reset => {
                writer.reset(head);
                self.write_state(memory, &mut writer, now)?;
            }
        }
        writer.live(head);
        Ok(writer)
    }

    /// One page of history after `after`: at least one event when there is
    /// one, then more until the page reaches a relay message's size. If the
    /// events after `after` are no longer all held, a `reset` with the
    /// current state instead.
    fn history_page(&self, after: u64) -> Result<String> {
        let now = now_ms();
        let mut memory = self.memory.borrow_mut();
        let head = memory.head;
        let mut writer = RelayWriter::default();
        match history::attach(
            Some(after),
            head,
            self.store.oldest(head, self.cutoff(now))?,
        ) {
            Attach::Replay { after } => self.store.page(after, head, &mut writer)?,
            Attach::CurrentState | Attach::Reset => {
                writer.reset(head);
                self.write_state(&mut memory, &mut writer, now)?;
            }
        }
        Ok(writer.into_messages().join("\n"))
    }

    /// The current state's events, loading it first if need be.
    fn write_state(&self, memory: &mut Memory, writer: &mut RelayWriter, now: u64) -> Result<()> {
        let head = memory.head;
        let state = self.loaded_state(memory, now)?;
        for row in self.store.state_events(state, head)? {
            writer.event(row.seq, &row.event, &row.data);
        }
        Ok(())
    }

    fn loaded_state<'m>(&self, memory: &'m mut Memory, now: u64) -> Result<&'m CurrentState> {
        if memory.state.is_none() {
            let mut state = CurrentState::new(self.settings.max_event_bytes)
                .with_presence(memory.presence.is_some());
            for (event, seq, bytes) in self.store.latest_per_type(self.cutoff(now))? {
                for forgotten in state.publish(&event, seq, bytes) {
                    self.store.forget_state(&forgotten.event)?;
                }
            }
            memory.state = Some(state);
        }
        Ok(memory.state.as_ref().expect("loaded just now"))
    }

    /// Numbers, stores and answers a batch; its events go out with the next
    /// flush. Every event costs one row: its ring slot (see
    /// `edgestream_core::history`).
    async fn publish(self: &Rc<Self>, batch: &Publish<'_>) -> Result<Response> {
        self.register().await?;
        let Some(results) = self.store_batch(batch, now_ms())? else {
            return Ok(Response::empty()?.with_status(REVOKED));
        };
        self.schedule_flush();
        self.ensure_alarm().await?;
        Response::ok(
            serde_json::to_string(&Published { results })
                .map_err(|e| worker::Error::RustError(e.to_string()))?,
        )
    }

    /// Stores a batch and queues it for the next flush, without yielding;
    /// none if the publisher is revoked.
    fn store_batch(&self, batch: &Publish<'_>, now: u64) -> Result<Option<Vec<Outcome>>> {
        let cutoff = self.cutoff(now);
        let mut memory = self.memory.borrow_mut();
        if memory.revocations.revokes(&batch.publisher_tags, now) {
            return Ok(None);
        }
        if memory.keys.is_none() && batch.events.iter().any(|e| e.idempotency_key.is_some()) {
            memory.keys = Some(self.store.keys(cutoff)?);
        }
        let mut results = Vec::with_capacity(batch.events.len());
        let mut outbox = self.outbox.borrow_mut();
        for event in &batch.events {
            if let Some(key) = event.idempotency_key {
                if let Some(&seq) = memory.keys.as_ref().and_then(|keys| keys.get(key)) {
                    results.push(Outcome {
                        id: seq,
                        duplicate: true,
                    });
                    continue;
                }
            }
            let id = self.append(
                &mut memory,
                &mut outbox,
                event.event,
                event.data,
                event.idempotency_key,
                now,
            )?;
            results.push(Outcome {
                id,
                duplicate: false,
            });
        }
        Ok(Some(results))
    }

    /// Numbers and stores one event, and queues it for the next flush.
    fn append(
        &self,
        memory: &mut Memory,
        outbox: &mut Outbox,
        event: &str,
        data: &str,
        key: Option<&str>,
        now: u64,
    ) -> Result<u64> {
        let head = memory.head + 1;
        if let Some(old) = self.store.overwritten(head)? {
            if self
                .loaded_state(memory, now)?
                .is_latest(&old.event, old.seq)
            {
                self.store.keep_as_state(old.seq)?;
            }
            if let (Some(keys), Some(key)) = (memory.keys.as_mut(), &old.key) {
                keys.remove(key);
            }
        }
        self.store.write_event(head, event, data, key, now)?;
        if let Some(state) = memory.state.as_mut() {
            for forgotten in state.publish(event, head, data.len()) {
                self.store.forget_state(&forgotten.event)?;
            }
        }
        if let (Some(keys), Some(key)) = (memory.keys.as_mut(), key) {
            keys.insert(key.to_owned(), head);
        }
        outbox.events.push(Pending {
            seq: head,
            event: event.to_owned(),
            data: data.to_owned(),
        });
        memory.head = head;
        memory.newest_ms = now;
        Ok(head)
    }

    /// Flushes on the next turn of the event loop, if anything is queued and
    /// no flush is scheduled yet: what is appended meanwhile (publishes
    /// already queued behind this one) goes out in the same messages.
    fn schedule_flush(self: &Rc<Self>) {
        let mut outbox = self.outbox.borrow_mut();
        if outbox.events.is_empty() || std::mem::replace(&mut outbox.scheduled, true) {
            return;
        }
        drop(outbox);
        let channel = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            worker::Delay::from(Duration::ZERO).await;
            channel.flush();
        });
    }

    /// Records a presence transition and publishes its event, if it has one.
    fn apply_presence(&self, memory: &mut Memory, transition: &Transition, now: u64) -> Result<()> {
        self.store
            .set_presence(transition.subject(), transition.row())?;
        if let Some((event, data)) = transition.event() {
            let mut outbox = self.outbox.borrow_mut();
            self.append(memory, &mut outbox, event, &data, None, now)?;
        }
        Ok(())
    }

    /// A stream's socket closed: its subject may start leaving.
    async fn closed(self: &Rc<Self>, ws: &WebSocket) -> Result<()> {
        let Some(seat) = ws.deserialize_attachment::<Seat>().ok().flatten() else {
            return Ok(());
        };
        // Counted once, though an error may be reported before the close;
        // and no longer counted among the sockets left.
        ws.serialize_attachment(serde_json::Value::Null)?;
        let remaining = super::objects::sockets_with(&self.state, &seat);
        let now = now_ms();
        let leaving = {
            let mut memory = self.memory.borrow_mut();
            let Some(transition) = memory
                .presence
                .as_mut()
                .and_then(|p| p.close(&seat, remaining, now))
            else {
                return Ok(());
            };
            self.apply_presence(&mut memory, &transition, now)?;
            matches!(transition, Transition::Leaving { .. })
        };
        if leaving {
            self.ensure_presence_alarm().await?;
        }
        Ok(())
    }

    /// Publishes the `left` of every subject whose grace period is over.
    fn presence_due(self: &Rc<Self>) -> Result<()> {
        let now = now_ms();
        let mut memory = self.memory.borrow_mut();
        let Some(due) = memory.presence.as_mut().map(|p| p.due(now)) else {
            return Ok(());
        };
        for transition in due {
            self.apply_presence(&mut memory, &transition, now)?;
        }
        drop(memory);
        self.schedule_flush();
        Ok(())
    }

    fn presence_deadline(&self) -> Option<u64> {
        self.memory
            .borrow()
            .presence
            .as_ref()
            .and_then(Presence::next_deadline)
    }

    /// Brings the alarm forward to the next subject's leaving, if that is
    /// sooner than the alarm set (every alarm also runs the TTL sweep, which
    /// sets the alarm again for its own time).
    async fn ensure_presence_alarm(&self) -> Result<()> {
        let Some(at) = self.presence_deadline() else {
            return Ok(());
        };
        let storage = self.state.storage();
        let set = storage.get_alarm().await?;
        if set.is_some_and(|set| set as u64 <= at) {
            return Ok(());
        }
        storage
            .set_alarm(at.saturating_sub(now_ms()).max(1) as i64)
            .await
    }

    /// Sends what was published since the last flush to every socket and
    /// every shard.
    fn flush(self: &Rc<Self>) {
        let events = {
            let mut outbox = self.outbox.borrow_mut();
            outbox.scheduled = false;
            std::mem::take(&mut outbox.events)
        };
        if events.is_empty() {
            return;
        }
        fanout::send_events(&self.state, self.name.as_str(), &events);
        let shards: Vec<u32> = self.memory.borrow().placement.active().collect();
        if shards.is_empty() {
            return;
        }
        let mut writer = RelayWriter::default();
        for e in &events {
            writer.event(e.seq, &e.event, &e.data);
        }
        let relay = writer.into_messages().join("\n");
        for shard in shards {
            self.push(shard, &relay);
        }
    }

    /// Pushes `relay` to a shard after whatever is in flight to it.
    fn push(self: &Rc<Self>, shard: u32, relay: &str) {
        let mut links = self.links.borrow_mut();
        let link = links.entry(shard).or_default();
        if !link.pending.is_empty() {
            link.pending.push('\n');
        }
        link.pending.push_str(relay);
        if std::mem::replace(&mut link.in_flight, true) {
            return;
        }
        drop(links);
        let channel = self.clone();
        wasm_bindgen_futures::spawn_local(async move { channel.drain_link(shard).await });
    }

    async fn drain_link(self: Rc<Self>, shard: u32) {
        loop {
            let relay = {
                let mut links = self.links.borrow_mut();
                let link = links.entry(shard).or_default();
                if link.pending.is_empty() {
                    link.in_flight = false;
                    return;
                }
                std::mem::take(&mut link.pending)
            };
            let pushed = match self.shard(shard) {
                Ok(client) => {
                    client
                        .push(self.jurisdiction, self.name.as_str(), &relay)
                        .await
                }
                Err(problem) => Err(problem),
            };
            match pushed {
                Ok(load) => {
                    self.memory
                        .borrow_mut()
                        .placement
                        .report(shard, load.streams);
                    if load.streams == 0 {
                        self.retire(shard).await;
                    }
                }
                // Its streams see the gap in sequence numbers and page it in
                // from history; later pushes go on.
                Err(problem) => log::error("shard push failed", &problem.detail),
            }
        }
    }

    /// Stops pushing to a shard that has no streams, unless one came meanwhile.
    async fn retire(&self, shard: u32) {
        if !self.memory.borrow().placement.idle().contains(&shard) {
            return;
        }
        let Ok(client) = self.shard(shard) else {
            return;
        };
        match client.retire().await {
            Ok(load) if load.streams == 0 => {
                let mut memory = self.memory.borrow_mut();
                // A stream sent there while the shard answered joins it
                // again: it must go on being pushed every publish.
                if !memory.placement.idle().contains(&shard) {
                    return;
                }
                memory.placement.retire(shard);
                let shards: Vec<u32> = memory.placement.active().collect();
                drop(memory);
                if let Err(e) = self.store.set_meta("shards", &shards) {
                    log::error("shard list not saved", &e.to_string());
                }
            }
            Ok(load) => self
                .memory
                .borrow_mut()
                .placement
                .report(shard, load.streams),
            Err(problem) => log::error("shard retire failed", &problem.detail),
        }
    }

    /// A shard starts serving: it is pushed every publish from now on, and
    /// learns what its streams must see first.
    async fn join(self: &Rc<Self>, shard: u32) -> Result<Response> {
        self.register().await?;
        let now = now_ms();
        let mut memory = self.memory.borrow_mut();
        // A shard joins again whenever a stream's cursor is ahead of it; the
        // list is written only when it changes (a row write is billed).
        if memory.placement.join(shard) {
            let shards: Vec<u32> = memory.placement.active().collect();
            self.store.set_meta("shards", &shards)?;
        }
        let mut writer = RelayWriter::default();
        self.write_state(&mut memory, &mut writer, now)?;
        let joined = Joined {
            head: memory.head,
            state: writer.into_messages().join("\n"),
            revocations: memory.revocations.in_force(now),
        };
        Response::ok(joined.to_json())
    }

    /// Closes the sockets a kick names here and on every shard, and keeps the
    /// revocation it carries.
    async fn kick(self: &Rc<Self>, kick: &Kick) -> Result<Response> {
        let now = now_ms();
        if let Some(revocation) = kick.revocation() {
            let mut memory = self.memory.borrow_mut();
            if !memory
                .revocations
                .revokes(&[&revocation.tag], revocation.until_ms.saturating_sub(1))
            {
                // Held already for at least as long otherwise; the tenant's
                // object bounds how many it sends.
                let _ = memory.revocations.insert(revocation.clone(), now);
                self.store.revoke(&revocation)?;
            }
        }
        let sockets = match &kick.tag {
            Some(tag) => self.state.get_websockets_with_tag(tag),
            None => self.state.get_websockets(),
        };
        let mut closed = 0;
        for socket in &sockets {
            // A hub's socket closed by a kick ends every stream it carries.
            closed += channel_hubs::seat(socket).map_or(1, |seat| seat.streams);
            let _ = socket.close(Some(KICKED), Some("kicked"));
        }
        if let Some(tag) = &kick.tag {
            closed += channel_hubs::kick(&self.hubs, &self.state, tag).await;
        }
        let shards: Vec<u32> = self.memory.borrow().placement.active().collect();
        let name = self.name.as_str();
        let env = &self.env;
        let jurisdiction = self.jurisdiction;
        let kicked = futures_util::stream::iter(shards)
            .map(|shard| async move {
                ChannelClient::shard(env, jurisdiction, name, shard)?
                    .kick(kick)
                    .await
            })
            .buffer_unordered(PARALLEL_SHARDS)
            .collect::<Vec<_>>()
            .await;
        for result in kicked {
            match result {
                Ok(k) => closed += k.closed,
                // The tenant's object retries a kick a channel did not
                // complete; a failed shard fails the channel's answer.
                Err(problem) => {
                    return Err(worker::Error::RustError(format!(
                        "shard kick failed: {}",
                        problem.detail
                    )))
                }
            }
        }
        Response::ok(Kicked { closed }.to_json())
    }

    async fn stats(&self) -> Result<Response> {
        let now = now_ms();
        let shards: Vec<u32> = self.memory.borrow().placement.active().collect();
        let name = self.name.as_str();
        let env = &self.env;
        let jurisdiction = self.jurisdiction;
        let loads = futures_util::stream::iter(shards)
            .map(|shard| async move {
                let load = match ChannelClient::shard(env, jurisdiction, name, shard) {
                    Ok(client) => client.shard_stats().await,
                    Err(problem) => Err(problem),
                };
                (shard, load)
            })
            .buffer_unordered(PARALLEL_SHARDS)
            .collect::<Vec<_>>()
            .await;
        let hub_streams = channel_hubs::streams(&self.hubs, &self.state, now).await;
        let mut memory = self.memory.borrow_mut();
        for (shard, load) in loads {
            if let Ok(load) = load {
                memory.placement.report(shard, load.streams);
            }
        }
        let head = memory.head;
        let oldest = self.store.oldest(head, self.cutoff(now))?;
        let stats = ChannelStats {
            streams: self
                .state
                .get_websockets()
                .iter()
                .filter(|socket| channel_hubs::seat(socket).is_none())
                .count() as u64
                + hub_streams
                + memory.placement.shard_streams(),
            last_id: (head > 0).then_some(head),
            last_event_ms: (memory.newest_ms > 0).then_some(memory.newest_ms),
            history: oldest.map_or(0, |oldest| head - oldest + 1),
            rows_written: self.store.rows_written(),
        };
        Response::ok(stats.to_json())
    }

    /// Shard `shard` of this channel, in this object's own jurisdiction.
    fn shard(&self, shard: u32) -> std::result::Result<ChannelClient, Problem> {
        ChannelClient::shard(&self.env, self.jurisdiction, self.name.as_str(), shard)
    }

    /// Resets the shards, then this object (development only).
    async fn reset(&self) -> Result<Response> {
        let shards: Vec<u32> = self.memory.borrow().placement.active().collect();
        let env = &self.env;
        let jurisdiction = self.jurisdiction;
        let name = self.name.as_str();
        futures_util::future::join_all(shards.into_iter().map(|shard| async move {
            if let Ok(client) = ChannelClient::shard(env, jurisdiction, name, shard) {
                client.reset().await;
            }
        }))
        .await;
        super::objects::abort(&self.state)
    }

    /// Registers with the tenant's object, once at a time: requests that
    /// arrive meanwhile wait for the same answer.
    async fn register(&self) -> Result<()> {
        let waiter = {
            let mut registration = self.registration.borrow_mut();
            match &mut *registration {
                Registration::Done => return Ok(()),
                Registration::InFlight(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Some(rx)
                }
                Registration::Needed => {
                    *registration = Registration::InFlight(Vec::new());
                    None
                }
            }
        };
        if let Some(waiter) = waiter {
            return match waiter.await {
                Ok(true) => Ok(()),
                _ => Err(overloaded()),
            };
        }
        let registered = self.register_now().await;
        let done = registered.is_ok();
        let waiters = match std::mem::replace(
            &mut *self.registration.borrow_mut(),
            if done {
                Registration::Done
            } else {
                Registration::Needed
            },
        ) {
            Registration::InFlight(waiters) => waiters,
            _ => Vec::new(),
        };
        for waiter in waiters {
            let _ = waiter.send(done);
        }
        registered
    }

    async fn register_now(&self) -> Result<()> {
        let client = TenantClient::new(&self.env, self.jurisdiction, self.name.tenant())
            .map_err(problem_error)?;
        let answer = client
            .register(self.name.as_str())
            .await
            .map_err(problem_error)?;
        let now = now_ms();
        let mut memory = self.memory.borrow_mut();
        for revocation in answer.revocations {
            if !memory
                .revocations
                .revokes(&[&revocation.tag], revocation.until_ms.saturating_sub(1))
            {
                let _ = memory.revocations.insert(revocation.clone(), now);
                self.store.revoke(&revocation)?;
            }
        }
        memory.registered_ms = now;
        self.store.set_meta("registered_ms", &now)
    }

    /// The TTL sweep: once every event has expired, history is dropped
    /// (keeping the head); until then the alarm comes back when the newest
    /// event expires.
    async fn expire(&self) -> Result<()> {
        let now = now_ms();
        let (head, newest_ms) = {
            let mut memory = self.memory.borrow_mut();
            memory.alarm_set = false;
            (memory.head, memory.newest_ms)
        };
        self.store.expire_revocations(now)?;
        self.memory.borrow_mut().revocations.expire(now);
        if head > 0 && newest_ms < self.cutoff(now) {
            self.store.drop_history(head)?;
            let mut memory = self.memory.borrow_mut();
            memory.state = None;
            memory.keys = None;
            return Ok(());
        }
        self.ensure_alarm().await
    }

    /// Schedules the TTL sweep for when the newest event expires; at most one
    /// alarm is pending at a time.
    async fn ensure_alarm(&self) -> Result<()> {
        let newest_ms = {
            let mut memory = self.memory.borrow_mut();
            if memory.alarm_set || memory.newest_ms == 0 {
                return Ok(());
            }
            memory.alarm_set = true;
            memory.newest_ms
        };
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            let at = newest_ms + self.settings.history_ttl_seconds * 1000 + 1000;
            storage
                .set_alarm(at.saturating_sub(now_ms()).max(1000) as i64)
                .await?;
        }
        Ok(())
    }

    fn cutoff(&self, now: u64) -> u64 {
        history::expiry_cutoff_ms(now, self.settings.history_ttl_seconds)
    }
}

fn overloaded() -> worker::Error {
    worker::Error::RustError("the tenant's object could not be reached".into())
}

fn problem_error(problem: Problem) -> worker::Error {
    worker::Error::RustError(problem.detail)
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}
