//! The pump of one open stream: merges what the channel objects send, pages
//! in history a resuming client is missing, and writes SSE frames to the
//! response, with keep-alives, token expiry and client disconnects.
//!
//! A stream of one channel hands its live events to a [`Tap`] once it is
//! caught up: the object sends them as pre-rendered frames and the tap writes
//! them without entering wasm. Everything before that point (opening frames,
//! current state, history pages) and every stream of several channels goes
//! through the pump.
//!
//! Memory per stream is bounded. One write is in flight at a time and
//! whatever arrives meanwhile is encoded for the next one, so a busy stream
//! coalesces many events into one crossing into JavaScript; a client that
//! stops reading shows up as that backlog growing, or as a write that does
//! not finish across two keep-alive intervals, and is closed with
//! `stream-error` (`lagging`). History is paged in only when the previous
//! write has finished, so a resume is as fast as the client reads and never
//! floods the Worker.

use std::pin::Pin;
use std::time::Duration;

use edgestream_core::channel::ChannelName;
use edgestream_core::cursor::CursorEncoder;
use edgestream_core::relay::{self, RelayRecord};
use edgestream_core::sse;
use futures_channel::mpsc;
use futures_util::future::{select, Either};
use futures_util::stream::{self, select_all, Stream, StreamExt};
use futures_util::FutureExt;
use js_sys::Uint8Array;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{Delay, ObjectNamespace, WebSocket, WebsocketEvent};

use super::channel_client;
use super::channel_object::KICKED;
use super::frame_tap::{Tap, TapSignal};

/// Keep-alive intervals a write may stay unfinished before the client counts
/// as not reading.
const STALLED_KEEPALIVES: u32 = 2;

enum Input {
    Relay(usize, String),
    Page(usize, Option<String>),
    /// A channel socket closed, with its close code when it had one.
    Detached(Option<u16>),
    KeepAlive,
    Expired,
    Disconnected,
    Lagging,
}

type Inputs<'a> = Pin<Box<dyn Stream<Item = Input> + 'a>>;

/// Why a stream ended.
enum End {
    /// The client went away: nothing more can be sent.
    ClientGone,
    /// A channel's object closed its socket (restart, deploy): the stream ends
    /// cleanly and the client resumes from history with its Last-Event-ID.
    ChannelDetached,
    /// The relay ends the stream and says why in a `stream-error` frame.
    Failed { code: &'static str, message: &'static str },
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

/// A channel the stream is behind on: its events up to `until` are paged in
/// from history, and its live messages are held back until they are.
struct Catchup {
    until: u64,
    held: Vec<String>,
}

/// A stream as its handler opened it; the pump owns it from then on.
pub struct OpenStream {
    pub channels: Vec<ChannelName>,
    /// The client's position on every channel; advanced as events go out.
    pub cursor: CursorEncoder,
    pub namespace: ObjectNamespace,
    pub writer: web_sys::WritableStreamDefaultWriter,
    /// The response pipe's high-water mark: unread bytes are this minus the
    /// writer's `desiredSize`.
    pub high_water_mark: usize,
    pub signal: web_sys::AbortSignal,
    pub expires_at: u64,
    pub keepalive: Duration,
    pub retry_ms: u64,
    pub max_pending_bytes: usize,
}

pub struct Pump {
    stream: OpenStream,
    /// The current event id, rebuilt in place for every event.
    id: String,
    catchups: Vec<Option<Catchup>>,
    held_bytes: usize,
    page_pending: bool,
    pages: mpsc::UnboundedSender<Input>,
    page_results: Option<mpsc::UnboundedReceiver<Input>>,
    /// The live path of a stream of one channel.
    tap: Option<Tap>,
    /// The stream just caught up: the tap takes over live events.
    release_tap: bool,
}

impl Pump {
    pub fn new(stream: OpenStream) -> Self {
        let (pages, page_results) = mpsc::unbounded();
        Self {
            catchups: stream.channels.iter().map(|_| None).collect(),
            stream,
            id: String::new(),
            held_bytes: 0,
            page_pending: false,
            pages,
            page_results: Some(page_results),
            tap: None,
            release_tap: false,
        }
    }

