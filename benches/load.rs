//! `lineage-bench`: the load generator.
//!
//! ```sh
//! cargo bench --bench load -- [--events N] [--connections C] [--batch B] [--json PATH]
//! ```
//!
//! In one run it:
//! 1. measures the yardstick: ed25519-dalek `verify_strict` per second on all cores;
//! 2. pre-signs N realistic events (several runtimes, many workloads with prev
//!    chains and parents) before the timed window;
//! 3. starts the real `lineage serve` binary on a fresh temporary data dir
//!    (or targets `--server URL` with `--authority-key FILE`), grants the keys,
//!    and drives it over HTTP with C connections, in single-event requests
//!    (`--batch 1`) or arrays of B envelopes;
//! 4. prints events/s, latency percentiles, CPU of server and client, the
//!    yardstick and the ratio, and writes the same as JSON.
//!
//! No timed assertion anywhere: this is a measurement, not a test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::{EventId, public_key_base64};
use rayon::prelude::*;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

struct Args {
    events: usize,
    connections: usize,
    batch: usize,
    runtimes: usize,
    chain: usize,
    server: Option<String>,
    authority_key: Option<PathBuf>,
    json: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        events: 20_000,
        connections: 8,
        batch: 500,
        runtimes: 4,
        chain: 10,
        server: None,
        authority_key: None,
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
            "--server" => a.server = Some(value()),
            "--authority-key" => a.authority_key = Some(PathBuf::from(value())),
            "--json" => a.json = PathBuf::from(value()),
            // cargo bench passes --bench; ignore harness flags.
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(a.batch >= 1 && a.batch <= 1000, "--batch must be 1..=1000");
    a
}

