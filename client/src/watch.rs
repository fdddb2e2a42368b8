//! Live denial: the client's registry of live handles and runtimes, and the
//! task that follows `GET /v1/governance/stream` and denies them the moment
//! a halt or revocation that stops them commits.
//!
//! Which handles a halt of workload `W` stops is decided twice: at once,
//! from what this client knows of its handles' lineage (each handle knows
//! the workloads and runtimes it derives from through parents recorded by
//! this client); then, for every other live handle, from the ledger itself
//! (`GET /v1/workloads/{w}`, whose `state` is `halted` once the halt is in
//! the tree). The ledger stays the judge: a handle this misses is still
//! refused `halted` at its next event.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use lineage_schemas::{GovernanceAction, GovernanceEntry, HaltTarget, WorkloadInfo, WorkloadState};

use crate::{Client, Denial, Error, Inner};

/// Most event IDs remembered to map parents to this client's workloads.
const EVENT_MEMORY: usize = 1 << 16;
/// Most bytes of one Server-Sent Event (a governance entry is a few KiB).
const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most workload states asked of the ledger at once after a halt.
const CONFIRM_PARALLEL: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A live workload handle's shared state.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) workload: String,
    runtime: String,
    /// Workloads and runtimes it derives from, as far as this client knows.
    lineage: Mutex<Lineage>,
    denied: Mutex<Option<Denial>>,
    /// A submission of this handle has no answer (or its receipt could not
    /// be kept): the event may be in the log, so the head is learnt from the
    /// ledger before the next one. Shared with the batcher's worker.
    uncertain: AtomicBool,
}

#[derive(Debug, Default, Clone)]
struct Lineage {
    workloads: HashSet<String>,
    runtimes: HashSet<String>,
}

impl Handle {
    pub(crate) fn denied(&self) -> Option<Denial> {
        lock(&self.denied).clone()
    }

    pub(crate) fn uncertain(&self) -> bool {
        self.uncertain.load(Ordering::SeqCst)
    }

    pub(crate) fn set_uncertain(&self, on: bool) {
        self.uncertain.store(on, Ordering::SeqCst);
    }

    /// What a failed submission means for the handle: a refusal denies it;
    /// an unknown outcome makes it uncertain.
    pub(crate) fn failed(&self, e: &Error) {
        match e {
            Error::Denied(d) => self.deny((**d).clone()),
            Error::Unavailable { .. } | Error::State(_) => self.set_uncertain(true),
            Error::Untrusted(_) | Error::Invalid(_) => {}
        }
    }

    /// Denies the handle; the first denial stays.
    pub(crate) fn deny(&self, d: Denial) {
        lock(&self.denied).get_or_insert(d);
    }

    fn stopped_by(&self, target: &HaltTarget) -> bool {
        let l = lock(&self.lineage);
        match target {
            HaltTarget::Workload(w) => self.workload == *w || l.workloads.contains(w),
            HaltTarget::Runtime(r) => self.runtime == *r || l.runtimes.contains(r),
        }
    }
}

/// A runtime's shared state: its key, and whether that key was revoked.
#[derive(Debug)]
pub(crate) struct RuntimeState {
    pub(crate) id: String,
    public_key: String,
    denied: Mutex<Option<Denial>>,
}

impl RuntimeState {
    pub(crate) fn new(id: String, public_key: String) -> RuntimeState {
        RuntimeState {
            id,
            public_key,
            denied: Mutex::new(None),
        }
    }

    pub(crate) fn denied(&self) -> Option<Denial> {
        lock(&self.denied).clone()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    state: Mutex<State>,
    started: AtomicBool,
    connected: AtomicBool,
    /// Dropped with the client: the stream task ends.
    stop: Mutex<Option<tokio::sync::watch::Sender<()>>>,
}

#[derive(Debug, Default)]
struct State {
    handles: Vec<Weak<Handle>>,
    runtimes: Vec<Weak<RuntimeState>>,
    /// Event ID -> the handle that recorded it.
    events: HashMap<String, Weak<Handle>>,
    poisoned: Option<String>,
}

impl Registry {
    pub(crate) fn add_runtime(&self, r: &Arc<RuntimeState>) {
        let mut s = lock(&self.state);
        s.runtimes.retain(|w| w.strong_count() > 0);
        s.runtimes.push(Arc::downgrade(r));
    }

    /// A new handle of `workload`, deriving from the workloads of `parents`
    /// this client recorded.
    pub(crate) fn add_handle(
        &self,
        workload: &str,
        runtime: &RuntimeState,
        parents: &[String],
    ) -> Arc<Handle> {
        let mut s = lock(&self.state);
        let lineage = s.lineage_of(parents);
        let h = Arc::new(Handle {
            workload: workload.to_owned(),
            runtime: runtime.id.clone(),
            lineage: Mutex::new(lineage),
            denied: Mutex::new(None),
            uncertain: AtomicBool::new(false),
        });
        s.handles.retain(|w| w.strong_count() > 0);
        s.handles.push(Arc::downgrade(&h));
        h
    }

