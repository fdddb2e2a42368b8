//! `lineage-bench`: the load generator.
//!
//! ```sh
//! cargo bench --bench load -- [--events N] [--connections C] [--batch B]
//!     [--prefill N] [--proofs M] [--restart] [--data-dir DIR]
//!     [--serve-arg ARG]... [--settle SECS] [--halt] [--gated N] [--json PATH]
//!     [--server-bin PATH [--server-default-build]] [--baseline JSON]
//! ```
//!
//! `--baseline` names the JSON of an earlier run of the same workload on a
//! smaller log (issue 16: 100k entries): the table then also says whether
//! ingest stayed within 10% of it and RSS within 1.5x of it. Every run with
//! `--proofs` or `--restart` says whether proofs reach 20,000/s with p99
//! under 5 ms and a restart is ready in under 2 s (the targets at 10M).
//!
//! `--server-bin` runs another build of `lineage` than the one cargo built
//! with this bench; `--server-default-build` says that build was made
//! without this project's rustflags (no IFMA backend), so that its
//! verification time is the default-build yardstick's: on a CPU with IFMA
//! that measures what a CPU without it does.
//!
//! In one run it:
//! 1. measures the yardstick: ed25519-dalek `verify_strict` per second on all
//!    cores, from a default build of the crate (`benches/yardstick`, built
//!    without this project's rustflags), and the same crate built with them,
//!    as the server is;
//! 2. starts the real `lineage serve` binary on a fresh temporary data dir
//!    (or `--data-dir DIR`, kept and reusable; or targets `--server URL` with
//!    `--authority-key FILE`) and grants the runtime keys;
//! 3. optionally grows the log by `--prefill N` events first (signed in
//!    chunks while the previous chunk is sent, arrays of 1,000, untimed
//!    except for its own rate);
//! 4. pre-signs N realistic events (several runtimes, many workloads with
//!    prev chains and parents) before the timed window, then drives them over
//!    HTTP with C connections, in single-event requests (`--batch 1`) or
//!    arrays of B envelopes;
//! 5. optionally asks for M inclusion proofs of random entries (`--proofs M`);
//! 6. with `--halt`, halts the first workload of the timed run's first
//!    connection (every later workload of that connection derives from it:
//!    each names the previous one's start as a parent, so with `--chain 1`
//!    and one connection a run of N events is a lineage of N workloads),
//!    times the halt's commit and the resume's, and checks that the newest
//!    workload of that lineage is reported halted in between;
//! 7. with `--gated N`, measures what the runtime SDK adds to one gated
//!    step: N sequential events of one workload as bare POSTs of pre-signed
//!    envelopes, then N through `lineage_client::Workload::record` (signing,
//!    receipt verification and the consistency proof included), with strict
//!    and with background consistency; p50/p99 each and the ratio to bare;
//! 8. reads the server's memory and the data directory's size, and with
//!    `--restart` stops the server and times a restart until `/readyz`;
//! 9. prints one table and writes the same as JSON.
//!
//! No timed assertion anywhere: this is a measurement, not a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::keys::{EventId, public_key_base64};
use rayon::prelude::*;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

