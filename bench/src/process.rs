//! Server processes started for a run: each in its own process group, so
//! stopping it also stops what it started (node starts workerd, nginx its
//! worker, uvicorn its workers), and never anything else.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http;

pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Proc, String> {
        use std::os::unix::process::CommandExt;
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", command.get_program()))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM to the group, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let group = -(self.child.id() as i32);
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Children that outlived their parent are in the group too.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Polls `GET path` until it answers 200, the process dies, or `timeout`.
pub async fn wait_healthy(
    proc: &mut Proc,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if let Ok((status, _)) = http::get_once(addr, path, Duration::from_secs(2)).await {
            if status.is_success() {
                return Ok(started.elapsed());
            }
        }
        if !proc.alive() {
            return Err(format!("{} exited while starting", proc.name));
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "{} did not answer {path} within {timeout:?}",
                proc.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a TCP port to accept connections (Valkey).
pub async fn wait_port(proc: &mut Proc, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if !proc.alive() {
            return Err(format!("{} exited while starting", proc.name));
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "{} did not listen on {addr} within {timeout:?}",
                proc.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
