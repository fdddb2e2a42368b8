"""The README's quick start, run as written against a real ledger: its shell
block (less `pip install`) with `lineage` the binary under test and the
ledger's address in LINEAGE_SERVER, then its Python block with the demo's
address replaced by the test ledger's."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
from pathlib import Path

from conftest import Ledger, lineage_bin

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(lang: str) -> list:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", quick, re.S)


def test_the_quick_start_runs_as_written(ledger: Ledger, tmp_path: Path) -> None:
    (sh,) = blocks("sh")
    (py,) = blocks("python")
    assert py.count("\n") <= 10, "the quick start is ten lines"
    # The demo's layout, pointed at the test ledger.
    (tmp_path / "lineage-demo").symlink_to(ledger.data)
    shell = "\n".join(line for line in sh.splitlines() if not line.startswith("pip install"))
    env = dict(os.environ, LINEAGE_SERVER=ledger.url)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "lineage").symlink_to(lineage_bin())
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "http://127.0.0.1:7878" in py
    code = py.replace("http://127.0.0.1:7878", ledger.url)
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(README), "exec"), {"__name__": "quickstart"})
    finally:
        os.chdir(cwd)
    m = re.fullmatch(r"admitted at log index (\d+)\n", out.getvalue())
    assert m, out.getvalue()
    assert (tmp_path / "agent.state.json").exists()
    assert ledger.get(f"/v1/entries/{m.group(1)}")
