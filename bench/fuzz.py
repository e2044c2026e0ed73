#!/usr/bin/env python3
"""Hostile input: mutated real messages through the real parse path, looking for internal errors.

Input I of seed S is made by bench/fuzz_inputs.py from the shared corpus, sample_reports/ and
the test data, from the two numbers alone. Each input goes through `ingest.parse.parse_bytes`
(odd inputs as the pipeline reads them, even ones as `postwatch parse` does, without detail).

It prints the number of inputs; the internal errors (a result whose reason is the parser's
catch-all or names a Python exception, or an exception escaping parse_bytes), each distinct
cause with a count and one input that reproduces it; what flufl.bounce's detectors raised
(caught, but the detectors after the one that raised never run); the slowest input, as CPU
time of the parse per 100 KB (an input under 100 KB counts as 100 KB), and how many are over
--limit-ms; the peak RSS. Inputs are made and parsed one at a time in --jobs forked worker
processes; only the figures are kept. An input that runs past --timeout seconds of CPU is
stopped and counted as slow.

    python bench/fuzz.py SEED COUNT [--jobs N] [--json] [--save DIR] [--start I]
                         [--limit-ms 50] [--timeout 10]

`--save DIR` writes each cause's input and each slow one (`internal-S-I.eml`, `slow-S-I.eml`,
with a .txt saying why and how it was made). `--start I` begins at input I:
`bench/fuzz.py 1 1 --start 1234 --save d` makes input 1234 of seed 1 again. Exit status 1
when an internal error was found.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import os
import re
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[0] = str(ROOT)  # bench/ingest.py is a benchmark, not the package

from bench.fuzz_inputs import Generator, source_files  # noqa: E402
from ingest.config import IngestConfig  # noqa: E402
from ingest.parse import parse_bytes, prepare  # noqa: E402

UNIT = 100 * 1024  # time is given per 100 KB; a smaller input counts as 100 KB
LIMIT_MS = 50.0  # issue 17: no input slower than this per 100 KB
TASK = 50  # inputs per task handed to a worker

# A reason must describe the input; one that reads like a Python exception is a bug.
INTERNAL = re.compile(
    r"internal parser error|Traceback|Unexpected error|\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b"
    r"|\bNoneType\b|object has no attribute|bytes-like object|object is not|not subscriptable|not iterable"
    r"|indices must be|unsupported operand|invalid literal for|positional argument|unhashable type"
    r"|index out of range|can't (?:concat|convert|multiply|compare)|<class '|argument (?:of type|must be)"
    r"|must be (?:str|int|real number|a string|an integer)|\bNone\b")


class _Timeout(BaseException):
    """The parse ran past --timeout seconds of CPU (a BaseException: parse_bytes lets it through)."""


def _on_timer(signum, frame):
    raise _Timeout()


class _LastFailure(logging.Handler):
    """Keeps the last traceback logged: parse_bytes's catch-all quarantining a message, or
    flufl.bounce telling of a detector that raised."""

    exc_info = None

    def emit(self, record):
        if record.exc_info:
            self.exc_info = record.exc_info


@dataclass
class Summary:
    inputs: int = 0
    bytes: int = 0
    cpu: float = 0.0
    internal: int = 0
    detector_failures: int = 0  # inputs on which a flufl.bounce detector raised
    causes: dict = field(default_factory=dict)  # cause -> {"count", "seed", "index", "error", "where", "recipe"}
    slowest: list = field(default_factory=list)  # [ms per 100 KB, seconds, size, index, recipe(, "timed out")]
    over_limit: list = field(default_factory=list)  # the same, for inputs over the limit (the 20 worst)
    over_limit_count: int = 0
    timeouts: int = 0
    peak_rss_kb: int = 0

    def merge(self, other: Summary) -> None:
        self.inputs += other.inputs
        self.bytes += other.bytes
        self.cpu += other.cpu
        self.internal += other.internal
        self.detector_failures += other.detector_failures
        for cause, seen in other.causes.items():
            mine = self.causes.get(cause)
            if mine is None:
                self.causes[cause] = dict(seen)
            else:
                count = mine["count"] + seen["count"]
                if seen["index"] < mine["index"]:
                    mine.update(seen)
                mine["count"] = count
        self.slowest = sorted(self.slowest + other.slowest, key=lambda s: -s[0])[:5]
        self.over_limit = sorted(self.over_limit + other.over_limit, key=lambda s: -s[0])[:20]
        self.over_limit_count += other.over_limit_count
        self.timeouts += other.timeouts
        self.peak_rss_kb = max(self.peak_rss_kb, other.peak_rss_kb)

    def note(self, cause: str, seed: int, index: int, error: str, where: str | None, recipe: list[str]) -> None:
        seen = self.causes.get(cause)
        if seen is None:
            self.causes[cause] = {"count": 1, "seed": seed, "index": index, "error": error[:500], "where": where,
                                  "recipe": recipe}
        else:
            seen["count"] += 1


_STATE: dict = {}  # what a process that parses uses: set by `_prepared`, inherited by the workers


@contextlib.contextmanager
def _prepared(limit_ms: float, timeout: float, config: IngestConfig | None):
    """The generator, the configuration and the loggers' tracebacks kept here (not printed for
    every input); the loggers, the timer's signal and the collector are as they were after."""
    if "gen" not in _STATE:
        _STATE["gen"] = Generator(source_files())
    config = config or IngestConfig()
    own_timer = timeout > 0
    if timeout > 0 and "parse_timeout" in {f.name for f in dataclasses.fields(config)}:
        # parse_bytes keeps a CPU budget of its own: it is the timeout (the same timer)
        config = dataclasses.replace(config, parse_timeout=timeout)
        own_timer = False
    _STATE.update(config=config, limit_ms=limit_ms, timeout=timeout, own_timer=own_timer)
    saved = []
    for key, name in (("handler", "ingest.parse"), ("detectors", "flufl.bounce")):
        handler = _STATE[key] = _LastFailure()
        log = logging.getLogger(name)
        saved.append((log, handler, log.propagate))
        log.addHandler(handler)
        log.propagate = False
    previous = signal.signal(signal.SIGPROF, _on_timer)
    try:
        prepare(_STATE["config"])
        _warm_up()
        # what is loaded now is never scanned by the collector again: a full collection in a
        # large process (pytest's) would otherwise land in some input's time
        gc.freeze()
        yield
    finally:
        gc.unfreeze()
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        for log, handler, propagate in saved:
            log.removeHandler(handler)
            log.propagate = propagate


