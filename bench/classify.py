#!/usr/bin/env python3
"""Classification cost: `postwatch parse --json` against Sisimai, whole process, same files.

Copies every bounce and complaint (ARF) file of the shared corpus's manifest into a temporary
folder, repeated to --count files, then times, in the same run and on the same files:
- `postwatch parse --json FOLDER` as one command (start-up included; it may use every core);
- when Debian's libsisimai-perl is installed, one Perl process running `Sisimai->make` on
  each of the files.
Each side's wall time and CPU time (user + sys of its whole process tree, workers included)
are measured; with --rounds, the two run in turn and each keeps its best round. Goals:
postwatch's rate at least 2x Sisimai's, and its CPU per message at most 0.5x Sisimai's.

    python bench/classify.py [--corpus ../shared/corpus] [--count 2950] [--rounds 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench import benchlib  # noqa: E402

GOAL_RATE = 2.0  # postwatch files/s ÷ Sisimai files/s, at least
GOAL_CPU = 0.5  # postwatch CPU per message ÷ Sisimai's, at most
KINDS = ("bounce", "complaint", "arf")

SISIMAI = r"""
use strict; use warnings; use Sisimai;
my ($n, $r) = (0, 0);
for my $f (@ARGV) {
    my $v = Sisimai->make($f, 'delivered' => 1) || [];
    $n++; $r += scalar @$v;
}
print "$n files, $r records\n";
"""


def postwatch_command() -> list[str]:
    exe = Path(sys.executable).with_name("postwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "postwatch.cli"]


def make_files(corpus: Path, folder: Path, count: int) -> list[str]:
    manifest = json.loads((corpus / "manifest.json").read_text())
    base = [corpus / c["file"] for c in manifest if c["kind"] in KINDS]
    if not base:
        raise SystemExit(f"{corpus / 'manifest.json'} names no file of kind {', '.join(KINDS)}")
    paths = []
    i = 0
    while len(paths) < count:
        for src in base:
            dst = folder / f"{i:05d}-{src.name}"
            shutil.copyfile(src, dst)
            paths.append(str(dst))
            i += 1
            if len(paths) >= count:
                break
    return paths


def time_cmd(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the command's whole process tree, its output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-1000:]}")
    # Workers count once they are waited for, which every command here does before it exits.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return secs, cpu, proc.stdout


def have_sisimai() -> bool:
    return shutil.which("perl") is not None and subprocess.run(
        ["perl", "-MSisimai", "-e", "1"], capture_output=True).returncode == 0


def side(files: int, wall: float, cpu: float) -> dict:
    return {"wall_s": round(wall, 3), "files_per_s": round(files / wall), "cpu_s": round(cpu, 3),
            "cpu_ms_per_message": round(1000 * cpu / files, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--count", type=int, default=2950)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each side; the best is kept (default 3)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sisimai = have_sisimai()
    pw_runs, si_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        paths = make_files(a.corpus, folder, a.count)
        script = Path(tmp) / "sisimai.pl"
        script.write_text(SISIMAI)
        si_out = ""
        for _ in range(max(1, a.rounds)):
            wall, cpu, out = time_cmd(postwatch_command() + ["parse", "--json", str(folder)])
            pw_runs.append((wall, cpu))
            if sisimai:
                wall, cpu, si_out = time_cmd(["perl", str(script)] + paths)
                si_runs.append((wall, cpu))
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    n = len(paths)
    result = {"files": n, "rounds": len(pw_runs), "postwatch_events": sum(len(x["events"]) for x in lines),
              "postwatch": side(n, min(w for w, _ in pw_runs), min(c for _, c in pw_runs)),
              "goal_rate_ratio": GOAL_RATE, "goal_cpu_ratio": GOAL_CPU}
    if si_runs:
        result["sisimai"] = side(n, min(w for w, _ in si_runs), min(c for _, c in si_runs))
        result["sisimai_summary"] = si_out.strip()
        result["rate_ratio"] = round(result["sisimai"]["wall_s"] / result["postwatch"]["wall_s"], 2)
        result["cpu_ratio"] = round(result["postwatch"]["cpu_s"] / result["sisimai"]["cpu_s"], 2)
    else:
        result.update(sisimai=None, rate_ratio=None, cpu_ratio=None,
                      sisimai_summary="Sisimai not installed (apt-get install libsisimai-perl)")
    pw, si = result["postwatch"], result["sisimai"]
    if a.json:
        print(json.dumps(result))
    else:
        print(f"files                {n}  (corpus bounces and complaints, repeated; best of {len(pw_runs)} rounds)")
        print(f"postwatch parse      {pw['files_per_s']:6} files/s  {pw['wall_s']:6.2f} s wall  "
              f"{pw['cpu_s']:6.2f} s CPU  {pw['cpu_ms_per_message']:.3f} ms CPU/message  "
              f"({result['postwatch_events']} events; start-up and workers included)")
        if si:
            print(f"Sisimai->make        {si['files_per_s']:6} files/s  {si['wall_s']:6.2f} s wall  "
                  f"{si['cpu_s']:6.2f} s CPU  {si['cpu_ms_per_message']:.3f} ms CPU/message  "
                  f"({result['sisimai_summary']})")
            print(f"rate ratio           {result['rate_ratio']:6}x  postwatch ÷ Sisimai (goal: at least {GOAL_RATE:g}x)")
            print(f"CPU ratio            {result['cpu_ratio']:6}x  postwatch ÷ Sisimai, per message "
                  f"(goal: at most {GOAL_CPU:g}x)")
        else:
            print(f"Sisimai              {result['sisimai_summary']}")
    rate, cpu = result["rate_ratio"], result["cpu_ratio"]
    detail = f"{n} files" if si else result["sisimai_summary"]
    benchlib.report("classify", "-", "postwatch parse ÷ Sisimai", rate, "×", f"≥ {GOAL_RATE:g}×",
                    None if rate is None else rate >= GOAL_RATE, detail)
    benchlib.report("classify", "-", "CPU per message ÷ Sisimai", cpu, "×", f"≤ {GOAL_CPU:g}×",
                    None if cpu is None else cpu <= GOAL_CPU, detail)
    benchlib.report("classify", "-", "postwatch parse rate", pw["files_per_s"], "files/s", "", None,
                    f"Sisimai {si['files_per_s']} files/s" if si else "")
    benchlib.report("classify", "-", "postwatch CPU per message", pw["cpu_ms_per_message"], "ms", "", None,
                    f"Sisimai {si['cpu_ms_per_message']} ms" if si else "")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
