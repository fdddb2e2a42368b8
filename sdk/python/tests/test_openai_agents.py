"""The OpenAI Agents SDK tracing processor on a run driven offline: the
SDK's own spans (agent, function, handoff) inside a trace, no model call."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from agents.tracing import (
    add_trace_processor,
    agent_span,
    function_span,
    get_trace_provider,
    handoff_span,
    trace,
)

from conftest import Agent, Ledger
from lineage._recorder import workload_id
from lineage.openai_agents import LineageTracingProcessor


@pytest.fixture
def processor(agent: Agent) -> Iterator[LineageTracingProcessor]:
    provider = get_trace_provider()
    before = list(provider._multi_processor._processors)
    proc = LineageTracingProcessor(agent.connect())
    add_trace_processor(proc)
    # Added next to the SDK's own processors, not instead of them.
    after = list(provider._multi_processor._processors)
    assert after == before + [proc]
    yield proc
    provider.set_processors(before)
    proc.shutdown()


def wid(span: Any, name: str) -> str:
    return workload_id("agents/", name, span.trace_id, span.span_id)


def test_an_offline_agents_run_is_recorded_with_handoffs_and_nested_agents(
    processor: LineageTracingProcessor, ledger: Ledger
) -> None:
    with trace("support"):
        with agent_span("triage", tools=["lookup"], handoffs=["billing"]) as triage:
            with function_span("lookup") as lookup:
                # The SDK sets the input after the span started.
                lookup.span_data.input = '{"order": "SECRET ORDER"}'
                lookup.span_data.output = "SECRET ROW"
            with function_span("ask_expert", input='{"q": "SECRET Q"}') as tool:
                # An agent used as a tool: nested in the function span.
                with agent_span("expert") as expert:
                    pass
                tool.span_data.output = "ok"
            with handoff_span(from_agent="triage") as h:
                h.span_data.to_agent = "billing"
        with agent_span("billing") as billing:
            with function_span("refund", input='{"amount": 5}') as refund:
                refund.span_data.output = "refunded"
    assert processor.flush(30)
    assert (processor.dropped, processor.failed, processor.unattributed) == (0, 0, 0), processor.last_error

    t = ledger.events(wid(triage, "triage"))
    e = ledger.events(wid(expert, "expert"))
    b = ledger.events(wid(billing, "billing"))
    assert [x["kind"] for x in t] == [
        "workload.start",
        "tool.invoke",
        "tool.result",
        "tool.invoke",
        "tool.result",
        "agent.handoff",
        "workload.end",
    ]
    assert [x["kind"] for x in e] == ["workload.start", "workload.end"]
    assert [x["kind"] for x in b] == ["workload.start", "tool.invoke", "tool.result", "workload.end"]
    assert processor.recorded == len(t) + len(e) + len(b)
    # The nested agent derives from the tool call it runs in; the agent
    # handed off to derives from the handoff.
    assert e[0]["parents"] == [t[3]["event_id"]]
    assert b[0]["parents"] == [t[5]["event_id"]]
    assert t[0]["parents"] == []

    handoff = ledger.payload(t[5]["event_id"])["attrs"]
    assert (handoff["from_agent"], handoff["to_agent"]) == ("triage", "billing")
    result = ledger.payload(t[2]["event_id"])["attrs"]
    assert result["gen_ai.tool.name"] == "lookup"
    assert result["gen_ai.tool.call.arguments"] == {
        "blake3_keyed": processor.commitment('{"order": "SECRET ORDER"}')
    }
    assert result["gen_ai.tool.call.result"] == {"blake3_keyed": processor.commitment("SECRET ROW")}
    invoke = ledger.payload(t[3]["event_id"])["attrs"]
    assert invoke["gen_ai.tool.call.arguments"] == {"blake3_keyed": processor.commitment('{"q": "SECRET Q"}')}
    text = repr([ledger.payload(x["event_id"]) for x in t + e + b])
    for secret in ("SECRET ORDER", "SECRET ROW", "SECRET Q"):
        assert secret not in text
    assert ledger.payload(b[0]["event_id"])["attrs"]["gen_ai.agent.name"] == "billing"
