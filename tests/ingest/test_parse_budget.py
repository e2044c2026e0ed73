"""The per-message CPU budget (ingest.parse_timeout): a parse past it is quarantined with the
reason, and the next message is parsed, in this process, in the pipeline's worker processes
and in `postwatch parse`'s."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from bench.long_lines import qmail
from ingest import budget
from ingest.config import IngestConfig
from ingest.parse import parse_bytes, prepare
from ingest.envelope import Envelope
from ingest.pipeline import PARALLEL_MIN, Pipeline
from postwatch import cli
from tests.ingest.messages import postfix_dsn

BUDGET = 0.02  # CPU seconds; a bounce parses in well under a millisecond
REASON = f"parse took longer than {BUDGET:g} s"


def slow_bounce() -> bytes:
    """A real shape that takes long by its size: 25,000 recipients, ~0.8 s of CPU here."""
    return qmail("".join(f"<u{i}@example.org>: 550 5.1.1 user unknown\n" for i in range(25_000)))


def bounce(i: int) -> bytes:
    return postfix_dsn(recipients=[(f"gone{i}@example.net", "5.1.1", "550 5.1.1 User unknown")],
                       message_id=f"<m{i}@send.example.com>")


@pytest.fixture(autouse=True)
def rules_loaded():
    prepare(IngestConfig())  # what the commands do before the first message


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_parse_past_its_budget_is_quarantined_and_the_next_one_is_parsed():
    config = IngestConfig(parse_timeout=BUDGET)
    t0 = time.process_time()
    slow = parse_bytes(slow_bounce(), config)
    assert slow.kind == "unknown" and slow.error.startswith(REASON) and "ingest.parse_timeout" in slow.error
    assert time.process_time() - t0 < 0.5  # stopped, not run to its end
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    spin(3 * BUDGET)  # the alarm never fires outside the parse
    nxt = parse_bytes(bounce(1), config)
    assert (nxt.kind, nxt.error, [e["recipient"] for e in nxt.events]) == ("bounce", None, ["gone1@example.net"])
    assert parse_bytes(slow_bounce(), IngestConfig(parse_timeout=0)).error is None  # 0: no limit


def test_the_budget_interrupts_a_regex_that_backtracks():
    t0 = time.process_time()
    with pytest.raises(budget.OverBudget):
        budget.within(0.05, re.match, r"(?:\d+)+x", "1" * 28)  # minutes without the budget
    assert time.process_time() - t0 < 2


def test_a_swallowed_interruption_comes_again():
    def stubborn():
        try:
            spin(10)
        except BaseException:
            pass  # a library that catches everything
        spin(10)

    with pytest.raises(budget.OverBudget):
        budget.within(BUDGET, stubborn)


def test_the_timer_and_handler_that_were_there_are_put_back():
    seen = []
    previous = signal.signal(signal.SIGPROF, lambda *_: seen.append(1))
    try:
        signal.setitimer(signal.ITIMER_PROF, 30)
        assert budget.within(BUDGET, sum, [1, 2]) == 3
        assert signal.getsignal(signal.SIGPROF) is not budget._on_signal
        assert 29 < signal.getitimer(signal.ITIMER_PROF)[0] <= 31
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
    assert seen == []


def test_an_inner_call_runs_within_the_outer_budget_and_a_thread_without_one():
    with pytest.raises(budget.OverBudget):
        budget.within(BUDGET, budget.within, 60, spin, 10)
    found = []
    worker = threading.Thread(target=lambda: found.append(budget.within(BUDGET, lambda: spin(0.1) or "done")))
    worker.start()
    worker.join()
    assert found == ["done"]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_pipeline_quarantines_the_slow_message_and_stores_the_others(store, workers):
    pipeline = Pipeline(store, IngestConfig(parse_timeout=BUDGET))
    items = [(bounce(i), Envelope("file", f"{i}.eml", "", ("bounces@example.com",))) for i in range(PARALLEL_MIN + 6)]
    items.insert(3, (slow_bounce(), Envelope("file", "slow.eml")))
    outcomes = list(pipeline.ingest_many(items, workers=workers))
    slow = [o for o in outcomes if o.origin == "slow.eml"]
    assert [(o.status, o.error.startswith(REASON)) for o in slow] == [("quarantined", True)]
    others = [o for o in outcomes if o.origin != "slow.eml"]
    assert len(others) == PARALLEL_MIN + 6
    assert {(o.kind, o.status, o.events) for o in others} == {("bounce", "parsed", 1)}


@pytest.mark.parametrize("count", [2, cli.PARSE_CHUNK + 6], ids=["in-process", "workers"])
def test_postwatch_parse_says_why_and_goes_on(tmp_path, count):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(count):
        (folder / f"{i:03d}.eml").write_bytes(bounce(i))
    (folder / "001-slow.eml").write_bytes(slow_bounce())
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env["POSTWATCH_INGEST__PARSE_TIMEOUT"] = str(BUDGET)
    proc = subprocess.run([sys.executable, "-m", "postwatch.cli", "parse", "--json", str(folder)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {os.path.basename(r["file"]): r for r in map(json.loads, proc.stdout.splitlines())}
    assert len(rows) == count + 1
    slow = rows.pop("001-slow.eml")
    assert slow["error"].startswith(REASON) and slow["events"] == []
    assert {(r["kind"], r["error"], len(r["events"])) for r in rows.values()} == {("bounce", None, 1)}
