//! Calls from the Worker to its Durable Objects, over their internal routes.

use edgestream_core::problem::Problem;
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Method, ObjectNamespace, Request, RequestInit, Response, ResponseBody, Stub};

use super::http::internal;

/// The stub of the object `name` in the namespace bound as `binding`.
pub fn stub(env: &Env, binding: &str, name: &str) -> Result<Stub, Problem> {
    let namespace = env.durable_object(binding).map_err(internal)?;
    stub_in(&namespace, name)
}

pub fn stub_in(namespace: &ObjectNamespace, name: &str) -> Result<Stub, Problem> {
    namespace
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(internal)
}

/// POSTs `body` as JSON to one of an object's internal routes.
pub async fn post<T: Serialize>(stub: &Stub, url: &str, body: &T) -> Result<Response, Problem> {
    let body = serde_json::to_string(body).map_err(|e| Problem::internal(e.to_string()))?;
    let request = Request::new_with_init(
        url,
        RequestInit::new()
            .with_method(Method::Post)
            .with_body(Some(body.into())),
    )
    .map_err(internal)?;
    stub.fetch_with_request(request).await.map_err(internal)
}

/// An object's answer as text. workers-rs reads a fetched body through a Rust
/// stream, a reader call, a read and a lock release per chunk, each a crossing
/// into JavaScript; a native `Response` around the same stream reads it in one
/// call. Every publish and every history page is read this way.
pub async fn text(response: Response) -> Result<String, Problem> {
    match response.body() {
        ResponseBody::Stream(stream) => {
            let native = web_sys::Response::new_with_opt_readable_stream(Some(stream)).map_err(js_internal)?;
            let text = JsFuture::from(native.text().map_err(js_internal)?).await.map_err(js_internal)?;
            text.as_string().ok_or_else(|| Problem::internal("an object's answer is not text"))
        }
        ResponseBody::Body(bytes) => String::from_utf8(bytes.clone()).map_err(|e| Problem::internal(e.to_string())),
        ResponseBody::Empty => Ok(String::new()),
    }
}

/// An object's answer, parsed from JSON.
pub async fn json<T: DeserializeOwned>(response: Response) -> Result<T, Problem> {
    serde_json::from_str(&text(response).await?).map_err(|e| Problem::internal(e.to_string()))
}

fn js_internal(error: wasm_bindgen::JsValue) -> Problem {
    internal(worker::Error::from(error))
}
