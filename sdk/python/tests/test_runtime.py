"""The core API against a real ledger: gated steps, refusals, restart
recovery, an unreachable ledger, receipts verified against the log key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import lineage
from conftest import Agent, Ledger, make_vkey, unique, wait_for


def test_a_gated_tool_call_runs_after_the_ledger_committed_it(agent: Agent, ledger: Ledger) -> None:
    rt = agent.connect()
    w = unique("run")
    wl = rt.start(w, attrs={"goal": "triage"})
    ran = []
    with wl.step("tool.invoke", {"tool": "search"}) as receipt:
        # The transition is in the ledger before the body runs.
        chain = ledger.events(w)
        ran.append([e["event_id"] for e in chain])
    assert ran == [[chain[0]["event_id"], receipt.event_id]]
    assert [e["kind"] for e in chain] == ["workload.start", "tool.invoke"]
    assert chain[1]["prev"] == chain[0]["event_id"]
    assert ledger.payload(receipt.event_id)["attrs"] == {"tool": "search"}
    assert receipt.index == chain[1]["index"]
    assert receipt.tree_size > receipt.index
    bundle = json.loads(receipt.json)
    assert bundle["format"] == "lineage-bundle/v1"
    assert bundle["event_id"] == receipt.event_id
    assert bundle["index"] == receipt.index
    assert wl.head == (1, receipt.event_id)
    assert wl.last_receipt is not None and wl.last_receipt.event_id == receipt.event_id
    assert wl.denied is None


def test_a_step_refused_after_a_halt_never_runs_its_body(agent: Agent, ledger: Ledger) -> None:
    rt = agent.connect()
    w = unique("run")
    wl = rt.start(w)
    ledger.halt(w, reason="runaway tool loop")
    halt_index = ledger.get(f"/v1/workloads/{w}")["halted_by"]
    ran = []
    with pytest.raises(lineage.Denied) as refused:
        with wl.step("tool.invoke", {"tool": "shell"}):
            ran.append("shell")
    assert ran == []
    e = refused.value
    assert isinstance(e, lineage.LineageError)
    assert (e.code, e.status, e.halt_index, e.governing_index) == ("halted", 403, halt_index, halt_index)
    assert e.local is False
    assert e.detail and e.title
    # The handle stays denied: the next step is refused here, without a
    # round trip, with the same code.
    assert wl.denied is not None and wl.denied.code == "halted"
    with pytest.raises(lineage.Denied) as again:
        with wl.step("tool.invoke"):
            ran.append("again")
    assert ran == [] and again.value.code == "halted" and again.value.local is True
    # Nothing after the start reached the log.
    assert [x["kind"] for x in ledger.events(w)] == ["workload.start"]


def test_the_decorator_records_in_the_current_workload_and_refuses_without_one(
    agent: Agent, ledger: Ledger
) -> None:
    rt = agent.connect()
    w = unique("run")
    wl = rt.start(w)
    calls = []

    @lineage.step("tool.invoke", lambda q: {"tool": "search", "q_len": len(q)})
    def search(q: str) -> str:
        calls.append(q)
        return q.upper()

    with pytest.raises(lineage.LineageError, match="no workload"):
        search("nope")
    assert calls == [] and lineage.current() is None
    with wl:
        assert lineage.current() is wl
        assert search("abc") == "ABC"
    assert lineage.current() is None
    with lineage.use(wl):
        assert search("de") == "DE"
    assert calls == ["abc", "de"]
    chain = ledger.events(w)
    assert [e["kind"] for e in chain] == ["workload.start", "tool.invoke", "tool.invoke"]
    fn = "test_the_decorator_records_in_the_current_workload_and_refuses_without_one.<locals>.search"
    assert ledger.payload(chain[1]["event_id"])["attrs"] == {"tool": "search", "q_len": 3, "function": fn}

    # A coroutine function; the record runs off the event loop.
    @lineage.step("tool.invoke", {"tool": "fetch"}, workload=wl)
    async def fetch() -> int:
        return 7

    assert asyncio.run(fetch()) == 7
    assert [e["kind"] for e in ledger.events(w)][-1] == "tool.invoke"
    assert len(ledger.events(w)) == 4

    # Denied through the decorator: the function does not run.
    ledger.halt(w)
    with wl, pytest.raises(lineage.Denied):
        search("halted")
    assert calls == ["abc", "de"]


def test_a_restarted_process_recovers_the_head_from_the_ledger(
    agent: Agent, ledger: Ledger, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    w = unique("run")
    rt = agent.connect(state_file=state)
    wl = rt.start(w)
    wl.record("tool.invoke", {"n": 1})
    last = wl.record("tool.invoke", {"n": 2})
    del wl, rt  # the "process" ends; nothing but the key and state file remain

    # Trust on first use: the log key pinned in the state file is used.
    rt2 = lineage.Runtime(ledger.url, agent.runtime, agent.key_file, state_file=state)
    wl2 = rt2.open(w)
    assert wl2.head == (2, last.event_id)
    r = wl2.record("tool.invoke", {"n": 3})
    chain = ledger.events(w)
    assert [e["seq"] for e in chain] == [0, 1, 2, 3]
    assert chain[3]["event_id"] == r.event_id and chain[3]["prev"] == last.event_id
    assert json.loads(state.read_text())  # the state file is JSON


def test_a_receipt_under_another_log_key_is_untrusted(agent: Agent, ledger: Ledger, tmp_path: Path) -> None:
    origin = ledger.vkey.split("+", 1)[0]
    other = make_vkey(origin, lineage.keygen(str(tmp_path / "other.key")))
    rt = agent.connect(log_key=other)
    with pytest.raises(lineage.Untrusted) as e:
        rt.start(unique("run"))
    assert e.value.code == "untrusted"


def test_with_the_ledger_down_a_gated_step_raises_instead_of_running(
    own_ledger: Ledger, tmp_path: Path
) -> None:
    key = tmp_path / "rt.key"
    own_ledger.grant("agent/down", key)
    rt = lineage.Runtime(
        own_ledger.url, "agent/down", key, log_key=own_ledger.vkey, timeout=1.0, retry_deadline=1.5
    )
    wl = rt.start(unique("run"))
    own_ledger.stop()
    ran = []
    with pytest.raises(lineage.Unavailable) as e:
        with wl.step("tool.invoke", {"tool": "deploy"}):
            ran.append("deploy")
    assert ran == []
    assert e.value.code == "unavailable" and e.value.attempts >= 1


def test_attrs_that_json_cannot_state_exactly_are_refused_before_signing(agent: Agent) -> None:
    wl = agent.connect().start(unique("run"))
    head = wl.head
    for bad in ({"x": object()}, {"x": float("nan")}, {1: "int key"}, {"x": 2**70}):
        with pytest.raises((TypeError, ValueError)):
            wl.record("tool.invoke", bad)
    assert wl.head == head and wl.denied is None
    r = wl.record("tool.invoke", {"t": (1, 2.5, None, True, "s", [{"n": -3}])})
    assert wl.head == (1, r.event_id)


def test_bad_arguments_are_typed_errors(agent: Agent, ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(lineage.Invalid):
        lineage.Runtime(ledger.url, "agent/x", tmp_path / "missing.key")
    with pytest.raises(lineage.Invalid):
        lineage.Runtime(ledger.url, "not a runtime id", agent.key_file)
    with pytest.raises(ValueError):
        lineage.Runtime(ledger.url, agent.runtime, agent.key_file, timeout=0)
    with pytest.raises(lineage.Invalid):
        agent.connect().start("bad workload id")


def test_authority_halts_and_resumes_and_spawned_children_follow(agent: Agent, ledger: Ledger) -> None:
    auth = lineage.Authority(ledger.url, ledger.authority_key, log_key=ledger.vkey)
    rt = agent.connect()
    parent = rt.start(unique("run"))
    child = parent.spawn(parent.id + "/child", {"why": "research"})
    start = ledger.payload(child.head[1])
    assert start["kind"] == "workload.start" and start["parents"] == [parent.head[1]]
    halt = auth.halt(workload=parent.id, reason="test")
    with pytest.raises(lineage.Denied) as e:
        child.record("tool.invoke")
    assert e.value.code == "halted" and e.value.halt_index == halt.index
    auth.resume(workload=parent.id)
    # A denied handle stays denied; a new one (after the resume) goes on.
    assert child.denied is not None
    again = rt.open(child.id)
    again.record("tool.invoke")
    end = again.end({"ok": True})
    assert ledger.payload(end.event_id)["kind"] == "workload.end"
    with pytest.raises(lineage.Denied) as closed:
        again.record("tool.invoke")
    assert closed.value.code == "workload_closed"


def test_commitments_are_keyed_blake3_of_canonical_bytes() -> None:
    salt = lineage.new_salt()
    assert len(salt) == lineage.COMMIT_SALT_BYTES == 32
    c = lineage.commitment({"b": 1, "a": [1, 2]}, salt)
    assert len(c) == 64 and int(c, 16) >= 0
    assert c == lineage.commitment({"a": [1, 2], "b": 1}, salt)  # canonical JSON
    assert c == lineage.commitment(b'{"a":[1,2],"b":1}', salt)
    assert c == lineage.commitment('{"a":[1,2],"b":1}', salt)
    assert c != lineage.commitment({"a": [1, 2], "b": 1}, lineage.new_salt())
    assert c != lineage.commitment({"a": [1, 2], "b": 2}, salt)
    with pytest.raises(ValueError):
        lineage.commitment("x", b"short")
    # BLAKE3's keyed mode: the official test vector's key, empty input.
    key = b"whats the Elvish word for friend"
    assert lineage.commitment(b"", key) == (
        "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"
    )


def test_one_handle_entered_from_several_threads_keeps_each_threads_current(agent: Agent) -> None:
    import threading

    wl = agent.connect().start(unique("run"))
    seen = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        with wl:
            barrier.wait(timeout=10)
            seen.append(lineage.current() is wl)
            barrier.wait(timeout=10)
        seen.append(lineage.current() is None)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen.count(True) == 4 and lineage.current() is None


def test_live_denial_refuses_locally_once_the_halt_is_on_the_governance_stream(
    agent: Agent, ledger: Ledger
) -> None:
    rt = agent.connect()
    wl = rt.start(unique("run"))
    rt.watch_governance()
    wait_for(lambda: rt.watching, what="the governance stream")
    lineage.Authority(ledger.url, ledger.authority_key, log_key=ledger.vkey).halt(workload=wl.id)
    # Denied without a step: the stream marked the handle.
    wait_for(lambda: wl.denied is not None, what="the handle to be denied")
    assert wl.denied is not None and wl.denied.code == "halted"
    ran = []
    with pytest.raises(lineage.Denied) as e:
        with wl.step("tool.invoke"):
            ran.append(1)
    assert ran == [] and e.value.local is True


def test_a_ledger_behind_a_read_token_needs_it_for_the_receipt_check(tmp_path: Path) -> None:
    from conftest import start_ledger

    led = start_ledger(tmp_path / "data", "--read-token", "s3cret-token")
    try:
        key = tmp_path / "rt.key"
        pub = lineage.keygen(key)
        auth = lineage.Authority(led.url, led.authority_key, log_key=led.vkey, read_token="s3cret-token")
        auth.grant("agent/token", pub)
        # Without it: the first receipt verifies (nothing earlier to prove it
        # consistent with), the second needs a consistency proof, a read.
        without = lineage.Runtime(led.url, "agent/token", key, log_key=led.vkey, retry_deadline=1.0)
        wl = without.start(unique("run"))
        with pytest.raises(lineage.Unavailable) as e:
            wl.record("tool.invoke")
        assert "s3cret-token" not in str(e.value)
        rt = lineage.Runtime(led.url, "agent/token", key, log_key=led.vkey, read_token="s3cret-token")
        r = rt.start(unique("run")).record("tool.invoke")
        assert r.index >= 1
    finally:
        led.stop()


def test_a_forked_child_is_refused_instead_of_hanging(agent: Agent) -> None:
    import os

    wl = agent.connect().start(unique("run"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        import signal

        signal.alarm(20)  # a hang kills the child, and the parent reads nothing
        try:
            try:
                wl.record("tool.invoke")
                os.write(w, b"recorded")
            except lineage.LineageError as e:
                os.write(w, ("refused: " + str(e)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    os.waitpid(pid, 0)
    assert said.startswith("refused: ") and "fork" in said, said
    wl.record("tool.invoke")  # the parent goes on