def _warm_up() -> None:
    """Parse every base file once, untimed: lazy imports (parsedmarc, mailparser) and first-use
    caches are paid here, before the workers are forked, not by the first input needing them."""
    gen, config = _STATE["gen"], _STATE["config"]
    for raw in gen.bases:
        for detail in (True, False):
            try:
                parse_bytes(raw, config, detail=detail)
            except Exception:  # noqa: BLE001 - counted when a fuzzed input meets it
                pass


def _where(exc_info) -> str:
    """file:line (function) of the innermost frame of the project's own code, and of the
    innermost frame when that is elsewhere (the standard library, a dependency)."""
    tb = traceback.extract_tb(exc_info[2])
    ours = [f for f in tb if f.filename.startswith(str(ROOT)) and "/.venv/" not in f.filename
            and f.name != "parse_bytes"]
    frame = (ours or tb or [None])[-1]
    if frame is None:
        return "?"
    name = os.path.relpath(frame.filename, ROOT) if frame.filename.startswith(str(ROOT)) else frame.filename
    place = f"{name}:{frame.lineno} ({frame.name})"
    last = tb[-1]
    if last is not frame:
        place += f" -> {last.filename.split('site-packages/')[-1]}:{last.lineno} ({last.name})"
    return place


def _cause(error: str) -> str:
    """A reason with what varies from input to input taken out."""
    text = re.sub(r"\d+", "N", error)
    return re.sub(r"'[^']{12,}'", "'…'", text)[:200]


