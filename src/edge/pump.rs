//! The pump of one open stream: takes what its channels' sockets send, pages
//! in history the stream is missing, and writes SSE frames to the response,
//! with keep-alives, token expiry and client disconnects. What to write when
//! is decided by `edgestream_core::merge`; this file does the I/O.
//!
//! A stream of one channel hands its live events to a [`Tap`] once it is
//! caught up: the object sends them as pre-rendered frames and the tap writes
//! them without entering wasm. Everything before that point (opening frames,
//! current state, history pages) and every stream of several channels goes
//! through the pump.
//!
//! A channel socket that closes without a kick (the object restarted for a
//! deploy, was reset or evicted) is attached again from where the stream is,
//! after a short jittered wait; the gap, if any, is paged in from history, so
//! the client sees nothing of it. Only when attaching fails again and again
//! does the stream end, with `stream-error` (`unavailable`) and a `retry:`
//! that spreads the reconnects of every stream that ended the same way.
//!
//! Memory per stream is bounded. One write is in flight at a time and
//! whatever arrives meanwhile is encoded for the next one, so a busy stream
//! coalesces many events into one crossing into JavaScript; a client that
//! stops reading shows up as that backlog growing, or as a write that does
//! not finish across two keep-alive intervals, and is closed with
//! `stream-error` (`lagging`). History is paged in only when the previous
//! write has finished, so a resume is as fast as the client reads.

use std::cell::Cell;
use std::pin::Pin;
use std::time::Duration;

use edgestream_core::channel::ChannelName;
use edgestream_core::merge::Merge;
use edgestream_core::problem::Problem;
use edgestream_core::protocol::channel::{Delivery, HubSubscribe, Joiner, Subscribe};
use edgestream_core::relay::{self, RelayRecord};
use edgestream_core::residency::Jurisdiction;
use edgestream_core::sse;
use edgestream_core::usage::{self, Delivered};
use futures_channel::mpsc;
use futures_util::future::{select, Either};
use futures_util::stream::{self, select_all, Stream, StreamExt};
use futures_util::FutureExt;
use js_sys::Uint8Array;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{Delay, Env, WebSocket};

use super::attach::attach;
use super::body::Body;
use super::channel_client::ChannelClient;
use super::channel_object::KICKED;
use super::frame_tap::{Tap, TapSignal};
use super::hub::{Member, Tick};
use super::log;
use super::relay_socket::{RelaySignal, RelaySocket};
use super::usage::StreamUsage;

/// Keep-alive intervals a write may stay unfinished before the client counts
/// as not reading.
const STALLED_KEEPALIVES: u32 = 2;
/// Failed attempts in a row to attach a channel again (or to read a page of
/// its history) before the stream gives up on it.
const MAX_FAILURES: u32 = 5;

enum Input {
    Relay {
        index: usize,
        generation: u32,
        text: String,
    },
    Detached {
        index: usize,
        generation: u32,
        code: Option<u16>,
    },
    Gap {
        generation: u32,
        first: u64,
        cursor: u64,
    },
    Lagging,
    Attached {
        index: usize,
        generation: u32,
        socket: Result<WebSocket, Problem>,
    },
    Page {
        index: usize,
        page: Result<String, Problem>,
    },
    /// This stream is to attach its isolate's hub socket.
    Own,
    HubAttached {
        socket: Result<WebSocket, Problem>,
    },
    KeepAlive,
    Expired,
    Disconnected,
    Recheck,
    KeyGone,
    Usage,
}

type Inputs<'a> = Pin<Box<dyn Stream<Item = Input> + 'a>>;

/// Why a stream ended.
enum End {
    /// The client went away: nothing more can be sent.
    ClientGone,
    /// The relay ends the stream and says why in a `stream-error` frame.
    Failed {
        code: &'static str,
        message: &'static str,
    },
}

