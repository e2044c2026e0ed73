#!/usr/bin/env python3
"""Classification rate: `postwatch parse --json` against Sisimai, whole process, same files.

Copies the shared corpus's bounces (Sisimai and flufl sets) into a temporary folder, repeated
to about --count files, then times, in the same run:
- `postwatch parse --json FOLDER` as one process (start-up included; it may use both cores);
- when Debian's libsisimai-perl is installed, one Perl process running `Sisimai->make` on
  each of the same files.
Prints both rates and the ratio (goal: postwatch at least 2x Sisimai).

    python bench/classify.py [--corpus ../shared/corpus] [--count 3000] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench import benchlib  # noqa: E402

GOAL_RATIO = 2.0

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
    base = [corpus / c["file"] for c in manifest if c["kind"] == "bounce"]
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


def time_cmd(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-1000:]}")
    return secs, proc.stdout


def have_sisimai() -> bool:
    return shutil.which("perl") is not None and subprocess.run(
        ["perl", "-MSisimai", "-e", "1"], capture_output=True).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_files(a.corpus, folder, a.count)
        pw_secs, out = time_cmd(postwatch_command() + ["parse", "--json", str(folder)])
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        pw_events = sum(len(x["events"]) for x in lines)
        result = {"files": len(paths), "postwatch_files_per_s": round(len(paths) / pw_secs),
                  "postwatch_events": pw_events, "goal_ratio": GOAL_RATIO}
        if have_sisimai():
            script = folder / "sisimai.pl"
            script.write_text(SISIMAI)
            si_secs, si_out = time_cmd(["perl", str(script)] + paths)
            result.update(sisimai_files_per_s=round(len(paths) / si_secs), sisimai_summary=si_out.strip(),
                          ratio=round(si_secs / pw_secs, 2))
        else:
            result.update(sisimai_files_per_s=None, ratio=None,
                          sisimai_summary="Sisimai not installed (apt-get install libsisimai-perl)")
    if a.json:
        print(json.dumps(result))
    else:
        print(f"files                {result['files']}  (corpus bounces, repeated)")
        print(f"postwatch parse      {result['postwatch_files_per_s']:6} files/s  ({pw_events} events; one process, "
              "start-up included)")
        if result["sisimai_files_per_s"]:
            print(f"Sisimai->make        {result['sisimai_files_per_s']:6} files/s  ({result['sisimai_summary']})")
            print(f"ratio                {result['ratio']:6}x  (goal: at least {GOAL_RATIO}x)")
        else:
            print(f"Sisimai              {result['sisimai_summary']}")
    ratio = result["ratio"]
    benchlib.report("classify", "-", "postwatch parse ÷ Sisimai", ratio, "×", f"≥ {GOAL_RATIO:g}×",
                    None if ratio is None else ratio >= GOAL_RATIO,
                    f"{result['files']} files" if ratio is not None else result["sisimai_summary"])
    benchlib.report("classify", "-", "postwatch parse rate", result["postwatch_files_per_s"], "files/s", "", None,
                    f"Sisimai {result['sisimai_files_per_s']} files/s" if ratio is not None else "")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
