//! HTTP/1.1 over loopback with hyper's low-level client: one TCP connection
//! per subscriber, one kept-alive connection per publisher.
//!
//! hyper's connection API is used instead of a pooled client because the
//! benchmark wants exactly one connection per stream, no pool bookkeeping
//! per request, and no TLS or proxy code in the measured path.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Sender = SendRequest<Full<Bytes>>;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// An error with its chain of causes ("connection error: connection reset").
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    // Bounded: error chains are short, and the depth is capped anyway.
    for _ in 0..8 {
        let Some(s) = source else { break };
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Opens a connection and drives it on its own task.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Sender, Error> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn request(
    method: Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Error> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    Ok(builder.body(Full::new(body))?)
}

/// Sends a GET and returns the response with its body still streaming.
pub async fn get_stream(
    sender: &mut Sender,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Result<Response<Incoming>, Error> {
    sender.ready().await?;
    Ok(sender
        .send_request(request(Method::GET, addr, path, headers, Bytes::new())?)
        .await?)
}

/// Sends a request on a kept-alive connection and reads the whole answer.
pub async fn send(
    sender: &mut Sender,
    method: Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(StatusCode, Bytes), Error> {
    sender.ready().await?;
    let response = sender
        .send_request(request(method, addr, path, headers, body)?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One GET on a fresh connection: for health checks while a server starts.
pub async fn get_once(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), Error> {
    tokio::time::timeout(timeout, async {
        let mut sender = connect(addr, timeout).await?;
        send(&mut sender, Method::GET, addr, path, &[], Bytes::new()).await
    })
    .await
    .map_err(|_| "request timed out")?
}