const LAGGING: End = End::Failed {
    code: "lagging",
    message: "the client is not reading fast enough; reconnect to resume",
};
const KICKED_OUT: End = End::Failed {
    code: "kicked",
    message: "the stream was ended by an administrator",
};
const TOKEN_EXPIRED: End = End::Failed {
    code: "token_expired",
    message: "the access token expired",
};
const REVOKED: End = End::Failed {
    code: "revoked",
    message: "the credential of this stream was revoked",
};
const UNAVAILABLE: End = End::Failed {
    code: "unavailable",
    message: "a channel of the stream could not be reached; reconnect to resume",
};

/// A stream as its handler opened it; the pump owns it from then on.
pub struct OpenStream {
    pub env: Env,
    pub channels: Vec<ChannelName>,
    /// Where the channels' objects are (one stream is one tenant's).
    pub jurisdiction: Option<Jurisdiction>,
    pub merge: Merge,
    /// Socket tags of the stream (for kicks), sent with every attach.
    pub tags: Vec<String>,
    /// The credential's subject, for channels with presence.
    pub subject: Option<String>,
    /// The response body.
    pub body: Body,
    pub signal: web_sys::AbortSignal,
    pub expires_at: u64,
    pub keepalive: Duration,
    pub retry_ms: u64,
    pub max_pending_bytes: usize,
    /// The fingerprint of the API key the stream was opened with: the stream
    /// ends when the key is deleted or expires.
    pub api_key: Option<String>,
    /// How often that key is looked up again (`API_KEY_RECHECK_SECONDS`).
    pub api_key_recheck: Duration,
    pub usage: StreamUsage,
}

/// A channel's current socket and what listens on it.
struct Link {
    socket: Option<WebSocket>,
    generation: u32,
    failures: u32,
    listener: Option<Listener>,
}

enum Listener {
    Tap(Tap),
    /// A stream of one channel served by its isolate's hub (`hub.rs`).
    Hub {
        tap: Tap,
        member: Member,
        /// The hub's socket is being attached by this stream.
        attaching: bool,
        failures: u32,
    },
    /// Held so that its callbacks live as long as the socket.
    Relay {
        _socket: RelaySocket,
    },
}

pub struct Pump {
    stream: OpenStream,
    links: Vec<Link>,
    /// Listeners of sockets that were replaced: kept until the stream ends,
    /// as their sockets may still deliver a close.
    retired: Vec<Listener>,
    inputs: mpsc::UnboundedSender<Input>,
    received: Option<mpsc::UnboundedReceiver<Input>>,
    /// The tap writes live frames (a stream of one channel, caught up).
    tap_live: bool,
    /// Bytes the pump wrote (the taps count their own).
    bytes_written: Cell<u64>,
}

impl Pump {
    pub fn new(stream: OpenStream) -> Self {
        let (inputs, received) = mpsc::unbounded();
        let links = stream
            .channels
            .iter()
            .map(|_| Link {
                socket: None,
                generation: 0,
                failures: 0,
                listener: None,
            })
            .collect();
        Self {
            stream,
            links,
            retired: Vec::new(),
            inputs,
            received: Some(received),
            tap_live: false,
            bytes_written: Cell::new(0),
        }
    }

    fn delivery(&self) -> Delivery {
        if self.stream.channels.len() == 1 {
            Delivery::Frames
        } else {
            Delivery::Relay
        }
    }

