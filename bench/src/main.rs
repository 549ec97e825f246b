//! edgestream-bench: runs the scenarios of issue 6 against edgestream and its
//! peers (django-eventstream 5 on uvicorn, nchan), on loopback, with one load
//! generator, and writes the results as JSON and as tables in
//! docs/benchmarks.md. `bench/run` is the one command that prepares
//! everything and calls this; `bench/run --smoke` is the seconds-long check
//! the test suite runs.

mod cost;
mod extras;
mod hibernation;
mod http;
mod latency;
mod machine;
mod noisy;
mod payload;
mod peers;
mod process;
mod publisher;
mod report;
mod rss;
mod scenario;
mod setup;
mod sse;
mod subscriber;
mod valkey;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use peers::{Ctx, PeerKind, Target};
use scenario::{RunResult, Scenario};

const USAGE: &str = "usage:
  edgestream-bench run [--smoke] [--peers edgestream,edgestream-sockets,edgestream-script,nchan,django] [--scenarios fanout,max-rate,max-rate-single,many-publishers,burst,breadth,idle,bridge]
                       [--set SCENARIO.FIELD=VALUE]... [--extras] [--only-extra noisy] [--out FILE] [--docs FILE]
                       [--client-threads N] [--django-workers N] [--profile DIR]
  edgestream-bench report --in FILE --docs FILE

FIELD is one of channels, subs (per channel), events (per channel), rate (events/s, or max),
batch, publishers, payload (bytes), hold (idle seconds), concurrency (streams opened at once), stall.
--only-extra NAME: with --extras, only that measurement; its table is printed.
--profile DIR: V8 CPU profile of edgestream's isolate over each measured phase, written to DIR.";

