//! The Rust side of `frame_tap.js`, the live path of a stream of one channel:
//! what the tap hands back to the pump arrives as [`TapSignal`]s.

use edgestream_core::usage::Delivered;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;

use super::body::{Body, HIGH_WATER_MARK};

/// What the tap hands to the pump.
pub enum TapSignal {
    /// A text message: relay records the object sent on attach.
    Relay(String),
    /// The socket closed, with its close code when it had one.
    Closed(Option<u16>),
    /// The client has more unread bytes than the stream allows.
    Lagging,
    /// Frames from `first` on wait: events after `cursor` are missing.
    Gap { first: u64, cursor: u64 },
    /// The stream is to attach its isolate's hub socket (`hub.js`).
    Own,
}

/// The `code`s with which the tap reports a lagging client and a gap.
const LAGGING: i32 = -1;
const GAP: i32 = -2;
const OWN: i32 = -3;

type OnControl = Closure<dyn FnMut(Option<String>, i32, f64, f64)>;

pub struct Tap {
    tap: FrameTap,
    // Called by the tap for as long as it listens.
    _on_control: OnControl,
}

impl Tap {
    /// Starts listening on `socket` (before it is accepted, so nothing the
    /// object queues is missed), or, without one, on what a hub hands it.
    /// Binary messages are held until [`release`].
    ///
    /// [`release`]: Tap::release
    pub fn listen(
        socket: Option<&web_sys::WebSocket>,
        body: &Body,
        max_pending_bytes: usize,
        mut signal: impl FnMut(TapSignal) + 'static,
    ) -> Self {
        let on_control = OnControl::new(
            move |text: Option<String>, code: i32, first: f64, cursor: f64| {
                signal(match (text, code) {
                    (Some(text), _) => TapSignal::Relay(text),
                    (None, LAGGING) => TapSignal::Lagging,
                    (None, GAP) => TapSignal::Gap {
                        first: first as u64,
                        cursor: cursor as u64,
                    },
                    (None, OWN) => TapSignal::Own,
                    (None, code) => TapSignal::Closed(u16::try_from(code).ok().filter(|c| *c != 0)),
                })
            },
        );
        let tap = FrameTap::new(
            socket,
            body,
            HIGH_WATER_MARK as f64,
            max_pending_bytes as f64,
            &on_control,
        );
        Self {
            tap,
            _on_control: on_control,
        }
    }

    /// The JavaScript tap, for the hub to hand messages to.
    pub fn js(&self) -> &wasm_bindgen::JsValue {
        self.tap.as_ref()
    }

    /// Everything up to `cursor` has been written: live frames go straight
    /// to the response from now on, starting with the held ones.
    pub fn release(&self, cursor: u64) {
        self.tap.release(cursor as f64);
    }

    /// The last sequence number the tap wrote (or was released at).
    pub fn position(&self) -> u64 {
        self.tap.position() as u64
    }

    /// What the tap wrote to the response.
    pub fn delivered(&self) -> Delivered {
        Delivered {
            events: self.tap.events() as u64,
            bytes: self.tap.bytes() as u64,
        }
    }

    pub fn stop(&self) {
        self.tap.stop();
    }
}

#[wasm_bindgen(module = "/src/edge/frame_tap.js")]
extern "C" {
    type FrameTap;
    #[wasm_bindgen(constructor)]
    fn new(
        socket: Option<&web_sys::WebSocket>,
        body: &Body,
        high_water_mark: f64,
        max_pending_bytes: f64,
        on_control: &OnControl,
    ) -> FrameTap;
    #[wasm_bindgen(method)]
    fn release(this: &FrameTap, cursor: f64);
    #[wasm_bindgen(method)]
    fn position(this: &FrameTap) -> f64;
    #[wasm_bindgen(method)]
    fn stop(this: &FrameTap);
    #[wasm_bindgen(method, getter)]
    fn events(this: &FrameTap) -> f64;
    #[wasm_bindgen(method, getter)]
    fn bytes(this: &FrameTap) -> f64;
}