/// Raw `verify_strict` rate on all cores, over about `secs` seconds.
fn yardstick(secs: f64) -> f64 {
    let key = SigningKey::from_bytes(&[42; 32]);
    let public = key.verifying_key();
    let msgs: Vec<(Vec<u8>, ed25519_dalek::Signature)> = (0..1024u32)
        .map(|i| {
            let m = format!("yardstick message {i} with some realistic length padding ......")
                .into_bytes();
            let s = ed25519_dalek::Signer::sign(&key, &m);
            (m, s)
        })
        .collect();
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed().as_secs_f64() < secs {
        done += msgs
            .par_iter()
            .filter(|(m, s)| public.verify_strict(m, s).is_ok())
            .count();
    }
    done as f64 / start.elapsed().as_secs_f64()
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

struct Server {
    child: Option<Child>,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_server(authority: &SigningKey) -> Server {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-skew-secs",
            "3600",
            "--data-dir",
        ])
        .arg(dir.path())
        .arg("--authority")
        .arg(public_key_base64(&authority.verifying_key()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lineage serve");
    let out = child.stdout.take().expect("stdout");
    let mut url = None;
    for line in std::io::BufReader::new(out).lines() {
        let line = line.expect("line");
        if let Some(u) = line.strip_prefix("lineage: listening on ") {
            url = Some(u.to_owned());
            break;
        }
    }
    Server {
        child: Some(child),
        url: url.expect("server address"),
        _dir: Some(dir),
    }
}

/// Pre-signed work for one connection: requests in order.
type Work = Vec<Vec<u8>>;

fn presign(a: &Args, keys: &[SigningKey]) -> (Vec<Work>, usize) {
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
    let per_conn = a.events.div_ceil(a.connections);
    let works: Vec<Work> = (0..a.connections)
        .into_par_iter()
        .map(|c| {
            let mut envs: Vec<serde_json::Value> = Vec::with_capacity(per_conn);
            let mut last_start: Option<String> = None;
            let mut w = 0usize;
            while envs.len() < per_conn {
                let r = (c + w) % keys.len();
                let runtime = format!("runtime-{r}");
                let workload = format!("c{c}-w{w}");
                let mut prev: Option<String> = None;
                for seq in 0..a.chain {
                    if envs.len() >= per_conn {
                        break;
                    }
                    let kind = if seq + 1 == a.chain { "workload.end" } else { kinds[seq % kinds.len()] };
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
                    envs.push(serde_json::to_value(env.to_wire()).expect("wire"));
                }
                w += 1;
            }
            envs.chunks(a.batch)
                .map(|chunk| {
                    if a.batch == 1 {
                        serde_json::to_vec(&chunk[0]).expect("json")
                    } else {
                        serde_json::to_vec(chunk).expect("json")
                    }
                })
                .collect()
        })
        .collect();
    let total = works.iter().map(|w| w.len()).sum::<usize>();
    (works, total)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let a = parse_args();
    println!(
        "measuring the yardstick (verify_strict on {} threads)...",
        rayon::current_num_threads()
    );
    let yard = yardstick(3.0);
    let keys: Vec<SigningKey> = (0..a.runtimes)
        .map(|i| {
            SigningKey::from_bytes(blake3::hash(format!("bench runtime {i}").as_bytes()).as_bytes())
        })
        .collect();
    println!("pre-signing {} events...", a.events);
    let (works, requests) = presign(&a, &keys);
    let authority = match &a.authority_key {
        Some(p) => lineage_ledger::keys::read_key_file(p).expect("authority key"),
        None => SigningKey::from_bytes(&[9; 32]),
    };
    let server = match &a.server {
        Some(url) => Server {
            child: None,
            url: url.clone(),
            _dir: None,
        },
        None => start_server(&authority),
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
    rt.block_on(async {
        for (i, k) in keys.iter().enumerate() {
            let p = json!({"action": "grant", "runtime": format!("runtime-{i}"),
                "public_key": public_key_base64(&k.verifying_key()),
                "at": time::OffsetDateTime::now_utc().format(&Rfc3339).expect("time")});
            let env = SignedEnvelope::sign(
                PayloadType::Governance,
                serde_json::to_vec(&p).expect("json"),
                &authority,
            );
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&env.to_wire()).expect("json"))
                .send()
                .await
                .expect("grant");
            assert!(
                r.status().is_success() || r.status().as_u16() == 409,
                "grant: {}",
                r.status()
            );
        }
    });
    let server_pid = server.child.as_ref().map(std::process::Child::id);
    let server_cpu0 = server_pid.map_or(0.0, cpu_seconds);
    let client_cpu0 = cpu_seconds(std::process::id());
    let start = Instant::now();
    let (latencies, accepted, failed) = rt.block_on(async {
        let mut tasks = Vec::new();
        for work in works {
            let client = client.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(work.len());
                let (mut ok, mut bad) = (0usize, 0usize);
                for body in work {
                    let t = Instant::now();
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match r {
                        Ok(resp) => {
                            let status = resp.status();
                            let text = resp.bytes().await.unwrap_or_default();
                            lat.push(t.elapsed());
                            if status.as_u16() == 201 {
                                ok += 1;
                            } else if status.as_u16() == 200 {
                                let v: serde_json::Value =
                                    serde_json::from_slice(&text).unwrap_or_default();
                                let items = v.as_array().map_or(0, Vec::len);
                                let good = v.as_array().map_or(0, |a| {
                                    a.iter().filter(|i| i.get("index").is_some()).count()
                                });
                                ok += good;
                                bad += items - good;
                            } else {
                                bad += 1;
                            }
                        }
                        Err(_) => bad += 1,
                    }
                }
                (lat, ok, bad)
            }));
        }
        let mut all = Vec::new();
        let (mut ok, mut bad) = (0, 0);
        for t in tasks {
            let (l, o, b) = t.await.expect("task");
            all.extend(l);
            ok += o;
            bad += b;
        }
        (all, ok, bad)
    });
    let wall = start.elapsed().as_secs_f64();
    let server_cpu = server_pid.map_or(0.0, cpu_seconds) - server_cpu0;
    let client_cpu = cpu_seconds(std::process::id()) - client_cpu0;
    let mut sorted = latencies;
    sorted.sort();
    let rate = accepted as f64 / wall;
    let report = json!({
        "events": a.events, "accepted": accepted, "failed": failed, "requests": requests,
        "connections": a.connections, "batch": a.batch, "wall_seconds": wall,
        "events_per_second": rate,
        "latency_ms": {"p50": percentile(&sorted, 0.50), "p95": percentile(&sorted, 0.95),
                        "p99": percentile(&sorted, 0.99), "max": percentile(&sorted, 1.0)},
        "server_cpu_seconds": server_cpu, "client_cpu_seconds": client_cpu,
        "yardstick_verify_per_second": yard, "ratio_to_yardstick": rate / yard,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    println!();
    println!("| metric | value |\n|---|---|");
    println!("| events accepted / failed | {accepted} / {failed} |");
    println!("| connections x batch | {} x {} |", a.connections, a.batch);
    println!("| events/s | {rate:.0} |");
    println!(
        "| request latency p50 / p95 / p99 / max (ms) | {:.2} / {:.2} / {:.2} / {:.2} |",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.95),
        percentile(&sorted, 0.99),
        percentile(&sorted, 1.0)
    );
    println!("| CPU seconds server / client | {server_cpu:.2} / {client_cpu:.2} |");
    println!("| yardstick verify_strict/s (all cores) | {yard:.0} |");
    println!("| ratio events/s / yardstick | {:.3} |", rate / yard);
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