    /// The handle derives from `parents` from now on.
    pub(crate) fn derive(&self, handle: &Handle, parents: &[String]) {
        if parents.is_empty() {
            return;
        }
        let more = lock(&self.state).lineage_of(parents);
        let mut l = lock(&handle.lineage);
        l.workloads.extend(more.workloads);
        l.runtimes.extend(more.runtimes);
    }

    pub(crate) fn note_event(&self, event_id: &str, handle: &Arc<Handle>) {
        let mut s = lock(&self.state);
        if s.events.len() >= EVENT_MEMORY {
            // Forget the oldest knowledge wholesale (the ledger's answer
            // still covers what is forgotten).
            s.events.clear();
        }
        s.events.insert(event_id.to_owned(), Arc::downgrade(handle));
    }

    pub(crate) fn poison(&self, why: &str) {
        lock(&self.state)
            .poisoned
            .get_or_insert_with(|| why.to_owned());
    }

    pub(crate) fn poisoned(&self) -> Option<String> {
        lock(&self.state).poisoned.clone()
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn live_handles(&self) -> Vec<Arc<Handle>> {
        let mut s = lock(&self.state);
        s.handles.retain(|w| w.strong_count() > 0);
        s.handles.iter().filter_map(Weak::upgrade).collect()
    }

    fn live_runtimes(&self) -> Vec<Arc<RuntimeState>> {
        let mut s = lock(&self.state);
        s.runtimes.retain(|w| w.strong_count() > 0);
        s.runtimes.iter().filter_map(Weak::upgrade).collect()
    }
}

impl State {
    fn lineage_of(&self, parents: &[String]) -> Lineage {
        let mut l = Lineage::default();
        for p in parents {
            if let Some(h) = self.events.get(p).and_then(Weak::upgrade) {
                let theirs = lock(&h.lineage).clone();
                l.workloads.insert(h.workload.clone());
                l.runtimes.insert(h.runtime.clone());
                l.workloads.extend(theirs.workloads);
                l.runtimes.extend(theirs.runtimes);
            }
        }
        l
    }
}

/// Starts the stream task once per client (see [`Client::watch_governance`]).
pub(crate) async fn start(client: &Client) -> Result<(), Error> {
    let registry = &client.inner.registry;
    if registry.started.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    // Entries from the current tree size on; earlier ones are already
    // reflected in what the ledger answers.
    let info = match client.log_info().await {
        Ok(i) => i,
        Err(e) => {
            registry.started.store(false, Ordering::SeqCst);
            return Err(e);
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(());
    *lock(&registry.stop) = Some(tx);
    let after = info.tree_size.checked_sub(1);
    tokio::spawn(follow(Arc::downgrade(&client.inner), after, rx));
    Ok(())
}

/// Follows the stream until the client is dropped, reconnecting after
/// `Last-Event-ID` when it breaks.
async fn follow(
    inner: Weak<Inner>,
    mut after: Option<u64>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let Some(client) = inner.upgrade().map(|inner| Client { inner }) else {
            return;
        };
        let mut request = client
            .inner
            .http
            .get(&client.inner.http.url("/v1/governance/stream"))
            .header("accept", "text/event-stream")
            // The stream stays open: no whole-request timeout.
            .timeout(Duration::from_secs(365 * 24 * 3600));
        if let Some(a) = after {
            request = request.header("last-event-id", a.to_string());
        }
        drop(client);
        let result = tokio::select! {
            r = stream(&inner, request, &mut after) => r,
            _ = stop.changed() => return,
        };
        if let Some(i) = inner.upgrade() {
            i.registry.connected.store(false, Ordering::Relaxed);
        }
        match result {
            Ok(()) => pause = Duration::from_millis(100),
            Err(why) => {
                tracing::warn!(%why, "lineage client: governance stream broke; reconnecting");
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn stream(
    inner: &Weak<Inner>,
    request: reqwest::RequestBuilder,
    after: &mut Option<u64>,
) -> Result<(), String> {
    let mut resp = request.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    if let Some(i) = inner.upgrade() {
        i.registry.connected.store(true, Ordering::Relaxed);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        buf.extend_from_slice(&chunk);
        while let Some(end) = find_blank_line(&buf) {
            let block: Vec<u8> = buf.drain(..end.1).collect();
            if let Some(entry) = parse_event_block(&block[..end.0]) {
                *after = Some(entry.index);
                let Some(i) = inner.upgrade() else {
                    return Ok(());
                };
                apply(&Client { inner: i }, &entry).await;
            }
        }
        // What is left is one unfinished event.
        if buf.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "an event of the stream is over {MAX_EVENT_BYTES} bytes"
            ));
        }
    }
    Ok(())
}

/// The end of the first SSE event in `buf`: (where its text ends, where the
/// next begins).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    buf.windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2))
}

/// A `governance` event's entry; other events (comments, keep-alives) are `None`.
pub(crate) fn parse_event_block(block: &[u8]) -> Option<GovernanceEntry> {
    let text = std::str::from_utf8(block).ok()?;
    let mut data = String::new();
    let mut kind = "message";
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        } else if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim();
        }
    }
    if kind != "governance" || data.is_empty() {
        return None;
    }
    serde_json::from_str(&data).ok()
}

