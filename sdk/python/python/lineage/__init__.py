"""Record an agent's actions in a Lineage ledger, fail-closed.

A :class:`Runtime` (a runtime ID and its signing key) opens :class:`Workload`
handles. Each transition is signed, submitted, committed by the ledger and
its receipt verified (inclusion proof, checkpoint signature, consistency with
every checkpoint seen before) before the call returns, all in the Rust client
this package is built on. A refusal raises :class:`Denied` and the handle stays
denied; an unreachable ledger raises :class:`Unavailable` after the retry
deadline. Nothing is ever reported as recorded that was not.

The idiom::

    rt = lineage.Runtime("http://127.0.0.1:7878", "agent/planner", "agent.key")
    wl = rt.start("run-42", attrs={"goal": "triage"})
    with wl.step("tool.invoke", {"tool": "search"}) as receipt:
        search(...)          # runs only after the ledger admitted the step
    wl.end()
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import os
from contextlib import contextmanager
from typing import (
    Any,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from . import _native
from ._native import (
    COMMIT_SALT_BYTES,
    Authority,
    Batcher,
    Denied,
    Invalid,
    LineageError,
    PendingReceipt,
    Receipt,
    StateError,
    Unavailable,
    Untrusted,
    keygen,
    public_key,
)

__all__ = [
    "Runtime",
    "Authority",
    "Workload",
    "Step",
    "Receipt",
    "Batcher",
    "PendingReceipt",
    "LineageError",
    "Denied",
    "Unavailable",
    "Untrusted",
    "Invalid",
    "StateError",
    "step",
    "use",
    "current",
    "commitment",
    "new_salt",
    "keygen",
    "public_key",
    "COMMIT_SALT_BYTES",
]

Attrs = Mapping[str, Any]
F = TypeVar("F", bound=Callable[..., Any])


class Runtime:
    """A runtime identity and its signing key, connected to one ledger.

    :param server: the ledger's base URL (``http://`` or ``https://``).
    :param runtime: the runtime ID the key was granted for
        (``lineage grant --runtime``).
    :param key_file: the Ed25519 key file (``lineage keygen`` or
        :func:`keygen`); read once, never logged.
    :param log_key: the log's verifier key (``vkey`` from ``GET /v1/log`` or
        ``lineage serve``'s banner). ``None``: trust on first use, the key the
        ledger serves is pinned (in ``state_file`` when given) and a different
        one later is refused.
    :param state_file: JSON file keeping the pinned log key and the latest
        checkpoint seen, so a ledger that forks or rewrites history is caught
        across restarts. ``None``: kept in memory only.
    :param ca_cert: PEM certificate authorities for an ``https://`` ledger.
    :param read_token: the bearer token of a ledger started with
        ``--read-token`` (sent with reads only: the log key, proofs, the
        governance stream; never logged).
    :param timeout: one HTTP attempt's limit, seconds.
    :param retry_deadline: how long a submission is retried (transport
        errors, 429, 5xx) with the identical envelope before it raises
        :class:`Unavailable`, seconds.
    :param consistency: ``"strict"`` (a receipt is returned only once its
        checkpoint is proven consistent with the ones seen before) or
        ``"background"`` (proven just after; a failure poisons the client).
    :raises Invalid: a bad URL, runtime ID, key file or CA file.
    :raises StateError: an unreadable state file, or one pinning another log.
    """

    __slots__ = ("_native",)

    def __init__(
        self,
        server: str,
        runtime: str,
        key_file: Union[str, "os.PathLike[str]"],
        *,
        log_key: Optional[str] = None,
        state_file: Union[str, "os.PathLike[str]", None] = None,
        ca_cert: Union[str, "os.PathLike[str]", None] = None,
        read_token: Optional[str] = None,
        timeout: float = 10.0,
        retry_deadline: float = 30.0,
        consistency: str = "strict",
    ) -> None:
        self._native = _native.Runtime(
            server,
            runtime,
            os.fspath(key_file),
            log_key=log_key,
            state_file=None if state_file is None else os.fspath(state_file),
            ca_cert=None if ca_cert is None else os.fspath(ca_cert),
            read_token=read_token,
            timeout=timeout,
            retry_deadline=retry_deadline,
            consistency=consistency,
        )

    @property
    def id(self) -> str:
        """The runtime ID."""
        return self._native.id

    def start(
        self,
        workload: str,
        kind: str = "workload.start",
        attrs: Optional[Attrs] = None,
        parents: Iterable[str] = (),
        domain: Optional[str] = None,
    ) -> "Workload":
        """Records a workload's first event (``seq`` 0) and returns its handle.

        ``parents`` are event IDs this workload derives from (a halt of their
        workloads then stops this one too); ``domain`` is its trust domain.

        :raises Denied: the ledger refused it (``out_of_scope``, ``halted``,
            ``seq_conflict`` for a workload that already exists, ...).
        :raises Unavailable: the ledger could not be reached in time.
        """
        return Workload(
            self._native.start(workload, kind, _attrs(attrs), list(parents), domain)
        )

    def open(self, workload: str) -> "Workload":
        """A handle on a workload, its head (``seq``, ``prev``) recovered
        from the ledger: how a restarted process goes on. A closed or halted
        workload gives a handle that is already denied; one the ledger does
        not know gives a handle whose next event is its ``seq`` 0.

        :raises Invalid: the workload belongs to another runtime.
        :raises Unavailable: the ledger could not be reached in time.
        :raises Untrusted: the head's receipt did not verify.
        """
        return Workload(self._native.open(workload))

    def watch_governance(self) -> None:
        """Follows the ledger's governance stream in the background: a halt or
        revocation that stops a live handle denies it as soon as it commits,
        so its next step is refused here without a round trip."""
        self._native.watch_governance()

    @property
    def watching(self) -> bool:
        """Whether the governance stream is followed and connected."""
        return self._native.watching

    def batcher(
        self,
        *,
        max_batch: Optional[int] = None,
        linger: Optional[float] = None,
        queue: Optional[int] = None,
    ) -> Batcher:
        """A batcher submitting queued events (of any workload of this
        ledger) as arrays: see :meth:`Workload.record_batched`."""
        return self._native.batcher(max_batch=max_batch, linger=linger, queue=queue)

    def __repr__(self) -> str:
        return f"<lineage.Runtime {self.id!r}>"


_current: contextvars.ContextVar[Optional["Workload"]] = contextvars.ContextVar(
    "lineage_current_workload", default=None
)
# The tokens of the `with wl:` blocks open in this context, innermost last:
# context-local, so one handle may be entered from several threads or tasks.
_entered: contextvars.ContextVar[Tuple[contextvars.Token[Optional["Workload"]], ...]] = (
    contextvars.ContextVar("lineage_entered", default=())
)


class Workload:
    """One workload's writer. It owns the chain (``seq``, ``prev``): use one
    handle per workload (calls from several threads are serialised).

    ``with wl:`` makes it the *current* workload (see :func:`current`,
    :func:`step`) for the block; it does not end it.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _native.Workload) -> None:
        self._native = native

    @property
    def id(self) -> str:
        """The workload ID."""
        return self._native.id

    @property
    def head(self) -> Optional[Tuple[int, str]]:
        """``(seq, event_id)`` of the latest event, or ``None``."""
        return self._native.head

    @property
    def last_receipt(self) -> Optional[Receipt]:
        """The receipt of the latest event recorded through this handle."""
        return self._native.last_receipt

    @property
    def denied(self) -> Optional[Denied]:
        """The :class:`Denied` error that stops this handle, or ``None``."""
        return self._native.denied

    def record(
        self,
        kind: str,
        attrs: Optional[Attrs] = None,
        *,
        parents: Iterable[str] = (),
        domain: Optional[str] = None,
    ) -> Receipt:
        """Records one transition; returns its verified receipt once the
        ledger committed it.

        :raises Denied: refused (the handle is denied from then on).
        :raises Unavailable: the ledger could not be reached in time (the
            handle may retry: the same envelope is resubmitted).
        :raises Untrusted: the receipt or checkpoint did not verify.
        """
        return self._native.record(kind, _attrs(attrs), list(parents), domain)

    def step(
        self,
        kind: str,
        attrs: Optional[Attrs] = None,
        *,
        parents: Iterable[str] = (),
        domain: Optional[str] = None,
    ) -> "Step":
        """A context manager that records the transition *before* its body
        runs, and yields the receipt::

            with wl.step("tool.invoke", {"tool": "shell"}) as receipt:
                run_shell(...)

        If the ledger refuses, :class:`Denied` is raised from the ``with``
        statement itself and the body never runs. ``async with`` works too
        (the record runs in a worker thread, not on the event loop).
        """
        return Step(self, kind, attrs, tuple(parents), domain)

    def spawn(self, child: str, attrs: Optional[Attrs] = None) -> "Workload":
        """Starts a child workload whose first event names this workload's
        head as its parent (so a halt of this workload stops the child)."""
        return Workload(self._native.spawn(child, _attrs(attrs)))

    def end(self, attrs: Optional[Attrs] = None) -> Receipt:
        """Records ``workload.end``: the ledger refuses anything after it
        (``workload_closed``)."""
        return self._native.end(_attrs(attrs))

    def record_batched(
        self, batcher: Batcher, kind: str, attrs: Optional[Attrs] = None
    ) -> PendingReceipt:
        """Signs the event now (advancing the chain) and queues it on
        ``batcher``; :meth:`PendingReceipt.wait` gives its receipt or raises
        its error. For high-rate emitters: the caller does not wait."""
        return self._native.record_batched(batcher, kind, _attrs(attrs))

    def __enter__(self) -> "Workload":
        _entered.set(_entered.get() + (_current.set(self),))
        return self

    def __exit__(self, *exc: object) -> None:
        tokens = _entered.get()
        _entered.set(tokens[:-1])
        _current.reset(tokens[-1])

    def __repr__(self) -> str:
        return f"<lineage.Workload {self.id!r}>"