    pub async fn run(mut self, sockets: Vec<WebSocket>) {
        for (index, socket) in sockets.into_iter().enumerate() {
            if !self.install(index, socket) {
                self.schedule_attach(index);
            }
        }
        let mut sources: Vec<Inputs> = Vec::with_capacity(5);
        if let Some(received) = self.received.take() {
            sources.push(Box::pin(received));
        }
        // The first tick comes at a random point in the second half of the
        // interval. Streams opened together (a deploy, a mass reconnect)
        // would otherwise tick together, and a thousand keep-alive writes in
        // one burst hold up every event published during it.
        let keepalive = self.stream.keepalive;
        sources.push(Box::pin(ticks(
            keepalive.mul_f64(0.5 + js_sys::Math::random() / 2.0),
            keepalive,
            || Input::KeepAlive,
        )));
        sources.push(Box::pin(token_expiry(self.stream.expires_at).into_stream()));
        let (disconnected, on_abort) = abort_listener(&self.stream.signal);
        sources.push(Box::pin(
            disconnected.into_stream().map(|_| Input::Disconnected),
        ));
        if self.stream.api_key.is_some() {
            let every = self.stream.api_key_recheck;
            sources.push(Box::pin(ticks(every, every, || Input::Recheck)));
        }
        if let Some(usage) = self.stream.usage.ticks() {
            sources.push(Box::pin(usage.map(|()| Input::Usage)));
        }
        let mut inputs = select_all(sources);

        let mut out = String::new();
        sse::write_retry(&mut out, self.stream.retry_ms);
        let names: Vec<&str> = self
            .stream
            .channels
            .iter()
            .map(ChannelName::as_str)
            .collect();
        let open = serde_json::json!({ "channels": names }).to_string();
        sse::write_event(&mut out, None, sse::STREAM_OPEN, &open);

        let mut in_flight: Option<JsFuture> = None;
        let mut stalled = 0;
        let end = loop {
            if in_flight.is_none() {
                if !out.is_empty() {
                    in_flight = Some(self.start_write(&out));
                    out.clear();
                } else if let Some((index, after)) = self.stream.merge.wants_page() {
                    self.request_page(index, after);
                }
            }
            let input = match in_flight.as_mut() {
                Some(write) => match select(inputs.next(), write).await {
                    Either::Left((input, _)) => input,
                    Either::Right((Ok(_), _)) => {
                        in_flight = None;
                        stalled = 0;
                        continue;
                    }
                    Either::Right((Err(_), _)) => break End::ClientGone,
                },
                None => inputs.next().await,
            };
            let step = match input {
                Some(input) => self.step(&mut out, input, in_flight.is_some(), &mut stalled),
                None => Err(End::ClientGone),
            };
            if let Err(end) = step {
                break end;
            }
            if out.len() + self.stream.merge.held_bytes() > self.stream.max_pending_bytes {
                break LAGGING;
            }
            if self.delivery() == Delivery::Frames && !self.tap_live && self.stream.merge.is_live(0)
            {
                if let Some(tap) = self.links[0].listener.as_ref().and_then(Listener::tap) {
                    // What the pump holds goes first; writes reach the
                    // response in the order they are made.
                    if !out.is_empty() {
                        in_flight = Some(self.start_write(&out));
                        out.clear();
                    }
                    tap.release(self.stream.merge.position(0).unwrap_or(0));
                    self.tap_live = true;
                }
            }
        };
        drop(inputs);
        drop(on_abort);
        let cause = match &end {
            End::ClientGone => usage::CLIENT_GONE,
            End::Failed { code, .. } => code,
        };
        self.finish(end, out, in_flight).await;
        let delivered = self.delivered();
        self.stream.usage.end(delivered, cause);
    }

