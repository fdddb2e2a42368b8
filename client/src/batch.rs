//! Batching for high-rate emitters: signed events of any number of handles
//! go into one bounded queue; a worker submits them as arrays (up to
//! `max_batch` per request, waiting at most `linger` for a batch to fill)
//! and hands each receipt, verified, to its [`PendingReceipt`].

use std::sync::Arc;
use std::time::Duration;

use lineage_ledger::dsse::SignedEnvelope;
use tokio::sync::{mpsc, oneshot};

use crate::watch::Handle;
use crate::{Client, Error, Receipt};

/// How a [`Batcher`] groups events.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most envelopes per request (the ledger takes up to 1000).
    pub max_batch: usize,
    /// Most envelopes queued and not yet submitted; more are refused
    /// [`Error::Unavailable`] without blocking the caller.
    pub queue: usize,
    /// How long the worker waits for a batch to fill once it has one event.
    pub linger: Duration,
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        BatchConfig {
            max_batch: 500,
            queue: 10_000,
            linger: Duration::from_millis(2),
        }
    }
}

enum Message {
    Event {
        envelope: SignedEnvelope,
        handle: Arc<Handle>,
        done: oneshot::Sender<Result<Receipt, Error>>,
    },
    Flush(oneshot::Sender<()>),
}

/// A queue of signed events submitted as arrays by a background worker
/// (cheap to clone; the worker ends when the last clone is dropped, after
/// submitting what is queued).
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Event { envelope, .. } => write!(f, "Event({})", envelope.event_id()),
            Message::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// The receipt of a queued event, once its batch is answered.
#[derive(Debug)]
pub struct PendingReceipt {
    rx: oneshot::Receiver<Result<Receipt, Error>>,
}

impl PendingReceipt {
    /// Waits for the answer.
    ///
    /// # Errors
    /// As [`crate::Workload::record`]; [`Error::Unavailable`] when the
    /// batcher's worker stopped before answering.
    pub async fn wait(self) -> Result<Receipt, Error> {
        self.rx.await.unwrap_or_else(|_| {
            Err(Error::Unavailable {
                attempts: 0,
                last: "the batcher stopped before answering".into(),
            })
        })
    }
}

impl Batcher {
    pub(crate) fn new(client: Client, config: BatchConfig) -> Batcher {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(work(client, config, rx));
        Batcher { tx }
    }

    pub(crate) fn enqueue(
        &self,
        envelope: SignedEnvelope,
        handle: Arc<Handle>,
    ) -> Result<PendingReceipt, Error> {
        let (done, rx) = oneshot::channel();
        self.tx
            .try_send(Message::Event {
                envelope,
                handle,
                done,
            })
            .map_err(|e| Error::Unavailable {
                attempts: 0,
                last: match e {
                    mpsc::error::TrySendError::Full(_) => "the batch queue is full".into(),
                    mpsc::error::TrySendError::Closed(_) => "the batcher stopped".into(),
                },
            })?;
        Ok(PendingReceipt { rx })
    }

    /// Waits until every event queued before this call is answered.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the worker stopped.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let stopped = || Error::Unavailable {
            attempts: 0,
            last: "the batcher stopped".into(),
        };
        self.tx
            .send(Message::Flush(tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }
}

async fn work(client: Client, config: BatchConfig, mut rx: mpsc::Receiver<Message>) {
    let max = config.max_batch.clamp(1, 1000);
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + config.linger;
        while let Some(m) = next.take() {
            match m {
                Message::Event {
                    envelope,
                    handle,
                    done,
                } => batch.push((envelope, handle, done)),
                Message::Flush(f) => {
                    flushes.push(f);
                    break;
                }
            }
            if batch.len() >= max {
                break;
            }
            next = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(_) => tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .ok()
                    .flatten(),
            };
        }
        if !batch.is_empty() {
            let envelopes: Vec<SignedEnvelope> = batch.iter().map(|(e, _, _)| e.clone()).collect();
            let results = client.submit_many(&envelopes).await;
            for ((_, handle, done), result) in batch.into_iter().zip(results) {
                if let Err(e) = &result {
                    handle.failed(e);
                }
                // The caller may have dropped its pending receipt.
                let _ = done.send(result);
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}