class Step:
    """What :meth:`Workload.step` returns: records on entry, yields the
    receipt. Nothing is recorded on exit (the record is the admission of
    the action, made before it)."""

    __slots__ = ("_wl", "_kind", "_attrs", "_parents", "_domain")

    def __init__(
        self,
        wl: Workload,
        kind: str,
        attrs: Optional[Attrs],
        parents: Tuple[str, ...],
        domain: Optional[str],
    ) -> None:
        self._wl = wl
        self._kind = kind
        self._attrs = attrs
        self._parents = parents
        self._domain = domain

    def __enter__(self) -> Receipt:
        return self._wl.record(
            self._kind, self._attrs, parents=self._parents, domain=self._domain
        )

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> Receipt:
        return await asyncio.get_running_loop().run_in_executor(None, self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        return None


def current() -> Optional[Workload]:
    """The current workload: set by ``with wl:`` or :func:`use`."""
    return _current.get()


@contextmanager
def use(wl: Workload) -> Iterator[Workload]:
    """Makes ``wl`` the current workload for the block (same as ``with wl:``)."""
    token = _current.set(wl)
    try:
        yield wl
    finally:
        _current.reset(token)


def step(
    kind: str,
    attrs: Union[Attrs, Callable[..., Attrs], None] = None,
    *,
    workload: Optional[Workload] = None,
) -> Callable[[F], F]:
    """Decorator: each call of the function records ``kind`` first, and runs
    the function only once the ledger admitted it::

        @lineage.step("tool.invoke", {"tool": "search"})
        def search(q): ...

        with wl:              # or lineage.use(wl), or step(..., workload=wl)
            search("x")

    ``attrs`` is a dict, or a callable taking the function's arguments and
    returning one (e.g. ``lambda q: {"tool": "search", "q_len": len(q)}``).
    The function's qualified name is recorded as ``function`` unless
    ``attrs`` sets it. The workload is ``workload`` if given, else the
    current one; with neither, :class:`LineageError` is raised and the
    function does not run. Coroutine functions are supported (the record
    runs in a worker thread).
    """

    def decorate(fn: F) -> F:
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))

        def admit(args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Step:
            wl = workload if workload is not None else _current.get()
            if wl is None:
                raise LineageError(
                    f"{name}: no workload to record {kind!r} in "
                    "(pass workload=, or call it inside `with wl:` / lineage.use(wl))"
                )
            a = dict(attrs(*args, **kwargs) if callable(attrs) else (attrs or {}))
            a.setdefault("function", name)
            return wl.step(kind, a)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with admit(args, kwargs):
                    return await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with admit(args, kwargs):
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def new_salt() -> bytes:
    """A fresh random commitment salt (32 bytes from the OS)."""
    return os.urandom(COMMIT_SALT_BYTES)


def canonical_bytes(value: Any) -> bytes:
    """The bytes a commitment is computed over: ``bytes`` as they are, ``str``
    as UTF-8, anything else as canonical JSON (sorted keys, no spaces,
    UTF-8; an object JSON cannot encode is written as its ``str()``), so the
    same value always commits the same way."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def commitment(value: Any, salt: bytes) -> str:
    """The salted BLAKE3 commitment of ``value``: keyed BLAKE3 (the 32-byte
    ``salt`` as the key) of :func:`canonical_bytes`, 64 hex digits. Whoever
    holds the salt and the value can recompute it; without the salt, a
    short or guessable value cannot be found by trying candidates."""
    return _native.commit(salt, canonical_bytes(value))


def _attrs(attrs: Optional[Attrs]) -> Optional[Mapping[str, Any]]:
    if attrs is None or isinstance(attrs, dict):
        return attrs
    return dict(attrs)