/// Denies what `entry` stops.
async fn apply(client: &Client, entry: &GovernanceEntry) {
    let registry = &client.inner.registry;
    let s = &entry.statement;
    match s.action {
        GovernanceAction::Halt => {
            let Some(target) = &s.target else { return };
            let denial = Denial::halted(
                format!(
                    "halted by the governance entry at index {}{}",
                    entry.index,
                    s.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                Some(entry.index),
            );
            let mut unsure = Vec::new();
            for h in registry.live_handles() {
                if h.denied().is_some() {
                    continue;
                }
                if h.stopped_by(target) {
                    tracing::info!(workload = %h.workload, halt = entry.index, "lineage client: handle halted");
                    h.deny(denial.clone());
                } else {
                    unsure.push(h);
                }
            }
            confirm(client, unsure).await;
        }
        GovernanceAction::Revoke => {
            let (Some(runtime), Some(key)) = (&s.runtime, &s.public_key) else {
                return;
            };
            for r in registry.live_runtimes() {
                if r.id == *runtime && r.public_key == *key {
                    tracing::info!(runtime = %r.id, revoke = entry.index, "lineage client: runtime key revoked");
                    lock(&r.denied).get_or_insert(Denial {
                        governing_index: Some(entry.index),
                        ..Denial::local(
                            "revoked_key",
                            403,
                            "Revoked key",
                            format!(
                                "the key of {runtime} was revoked by the governance entry at \
                                 index {}",
                                entry.index
                            ),
                        )
                    });
                }
            }
        }
        GovernanceAction::Grant | GovernanceAction::Resume => {}
    }
}

/// Asks the ledger whether each of `handles` is halted now.
async fn confirm(client: &Client, handles: Vec<Arc<Handle>>) {
    let mut queue = handles.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < CONFIRM_PARALLEL {
            let Some(h) = queue.next() else { break };
            let c = client.clone();
            running.spawn(async move {
                let path = format!("/v1/workloads/{}", crate::http::path_segment(&h.workload));
                if let Ok(info) = c.inner.http.get_json::<WorkloadInfo>(&path).await
                    && info.state == WorkloadState::Halted
                {
                    h.deny(Denial::halted(
                        format!("{} is halted", h.workload),
                        info.halted_by,
                    ));
                }
            });
        }
        if running.join_next().await.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_parse_to_governance_entries_only() {
        let entry = r#"{"index":7,"event_id":"00","integrated_at":"2026-01-01T00:00:00.000Z","key_id":"00","statement":{"action":"halt","target":{"workload":"w"},"at":"2026-01-01T00:00:00Z"}}"#;
        let block = format!("id: 7\nevent: governance\ndata: {entry}");
        let e = parse_event_block(block.as_bytes()).expect("an entry");
        assert_eq!(e.index, 7);
        assert_eq!(e.statement.target, Some(HaltTarget::Workload("w".into())));
        assert!(parse_event_block(b": keep-alive").is_none());
        assert!(parse_event_block(format!("event: other\ndata: {entry}").as_bytes()).is_none());
        let buf = b"id: 1\ndata: x\n\nid: 2";
        assert_eq!(find_blank_line(buf), Some((13, 15)));
    }

    #[test]
    fn lineage_follows_parents_recorded_through_the_client() {
        let reg = Registry::default();
        let rt_a = RuntimeState::new("rt-a".into(), "k".into());
        let rt_b = RuntimeState::new("rt-b".into(), "k".into());
        let root = reg.add_handle("root", &rt_a, &[]);
        reg.note_event("e1", &root);
        let child = reg.add_handle("child", &rt_b, &["e1".into()]);
        reg.note_event("e2", &child);
        let grandchild = reg.add_handle("grandchild", &rt_b, &["e2".into()]);
        let other = reg.add_handle("other", &rt_b, &["unknown".into()]);
        let halt_root = HaltTarget::Workload("root".into());
        assert!(root.stopped_by(&halt_root) && child.stopped_by(&halt_root));
        assert!(grandchild.stopped_by(&halt_root));
        assert!(!other.stopped_by(&halt_root));
        assert!(grandchild.stopped_by(&HaltTarget::Runtime("rt-a".into())));
        assert!(!other.stopped_by(&HaltTarget::Runtime("rt-a".into())));
        // A later event naming a parent extends the lineage.
        reg.derive(&other, &["e1".into()]);
        assert!(other.stopped_by(&halt_root));
    }
}