def parse_one(seed: int, index: int, summary: Summary) -> None:
    """Make input `index` of `seed`, parse it, and count what happened in `summary`."""
    gen, config, timeout, own_timer = _STATE["gen"], _STATE["config"], _STATE["timeout"], _STATE["own_timer"]
    raw, recipe = gen.make(seed, index)
    handler, detectors = _STATE["handler"], _STATE["detectors"]
    handler.exc_info = detectors.exc_info = None
    error, where, timed_out = None, None, False
    if own_timer:
        signal.setitimer(signal.ITIMER_PROF, timeout)
    start = time.process_time()
    try:
        error = parse_bytes(raw, config, detail=bool(index % 2)).error
    except _Timeout:
        timed_out = True
    except Exception as exc:  # noqa: BLE001 - an escape is what is looked for
        error = f"escaped parse_bytes: {type(exc).__name__}: {exc}"
        where = _where(sys.exc_info())
    finally:
        spent = time.process_time() - start
        if own_timer:
            signal.setitimer(signal.ITIMER_PROF, 0)
    timed_out = timed_out or bool(timeout and spent >= timeout)
    summary.inputs += 1
    summary.bytes += len(raw)
    summary.cpu += spent
    if error and INTERNAL.search(error):
        summary.internal += 1
        if where is None and handler.exc_info is not None:
            where = _where(handler.exc_info)
        summary.note(f"{_cause(error)} at {where}" if where else _cause(error), seed, index, error, where, recipe)
    if detectors.exc_info is not None:
        summary.detector_failures += 1
        exc = detectors.exc_info[1]
        where = _where(detectors.exc_info)
        summary.note(f"flufl.bounce detector raised {type(exc).__name__}: {_cause(str(exc))} at {where}",
                     seed, index, f"{type(exc).__name__}: {exc}", where, recipe)
    per_unit = spent * 1000 * UNIT / max(len(raw), UNIT)
    entry = [round(per_unit, 2), round(spent, 4), len(raw), index, recipe]
    if timed_out:
        summary.timeouts += 1
        entry.append("timed out")
    if len(summary.slowest) < 5 or per_unit > summary.slowest[-1][0]:
        summary.slowest = sorted(summary.slowest + [entry], key=lambda s: -s[0])[:5]
    if per_unit > _STATE["limit_ms"] or timed_out:
        summary.over_limit_count += 1
        summary.over_limit = sorted(summary.over_limit + [entry], key=lambda s: -s[0])[:20]


def _run_task(task: tuple[int, int, int]) -> Summary:
    seed, start, stop = task
    summary = Summary()
    for index in range(start, stop):
        parse_one(seed, index, summary)
    summary.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return summary


