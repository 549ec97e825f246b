//! Listening on a channel socket of a stream of several channels: relay
//! messages and the close arrive as [`RelaySignal`]s, in the stream's own
//! request context (the socket belongs to the stream's invocation).

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent};

pub enum RelaySignal {
    Message(String),
    /// The socket closed, with its close code when it had one.
    Closed(Option<u16>),
}

pub struct RelaySocket {
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut()>,
}

impl RelaySocket {
    /// Listens before the socket is accepted, so nothing the object queues
    /// on attach is missed.
    pub fn listen(
        socket: &web_sys::WebSocket,
        signal: impl FnMut(RelaySignal) + Clone + 'static,
    ) -> Self {
        let mut on_text = signal.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            on_text(match event.data().as_string() {
                Some(text) => RelaySignal::Message(text),
                // Relay sockets carry text only; anything else is a broken socket.
                None => RelaySignal::Closed(None),
            })
        });
        let mut on_end = signal.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            on_end(RelaySignal::Closed(Some(event.code()).filter(|c| *c != 0)))
        });
        let mut on_failure = signal;
        let on_error = Closure::<dyn FnMut()>::new(move || on_failure(RelaySignal::Closed(None)));
        let target: &web_sys::EventTarget = socket.unchecked_ref();
        let _ =
            target.add_event_listener_with_callback("message", on_message.as_ref().unchecked_ref());
        let _ = target.add_event_listener_with_callback("close", on_close.as_ref().unchecked_ref());
        let _ = target.add_event_listener_with_callback("error", on_error.as_ref().unchecked_ref());
        RelaySocket {
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
        }
    }
}