    /// Handles one input; an `Err` ends the stream.
    fn step(
        &mut self,
        out: &mut String,
        input: Input,
        writing: bool,
        stalled: &mut u32,
    ) -> Result<(), End> {
        match input {
            Input::Relay {
                index,
                generation,
                text,
            } => {
                if self.links[index].generation == generation {
                    self.links[index].failures = 0;
                    if self.stream.merge.live(out, index, &text).is_err() {
                        log::error("bad relay record", "skipped");
                    }
                }
            }
            Input::Detached {
                index,
                generation,
                code,
            } if self.links[index].generation == generation => {
                if code == Some(KICKED) {
                    return Err(KICKED_OUT);
                }
                self.detach(index);
                self.schedule_attach(index)
                    .then_some(())
                    .ok_or(UNAVAILABLE)?;
            }
            Input::Detached { .. } => {}
            Input::Gap {
                generation,
                first,
                cursor,
            } if self.links[0].generation == generation => {
                self.tap_live = false;
                self.stream.merge.delivered(0, cursor);
                self.stream.merge.gap(0, first);
            }
            Input::Gap { .. } => {}
            Input::Lagging => return Err(LAGGING),
            Input::Attached {
                index,
                generation,
                socket,
            } if self.links[index].generation == generation => match socket {
                Ok(socket) => {
                    if !self.install(index, socket) {
                        self.schedule_attach(index)
                            .then_some(())
                            .ok_or(UNAVAILABLE)?;
                    }
                }
                Err(problem) if problem.code == "revoked" => return Err(REVOKED),
                Err(_) => self
                    .schedule_attach(index)
                    .then_some(())
                    .ok_or(UNAVAILABLE)?,
            },
            Input::Attached { .. } => {}
            Input::Page {
                index,
                page: Ok(page),
            } => {
                if self.stream.merge.page(out, index, &page).is_err() {
                    log::error("bad relay record in a page", "skipped");
                }
            }
            Input::Page {
                index,
                page: Err(problem),
            } => {
                log::error("history page failed", &problem.detail);
                self.stream.merge.page_failed();
                let link = &mut self.links[index];
                link.failures += 1;
                if link.failures >= MAX_FAILURES {
                    return Err(UNAVAILABLE);
                }
            }
            Input::Own => self.attach_hub(false),
            Input::HubAttached { socket } => self.hub_attached(socket)?,
            Input::KeepAlive => {
                if let Some(Listener::Hub { member, .. }) = &self.links[0].listener {
                    match member.tick() {
                        Tick::Nothing => {}
                        Tick::Own => self.attach_hub(false),
                        Tick::Dropped => return Err(LAGGING),
                        Tick::Misrouted => {
                            log::error("hub wake ran in another request", "stream ended");
                            return Err(UNAVAILABLE);
                        }
                    }
                }
                if writing {
                    *stalled += 1;
                    if *stalled >= STALLED_KEEPALIVES {
                        return Err(LAGGING);
                    }
                }
                sse::write_comment(out, sse::KEEP_ALIVE);
            }
            Input::Expired => return Err(TOKEN_EXPIRED),
            Input::Disconnected => return Err(End::ClientGone),
            Input::Recheck => self.recheck_api_key(),
            Input::KeyGone => return Err(REVOKED),
            Input::Usage => {
                let delivered = self.delivered();
                self.stream.usage.progress(delivered);
            }
        }
        Ok(())
    }

    /// Starts listening on a channel's new socket and accepts it; false if
    /// the socket could not be accepted.
    fn install(&mut self, index: usize, socket: WebSocket) -> bool {
        let generation = self.links[index].generation;
        let inputs = self.inputs.clone();
        let raw: &web_sys::WebSocket = socket.as_ref();
        let listener = match self.delivery() {
            Delivery::Frames => Listener::Tap(Tap::listen(
                Some(raw),
                &self.stream.body,
                self.stream.max_pending_bytes,
                tap_signals(inputs, index, generation),
            )),
            Delivery::Relay => Listener::Relay {
                _socket: RelaySocket::listen(raw, move |signal| {
                    let _ = inputs.unbounded_send(match signal {
                        RelaySignal::Message(text) => Input::Relay {
                            index,
                            generation,
                            text,
                        },
                        RelaySignal::Closed(code) => Input::Detached {
                            index,
                            generation,
                            code,
                        },
                    });
                }),
            },
        };
        if let Some(old) = self.links[index].listener.replace(listener) {
            self.retired.push(old);
        }
        self.stream.merge.attached(index);
        if socket.accept().is_err() {
            return false;
        }
        self.links[index].socket = Some(socket);
        true
    }

    /// Joins this isolate's hub of the stream's one channel, before the
    /// stream asks the object for its head ([`Pump::hub_opening`]).
    pub fn join_hub(&mut self, budget: u64) {
        let tap = Tap::listen(
            None,
            &self.stream.body,
            self.stream.max_pending_bytes,
            tap_signals(self.inputs.clone(), 0, self.links[0].generation),
        );
        let member = Member::join(
            self.stream.channels[0].as_str(),
            &tap,
            &self.stream.tags,
            &self.stream.signal,
            self.stream.keepalive.as_millis() as u64,
            budget,
        );
        self.links[0].listener = Some(Listener::Hub {
            tap,
            member,
            attaching: false,
            failures: 0,
        });
    }

