//! `GET /v1/stream`: authenticates, passes the tenant gate, attaches one
//! WebSocket per channel to the channels' Durable Objects, and pumps what they
//! send into a single `text/event-stream` response.
//!
//! The Worker, not the Durable Object, holds the browser's response: the
//! objects then only hold hibernatable sockets and cost nothing while idle.

use std::pin::Pin;
use std::time::Duration;

use edgestream_core::channel::{authorize_tenant, requested_channels, ChannelName};
use edgestream_core::cursor::{Cursor, CursorEncoder};
use edgestream_core::problem::Problem;
use edgestream_core::relay::{self, RelayRecord};
use edgestream_core::sse;
use futures_util::stream::{self, select_all, Stream, StreamExt};
use futures_util::future::{select, Either};
use futures_util::FutureExt;
use js_sys::Uint8Array;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{
    Delay, Env, Headers, ObjectNamespace, Request, RequestInit, Response, WebSocket, WebsocketEvent,
};

use super::auth::{self, Sources};
use super::config::Config;
use super::http::internal;

/// A stream whose client has not taken this much of what was already ready
/// to send is lagging: it is closed with `stream-error` (`lagging`) and resumes
/// from history on reconnect, rather than growing without bound in memory.
const MAX_PENDING_BYTES: usize = 1 << 20;

pub async fn open(req: Request, env: &Env, config: &Config) -> Result<Response, Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let claims = auth::authenticate(&req, &url, config, Sources::HeaderOrQuery, now)?;
    let query: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
    let channels = requested_channels(
        query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        config.settings.max_channels_per_stream,
    )?;
    authorize_tenant(claims.tenant.as_deref(), &channels)?;
    let resume = resume_cursor(&req, &url)?;

    let namespace = env.durable_object("CHANNELS").map_err(internal)?;
    let sockets = futures_util::future::try_join_all(channels.iter().map(|channel| {
        // With a cursor, a channel it does not name was never seen: replay it all.
        let after = resume.as_ref().map(|c| c.get(channel.as_str()).unwrap_or(0));
        attach(&namespace, channel, after)
    }))
    .await?;

    let pipe = web_sys::TransformStream::new().map_err(|e| internal(e.into()))?;
    let writer = pipe
        .writable()
        .get_writer()
        .map_err(|e| internal(e.into()))?;
    let settings = &config.settings;
    let mut cursor = CursorEncoder::new(channels.iter().map(ChannelName::as_str));
    if let Some(resume) = &resume {
        for (index, channel) in channels.iter().enumerate() {
            cursor.set(index, resume.get(channel.as_str()).unwrap_or(0));
        }
    }
    let pump = Pump {
        channels,
        cursor,
        keepalive: Duration::from_secs(settings.keepalive_seconds),
        retry_ms: settings.retry_ms,
        expires_at: claims.expires_at,
        signal: req.inner().signal(),
        writer,
    };
    wasm_bindgen_futures::spawn_local(pump.run(sockets));

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
        .stream(pipe.readable()))
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

/// Opens a hibernatable WebSocket to the channel's Durable Object. `after` is
/// the last sequence number the client saw; `None` asks for current state.
async fn attach(
    namespace: &ObjectNamespace,
    channel: &ChannelName,
    after: Option<u64>,
) -> Result<WebSocket, Problem> {
    let stub = namespace
        .id_from_name(channel.as_str())
        .and_then(|id| id.get_stub())
        .map_err(internal)?;
    let url = match after {
        Some(after) => format!("https://channel/subscribe?after={after}"),
        None => "https://channel/subscribe".to_owned(),
    };
    let headers = Headers::new();
    headers.set("Upgrade", "websocket").map_err(internal)?;
    let request =
        Request::new_with_init(&url, RequestInit::new().with_headers(headers)).map_err(internal)?;
    let response = stub.fetch_with_request(request).await.map_err(internal)?;
    response
        .websocket()
        .ok_or_else(|| Problem::unavailable("the channel did not accept the stream"))
}