struct Args {
    events: usize,
    connections: usize,
    batch: usize,
    runtimes: usize,
    chain: usize,
    prefill: usize,
    proofs: usize,
    restart: bool,
    halt: bool,
    gated: usize,
    settle: u64,
    default_yardstick: bool,
    data_dir: Option<PathBuf>,
    serve_args: Vec<String>,
    server: Option<String>,
    authority_key: Option<PathBuf>,
    server_bin: Option<PathBuf>,
    server_default_build: bool,
    baseline: Option<PathBuf>,
    json: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        events: 20_000,
        connections: 8,
        batch: 500,
        runtimes: 4,
        chain: 10,
        prefill: 0,
        proofs: 0,
        restart: false,
        halt: false,
        gated: 0,
        settle: 0,
        default_yardstick: true,
        data_dir: None,
        serve_args: Vec::new(),
        server: None,
        authority_key: None,
        server_bin: None,
        server_default_build: false,
        baseline: None,
        json: PathBuf::from("target/lineage-bench.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => a.events = value().parse().expect("--events"),
            "--connections" => a.connections = value().parse().expect("--connections"),
            "--batch" => a.batch = value().parse().expect("--batch"),
            "--runtimes" => a.runtimes = value().parse().expect("--runtimes"),
            "--chain" => a.chain = value().parse().expect("--chain"),
            "--prefill" => a.prefill = value().parse().expect("--prefill"),
            "--proofs" => a.proofs = value().parse().expect("--proofs"),
            "--restart" => a.restart = true,
            "--halt" => a.halt = true,
            "--gated" => a.gated = value().parse().expect("--gated"),
            "--settle" => a.settle = value().parse().expect("--settle"),
            "--no-default-yardstick" => a.default_yardstick = false,
            "--data-dir" => a.data_dir = Some(PathBuf::from(value())),
            "--serve-arg" => a.serve_args.push(value()),
            "--server" => a.server = Some(value()),
            "--authority-key" => a.authority_key = Some(PathBuf::from(value())),
            "--server-bin" => a.server_bin = Some(PathBuf::from(value())),
            "--server-default-build" => a.server_default_build = true,
            "--json" => a.json = PathBuf::from(value()),
            "--baseline" => a.baseline = Some(PathBuf::from(value())),
            // cargo bench passes --bench; ignore harness flags.
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(a.batch >= 1 && a.batch <= 1000, "--batch must be 1..=1000");
    assert!(a.connections >= 1, "--connections must be at least 1");
    assert!(
        !(a.restart && a.server.is_some()),
        "--restart needs a server this run started"
    );
    a
}

/// Which build of `benches/yardstick` to measure.
#[derive(Clone, Copy)]
enum Build {
    /// No rustflags at all: plain ed25519-dalek, the yardstick.
    Default,
    /// This project's rustflags (`.cargo/config.toml`), as the server is built.
    Project,
}

/// One yardstick measurement: `verify_strict` per second on all cores, and
/// the number of threads (cores) that rate was reached with.
#[derive(Clone, Copy)]
struct Verify {
    per_second: f64,
    threads: f64,
}

impl Verify {
    /// CPU time of one `verify_strict` on one core, in microseconds.
    fn micros_per_verify(self) -> f64 {
        1e6 * self.threads / self.per_second
    }
}

/// Raw `verify_strict` per second on all cores over about `secs` seconds:
/// `benches/yardstick` built by cargo as `build` says (each build in a
/// target directory of its own) and run.
fn yardstick(build: Build, secs: f64) -> Result<Verify, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/yardstick");
    let (name, flags) = match build {
        Build::Default => ("yardstick-default", Some("")),
        // Unset, so cargo reads .cargo/config.toml above the crate.
        Build::Project => ("yardstick-project", None),
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join(name);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--release", "--quiet", "--", "--secs"])
        .arg(secs.to_string())
        .current_dir(&dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env("CARGO_TARGET_DIR", &target)
        .stderr(Stdio::inherit());
    if let Some(flags) = flags {
        cmd.env("CARGO_ENCODED_RUSTFLAGS", flags);
    }
    let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("the yardstick build failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Ok(Verify {
        per_second: field("verify_strict_per_second ")
            .ok_or_else(|| "no rate in the yardstick's output".to_owned())?,
        threads: field("threads ").unwrap_or(1.0),
    })
}

/// The CPU this run measured on: its model name, the vector and hash
/// extensions that decide how fast ed25519 and SHA-256 run, and which
/// curve25519-dalek backend a binary built like the server picks on it
/// (AVX-512 IFMA when the CPU has IFMA and VL and the build has the backend,
/// else AVX2, else portable).
fn cpu_report(server_default_build: bool) -> Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(
            || std::env::consts::ARCH.to_owned(),
            |(_, m)| m.trim().to_owned(),
        );
    #[cfg(target_arch = "x86_64")]
    let features: Vec<&str> = [
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
        (
            "avx512ifma",
            std::arch::is_x86_feature_detected!("avx512ifma"),
        ),
        ("sha", std::arch::is_x86_feature_detected!("sha")),
        ("bmi2", std::arch::is_x86_feature_detected!("bmi2")),
        ("adx", std::arch::is_x86_feature_detected!("adx")),
    ]
    .into_iter()
    .filter_map(|(name, has)| has.then_some(name))
    .collect();
    #[cfg(not(target_arch = "x86_64"))]
    let features: Vec<&str> = Vec::new();
    let has = |f: &str| features.contains(&f);
    // A default build has no IFMA backend compiled in.
    let backend = if has("avx512ifma") && has("avx512vl") && !server_default_build {
        "avx512ifma"
    } else if has("avx2") {
        "avx2"
    } else {
        "portable"
    };
    json!({"model": model, "features": features, "ed25519_backend": backend})
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime), counted from field 3 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A `VmRSS`-style field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

struct Server {
    child: Option<Child>,
    url: String,
    dir: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_server(
    bin: Option<&Path>,
    authority: &SigningKey,
    dir: &Path,
    extra: &[String],
) -> (Child, String) {
    use std::io::BufRead as _;
    let bin = bin.unwrap_or(Path::new(env!("CARGO_BIN_EXE_lineage")));
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-skew-secs",
            "3600",
            "--data-dir",
        ])
        .arg(dir)
        .arg("--authority")
        .arg(public_key_base64(&authority.verifying_key()))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lineage serve");
    let out = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(u) = line.strip_prefix("lineage: listening on ") {
            url = Some(u.to_owned());
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url.expect("server address"))
}

