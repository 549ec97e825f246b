//! Memory and CPU of the server processes, read from /proc.
//!
//! Each peer is a process tree (node launching workerd, nginx's master and
//! worker, uvicorn, plus Valkey and the bridge where they take part), so the
//! sampler follows every descendant of the roots it is given, grouped by the
//! role the root was started for. Peak RSS is the highest sampled sum of
//! `VmRSS` per role (what the machine had to hold at once); each process's
//! own `VmHWM` is kept as well, which catches peaks between samples.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often memory is sampled.
const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default, Serialize)]
pub struct RoleUsage {
    /// Highest sampled sum of VmRSS over the role's processes, MiB.
    pub peak_rss_mb: f64,
    /// Sum of each process's own VmHWM at the end, MiB (an upper bound of the peak).
    pub hwm_sum_mb: f64,
    /// RSS in the last sample, MiB.
    pub last_rss_mb: f64,
    /// CPU time (user + system) used during the sampling, seconds.
    pub cpu_s: f64,
    /// Names of the processes seen (`comm`).
    pub processes: Vec<String>,
}

pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<BTreeMap<String, RoleUsage>>,
    latest: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Sampler {
    /// Starts sampling the trees rooted at `roots` (role, pid).
    pub fn start(roots: Vec<(String, u32)>) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let latest = Arc::new(Mutex::new(BTreeMap::new()));
        let latest_w = Arc::clone(&latest);
        let task = tokio::spawn(async move {
            let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
            let mut usage: BTreeMap<String, RoleUsage> = BTreeMap::new();
            // CPU ticks per pid at first sight and last sight.
            let mut cpu_first: HashMap<u32, u64> = HashMap::new();
            let mut cpu_last: HashMap<u32, (String, u64)> = HashMap::new();
            let mut hwm: HashMap<u32, (String, u64)> = HashMap::new();
            let mut tree: Vec<(String, u32)> = Vec::new();
            let mut round = 0u64;
            loop {
                if round.is_multiple_of(10) {
                    tree = expand(&roots);
                }
                round += 1;
                let mut sums: BTreeMap<String, u64> = BTreeMap::new();
                for (role, pid) in &tree {
                    let Some(status) = read_status(*pid) else {
                        continue;
                    };
                    *sums.entry(role.clone()).or_default() += status.rss_kb;
                    hwm.insert(*pid, (role.clone(), status.hwm_kb));
                    let entry = usage.entry(role.clone()).or_default();
                    if !entry.processes.contains(&status.name) {
                        entry.processes.push(status.name.clone());
                    }
                    if let Some(ticks) = read_cpu_ticks(*pid) {
                        cpu_first.entry(*pid).or_insert(ticks);
                        cpu_last.insert(*pid, (role.clone(), ticks));
                    }
                }
                {
                    let mut latest = latest_w.lock().expect("sampler lock");
                    latest.clear();
                    for (role, kb) in &sums {
                        let mb = *kb as f64 / 1024.0;
                        latest.insert(role.clone(), mb);
                        let entry = usage.entry(role.clone()).or_default();
                        entry.peak_rss_mb = entry.peak_rss_mb.max(mb);
                        entry.last_rss_mb = mb;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(INTERVAL) => {}
                    _ = stopped.changed() => break,
                }
            }
            for (role, kb) in hwm.values() {
                usage.entry(role.clone()).or_default().hwm_sum_mb += *kb as f64 / 1024.0;
            }
            for (pid, (role, last)) in &cpu_last {
                let first = cpu_first.get(pid).copied().unwrap_or(*last);
                usage.entry(role.clone()).or_default().cpu_s += (last - first) as f64 / ticks_per_s;
            }
            usage
        });
        Sampler { stop, task, latest }
    }

    /// RSS per role in the latest sample, MiB.
    pub fn current(&self) -> BTreeMap<String, f64> {
        self.latest.lock().expect("sampler lock").clone()
    }

    pub async fn finish(self) -> BTreeMap<String, RoleUsage> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

struct Status {
    name: String,
    rss_kb: u64,
    hwm_kb: u64,
}

fn read_status(pid: u32) -> Option<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut status = Status {
        name: String::new(),
        rss_kb: 0,
        hwm_kb: 0,
    };
    for line in text.lines() {
        let kb = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if let Some(name) = line.strip_prefix("Name:") {
            status.name = name.trim().to_owned();
        } else if line.starts_with("VmRSS:") {
            status.rss_kb = kb();
        } else if line.starts_with("VmHWM:") {
            status.hwm_kb = kb();
        }
    }
    Some(status)
}

/// utime + stime of one process, in clock ticks.
fn read_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After ')': state(3) ppid(4) ... utime is field 14, stime 15 (1-based in stat).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

fn comm(pid: u32) -> Option<String> {
    Some(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_owned(),
    )
}

/// Every process under each root (the root included), labelled with its role.
pub fn expand(roots: &[(String, u32)]) -> Vec<(String, u32)> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(parent) = parent_of(pid) {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    for (role, root) in roots {
        let mut stack = vec![(role.clone(), *root)];
        // Bounded: a pid is visited once.
        let mut seen = std::collections::HashSet::new();
        while let Some((role, pid)) = stack.pop() {
            if !seen.insert(pid) {
                continue;
            }
            // node only launches workerd: the runtime that serves is the server.
            let role = if role == "launcher" && comm(pid).as_deref() == Some("workerd") {
                "server".to_owned()
            } else {
                role
            };
            if let Some(kids) = children.get(&pid) {
                stack.extend(kids.iter().map(|k| (role.clone(), *k)));
            }
            out.push((role, pid));
        }
    }
    out
}

/// CPU seconds (user + system) used so far by the trees' processes, except
/// those of the `launcher` role (node, which only starts workerd).
pub fn server_cpu_s(roots: &[(String, u32)]) -> f64 {
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    expand(roots)
        .iter()
        .filter(|(role, _)| role != "launcher")
        .filter_map(|(_, pid)| read_cpu_ticks(*pid))
        .sum::<u64>() as f64
        / ticks_per_s
}
