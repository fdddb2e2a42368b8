//! `lineage demo`: the ledger exactly as `lineage serve` runs it, plus a
//! small simulator of runtimes that posts realistic signed lineage through
//! the public HTTP API, so that a new user sees a living explorer within
//! seconds.
//!
//! The simulator is an ordinary client: its runtimes record through the
//! runtime SDK (`lineage-client`: workload handles, verified receipts) and
//! only talk to the public HTTP API. It grants its runtime keys with the development authority
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
use lineage::keyfile::{generate_signing_key, read_key_file};
use lineage_client::{
    Attrs, Authority, Client, Config, Denial, Error, Runtime, START_KIND, SigningKey, Step,
    Workload,
};
use lineage_ledger::dsse::SignedEnvelope;
use lineage_ledger::keys::public_key_base64;
use lineage_schemas::{EventPayload, GovernanceAction, GovernancePayload, GrantScope, HaltTarget};
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
    client: Client,
    authority: Authority,
    run: String,
    /// Each runtime with its current key (rotations replace it).
    runtimes: std::sync::Mutex<std::collections::HashMap<&'static str, Runtime>>,
    policy: Mutex<Workload>,
}

impl Sim {
    /// The runtime with its current key.
    fn rt(&self, name: &str) -> anyhow::Result<Runtime> {
        self.runtimes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .with_context(|| format!("no runtime {name}"))
    }

    /// Grants `key` to `runtime` and signs with it from now on.
    async fn enrol(
        &self,
        runtime: &'static str,
        key: SigningKey,
        grant: Option<GovernancePayload>,
    ) -> anyhow::Result<u64> {
        let statement = grant.unwrap_or_else(|| {
            GovernancePayload::key(
                GovernanceAction::Grant,
                runtime.to_owned(),
                public_key_base64(&key.verifying_key()),
                now(),
            )
        });
        let index = self.govern(&statement).await?;
        let rt = self.client.runtime(runtime, key)?;
        self.runtimes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(runtime, rt);
        Ok(index)
    }

    /// Signs a governance statement with the authority key and submits it;
    /// the log index it got.
    async fn govern(&self, statement: &GovernancePayload) -> anyhow::Result<u64> {
        let receipt =
            self.authority.submit(statement).await.with_context(|| {
                format!("the ledger refused a {:?} statement", statement.action)
            })?;
        Ok(receipt.index)
    }

    /// A submission that must be refused with `code` (a fault on purpose).
    async fn expect_refusal(&self, env: &SignedEnvelope, code: &str) {
        match self.client.submit(env).await {
            Err(Error::Denied(d)) if d.code == code => {}
            other => {
                tracing::debug!(
                    ?other,
                    expected = code,
                    "demo fault was not refused as expected"
                );
            }
        }
    }

    /// Starts `workload` of `runtime` in `domain`.
    async fn start(
        &self,
        runtime: &str,
        workload: String,
        domain: &str,
        attrs: Value,
        parents: &[&str],
    ) -> anyhow::Result<Workload> {
        let parents: Vec<String> = parents.iter().map(|p| (*p).to_owned()).collect();
        self.rt(runtime)?
            .start(&workload, START_KIND, object(attrs), &parents, Some(domain))
            .await
            .with_context(|| format!("starting {workload}"))
    }
}

