//! `lineage demo`: the ledger exactly as `lineage serve` runs it, plus a
//! small simulator of runtimes that posts realistic signed lineage through
//! the public HTTP API, so that a new user sees a living explorer within
//! seconds.
//!
//! The simulator is an ordinary client: it signs with
//! `SignedEnvelope::sign` (the code a runtime would use) and only POSTs to
//! `/v1/entries`. It grants its runtime keys with the development authority
//! key that `serve` creates in the data directory (so `--authority` is
//! refused here), then runs agent workloads that plan, invoke tools, spawn
//! sub-workloads, cross trust domains, ask a policy runtime for
//! authorizations (some denied), and finish; a few of its submissions are
//! the faults a real fleet produces (a replay after a crash, a skipped
//! sequence number, an event signed with a rotated-out key, a stale clock),
//! which the ledger refuses. An initial burst, then steady traffic until the
//! server stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use lineage::keyfile::{generate_signing_key, read_key_file};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::{EventId, public_key_base64};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tokio::sync::Mutex;

use crate::config::ServeArgs;

/// Where `lineage demo` keeps its ledger unless told otherwise (not the
/// default of `serve`, so a demo never mixes with a real ledger).
const DEMO_DATA_DIR: &str = "lineage-demo";
/// Tasks in the initial burst, and how many run at once.
const BURST: u64 = 14;
const PARALLEL: usize = 4;

/// Runtimes and the trust domain each runs in.
const PLANNER: &str = "agent/planner";
const RESEARCHER: &str = "agent/researcher";
const SANDBOX: &str = "tools/sandbox";
const POLICY: &str = "policy/gatekeeper";
const PAYMENTS: &str = "partner/payments-gw";
const CORP: &str = "corp.internal";
const SANDBOX_DOMAIN: &str = "sandbox.exec";
const POLICY_DOMAIN: &str = "corp.policy";
const PARTNER: &str = "partner.example";

/// Runs `lineage demo`.
pub async fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    if args.data_dir.is_none() && args.config.is_none() {
        args.data_dir = Some(PathBuf::from(DEMO_DATA_DIR));
    }
    let cfg = args.resolve()?;
    if !cfg.authority.is_empty() {
        bail!(
            "lineage demo grants its runtime keys with the development authority key of the \
             data directory; run it without --authority"
        );
    }
    if cfg.tls.is_some() {
        bail!(
            "lineage demo's simulator speaks plain HTTP; run it without --tls-cert and --tls-key"
        );
    }
    let authority = cfg.data_dir.join("authority.key");
    crate::serve::serve(
        cfg,
        Some(Box::new(move |url: &str| {
            let url = url.to_owned();
            tokio::spawn(async move {
                if let Err(e) = simulate(url, authority).await {
                    tracing::warn!(error = %format!("{e:#}"), "demo simulator stopped");
                }
            });
        })),
    )
    .await
}

