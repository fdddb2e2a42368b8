"""Fixtures: a real `lineage serve` on 127.0.0.1 (ephemeral port, temporary
data directory), and runtime keys granted with `lineage grant` signed by the
development authority key the server writes.

The binary is `$LINEAGE_BIN` (CI: `$CARGO_TARGET_DIR/debug/lineage`, built by
`cargo test --workspace`). Without it the suite fails rather than skips: a
green run must mean the SDK was tested against the ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import lineage

STARTUP_SECONDS = 60.0


def lineage_bin() -> str:
    b = os.environ.get("LINEAGE_BIN")
    if not b or not os.access(b, os.X_OK):
        pytest.fail(
            "set LINEAGE_BIN to an executable `lineage` binary "
            "(e.g. $CARGO_TARGET_DIR/debug/lineage after `cargo build`)",
            pytrace=False,
        )
    return b


@dataclass
class Ledger:
    """A running `lineage serve`."""

    url: str
    vkey: str
    data: Path
    proc: subprocess.Popen
    log: Path

    @property
    def authority_key(self) -> Path:
        return self.data / "authority.key"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.load(r)

    def events(self, workload: str) -> List[dict]:
        """A workload's chain, every page."""
        out: List[dict] = []
        from_seq = 0
        while True:
            q = urllib.parse.quote(workload, safe="")
            page = self.get(f"/v1/workloads/{q}/events?from_seq={from_seq}&limit=100")
            items = page.get("events", [])
            out.extend(items)
            if len(items) < 100:
                return out
            from_seq += len(items)

    def event(self, event_id: str) -> dict:
        return self.get(f"/v1/events/{event_id}")

    def payload(self, event_id: str) -> dict:
        """The signed event payload (with ``attrs``) of an event."""
        return self.event(event_id)["payload"]

    def cli(self, *args: str) -> str:
        r = subprocess.run(
            [lineage_bin(), *args, "--server", self.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            raise AssertionError(f"lineage {' '.join(args)}: exit {r.returncode}\n{r.stderr}")
        return r.stdout

    def grant(self, runtime: str, key_file: Path) -> None:
        """Grants a fresh key (written to ``key_file``) to ``runtime``."""
        pub = lineage.keygen(str(key_file))
        self.cli(
            "grant",
            "--authority-key",
            str(self.authority_key),
            "--runtime",
            runtime,
            "--public-key",
            pub,
        )

    def halt(self, workload: str, reason: str = "test") -> None:
        self.cli(
            "halt",
            "--authority-key",
            str(self.authority_key),
            "--workload",
            workload,
            "--reason",
            reason,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_ledger(data: Path, *args: str) -> Ledger:
    log = data.parent / (data.name + ".log")
    err = open(log, "ab")
    proc = subprocess.Popen(
        [lineage_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), *args],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    err.close()
    found: dict = {}
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("lineage: vkey "):
                found["vkey"] = line.split(" ", 2)[2].strip()
            if line.startswith("lineage: listening on "):
                found["url"] = line.split(" ", 3)[3].strip()
                ready.set()
        ready.set()  # EOF: the process ended

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(STARTUP_SECONDS) or "url" not in found:
        proc.kill()
        proc.wait()
        raise AssertionError(f"lineage serve did not start:\n{log.read_text()}")
    ledger = Ledger(found["url"], found["vkey"], data, proc, log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(ledger.url + "/readyz", timeout=5) as r:
                if r.status == 200:
                    return ledger
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            ledger.stop()
            raise AssertionError("lineage serve did not become ready")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """One ledger for the session (tests use distinct workload names)."""
    led = start_ledger(tmp_path_factory.mktemp("ledger") / "data")
    yield led
    led.stop()


@pytest.fixture
def own_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger of the test's own (for tests that stop it)."""
    led = start_ledger(tmp_path / "data")
    yield led
    led.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Agent:
    """A granted runtime identity."""

    runtime: str
    key_file: Path
    ledger: Ledger

    def connect(self, **kw: Any) -> lineage.Runtime:
        kw.setdefault("log_key", self.ledger.vkey)
        return lineage.Runtime(self.ledger.url, self.runtime, self.key_file, **kw)


@pytest.fixture
def agent(ledger: Ledger, tmp_path: Path) -> Agent:
    rid = unique("agent/py")
    key = tmp_path / "runtime.key"
    ledger.grant(rid, key)
    return Agent(rid, key, ledger)


def wait_for(pred: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Polls ``pred`` (bounded) until it is true."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def make_vkey(origin: str, public_key_b64: str) -> str:
    """A C2SP signed-note verifier key for ``origin`` and an Ed25519 key:
    ``origin+keyid+base64(0x01 || key)``, key ID the first 4 bytes of
    SHA-256(origin || 0x0A || 0x01 || key)."""
    import base64
    import hashlib

    raw = b"\x01" + base64.b64decode(public_key_b64)
    kid = hashlib.sha256(origin.encode() + b"\n" + raw).digest()[:4].hex()
    return f"{origin}+{kid}+{base64.b64encode(raw).decode()}"