    /// What the stream that joined its hub sees before any live event, from
    /// the channel's object (asked together with the hub's other joins), or
    /// its refusal.
    pub async fn hub_opening(
        &self,
        client: &ChannelClient,
        after: Option<u64>,
    ) -> Result<String, Problem> {
        let Some(Listener::Hub { member, .. }) = &self.links[0].listener else {
            return Err(Problem::internal("the stream joined no hub"));
        };
        let joiner = Joiner {
            after,
            tags: self.stream.tags.clone(),
        };
        member.opening(client, &joiner).await
    }

    /// The object answered the stream's join: its text goes first, as a
    /// socket's would, and the hub learns the channel's head.
    pub fn hub_joined(&self, text: String) -> Result<(), Problem> {
        let head = relay::records(&text)
            .find_map(|record| match record {
                Ok(RelayRecord::Live { head }) => Some(head),
                _ => None,
            })
            .ok_or_else(|| Problem::internal("a hub join without the channel's head"))?;
        let _ = self.inputs.unbounded_send(Input::Relay {
            index: 0,
            generation: self.links[0].generation,
            text,
        });
        if let Some(Listener::Hub { member, .. }) = &self.links[0].listener {
            member.start(head);
        }
        Ok(())
    }

    /// The stream never started: it leaves the hub it joined.
    pub fn abandon(&self) {
        if let Some(Listener::Hub { tap, member, .. }) = &self.links[0].listener {
            tap.stop();
            member.leave();
        }
    }

    /// Attaches the hub's socket from where the hub is, after a jittered
    /// wait when the last attempt failed; one attempt at a time.
    fn attach_hub(&mut self, retry: bool) {
        let Some(Listener::Hub {
            member,
            attaching,
            failures,
            ..
        }) = &mut self.links[0].listener
        else {
            return;
        };
        if *attaching && !retry {
            return;
        }
        *attaching = true;
        let wait = if *failures == 0 {
            Duration::ZERO
        } else {
            backoff(*failures)
        };
        let env = self.stream.env.clone();
        let jurisdiction = self.stream.jurisdiction;
        let channel = self.stream.channels[0].as_str().to_owned();
        let inputs = self.inputs.clone();
        let subscribe = HubSubscribe {
            hub: member.hub(),
            after: member.position(),
            streams: member.streams(),
        };
        wasm_bindgen_futures::spawn_local(async move {
            if wait > Duration::ZERO {
                Delay::from(wait).await;
            }
            let socket = match ChannelClient::channel(&env, jurisdiction, &channel) {
                Ok(client) => client.hub(&subscribe).await,
                Err(problem) => Err(problem),
            };
            let _ = inputs.unbounded_send(Input::HubAttached { socket });
        });
    }

    /// The owner's attach came back. A stream that cannot reach its channel
    /// again and again ends (`unavailable`), which hands the hub on.
    fn hub_attached(&mut self, socket: Result<WebSocket, Problem>) -> Result<(), End> {
        let Some(Listener::Hub {
            member,
            attaching,
            failures,
            ..
        }) = &mut self.links[0].listener
        else {
            return Ok(());
        };
        match socket {
            Ok(socket) => {
                *attaching = false;
                *failures = 0;
                member.adopt(socket.as_ref());
                Ok(())
            }
            Err(problem) => {
                log::error("hub attach failed", &problem.detail);
                *failures += 1;
                if *failures >= MAX_FAILURES {
                    return Err(UNAVAILABLE);
                }
                self.attach_hub(true);
                Ok(())
            }
        }
    }

    /// A channel's socket is gone: what its tap wrote is delivered, and its
    /// listener retires, so that the live path is released only on the tap
    /// of the socket that replaces it.
    fn detach(&mut self, index: usize) {
        let link = &mut self.links[index];
        link.socket = None;
        if let Some(listener) = link.listener.take() {
            if let Listener::Tap(tap) = &listener {
                tap.stop();
                self.stream.merge.delivered(index, tap.position());
                self.tap_live = false;
            }
            self.retired.push(listener);
        }
    }

