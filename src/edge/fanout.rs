//! Sending published events to the sockets an object holds (a channel's or a
//! shard's), rendered once per form and sent as one message per socket.
//!
//! Sockets are tagged with the form they take (`Delivery` in
//! `edgestream_core::protocol::channel`): relay records for streams of
//! several channels, pre-rendered SSE frames for streams of this channel
//! only. Each form is rendered only when some socket takes it, and each
//! message is turned into one JavaScript value for all sockets.

use edgestream_core::frames::FramesWriter;
use edgestream_core::protocol::channel::Delivery;
use edgestream_core::relay::{self, RelayRecord, RelayWriter};
use js_sys::Uint8Array;
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use wasm_bindgen::JsCast;
use worker::{State, WebSocket};

use super::log;

const FRAMES_TAG: &str = "frames";
const RELAY_TAG: &str = "relay";
/// The tag of a Worker isolate's hub socket (which also takes frames).
pub const HUB_TAG: &str = "hub";

/// The tag a socket of this delivery form carries.
pub fn delivery_tag(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::Frames => FRAMES_TAG,
        Delivery::Relay => RELAY_TAG,
    }
}

/// One published event waiting to go out.
pub struct Pending {
    pub seq: u64,
    pub event: String,
    pub data: String,
}

/// Sends `events` of `channel` to every socket of the object.
pub fn send_events(state: &State, channel: &str, events: &[Pending]) {
    let relay_sockets = state.get_websockets_with_tag(RELAY_TAG);
    let frames_sockets = state.get_websockets_with_tag(FRAMES_TAG);
    if !relay_sockets.is_empty() {
        let mut writer = RelayWriter::default();
        for e in events {
            writer.event(e.seq, &e.event, &e.data);
        }
        send_all(
            &relay_sockets,
            writer.into_messages().iter().map(|m| JsValue::from_str(m)),
        );
    }
    if !frames_sockets.is_empty() {
        let mut writer = FramesWriter::new(channel);
        for e in events {
            writer.event(e.seq, &e.event, &e.data);
        }
        send_all(&frames_sockets, frames(writer));
    }
}

/// Sends the events of a relay text (a shard's push) to every socket of the
/// object, cut into messages again and rendered as frames where wanted.
/// Returns the last sequence number in it.
pub fn send_relay(state: &State, channel: &str, relay_text: &str) -> Option<u64> {
    let relay_sockets = state.get_websockets_with_tag(RELAY_TAG);
    let frames_sockets = state.get_websockets_with_tag(FRAMES_TAG);
    let mut relay_writer = RelayWriter::default();
    let mut frames_writer = FramesWriter::new(channel);
    let mut last = None;
    for record in relay::records(relay_text) {
        match record {
            Ok(RelayRecord::Event { seq, event, data }) => {
                if !relay_sockets.is_empty() {
                    relay_writer.event(seq, event, data);
                }
                if !frames_sockets.is_empty() {
                    frames_writer.event(seq, event, data);
                }
                last = Some(seq);
            }
            Ok(_) => {}
            Err(_) => log::error("bad relay record in a push", "skipped"),
        }
    }
    send_all(
        &relay_sockets,
        relay_writer
            .into_messages()
            .iter()
            .map(|m| JsValue::from_str(m)),
    );
    send_all(&frames_sockets, frames(frames_writer));
    last
}

/// Sends the events of a relay text (a page of history) to one socket as
/// frames. Returns the last sequence number in it.
pub fn send_frames(socket: &WebSocket, channel: &str, relay_text: &str) -> Option<u64> {
    let mut writer = FramesWriter::new(channel);
    let mut last = None;
    for record in relay::records(relay_text) {
        if let Ok(RelayRecord::Event { seq, event, data }) = record {
            writer.event(seq, event, data);
            last = Some(seq);
        }
    }
    send_all(std::slice::from_ref(socket), frames(writer));
    last
}

fn frames(writer: FramesWriter) -> impl Iterator<Item = JsValue> {
    writer
        .into_messages()
        .into_iter()
        .map(|m| Uint8Array::from(&m[..]).into())
}

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen only for `send` with a value that is already a
    /// JavaScript string or byte array (web-sys's `send_with_str` converts on
    /// every call).
    type Socket;
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send(this: &Socket, data: &JsValue) -> std::result::Result<(), JsValue>;
}

/// Sends every message to every socket: each message is one JavaScript value
/// for all of them, converted from wasm memory once, not once per socket.
fn send_all(sockets: &[WebSocket], messages: impl Iterator<Item = JsValue>) {
    let messages: Vec<JsValue> = messages.collect();
    if messages.is_empty() {
        return;
    }
    for ws in sockets {
        let socket: &web_sys::WebSocket = ws.as_ref();
        for message in &messages {
            // A socket that fails here is closing; its close handler cleans up.
            let _ = socket.unchecked_ref::<Socket>().send(message);
        }
    }
}