/// A small deterministic-enough generator (no dependency for dice).
#[derive(Debug)]
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        Dice(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

#[derive(Debug)]
struct Sim {
    http: reqwest::Client,
    url: String,
    run: String,
    keys: std::sync::Mutex<std::collections::HashMap<&'static str, SigningKey>>,
    policy: Mutex<Chain>,
}

/// A workload's chain as its runtime sees it.
#[derive(Debug)]
struct Chain {
    workload: String,
    runtime: &'static str,
    domain: &'static str,
    seq: u64,
    head: Option<String>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl Chain {
    fn new(workload: String, runtime: &'static str, domain: &'static str) -> Chain {
        Chain {
            workload,
            runtime,
            domain,
            seq: 0,
            head: None,
        }
    }

    fn payload(
        &self,
        seq: u64,
        kind: &str,
        mut attrs: Value,
        parents: &[&str],
        at: &str,
    ) -> Vec<u8> {
        if let Value::Object(m) = &mut attrs {
            m.insert("trust_domain".into(), self.domain.into());
        }
        let mut p = json!({
            "runtime": self.runtime,
            "workload": self.workload,
            "seq": seq,
            "kind": kind,
            "at": at,
            "attrs": attrs,
        });
        if seq > 0
            && let Some(h) = &self.head
        {
            p["prev"] = h.clone().into();
        }
        if !parents.is_empty() {
            p["parents"] = parents.iter().map(|s| Value::from(*s)).collect();
        }
        serde_json::to_vec(&p).unwrap_or_default()
    }

    /// Signs and posts the next event; returns its event ID.
    async fn emit(
        &mut self,
        sim: &Sim,
        kind: &str,
        attrs: Value,
        parents: &[&str],
    ) -> anyhow::Result<String> {
        let bytes = self.payload(self.seq, kind, attrs, parents, &now());
        let id = EventId::of_payload(&bytes).to_string();
        sim.post_event(self.runtime, bytes).await?;
        self.seq += 1;
        self.head = Some(id.clone());
        Ok(id)
    }
}

impl Sim {
    /// The runtime's current signing key.
    fn key(&self, runtime: &str) -> anyhow::Result<SigningKey> {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(runtime)
            .cloned()
            .with_context(|| format!("no key for {runtime}"))
    }

    async fn post(&self, env: &SignedEnvelope) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}/v1/entries", self.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&env.to_wire())?)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn post_event(&self, runtime: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let env = SignedEnvelope::sign(PayloadType::Event, bytes, &self.key(runtime)?);
        let (status, body) = self.post(&env).await?;
        if status != 200 && status != 201 {
            bail!("the ledger refused an event of {runtime}: {status} {body}");
        }
        Ok(())
    }

    /// A submission that must be refused with `code` (a fault on purpose).
    async fn expect_refusal(&self, env: &SignedEnvelope, code: &str) {
        match self.post(env).await {
            Ok((_, body)) if body["code"] == code => {}
            Ok((status, body)) => {
                tracing::debug!(status, %body, expected = code, "demo fault was not refused as expected");
            }
            Err(e) => tracing::debug!(error = %e, "demo fault not posted"),
        }
    }

    async fn grant(
        &self,
        authority: &SigningKey,
        runtime: &str,
        key: &SigningKey,
        action: &str,
    ) -> anyhow::Result<()> {
        let p = json!({"action": action, "runtime": runtime,
            "public_key": public_key_base64(&key.verifying_key()), "at": now()});
        let env = SignedEnvelope::sign(PayloadType::Governance, serde_json::to_vec(&p)?, authority);
        let (status, body) = self.post(&env).await?;
        if status != 201 && status != 200 {
            bail!("{action} of a key of {runtime} refused: {status} {body}");
        }
        Ok(())
    }
}

async fn pause(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

async fn simulate(url: String, authority: PathBuf) -> anyhow::Result<()> {
    let authority = read_key_file(&authority).with_context(|| {
        format!(
            "reading the development authority key {}",
            authority.display()
        )
    })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let run = format!("{:04x}", Dice::new().below(0x10000));
    let mut keys = std::collections::HashMap::new();
    for rt in [PLANNER, RESEARCHER, SANDBOX, POLICY, PAYMENTS] {
        keys.insert(rt, generate_signing_key()?);
    }
    let sim = Arc::new(Sim {
        http,
        url: url.trim_end_matches('/').to_owned(),
        policy: Mutex::new(Chain::new(
            format!("decisions-{run}"),
            POLICY,
            POLICY_DOMAIN,
        )),
        run,
        keys: std::sync::Mutex::new(keys),
    });
    for rt in [PLANNER, RESEARCHER, SANDBOX, POLICY, PAYMENTS] {
        sim.grant(&authority, rt, &sim.key(rt)?, "grant").await?;
    }
    {
        let mut p = sim.policy.lock().await;
        p.emit(
            &sim,
            "workload.start",
            json!({"service": "gatekeeper", "policy_bundle": "payments-v7"}),
            &[],
        )
        .await?;
    }
    println!(
        "lineage demo: simulating 5 runtimes (run {}); open {}/",
        sim.run, sim.url
    );
    // The initial burst, a few tasks at a time.
    let mut dice = Dice::new();
    let mut next = 0u64;
    let mut running = tokio::task::JoinSet::new();
    while next < BURST {
        while running.len() < PARALLEL && next < BURST {
            let (s, n, seed) = (sim.clone(), next, dice.next());
            running.spawn(async move { task(&s, n, Dice(seed | 1), 0).await });
            next += 1;
        }
        if let Some(Ok(Err(e))) = running.join_next().await {
            tracing::debug!(error = %format!("{e:#}"), "demo task");
        }
    }
    while let Some(r) = running.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::debug!(error = %format!("{e:#}"), "demo task");
        }
    }
    faults(&sim, &authority).await?;
    // Steady traffic: a new task every few seconds, its steps spaced out.
    loop {
        while running.len() < 2 {
            let (s, n, seed) = (sim.clone(), next, dice.next());
            running.spawn(async move { task(&s, n, Dice(seed | 1), 700).await });
            next += 1;
        }
        pause(1500 + dice.below(2500)).await;
        while let Some(r) = running.try_join_next() {
            if let Ok(Err(e)) = r {
                tracing::debug!(error = %format!("{e:#}"), "demo task");
            }
        }
    }
}

