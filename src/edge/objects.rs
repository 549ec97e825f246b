//! Calls from the Worker to its Durable Objects, over their internal routes.

use edgestream_core::problem::Problem;
use serde::Serialize;
use worker::{Env, Method, ObjectNamespace, Request, RequestInit, Response, Stub};

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
