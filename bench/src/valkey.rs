//! Valkey for the bridge path and django-eventstream's backend: starting a
//! private valkey-server, and a minimal RESP client that pipelines
//! `PUBLISH events_channel <message>`, which is all the publisher needs.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::peers::Ctx;
use crate::process::{free_port, wait_port, Proc};

/// django-eventstream's Pub/Sub channel (and the bridge's default source).
pub const EVENTS_CHANNEL: &str = "events_channel";

/// Starts `.tools/bin/valkey-server` (from scripts/bootstrap) on a free
/// loopback port, without persistence.
pub async fn start_server(ctx: &Ctx, log_name: &str) -> Result<(Proc, SocketAddr), String> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut command = Command::new(ctx.root.join(".tools/bin/valkey-server"));
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&ctx.work);
    let mut proc = Proc::spawn("valkey", command, &ctx.work.join(format!("{log_name}.log")))?;
    wait_port(&mut proc, addr, Duration::from_secs(20)).await?;
    Ok((proc, addr))
}

pub struct Publisher {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    buf: Vec<u8>,
    line: String,
}

impl Publisher {
    pub async fn connect(addr: SocketAddr) -> Result<Publisher, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (read, write) = stream.into_split();
        Ok(Publisher {
            reader: BufReader::new(read),
            writer: write,
            buf: Vec::new(),
            line: String::new(),
        })
    }

    /// Publishes every message in one write and reads all replies. Returns
    /// the smallest receiver count, so a caller can tell that a message
    /// reached nobody.
    pub async fn publish_all(&mut self, messages: &[Vec<u8>]) -> Result<u64, String> {
        self.buf.clear();
        for m in messages {
            self.buf.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
            self.buf.extend_from_slice(
                format!("${}\r\n{EVENTS_CHANNEL}\r\n", EVENTS_CHANNEL.len()).as_bytes(),
            );
            self.buf
                .extend_from_slice(format!("${}\r\n", m.len()).as_bytes());
            self.buf.extend_from_slice(m);
            self.buf.extend_from_slice(b"\r\n");
        }
        self.writer
            .write_all(&self.buf)
            .await
            .map_err(|e| e.to_string())?;
        let mut least = u64::MAX;
        for _ in messages {
            self.line.clear();
            let n = self
                .reader
                .read_line(&mut self.line)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("valkey closed the connection".to_owned());
            }
            let reply = self.line.trim_end();
            match reply.strip_prefix(':') {
                Some(count) => {
                    least = least.min(count.parse().map_err(|_| format!("bad reply {reply}"))?)
                }
                None => return Err(format!("valkey answered {reply}")),
            }
        }
        Ok(if messages.is_empty() { 0 } else { least })
    }
}