/// One agent task: plan, tools, a research sub-workload that runs code in a
/// sandbox, an authorization from the policy runtime, maybe a payment at a
/// partner, finish. `step_ms` spaces the steps out.
async fn task(sim: &Sim, n: u64, mut dice: Dice, step_ms: u64) -> anyhow::Result<()> {
    let goals = [
        "reconcile-invoices",
        "triage-security-alert",
        "summarize-contract",
        "refund-customer",
        "rotate-credentials",
        "draft-incident-report",
    ];
    let goal = dice.pick(&goals);
    let mut t = Chain::new(format!("task-{}-{n:03}", sim.run), PLANNER, CORP);
    let wait = |d: &mut Dice| step_ms / 2 + d.below(step_ms.max(1));
    t.emit(sim, "workload.start", json!({"goal": goal, "requested_by": format!("user:{}", dice.pick(&["alice", "bob", "chen", "dana"]))}), &[]).await?;
    pause(wait(&mut dice)).await;
    t.emit(
        sim,
        "plan.created",
        json!({"model": "planner-v3", "steps": 3 + dice.below(4)}),
        &[],
    )
    .await?;
    pause(wait(&mut dice)).await;
    t.emit(
        sim,
        "tool.invoke",
        json!({"tool": "search.internal", "query_sha256": format!("{:016x}", dice.next())}),
        &[],
    )
    .await?;
    t.emit(
        sim,
        "tool.result",
        json!({"tool": "search.internal", "status": "ok", "hits": dice.below(40)}),
        &[],
    )
    .await?;
    pause(wait(&mut dice)).await;

    // A research sub-workload, which runs code in the sandbox.
    let spawn = t
        .emit(
            sim,
            "workload.spawn",
            json!({"child": format!("{}/research", t.workload)}),
            &[],
        )
        .await?;
    let mut r = Chain::new(format!("{}/research", t.workload), RESEARCHER, CORP);
    r.emit(
        sim,
        "workload.start",
        json!({"parent_workload": t.workload}),
        &[&spawn],
    )
    .await?;
    r.emit(
        sim,
        "tool.invoke",
        json!({"tool": "docs.fetch", "documents": 1 + dice.below(6)}),
        &[],
    )
    .await?;
    pause(wait(&mut dice)).await;
    let cross = r
        .emit(
            sim,
            "boundary.cross",
            json!({"from": CORP, "to": SANDBOX_DOMAIN, "reason": "execute generated code"}),
            &[],
        )
        .await?;
    let mut s = Chain::new(
        format!("{}/research/exec", t.workload),
        SANDBOX,
        SANDBOX_DOMAIN,
    );
    s.emit(
        sim,
        "workload.start",
        json!({"image": "python:3.12-slim", "network": "none"}),
        &[&cross],
    )
    .await?;
    let failed = dice.below(9) == 0;
    s.emit(
        sim,
        "tool.invoke",
        json!({"tool": "python.run", "cpu_ms": 40 + dice.below(900)}),
        &[],
    )
    .await?;
    let s_done = s
        .emit(
            sim,
            "workload.finish",
            json!({"status": if failed { "error" } else { "ok" }, "exit_code": u64::from(failed)}),
            &[],
        )
        .await?;
    pause(wait(&mut dice)).await;
    r.emit(
        sim,
        "tool.result",
        json!({"tool": "python.run", "status": if failed { "error" } else { "ok" }}),
        &[&s_done],
    )
    .await?;
    let r_done = r
        .emit(
            sim,
            "workload.finish",
            json!({"status": if failed { "failed" } else { "ok" }, "findings": dice.below(5)}),
            &[],
        )
        .await?;
    t.emit(sim, "result.merge", json!({"from": r.workload}), &[&r_done])
        .await?;
    if failed {
        t.emit(
            sim,
            "workload.finish",
            json!({"status": "failed", "reason": "sandbox run failed"}),
            &[],
        )
        .await?;
        return Ok(());
    }
    pause(wait(&mut dice)).await;

    // An authorization decided by the policy runtime.
    let amount = 20 + dice.below(4000);
    let action = dice.pick(&[
        "payments:write",
        "payments:write",
        "crm:export",
        "secrets:read",
    ]);
    let req = t
        .emit(
            sim,
            "authz.request",
            json!({"action": action, "amount_eur": amount}),
            &[],
        )
        .await?;
    let allowed =
        action == "payments:write" && amount < 2500 || action == "crm:export" && dice.below(2) == 0;
    let decision = {
        let mut p = sim.policy.lock().await;
        let kind = if allowed { "authz.grant" } else { "authz.deny" };
        let reason = if allowed {
            "within delegated limits"
        } else if action == "secrets:read" {
            "agents may not read secrets"
        } else {
            "over the delegated limit; needs human approval"
        };
        p.emit(sim, kind, json!({"subject": t.workload, "action": action, "policy": "payments-v7", "reason": reason}), &[&req])
            .await?
    };
    if !allowed {
        t.emit(sim, "authz.denied", json!({"action": action}), &[&decision])
            .await?;
        t.emit(sim, "workload.finish", json!({"status": "denied"}), &[])
            .await?;
        return Ok(());
    }
    t.emit(
        sim,
        "authz.granted",
        json!({"action": action}),
        &[&decision],
    )
    .await?;
    if action == "payments:write" {
        // Hand the payment to the partner's gateway: another trust domain.
        let cross = t
            .emit(
                sim,
                "boundary.cross",
                json!({"from": CORP, "to": PARTNER, "reason": "settle payment"}),
                &[],
            )
            .await?;
        pause(wait(&mut dice)).await;
        let mut g = Chain::new(format!("pay-{}-{n:03}", sim.run), PAYMENTS, PARTNER);
        g.emit(
            sim,
            "workload.start",
            json!({"amount_eur": amount, "currency": "EUR"}),
            &[&cross],
        )
        .await?;
        g.emit(
            sim,
            "payment.authorize",
            json!({"scheme": "sepa", "risk_score": dice.below(100)}),
            &[],
        )
        .await?;
        let g_done = g
            .emit(sim, "workload.finish", json!({"status": "settled"}), &[])
            .await?;
        t.emit(
            sim,
            "tool.result",
            json!({"tool": "payments.settle", "status": "ok"}),
            &[&g_done],
        )
        .await?;
    }
    t.emit(sim, "workload.finish", json!({"status": "ok"}), &[])
        .await?;
    Ok(())
}