    pub async fn run(mut self, sockets: Vec<WebSocket>) {
        // Listen before accepting: the object queues its first message as soon
        // as it accepted the socket, and messages with no listener are lost.
        let mut sources: Vec<Inputs> = Vec::with_capacity(sockets.len() + 4);
        if let [socket] = sockets.as_slice() {
            let (tap, signals) = Tap::listen(
                socket.as_ref(),
                &self.stream.writer,
                self.stream.high_water_mark,
                self.stream.max_pending_bytes,
            );
            self.tap = Some(tap);
            sources.push(Box::pin(signals.map(|signal| match signal {
                TapSignal::Relay(text) => Input::Relay(0, text),
                TapSignal::Closed(code) => Input::Detached(code),
                TapSignal::Lagging => Input::Lagging,
            })));
        } else {
            for (index, socket) in sockets.iter().enumerate() {
                let Ok(events) = socket.events() else {
                    return self.finish(&sockets, End::ChannelDetached, String::new(), None).await;
                };
                sources.push(Box::pin(events.map(move |event| match event {
                    Ok(WebsocketEvent::Message(message)) => {
                        message.text().map_or(Input::Detached(None), |text| Input::Relay(index, text))
                    }
                    Ok(WebsocketEvent::Close(close)) => Input::Detached(Some(close.code())),
                    Err(_) => Input::Detached(None),
                })));
            }
        }
        if sockets.iter().any(|socket| socket.accept().is_err()) {
            return self.finish(&sockets, End::ChannelDetached, String::new(), None).await;
        }
        // The first tick comes at a random point in the second half of the
        // interval. Streams opened together (a deploy, a mass reconnect)
        // would otherwise tick together, and a thousand keep-alive writes in
        // one burst hold up every event published during it.
        let keepalive = self.stream.keepalive;
        let first = keepalive.mul_f64(0.5 + js_sys::Math::random() / 2.0);
        sources.push(Box::pin(stream::unfold(first, move |wait| async move {
            Delay::from(wait).await;
            Some((Input::KeepAlive, keepalive))
        })));
        sources.push(Box::pin(token_expiry(self.stream.expires_at).into_stream()));
        let (disconnected, on_abort) = abort_listener(&self.stream.signal);
        sources.push(Box::pin(disconnected.into_stream().map(|_| Input::Disconnected)));
        if let Some(pages) = self.page_results.take() {
            sources.push(Box::pin(pages));
        }
        let mut inputs = select_all(sources);

        let mut out = String::new();
        sse::write_retry(&mut out, self.stream.retry_ms);
        let names: Vec<&str> = self.stream.channels.iter().map(ChannelName::as_str).collect();
        let open = serde_json::json!({ "channels": names }).to_string();
        sse::write_event(&mut out, None, sse::STREAM_OPEN, &open);

        let mut in_flight: Option<JsFuture> = None;
        let mut stalled = 0;
        let end = loop {
            if in_flight.is_none() {
                if !out.is_empty() {
                    in_flight = Some(self.start_write(&out));
                    out.clear();
                } else if !self.page_pending {
                    self.request_page();
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
            match input {
                Some(Input::Relay(index, message)) => self.relay(&mut out, index, message),
                Some(Input::Page(index, Some(page))) => self.page(&mut out, index, &page),
                Some(Input::Page(_, None)) => break End::ChannelDetached,
                Some(Input::KeepAlive) => {
                    if in_flight.is_some() {
                        stalled += 1;
                        if stalled >= STALLED_KEEPALIVES {
                            break LAGGING;
                        }
                    }
                    sse::write_comment(&mut out, sse::KEEP_ALIVE);
                }
                Some(Input::Expired) => break TOKEN_EXPIRED,
                Some(Input::Lagging) => break LAGGING,
                Some(Input::Detached(Some(KICKED))) => break KICKED_OUT,
                Some(Input::Detached(_)) => break End::ChannelDetached,
                Some(Input::Disconnected) | None => break End::ClientGone,
            }
            if out.len() + self.held_bytes > self.stream.max_pending_bytes {
                break LAGGING;
            }
            if std::mem::take(&mut self.release_tap) {
                if let Some(tap) = &self.tap {
                    // What the pump holds goes first; writes reach the
                    // response in the order they are made.
                    if !out.is_empty() {
                        in_flight = Some(self.start_write(&out));
                        out.clear();
                    }
                    tap.release(self.stream.cursor.get(0).unwrap_or(0));
                }
            }
        };
        drop(inputs);
        drop(on_abort);
        self.finish(&sockets, end, out, in_flight).await;
    }

    /// A message from channel `index`'s object: relayed now, or held back
    /// while the stream pages in that channel's history.
    fn relay(&mut self, out: &mut String, index: usize, message: String) {
        match &mut self.catchups[index] {
            Some(catchup) => {
                self.held_bytes += message.len();
                catchup.held.push(message);
            }
            None => self.encode(out, index, &message),
        }
    }

    /// A page of channel `index`'s history arrived. When it reaches the point
    /// where live delivery started, the held live messages follow (already
    /// delivered sequence numbers are skipped by `encode`).
    fn page(&mut self, out: &mut String, index: usize, page: &str) {
        self.page_pending = false;
        self.encode(out, index, page);
        let Some(catchup) = &self.catchups[index] else {
            return;
        };
        let caught_up = self.stream.cursor.get(index).unwrap_or(0) >= catchup.until;
        if caught_up || page.is_empty() {
            self.release_tap = true;
            if let Some(catchup) = self.catchups[index].take() {
                for message in catchup.held {
                    self.held_bytes -= message.len();
                    self.encode(out, index, &message);
                }
            }
        }
    }

    /// Fetches the next history page for the first channel still catching up.
    fn request_page(&mut self) {
        let Some(index) = self.catchups.iter().position(Option::is_some) else {
            return;
        };
        self.page_pending = true;
        let namespace = self.stream.namespace.clone();
        let channel = self.stream.channels[index].as_str().to_owned();
        let after = self.stream.cursor.get(index).unwrap_or(0);
        let pages = self.pages.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let page = channel_client::history_page(&namespace, &channel, after).await;
            if let Err(problem) = &page {
                // The stream ends and its client resumes from the same point.
                log("error", "history page failed", problem.code, &problem.detail);
            }
            let _ = pages.unbounded_send(Input::Page(index, page.ok()));
        });
    }

