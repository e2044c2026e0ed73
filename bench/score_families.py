#!/usr/bin/env python3
"""Corpus scores per MTA/provider family, worst first, and the misses per deciding rule.

score_corpus.py gives one figure per metric over the whole corpus, where a family that only
passes through rules fitted to its own files hides among the others. This runs the same parse
command over the same manifest, scores each row as score_corpus.py does (same metrics, same
multiset matching, extra events counted as misses) and prints:

- one row per family (the file name without its number and `lhost-`/`rhost-`:
  `lhost-postfix-03.eml` -> postfix, `rfc3464-04.eml` -> rfc3464, flufl `yale_01.txt` -> yale),
  with reason, hard, status, found (Sisimai bounces), recipients (flufl bounces: every expected
  address found) and complaint (ARF: kind and feedback type), worst first by its lowest figure;
- the wrong bounce events grouped by the rule that decided them (the name in the event's
  `rule` before `#`), most wrong first.

DMARC/TLS reports and auto-replies are whole-format checks with no family; score_corpus.py
scores them.

    python bench/score_families.py [--corpus ../shared/corpus] [--cmd "postwatch parse --json"]
                                   [--json] [--show N]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("reason", "hard", "status", "found", "recipients", "complaint")
HEADERS = ("reason %", "hard %", "status %", "found %", "recips %", "complaint %")
CHUNK = 200


def default_cmd() -> str:
    exe = ROOT / ".venv" / "bin" / "postwatch"
    if exe.exists():
        return f"{shlex.quote(str(exe))} parse --json"
    return f"{shlex.quote(sys.executable)} -m postwatch.cli parse --json"


def family(name: str) -> str:
    """`sisimai/lhost-postfix-03.eml` -> `postfix`; `flufl/simple_12.txt` -> `simple`."""
    stem = re.sub(r"[-_]\d+$", "", Path(name).stem)
    return re.sub(r"^[lr]host-", "", stem).lower()


def rule_name(event: dict) -> str:
    """`rules.toml:userunknown#3 /user unknown/` -> `rules.toml:userunknown`."""
    rule = str(event.get("rule") or "").split("#", 1)[0].strip()
    return rule or "(no rule)"


def multiset_hits(got, want) -> int:
    """How many of `want` are matched by `got`, counting duplicates (score_corpus.py's)."""
    g = collections.Counter(got)
    return sum(min(n, g.get(w, 0)) for w, n in collections.Counter(want).items())


@dataclass
class Family:
    name: str
    files: int = 0
    tally: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(lambda: [0, 0]))
    missed: list[str] = field(default_factory=list)  # one line per file with a miss

    def score(self, metric: str, hits: int, total: int) -> None:
        self.tally[metric][0] += hits
        self.tally[metric][1] += total

    def fraction(self, metric: str) -> float | None:
        hits, total = self.tally.get(metric, (0, 0))
        return hits / total if total else None

    def lowest(self) -> float:
        figures = [f for f in (self.fraction(m) for m in METRICS) if f is not None]
        return min(figures) if figures else 1.0


@dataclass
class Rule:
    name: str
    events: int = 0
    wrong: int = 0
    families: collections.Counter = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)


@dataclass
class Scores:
    families: list[Family]  # worst first
    rules: list[Rule]  # most wrong first; every rule that decided a scored bounce event
    totals: dict[str, list[int]]


