"""Benchmark of the Python SDK against a real `lineage serve` on loopback.

    LINEAGE_BIN=target/debug/lineage python sdk/python/bench/bench.py [--steps N] [--spans N]

Reports, in one run on one machine (the CPU is printed first):

1. **Gated step latency**: a ``with wl.step(...)`` (sign, POST, receipt
   verified, checkpoint proven consistent) vs a bare HTTP POST of the same
   kind of envelope, pre-signed, over a kept-alive connection from Python
   (``http.client``), p50 and p99. Both sides append one event of the same
   size and wait for the ledger's synced commit. The bare POSTs are the
   first events of fresh workloads (``seq`` 0, no ``prev`` to compute), so
   the SDK is also timed on that path (``rt.start``) for a like-for-like
   ratio. Target (issue 14): p50 within 1.5x of the bare POST.
2. **Non-blocking cost on the instrumented thread**: the time
   ``LineageSpanProcessor.on_start`` + ``on_end`` take for a tool span under
   an agent span (what the traced code pays per span). Target: < 50 us.
3. **Sustained rate**: tool spans emitted as fast as one thread can from one
   process, until the ledger returned every receipt (``force_flush``).
   Target: >= 5,000 events/s.

The bare POSTs are signed with the ``cryptography`` package (present in the
``test`` extras through openai-agents); the ledger under test is started
with a temporary data directory and stopped at the end. Not a test: figures
depend on the machine; nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import lineage  # noqa: E402
from conftest import start_ledger  # noqa: E402


def cpu() -> str:
    """The CPU model (with family/model numbers: a virtual CPU may name only
    its vendor line) and whether it has AVX-512 IFMA."""
    info: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    model = info.get("model name") or platform.processor() or "unknown"
    ifma = "avx512ifma" in info.get("flags", "").split()
    return (
        f"{model} (family {info.get('cpu family', '?')} model {info.get('model', '?')}); "
        f"{os.cpu_count()} logical CPUs; avx512ifma: {'yes' if ifma else 'no'}"
    )


def pct(xs: List[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt_us(xs: List[float]) -> str:
    return f"p50 {pct(xs, 50) * 1e6:8.1f} us   p99 {pct(xs, 99) * 1e6:8.1f} us   mean {statistics.fmean(xs) * 1e6:8.1f} us"


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def bare_envelopes(key_file: Path, keyid: str, runtime: str, n: int, attrs: dict) -> List[bytes]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = base64.b64decode(key_file.read_text().strip())
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    ptype = "application/vnd.lineage.event.v1+json"
    out = []
    tag = os.urandom(4).hex()
    for i in range(n):
        payload = json.dumps(
            {
                "runtime": runtime,
                "workload": f"bench-bare-{tag}-{i}",
                "seq": 0,
                "kind": "tool.invoke",
                "at": now_rfc3339(),
                "attrs": attrs,
            },
            separators=(",", ":"),
        ).encode()
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(payload), payload)
        sig = sk.sign(pae)
        out.append(
            json.dumps(
                {
                    "payloadType": ptype,
                    "payload": base64.b64encode(payload).decode(),
                    "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}],
                }
            ).encode()
        )
    return out


def bench_latency(led: Any, rt: lineage.Runtime, key_file: Path, runtime: str, n: int) -> None:
    attrs = {"tool": "search", "gen_ai.tool.call.id": "call-0123456789"}
    # Warm-up: connections, the pinned log key, the first consistency proof.
    wl = rt.start(f"bench-step-{os.urandom(4).hex()}")
    for _ in range(50):
        wl.record("tool.invoke", attrs)
    keyid = led.event(wl.head[1])["envelope"]["signatures"][0]["keyid"]

    bodies = bare_envelopes(key_file, keyid, runtime, n + 50, attrs)
    u = urllib.parse.urlsplit(led.url)
    conn = http.client.HTTPConnection(u.hostname, u.port)

    def post(body: bytes) -> float:
        t = time.perf_counter()
        conn.request("POST", "/v1/entries", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        dt = time.perf_counter() - t
        if r.status != 201:
            raise SystemExit(f"bare POST answered {r.status}")
        return dt

    for body in bodies[:50]:
        post(body)
    # Interleaved, one of each per round: the disk's sync time drifts on a
    # shared machine, and each kind sees the same drift.
    step: List[float] = []
    start: List[float] = []
    bare: List[float] = []
    tag = os.urandom(4).hex()
    for i, body in enumerate(bodies[50:]):
        t = time.perf_counter()
        with wl.step("tool.invoke", attrs):
            pass
        step.append(time.perf_counter() - t)
        t = time.perf_counter()
        rt.start(f"bench-start-{tag}-{i}", kind="tool.invoke", attrs=attrs)
        start.append(time.perf_counter() - t)
        bare.append(post(body))
    conn.close()

    print(f"\n1. gated step latency over loopback ({n} rounds of one of each, interleaved)")
    print(f"   bare HTTP POST (http.client)     {fmt_us(bare)}")
    print(f"   SDK rt.start (same envelope)     {fmt_us(start)}")
    print(f"   SDK with wl.step(...)            {fmt_us(step)}")
    b = pct(bare, 50)
    print(
        f"   p50 ratio vs bare: start {pct(start, 50) / b:.2f}x, step {pct(step, 50) / b:.2f}x "
        "(target <= 1.5x)"
    )


def bench_otel(rt: lineage.Runtime, spans: int) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from lineage.otel import LineageSpanProcessor

    # Room for every operation (a start and an end per span): the rate is the
    # pipeline's, not the drop policy's.
    proc = LineageSpanProcessor(rt, queue_size=2 * spans + 100)
    provider = TracerProvider()  # no processor: spans are made, the processor is called by hand
    tracer = provider.get_tracer("bench")
    agent = tracer.start_span(
        "invoke_agent bench", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench"}
    )
    proc.on_start(agent)
    assert proc.force_flush()
    from opentelemetry import trace

    ctx = trace.set_span_in_context(agent)
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.id": "call-1",
        "gen_ai.tool.call.arguments": '{"q": "what is the weather in Paris"}',
    }
    made = [tracer.start_span("execute_tool search", context=ctx, attributes=attrs) for _ in range(spans)]
    for s in made:
        s.set_attribute("gen_ai.tool.call.result", "sunny, 21C")
        s.end()

    per_span: List[float] = []
    t0 = time.perf_counter()
    for s in made:
        t = time.perf_counter()
        proc.on_start(s)
        proc.on_end(s)
        per_span.append(time.perf_counter() - t)
    emitted = time.perf_counter() - t0
    ok = proc.force_flush(300_000)
    total = time.perf_counter() - t0
    events = 2 * spans  # tool.invoke + tool.result per span
    print(f"\n2. non-blocking path, cost on the instrumented thread ({spans} tool spans)")
    print(f"   on_start + on_end per span       {fmt_us(per_span)}   (target < 50 us)")
    print(f"\n3. sustained rate from one process ({events} events: tool.invoke + tool.result per span)")
    print(f"   emitted in {emitted:.2f} s; all receipts back after {total:.2f} s (flush ok: {ok})")
    print(
        f"   {proc.recorded} recorded, {proc.failed} failed, {proc.dropped} dropped: "
        f"{proc.recorded / total:,.0f} events/s   (target >= 5,000)"
    )
    proc.on_end(agent)
    proc.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000, help="gated steps (and bare POSTs) to time")
    ap.add_argument("--spans", type=int, default=10000, help="tool spans for the non-blocking path")
    args = ap.parse_args()
    print(f"CPU: {cpu()}")
    print(f"Python {platform.python_version()} ({sys.executable}); lineage SDK {lineage.__file__}")
    print(f"ledger: {os.environ.get('LINEAGE_BIN')} (a debug build's own crates are unoptimised: use a release build for figures)")
    with tempfile.TemporaryDirectory() as d:
        led = start_ledger(Path(d) / "data")
        try:
            key = Path(d) / "bench.key"
            runtime = "bench/python"
            led.grant(runtime, key)
            rt = lineage.Runtime(led.url, runtime, key, log_key=led.vkey)
            bench_latency(led, rt, key, runtime, args.steps)
            bench_otel(rt, args.spans)
        finally:
            led.stop()


if __name__ == "__main__":
    main()