    /// Attaches channel `index` again after a jittered wait that grows with
    /// each failure; false once it has failed too often.
    fn schedule_attach(&mut self, index: usize) -> bool {
        let link = &mut self.links[index];
        link.failures += 1;
        if link.failures > MAX_FAILURES {
            return false;
        }
        link.generation += 1;
        let generation = link.generation;
        let wait = backoff(link.failures);
        let subscribe = Subscribe {
            after: self.stream.merge.position(index),
            delivery: self.delivery(),
            tags: self.stream.tags.clone(),
            subject: self.stream.subject.clone(),
        };
        let env = self.stream.env.clone();
        let channel = self.stream.channels[index].clone();
        let jurisdiction = self.stream.jurisdiction;
        let inputs = self.inputs.clone();
        wasm_bindgen_futures::spawn_local(async move {
            Delay::from(wait).await;
            let socket = attach(&env, jurisdiction, &channel, &subscribe).await;
            let _ = inputs.unbounded_send(Input::Attached {
                index,
                generation,
                socket,
            });
        });
        true
    }

    /// Fetches the next history page of a channel catching up. Pages always
    /// come from the channel's own object, which holds the history.
    fn request_page(&self, index: usize, after: u64) {
        let env = self.stream.env.clone();
        let channel = self.stream.channels[index].as_str().to_owned();
        let jurisdiction = self.stream.jurisdiction;
        let inputs = self.inputs.clone();
        let wait = backoff(self.links[index].failures);
        wasm_bindgen_futures::spawn_local(async move {
            if wait > Duration::ZERO {
                Delay::from(wait).await;
            }
            let page = match ChannelClient::channel(&env, jurisdiction, &channel) {
                Ok(client) => client.history(after).await,
                Err(problem) => Err(problem),
            };
            let _ = inputs.unbounded_send(Input::Page { index, page });
        });
    }

    fn recheck_api_key(&self) {
        let Some(fingerprint) = self.stream.api_key.clone() else {
            return;
        };
        let env = self.stream.env.clone();
        let inputs = self.inputs.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if !super::auth::api_key_valid(&env, &fingerprint).await {
                let _ = inputs.unbounded_send(Input::KeyGone);
            }
        });
    }

    /// What the stream wrote so far: the pump's writes and every tap's,
    /// replaced ones included.
    fn delivered(&self) -> Delivered {
        let listeners = self.links.iter().filter_map(|link| link.listener.as_ref());
        listeners
            .chain(&self.retired)
            .filter_map(|listener| match listener {
                Listener::Tap(tap) | Listener::Hub { tap, .. } => Some(tap.delivered()),
                Listener::Relay { .. } => None,
            })
            .fold(
                Delivered {
                    events: self.stream.merge.events_written(),
                    bytes: self.bytes_written.get(),
                },
                |sum, tap| sum + tap,
            )
    }

    fn start_write(&self, text: &str) -> JsFuture {
        self.bytes_written
            .set(self.bytes_written.get() + text.len() as u64);
        let chunk = Uint8Array::from(text.as_bytes());
        JsFuture::from(self.stream.body.write(&chunk))
    }

    /// Ends the stream. The channel sockets are closed first so the objects
    /// release them at once, whatever happens to the response.
    async fn finish(&self, end: End, mut out: String, in_flight: Option<JsFuture>) {
        for link in &self.links {
            match &link.listener {
                Some(Listener::Tap(tap)) => tap.stop(),
                Some(Listener::Hub { tap, member, .. }) => {
                    tap.stop();
                    member.leave();
                }
                _ => {}
            }
            if let Some(socket) = &link.socket {
                let _ = socket.close(Some(1000), Some("stream closed"));
            }
        }
        match end {
            End::ClientGone => settle(JsFuture::from(self.stream.body.abort())),
            End::Failed { code, message } => {
                log::info(
                    "stream ended by the relay",
                    serde_json::json!({ "code": code }),
                );
                // A lagging client has not read what is queued; it resumes
                // from history after the last event it did process.
                if code == "lagging" {
                    out.clear();
                }
                if code == "unavailable" {
                    // Spread the reconnects of every stream that ends so.
                    let retry = self.stream.retry_ms as f64 * (1.0 + 2.0 * js_sys::Math::random());
                    sse::write_retry(&mut out, retry as u64);
                }
                let error = serde_json::json!({ "code": code, "message": message }).to_string();
                sse::write_event(&mut out, None, sse::STREAM_ERROR, &error);
                // Not awaited: a client that is not reading would hold the
                // pump forever. The frame and the close follow whatever write
                // is still queued.
                drop(in_flight);
                settle(self.start_write(&out));
                settle(JsFuture::from(self.stream.body.close()));
            }
        }
    }
}