enum Input {
    Relay(usize, String),
    Detached,
    KeepAlive,
    Expired,
    Disconnected,
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
const TOKEN_EXPIRED: End = End::Failed {
    code: "token_expired",
    message: "the access token expired",
};

/// Everything one open stream needs after the response has been returned.
struct Pump {
    channels: Vec<ChannelName>,
    cursor: CursorEncoder,
    keepalive: Duration,
    retry_ms: u64,
    expires_at: u64,
    signal: web_sys::AbortSignal,
    writer: web_sys::WritableStreamDefaultWriter,
}

impl Pump {
    async fn run(mut self, sockets: Vec<WebSocket>) {
        // Listen before accepting: the object queues its replay as soon as it
        // accepted the socket, and messages that arrive with no listener are lost.
        let mut sources: Vec<Inputs> = Vec::with_capacity(sockets.len() + 3);
        for (index, socket) in sockets.iter().enumerate() {
            let Ok(events) = socket.events() else {
                return self.finish(&sockets, End::ChannelDetached, String::new(), None).await;
            };
            sources.push(Box::pin(events.map(move |event| match event {
                Ok(WebsocketEvent::Message(message)) => {
                    message.text().map_or(Input::Detached, |text| Input::Relay(index, text))
                }
                Ok(WebsocketEvent::Close(_)) | Err(_) => Input::Detached,
            })));
        }
        if sockets.iter().any(|socket| socket.accept().is_err()) {
            return self.finish(&sockets, End::ChannelDetached, String::new(), None).await;
        }
        let keepalive = self.keepalive;
        sources.push(Box::pin(stream::unfold((), move |()| async move {
            Delay::from(keepalive).await;
            Some((Input::KeepAlive, ()))
        })));
        sources.push(Box::pin(token_expiry(self.expires_at).into_stream()));
        let (disconnected, on_abort) = abort_listener(&self.signal);
        sources.push(Box::pin(disconnected.into_stream().map(|_| Input::Disconnected)));
        let mut inputs = select_all(sources);

        let mut out = String::new();
        sse::write_retry(&mut out, self.retry_ms);
        let names: Vec<&str> = self.channels.iter().map(ChannelName::as_str).collect();
        let open = serde_json::json!({ "channels": names }).to_string();
        sse::write_event(&mut out, None, sse::STREAM_OPEN, &open);

        // One write is in flight at a time. Whatever arrives meanwhile is
        // encoded into `out` and goes in the next write, so a busy stream
        // coalesces many events into one crossing into JavaScript, and a
        // client that stops reading shows up as `out` growing past the limit
        // instead of as unbounded memory.
        let mut in_flight: Option<JsFuture> = None;
        let end = loop {
            if in_flight.is_none() && !out.is_empty() {
                in_flight = Some(self.start_write(&out));
                out.clear();
            }
            let input = match in_flight.as_mut() {
                Some(write) => match select(inputs.next(), write).await {
                    Either::Left((input, _)) => input,
                    Either::Right((Ok(_), _)) => {
                        in_flight = None;
                        continue;
                    }
                    Either::Right((Err(_), _)) => break End::ClientGone,
                },
                None => inputs.next().await,
            };
            match input {
                Some(Input::Relay(index, message)) => self.encode(&mut out, index, &message),
                Some(Input::KeepAlive) => sse::write_comment(&mut out, sse::KEEP_ALIVE),
                Some(Input::Expired) => break TOKEN_EXPIRED,
                Some(Input::Detached) => break End::ChannelDetached,
                Some(Input::Disconnected) | None => break End::ClientGone,
            }
            if out.len() > MAX_PENDING_BYTES {
                break LAGGING;
            }
        };
        drop(inputs);
        drop(on_abort);
        self.finish(&sockets, end, out, in_flight).await;
    }

    /// Appends the SSE frames for one relay message from channel `index`.
    fn encode(&mut self, out: &mut String, index: usize, message: &str) {
        // After a reset the channel's current state follows, at or below the
        // head the cursor was moved to; only then is an old sequence expected.
        let mut state_after_reset = false;
        for record in relay::records(message) {
            match record {
                Ok(RelayRecord::Event { seq, event, data }) => {
                    let seen = self.cursor.get(index).unwrap_or(0);
                    if seq <= seen && !state_after_reset {
                        continue;
                    }
                    self.cursor.set(index, seq.max(seen));
                    sse::write_event(out, Some(&self.cursor.encode()), event, data);
                }
                Ok(RelayRecord::Reset { head }) => {
                    state_after_reset = true;
                    self.cursor.set(index, head);
                    let channel = self.channels[index].as_str();
                    let reset = serde_json::json!({ "channels": [channel] }).to_string();
                    sse::write_event(out, None, sse::STREAM_RESET, &reset);
                }
                Ok(RelayRecord::Live { head }) => {
                    state_after_reset = false;
                    let seen = self.cursor.get(index).unwrap_or(0);
                    self.cursor.set(index, head.max(seen));
                }
                Err(record) => worker::console_error!(
                    "{}",
                    serde_json::json!({"level": "error", "msg": "bad relay record", "record": record})
                ),
            }
        }
    }

    fn start_write(&self, text: &str) -> JsFuture {
        let chunk = Uint8Array::from(text.as_bytes());
        JsFuture::from(self.writer.write_with_chunk(&chunk))
    }

    /// Ends the stream. The channel sockets are closed first so the objects
    /// release them at once, whatever happens to the response.
    async fn finish(&self, sockets: &[WebSocket], end: End, mut out: String, in_flight: Option<JsFuture>) {
        for socket in sockets {
            let _ = socket.close(Some(1000), Some("stream closed"));
        }
        match end {
            End::ClientGone => settle(JsFuture::from(self.writer.abort())),
            End::ChannelDetached => {
                if let Some(write) = in_flight {
                    let _ = write.await;
                }
                let _ = self.start_write(&out).await;
                let _ = JsFuture::from(self.writer.close()).await;
            }
            End::Failed { code, message } => {
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
                settle(JsFuture::from(self.writer.close()));
            }
        }
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
