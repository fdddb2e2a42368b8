//! The running log's handle ([`LogService`]): start (open the store, load
//! state, start the sequencer), submit, shut down. The state it shares with
//! request handlers, and the reads, are [`Core`]'s (`core.rs`).
//!
//! **Architecture invariant:** exactly one thread (the sequencer, see
//! [`crate::sequencer`]) appends. Everything it keeps in memory is
//! reloadable from the store, and is reloaded after any failed commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use lineage_ledger::FastMap;
use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::{Authorities, Candidate};
use lineage_ledger::store::{
    FORMAT_VERSION, Store, StoreMeta, StoredCheckpoint, fill_strata, open_log,
};
use tokio::sync::{mpsc, oneshot};

use crate::cache::UPPER_TILES;
use crate::clock::{Clock, unix_ms};
use crate::config::LogConfig;
use crate::core::{Core, StartError};
use crate::health::{Health, Sample, World, directory_bytes, resident_memory_bytes};
use crate::job::{Job, JobReply};
use crate::metrics::Metrics;
use crate::nodes::UpperTiles;
use crate::sequencer::spawn_sequencer;

/// A handle on the running log.
#[derive(Debug)]
pub struct LogService {
    core: Arc<Core>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    /// Resolves when the sequencer thread has stopped.
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
    /// Witnessing, when a witness policy is configured (set once at start).
    witnessing: std::sync::OnceLock<Arc<crate::witnessing::Witnessing>>,
    /// The thread deriving the strata and the leaf-tile copy an older store
    /// lacks, and its stop flag.
    strata: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl std::ops::Deref for LogService {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// Submission failures that concern the whole request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full.
    Overloaded,
    /// The sequencer stopped (shutdown or a crash).
    Stopped,
}

impl LogService {
    /// Opens (or initialises) the log in `store` and starts the sequencer on
    /// a thread of its own.
    ///
    /// # Errors
    /// A store of another log or format, a damaged store, a signing failure,
    /// no thread for the sequencer.
    pub fn start(
        store: Arc<dyn Store>,
        signer: NoteSigner,
        authorities: Authorities,
        config: LogConfig,
        clock: Clock,
    ) -> Result<LogService, StartError> {
        let vkey = signer.verifier().vkey();
        let meta = StoreMeta {
            format_version: FORMAT_VERSION,
            origin: config.origin.clone(),
            vkey: vkey.clone(),
        };
        let genesis = Checkpoint {
            origin: config.origin.clone(),
            size: 0,
            root: lineage_ledger::EMPTY_ROOT,
            extensions: vec![],
        };
        let note = sign_checkpoint(&genesis, &signer).map_err(StartError::Sign)?;
        let now_ms = unix_ms(clock.now());
        open_log(store.as_ref(), &meta, || StoredCheckpoint {
            size: 0,
            time_ms: now_ms,
            note,
        })?;
        let core = Arc::new(Core {
            store,
            signer,
            vkey,
            authorities,
            keys: RwLock::new(FastMap::default()),
            runtime_counts: RwLock::new(HashMap::new()),
            halts: RwLock::new(crate::governance::HaltState::default()),
            governance_tx: tokio::sync::watch::channel(0).0,
            head: RwLock::new(Arc::new(StoredCheckpoint::default())),
            hot_tiles: RwLock::new(FastMap::default()),
            counts: std::sync::Mutex::default(),
            upper_tiles: RwLock::new(UpperTiles::new(UPPER_TILES)),
            healthy: std::sync::atomic::AtomicBool::new(true),
            metrics: Metrics::new(),
            health: Health::new(now_ms),
            config,
            clock,
        });
        let edge = core.reload()?;
        let size = edge.size();
        let (tx, rx) = mpsc::channel(core.config.queue_depth.max(1));
        let stopped = spawn_sequencer(core.clone(), edge, rx).map_err(StartError::Sequencer)?;
        let strata = spawn_strata_fill(core.store.clone(), size).map_err(StartError::Strata)?;
        Ok(LogService {
            core,
            tx: Mutex::new(Some(tx)),
            stopped: Mutex::new(Some(stopped)),
            witnessing: std::sync::OnceLock::new(),
            strata: Mutex::new(Some(strata)),
        })
    }

    /// The shared core (for handlers that outlive a borrow).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Witnessing, when the log asks witnesses to cosign.
    pub fn witnessing(&self) -> Option<&Arc<crate::witnessing::Witnessing>> {
        self.witnessing.get()
    }

    /// Turns witnessing on (once).
    ///
    /// # Errors
    /// The witnessing given, when it was already on.
    pub fn set_witnessing(
        &self,
        w: Arc<crate::witnessing::Witnessing>,
    ) -> Result<(), Arc<crate::witnessing::Witnessing>> {
        self.witnessing.set(w)
    }

