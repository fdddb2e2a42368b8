"""The OpenAI Agents SDK: record its agent, tool and handoff spans as lineage.

:class:`LineageTracingProcessor` is a ``TracingProcessor`` (needs
``pip install lineage[openai-agents]``). Add it next to the SDK's own
processors, never instead of them::

    from agents import add_trace_processor
    from lineage.openai_agents import LineageTracingProcessor

    add_trace_processor(LineageTracingProcessor(rt))

Mapping (the same as :mod:`lineage.otel`):

- an **agent span** starts a workload (``<prefix><agent name>/<trace
  id>/<span id>``) and ends it; an agent span inside another agent's span
  (an agent used as a tool) is spawned from it;
- a **function span** (a tool call, MCP tools included) is a ``tool.invoke``
  event when it starts and a ``tool.result`` event when it ends; its input
  and output are recorded as salted BLAKE3 commitments unless
  ``record_content=True`` (the SDK sets a tool's input after the span
  starts, so the commitment to it is in ``tool.result``);
- a **handoff span** is an ``agent.handoff`` event (``from_agent``,
  ``to_agent``) in the handing-off agent's workload, and the receiving
  agent's workload, started next in the same trace, names that event as
  its parent.

The SDK catches and logs every exception a processor raises, so this
processor cannot stop a tool from running: to gate a tool, record its step
in the tool's own body (``with wl.step("tool.invoke", ...)``). With
``blocking=True`` the events are recorded on the SDK's thread before it goes
on (ordered with the run, at a round trip per span); by default they are
queued and recorded by a background thread, as in :mod:`lineage.otel`.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

try:
    from agents.tracing import Span, Trace, TracingProcessor
    from agents.tracing.span_data import (
        AgentSpanData,
        FunctionSpanData,
        HandoffSpanData,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lineage.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'lineage[openai-agents]'"
    ) from e

from . import LineageError, Runtime, commitment
from ._recorder import Content, Counters, Op, Recorder, workload_id

__all__ = ["LineageTracingProcessor"]

_log = logging.getLogger("lineage.openai_agents")


class LineageTracingProcessor(Counters, TracingProcessor):
    """Records the Agents SDK's spans as lineage (see the module's
    docstring).

    :param runtime: the :class:`lineage.Runtime` whose key signs the events.
    :param blocking: record on the SDK's thread (default: non-blocking).
    :param workload_prefix: prefix of the workload IDs (default ``agents/``).
    :param record_content: copy tool inputs/outputs instead of committing.
    :param salt: the commitment salt (32 bytes; default random).
    :param queue_size: the non-blocking queue's bound.
    :param end_workloads: record ``workload.end`` when an agent span ends.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        blocking: bool = False,
        workload_prefix: str = "agents/",
        record_content: bool = False,
        salt: Optional[bytes] = None,
        queue_size: int = 10_000,
        end_workloads: bool = True,
    ) -> None:
        if len(workload_prefix) > 32:
            raise ValueError("workload_prefix is at most 32 characters")
        self._prefix = workload_prefix
        self._content = Content(salt, record_content)
        self._owner: Dict[str, str] = {}
        self._rec = Recorder(
            runtime,
            blocking=blocking,
            queue_size=queue_size,
            logger=_log,
            end_workloads=end_workloads,
        )

    # -- TracingProcessor ------------------------------------------------------

    def on_trace_start(self, trace: Trace) -> None:
        return None

    def on_trace_end(self, trace: Trace) -> None:
        return None

    def on_span_start(self, span: Span[Any]) -> None:
        data = span.span_data
        owner = self._owner.get(span.parent_id) if span.parent_id else None
        if isinstance(data, AgentSpanData):
            self._owner[span.span_id] = span.span_id
            attrs = self._ids(span)
            attrs["gen_ai.agent.name"] = data.name
            attrs["gen_ai.operation.name"] = "invoke_agent"
            self._submit(
                (
                    "agent_start",
                    span.span_id,
                    workload_id(self._prefix, data.name, span.trace_id, span.span_id),
                    owner,
                    (span.trace_id, data.name),
                    attrs,
                )
            )
            return
        if owner is None:
            return
        self._owner[span.span_id] = owner
        if isinstance(data, FunctionSpanData):
            attrs = self._tool_attrs(span, data)
            if data.input is not None:
                attrs["gen_ai.tool.call.arguments"] = self._content(data.input)
            self._submit(("event", owner, "tool.invoke", attrs))

    def on_span_end(self, span: Span[Any]) -> None:
        owner = self._owner.pop(span.span_id, None)
        if owner is None:
            return
        data = span.span_data
        error = span.error
        status = {"status": "error" if error else "ok"}
        if isinstance(data, AgentSpanData) and owner == span.span_id:
            self._submit(("agent_end", owner, status))
        elif isinstance(data, FunctionSpanData):
            attrs = self._tool_attrs(span, data)
            if data.input is not None:
                attrs["gen_ai.tool.call.arguments"] = self._content(data.input)
            if data.output is not None:
                attrs["gen_ai.tool.call.result"] = self._content(
                    data.output if isinstance(data.output, (str, int, float, bool)) else str(data.output)
                )
            attrs.update(status)
            self._submit(("event", owner, "tool.result", attrs))
        elif isinstance(data, HandoffSpanData):
            attrs = self._ids(span)
            attrs["from_agent"] = data.from_agent
            attrs["to_agent"] = data.to_agent
            attrs.update(status)
            self._submit(("handoff", owner, (span.trace_id, data.to_agent), attrs))

    def shutdown(self) -> None:
        self._rec.shutdown()

    def force_flush(self) -> None:
        self._rec.flush(30.0)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every span seen so far is recorded (or failed);
        False if ``timeout`` (seconds) passed first."""
        return self._rec.flush(timeout)

    # -- helpers -------------------------------------------------------------

    def _submit(self, op: Op) -> None:
        try:
            self._rec.submit(op)
        except LineageError as e:
            # Blocking mode: the SDK would swallow it anyway; count and log.
            self._rec._fail(e)

    @staticmethod
    def _ids(span: Span[Any]) -> Dict[str, Any]:
        return {"agents.trace_id": span.trace_id, "agents.span_id": span.span_id}

    def _tool_attrs(self, span: Span[Any], data: FunctionSpanData) -> Dict[str, Any]:
        attrs = self._ids(span)
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = data.name
        if data.mcp_data:
            server = data.mcp_data.get("server")
            if isinstance(server, str):
                attrs["mcp.server"] = server
        return attrs
