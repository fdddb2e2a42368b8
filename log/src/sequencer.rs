//! The sequencer: group commit on a thread of its own.
//!
//! It takes validated candidates in batches, runs the rules against
//! committed state plus the batch so far ([`crate::batch`]), extends the
//! tree, signs the new checkpoint, commits all of it in one synced store
//! write, and only then answers: plan, store commit, publish. Two racing
//! events for the same workload position meet here, so at most one is
//! appended.

use std::sync::Arc;
use std::time::Instant;

use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
use lineage_ledger::rules::RuleContext;
use lineage_ledger::store::{CommitBatch, StoreError, StoredCheckpoint};
use lineage_ledger::tree::{TreeEdge, plan_append};
use lineage_ledger::{Hash, leaf_hash};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{Batch, Committed};
use crate::cache::{HEAD_CACHE_WORKLOADS, HeadCache};
use crate::clock::unix_ms;
use crate::core::Core;
use crate::job::{Job, JobReply, Outcome};
use crate::sync::{lock, read, write};

// ---------------------------------------------------------------------------
// The sequencer.

/// Starts the sequencer on a thread of its own. Its batches do blocking
/// store reads and a synced write: on a shared blocking pool, readers (the
/// explorer's scans, read handlers) could fill the pool and starve ingest.
/// The thread runs a single-threaded runtime only to wait for jobs and the
/// linger timer; all batch work runs inline on it. The returned receiver
/// resolves when the sequencer has stopped.
pub(crate) fn spawn_sequencer(
    core: Arc<Core>,
    edge: TreeEdge,
    rx: mpsc::Receiver<Job>,
) -> std::io::Result<oneshot::Receiver<()>> {
    let (done, stopped) = oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("lineage-sequencer".into())
        .spawn(move || {
            rt.block_on(sequencer(core, edge, rx));
            let _ = done.send(());
        })?;
    Ok(stopped)
}

async fn sequencer(core: Arc<Core>, mut edge: TreeEdge, mut rx: mpsc::Receiver<Job>) {
    let mut needs_reload = false;
    let mut heads = HeadCache::new(HEAD_CACHE_WORKLOADS);
    loop {
        let first = if needs_reload {
            // After a fatal failure, reload without waiting for work: a
            // ledger taken out of rotation by its failing /readyz would
            // otherwise never be written to, and never recover.
            match tokio::time::timeout(RELOAD_RETRY, rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => {
                    let reloaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        reload(&core, &mut edge, &mut heads)
                    }));
                    if reloaded.is_err() {
                        tracing::error!("reload panicked; retrying");
                    }
                    needs_reload = !matches!(reloaded, Ok(Ok(())));
                    continue;
                }
            }
        } else {
            match rx.recv().await {
                Some(job) => job,
                None => break,
            }
        };
        let mut count = first.items.len();
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + core.config.batch_linger;
        while count < core.config.batch_max_entries {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.items.len();
                    jobs.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => {
                    count += job.items.len();
                    jobs.push(job);
                }
                _ => break,
            }
        }
        // The batch runs inline: this thread is the sequencer's alone.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if needs_reload {
                reload(&core, &mut edge, &mut heads)?;
                needs_reload = false;
            }
            process(&core, &mut edge, &mut heads, jobs.as_mut_slice())
        }));
        let failure = match ran {
            Ok(Ok(())) => continue,
            Ok(Err(f)) => f,
            Err(_) => {
                tracing::error!("sequencer batch panicked");
                Failure::Panic
            }
        };
        match &failure {
            Failure::Batch(e) => {
                tracing::error!(error = %e, "batch failed before any write; state kept");
            }
            Failure::Commit(e) => {
                tracing::error!(error = %e, "commit failed; nothing of the batch is acknowledged");
                core.metrics.note_commit_failure(unix_ms(core.clock.now()));
            }
            Failure::Reload | Failure::Panic => {}
        }
        if failure.is_fatal() {
            // The store may or may not hold the batch, or memory is suspect:
            // reload everything before the next batch.
            needs_reload = true;
            heads = HeadCache::new(HEAD_CACHE_WORKLOADS);
            core.healthy
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        fail_jobs(&core, jobs);
    }
}