/// What a real fleet also sends: each of these is refused by the ledger and
/// shows up on the dashboard and the workload's timeline.
async fn faults(sim: &Sim, authority: &SigningKey) -> anyhow::Result<()> {
    let mut w = Chain::new(format!("batch-{}-nightly", sim.run), PLANNER, CORP);
    w.emit(
        sim,
        "workload.start",
        json!({"goal": "nightly-export"}),
        &[],
    )
    .await?;
    w.emit(sim, "tool.invoke", json!({"tool": "warehouse.query"}), &[])
        .await?;
    let key = sim.key(PLANNER)?;
    // A replay after a crash: seq 1 again, with other content (equivocation).
    let replay = w.payload(
        1,
        "tool.invoke",
        json!({"tool": "warehouse.query", "retry": true}),
        &[],
        &now(),
    );
    sim.expect_refusal(
        &SignedEnvelope::sign(PayloadType::Event, replay, &key),
        "equivocation",
    )
    .await;
    // A skipped sequence number.
    let gap = w.payload(
        w.seq + 1,
        "tool.result",
        json!({"status": "ok"}),
        &[],
        &now(),
    );
    sim.expect_refusal(
        &SignedEnvelope::sign(PayloadType::Event, gap, &key),
        "sequence_gap",
    )
    .await;
    // A runtime whose clock is an hour behind.
    let stale = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap_or_default();
    let skew = w.payload(w.seq, "tool.result", json!({"status": "ok"}), &[], &stale);
    sim.expect_refusal(
        &SignedEnvelope::sign(PayloadType::Event, skew, &key),
        "clock_skew",
    )
    .await;
    w.emit(
        sim,
        "tool.result",
        json!({"tool": "warehouse.query", "status": "ok", "rows": 120_000}),
        &[],
    )
    .await?;
    // Key rotation: a new key for the sandbox, the old one revoked; a late
    // event signed with the old key is refused.
    let old = sim.key(SANDBOX)?;
    let new = generate_signing_key()?;
    sim.grant(authority, SANDBOX, &new, "grant").await?;
    sim.grant(authority, SANDBOX, &old, "revoke").await?;
    let late = Chain::new(
        format!("batch-{}-nightly/exec", sim.run),
        SANDBOX,
        SANDBOX_DOMAIN,
    )
    .payload(
        0,
        "workload.start",
        json!({"image": "python:3.12-slim"}),
        &[],
        &now(),
    );
    sim.expect_refusal(
        &SignedEnvelope::sign(PayloadType::Event, late, &old),
        "revoked_key",
    )
    .await;
    // From now on the sandbox signs with its new key.
    sim.keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(SANDBOX, new);
    w.emit(sim, "workload.finish", json!({"status": "ok"}), &[])
        .await?;
    Ok(())
}
