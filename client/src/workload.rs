//! Runtimes, workload handles and authorities: payloads built, checked with
//! the ledger's own parser and signed here, then submitted and verified by
//! the [`Client`].

use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::event::{GovernanceStatement, RuntimeId, WorkloadId, parse_event};
use lineage_ledger::keys::public_key_base64;
use lineage_schemas::{
    EntryResponse, EventPayload, GovernanceAction, GovernancePayload, HaltTarget, WorkloadEvents,
    WorkloadInfo, WorkloadState,
};
use time::format_description::well_known::Rfc3339;

use crate::watch::{Handle, RuntimeState};
use crate::{Attrs, Client, Denial, Error, Receipt};

/// The kind of a workload's first event, as [`Workload::spawn`] records it.
pub const START_KIND: &str = "workload.start";
/// The kind that closes a workload.
pub const END_KIND: &str = "workload.end";

/// A runtime: its ID and signing key. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runtime {
    client: Client,
    state: Arc<RuntimeState>,
    key: Arc<SigningKey>,
}

/// A workload's latest event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its `seq`.
    pub seq: u64,
    /// Its event ID.
    pub event_id: String,
}

/// One transition to record.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// The event kind (`[a-z0-9._-]{1,64}`).
    pub kind: String,
    /// Free-form attributes.
    pub attrs: Attrs,
    /// Event IDs this one derives from (other workloads' events).
    pub parents: Vec<String>,
    /// The trust domain, when it differs from the workload's.
    pub domain: Option<String>,
}

impl Step {
    /// A step of `kind` with `attrs`, no parents, in the workload's domain.
    pub fn new(kind: impl Into<String>, attrs: Attrs) -> Step {
        Step {
            kind: kind.into(),
            attrs,
            ..Step::default()
        }
    }
}

/// The writer of one workload's chain. It owns `seq` and `prev`; a refusal
/// marks it denied for good ([`Workload::denied`]). Not `Clone`: one
/// writer per workload.
#[derive(Debug)]
pub struct Workload {
    runtime: Runtime,
    handle: Arc<Handle>,
    domain: Option<String>,
    next_seq: u64,
    prev: Option<String>,
    last: Option<Receipt>,
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    // Milliseconds, as the ledger records integration times.
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

impl Runtime {
    pub(crate) fn new(client: Client, id: &str, key: SigningKey) -> Result<Runtime, Error> {
        RuntimeId::new(id).map_err(|r| Error::Invalid(format!("runtime {id:?}: {r}")))?;
        let state = Arc::new(RuntimeState::new(
            id.to_owned(),
            public_key_base64(&key.verifying_key()),
        ));
        client.inner.registry.add_runtime(&state);
        Ok(Runtime {
            client,
            state,
            key: Arc::new(key),
        })
    }

    /// The runtime ID.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The public key, as `lineage grant --public-key` takes it.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The client this runtime submits through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The runtime's own denial (its key revoked), if any.
    pub fn denied(&self) -> Option<Denial> {
        self.state.denied()
    }

    /// Starts `workload` with its first event (`seq` 0): `kind` (usually
    /// `workload.start`), `attrs`, the events it derives from, and the trust
    /// domain its events execute in. The handle's receipt for it is
    /// [`Workload::last_receipt`].
    ///
    /// # Errors
    /// As [`Workload::record`]; a refused start returns the denial and no handle.
    pub async fn start(
        &self,
        workload: &str,
        kind: &str,
        attrs: Attrs,
        parents: &[String],
        domain: Option<&str>,
    ) -> Result<Workload, Error> {
        let mut w = self.handle(workload, domain.map(str::to_owned), parents)?;
        w.record_step(Step {
            kind: kind.to_owned(),
            attrs,
            parents: parents.to_vec(),
            domain: None,
        })
        .await?;
        Ok(w)
    }

    /// A handle on `workload` as the ledger has it: its head (`seq`, event
    /// ID) read with `GET /v1/workloads/{w}` and `.../events`, the head's
    /// entry verified against a checkpoint. A closed or halted workload
    /// gives a handle that is already denied; a workload the ledger does
    /// not know gives a handle whose next event is its first.
    ///
    /// # Errors
    /// [`Error::Invalid`] when another runtime owns the workload;
    /// [`Error::Untrusted`] when the ledger's answers do not verify;
    /// [`Error::Unavailable`].
    pub async fn open(&self, workload: &str) -> Result<Workload, Error> {
        let mut w = self.handle(workload, None, &[])?;
        w.recover().await?;
        Ok(w)
    }