    /// Appends the SSE frames for one relay message from channel `index`.
    fn encode(&mut self, out: &mut String, index: usize, message: &str) {
        // After a reset the channel's current state follows, at or below the
        // head the cursor was moved to; only then is an old sequence expected.
        let mut state_after_reset = false;
        for record in relay::records(message) {
            match record {
                Ok(RelayRecord::Event { seq, event, data }) => {
                    let seen = self.stream.cursor.get(index).unwrap_or(0);
                    if seq <= seen && !state_after_reset {
                        continue;
                    }
                    self.stream.cursor.set(index, seq.max(seen));
                    self.stream.cursor.encode_into(&mut self.id);
                    sse::write_event(out, Some(&self.id), event, data);
                }
                Ok(RelayRecord::Reset { head }) => {
                    state_after_reset = true;
                    self.stream.cursor.set(index, head);
                    let channel = self.stream.channels[index].as_str();
                    let reset = serde_json::json!({ "channels": [channel] }).to_string();
                    sse::write_event(out, None, sse::STREAM_RESET, &reset);
                }
                Ok(RelayRecord::Live { head }) => match self.stream.cursor.get(index) {
                    Some(seen) if head > seen => {
                        self.catchups[index] = Some(Catchup { until: head, held: Vec::new() });
                    }
                    // No position yet (no cursor, no state): live from here.
                    None => {
                        self.stream.cursor.set(index, head);
                        self.release_tap = true;
                    }
                    Some(_) => self.release_tap = true,
                },
                Err(record) => worker::console_error!(
                    "{}",
                    serde_json::json!({"level": "error", "msg": "bad relay record", "record": record})
                ),
            }
        }
    }

    fn start_write(&self, text: &str) -> JsFuture {
        let chunk = Uint8Array::from(text.as_bytes());
        JsFuture::from(self.stream.writer.write_with_chunk(&chunk))
    }

    /// Ends the stream. The channel sockets are closed first so the objects
    /// release them at once, whatever happens to the response.
    async fn finish(&self, sockets: &[WebSocket], end: End, mut out: String, in_flight: Option<JsFuture>) {
        if let Some(tap) = &self.tap {
            tap.stop();
        }
        for socket in sockets {
            let _ = socket.close(Some(1000), Some("stream closed"));
        }
        match end {
            End::ClientGone => settle(JsFuture::from(self.stream.writer.abort())),
            End::ChannelDetached => {
                if let Some(write) = in_flight {
                    let _ = write.await;
                }
                let _ = self.start_write(&out).await;
                let _ = JsFuture::from(self.stream.writer.close()).await;
            }
            End::Failed { code, message } => {
                log("info", "stream ended by the relay", code, message);
                // A lagging client has not read what is queued; it resumes
                // from history after the last event it did process.
                if code == "lagging" {
                    out.clear();
                }
                let error = serde_json::json!({ "code": code, "message": message }).to_string();
                sse::write_event(&mut out, None, sse::STREAM_ERROR, &error);
                // Not awaited: a client that is not reading would hold the
                // pump forever. The frame and the close follow whatever write
                // is still queued.
                settle(self.start_write(&out));
                settle(JsFuture::from(self.stream.writer.close()));
            }
        }
    }
}

/// A structured log line about a stream; never with channel names or ids,
/// which carry tenant ids.
fn log(level: &str, msg: &str, code: &str, detail: &str) {
    let line = serde_json::json!({ "level": level, "msg": msg, "code": code, "detail": detail });
    if level == "error" {
        worker::console_error!("{line}");
    } else {
        worker::console_log!("{line}");
    }
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
