"""OpenTelemetry: turn GenAI spans into lineage.

:class:`LineageSpanProcessor` is an OpenTelemetry ``SpanProcessor`` (needs
``pip install lineage[otel]``) that records, per the GenAI semantic
conventions:

- one **workload per agent invocation**: a span whose
  ``gen_ai.operation.name`` is ``invoke_agent`` starts a workload (ID
  ``<prefix><agent name>/<trace id>/<span id>``) and its end ends it
  (``workload.end``);
- an agent invoked inside another agent's span (at any depth: the parent is
  found through the span's parent chain) is **spawned** from it: the child's
  first event names the parent's latest event, so a halt of the parent's
  workload stops the child too;
- a **tool** span (``gen_ai.operation.name == "execute_tool"``, or an MCP
  ``tools/call`` span: ``mcp.method.name == "tools/call"``) inside an agent
  is a ``tool.invoke`` event when it starts and a ``tool.result`` event
  (status, result) when it ends.

**Privacy by default.** Only the attributes in ``allowed_attributes``
(:data:`DEFAULT_ALLOWED_ATTRIBUTES`: operation, agent, tool, model and
provider names and IDs, error type) are copied. Tool arguments and results
(``gen_ai.tool.call.arguments``, ``gen_ai.tool.call.result``) are recorded
only as salted BLAKE3 commitments (:func:`lineage.commitment`, with the
processor's :attr:`~LineageSpanProcessor.salt`) unless
``record_content=True``. Every other attribute (prompts, messages) is never
sent.

**Non-blocking by default.** ``on_start``/``on_end`` only queue an operation
(a few microseconds); a background thread signs and submits in batches. A
full queue drops the span's operation: :attr:`~LineageSpanProcessor.dropped`
counts them and a warning is logged (at most every 10 s). What the ledger
refused is counted in :attr:`~LineageSpanProcessor.failed`.

**Gating** (``gating=True``): ``on_start`` of an agent or tool span blocks
until the ledger admitted the transition; a refusal (or an unreachable
ledger, or a tool outside any agent) marks the span (status ``ERROR``,
attributes ``lineage.denied``, ``lineage.code``) and raises the
:class:`lineage.LineageError` (:class:`lineage.Denied`,
:class:`lineage.Unavailable`, ...) out of ``tracer.start_span`` /
``start_as_current_span``, so the instrumented tool call never runs. (That
relies on the OpenTelemetry SDK propagating a processor's ``on_start``
error, which its ``SynchronousMultiSpanProcessor`` does; an instrumentation
that swallows errors from ``start_span`` defeats the gate.)
"""

from __future__ import annotations

import logging
from typing import Any, Dict, FrozenSet, Iterable, Optional

try:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
    from opentelemetry.trace import Status, StatusCode
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lineage.otel needs the OpenTelemetry SDK: pip install 'lineage[otel]'"
    ) from e

from . import LineageError, Runtime, commitment
from ._recorder import Content, Counters, Op, Recorder, workload_id

__all__ = [
    "LineageSpanProcessor",
    "DEFAULT_ALLOWED_ATTRIBUTES",
    "CONTENT_ATTRIBUTES",
]

#: Attributes copied into events by default: names and IDs, never content.
DEFAULT_ALLOWED_ATTRIBUTES: FrozenSet[str] = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.agent.name",
        "gen_ai.agent.id",
        "gen_ai.conversation.id",
        "gen_ai.data_source.id",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.tool.name",
        "gen_ai.tool.type",
        "gen_ai.tool.call.id",
        "mcp.method.name",
        "mcp.session.id",
        "mcp.protocol.version",
        "error.type",
    }
)