def _bounce(fam: Family, rules: dict[str, Rule], name: str, want: list[dict], events: list[dict]) -> bool:
    """Score one Sisimai bounce row; True when every metric hit."""
    extra = max(0, len(events) - len(want))
    ok = True
    for metric, key in (("reason", "reason"), ("hard", "hard_bounce"), ("status", "status")):
        w = [x[key] for x in want if x[key] not in (None, "")]
        if not w:
            continue
        hits = multiset_hits([e.get(key) for e in events], w)
        fam.score(metric, hits, len(w) + extra)
        ok = ok and hits == len(w) + extra
    found = any(e.get("recipient") for e in events)
    fam.score("found", int(found), 1)
    # each event's reason is right while an expected row still needs it; the rest are wrong
    need = collections.Counter(x["reason"] for x in want)
    for ev in events:
        rule = rules.setdefault(rule_name(ev), Rule(rule_name(ev)))
        rule.events += 1
        if need[ev.get("reason")] > 0:
            need[ev.get("reason")] -= 1
            continue
        rule.wrong += 1
        rule.families[fam.name] += 1
        rule.examples.append(f"{name}: {ev.get('reason')}, want {sorted(x['reason'] for x in want)}")
    return ok and found


def score(manifest: list[dict], results: dict[str, dict]) -> Scores:
    """Per-family and per-rule scores. `results` maps a manifest `file` to its parse output."""
    fams: dict[str, Family] = {}
    rules: dict[str, Rule] = {}
    for case in manifest:
        name, kind = case["file"], case["kind"]
        if "expect_recipients" not in case and kind not in ("bounce", "complaint", "arf"):
            continue
        fam = fams.setdefault(family(name), Family(family(name)))
        fam.files += 1
        r = results.get(name)
        if r is None:
            fam.missed.append(f"{name}: no answer")
            continue
        events = r.get("events") or []
        if "expect_recipients" in case:  # flufl.bounce corpus: which addresses bounced
            want = {x.lower() for x in case["expect_recipients"]}
            got = {str(e.get("recipient") or "").lower() for e in events}
            if want:
                fam.score("recipients", int(want <= got), 1)
                if not want <= got:
                    fam.missed.append(f"{name}: want {sorted(want)} got {sorted(got)}")
        elif kind == "bounce":
            if not _bounce(fam, rules, name, case["expect"], events):
                got = [(e.get("reason"), e.get("hard_bounce"), e.get("status")) for e in events]
                want = [(x["reason"], x["hard_bounce"], x["status"]) for x in case["expect"]]
                fam.missed.append(f"{name}: want {want} got {got}")
        else:
            w = [x["feedback_type"] for x in case["expect"]]
            g = [e.get("feedback_type") for e in events] if r.get("kind") == "complaint" else []
            if set(w) == {"auth-failure"} and r.get("kind") == "dmarc_failure":
                g = [(r.get("report") or {}).get("feedback_type")] * len(w)  # RFC 6591: a DMARC failure report
            total = len(w) + max(0, len(events) - len(w))
            hits = multiset_hits(g, w)
            fam.score("complaint", hits, total)
            if hits < total:
                fam.missed.append(f"{name}: want complaint {w} got {r.get('kind')} {g}")
    totals: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for fam in fams.values():
        for metric, (hits, total) in fam.tally.items():
            totals[metric][0] += hits
            totals[metric][1] += total
    ordered = sorted(fams.values(), key=lambda f: (f.lowest(), -len(f.missed), f.name))
    ranked = sorted(rules.values(), key=lambda r: (-r.wrong, -r.wrong / r.events, r.name))
    return Scores(ordered, ranked, dict(totals))


