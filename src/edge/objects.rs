//! Sends the typed internal calls of `edgestream_core::protocol` to an
//! object's stub, and reads what arrived on the object's side back into the
//! protocol's terms. Nothing else touches the runtime's request objects for
//! internal calls.

use edgestream_core::problem::Problem;
use edgestream_core::protocol::{Call, Incoming, Method as CallMethod};
use edgestream_core::residency::Jurisdiction;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Headers, Method, ObjectNamespace, Request, Response, ResponseBody, State, Stub};

use super::http::internal;

/// The stub of the object `name` in `namespace`, made in `jurisdiction`
/// (`edgestream_core::residency`). Every object of the relay is reached
/// through here: the same name in two jurisdictions is two objects, so
/// nothing may make an id any other way.
pub fn stub(
    namespace: &ObjectNamespace,
    jurisdiction: Option<Jurisdiction>,
    name: &str,
) -> Result<Stub, Problem> {
    let placed;
    let namespace = match jurisdiction {
        None => namespace,
        Some(jurisdiction) => {
            placed = within(namespace, jurisdiction)?;
            &placed
        }
    };
    namespace
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(internal)
}

/// `namespace.jurisdiction(name)`, which workers-rs does not bind. A runtime
/// that cannot place objects there (workerd outside Cloudflare throws for
/// every jurisdiction) fails the request: falling back to the namespace
/// outside any jurisdiction would put the tenant's data where it must not be.
fn within(
    namespace: &ObjectNamespace,
    jurisdiction: Jurisdiction,
) -> Result<ObjectNamespace, Problem> {
    let raw: &JsValue = namespace.as_ref();
    js_sys::Reflect::get(raw, &JsValue::from_str("jurisdiction"))
        .and_then(|method| method.dyn_into::<js_sys::Function>())
        .and_then(|method| method.call1(raw, &JsValue::from_str(jurisdiction.as_str())))
        .map(JsCast::unchecked_into)
        .map_err(|error| {
            super::log::error(
                "jurisdiction unavailable",
                &format!("{jurisdiction}: {}", worker::Error::from(error)),
            );
            Problem::unavailable("the relay cannot reach the data location of this tenant")
        })
}

/// The jurisdiction the object itself was made in, as the platform reports
/// on its id: the place its shards and its tenant's object are addressed in,
/// whatever a request or the configuration says.
pub fn own_jurisdiction(state: &State) -> std::result::Result<Option<Jurisdiction>, String> {
    let raw: &JsValue = state.as_raw().as_ref();
    let reported = js_sys::Reflect::get(raw, &JsValue::from_str("id"))
        .and_then(|id| js_sys::Reflect::get(&id, &JsValue::from_str("jurisdiction")))
        .map_err(|e| worker::Error::from(e).to_string())?;
    Jurisdiction::of_object(reported.as_string().as_deref())
}

/// Sends `call` to the object. A runtime failure (the object is overloaded,
/// restarting, or unreachable) is the object refusing work: 503 `overloaded`,
/// which callers pass on with `Retry-After` or retry themselves.
pub async fn send(stub: &Stub, call: &Call) -> Result<Response, Problem> {
    let request = request(call).map_err(internal)?;
    stub.fetch_with_request(request).await.map_err(overloaded)
}

fn request(call: &Call) -> worker::Result<Request> {
    let init = web_sys::RequestInit::new();
    if call.upgrade {
        let headers = Headers::new();
        headers.set("Upgrade", "websocket")?;
        init.set_headers(headers.as_ref());
    }
    if call.method == CallMethod::Post {
        init.set_method("POST");
        if let Some(body) = &call.body {
            init.set_body(&JsValue::from_str(body));
        }
    }
    super::http::request(&call.url(), &init)
}

/// Logs why an object could not be reached (the runtime's text says which
/// object failed how, and names no client input) and answers `overloaded`.
pub fn overloaded(error: worker::Error) -> Problem {
    super::log::error("object unavailable", &error.to_string());
    Problem::overloaded("the relay is busy; retry shortly")
}

/// Resets the object (`ctx.abort()`): the runtime drops its memory and closes
/// its sockets, as a deploy does, and starts it again from storage on its
/// next request. workers-rs has no binding for it.
///
/// The object answers first, and a JavaScript timer calls `abort` bound to
/// the state, with no Rust frame on the stack: `abort` throws, and a throw
/// through the task queue that polls Rust futures leaves that queue marked
/// as running, so no future in the isolate would ever be polled again.
pub fn abort(state: &State) -> worker::Result<Response> {
    let raw: &JsValue = state.as_raw().as_ref();
    let abort = js_sys::Reflect::get(raw, &JsValue::from_str("abort"))?
        .dyn_into::<js_sys::Function>()?
        .bind1(raw, &JsValue::from_str("reset"));
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))?
        .dyn_into::<js_sys::Function>()?
        .call2(&global, &abort, &JsValue::from(1))?;
    Response::empty().map(|r| r.with_status(204))
}

/// How many of the object's sockets carry `attachment` (a presence seat or
/// subject): the streams that one socket's close leaves of it.
pub fn sockets_with<T: serde::de::DeserializeOwned + PartialEq>(
    state: &State,
    attachment: &T,
) -> u64 {
    state
        .get_websockets()
        .iter()
        .filter(|socket| {
            socket.deserialize_attachment::<T>().ok().flatten().as_ref() == Some(attachment)
        })
        .count() as u64
}

/// What arrived at an object, with its body read. The parsed request
/// borrows from it.
pub struct Arrived {
    method: CallMethod,
    path: String,
    query: String,
    body: Vec<u8>,
}

impl Arrived {
    pub async fn read(req: &mut Request) -> worker::Result<Self> {
        let url = req.url()?;
        let method = match req.method() {
            Method::Post => CallMethod::Post,
            _ => CallMethod::Get,
        };
        let body = if method == CallMethod::Post {
            req.bytes().await?
        } else {
            Vec::new()
        };
        Ok(Arrived {
            method,
            path: url.path().to_owned(),
            query: url.query().unwrap_or_default().to_owned(),
            body,
        })
    }

    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            method: self.method,
            path: &self.path,
            query: &self.query,
            body: &self.body,
        }
    }
}

/// An object's answer as text. workers-rs reads a fetched body through a Rust
/// stream, a reader call, a read and a lock release per chunk, each a crossing
/// into JavaScript; a native `Response` around the same stream reads it in one
/// call. Every publish and every history page is read this way.
pub async fn text(response: Response) -> Result<String, Problem> {
    match response.body() {
        ResponseBody::Stream(stream) => {
            let native = web_sys::Response::new_with_opt_readable_stream(Some(stream))
                .map_err(js_internal)?;
            let text = JsFuture::from(native.text().map_err(js_internal)?)
                .await
                .map_err(js_internal)?;
            text.as_string()
                .ok_or_else(|| Problem::internal("an object's answer is not text"))
        }
        ResponseBody::Body(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|e| Problem::internal(e.to_string()))
        }
        ResponseBody::Empty => Ok(String::new()),
    }
}

fn js_internal(error: wasm_bindgen::JsValue) -> Problem {
    internal(worker::Error::from(error))
}