    /// Queues candidates for the sequencer and waits for their outcomes.
    ///
    /// # Errors
    /// [`SubmitError::Overloaded`] when the queue is full (nothing queued).
    pub async fn submit(&self, items: Vec<Candidate>) -> Result<JobReply, SubmitError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(SubmitError::Stopped)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(Job { items, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })?;
        rx.await.map_err(|_| SubmitError::Stopped)
    }

    /// Requests waiting for the sequencer (0 once it stopped).
    pub fn queue_depth(&self) -> u64 {
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |tx| (tx.max_capacity() - tx.capacity()) as u64)
    }

    /// Reads one health sample at the log's clock, adds it to the ring
    /// ([`Core::health`]) and sets the gauges only the sampler updates
    /// (queue depth, resident memory, data directory bytes, checkpoint
    /// age, uptime). `disk_bytes` is the data directory's size when it was
    /// measured for this sample (it is costly: the sampler measures it
    /// once a minute). Returns the sample.
    pub fn sample_health(&self, disk_bytes: Option<u64>) -> Sample {
        let head = self.head();
        let now_ms = unix_ms(self.clock.now());
        let world = World {
            queue_depth: self.queue_depth(),
            tree_size: head.size,
            checkpoint_ms: head.time_ms,
            rss_bytes: resident_memory_bytes(),
            disk_bytes,
        };
        let sample = Sample::read(&self.metrics, now_ms, world);
        let m = &self.metrics;
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.queue_depth.set(gauge(world.queue_depth));
        if let Some(rss) = world.rss_bytes {
            m.resident_memory_bytes.set(gauge(rss));
        }
        if let Some(d) = disk_bytes {
            m.data_dir_bytes.set(gauge(d));
        }
        if let Some(mem) = self.core.store.memory() {
            m.store_memory(&mem);
        }
        m.checkpoint_age_seconds
            .set(gauge(now_ms.saturating_sub(head.time_ms) / 1000));
        m.uptime_seconds.set(gauge(
            now_ms.saturating_sub(self.health.started_ms()) / 1000,
        ));
        self.health.record(sample.clone());
        sample
    }

    /// Starts the health sampler on the current tokio runtime: one
    /// [`LogService::sample_health`] a second, measuring `data_dir` (when
    /// given) once a minute on the blocking pool. It stops once the
    /// service is dropped.
    pub fn spawn_health_sampler(self: &Arc<Self>, data_dir: Option<std::path::PathBuf>) {
        const DISK_EVERY: u32 = 60;
        let log = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n: u32 = 0;
            loop {
                tick.tick().await;
                let disk = match (&data_dir, n % DISK_EVERY) {
                    (Some(dir), 0) => {
                        let dir = dir.clone();
                        tokio::task::spawn_blocking(move || directory_bytes(&dir))
                            .await
                            .ok()
                    }
                    _ => None,
                };
                n = n.wrapping_add(1);
                let Some(log) = log.upgrade() else { break };
                log.sample_health(disk);
            }
        });
    }

    /// Stops accepting work, lets the sequencer finish what is queued, and
    /// waits for it and for the strata thread (so the store can be
    /// reopened in the same process).
    pub async fn shutdown(&self) {
        let strata = self.strata.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, thread)) = strata {
            stop.store(true, Ordering::Relaxed);
            // It stops within one write of 256 strata or of one leaf tile.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }
}

/// Starts the thread that derives what a store written by an earlier build
/// lacks, for proofs: first the stratum of every complete tile of the tree
/// of `size` ([`fill_strata`]), then the flat copy of every complete
/// level-0 tile ([`Store::fill_leaf_runs`]). Until they are there, proofs
/// read and hash more. Commits write both for the tiles they complete, so
/// only older tiles can lack them. A failure is logged and leaves proofs as
/// they were: correct, and slower.
fn spawn_strata_fill(
    store: Arc<dyn Store>,
    size: u64,
) -> std::io::Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("lineage-strata".into())
        .spawn(move || {
            let stopped = || flag.load(Ordering::Relaxed);
            let started = std::time::Instant::now();
            match fill_strata(store.as_ref(), size, &stopped) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    strata = n,
                    ms = started.elapsed().as_millis() as u64,
                    "derived the tile strata this store lacked"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "deriving tile strata failed; proofs hash more")
                }
            }
            let started = std::time::Instant::now();
            match store.fill_leaf_runs(&stopped) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    tiles = n,
                    ms = started.elapsed().as_millis() as u64,
                    "copied the leaf tiles this store lacked for proofs"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "copying leaf tiles failed; proofs read the rows"
                ),
            }
        })?;
    Ok((stop, thread))
}
