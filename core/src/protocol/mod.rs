//! The protocol between the Worker and its Durable Objects.
//!
//! Objects are reached only through their stubs, so no client ever speaks
//! this protocol; it is still typed, in one place, because both ends of every
//! call are built from it. The Worker turns a request value into a [`Call`]
//! and the glue sends it; the object hands what arrived to the same type's
//! parser and dispatches on the result. No other file spells a path, a query
//! parameter or a body layout. (tokio-rs/mini-redis's `cmd/` is the model:
//! one enum per object, one file per request with its parse beside it.)
//!
//! During a deploy old and new code run side by side, so a request an object
//! does not understand is answered as such (the caller treats the object as
//! unavailable) rather than guessed at.

pub mod channel;
mod query;
pub mod tenant;
pub mod ticket;

use std::fmt;

pub use query::Query;

/// The host every internal URL names. Stubs route by object, not by host, so
/// this only has to be a valid URL.
const ORIGIN: &str = "https://object";

/// An internal request, ready for the glue to send to an object's stub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    pub path: &'static str,
    /// Already encoded; empty for none.
    pub query: String,
    pub body: Option<String>,
    /// The request asks the object to accept a WebSocket.
    pub upgrade: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Call {
    fn get(path: &'static str, query: Query) -> Self {
        Call {
            method: Method::Get,
            path,
            query: query.finish(),
            body: None,
            upgrade: false,
        }
    }

    fn post(path: &'static str, body: String) -> Self {
        Call {
            method: Method::Post,
            path,
            query: String::new(),
            body: Some(body),
            upgrade: false,
        }
    }

    /// The URL the glue builds the runtime's request with.
    pub fn url(&self) -> String {
        if self.query.is_empty() {
            format!("{ORIGIN}{}", self.path)
        } else {
            format!("{ORIGIN}{}?{}", self.path, self.query)
        }
    }
}

/// An internal request as it reached an object.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub method: Method,
    pub path: &'a str,
    /// The URL's query, without the `?`.
    pub query: &'a str,
    pub body: &'a [u8],
}

/// A request or answer an object or the Worker cannot read. Only another
/// version of this code can produce one, so it is never a client's fault;
/// the message is for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(String);

impl ProtocolError {
    fn new(message: impl Into<String>) -> Self {
        ProtocolError(message.into())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "internal protocol: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Parses a JSON body of an internal request or answer.
fn json<'a, T: serde::Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| ProtocolError::new(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol values are plain data and always serialise")
}

fn text<'a>(body: &'a [u8], what: &str) -> Result<&'a str, ProtocolError> {
    std::str::from_utf8(body).map_err(|_| ProtocolError::new(format!("{what}: not UTF-8")))
}
