"""The OpenTelemetry span processor against a real ledger."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

import lineage
from conftest import Agent, Ledger, unique, wait_for
from lineage._recorder import workload_id
from lineage.otel import LineageSpanProcessor


def tracer_with(proc: LineageSpanProcessor) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(proc)
    return provider.get_tracer("test")


def agent_attrs(name: str) -> Dict[str, Any]:
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": name,
        "gen_ai.request.model": "gpt-test",
        # Content: never copied.
        "gen_ai.input.messages": "SECRET PROMPT",
        "gen_ai.system_instructions": "SECRET INSTRUCTIONS",
    }


def tool_attrs(name: str, args: str) -> Dict[str, Any]:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": "call-" + name,
        "gen_ai.tool.call.arguments": args,
    }


def wid(span: Any, name: str) -> str:
    ctx = span.get_span_context()
    return workload_id("otel/", name, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))


def test_a_two_agent_run_is_recorded_with_the_right_parents_and_no_content(
    agent: Agent, ledger: Ledger
) -> None:
    proc = LineageSpanProcessor(agent.connect())
    tracer = tracer_with(proc)
    with tracer.start_as_current_span("invoke_agent planner", attributes=agent_attrs("planner")) as planner:
        with tracer.start_as_current_span(
            "execute_tool search", attributes=tool_attrs("search", '{"q":"SECRET ARG"}')
        ) as search:
            search.set_attribute("gen_ai.tool.call.result", "SECRET RESULT")
        # The child agent is found through a non-agent span in between.
        with tracer.start_as_current_span("chat gpt-test", attributes={"gen_ai.operation.name": "chat"}):
            with tracer.start_as_current_span(
                "invoke_agent researcher", attributes=agent_attrs("researcher")
            ) as researcher:
                # An MCP tool call: a tools/call span.
                with tracer.start_as_current_span(
                    "tools/call fetch",
                    attributes={
                        "mcp.method.name": "tools/call",
                        "gen_ai.tool.name": "fetch",
                        "gen_ai.tool.call.arguments": '{"url":"SECRET URL"}',
                    },
                ):
                    pass
    assert proc.force_flush()
    assert (proc.dropped, proc.failed, proc.unattributed) == (0, 0, 0), proc.last_error

    p_events = ledger.events(wid(planner, "planner"))
    r_events = ledger.events(wid(researcher, "researcher"))
    assert [e["kind"] for e in p_events] == ["workload.start", "tool.invoke", "tool.result", "workload.end"]
    assert [e["kind"] for e in r_events] == ["workload.start", "tool.invoke", "tool.result", "workload.end"]
    assert proc.recorded == 8
    # The researcher's first event names the planner's event that preceded
    # it (the search's result), so a halt of the planner stops it too.
    assert p_events[0]["parents"] == []
    assert r_events[0]["parents"] == [p_events[2]["event_id"]]
    assert all(e["runtime"] == agent.runtime for e in p_events + r_events)

    payloads: List[dict] = [ledger.payload(e["event_id"]) for e in p_events + r_events]
    text = repr(payloads)
    for secret in ("SECRET PROMPT", "SECRET INSTRUCTIONS", "SECRET ARG", "SECRET RESULT", "SECRET URL"):
        assert secret not in text
    start = payloads[0]["attrs"]
    assert start["gen_ai.agent.name"] == "planner" and start["gen_ai.request.model"] == "gpt-test"
    assert "gen_ai.input.messages" not in start
    invoke, result = payloads[1]["attrs"], payloads[2]["attrs"]
    assert invoke["gen_ai.tool.name"] == "search"
    assert invoke["gen_ai.tool.call.arguments"] == {"blake3_keyed": proc.commitment('{"q":"SECRET ARG"}')}
    assert result["gen_ai.tool.call.result"] == {"blake3_keyed": proc.commitment("SECRET RESULT")}
    assert result["status"] == "ok" and "gen_ai.tool.call.arguments" not in result
    assert payloads[5]["attrs"]["mcp.method.name"] == "tools/call"
    assert payloads[5]["attrs"]["gen_ai.tool.call.arguments"] == {
        "blake3_keyed": lineage.commitment('{"url":"SECRET URL"}', proc.salt)
    }
    proc.shutdown()


def test_content_is_recorded_only_when_opted_in(agent: Agent, ledger: Ledger) -> None:
    proc = LineageSpanProcessor(agent.connect(), record_content=True)
    tracer = tracer_with(proc)
    with tracer.start_as_current_span("invoke_agent a", attributes=agent_attrs("a")) as a:
        with tracer.start_as_current_span("execute_tool t", attributes=tool_attrs("t", '{"q":1}')):
            pass
    assert proc.force_flush() and proc.failed == 0
    invoke = ledger.events(wid(a, "a"))[1]
    assert ledger.payload(invoke["event_id"])["attrs"]["gen_ai.tool.call.arguments"] == '{"q":1}'
    # Prompts stay out even then: only tool arguments and results are content.
    assert "SECRET PROMPT" not in repr(ledger.payload(ledger.events(wid(a, "a"))[0]["event_id"]))
    proc.shutdown()


def test_gating_admits_a_tool_before_it_runs_and_refuses_it_after_a_halt(
    agent: Agent, ledger: Ledger
) -> None:
    proc = LineageSpanProcessor(agent.connect(), gating=True)
    tracer = tracer_with(proc)
    ran: List[Any] = []
    with tracer.start_as_current_span("invoke_agent ops", attributes=agent_attrs("ops")) as ops:
        w = wid(ops, "ops")
        with tracer.start_as_current_span("execute_tool ls", attributes=tool_attrs("ls", "{}")):
            # Already committed when the tool body runs.
            ran.append([e["kind"] for e in ledger.events(w)])
        ledger.halt(w)
        with pytest.raises(lineage.Denied) as refused:
            with tracer.start_as_current_span("execute_tool rm", attributes=tool_attrs("rm", "{}")):
                ran.append("rm")
    assert ran == [["workload.start", "tool.invoke"]]
    assert refused.value.code == "halted"
    kinds = [e["kind"] for e in ledger.events(w)]
    assert kinds == ["workload.start", "tool.invoke", "tool.result"]
    # The agent's end was refused too (counted, not raised from span.end()).
    assert proc.failed == 1


def test_gating_refuses_a_tool_outside_any_agent(agent: Agent) -> None:
    proc = LineageSpanProcessor(agent.connect(), gating=True)
    tracer = tracer_with(proc)
    ran = []
    with pytest.raises(lineage.LineageError, match="no agent workload"):
        with tracer.start_as_current_span("execute_tool orphan", attributes=tool_attrs("orphan", "{}")):
            ran.append(1)
    assert ran == [] and proc.unattributed == 1


def test_the_non_blocking_path_drops_counts_and_warns_when_full_and_never_raises(
    ledger: Ledger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A runtime pointed at a port where nothing listens: the background
    # thread is stuck retrying the first operation for the retry deadline.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    key = tmp_path / "k.key"
    lineage.keygen(str(key))
    rt = lineage.Runtime(
        f"http://127.0.0.1:{port}", "agent/nowhere", key, log_key=ledger.vkey, timeout=0.5, retry_deadline=2.0
    )
    proc = LineageSpanProcessor(rt, queue_size=1)
    tracer = tracer_with(proc)
    caplog.set_level(logging.WARNING, logger="lineage.otel")
    first = tracer.start_span("invoke_agent a", attributes=agent_attrs("a"))
    wait_for(lambda: len(proc._rec._queue) == 0, what="the worker to take the first operation")
    spans = [tracer.start_span(f"invoke_agent b{i}", attributes=agent_attrs(f"b{i}")) for i in range(10)]
    # One operation fits the queue; the other nine are dropped, at once.
    assert proc.dropped == 9
    assert any("dropped" in r.getMessage() for r in caplog.records)
    for sp in spans + [first]:
        sp.end()
    assert proc.force_flush(30_000)
    # Both queued agent starts failed (the ledger is unreachable): counted.
    assert proc.failed == 2 and isinstance(proc.last_error, lineage.Unavailable)
    assert proc.recorded == 0
    proc.shutdown()