fn start_server(
    bin: Option<&Path>,
    authority: &SigningKey,
    dir: Option<&Path>,
    extra: &[String],
) -> Server {
    let (temp, path) = match dir {
        Some(d) => (None, d.to_path_buf()),
        None => {
            let t = tempfile::tempdir().expect("tempdir");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let (child, url) = spawn_server(bin, authority, &path, extra);
    Server {
        child: Some(child),
        url,
        dir: Some(path),
        _temp: temp,
    }
}

/// Requests for one connection, in order.
type Work = Vec<Vec<u8>>;

/// Signed events ready to send, and the bytes their log entries will take.
struct Signed {
    works: Vec<Work>,
    events: usize,
    entry_bytes: u64,
}

/// Signs `total` events spread over `conns` connections as requests of `batch`
/// envelopes. Workload names start with `prefix` (unique per run and chunk).
fn sign_events(
    prefix: &str,
    total: usize,
    conns: usize,
    batch: usize,
    chain: usize,
    keys: &[SigningKey],
) -> Signed {
    let at = time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("time");
    let kinds = [
        "workload.start",
        "tool.invoke",
        "trust.cross",
        "authz.grant",
        "authz.deny",
        "tool.invoke",
    ];
    let per_conn = total.div_ceil(conns);
    let parts: Vec<(Work, usize, u64)> = (0..conns)
        .into_par_iter()
        .map(|c| {
            let mut envs: Vec<Value> = Vec::with_capacity(per_conn);
            let mut entry_bytes = 0u64;
            let mut last_start: Option<String> = None;
            let mut w = 0usize;
            let want = per_conn.min(total.saturating_sub(c * per_conn));
            while envs.len() < want {
                let r = (c + w) % keys.len();
                let runtime = format!("runtime-{r}");
                let workload = format!("{prefix}c{c}-w{w}");
                let mut prev: Option<String> = None;
                for seq in 0..chain {
                    if envs.len() >= want {
                        break;
                    }
                    let kind = if seq + 1 == chain {
                        "workload.end"
                    } else {
                        kinds[seq % kinds.len()]
                    };
                    let mut p = json!({
                        "runtime": runtime, "workload": workload, "seq": seq, "kind": kind, "at": at,
                        "attrs": {"tool": "search", "tokens": seq * 17, "model": "planner-v2"},
                    });
                    if let Some(pr) = &prev {
                        p["prev"] = json!(pr);
                    }
                    if seq == 0
                        && let Some(parent) = &last_start
                    {
                        p["parents"] = json!([parent]);
                    }
                    let bytes = serde_json::to_vec(&p).expect("json");
                    let id = EventId::of_payload(&bytes).to_string();
                    if seq == 0 {
                        last_start = Some(id.clone());
                    }
                    prev = Some(id);
                    let env = SignedEnvelope::sign(PayloadType::Event, bytes, &keys[r]);
                    entry_bytes += LogEntry::from_envelope(&env, 0).encode().len() as u64;
                    envs.push(serde_json::to_value(env.to_wire()).expect("wire"));
                }
                w += 1;
            }
            let n = envs.len();
            let work = envs
                .chunks(batch)
                .map(|chunk| {
                    if batch == 1 {
                        serde_json::to_vec(&chunk[0]).expect("json")
                    } else {
                        serde_json::to_vec(chunk).expect("json")
                    }
                })
                .collect();
            (work, n, entry_bytes)
        })
        .collect();
    Signed {
        events: parts.iter().map(|p| p.1).sum(),
        entry_bytes: parts.iter().map(|p| p.2).sum(),
        works: parts.into_iter().map(|p| p.0).collect(),
    }
}

/// What one phase of requests gave.
#[derive(Default)]
struct Driven {
    latencies: Vec<Duration>,
    ok: usize,
    bad: usize,
    wall: f64,
}

impl Driven {
    fn percentiles(&mut self) -> Value {
        self.latencies.sort();
        let p = |q: f64| percentile(&self.latencies, q);
        json!({"p50": p(0.50), "p95": p(0.95), "p99": p(0.99), "max": p(1.0)})
    }
}

/// Posts every connection's requests in order, the connections concurrently.
async fn drive(client: &reqwest::Client, url: &str, works: Vec<Work>) -> Driven {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for work in works {
        let client = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut d = Driven {
                latencies: Vec::with_capacity(work.len()),
                ..Driven::default()
            };
            for body in work {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let Ok(resp) = r else {
                    d.bad += 1;
                    continue;
                };
                let status = resp.status().as_u16();
                let text = resp.bytes().await.unwrap_or_default();
                d.latencies.push(t.elapsed());
                match status {
                    201 => d.ok += 1,
                    200 => {
                        let v: Value = serde_json::from_slice(&text).unwrap_or_default();
                        let items = v.as_array().map_or(0, Vec::len);
                        let good = v
                            .as_array()
                            .map_or(0, |a| a.iter().filter(|i| i.get("index").is_some()).count());
                        d.ok += good;
                        d.bad += items - good;
                    }
                    _ => d.bad += 1,
                }
            }
            d
        }));
    }
    gather(tasks, start).await
}

/// Waits for every connection's task and adds their results up.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Driven>>, start: Instant) -> Driven {
    let mut all = Driven::default();
    for t in tasks {
        let d = t.await.expect("task");
        all.latencies.extend(d.latencies);
        all.ok += d.ok;
        all.bad += d.bad;
    }
    all.wall = start.elapsed().as_secs_f64();
    all
}

/// `count` inclusion-proof requests for random entries of a tree of `size`.
async fn prove(
    client: &reqwest::Client,
    base: &str,
    size: u64,
    count: usize,
    conns: usize,
) -> Driven {
    let start = Instant::now();
    let per_conn = count.div_ceil(conns);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let client = client.clone();
        let base = base.to_owned();
        let n = per_conn.min(count.saturating_sub(c * per_conn));
        tasks.push(tokio::spawn(async move {
            let mut d = Driven::default();
            let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (c as u64 + 1);
            for _ in 0..n {
                // xorshift64: uniform enough for picking leaves.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let index = x % size;
                let t = Instant::now();
                let r = client
                    .get(format!(
                        "{base}/v1/proofs/inclusion?index={index}&tree_size={size}"
                    ))
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        let body = resp.bytes().await.unwrap_or_default();
                        d.latencies.push(t.elapsed());
                        if body.is_empty() {
                            d.bad += 1;
                        } else {
                            d.ok += 1;
                        }
                    }
                    _ => d.bad += 1,
                }
            }
            d
        }));
    }
    gather(tasks, start).await
}

/// Sums and counts of the server's sequencer histograms (OpenMetrics text).
#[derive(Clone, Copy, Default)]
struct Sequencer {
    batches: f64,
    entries: f64,
    busy_seconds: f64,
    write_seconds: f64,
}

async fn sequencer_metrics(client: &reqwest::Client, base: &str) -> Sequencer {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Sequencer {
        batches: value("lineage_batch_entries_count"),
        entries: value("lineage_batch_entries_sum"),
        busy_seconds: value("lineage_commit_seconds_sum"),
        write_seconds: value("lineage_store_write_seconds_sum"),
    }
}

