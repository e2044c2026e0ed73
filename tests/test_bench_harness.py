"""`make bench`'s harness: bench/run_all.py gathers the BENCH lines into one table.

Nothing here is timed: the figures of a quick run are only checked to be there.
"""
from __future__ import annotations

import re
import subprocess
import sys

from bench import run_all
from bench.run_all import Run
from tests.conftest import ROOT


def line(bench, backend, metric, value, unit="msg/s", goal="", met=None, detail=""):
    return {"bench": bench, "backend": backend, "metric": metric, "value": value, "unit": unit, "goal": goal,
            "met": met, "detail": detail}


def test_table_puts_each_figure_beside_its_goal_per_back_end():
    runs = [
        Run("ingest", "sqlite", 0, [line("ingest", "sqlite", "cost", 2.4, "×", "≤ 3×", True),
                                    line("ingest", "sqlite", "rate", 1468)]),
        Run("ingest", "postgresql", 0, [line("ingest", "postgresql", "cost", 3.5, "×", "≤ 3×", False),
                                        line("ingest", "postgresql", "rate", 900)]),
        Run("classify", "-", 0, [line("classify", "-", "÷ Sisimai", 1.63, "×", "≥ 2×", False)]),
        Run("smtp_intake", "-", 0, [line("smtp_intake", "-", "÷ Postfix", None, "×", "≥ 2×", None,
                                         "Postfix needs root")]),
    ]
    rows, notes = run_all.table(runs)
    assert rows == [
        ["ingest", "cost", "2.40×", "3.50×", "≤ 3×", "no on PostgreSQL"],
        ["ingest", "rate", "1,468 msg/s", "900 msg/s", "-", "-"],
        ["classify", "÷ Sisimai", "1.63×", "same, no store", "≥ 2×", "no"],
        ["smtp_intake", "÷ Postfix", "n/a", "same, no store", "≥ 2×", "-"],
    ]
    assert notes == ["smtp_intake / ÷ Postfix: n/a (Postfix needs root)"]
    text = run_all.render(rows, notes)
    assert text.splitlines()[0].split("|")[1:-1] == [" benchmark   ", " figure    ", "      SQLite ",
                                                      "     PostgreSQL ", " goal ", " met              "]


def test_a_failed_run_shows_failed_in_its_cells():
    runs = [
        Run("analysis", "sqlite", 0, [line("analysis", "sqlite", "incremental ÷ full", 1.2, "%", "≤ 5%", True)]),
        Run("analysis", "postgresql", 1, [], why="exit 1: Traceback"),
        Run("dmarc", "sqlite", None, why="bench/dmarc.py is missing"),
    ]
    rows, notes = run_all.table(runs)
    assert rows == [["analysis", "incremental ÷ full", "1.20%", "FAILED", "≤ 5%", "FAILED"],
                    ["dmarc", "(no figures)", "FAILED", "", "-", "FAILED"]]
    assert notes == ["analysis on PostgreSQL: FAILED (exit 1: Traceback)",
                     "dmarc on SQLite: FAILED (bench/dmarc.py is missing)"]


def test_run_gathers_the_bench_lines_and_the_exit_status(capsys):
    script = ("from bench.benchlib import report; print('measuring'); "
              "report('x', 'sqlite', 'rate', 12.5, 'msg/s', '', None); print('it broke'); raise SystemExit(3)")
    result = run_all.run("x", "sqlite", [sys.executable, "-c", script], {"PYTHONPATH": str(ROOT)})
    assert result.rc == 3 and result.failed
    assert [x["value"] for x in result.lines] == [12.5]
    assert result.why == "exit 3: it broke"
    assert "measuring" in capsys.readouterr().out  # the child's output is shown as it runs


def test_quick_run_prints_one_table_with_the_figures(postgres_server):
    """run_all --quick on the suppression benchmark: a row per figure, a number per back end."""
    env = {"PATH": "/usr/bin:/bin"}
    args = ["--quick", "suppression"]
    if postgres_server is None:
        args += ["--backend", "sqlite"]
    else:
        env["BENCH_POSTGRES_URL"] = postgres_server.url.render_as_string(hide_password=False)
    proc = subprocess.run([sys.executable, "bench/run_all.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = proc.stdout.split("=== make bench")[1]
    rows = {cells[1]: cells for cells in ([c.strip() for c in row.split("|")[1:-1]]
                                         for row in table.splitlines() if row.startswith("| suppression"))}
    assert set(rows) == {"checks per second", "index memory", "index load from the store"}
    number = re.compile(r"^[\d,.]+ (checks/s|MB|s)$")
    for metric, (_, _, sqlite, postgresql, goal, met) in rows.items():
        if postgres_server is None:
            assert number.match(sqlite) and postgresql == "", (metric, sqlite, postgresql)
        else:
            assert number.match(sqlite) and number.match(postgresql), (metric, sqlite, postgresql)
    assert rows["checks per second"][4] == "≥ 500,000/s" and rows["index memory"][4] == "≤ 150 MB"
    assert rows["index memory"][5] == "yes"  # 20,000 addresses take a few MB