struct Args {
    command: String,
    smoke: bool,
    peers: Vec<PeerKind>,
    scenarios: Option<Vec<String>>,
    sets: Vec<(String, String, String)>,
    extras: bool,
    only_extra: Option<String>,
    out: PathBuf,
    input: Option<PathBuf>,
    docs: Option<PathBuf>,
    client_threads: usize,
    django_workers: usize,
    profile: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or(USAGE)?;
    let mut args = Args {
        command,
        smoke: false,
        peers: vec![PeerKind::Edgestream, PeerKind::Nchan, PeerKind::Django],
        scenarios: None,
        sets: Vec::new(),
        extras: false,
        only_extra: None,
        out: PathBuf::from("target/bench/results.json"),
        input: None,
        docs: None,
        client_threads: 1,
        django_workers: 1,
        profile: None,
    };
    let mut peers_given = false;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--smoke" => args.smoke = true,
            "--extras" => args.extras = true,
            "--only-extra" => {
                let name = value()?;
                if !extras::ALONE.contains(&name.as_str()) {
                    return Err(format!("--only-extra: one of {:?}", extras::ALONE));
                }
                args.only_extra = Some(name);
            }
            "--peers" => {
                peers_given = true;
                args.peers = value()?
                    .split(',')
                    .map(|p| PeerKind::parse(p.trim()).ok_or(format!("unknown peer {p:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--scenarios" => {
                args.scenarios = Some(value()?.split(',').map(|s| s.trim().to_owned()).collect())
            }
            "--set" => {
                let v = value()?;
                let (key, val) = v
                    .split_once('=')
                    .ok_or(format!("--set {v}: expected SCENARIO.FIELD=VALUE"))?;
                let (scenario, field) = key
                    .split_once('.')
                    .ok_or(format!("--set {v}: expected SCENARIO.FIELD"))?;
                args.sets
                    .push((scenario.to_owned(), field.to_owned(), val.to_owned()));
            }
            "--profile" => args.profile = Some(PathBuf::from(value()?)),
            "--out" => args.out = PathBuf::from(value()?),
            "--in" => args.input = Some(PathBuf::from(value()?)),
            "--docs" => args.docs = Some(PathBuf::from(value()?)),
            "--client-threads" => {
                args.client_threads = value()?.parse().map_err(|_| "bad --client-threads")?
            }
            "--django-workers" => {
                args.django_workers = value()?.parse().map_err(|_| "bad --django-workers")?
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.smoke && !peers_given {
        args.peers = vec![PeerKind::Edgestream];
    }
    Ok(args)
}

#[derive(Serialize, serde::Deserialize, Default)]
pub struct Results {
    pub machine: serde_json::Value,
    pub smoke: bool,
    pub command: String,
    pub runs: Vec<serde_json::Value>,
    pub skipped: Vec<String>,
    pub extras: serde_json::Value,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match args.command.as_str() {
            "run" => run(&args).await,
            "report" => {
                let (Some(input), Some(docs)) = (&args.input, &args.docs) else {
                    eprintln!("report needs --in and --docs");
                    return 2;
                };
                match report::rewrite_docs_from(input, docs) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("{e}");
                        1
                    }
                }
            }
            _ => {
                eprintln!("{USAGE}");
                2
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

/// Thousands of streams need thousands of descriptors: take the hard limit.
fn raise_fd_limit() {
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random UUID (version 4), canonical lowercase form.
fn random_uuid() -> String {
    let h = random_hex(16);
    let mut b: Vec<char> = h.chars().collect();
    b[12] = '4';
    b[16] = ['8', '9', 'a', 'b'][(b[16].to_digit(16).unwrap_or(0) % 4) as usize];
    let s: String = b.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

pub async fn start_peer(
    ctx: &Ctx,
    kind: PeerKind,
    scenario: &Scenario,
    log_name: &str,
) -> Result<Target, String> {
    match kind {
        PeerKind::Edgestream | PeerKind::EdgestreamSockets | PeerKind::EdgestreamScript => {
            let vars = kind.edgestream_vars().unwrap_or_default();
            let options = peers::edgestream::Options {
                kind,
                bridge: scenario.via_valkey,
                probe: false,
                vars,
                ratelimits: Vec::new(),
                log_name: log_name.to_owned(),
            };
            peers::edgestream::start(ctx, &options).await
        }
        PeerKind::Nchan => peers::nchan::start(ctx, log_name).await,
        PeerKind::Django => peers::django::start(ctx, log_name, scenario.via_valkey).await,
    }
}

async fn run(args: &Args) -> i32 {
    let root = std::env::current_dir().expect("current directory");
    if !root.join("bench/serve-worker.mjs").exists() {
        eprintln!("run edgestream-bench from the repository root (bench/run does)");
        return 2;
    }
    let work = root.join("target/bench/work");
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("{}: {e}", work.display());
        return 2;
    }
    let ctx = Ctx {
        root: root.clone(),
        work,
        secret: random_hex(32),
        tenant: random_uuid(),
        django_workers: args.django_workers,
        profile_dir: args.profile.as_ref().map(|p| root.join(p)),
    };
    let mut scenarios = if args.smoke {
        Scenario::smoke()
    } else {
        Scenario::defaults()
    };
    if let Some(wanted) = &args.scenarios {
        // `--scenarios none`: only the extras.
        for w in wanted.iter().filter(|w| w.as_str() != "none") {
            if !scenarios.iter().any(|s| &s.name == w) {
                eprintln!("unknown scenario {w:?}");
                return 2;
            }
        }
        scenarios.retain(|s| wanted.contains(&s.name));
    }
    for (name, field, value) in &args.sets {
        let Some(s) = scenarios.iter_mut().find(|s| &s.name == name) else {
            eprintln!("--set: scenario {name:?} is not part of this run");
            return 2;
        };
        if let Err(e) = s.set(field, value) {
            eprintln!("{e}");
            return 2;
        }
    }

    let mut results = Results {
        machine: serde_json::to_value(machine::describe(&root)).unwrap_or_default(),
        smoke: args.smoke,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        ..Default::default()
    };
    let bridge_binary = peers::edgestream::bridge_binary(&root);
    let bridge_present = bridge_binary.exists();
    let mut edgestream_failed = false;
    let mut any_failed = false;
    for (i, scenario) in scenarios.iter().enumerate() {
        for &kind in &args.peers {
            if scenario.via_valkey {
                if kind == PeerKind::Nchan {
                    continue; // nchan has no Valkey/Redis Pub/Sub input in this format
                }
                if kind.is_edgestream() && !bridge_present {
                    let msg = format!(
                        "{}: skipped for edgestream: {} is not built (cargo build --release -p edgestream-bridge)",
                        scenario.name,
                        bridge_binary.display()
                    );
                    eprintln!("bench: {msg}");
                    results.skipped.push(msg);
                    continue;
                }
            }
            if kind == PeerKind::Nchan && !peers::nchan::installed() {
                let msg = format!(
                    "{}: skipped for nchan: not installed (bench/peers/install)",
                    scenario.name
                );
                eprintln!("bench: {msg}");
                results.skipped.push(msg);
                continue;
            }
            let log_name = format!("{:02}-{}-{}", i, scenario.name, kind.name());
            eprintln!(
                "bench: {} × {} ({} channel(s) × {} subscriber(s), {} event(s)/channel, rate {})",
                scenario.name,
                kind.name(),
                scenario.channels,
                scenario.subs_per_channel,
                scenario.events_per_channel,
                scenario.rate.map_or("max".to_owned(), |r| format!("{r}/s"))
            );
            let result = match start_peer(&ctx, kind, scenario, &log_name).await {
                Ok(mut target) => {
                    let r = scenario::run(
                        scenario,
                        &mut target,
                        &ctx.tenant,
                        &random_hex(4),
                        ctx.profile_dir.as_deref(),
                    )
                    .await;
                    drop(target);
                    r
                }
                Err(e) => failed_start(scenario, kind, e),
            };
            eprintln!("bench:   {}", report::one_line(&result));
            if !result.ok {
                any_failed = true;
                if kind.is_edgestream() {
                    edgestream_failed = true;
                }
            }
            results
                .runs
                .push(serde_json::to_value(&result).unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    if args.extras {
        results.extras =
            extras::measure(&ctx, &args.peers, &results, args.only_extra.as_deref()).await;
        if args.only_extra.is_some() {
            println!("{}", extras::markdown(&results.extras));
        }
    }
    if let Some(parent) = args.out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match serde_json::to_string_pretty(&results) {
        Ok(text) => {
            if let Err(e) = std::fs::write(&args.out, text) {
                eprintln!("{}: {e}", args.out.display());
                return 1;
            }
            eprintln!("bench: results in {}", args.out.display());
        }
        Err(e) => eprintln!("cannot serialise results: {e}"),
    }
    if let Some(docs) = &args.docs {
        if let Err(e) = report::rewrite_docs(&results, docs) {
            eprintln!("{e}");
            return 1;
        }
        eprintln!("bench: tables written to {}", docs.display());
    }
    if edgestream_failed || (args.smoke && any_failed) {
        eprintln!("bench: FAILED: a run lost, duplicated or reordered events, or did not complete (see above)");
        return 1;
    }
    0
}

fn failed_start(scenario: &Scenario, kind: PeerKind, error: String) -> RunResult {
    RunResult {
        peer: kind.name().to_owned(),
        scenario: scenario.clone(),
        ok: false,
        failure: Some(format!("could not start: {error}")),
        server_start_ms: 0.0,
        connect: Default::default(),
        publish: Default::default(),
        publish_per_s: 0.0,
        delivery: Default::default(),
        latency: Default::default(),
        series: Vec::new(),
        series_bucket_ms: latency::BUCKET_MS,
        usage: Default::default(),
        server_cpu_s: 0.0,
        client_cpu_s: 0.0,
        connect_cpu_us_per_stream: 0.0,
        server_cpu_us_per_delivery: 0.0,
        channel_object_us_per_delivery: None,
        idle: None,
        rows_written: None,
        rows_written_per_event: None,
        rows_unmeasured: None,
        errors: Vec::new(),
        error_count: 0,
        load_start: scenario::load_1m(),
        load_end: scenario::load_1m(),
    }
}