    fn handle(
        &self,
        workload: &str,
        domain: Option<String>,
        parents: &[String],
    ) -> Result<Workload, Error> {
        WorkloadId::new(workload)
            .map_err(|r| Error::Invalid(format!("workload {workload:?}: {r}")))?;
        let handle = self
            .client
            .inner
            .registry
            .add_handle(workload, &self.state, parents);
        Ok(Workload {
            runtime: self.clone(),
            handle,
            domain,
            next_seq: 0,
            prev: None,
            last: None,
        })
    }

    /// Signs `payload` as an event envelope, exactly as given: no chain
    /// bookkeeping and no local checks. For tools that bring their own
    /// payload (`lineage submit`); submit it with [`Client::submit`].
    pub fn sign(&self, payload: Vec<u8>) -> SignedEnvelope {
        SignedEnvelope::sign(PayloadType::Event, payload, &self.key)
    }
}

impl Workload {
    /// The workload ID.
    pub fn id(&self) -> &str {
        &self.handle.workload
    }

    /// The runtime that writes it.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Its latest event recorded through this handle (or recovered).
    pub fn head(&self) -> Option<Head> {
        self.prev.as_ref().map(|id| Head {
            seq: self.next_seq - 1,
            event_id: id.clone(),
        })
    }

    /// The receipt of the latest event recorded through this handle.
    pub fn last_receipt(&self) -> Option<&Receipt> {
        self.last.as_ref()
    }

    /// The trust domain its events name by default.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Why this handle takes no more events, if it does not: the ledger
    /// refused one, the workload ended, a halt or revocation stops it.
    pub fn denied(&self) -> Option<Denial> {
        self.handle.denied().or_else(|| self.runtime.state.denied())
    }

    /// Records `kind` with `attrs` as the next event and returns its
    /// verified receipt.
    ///
    /// # Errors
    /// [`Error::Denied`] (and the handle is denied from then on) when the
    /// ledger refuses it or the handle was already denied;
    /// [`Error::Invalid`] for a payload the ledger would refuse as malformed
    /// (nothing is sent); [`Error::Unavailable`]; [`Error::Untrusted`].
    pub async fn record(&mut self, kind: &str, attrs: Attrs) -> Result<Receipt, Error> {
        self.record_step(Step::new(kind, attrs)).await
    }

