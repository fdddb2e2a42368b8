"""The machinery shared by the tracing adapters (:mod:`lineage.otel`,
:mod:`lineage.openai_agents`): agent workloads keyed by span, and the two
ways of recording their events.

- **Non-blocking** (the default): the instrumented thread only appends an
  operation to a bounded queue (a full queue drops it, counted in
  :attr:`Recorder.dropped` and reported by a rate-limited warning); one
  background thread signs and submits, events in batches
  (:meth:`lineage.Workload.record_batched`), and counts what the ledger
  refused in :attr:`Recorder.failed`.
- **Blocking** (gating): the operation runs on the caller's thread and its
  error is raised to the adapter, which refuses the span.

An adapter maps its spans to four operations, each naming agents by a key of
its choosing (a span ID): ``agent_start``, ``event``, ``handoff`` and
``agent_end``. Not a public API.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from . import (
    Batcher,
    LineageError,
    PendingReceipt,
    Runtime,
    Workload,
    canonical_bytes,
    commitment,
    new_salt,
)

_UNSAFE = re.compile(r"[^A-Za-z0-9.:@-]+")
_MAX_NAME = 40


def workload_id(prefix: str, name: Optional[str], *ids: str) -> str:
    """A workload ID (1-128 characters of ``[A-Za-z0-9._:/@-]``) from an
    agent name and the span's IDs: ``prefix + name/id/id``."""
    parts = [(_UNSAFE.sub("-", name or "agent").strip("-") or "agent")[:_MAX_NAME]]
    parts += [_UNSAFE.sub("-", i) for i in ids]
    return (prefix + "/".join(parts))[:128]


class Content:
    """What becomes of content (tool arguments and results): a salted
    commitment by default, the value itself when ``record_content``."""

    __slots__ = ("salt", "record")

    def __init__(self, salt: Optional[bytes], record: bool) -> None:
        self.salt = new_salt() if salt is None else bytes(salt)
        if len(self.salt) != 32:
            raise ValueError("a commitment salt is 32 bytes")
        self.record = record

    def __call__(self, value: Any) -> Any:
        if self.record:
            return value if isinstance(value, (str, int, float, bool)) else canonical_bytes(
                value
            ).decode("utf-8", "replace")
        return {"blake3_keyed": commitment(value, self.salt)}


Op = Tuple[Any, ...]