#: Content attributes: committed (or, with ``record_content``, copied).
CONTENT_ATTRIBUTES: FrozenSet[str] = frozenset(
    {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"}
)

_AGENT = 1
_TOOL = 2

_log = logging.getLogger("lineage.otel")


def _str(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def _classify(name: str, attrs: Any) -> int:
    op = attrs.get("gen_ai.operation.name") if attrs else None
    if op == "invoke_agent":
        return _AGENT
    if op == "execute_tool":
        return _TOOL
    if op is None:
        if attrs and attrs.get("mcp.method.name") == "tools/call":
            return _TOOL
        if name.startswith("invoke_agent"):
            return _AGENT
        if name.startswith("execute_tool"):
            return _TOOL
    return 0


class LineageSpanProcessor(Counters, SpanProcessor):
    """Records GenAI spans as lineage (see the module's docstring).

    :param runtime: the :class:`lineage.Runtime` whose key signs the events.
    :param gating: block ``on_start`` until the ledger admitted the
        transition, and raise its refusal (default: non-blocking).
    :param workload_prefix: prefix of the workload IDs (default ``otel/``).
    :param allowed_attributes: span attributes copied into events.
    :param record_content: copy tool arguments/results instead of committing
        to them.
    :param salt: the commitment salt (32 bytes); default: a random one per
        processor (keep :attr:`salt` to open commitments later).
    :param queue_size: the non-blocking queue's bound, in span operations.
    :param end_workloads: record ``workload.end`` when an agent span ends.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        gating: bool = False,
        workload_prefix: str = "otel/",
        allowed_attributes: Iterable[str] = DEFAULT_ALLOWED_ATTRIBUTES,
        record_content: bool = False,
        salt: Optional[bytes] = None,
        queue_size: int = 10_000,
        end_workloads: bool = True,
    ) -> None:
        if len(workload_prefix) > 32:
            raise ValueError("workload_prefix is at most 32 characters")
        self._prefix = workload_prefix
        self._allowed = frozenset(allowed_attributes) - CONTENT_ATTRIBUTES
        self._content = Content(salt, record_content)
        self._gating = gating
        # span ID -> the span ID of the agent span it runs in (agents map to
        # themselves): the parent chain, one lookup per span start.
        self._owner: Dict[int, int] = {}
        self._rec = Recorder(
            runtime,
            blocking=gating,
            queue_size=queue_size,
            logger=_log,
            end_workloads=end_workloads,
        )

    # -- SpanProcessor -------------------------------------------------------

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        ctx = span.get_span_context()
        parent = span.parent
        attrs = span.attributes
        kind = _classify(span.name, attrs)
        owner = self._owner.get(parent.span_id) if parent is not None else None
        if kind == _AGENT:
            self._owner[ctx.span_id] = ctx.span_id
            op: Op = (
                "agent_start",
                ctx.span_id,
                workload_id(
                    self._prefix,
                    _str(attrs.get("gen_ai.agent.name")) if attrs else None,
                    format(ctx.trace_id, "032x"),
                    format(ctx.span_id, "016x"),
                ),
                owner,
                None,
                self._event_attrs(attrs, ctx),
            )
        elif owner is not None:
            self._owner[ctx.span_id] = owner
            if kind != _TOOL:
                return
            op = ("event", owner, "tool.invoke", self._event_attrs(attrs, ctx))
        elif kind == _TOOL:
            op = ("event", None, "tool.invoke", self._event_attrs(attrs, ctx))
        else:
            return
        if not self._gating:
            self._rec.submit(op)
            return
        try:
            self._rec.submit(op)
        except LineageError as e:
            # The span never ends (its action does not run): forget it, or a
            # long-running agent that keeps being denied grows the map.
            self._owner.pop(ctx.span_id, None)
            span.set_attribute("lineage.denied", True)
            span.set_attribute("lineage.code", str(getattr(e, "code", "error")))
            span.set_status(Status(StatusCode.ERROR, f"lineage: {getattr(e, 'code', e)}"))
            raise

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None:
            return
        owner = self._owner.pop(ctx.span_id, None)
        if owner is None:
            return
        attrs = span.attributes
        kind = _classify(span.name, attrs)
        status = span.status.status_code
        end: Dict[str, Any] = {"status": "error" if status == StatusCode.ERROR else "ok"}
        if kind == _AGENT and owner == ctx.span_id:
            op: Op = ("agent_end", owner, end)
        elif kind == _TOOL:
            a = self._event_attrs(attrs, ctx)
            a.pop("gen_ai.tool.call.arguments", None)
            a.update(end)
            op = ("event", owner, "tool.result", a)
        else:
            return
        try:
            self._rec.submit(op)
        except LineageError as e:
            # Gating mode: the action already ran; raising from span.end()
            # would only mask the caller's own outcome.
            self._rec._fail(e)

    def shutdown(self) -> None:
        self._rec.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._rec.flush(timeout_millis / 1000.0)

    # -- helpers -------------------------------------------------------------

    def _event_attrs(self, attrs: Any, ctx: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "otel.trace_id": format(ctx.trace_id, "032x"),
            "otel.span_id": format(ctx.span_id, "016x"),
        }
        if not attrs:
            return out
        for k, v in attrs.items():
            if k in self._allowed:
                out[k] = list(v) if isinstance(v, tuple) else v
            elif k in CONTENT_ATTRIBUTES:
                out[k] = self._content(v)
        return out