    /// Records `step` as the next event (see [`Workload::record`]).
    ///
    /// # Errors
    /// As [`Workload::record`].
    pub async fn record_step(&mut self, step: Step) -> Result<Receipt, Error> {
        let parents = step.parents.clone();
        let envelope = self.prepare(step).await?;
        match self.runtime.client.submit(&envelope).await {
            Ok(receipt) => {
                self.runtime
                    .client
                    .inner
                    .registry
                    .derive(&self.handle, &parents);
                self.advance(&receipt.event_id);
                self.last = Some(receipt.clone());
                Ok(receipt)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Starts `child` (same runtime and domain) with a `workload.start`
    /// whose parent is this workload's head: the child derives from it.
    ///
    /// # Errors
    /// [`Error::Invalid`] when this workload has no event yet; as
    /// [`Runtime::start`].
    pub async fn spawn(&mut self, child: &str, attrs: Attrs) -> Result<Workload, Error> {
        if let Some(d) = self.denied() {
            return Err(Error::Denied(Box::new(d.again())));
        }
        let head = self.head().ok_or_else(|| {
            Error::Invalid(format!("{} has no event yet to spawn from", self.id()))
        })?;
        self.runtime
            .start(
                child,
                START_KIND,
                attrs,
                &[head.event_id],
                self.domain.as_deref(),
            )
            .await
    }

    /// Records `workload.end`: the ledger takes no more events of this
    /// workload (`workload_closed`), and neither does this handle.
    ///
    /// # Errors
    /// As [`Workload::record`].
    pub async fn end(&mut self, attrs: Attrs) -> Result<Receipt, Error> {
        self.record(END_KIND, attrs).await
    }

    /// Signs the next event now, advances the chain, and queues it on
    /// `batcher`; the receipt arrives through the returned
    /// [`crate::PendingReceipt`]. A refusal marks the handle denied (and the
    /// events queued after it are refused by the ledger too: their `prev`
    /// is not in the log).
    ///
    /// # Errors
    /// As [`Workload::record`] before sending; [`Error::Unavailable`] when
    /// the batcher's queue is full (the chain does not advance).
    pub fn record_batched(
        &mut self,
        batcher: &crate::Batcher,
        kind: &str,
        attrs: Attrs,
    ) -> Result<crate::PendingReceipt, Error> {
        if self.handle.uncertain() {
            return Err(Error::Invalid(
                "an earlier submission of this handle has no answer; record (not batched) once \
                 to learn its head"
                    .into(),
            ));
        }
        let envelope = self.sign_next(Step::new(kind, attrs))?;
        let id = envelope.event_id().to_string();
        let pending = batcher.enqueue(envelope, self.handle.clone())?;
        self.advance(&id);
        Ok(pending)
    }

    fn advance(&mut self, event_id: &str) {
        self.next_seq += 1;
        self.prev = Some(event_id.to_owned());
        self.runtime
            .client
            .inner
            .registry
            .note_event(event_id, &self.handle);
    }

    /// The envelope of the next event: refused locally when the handle is
    /// denied; after an unanswered submission, the head re-learnt first.
    async fn prepare(&mut self, step: Step) -> Result<SignedEnvelope, Error> {
        if self.handle.uncertain() {
            self.recover().await?;
        }
        self.sign_next(step)
    }

    fn sign_next(&self, step: Step) -> Result<SignedEnvelope, Error> {
        if let Some(d) = self.denied() {
            return Err(Error::Denied(Box::new(d.again())));
        }
        self.runtime.client.check_trusted()?;
        let payload = EventPayload {
            runtime: self.runtime.id().to_owned(),
            workload: self.id().to_owned(),
            seq: self.next_seq,
            prev: self.prev.clone(),
            parents: step.parents,
            kind: step.kind,
            at: now(),
            attrs: (!step.attrs.is_empty()).then_some(step.attrs),
            domain: step.domain.or_else(|| self.domain.clone()),
        };
        let bytes = serde_json::to_vec(&payload)
            .map_err(|e| Error::Invalid(format!("the event does not serialize: {e}")))?;
        // The ledger's own parser: what it would refuse as malformed is
        // refused here, before anything is signed.
        parse_event(&bytes).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(self.runtime.sign(bytes))
    }

    /// Records what a failed submission means for the handle.
    fn failed(&mut self, e: Error) -> Error {
        self.handle.failed(&e);
        e
    }

    /// Learns the head from the ledger: the workload's info, its events from
    /// the head's `seq` on, and the head's entry verified against a
    /// checkpoint.
    async fn recover(&mut self) -> Result<(), Error> {
        let client = &self.runtime.client;
        let seg = crate::http::path_segment(self.id());
        let info: WorkloadInfo = match client
            .inner
            .http
            .get_json(&format!("/v1/workloads/{seg}"))
            .await
        {
            Ok(info) => info,
            Err(Error::Denied(d)) if d.status == 404 => {
                (self.next_seq, self.prev) = (0, None);
                self.handle.set_uncertain(false);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if info.runtime != self.runtime.id() {
            return Err(Error::Invalid(format!(
                "workload {} belongs to runtime {}, not {}",
                self.id(),
                info.runtime,
                self.runtime.id()
            )));
        }
        // The events from the head on: the info may be a moment old.
        let mut from = info.head.seq;
        let mut head = None;
        loop {
            let page: WorkloadEvents = client
                .inner
                .http
                .get_json(&format!("/v1/workloads/{seg}/events?from_seq={from}"))
                .await?;
            if let Some(last) = page.events.last() {
                head = Some((last.seq, last.event_id.clone()));
            }
            match page.next_from_seq {
                Some(next) if next > from => from = next,
                _ => break,
            }
        }
        let (seq, event_id) = head.ok_or_else(|| {
            Error::Untrusted(format!(
                "the ledger lists no event of {} from its head's seq {}",
                self.id(),
                info.head.seq
            ))
        })?;
        self.verify_head(seq, &event_id).await?;
        (self.next_seq, self.prev) = (seq + 1, Some(event_id));
        self.handle.set_uncertain(false);
        self.domain = self.domain.take().or(info.domain);
        match info.state {
            WorkloadState::Open => {}
            WorkloadState::Closed => self.handle.deny(Denial::local(
                "workload_closed",
                409,
                "Workload closed",
                format!("{} ended (its latest event is workload.end)", self.id()),
            )),
            WorkloadState::Halted => self.handle.deny(Denial::halted(
                format!("{} is halted", self.id()),
                info.halted_by,
            )),
        }
        Ok(())
    }

    /// The head's entry, as served with its receipt: in the log, and an
    /// event of this workload at `seq`.
    async fn verify_head(&self, seq: u64, event_id: &str) -> Result<(), Error> {
        let client = &self.runtime.client;
        let entry: EntryResponse = client
            .inner
            .http
            .get_json(&format!("/v1/events/{event_id}"))
            .await?;
        let wire =
            serde_json::to_vec(&entry.envelope).map_err(|e| Error::Untrusted(e.to_string()))?;
        let envelope = SignedEnvelope::parse(&wire)
            .map_err(|e| Error::Untrusted(format!("the head's envelope: {e}")))?;
        client.accept(&entry.receipt, &envelope).await?;
        let event = parse_event(&envelope.payload)
            .map_err(|e| Error::Untrusted(format!("the head's payload: {e}")))?;
        if event.workload.as_str() != self.id() || event.seq != seq {
            return Err(Error::Untrusted(format!(
                "the ledger's head of {} is an event of {} at seq {}",
                self.id(),
                event.workload.as_str(),
                event.seq
            )));
        }
        Ok(())
    }
}

/// A signer of governance statements (an authority key of the ledger).
#[derive(Debug, Clone)]
pub struct Authority {
    client: Client,
    key: Arc<SigningKey>,
}

impl Authority {
    pub(crate) fn new(client: Client, key: SigningKey) -> Authority {
        Authority {
            client,
            key: Arc::new(key),
        }
    }

    /// Signs `statement` and submits it; its verified receipt.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the ledger's parser refuses the statement
    /// (nothing is sent); otherwise as [`Client::submit`].
    pub async fn submit(&self, statement: &GovernancePayload) -> Result<Receipt, Error> {
        GovernanceStatement::try_from(statement).map_err(|e| Error::Invalid(e.to_string()))?;
        let bytes = serde_json::to_vec(statement)
            .map_err(|e| Error::Invalid(format!("the statement does not serialize: {e}")))?;
        let envelope = SignedEnvelope::sign(PayloadType::Governance, bytes, &self.key);
        self.client.submit(&envelope).await
    }

    /// Grants `key` to `runtime`, now, with no window or scope.
    ///
    /// # Errors
    /// As [`Authority::submit`].
    pub async fn grant(&self, runtime: &str, key: &VerifyingKey) -> Result<Receipt, Error> {
        self.key_statement(GovernanceAction::Grant, runtime, key)
            .await
    }

    /// Revokes `key` of `runtime`, now.
    ///
    /// # Errors
    /// As [`Authority::submit`].
    pub async fn revoke(&self, runtime: &str, key: &VerifyingKey) -> Result<Receipt, Error> {
        self.key_statement(GovernanceAction::Revoke, runtime, key)
            .await
    }

    /// Halts `target` (and everything deriving from it), now.
    ///
    /// # Errors
    /// As [`Authority::submit`].
    pub async fn halt(&self, target: HaltTarget, reason: Option<&str>) -> Result<Receipt, Error> {
        let s = GovernancePayload::halt(
            GovernanceAction::Halt,
            target,
            reason.map(str::to_owned),
            now(),
        );
        self.submit(&s).await
    }

    /// Lifts `target`'s own halt, now.
    ///
    /// # Errors
    /// As [`Authority::submit`].
    pub async fn resume(&self, target: HaltTarget) -> Result<Receipt, Error> {
        let s = GovernancePayload::halt(GovernanceAction::Resume, target, None, now());
        self.submit(&s).await
    }

    async fn key_statement(
        &self,
        action: GovernanceAction,
        runtime: &str,
        key: &VerifyingKey,
    ) -> Result<Receipt, Error> {
        let s = GovernancePayload::key(action, runtime.to_owned(), public_key_base64(key), now());
        self.submit(&s).await
    }
}