def run(cmd: str, corpus: Path, manifest: list[dict], timeout: int) -> dict[str, dict]:
    """The parse command's output per manifest file, CHUNK paths per run."""
    by_path = {os.path.realpath(corpus / c["file"]): c["file"] for c in manifest}
    paths = [str(corpus / c["file"]) for c in manifest]
    out: dict[str, dict] = {}
    for i in range(0, len(paths), CHUNK):
        chunk = paths[i:i + CHUNK]
        try:
            proc = subprocess.run(shlex.split(cmd) + chunk, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            sys.exit(f"parse command not found: {cmd}")
        except subprocess.TimeoutExpired:
            sys.exit(f"parse command ran past {timeout}s on {len(chunk)} files")
        if proc.returncode != 0 and not proc.stdout:
            sys.exit(f"parse command failed ({proc.returncode}): {proc.stderr[-2000:]}")
        for line in proc.stdout.splitlines():
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            name = by_path.get(os.path.realpath(str(obj.get("file", ""))))
            if name is not None:
                out[name] = obj
    return out


def _pct(hits_total) -> str:
    hits, total = hits_total
    return f"{100 * hits / total:.1f}" if total else "-"


def render(scores: Scores, show: int = 0) -> str:
    widths = [max(len("family"), *(len(f.name) for f in scores.families), len("all")), 5,
              *(len(h) for h in HEADERS), 6]
    head = ["family", "files", *HEADERS, "misses"]
    fmt = ["<"] + [">"] * (len(head) - 1)

    def row(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, fmt, widths)).rstrip()

    lines = ["Scores per family, worst first (lowest figure):", row(head)]
    for f in scores.families:
        lines.append(row([f.name, f.files, *(_pct(f.tally.get(m, (0, 0))) for m in METRICS), len(f.missed)]))
    lines.append(row(["all", sum(f.files for f in scores.families),
                      *(_pct(scores.totals.get(m, (0, 0))) for m in METRICS),
                      sum(len(f.missed) for f in scores.families)]))
    wrong = [r for r in scores.rules if r.wrong]
    right = [r for r in scores.rules if not r.wrong]
    lines += ["", "Wrong bounce reasons by the rule that decided them:"]
    if wrong:
        width = max(len("rule"), *(len(r.name) for r in wrong))
        lines.append(f"{'rule':<{width}}  events  wrong  wrong %  families")
        for r in wrong:
            fams = ", ".join(f"{n} {c}" for n, c in r.families.most_common(4))
            lines.append(f"{r.name:<{width}}  {r.events:>6}  {r.wrong:>5}  {100 * r.wrong / r.events:>7.1f}  {fams}")
    else:
        lines.append("(none)")
    lines.append(f"{len(right)} other rules decided {sum(r.events for r in right)} events, none wrong.")
    if show:
        for f in scores.families:
            if f.missed:
                lines += ["", f"-- {f.name}: {len(f.missed)} of {f.files} files missed"]
                lines += [f"   {m[:300]}" for m in f.missed[:show]]
    return "\n".join(lines)


def as_json(scores: Scores) -> dict:
    def counts(tally):
        return {m: f"{h}/{t}" for m, (h, t) in tally.items() if t}

    def fractions(tally):
        return {m: h / t for m, (h, t) in tally.items() if t}

    return {
        "families": [{"family": f.name, "files": f.files, "scores": fractions(f.tally),
                      "counts": counts(f.tally), "misses": len(f.missed), "missed": f.missed}
                     for f in scores.families],
        "rules": [{"rule": r.name, "events": r.events, "wrong": r.wrong, "families": dict(r.families),
                   "examples": r.examples} for r in scores.rules],
        "totals": {"scores": fractions(scores.totals), "counts": counts(scores.totals)},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus",
                    help="a folder with manifest.json and its files (default: ../shared/corpus)")
    ap.add_argument("--cmd", default=None, help="the parse command (default: the venv's postwatch parse --json)")
    ap.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    ap.add_argument("--show", type=int, default=0, help="list up to N missed files of each family")
    ap.add_argument("--timeout", type=int, default=600, help="seconds allowed per 200 files")
    a = ap.parse_args(argv)
    manifest_path = a.corpus / "manifest.json"
    if not manifest_path.is_file():
        sys.exit(f"no manifest.json in {a.corpus}: give the corpus folder with --corpus DIR")
    manifest = json.loads(manifest_path.read_text())
    scores = score(manifest, run(a.cmd or default_cmd(), a.corpus, manifest, a.timeout))
    print(json.dumps(as_json(scores)) if a.json else render(scores, a.show))


if __name__ == "__main__":
    main()