/// Reloads the sequencer's state from the store (after a fatal failure).
fn reload(core: &Core, edge: &mut TreeEdge, heads: &mut HeadCache) -> Result<(), Failure> {
    heads.clear();
    lock(&core.counts).clear();
    match core.reload() {
        Ok(e) => {
            *edge = e;
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "reloading state after a failed commit");
            Err(Failure::Reload)
        }
    }
}

/// How often the sequencer retries a reload while it has no work.
const RELOAD_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Why a batch was not acknowledged.
#[derive(Debug)]
enum Failure {
    /// A store read or the checkpoint signature failed before anything was
    /// written: the batch fails, the in-memory state is still the store's.
    Batch(BatchError),
    /// The synced write failed: the batch may or may not be in the store.
    /// Fatal: state is reloaded from the store before the next batch.
    Commit(StoreError),
    /// State could not be reloaded after a fatal failure (tried again next batch).
    Reload,
    /// The batch panicked: memory is suspect. Fatal.
    Panic,
}

impl Failure {
    /// Whether in-memory state must be reloaded from the store.
    fn is_fatal(&self) -> bool {
        match self {
            Failure::Batch(_) => false,
            Failure::Commit(_) | Failure::Reload | Failure::Panic => true,
        }
    }
}

/// A batch-only failure.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    /// A store read while deciding the batch.
    #[error("store read while deciding the batch: {0}")]
    Read(#[source] StoreError),
    /// The clock is outside the representable range.
    #[error("the clock ({0} ms) is outside the representable range")]
    Clock(u64),
    /// The checkpoint could not be signed.
    #[error("signing the checkpoint: {0}")]
    Sign(#[source] lineage_ledger::checkpoint::CheckpointError),
}

/// Answers every job of a failed batch with `Failed` (identical
/// resubmissions and rule rejections are not affected by the store failure,
/// but are failed too: the whole batch's state is unknown).
fn fail_jobs(core: &Core, jobs: Vec<Job>) {
    let checkpoint = core.head();
    for job in jobs {
        let outcomes = vec![Outcome::Failed; job.items.len()];
        let _ = job.reply.send(JobReply {
            outcomes,
            checkpoint: checkpoint.clone(),
        });
    }
}

/// Decides and commits one batch, then answers its jobs: plan (the rules,
/// the tree, the checkpoint), store commit, publish. On `Err` the jobs are
/// still unanswered.
fn process(
    core: &Core,
    edge: &mut TreeEdge,
    heads: &mut HeadCache,
    jobs: &mut [Job],
) -> Result<(), Failure> {
    let started = Instant::now();
    // The rules judge with the integration millisecond every admitted entry
    // stores, never with a finer clock: the auditor replays with exactly it.
    let integrated_at_ms = unix_ms(core.clock.now());
    let ctx = RuleContext::at(&core.authorities, integrated_at_ms, core.config.max_skew)
        .ok_or(Failure::Batch(BatchError::Clock(integrated_at_ms)))?;
    let mut batch = Batch::new(
        Committed::new(core.store.as_ref(), &core.keys, &core.halts, heads),
        edge.size(),
        jobs.iter().map(|j| j.items.len()).sum(),
    );
    let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(jobs.len());
    for job in jobs.iter() {
        let mut out = Vec::with_capacity(job.items.len());
        for c in &job.items {
            out.push(
                batch
                    .decide(c, &ctx)
                    .map_err(|e| Failure::Batch(BatchError::Read(e)))?,
            );
        }
        outcomes.push(out);
    }
    let checkpoint = if batch.entries.is_empty() {
        core.head()
    } else {
        let new_heads = batch.heads();
        let cp = commit(core, edge, batch, ctx.integrated_at_ms())?;
        heads.absorb(new_heads);
        cp
    };
    core.metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    for (job, outcomes) in jobs.iter_mut().zip(outcomes) {
        let refused = job
            .items
            .iter()
            .zip(&outcomes)
            .filter_map(|(c, o)| match o {
                Outcome::Rejected(r) => Some((c, r)),
                Outcome::Appended { .. } | Outcome::Identical { .. } | Outcome::Failed => None,
            });
        core.metrics
            .recent_rejections
            .note(refused, integrated_at_ms, |id| {
                core.key(id).map(|k| k.runtime.as_str().to_owned())
            });
        for o in &outcomes {
            match o {
                Outcome::Rejected(r) => core.metrics.reject(r.code()),
                Outcome::Identical { .. } => {
                    core.metrics.duplicates.inc();
                }
                Outcome::Appended { .. } | Outcome::Failed => {}
            }
        }
        let (tx, _) = oneshot::channel();
        let reply = std::mem::replace(&mut job.reply, tx);
        let _ = reply.send(JobReply {
            outcomes,
            checkpoint: checkpoint.clone(),
        });
    }
    Ok(())
}

/// Extends the tree, signs the checkpoint, writes everything in one synced
/// store write, and publishes the new state.
fn commit(
    core: &Core,
    edge: &mut TreeEdge,
    mut batch: Batch<'_>,
    integrated_at_ms: u64,
) -> Result<Arc<StoredCheckpoint>, Failure> {
    let n = batch.entries.len();
    let leaves: Vec<Hash> = batch.entries.iter().map(|e| leaf_hash(e)).collect();
    let counts = std::mem::take(&mut batch.counts).finish(
        edge.size(),
        edge.size() + n as u64,
        leaves.last().copied().unwrap_or_default(),
    );
    let plan = plan_append(edge, &leaves);
    let cp = Checkpoint {
        origin: core.config.origin.clone(),
        size: plan.edge.size(),
        root: plan.edge.root(),
        extensions: vec![],
    };
    let note =
        sign_checkpoint(&cp, &core.signer).map_err(|e| Failure::Batch(BatchError::Sign(e)))?;
    let checkpoint = StoredCheckpoint {
        size: cp.size,
        time_ms: integrated_at_ms,
        note,
    };
    // The new counts of the runtimes this batch touched (only theirs: the
    // map holds every runtime the log has seen).
    let touched: Vec<(String, u64)> = {
        let counts = read(&core.runtime_counts);
        batch
            .state
            .runtime_events()
            .iter()
            .map(|(runtime, added)| {
                let before = counts.get(runtime.as_str()).copied().unwrap_or(0);
                (runtime.as_str().to_owned(), before + added)
            })
            .collect()
    };
    let new_keys: Vec<_> = batch.state.keys().values().cloned().collect();
    let governance = lineage_ledger::store::governance_rows(batch.state.governance());
    let new_statements = !batch.state.governance().statements.is_empty();
    let (rows, strata) = core.hot_rows(&plan.tiles);
    let commit = CommitBatch {
        first_index: edge.size(),
        entries: batch.entries,
        tiles: plan.tiles,
        strata,
        events: batch.events,
        workloads: batch.workloads,
        children: batch.children,
        keys: new_keys.clone(),
        runtime_counts: touched,
        governance,
        checkpoint: checkpoint.clone(),
    };
    let write_started = Instant::now();
    core.store.commit(&commit).map_err(Failure::Commit)?;
    core.metrics
        .store_write_seconds
        .observe(write_started.elapsed().as_secs_f64());
    // Durable: publish the new state.
    core.publish_rows(rows, commit.checkpoint.size);
    *edge = plan.edge;
    {
        let mut keys = write(&core.keys);
        for k in new_keys {
            keys.insert(k.key_id, k);
        }
    }
    {
        let mut counts = write(&core.runtime_counts);
        for (runtime, n) in &commit.runtime_counts {
            counts.insert(runtime.clone(), *n);
        }
    }
    if new_statements {
        let mut halts = write(&core.halts);
        halts.absorb(batch.state.governance());
        core.metrics.halts_active.set(halts.active.len() as i64);
    }
    let checkpoint = Arc::new(checkpoint);
    *write(&core.head) = checkpoint.clone();
    // After the head: the counts are of committed entries.
    lock(&core.counts).push(counts);
    if new_statements {
        // After the head: a woken reader sees the entries in its checkpoint.
        core.governance_tx.send_replace(checkpoint.size);
    }
    core.metrics.entries.inc_by(n as u64);
    core.metrics.batch_entries.observe(n as f64);
    core.metrics.tree_size.set(checkpoint.size as i64);
    Ok(checkpoint)
}