impl Listener {
    fn tap(&self) -> Option<&Tap> {
        match self {
            Listener::Tap(tap) | Listener::Hub { tap, .. } => Some(tap),
            Listener::Relay { .. } => None,
        }
    }
}

/// What a tap of channel `index` signals, as the pump's inputs.
fn tap_signals(
    inputs: mpsc::UnboundedSender<Input>,
    index: usize,
    generation: u32,
) -> impl FnMut(TapSignal) + 'static {
    move |signal| {
        let _ = inputs.unbounded_send(match signal {
            TapSignal::Relay(text) => Input::Relay {
                index,
                generation,
                text,
            },
            TapSignal::Closed(code) => Input::Detached {
                index,
                generation,
                code,
            },
            TapSignal::Lagging => Input::Lagging,
            TapSignal::Gap { first, cursor } => Input::Gap {
                generation,
                first,
                cursor,
            },
            TapSignal::Own => Input::Own,
        });
    }
}

/// The wait before the `failures`-th attempt: none before the first, then
/// growing, with full jitter so that streams that lost their channel
/// together (an object restart) do not come back together.
fn backoff(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::from_millis((js_sys::Math::random() * 200.0) as u64);
    }
    let ceiling = 250.0 * f64::from(1u32 << (failures - 1).min(5));
    Duration::from_millis((ceiling * (0.5 + js_sys::Math::random() / 2.0)) as u64)
}

/// `input` after `first`, then every `every`.
fn ticks(first: Duration, every: Duration, input: fn() -> Input) -> impl Stream<Item = Input> {
    stream::unfold(first, move |wait| async move {
        Delay::from(wait).await;
        Some((input(), every))
    })
}

/// Lets a write or close finish in the background; its outcome no longer
/// matters, but an unobserved rejection would be reported as an error.
fn settle(future: JsFuture) {
    wasm_bindgen_futures::spawn_local(async move {
        let _ = future.await;
    });
}

/// Resolves when the token expires. Timers cannot be armed for more than
/// about 24 days, so a far-off expiry is waited for in steps.
async fn token_expiry(expires_at: u64) -> Input {
    const LONGEST_WAIT_SECS: u64 = 20 * 24 * 3600;
    loop {
        let now = worker::Date::now().as_millis() / 1000;
        if now >= expires_at {
            return Input::Expired;
        }
        let wait = (expires_at - now).min(LONGEST_WAIT_SECS);
        Delay::from(Duration::from_secs(wait)).await;
    }
}

/// Resolves when the client's request is aborted. In workerd a response
/// stream's cancel does not always reach the Worker, so the abort signal
/// (compatibility flag `enable_request_signal`) is watched too; failed writes
/// are the third way a dead stream is noticed.
fn abort_listener(
    signal: &web_sys::AbortSignal,
) -> (futures_channel::oneshot::Receiver<()>, Closure<dyn FnMut()>) {
    let (tx, rx) = futures_channel::oneshot::channel();
    let mut tx = Some(tx);
    let closure = Closure::<dyn FnMut()>::new(move || {
        if let Some(tx) = tx.take() {
            let _ = tx.send(());
        }
    });
    signal.set_onabort(Some(closure.as_ref().unchecked_ref()));
    (rx, closure)
}