fn object(v: Value) -> Attrs {
    match v {
        Value::Object(m) => m,
        _ => Attrs::new(),
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Records the next event of `w`; its event ID.
async fn emit(
    w: &mut Workload,
    kind: &str,
    attrs: Value,
    parents: &[&str],
) -> anyhow::Result<String> {
    let step = Step {
        kind: kind.to_owned(),
        attrs: object(attrs),
        parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        domain: None,
    };
    let receipt = w
        .record_step(step)
        .await
        .with_context(|| format!("{kind} of {}", w.id()))?;
    Ok(receipt.event_id)
}

/// Sends what would be the next event of `w`, which the ledger must refuse
/// with `code`; the denial. Signed with `w`'s runtime key outside the
/// handle, so the handle is not marked denied and goes on after a resume.
async fn refused(
    sim: &Sim,
    w: &Workload,
    kind: &str,
    attrs: Value,
    code: &str,
) -> anyhow::Result<Denial> {
    let next = w.head().map_or(0, |h| h.seq + 1);
    let envelope = w.runtime().sign(raw_payload(w, next, kind, attrs, &now()));
    match sim.client.submit(&envelope).await {
        Err(Error::Denied(d)) if d.code == code => Ok(*d),
        Err(e) => bail!("{kind} of {} was not refused {code}: {e}", w.id()),
        Ok(r) => bail!(
            "{kind} of {} was accepted at {}, not refused {code}",
            w.id(),
            r.index
        ),
    }
}

/// A raw event payload of `w`'s chain at `seq` (for the faults, which no
/// well-behaved handle would send).
fn raw_payload(w: &Workload, seq: u64, kind: &str, attrs: Value, at: &str) -> Vec<u8> {
    let payload = EventPayload {
        runtime: w.runtime().id().to_owned(),
        workload: w.id().to_owned(),
        seq,
        prev: w.head().filter(|_| seq > 0).map(|h| h.event_id),
        parents: Vec::new(),
        kind: kind.to_owned(),
        at: at.to_owned(),
        attrs: Some(object(attrs)),
        domain: w.domain().map(str::to_owned),
    };
    serde_json::to_vec(&payload).unwrap_or_default()
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
    // The demo's own ledger: its log key is pinned on first use.
    let client = Client::new(Config::new(url.trim_end_matches('/')))?;
    let run = format!("{:04x}", Dice::new().below(0x10000));
    let authority = client.authority(authority);
    let mut keys = Vec::new();
    for rt in [PLANNER, RESEARCHER, SANDBOX, POLICY, PAYMENTS] {
        keys.push((rt, generate_signing_key()?));
    }
    // The policy service's workload is opened once its key is granted.
    let mut runtimes = std::collections::HashMap::new();
    for (rt, key) in &keys {
        authority
            .grant(rt, &key.verifying_key())
            .await
            .with_context(|| format!("granting {rt}"))?;
        runtimes.insert(*rt, client.runtime(rt, key.clone())?);
    }
    let policy = runtimes[POLICY]
        .start(
            &format!("decisions-{run}"),
            START_KIND,
            object(json!({"service": "gatekeeper", "policy_bundle": "payments-v7"})),
            &[],
            Some(POLICY_DOMAIN),
        )
        .await?;
    let sim = Arc::new(Sim {
        client,
        authority,
        run,
        runtimes: std::sync::Mutex::new(runtimes),
        policy: Mutex::new(policy),
    });
    println!(
        "lineage demo: simulating 6 runtimes (run {}); open {}/",
        sim.run,
        url.trim_end_matches('/')
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
    faults(&sim).await?;
    governance(&sim).await?;
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
    let requested_by = format!("user:{}", dice.pick(&["alice", "bob", "chen", "dana"]));
    let mut t = sim
        .start(
            PLANNER,
            format!("task-{}-{n:03}", sim.run),
            CORP,
            json!({"goal": goal, "requested_by": requested_by}),
            &[],
        )
        .await?;
    let wait = |d: &mut Dice| step_ms / 2 + d.below(step_ms.max(1));
    pause(wait(&mut dice)).await;
    emit(
        &mut t,
        "plan.created",
        json!({"model": "planner-v3", "steps": 3 + dice.below(4)}),
        &[],
    )
    .await?;
    pause(wait(&mut dice)).await;
    emit(
        &mut t,
        "tool.invoke",
        json!({"tool": "search.internal", "query_sha256": format!("{:016x}", dice.next())}),
        &[],
    )
    .await?;
    emit(
        &mut t,
        "tool.result",
        json!({"tool": "search.internal", "status": "ok", "hits": dice.below(40)}),
        &[],
    )
    .await?;
    pause(wait(&mut dice)).await;

    // A research sub-workload, which runs code in the sandbox.
    let child = format!("{}/research", t.id());
    let spawn = emit(&mut t, "workload.spawn", json!({"child": child}), &[]).await?;
    let mut r = sim
        .start(
            RESEARCHER,
            format!("{}/research", t.id()),
            CORP,
            json!({"parent_workload": t.id()}),
            &[&spawn],
        )
        .await?;
    emit(
        &mut r,
        "tool.invoke",
        json!({"tool": "docs.fetch", "documents": 1 + dice.below(6)}),
        &[],
    )
    .await?;
    pause(wait(&mut dice)).await;
    let cross = emit(
        &mut r,
        "boundary.cross",
        json!({"from": CORP, "to": SANDBOX_DOMAIN, "reason": "execute generated code"}),
        &[],
    )
    .await?;
    let mut s = sim
        .start(
            SANDBOX,
            format!("{}/research/exec", t.id()),
            SANDBOX_DOMAIN,
            json!({"image": "python:3.12-slim", "network": "none"}),
            &[&cross],
        )
        .await?;
    let failed = dice.below(9) == 0;
    emit(
        &mut s,
        "tool.invoke",
        json!({"tool": "python.run", "cpu_ms": 40 + dice.below(900)}),
        &[],
    )
    .await?;
    let s_done = emit(
        &mut s,
        "workload.end",
        json!({"status": if failed { "error" } else { "ok" }, "exit_code": u64::from(failed)}),
        &[],
    )
    .await?;
    pause(wait(&mut dice)).await;
    emit(
        &mut r,
        "tool.result",
        json!({"tool": "python.run", "status": if failed { "error" } else { "ok" }}),
        &[&s_done],
    )
    .await?;
    let r_done = emit(
        &mut r,
        "workload.end",
        json!({"status": if failed { "failed" } else { "ok" }, "findings": dice.below(5)}),
        &[],
    )
    .await?;
    emit(&mut t, "result.merge", json!({"from": r.id()}), &[&r_done]).await?;
    if failed {
        emit(
            &mut t,
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
    let req = emit(
        &mut t,
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
        emit(
            &mut p,
            kind,
            json!({"subject": t.id(), "action": action, "policy": "payments-v7", "reason": reason}),
            &[&req],
        )
        .await?
    };
    if !allowed {
        emit(
            &mut t,
            "authz.denied",
            json!({"action": action}),
            &[&decision],
        )
        .await?;
        emit(&mut t, "workload.end", json!({"status": "denied"}), &[]).await?;
        return Ok(());
    }
    emit(
        &mut t,
        "authz.granted",
        json!({"action": action}),
        &[&decision],
    )
    .await?;
    if action == "payments:write" {
        // Hand the payment to the partner's gateway: another trust domain.
        let cross = emit(
            &mut t,
            "boundary.cross",
            json!({"from": CORP, "to": PARTNER, "reason": "settle payment"}),
            &[],
        )
        .await?;
        pause(wait(&mut dice)).await;
        let mut g = sim
            .start(
                PAYMENTS,
                format!("pay-{}-{n:03}", sim.run),
                PARTNER,
                json!({"amount_eur": amount, "currency": "EUR"}),
                &[&cross],
            )
            .await?;
        emit(
            &mut g,
            "payment.authorize",
            json!({"scheme": "sepa", "risk_score": dice.below(100)}),
            &[],
        )
        .await?;
        let g_done = emit(&mut g, "workload.end", json!({"status": "settled"}), &[]).await?;
        emit(
            &mut t,
            "tool.result",
            json!({"tool": "payments.settle", "status": "ok"}),
            &[&g_done],
        )
        .await?;
    }
    emit(&mut t, "workload.end", json!({"status": "ok"}), &[]).await?;
    Ok(())
}

/// What a real fleet also sends: each of these is refused by the ledger and
/// shows up on the dashboard and the workload's timeline. They are signed
/// with the runtime's key but bypass its handle's bookkeeping, which would
/// never produce them.
async fn faults(sim: &Sim) -> anyhow::Result<()> {
    let mut w = sim
        .start(
            PLANNER,
            format!("batch-{}-nightly", sim.run),
            CORP,
            json!({"goal": "nightly-export"}),
            &[],
        )
        .await?;
    emit(
        &mut w,
        "tool.invoke",
        json!({"tool": "warehouse.query"}),
        &[],
    )
    .await?;
    let planner = sim.rt(PLANNER)?;
    let next = w.head().map_or(0, |h| h.seq + 1);
    // A replay after a crash: seq 1 again, with other content (equivocation).
    let replay = raw_payload(
        &w,
        1,
        "tool.invoke",
        json!({"tool": "warehouse.query", "retry": true}),
        &now(),
    );
    sim.expect_refusal(&planner.sign(replay), "equivocation")
        .await;
    // A skipped sequence number.
    let gap = raw_payload(&w, next + 1, "tool.result", json!({"status": "ok"}), &now());
    sim.expect_refusal(&planner.sign(gap), "sequence_gap").await;
    // A runtime whose clock is an hour behind.
    let stale = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap_or_default();
    let skew = raw_payload(&w, next, "tool.result", json!({"status": "ok"}), &stale);
    sim.expect_refusal(&planner.sign(skew), "clock_skew").await;
    emit(
        &mut w,
        "tool.result",
        json!({"tool": "warehouse.query", "status": "ok", "rows": 120_000}),
        &[],
    )
    .await?;
    // Key rotation: a new key for the sandbox, the old one revoked; a late
    // event signed with the old key is refused.
    let old = sim.rt(SANDBOX)?;
    sim.enrol(SANDBOX, generate_signing_key()?, None).await?;
    sim.govern(&GovernancePayload::key(
        GovernanceAction::Revoke,
        SANDBOX.to_owned(),
        public_key_base64(&old.public_key()),
        now(),
    ))
    .await?;
    let late = EventPayload {
        runtime: SANDBOX.to_owned(),
        workload: format!("batch-{}-nightly/exec", sim.run),
        seq: 0,
        prev: None,
        parents: Vec::new(),
        kind: START_KIND.to_owned(),
        at: now(),
        attrs: Some(object(json!({"image": "python:3.12-slim"}))),
        domain: Some(SANDBOX_DOMAIN.to_owned()),
    };
    sim.expect_refusal(&old.sign(serde_json::to_vec(&late)?), "revoked_key")
        .await;
    emit(&mut w, "workload.end", json!({"status": "ok"}), &[]).await?;
    Ok(())
}

/// Continuous governance, as an operator sees it: a halt that follows the
/// lineage, a resume that lifts only its own halt, a key's scope and its
/// validity window. Every outcome is checked; any other stops the
/// simulator. Waits at most [`CONTRACTOR_WINDOW`] for the key to expire.
async fn governance(sim: &Sim) -> anyhow::Result<()> {
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
    sim.enrol(CONTRACTOR, key, Some(grant.clone())).await?;
    let mut build = sim
        .start(
            CONTRACTOR,
            format!("build-{}-001", sim.run),
            CONTRACTOR_DOMAIN,
            json!({"repo": "payments-service", "ref": "main"}),
            &[],
        )
        .await?;
    emit(
        &mut build,
        "build.compile",
        json!({"target": "x86_64-linux", "status": "ok"}),
        &[],
    )
    .await?;
    let p = refused(
        sim,
        &build,
        "deploy.production",
        json!({"service": "payments"}),
        "out_of_scope",
    )
    .await?;
    println!(
        "lineage demo: {CONTRACTOR} is granted build work until {} (2 s from now); its deploy.production is refused out_of_scope (field {})",
        grant.not_after.as_deref().unwrap_or_default(),
        p.field.as_deref().unwrap_or_default()
    );

    incident(sim).await?;

    // The contractor's window ends: its next event is refused.
    let left = not_after - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(100);
    if left.is_positive() {
        pause(u64::try_from(left.whole_milliseconds()).unwrap_or(0)).await;
    }
    refused(
        sim,
        &build,
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
    sim.enrol(CONTRACTOR, renewed, Some(renewal)).await?;
    // The runtime restarts with its new key and picks the build up where
    // the ledger has it.
    let mut build = sim.rt(CONTRACTOR)?.open(build.id()).await?;
    emit(
        &mut build,
        "build.test",
        json!({"suite": "integration", "status": "ok"}),
        &[],
    )
    .await?;
    emit(&mut build, "workload.end", json!({"status": "ok"}), &[]).await?;
    println!(
        "lineage demo: {CONTRACTOR}'s key expired: its build.test was refused key_expired; a renewed key finished {}",
        build.id()
    );
    Ok(())
}

/// An incident workload with a sub-workload and a grandchild in the
/// sandbox, halted mid-run by the authority.
async fn incident(sim: &Sim) -> anyhow::Result<()> {
    let mut root = sim
        .start(
            PLANNER,
            format!("incident-{}", sim.run),
            CORP,
            json!({"goal": "investigate-alert", "alert": "INC-4711"}),
            &[],
        )
        .await?;
    let child = format!("{}/triage", root.id());
    let spawn = emit(&mut root, "workload.spawn", json!({"child": child}), &[]).await?;
    let mut child = sim
        .start(
            RESEARCHER,
            format!("{}/triage", root.id()),
            CORP,
            json!({"parent_workload": root.id()}),
            &[&spawn],
        )
        .await?;
    let cross = emit(
        &mut child,
        "boundary.cross",
        json!({"from": CORP, "to": SANDBOX_DOMAIN, "reason": "replay the exploit"}),
        &[],
    )
    .await?;
    let mut grandchild = sim
        .start(
            SANDBOX,
            format!("{}/triage/exec", root.id()),
            SANDBOX_DOMAIN,
            json!({"image": "python:3.12-slim", "network": "none"}),
            &[&cross],
        )
        .await?;
    emit(
        &mut grandchild,
        "tool.invoke",
        json!({"tool": "python.run", "attempt": 1}),
        &[],
    )
    .await?;

    // The halt: the incident workload and everything deriving from it.
    let reason = "runaway tool loop: python.run re-invoked 40 times in 10 s";
    let halt = sim
        .govern(&halt_statement(GovernanceAction::Halt, root.id(), reason))
        .await?;
    println!(
        "lineage demo: the authority halted {} at index {halt} ({reason:?}), and with it {} and {}, which derive from it",
        root.id(),
        child.id(),
        grandchild.id()
    );
    for (chain, kind) in [
        (&grandchild, "tool.invoke"),
        (&child, "tool.invoke"),
        (&root, "plan.revised"),
    ] {
        let p = refused(sim, chain, kind, json!({"attempt": 2}), "halted").await?;
        if p.halt_index != Some(halt) {
            bail!("{} was refused by another halt: {p}", chain.id());
        }
        println!(
            "lineage demo: {}'s next event ({kind}) is refused halted (halt_index {halt})",
            chain.id()
        );
    }

    // The sandbox run is also halted in its own right, then the incident is
    // resumed: the resume lifts only its own halt.
    let own = sim
        .govern(&halt_statement(
            GovernanceAction::Halt,
            grandchild.id(),
            "sandbox image under security review",
        ))
        .await?;
    let resume = sim
        .govern(&halt_statement(
            GovernanceAction::Resume,
            root.id(),
            "loop guard deployed; operator approved",
        ))
        .await?;
    let p = refused(
        sim,
        &grandchild,
        "tool.invoke",
        json!({"attempt": 3}),
        "halted",
    )
    .await?;
    if p.halt_index != Some(own) {
        bail!("{} was refused by another halt: {p}", grandchild.id());
    }
    emit(
        &mut child,
        "tool.result",
        json!({"tool": "python.run", "status": "cancelled"}),
        &[],
    )
    .await?;
    let child_end = emit(
        &mut child,
        "workload.end",
        json!({"status": "partial", "findings": 2}),
        &[],
    )
    .await?;
    emit(
        &mut root,
        "result.merge",
        json!({"from": child.id()}),
        &[&child_end],
    )
    .await?;
    emit(&mut root, "workload.end", json!({"status": "ok"}), &[]).await?;
    println!(
        "lineage demo: resumed {} at index {resume}: it and {} continued and ended; {} stays halted by its own halt at index {own}",
        root.id(),
        child.id(),
        grandchild.id()
    );
    Ok(())
}

/// `t` truncated to whole milliseconds (a shorter timestamp to read).
fn to_millis(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.replace_millisecond(t.millisecond()).unwrap_or(t)
}
