//! The Rust side of `body.js`: a stream's response body, written like a
//! WritableStream's writer and read by workerd as the response.

use edgestream_core::config::StreamBody;
use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;

/// What the body takes before its writes wait (`desiredSize` goes to zero);
/// unread bytes are this minus `desiredSize`.
pub const HIGH_WATER_MARK: usize = 64 * 1024;

#[wasm_bindgen(module = "/src/edge/body.js")]
extern "C" {
    pub type Body;
    #[wasm_bindgen(js_name = openBody)]
    fn open_body(script: bool, high_water_mark: f64) -> Body;
    /// The response's side of the body.
    #[wasm_bindgen(method, getter)]
    pub fn readable(this: &Body) -> web_sys::ReadableStream;
    /// Settles once the body has room again; rejects once the client is gone.
    #[wasm_bindgen(method)]
    pub fn write(this: &Body, chunk: &Uint8Array) -> Promise;
    /// Ends the body after what is queued.
    #[wasm_bindgen(method)]
    pub fn close(this: &Body) -> Promise;
    /// Ends the body now.
    #[wasm_bindgen(method)]
    pub fn abort(this: &Body) -> Promise;
}

impl Body {
    pub fn open(kind: StreamBody) -> Self {
        open_body(kind == StreamBody::Script, HIGH_WATER_MARK as f64)
    }
}