impl Sequencer {
    fn since(self, before: Sequencer, wall: f64) -> Value {
        let batches = self.batches - before.batches;
        let entries = self.entries - before.entries;
        json!({"batches": batches,
            "mean_batch_entries": if batches > 0.0 { entries / batches } else { 0.0 },
            "busy_fraction": (self.busy_seconds - before.busy_seconds) / wall,
            "store_write_fraction": (self.write_seconds - before.write_seconds) / wall})
    }
}

/// The server's `lineage_store_memory_bytes` gauges in KiB, by kind (the
/// health sampler sets them once a second).
async fn store_memory(client: &reqwest::Client, base: &str) -> Value {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut out = json!({});
    for kind in ["block_cache", "memtables", "table_readers"] {
        let name = format!("lineage_store_memory_bytes{{kind=\"{kind}\"}} ");
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix(&name)?.trim().parse::<f64>().ok())
        {
            out[kind] = json!(v / 1024.0);
        }
    }
    out
}

async fn tree_size(client: &reqwest::Client, base: &str) -> u64 {
    let note = client
        .get(format!("{base}/checkpoint"))
        .send()
        .await
        .expect("checkpoint")
        .text()
        .await
        .expect("checkpoint text");
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("checkpoint size line")
}

/// Posts a halt or resume of `workload`; the milliseconds until its receipt.
async fn govern(
    client: &reqwest::Client,
    url: &str,
    authority: &SigningKey,
    action: &str,
    workload: &str,
) -> f64 {
    let p = json!({"action": action, "target": {"workload": workload},
        "reason": "load generator", "at": time::OffsetDateTime::now_utc().format(&Rfc3339).expect("time")});
    let env = SignedEnvelope::sign(
        PayloadType::Governance,
        serde_json::to_vec(&p).expect("json"),
        authority,
    );
    let body = serde_json::to_vec(&env.to_wire()).expect("json");
    let start = Instant::now();
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect(action);
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "{action}: {status} {text}");
    start.elapsed().as_secs_f64() * 1000.0
}

/// The `state` of a workload (`GET /v1/workloads/{w}`).
async fn workload_state(client: &reqwest::Client, base: &str, workload: &str) -> String {
    let v: Value = client
        .get(format!("{base}/v1/workloads/{workload}"))
        .send()
        .await
        .expect("workload")
        .json()
        .await
        .expect("workload json");
    v["state"].as_str().unwrap_or_default().to_owned()
}

async fn grant_keys(
    client: &reqwest::Client,
    url: &str,
    keys: &[SigningKey],
    authority: &SigningKey,
) {
    for (i, k) in keys.iter().enumerate() {
        let p = json!({"action": "grant", "runtime": format!("runtime-{i}"),
            "public_key": public_key_base64(&k.verifying_key()),
            "at": time::OffsetDateTime::now_utc().format(&Rfc3339).expect("time")});
        let env = SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&p).expect("json"),
            authority,
        );
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&env.to_wire()).expect("json"))
            .send()
            .await
            .expect("grant");
        // 409: granted by an earlier run on the same data dir.
        assert!(
            r.status().is_success() || r.status().as_u16() == 409,
            "grant: {}",
            r.status()
        );
    }
}

/// Sequential gated steps of one workload each way (see the module docs):
/// latency percentiles in ms and the SDK's ratio to bare POSTs.
async fn gated(
    client: &reqwest::Client,
    base: &str,
    key: &SigningKey,
    n: usize,
    run: &str,
) -> Value {
    use lineage_client::{Attrs, Config, Consistency};
    let url = format!("{base}/v1/entries");
    // Bare: pre-signed, chained envelopes, one POST each.
    let workload = format!("{run}-gated-bare");
    let mut prev: Option<String> = None;
    let mut envs = Vec::with_capacity(n);
    for seq in 0..n {
        let mut p = json!({"runtime": "runtime-0", "workload": workload, "seq": seq,
            "kind": "tool.invoke", "attrs": {"tool": "search", "step": seq},
            "at": time::OffsetDateTime::now_utc().format(&Rfc3339).expect("time")});
        if let Some(id) = &prev {
            p["prev"] = json!(id);
        }
        let env = SignedEnvelope::sign(
            PayloadType::Event,
            serde_json::to_vec(&p).expect("json"),
            key,
        );
        prev = Some(EventId::of_payload(&env.payload).to_string());
        envs.push(serde_json::to_vec(&env.to_wire()).expect("json"));
    }
    let mut bare = Vec::with_capacity(n);
    for body in envs {
        let t = Instant::now();
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success(), "bare step: {}", r.status());
        r.bytes().await.expect("body");
        bare.push(t.elapsed());
    }
    let mut report = json!({"steps": n, "bare_post_ms": summary(&mut bare)});
    for (name, consistency) in [
        ("sdk_strict_ms", Consistency::Strict),
        ("sdk_background_ms", Consistency::Background),
    ] {
        let sdk = lineage_client::Client::new(Config {
            consistency,
            ..Config::new(base)
        })
        .expect("sdk client");
        let rt = sdk.runtime("runtime-0", key.clone()).expect("runtime");
        let mut wl = rt
            .start(
                &format!("{run}-gated-{name}"),
                "workload.start",
                Attrs::new(),
                &[],
                None,
            )
            .await
            .expect("start");
        let mut took = Vec::with_capacity(n);
        for step in 0..n {
            let mut attrs = Attrs::new();
            attrs.insert("tool".into(), json!("search"));
            attrs.insert("step".into(), json!(step));
            let t = Instant::now();
            wl.record("tool.invoke", attrs).await.expect("gated step");
            took.push(t.elapsed());
        }
        report[name] = summary(&mut took);
    }
    let p50 = |k: &str| report[k]["p50"].as_f64().unwrap_or(0.0);
    let (strict, background) = (
        p50("sdk_strict_ms") / p50("bare_post_ms"),
        p50("sdk_background_ms") / p50("bare_post_ms"),
    );
    report["ratio_p50_strict_to_bare"] = json!(strict);
    report["ratio_p50_background_to_bare"] = json!(background);
    report
}