class Recorder:
    """Agent workloads and their events, recorded inline or in the
    background (see the module's docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        blocking: bool,
        queue_size: int,
        logger: logging.Logger,
        end_workloads: bool = True,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.runtime = runtime
        self.blocking = blocking
        self.end_workloads = end_workloads
        self._log = logger
        self._agents: Dict[Any, Workload] = {}
        self._handoffs: Dict[Any, str] = {}
        self.recorded = 0
        self.failed = 0
        self.dropped = 0
        self.unattributed = 0
        self.last_error: Optional[BaseException] = None
        self._warned_at = 0.0
        self._lock = threading.Lock()
        # Background mode.
        self._queue: Deque[Op] = collections.deque()
        self._queue_size = queue_size
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._submitted = 0
        self._handled = 0
        self._closed = False
        self._batcher: Optional[Batcher] = None
        self._pending: List[PendingReceipt] = []
        self._thread: Optional[threading.Thread] = None
        if not blocking:
            self._batcher = runtime.batcher()
            self._thread = threading.Thread(
                target=self._run, name="lineage-recorder", daemon=True
            )
            self._thread.start()

    # -- the instrumented thread ------------------------------------------

    def submit(self, op: Op) -> None:
        """Runs ``op`` now (blocking: its error propagates) or queues it."""
        if self.blocking:
            self._apply(op)
            return
        if self._closed:
            return
        if len(self._queue) >= self._queue_size:
            self._drop()
            return
        self._queue.append(op)
        self._submitted += 1
        if not self._wake.is_set():
            self._wake.set()

    def _drop(self) -> None:
        with self._lock:
            self.dropped += 1
            now = time.monotonic()
            warn = now - self._warned_at >= 10.0
            if warn:
                self._warned_at = now
        if warn:
            self._log.warning(
                "lineage: the recorder's queue is full (%d): %d span operation(s) "
                "dropped so far; their events are missing from the ledger",
                self._queue_size,
                self.dropped,
            )

    # -- operations ----------------------------------------------------------

    def _apply(self, op: Op) -> None:
        what = op[0]
        if what == "event":
            _, key, kind, attrs = op
            self._event(key, kind, attrs)
        elif what == "agent_start":
            _, key, wid, parent_key, handoff_key, attrs = op
            self._agent_start(key, wid, parent_key, handoff_key, attrs)
        elif what == "handoff":
            _, key, handoff_key, attrs = op
            wl = self._event(key, "agent.handoff", attrs)
            if wl is not None and wl.head is not None:
                self._handoffs[handoff_key] = wl.head[1]
        elif what == "agent_end":
            _, key, attrs = op
            wl = self._agents.pop(key, None)
            if wl is not None and self.end_workloads:
                self._settle()
                wl.end(attrs)
                self.recorded += 1
        else:  # pragma: no cover - a bug in an adapter
            raise ValueError(f"unknown recorder operation {what!r}")

    def _agent_start(
        self,
        key: Any,
        wid: str,
        parent_key: Any,
        handoff_key: Any,
        attrs: Dict[str, Any],
    ) -> None:
        parent = self._agents.get(parent_key) if parent_key is not None else None
        handoff = self._handoffs.pop(handoff_key, None) if handoff_key is not None else None
        # A parent's events must be committed before a child names them.
        self._settle()
        if parent is not None:
            wl = parent.spawn(wid, attrs)
        else:
            wl = self.runtime.start(
                wid, attrs=attrs, parents=(handoff,) if handoff else ()
            )
        self.recorded += 1
        self._agents[key] = wl

    def _event(self, key: Any, kind: str, attrs: Dict[str, Any]) -> Optional[Workload]:
        wl = self._agents.get(key)
        if wl is None:
            self.unattributed += 1
            if self.blocking:
                raise LineageError(
                    f"no agent workload to record {kind!r} in: the span is not "
                    "inside an agent span this processor saw start"
                )
            return None
        if self._batcher is not None:
            self._pending.append(wl.record_batched(self._batcher, kind, attrs))
        else:
            wl.record(kind, attrs)
            self.recorded += 1
        return wl

    def _settle(self) -> None:
        """Background mode: waits for the receipts of the queued events
        (counting the refused ones)."""
        if not self._pending or self._batcher is None:
            return
        pending, self._pending = self._pending, []
        try:
            self._batcher.flush()
        except LineageError as e:
            self._fail(e)
        for p in pending:
            try:
                p.wait()
                self.recorded += 1
            except LineageError as e:
                self._fail(e)

    def _fail(self, e: BaseException) -> None:
        self.failed += 1
        self.last_error = e
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            self._log.warning(
                "lineage: an event was not recorded (%s: %s); %d failed so far",
                type(e).__name__,
                getattr(e, "code", "error"),
                self.failed,
            )

    # -- the background thread ------------------------------------------------

    def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                if not self._queue:
                    with self._idle:
                        self._idle.notify_all()
                    if self._closed:
                        return
                    self._wake.wait()
                    continue
            # A chunk: everything queued now, up to a batch's worth.
            n = 0
            while self._queue and n < 1000:
                op = self._queue.popleft()
                n += 1
                try:
                    self._apply(op)
                except LineageError as e:
                    self._fail(e)
                except Exception as e:  # an adapter's bug must not kill the thread
                    self._fail(e)
            try:
                self._settle()
            except Exception as e:
                self._fail(e)
            with self._idle:
                self._handled += n
                self._idle.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every operation queued so far was applied and its
        receipt checked; False if ``timeout`` (seconds) passed first."""
        if self.blocking:
            return True
        target = self._submitted
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._handled < target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # Notified after every chunk; the bound only rechecks that
                # the thread is alive.
                self._idle.wait(timeout=1.0 if left is None else min(left, 1.0))
        return True

    def shutdown(self, timeout: Optional[float] = 30.0) -> None:
        """Flushes, then stops the background thread."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


class Counters:
    """The counters and commitment helper both processors expose (they
    delegate to their :class:`Recorder` and :class:`Content`)."""

    _rec: "Recorder"
    _content: "Content"

    @property
    def dropped(self) -> int:
        """Span operations dropped because the queue was full."""
        return self._rec.dropped

    @property
    def failed(self) -> int:
        """Events the ledger refused or that could not be submitted
        (non-blocking mode; in gating mode the error is raised instead)."""
        return self._rec.failed

    @property
    def recorded(self) -> int:
        """Events recorded (receipt verified)."""
        return self._rec.recorded

    @property
    def unattributed(self) -> int:
        """Tool, function or handoff spans seen outside any agent span
        (nothing recorded)."""
        return self._rec.unattributed

    @property
    def last_error(self) -> Optional[BaseException]:
        """The latest error of the non-blocking path."""
        return self._rec.last_error

    @property
    def salt(self) -> bytes:
        """The commitment salt."""
        return self._content.salt

    def commitment(self, value: Any) -> str:
        """The commitment this processor records for ``value``."""
        return commitment(value, self._content.salt)
