//! What the numbers were measured on: CPU, memory, kernel, load, and the
//! versions of every program under test.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// 1-minute load average when the run started (other work on the machine).
    pub load_at_start: f64,
    pub versions: Vec<(String, String)>,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "not found".to_owned())
}

fn dist_version(root: &Path, package: &str) -> String {
    let Ok(lib) = std::fs::read_dir(root.join(".tools/venv/lib")) else {
        return "not found".into();
    };
    for python in lib.flatten() {
        if let Ok(site) = std::fs::read_dir(python.path().join("site-packages")) {
            for entry in site.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if let Some(rest) = name.strip_prefix(&format!("{package}-")) {
                    if let Some(version) = rest.strip_suffix(".dist-info") {
                        return version.to_owned();
                    }
                }
            }
        }
    }
    "not found".into()
}

pub fn describe(root: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let workerd = root.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    let versions = vec![
        ("rustc".to_owned(), first_line("rustc", &["--version"])),
        ("node".to_owned(), first_line("node", &["--version"])),
        (
            "workerd".to_owned(),
            first_line(&workerd.display().to_string(), &["--version"]),
        ),
        ("nginx".to_owned(), first_line("/usr/sbin/nginx", &["-v"])),
        (
            "libnginx-mod-nchan".to_owned(),
            first_line(
                "dpkg-query",
                &["-W", "-f", "${Version}", "libnginx-mod-nchan"],
            ),
        ),
        (
            "valkey-server".to_owned(),
            first_line(
                &root.join(".tools/bin/valkey-server").display().to_string(),
                &["--version"],
            ),
        ),
        (
            "python".to_owned(),
            first_line(
                &root.join(".tools/venv/bin/python").display().to_string(),
                &["--version"],
            ),
        ),
        ("django".to_owned(), dist_version(root, "django")),
        (
            "django-eventstream".to_owned(),
            dist_version(root, "django_eventstream"),
        ),
        ("uvicorn".to_owned(), dist_version(root, "uvicorn")),
        ("redis (Python)".to_owned(), dist_version(root, "redis")),
    ];
    Machine {
        cpu,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_gib: mem_kb / 1024.0 / 1024.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        load_at_start: load,
        versions,
    }
}