fn summary(d: &mut [Duration]) -> Value {
    d.sort();
    json!({"p50": percentile(d, 0.5), "p99": percentile(d, 0.99)})
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Grows the log by `total` events: chunks are signed on a thread while the
/// previous chunk is being sent. Returns (events accepted, failed, entry bytes, seconds).
fn prefill(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    a: &Args,
    keys: &[SigningKey],
    run: &str,
) -> (usize, usize, u64, f64) {
    const CHUNK: usize = 100_000;
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Signed>(1);
    let chunks = a.prefill.div_ceil(CHUNK);
    let (total, conns, chain) = (a.prefill, a.connections, a.chain);
    let keys_owned = keys.to_vec();
    let run = run.to_owned();
    let signer = std::thread::spawn(move || {
        for k in 0..chunks {
            let n = CHUNK.min(total - k * CHUNK);
            let s = sign_events(
                &format!("fill{run}-{k}-"),
                n,
                conns,
                1000,
                chain,
                &keys_owned,
            );
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    let (mut ok, mut bad, mut bytes) = (0, 0, 0);
    for (k, signed) in rx.into_iter().enumerate() {
        bytes += signed.entry_bytes;
        let d = rt.block_on(drive(client, url, signed.works));
        ok += d.ok;
        bad += d.bad;
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "prefill: chunk {}/{chunks}, {ok} accepted, {bad} failed, {:.0} events/s",
            k + 1,
            ok as f64 / secs
        );
    }
    signer.join().expect("signer thread");
    (ok, bad, bytes, start.elapsed().as_secs_f64())
}

fn main() {
    let a = parse_args();
    let run = format!(
        "r{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let yard_default = if a.default_yardstick {
        eprintln!("measuring the yardstick (default build of ed25519-dalek)...");
        match yardstick(Build::Default, 3.0) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("no default-build yardstick: {e}");
                None
            }
        }
    } else {
        None
    };
    eprintln!("measuring verify_strict as this project builds it...");
    let yard_project = yardstick(Build::Project, 3.0).unwrap_or_else(|e| panic!("{e}"));
    // The server verifies as the build it was made with: this project's
    // (its rustflags add the IFMA backend), or, with --server-default-build,
    // a build without them, which verifies as any CPU without IFMA does.
    let yard_this = match (a.server_default_build, yard_default) {
        (true, Some(d)) => d,
        (true, None) => panic!("--server-default-build needs the default-build yardstick"),
        (false, _) => yard_project,
    };
    let yard = yard_default.unwrap_or(yard_this).per_second;
    let keys: Vec<SigningKey> = (0..a.runtimes)
        .map(|i| {
            SigningKey::from_bytes(blake3::hash(format!("bench runtime {i}").as_bytes()).as_bytes())
        })
        .collect();
    let authority = match &a.authority_key {
        Some(p) => lineage::keyfile::read_key_file(p).expect("authority key"),
        None => SigningKey::from_bytes(&[9; 32]),
    };
    let mut server = match &a.server {
        Some(url) => Server {
            child: None,
            url: url.clone(),
            dir: None,
            _temp: None,
        },
        None => start_server(
            a.server_bin.as_deref(),
            &authority,
            a.data_dir.as_deref(),
            &a.serve_args,
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.connections)
        .build()
        .expect("client");
    let url = format!("{}/v1/entries", server.url);
    rt.block_on(grant_keys(&client, &url, &keys, &authority));
    if a.settle > 0 {
        // A server started on a big existing store indexes it for the
        // explorer in the background first; let that finish.
        eprintln!("letting the server settle for {} s...", a.settle);
        std::thread::sleep(Duration::from_secs(a.settle));
    }
    let pid = || server.child.as_ref().map(std::process::Child::id);
    let mut report = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu_report(a.server_default_build),
        "yardstick": {
            "default_build_verify_per_second": yard_default.map(|y| y.per_second),
            "default_build_micros_per_verify": yard_default.map(Verify::micros_per_verify),
            "this_build_verify_per_second": yard_this.per_second,
            "this_build_micros_per_verify": yard_this.micros_per_verify(),
            "project_build_verify_per_second": yard_project.per_second,
            "server_build": if a.server_default_build { "default" } else { "project" },
        },
    });
    let mut entry_bytes = 0u64;
    let mut generated = 0usize;

    if a.prefill > 0 {
        let cpu0 = pid().map_or(0.0, cpu_seconds);
        let (ok, bad, bytes, secs) = prefill(&rt, &client, &url, &a, &keys, &run);
        entry_bytes += bytes;
        generated += ok;
        report["prefill"] = json!({"events": a.prefill, "accepted": ok, "failed": bad,
            "seconds": secs, "events_per_second": ok as f64 / secs,
            "server_cpu_seconds": pid().map_or(0.0, cpu_seconds) - cpu0});
    }

    if a.events > 0 {
        eprintln!("pre-signing {} events...", a.events);
        let signed = sign_events(
            &format!("{run}-"),
            a.events,
            a.connections,
            a.batch,
            a.chain,
            &keys,
        );
        entry_bytes += signed.entry_bytes;
        let requests: usize = signed.works.iter().map(Vec::len).sum();
        let seq0 = rt.block_on(sequencer_metrics(&client, &server.url));
        let server_cpu0 = pid().map_or(0.0, cpu_seconds);
        let client_cpu0 = cpu_seconds(std::process::id());
        let mut d = rt.block_on(drive(&client, &url, signed.works));
        let seq1 = rt.block_on(sequencer_metrics(&client, &server.url));
        generated += d.ok;
        let ingest_rate = d.ok as f64 / d.wall;
        let server_cpu = pid().map_or(0.0, cpu_seconds) - server_cpu0;
        report["ingest"] = json!({
            "events": signed.events, "accepted": d.ok, "failed": d.bad, "requests": requests,
            "connections": a.connections, "batch": a.batch, "wall_seconds": d.wall,
            "events_per_second": ingest_rate, "latency_ms": d.percentiles(),
            "server_cpu_seconds": server_cpu,
            "client_cpu_seconds": cpu_seconds(std::process::id()) - client_cpu0,
            "ratio_to_yardstick": ingest_rate / yard,
            "ratio_to_this_build_verify": ingest_rate / yard_this.per_second,
            "sequencer": seq1.since(seq0, d.wall),
        });
        if pid().is_some() && d.ok > 0 {
            report["ingest"]["cpu_per_event"] = cpu_per_event(
                server_cpu,
                d.ok,
                yard_this,
                yard_default.unwrap_or(yard_this),
            );
        }
        report["ingest"]["targets"] = targets(&report["ingest"], a.batch);
    }

    if a.halt && a.events > 0 {
        let lineage = a.events.div_ceil(a.connections).div_ceil(a.chain);
        let root = format!("{run}-c0-w0");
        let newest = format!("{run}-c0-w{}", lineage - 1);
        let halt_ms = rt.block_on(govern(&client, &url, &authority, "halt", &root));
        let halted = rt.block_on(workload_state(&client, &server.url, &newest));
        let resume_ms = rt.block_on(govern(&client, &url, &authority, "resume", &root));
        let resumed = rt.block_on(workload_state(&client, &server.url, &newest));
        assert_eq!(
            (halted.as_str(), resumed.as_str()),
            ("halted", "closed"),
            "the newest workload of the lineage of {root}"
        );
        report["halt"] = json!({"workloads": lineage, "halt_ms": halt_ms,
            "resume_ms": resume_ms});
    }

    if a.gated > 0 {
        report["gated"] = rt.block_on(gated(&client, &server.url, &keys[0], a.gated, &run));
    }

    let size = rt.block_on(tree_size(&client, &server.url));
    report["tree_size"] = json!(size);
    if a.proofs > 0 && size > 0 {
        let cpu0 = pid().map_or(0.0, cpu_seconds);
        let mut d = rt.block_on(prove(&client, &server.url, size, a.proofs, a.connections));
        report["proofs"] = json!({"requests": a.proofs, "ok": d.ok, "failed": d.bad,
            "connections": a.connections, "per_second": d.ok as f64 / d.wall,
            "latency_ms": d.percentiles(),
            "server_cpu_seconds": pid().map_or(0.0, cpu_seconds) - cpu0});
    }

    if let Some(p) = pid() {
        report["server_memory_kib"] = json!({"rss": status_kib(p, "VmRSS"), "peak": status_kib(p, "VmHWM"),
                "store": rt.block_on(store_memory(&client, &server.url))});
    }
    if let Some(dir) = &server.dir {
        let disk = dir_bytes(dir);
        let raw_per_entry = if generated > 0 {
            entry_bytes as f64 / generated as f64
        } else {
            0.0
        };
        let per_entry = if size > 0 {
            disk as f64 / size as f64
        } else {
            0.0
        };
        report["disk"] = json!({"bytes": disk, "bytes_per_entry": per_entry,
            "raw_entry_bytes_per_entry": raw_per_entry,
            "allowance_per_entry": 1.3 * raw_per_entry + 80.0});
    }

    if a.restart {
        let dir = server.dir.clone().expect("data dir");
        let mut child = server.child.take().expect("server child");
        let stop = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let stopped = stop.elapsed().as_secs_f64();
        let disk_after_stop = dir_bytes(&dir);
        let start = Instant::now();
        let (child, new_url) =
            spawn_server(a.server_bin.as_deref(), &authority, &dir, &a.serve_args);
        let listening = start.elapsed().as_secs_f64();
        let ready = rt.block_on(async {
            loop {
                if let Ok(r) = client.get(format!("{new_url}/readyz")).send().await
                    && r.status().is_success()
                {
                    return start.elapsed().as_secs_f64();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let size_after = rt.block_on(tree_size(&client, &new_url));
        server.child = Some(child);
        server.url = new_url;
        report["restart"] = json!({"stop_seconds": stopped, "listening_seconds": listening,
            "ready_seconds": ready, "tree_size_after": size_after,
            "disk_bytes_after_stop": disk_after_stop});
    }

    let baseline = a.baseline.as_ref().map(|p| {
        let text = std::fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("reading the baseline {}: {e}", p.display()));
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("the baseline {} is not JSON: {e}", p.display()))
    });
    report["scale_targets"] = scale_targets(&report, baseline.as_ref());
    print_table(&report);
    if let Some(dir) = a.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &a.json,
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("write json");
    println!("\nwritten to {}", a.json.display());
    drop(server);
}

/// Where the server's CPU went per accepted event: all of it, the part one
/// `verify_strict` of this build takes, and the rest (everything that is not
/// the signature check), also as a fraction of the default-build
/// yardstick's time per verification, a figure that does not depend on the
/// CPU's vector units.
fn cpu_per_event(server_cpu: f64, accepted: usize, this: Verify, default: Verify) -> Value {
    let total = 1e6 * server_cpu / accepted as f64;
    let verify = this.micros_per_verify();
    let other = total - verify;
    json!({"server_micros": total, "verify_micros": verify, "other_micros": other,
        "verify_share": verify / total,
        "other_to_yardstick_verify": other / default.micros_per_verify()})
}

/// Issue 16's targets at scale (measured at 10M entries), each with its
/// figure and whether it holds: inclusion proofs and restart from this run;
/// ingest and RSS against `baseline`, the same workload's run on a 100k log.
fn scale_targets(report: &Value, baseline: Option<&Value>) -> Value {
    let mut t = json!({"tree_size": report["tree_size"]});
    let p = &report["proofs"];
    if let (Some(rate), Some(p99)) = (p["per_second"].as_f64(), p["latency_ms"]["p99"].as_f64()) {
        t["proofs"] = json!({"per_second": rate, "p99_ms": p99, "min_per_second": 20_000,
            "max_p99_ms": 5.0, "met": rate >= 20_000.0 && p99 < 5.0});
    }
    if let Some(ready) = report["restart"]["ready_seconds"].as_f64() {
        t["restart"] = json!({"ready_seconds": ready, "max": 2.0, "met": ready < 2.0});
    }
    let Some(base) = baseline else {
        return t;
    };
    t["baseline_tree_size"] = base["tree_size"].clone();
    let ingest = |r: &Value| r["ingest"]["events_per_second"].as_f64();
    if let (Some(now), Some(then)) = (ingest(report), ingest(base)) {
        let ratio = now / then;
        t["ingest_to_baseline"] = json!({"figure": ratio, "min": 0.9, "met": ratio >= 0.9});
    }
    let rss = |r: &Value| r["server_memory_kib"]["rss"].as_f64();
    if let (Some(now), Some(then)) = (rss(report), rss(base))
        && then > 0.0
    {
        let ratio = now / then;
        t["rss_to_baseline"] = json!({"figure": ratio, "max": 1.5, "met": ratio <= 1.5});
    }
    t
}

/// Issue 16's targets for this run's shape (arrays or single events), each
/// with its figure and whether it holds.
fn targets(ingest: &Value, batch: usize) -> Value {
    let (other_max, ratio_min) = if batch > 1 { (0.25, 0.65) } else { (1.0, 0.30) };
    let ratio = ingest["ratio_to_yardstick"].as_f64().unwrap_or(0.0);
    let mut t = json!({"ratio_to_yardstick": {"min": ratio_min, "figure": ratio,
        "met": ratio >= ratio_min}});
    if let Some(other) = ingest["cpu_per_event"]["other_to_yardstick_verify"].as_f64() {
        t["other_cpu_to_yardstick_verify"] =
            json!({"max": other_max, "figure": other, "met": other <= other_max});
    }
    t
}

fn print_table(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!("\n| metric | value |\n|---|---|");
    let c = &r["cpu"];
    let features: Vec<&str> = c["features"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "| CPU, cores | {}, {} |",
        c["model"].as_str().unwrap_or("?"),
        r["cores"]
    );
    println!(
        "| extensions detected; ed25519 backend of this build | {}; {} |",
        if features.is_empty() {
            "none of avx2, avx512f/vl/ifma, sha, bmi2, adx".to_owned()
        } else {
            features.join(" ")
        },
        c["ed25519_backend"].as_str().unwrap_or("?")
    );
    let y = &r["yardstick"];
    match y["default_build_verify_per_second"].as_f64() {
        Some(d) => println!(
            "| yardstick: verify_strict/s, default ed25519-dalek build, all cores | {d:.0} |"
        ),
        None => println!("| yardstick: default build | not measured |"),
    }
    println!(
        "| verify_strict/s of the server's build ({}), all cores | {:.0} |",
        y["server_build"].as_str().unwrap_or("project"),
        f(&y["this_build_verify_per_second"])
    );
    if let Some(p) = r.get("prefill") {
        println!(
            "| prefill: events accepted / failed, events/s | {} / {}, {:.0} |",
            p["accepted"],
            p["failed"],
            f(&p["events_per_second"])
        );
    }
    if let Some(i) = r.get("ingest") {
        let l = &i["latency_ms"];
        println!(
            "| events accepted / failed | {} / {} |",
            i["accepted"], i["failed"]
        );
        println!(
            "| connections x batch | {} x {} |",
            i["connections"], i["batch"]
        );
        println!("| events/s | {:.0} |", f(&i["events_per_second"]));
        println!(
            "| request latency p50 / p95 / p99 / max (ms) | {:.2} / {:.2} / {:.2} / {:.2} |",
            f(&l["p50"]),
            f(&l["p95"]),
            f(&l["p99"]),
            f(&l["max"])
        );
        let q = &i["sequencer"];
        println!(
            "| batches, mean entries per batch | {}, {:.1} |",
            q["batches"],
            f(&q["mean_batch_entries"])
        );
        println!(
            "| sequencer busy / in synced writes (fraction of wall time) | {:.2} / {:.2} |",
            f(&q["busy_fraction"]),
            f(&q["store_write_fraction"])
        );
        println!(
            "| CPU seconds server / client | {:.2} / {:.2} |",
            f(&i["server_cpu_seconds"]),
            f(&i["client_cpu_seconds"])
        );
        println!(
            "| ratio events/s / yardstick | {:.3} |",
            f(&i["ratio_to_yardstick"])
        );
        println!(
            "| ratio events/s / this build's verify_strict/s | {:.3} |",
            f(&i["ratio_to_this_build_verify"])
        );
        let e = &i["cpu_per_event"];
        if e.is_object() {
            println!(
                "| server CPU per event: all / verify_strict (this build) / the rest (us) | {:.1} / {:.1} / {:.1} |",
                f(&e["server_micros"]),
                f(&e["verify_micros"]),
                f(&e["other_micros"])
            );
            println!(
                "| verification share of server CPU | {:.2} |",
                f(&e["verify_share"])
            );
        }
        let verdict = |t: &Value| if t["met"] == true { "met" } else { "NOT met" };
        let t = &i["targets"];
        if let Some(o) = t.get("other_cpu_to_yardstick_verify") {
            println!(
                "| target: non-signature CPU per event / yardstick verify time <= {} | {:.3}: {} |",
                o["max"],
                f(&o["figure"]),
                verdict(o)
            );
        }
        let o = &t["ratio_to_yardstick"];
        println!(
            "| target: events/s / yardstick >= {} | {:.3}: {} |",
            o["min"],
            f(&o["figure"]),
            verdict(o)
        );
    }
    println!("| tree size | {} |", r["tree_size"]);
    if let Some(h) = r.get("halt") {
        println!(
            "| halt / resume of a lineage of {} workloads, until the receipt (ms) | {:.1} / {:.1} |",
            h["workloads"],
            f(&h["halt_ms"]),
            f(&h["resume_ms"])
        );
    }
    if let Some(g) = r.get("gated") {
        for (label, k) in [
            ("bare POST of a pre-signed envelope", "bare_post_ms"),
            ("SDK record, strict consistency", "sdk_strict_ms"),
            ("SDK record, background consistency", "sdk_background_ms"),
        ] {
            println!(
                "| gated step ({} sequential): {label}, p50 / p99 (ms) | {:.3} / {:.3} |",
                g["steps"],
                f(&g[k]["p50"]),
                f(&g[k]["p99"])
            );
        }
        println!(
            "| gated step p50 ratio SDK / bare: strict, background | {:.2}, {:.2} |",
            f(&g["ratio_p50_strict_to_bare"]),
            f(&g["ratio_p50_background_to_bare"])
        );
    }
    if let Some(p) = r.get("proofs") {
        let l = &p["latency_ms"];
        println!(
            "| inclusion proofs/s ({} connections), ok / failed | {:.0}, {} / {} |",
            p["connections"],
            f(&p["per_second"]),
            p["ok"],
            p["failed"]
        );
        println!(
            "| proof latency p50 / p99 / max (ms) | {:.2} / {:.2} / {:.2} |",
            f(&l["p50"]),
            f(&l["p99"]),
            f(&l["max"])
        );
    }
    if let Some(m) = r.get("server_memory_kib") {
        println!(
            "| server RSS / peak (MiB) | {:.1} / {:.1} |",
            f(&m["rss"]) / 1024.0,
            f(&m["peak"]) / 1024.0
        );
        let store = &m["store"];
        if store.get("block_cache").is_some() {
            println!(
                "| of which the store: block cache / memtables / table readers (MiB) | {:.1} / {:.1} / {:.1} |",
                f(&store["block_cache"]) / 1024.0,
                f(&store["memtables"]) / 1024.0,
                f(&store["table_readers"]) / 1024.0
            );
        }
    }
    if let Some(d) = r.get("disk") {
        println!(
            "| disk bytes per entry / raw entry bytes / allowance (1.3 x raw + 80) | {:.0} / {:.0} / {:.0} |",
            f(&d["bytes_per_entry"]),
            f(&d["raw_entry_bytes_per_entry"]),
            f(&d["allowance_per_entry"])
        );
    }
    if let Some(x) = r.get("restart") {
        println!(
            "| restart: stop / listening / ready (s) | {:.2} / {:.2} / {:.2} |",
            f(&x["stop_seconds"]),
            f(&x["listening_seconds"]),
            f(&x["ready_seconds"])
        );
    }
    let s = &r["scale_targets"];
    let verdict = |t: &Value| if t["met"] == true { "met" } else { "NOT met" };
    if let Some(p) = s.get("proofs") {
        println!(
            "| target at 10M: proofs >= 20,000/s with p99 < 5 ms (tree size {}) | {:.0}/s, p99 {:.2} ms: {} |",
            s["tree_size"],
            f(&p["per_second"]),
            f(&p["p99_ms"]),
            verdict(p)
        );
    }
    if let Some(x) = s.get("restart") {
        println!(
            "| target at 10M: restart ready < 2 s | {:.2} s: {} |",
            f(&x["ready_seconds"]),
            verdict(x)
        );
    }
    if let Some(x) = s.get("ingest_to_baseline") {
        println!(
            "| target at 10M: ingest within 10% of the baseline's (tree size {}) | {:.3}: {} |",
            s["baseline_tree_size"],
            f(&x["figure"]),
            verdict(x)
        );
    }
    if let Some(x) = s.get("rss_to_baseline") {
        println!(
            "| target at 10M: RSS <= 1.5x the baseline's | {:.2}x: {} |",
            f(&x["figure"]),
            verdict(x)
        );
    }
}