def run(seed: int, count: int, start: int = 0, jobs: int = 1, limit_ms: float = LIMIT_MS,
        timeout: float = 10.0, config: IngestConfig | None = None, progress=None) -> Summary:
    """Parse inputs start .. start+count-1 of `seed` on `jobs` processes; the merged figures."""
    tasks = ((seed, i, min(i + TASK, start + count)) for i in range(start, start + count, TASK))
    total = Summary()
    with _prepared(limit_ms, timeout, config):
        if jobs <= 1:
            for task in tasks:
                total.merge(_run_task(task))
                if progress:
                    progress(total)
        else:
            import multiprocessing

            # the base files, the rules and the parsers loaded above are shared by the forks;
            # a worker is replaced now and then, so that no cache grows without end
            with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=200) as pool:
                for part in pool.imap_unordered(_run_task, tasks):
                    total.merge(part)
                    if progress:
                        progress(total)
    total.peak_rss_kb = max(total.peak_rss_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return total


def save(seed: int, total: Summary, folder: Path) -> list[Path]:
    """Write each cause's input and each slow input to `folder`, with a .txt saying why."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = _STATE["gen"]
    wanted = [("internal", c["index"], f"{cause}\n{c['error']}\n") for cause, c in total.causes.items()]
    wanted += [("slow", s[3], f"{s[0]} ms per 100 KB: {s[1]} s of CPU for {s[2]} bytes"
                + (", timed out" if len(s) > 5 else "") + "\n") for s in total.over_limit]
    written = []
    for what, index, why in wanted:
        raw, recipe = gen.make(seed, index)
        path = folder / f"{what}-{seed}-{index}.eml"
        path.write_bytes(raw)
        path.with_suffix(".txt").write_text(f"bench/fuzz.py {seed} 1 --start {index}\n{why}"
                                            f"made from: {'; '.join(recipe)}\n")
        written.append(path)
    return written


def report(seed: int, total: Summary, wall: float, jobs: int, limit_ms: float) -> dict:
    def slow(s):
        return {"ms_per_100kb": s[0], "seconds": s[1], "bytes": s[2], "index": s[3], "shape": s[4],
                "timed_out": len(s) > 5}

    return {
        "seed": seed, "inputs": total.inputs, "bytes": total.bytes, "jobs": jobs, "wall_s": round(wall, 1),
        "cpu_s": round(total.cpu, 1), "internal_errors": total.internal,
        "detector_failures": total.detector_failures,
        "causes": [{"cause": cause, **c} for cause, c in sorted(total.causes.items(), key=lambda kv: -kv[1]["count"])],
        "slowest": slow(total.slowest[0]) if total.slowest else None,
        "limit_ms_per_100kb": limit_ms, "over_limit": total.over_limit_count, "timeouts": total.timeouts,
        "slow_inputs": [slow(s) for s in total.over_limit],
        "peak_rss_mb": round(total.peak_rss_kb / 1024, 1),
    }


def print_human(r: dict, out=sys.stdout) -> None:
    out.write(f"inputs: {r['inputs']:,} ({r['bytes'] / 1048576:,.0f} MB), seed {r['seed']}, {r['jobs']} jobs, "
              f"{r['wall_s']} s wall, {r['cpu_s']} s CPU parsing\n")
    out.write(f"internal errors: {r['internal_errors']}\n")
    out.write(f"flufl.bounce detectors that raised: {r['detector_failures']}\n")
    for c in r["causes"]:
        out.write(f"  {c['count']} x {c['cause']}\n      bench/fuzz.py {c['seed']} 1 --start {c['index']}"
                  f"  ({'; '.join(c['recipe'])})\n")
    s = r["slowest"]
    if s:
        out.write(f"slowest: {s['ms_per_100kb']} ms per 100 KB ({s['seconds']} s CPU for {s['bytes']:,} bytes"
                  f"{', timed out' if s['timed_out'] else ''}): bench/fuzz.py {r['seed']} 1 --start {s['index']}"
                  f"  ({'; '.join(s['shape'])})\n")
    out.write(f"over {r['limit_ms_per_100kb']:g} ms per 100 KB: {r['over_limit']}"
              + (f" ({r['timeouts']} timed out)" if r["timeouts"] else "") + "\n")
    out.write(f"peak RSS: {r['peak_rss_mb']} MB\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("seed", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--start", type=int, default=0, help="the first input's index (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--save", type=Path, help="write each internal error's input (and the slow ones) here")
    p.add_argument("--limit-ms", type=float, default=LIMIT_MS, help="slow: CPU ms per 100 KB above this")
    p.add_argument("--timeout", type=float, default=10.0, help="CPU seconds an input may take (0: no limit)")
    args = p.parse_args(argv)
    began = time.monotonic()
    last = [began]

    def progress(total: Summary) -> None:
        now = time.monotonic()
        if now - last[0] >= 60:
            last[0] = now
            print(f"fuzz: {total.inputs:,}/{args.count:,} inputs, {total.internal} internal errors, "
                  f"{total.over_limit_count} slow, {now - began:.0f} s", file=sys.stderr, flush=True)

    total = run(args.seed, args.count, args.start, args.jobs, args.limit_ms, args.timeout, progress=progress)
    r = report(args.seed, total, time.monotonic() - began, args.jobs, args.limit_ms)
    if args.save:
        for path in save(args.seed, total, args.save):
            print(f"saved {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(r))
    else:
        print_human(r)
    return 1 if total.internal else 0


if __name__ == "__main__":
    sys.exit(main())
