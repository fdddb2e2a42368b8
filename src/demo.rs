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
//! which the ledger refuses. Then continuous governance, in under three
//! seconds: an authority halts a workload mid-run and the sub-workloads
//! deriving from it are refused `halted` (one of them also halted in its own
//! right, so it stays halted when the first halt is resumed); a contractor's
//! key granted for two seconds and a scope signs inside both, is refused
//! `out_of_scope` outside its scope and `key_expired` after its window, and
//! is renewed. Every event states its trust `domain`, and every workload but
//! the policy service's ends with `workload.end`. Each governance step is
//! printed; an outcome other than the one described stops the simulator
//! with a warning. An initial burst, then steady traffic until the server
//! stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use lineage::keyfile::{generate_signing_key, read_key_file};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_schemas::{GovernanceAction, GovernancePayload, GrantScope, HaltTarget};
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
const CONTRACTOR: &str = "contractor/ci-runner";
const CORP: &str = "corp.internal";
const SANDBOX_DOMAIN: &str = "sandbox.exec";
const POLICY_DOMAIN: &str = "corp.policy";
const PARTNER: &str = "partner.example";
const CONTRACTOR_DOMAIN: &str = "ci.contractor";
/// How long the contractor's first key is valid: short, so that its expiry
/// happens during the demo's start (which waits for it).
const CONTRACTOR_WINDOW: time::Duration = time::Duration::seconds(2);

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

    fn payload(&self, seq: u64, kind: &str, attrs: Value, parents: &[&str], at: &str) -> Vec<u8> {
        let mut p = json!({
            "runtime": self.runtime,
            "workload": self.workload,
            "seq": seq,
            "kind": kind,
            "at": at,
            "attrs": attrs,
            "domain": self.domain,
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

    /// Signs and posts the next event, which the ledger must refuse with
    /// `code`; the chain does not advance. Returns the problem.
    async fn refused(
        &self,
        sim: &Sim,
        kind: &str,
        attrs: Value,
        code: &str,
    ) -> anyhow::Result<Value> {
        let bytes = self.payload(self.seq, kind, attrs, &[], &now());
        let env = SignedEnvelope::sign(PayloadType::Event, bytes, &sim.key(self.runtime)?);
        let (status, body) = sim.post(&env).await?;
        if body["code"] != code {
            bail!(
                "{} of {} was not refused {code}: {status} {body}",
                kind,
                self.workload
            );
        }
        Ok(body)
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
        action: GovernanceAction,
    ) -> anyhow::Result<u64> {
        self.govern(authority, &key_statement(action, runtime, key))
            .await
    }

    /// Signs a governance statement with the authority key and posts it;
    /// the log index it got.
    async fn govern(
        &self,
        authority: &SigningKey,
        statement: &GovernancePayload,
    ) -> anyhow::Result<u64> {
        let env = SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(statement)?,
            authority,
        );
        let (status, body) = self.post(&env).await?;
        match body["index"].as_u64() {
            Some(index) if status == 201 || status == 200 => Ok(index),
            _ => bail!(
                "the ledger refused a {:?} statement: {status} {body}",
                statement.action
            ),
        }
    }
}

/// A grant or revocation of `key` for `runtime`, made now, with no window
/// or scope.
fn key_statement(action: GovernanceAction, runtime: &str, key: &SigningKey) -> GovernancePayload {
    GovernancePayload::key(
        action,
        runtime.to_owned(),
        public_key_base64(&key.verifying_key()),
        now(),
    )
}

/// A halt or resume of `workload`, made now.
fn halt_statement(action: GovernanceAction, workload: &str, reason: &str) -> GovernancePayload {
    GovernancePayload::halt(
        action,
        HaltTarget::Workload(workload.to_owned()),
        Some(reason.to_owned()),
        now(),
    )
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
        sim.grant(&authority, rt, &sim.key(rt)?, GovernanceAction::Grant)
            .await?;
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
        "lineage demo: simulating 6 runtimes (run {}); open {}/",
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
    governance(&sim, &authority).await?;
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
            "workload.end",
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
            "workload.end",
            json!({"status": if failed { "failed" } else { "ok" }, "findings": dice.below(5)}),
            &[],
        )
        .await?;
    t.emit(sim, "result.merge", json!({"from": r.workload}), &[&r_done])
        .await?;
    if failed {
        t.emit(
            sim,
            "workload.end",
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
        t.emit(sim, "workload.end", json!({"status": "denied"}), &[])
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
            .emit(sim, "workload.end", json!({"status": "settled"}), &[])
            .await?;
        t.emit(
            sim,
            "tool.result",
            json!({"tool": "payments.settle", "status": "ok"}),
            &[&g_done],
        )
        .await?;
    }
    t.emit(sim, "workload.end", json!({"status": "ok"}), &[])
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
    sim.grant(authority, SANDBOX, &new, GovernanceAction::Grant)
        .await?;
    sim.grant(authority, SANDBOX, &old, GovernanceAction::Revoke)
        .await?;
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
    w.emit(sim, "workload.end", json!({"status": "ok"}), &[])
        .await?;
    Ok(())
}

/// Continuous governance, as an operator sees it: a halt that follows the
/// lineage, a resume that lifts only its own halt, a key's scope and its
/// validity window. Every outcome is checked; any other stops the
/// simulator. Waits at most [`CONTRACTOR_WINDOW`] for the key to expire.
async fn governance(sim: &Sim, authority: &SigningKey) -> anyhow::Result<()> {
    // A contractor's CI runner: a key valid for two seconds, for build work
    // in its own domain only.
    let granted_at = time::OffsetDateTime::now_utc();
    let not_after = to_millis(granted_at + CONTRACTOR_WINDOW);
    let scope = GrantScope {
        kinds: Some(vec!["workload.*".into(), "build.*".into()]),
        workloads: Some(vec![format!("build-{}-*", sim.run)]),
        domains: Some(vec![CONTRACTOR_DOMAIN.into()]),
    };
    let key = generate_signing_key()?;
    let grant = GovernancePayload {
        not_after: Some(not_after.format(&Rfc3339)?),
        scope: Some(scope.clone()),
        ..key_statement(GovernanceAction::Grant, CONTRACTOR, &key)
    };
    sim.govern(authority, &grant).await?;
    sim.keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(CONTRACTOR, key);
    let mut build = Chain::new(
        format!("build-{}-001", sim.run),
        CONTRACTOR,
        CONTRACTOR_DOMAIN,
    );
    build
        .emit(
            sim,
            "workload.start",
            json!({"repo": "payments-service", "ref": "main"}),
            &[],
        )
        .await?;
    build
        .emit(
            sim,
            "build.compile",
            json!({"target": "x86_64-linux", "status": "ok"}),
            &[],
        )
        .await?;
    let p = build
        .refused(
            sim,
            "deploy.production",
            json!({"service": "payments"}),
            "out_of_scope",
        )
        .await?;
    println!(
        "lineage demo: {CONTRACTOR} is granted build work until {} (2 s from now); its deploy.production is refused out_of_scope (field {})",
        grant.not_after.as_deref().unwrap_or_default(),
        p["field"].as_str().unwrap_or_default()
    );

    incident(sim, authority).await?;

    // The contractor's window ends: its next event is refused.
    let left = not_after - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(100);
    if left.is_positive() {
        pause(u64::try_from(left.whole_milliseconds()).unwrap_or(0)).await;
    }
    build
        .refused(
            sim,
            "build.test",
            json!({"suite": "integration"}),
            "key_expired",
        )
        .await?;
    // Renewed for an hour, with the same scope, it finishes its build.
    let renewed = generate_signing_key()?;
    let renewal = GovernancePayload {
        not_after: Some(
            to_millis(time::OffsetDateTime::now_utc() + time::Duration::hours(1))
                .format(&Rfc3339)?,
        ),
        scope: Some(scope),
        ..key_statement(GovernanceAction::Grant, CONTRACTOR, &renewed)
    };
    sim.govern(authority, &renewal).await?;
    sim.keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(CONTRACTOR, renewed);
    build
        .emit(
            sim,
            "build.test",
            json!({"suite": "integration", "status": "ok"}),
            &[],
        )
        .await?;
    build
        .emit(sim, "workload.end", json!({"status": "ok"}), &[])
        .await?;
    println!(
        "lineage demo: {CONTRACTOR}'s key expired: its build.test was refused key_expired; a renewed key finished {}",
        build.workload
    );
    Ok(())
}

/// An incident workload with a sub-workload and a grandchild in the
/// sandbox, halted mid-run by the authority.
async fn incident(sim: &Sim, authority: &SigningKey) -> anyhow::Result<()> {
    let mut root = Chain::new(format!("incident-{}", sim.run), PLANNER, CORP);
    root.emit(
        sim,
        "workload.start",
        json!({"goal": "investigate-alert", "alert": "INC-4711"}),
        &[],
    )
    .await?;
    let spawn = root
        .emit(
            sim,
            "workload.spawn",
            json!({"child": format!("{}/triage", root.workload)}),
            &[],
        )
        .await?;
    let mut child = Chain::new(format!("{}/triage", root.workload), RESEARCHER, CORP);
    child
        .emit(
            sim,
            "workload.start",
            json!({"parent_workload": root.workload}),
            &[&spawn],
        )
        .await?;
    let cross = child
        .emit(
            sim,
            "boundary.cross",
            json!({"from": CORP, "to": SANDBOX_DOMAIN, "reason": "replay the exploit"}),
            &[],
        )
        .await?;
    let mut grandchild = Chain::new(
        format!("{}/triage/exec", root.workload),
        SANDBOX,
        SANDBOX_DOMAIN,
    );
    grandchild
        .emit(
            sim,
            "workload.start",
            json!({"image": "python:3.12-slim", "network": "none"}),
            &[&cross],
        )
        .await?;
    grandchild
        .emit(
            sim,
            "tool.invoke",
            json!({"tool": "python.run", "attempt": 1}),
            &[],
        )
        .await?;

    // The halt: the incident workload and everything deriving from it.
    let reason = "runaway tool loop: python.run re-invoked 40 times in 10 s";
    let halt = sim
        .govern(
            authority,
            &halt_statement(GovernanceAction::Halt, &root.workload, reason),
        )
        .await?;
    println!(
        "lineage demo: the authority halted {} at index {halt} ({reason:?}), and with it {} and {}, which derive from it",
        root.workload, child.workload, grandchild.workload
    );
    for (chain, kind) in [
        (&grandchild, "tool.invoke"),
        (&child, "tool.invoke"),
        (&root, "plan.revised"),
    ] {
        let p = chain
            .refused(sim, kind, json!({"attempt": 2}), "halted")
            .await?;
        if p["halt_index"] != halt {
            bail!("{} was refused by another halt: {p}", chain.workload);
        }
        println!(
            "lineage demo: {}'s next event ({kind}) is refused halted (halt_index {halt})",
            chain.workload
        );
    }

    // The sandbox run is also halted in its own right, then the incident is
    // resumed: the resume lifts only its own halt.
    let own = sim
        .govern(
            authority,
            &halt_statement(
                GovernanceAction::Halt,
                &grandchild.workload,
                "sandbox image under security review",
            ),
        )
        .await?;
    let resume = sim
        .govern(
            authority,
            &halt_statement(
                GovernanceAction::Resume,
                &root.workload,
                "loop guard deployed; operator approved",
            ),
        )
        .await?;
    let p = grandchild
        .refused(sim, "tool.invoke", json!({"attempt": 3}), "halted")
        .await?;
    if p["halt_index"] != own {
        bail!("{} was refused by another halt: {p}", grandchild.workload);
    }
    child
        .emit(
            sim,
            "tool.result",
            json!({"tool": "python.run", "status": "cancelled"}),
            &[],
        )
        .await?;
    let child_end = child
        .emit(
            sim,
            "workload.end",
            json!({"status": "partial", "findings": 2}),
            &[],
        )
        .await?;
    root.emit(
        sim,
        "result.merge",
        json!({"from": child.workload}),
        &[&child_end],
    )
    .await?;
    root.emit(sim, "workload.end", json!({"status": "ok"}), &[])
        .await?;
    println!(
        "lineage demo: resumed {} at index {resume}: it and {} continued and ended; {} stays halted by its own halt at index {own}",
        root.workload, child.workload, grandchild.workload
    );
    Ok(())
}

/// `t` truncated to whole milliseconds (a shorter timestamp to read).
fn to_millis(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.replace_millisecond(t.millisecond()).unwrap_or(t)
}
