"""Type stubs of ``lineage._native``: the binding of the Rust client
(``lineage-client``). Use the ``lineage`` package's wrappers
(:class:`lineage.Runtime`, :class:`lineage.Workload`); the classes here are
re-exported where they are used directly (receipts, batchers, errors,
:class:`Authority`)."""

import os
from typing import Any, Mapping, Optional, Sequence, Tuple, Union, final

_Path = Union[str, "os.PathLike[str]"]

COMMIT_SALT_BYTES: int
"""The length of a commitment salt: 32 bytes (BLAKE3's key)."""

class LineageError(Exception):
    """Base class of the package's errors: nothing was recorded.

    ``code`` is stable and machine-readable: the ledger's problem code for a
    :class:`Denied`, otherwise ``unavailable``, ``untrusted``, ``invalid`` or
    ``state``."""

    code: str

class Denied(LineageError):
    """The ledger refused the transition, or the handle was already denied
    (an earlier refusal, or a halt/revocation seen on the governance
    stream). The action must not run."""

    title: str
    """The problem's short title (``Halted``, ``Key expired``, ...)."""
    status: int
    """The HTTP status of the refusal (403 for ``halted``, 409 for
    ``workload_closed``, ...)."""
    detail: str
    """The ledger's explanation."""
    field: Optional[str]
    """The offending field, when the ledger named one (``out_of_scope``)."""
    halt_index: Optional[int]
    """For ``halted``: the log index of the halt statement."""
    governing_index: Optional[int]
    """The log index of the governance entry that decided it, when known."""
    local: bool
    """True when decided here without asking the ledger."""

class Unavailable(LineageError):
    """The ledger could not be reached (or answered 429/5xx) on every attempt
    until the retry deadline. The event may or may not be committed;
    recording again on the same handle resubmits safely."""

    attempts: int
    last: str

class Untrusted(LineageError):
    """The ledger answered something that does not verify (a receipt for
    another entry, a bad proof or checkpoint signature, a fork). The client
    is poisoned: every later call fails the same way."""

class Invalid(LineageError):
    """Input refused before anything was signed or sent (a bad identifier,
    key file, URL, log key)."""

class StateError(LineageError):
    """The state file could not be read or written, or pins another log."""

@final
class Receipt:
    """A verified receipt: the ledger committed the event, and its inclusion
    proof checked out against a checkpoint signed by the trusted log key."""

    @property
    def event_id(self) -> str:
        """The event ID (lowercase hex BLAKE3 of the payload)."""
    @property
    def index(self) -> int:
        """The entry's leaf index in the log."""
    @property
    def tree_size(self) -> int:
        """The size of the checkpoint the proof is against."""
    @property
    def json(self) -> str:
        """The ``lineage-bundle/v1`` document: checkable offline with
        ``lineage-verify bundle``."""

@final
class Batcher:
    """Queues signed events (of any workload) and submits them as arrays."""

    def flush(self) -> None:
        """Waits until every event queued before the call is answered (each
        one's outcome is its :class:`PendingReceipt`'s).

        :raises Unavailable: the batcher's worker stopped."""

@final
class PendingReceipt:
    """The receipt of a batched event, once its batch is answered."""

    def wait(self) -> Receipt:
        """Blocks until answered (once only).

        :raises Denied, Unavailable, Untrusted: as :meth:`Workload.record`."""

@final
class Workload:
    """One workload's writer (owns ``seq`` and ``prev``)."""

    @property
    def id(self) -> str: ...
    @property
    def head(self) -> Optional[Tuple[int, str]]:
        """``(seq, event_id)`` of the latest event."""
    @property
    def last_receipt(self) -> Optional[Receipt]: ...
    @property
    def denied(self) -> Optional[Denied]:
        """The refusal that stops this handle, or ``None``."""
    def record(
        self,
        kind: str,
        attrs: Optional[Mapping[str, Any]] = None,
        parents: Sequence[str] = ...,
        domain: Optional[str] = None,
    ) -> Receipt: ...
    def spawn(self, child: str, attrs: Optional[Mapping[str, Any]] = None) -> Workload: ...
    def end(self, attrs: Optional[Mapping[str, Any]] = None) -> Receipt: ...
    def record_batched(
        self, batcher: Batcher, kind: str, attrs: Optional[Mapping[str, Any]] = None
    ) -> PendingReceipt: ...

@final
class Runtime:
    """A runtime identity and its signing key, connected to one ledger."""

    def __init__(
        self,
        server: str,
        runtime: str,
        key_file: _Path,
        *,
        log_key: Optional[str] = None,
        state_file: Optional[_Path] = None,
        ca_cert: Optional[_Path] = None,
        read_token: Optional[str] = None,
        timeout: float = 10.0,
        retry_deadline: float = 30.0,
        consistency: str = "strict",
    ) -> None: ...
    @property
    def id(self) -> str: ...
    @property
    def watching(self) -> bool: ...
    def start(
        self,
        workload: str,
        kind: str = "workload.start",
        attrs: Optional[Mapping[str, Any]] = None,
        parents: Sequence[str] = ...,
        domain: Optional[str] = None,
    ) -> Workload: ...
    def open(self, workload: str) -> Workload: ...
    def watch_governance(self) -> None: ...
    def batcher(
        self,
        *,
        max_batch: Optional[int] = None,
        linger: Optional[float] = None,
        queue: Optional[int] = None,
    ) -> Batcher: ...

@final
class Authority:
    """An authority key of the ledger: signs governance statements. For
    operators and tests; a runtime never holds one."""

    def __init__(
        self,
        server: str,
        key_file: _Path,
        *,
        log_key: Optional[str] = None,
        state_file: Optional[_Path] = None,
        ca_cert: Optional[_Path] = None,
        read_token: Optional[str] = None,
        timeout: float = 10.0,
        retry_deadline: float = 30.0,
    ) -> None: ...
    def grant(self, runtime: str, public_key: str) -> Receipt:
        """Grants ``public_key`` (standard base64) to ``runtime``, now, with
        no validity window or scope (``lineage grant`` has those)."""
    def revoke(self, runtime: str, public_key: str) -> Receipt: ...
    def halt(
        self,
        *,
        workload: Optional[str] = None,
        runtime: Optional[str] = None,
        reason: Optional[str] = None,
    ) -> Receipt:
        """Halts exactly one of ``workload`` or ``runtime`` (and everything
        deriving from it)."""
    def resume(self, *, workload: Optional[str] = None, runtime: Optional[str] = None) -> Receipt: ...

def keygen(path: _Path) -> str:
    """Creates an Ed25519 key file (mode 0600; refuses to overwrite) and
    returns its public key (standard base64, as ``lineage grant
    --public-key`` takes it)."""

def public_key(key_file: _Path) -> str:
    """The public key (standard base64) of a key file."""

def commit(salt: bytes, data: bytes) -> str:
    """Keyed BLAKE3 of ``data`` under the 32-byte ``salt``, 64 hex digits."""
