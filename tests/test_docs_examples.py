"""The example commands of the manual run as they are shown: every fenced `sh` block of
README.md and docs/*.md, in a fresh store, exits 0 — unless the line before its fence says
`<!-- not run: REASON -->` (it serves until stopped, or needs more than a fresh store).

The blocks of one page run in order (a block shown again on a later page runs once), with `bash -e`, in one temporary folder that holds copies
of sample_reports/ and examples/ and, through POSTWATCH_ variables, the store and the spool;
DNS look-ups go to a closed loopback port, so nothing leaves the machine.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

FENCE = re.compile(r"^```(sh|shell|bash|console)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*\S.*?-->\s*$")
MANUAL = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent


def blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line, script, runs) of every shell block."""
    found = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append((text.count("\n", 0, m.start()) + 1, m.group(2), not NOT_RUN.search(before)))
    return found


def test_blocks_and_the_not_run_mark_are_found():
    text = "a\n\n```sh\necho one\n```\n\n<!-- not run: runs until stopped -->\n```sh\npostwatch serve\n```\n"
    assert blocks(text) == [(3, "echo one\n", True), (8, "postwatch serve\n", False)]


def test_the_manual_shows_examples_that_run():
    runnable = sum(run for path in MANUAL for _line, _script, run in blocks(path.read_text()))
    assert runnable >= 20


def test_the_examples_of_the_manual_run(tmp_path):
    """Each page in a store of its own; a block shown on an earlier page already ran."""
    failed, seen = [], set()
    for page in MANUAL:
        shown = [(line, script) for line, script, run in blocks(page.read_text()) if run and script not in seen]
        seen |= {script for _line, script in shown}
        if not shown:
            continue
        folder = tmp_path / page.stem
        for copy in ("sample_reports", "examples"):
            shutil.copytree(ROOT / copy, folder / copy)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
        env.update({
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "POSTWATCH_DATABASE__URL": f"sqlite:///{folder}/var/postwatch.db",
            "POSTWATCH_SPOOL__DIR": str(folder / "var" / "spool"),
            "POSTWATCH_DNS__NAMESERVERS": "127.0.0.1:9",  # discard: refused at once, never the outside
            "POSTWATCH_DNS__TIMEOUT": "0.5",
        })
        for line, script in shown:
            out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder, env=env,
                                 capture_output=True, text=True, timeout=180)
            if out.returncode != 0:
                failed.append(f"{page.name}:{line}: exit {out.returncode}\n{script}{out.stderr[-2000:]}")
    assert failed == [], "\n\n".join(failed)
