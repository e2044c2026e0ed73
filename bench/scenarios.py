#!/usr/bin/env python3
"""The demo's stories as the analyst sees them: attribution, detection delay, false alarms.

Plays each story (postwatch/demo/stories.py: the demo's own and a second sender) through the
real pipeline into a temporary SQLite store, day by day, and prints, per story:

- the share of bounces and of complaints attributed to a sending IP;
- each episode's detection delay: the day the first of its expected alerts opened
  (postwatch/demo/review.py: the rule, dimension and key an analyst looks under) minus the
  episode's first day, and each expected alert's own delay; "missed" when none opened by the
  day after the episode's end;
- the critical alerts that opened on a day without an episode (a day after an episode's
  end counts as the episode's: its reports arrive then), counted and listed; and, listed
  apart, those that opened on such a day after.

The plays are tests/test_demo_scenarios.py's (60 days each); --seed plays others (repeatable).

    python bench/scenarios.py [--story default|second ...] [--seed N ...] [--days N] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from postwatch.demo import review  # noqa: E402
from postwatch.demo.runner import run_demo  # noqa: E402


def play(p: review.Play) -> dict:
    from postwatch.config import load
    from store.engine import forget_engine, session_factory, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scenario.db"
        config = load(environ={"POSTWATCH_DATABASE__URL": url, "POSTWATCH_PROVIDERS__MX_LOOKUPS": "false"})
        upgrade(config.database)
        sessions = session_factory(config.database)
        started = time.perf_counter()
        result = run_demo(sessions, config, days=p.days, seed=p.seed, end=p.end, story=p.story)
        seconds = time.perf_counter() - started
        with sessions() as s:
            shares = review.attributed_share(s)
            found = review.detections(s, p.story, result.episodes)
            false_alarms = [_alert(a) for a in review.false_criticals(s, result.episodes)]
            late = [_alert(a) for a in review.late_criticals(s, result.episodes)]
        forget_engine(url)
    episodes = {}
    for name, (first, last) in result.episodes.items():
        mine = [d for d in found if d.expected.episode == name]
        delays = [d.delay for d in mine if d.delay is not None]
        episodes[name] = {"first": first.isoformat(), "last": last.isoformat(),
                          "delay": min(delays) if delays else None,
                          "alerts": [{"expected": str(d.expected), "delay": d.delay, "severity": d.severity}
                                     for d in mine]}
    return {"story": p.story.name, "days": p.days, "end": p.end.isoformat(), "seed": p.seed,
            "seconds": round(seconds, 1), "failed_jobs": result.failed_jobs,
            "attributed": {k: {"known": known, "total": total} for k, (known, total) in shares.items()},
            "episodes": episodes, "false_criticals": false_alarms, "criticals_the_day_after": late,
            "describe": p.story.describe()}


def _alert(a) -> dict:
    return {"day": review.opened_day(a).isoformat(), "rule": a.rule, "dimension": a.dimension, "key": a.key,
            "message": a.message}


def show(r: dict) -> None:
    print(f"== {r['story']}: {r['days']} days to {r['end']}, seed {r['seed']} ({r['seconds']} s)")
    for job in r["failed_jobs"]:
        print(f"   job failed: {job}")
    for name, a in r["attributed"].items():
        share = a["known"] / a["total"] if a["total"] else 0.0
        print(f"   {name} on a sending IP: {a['known']} of {a['total']} ({share:.1%})")
    print("   detection delay (days from the episode's first day to its first alert):")
    for name, e in r["episodes"].items():
        delay = "missed" if e["delay"] is None else e["delay"]
        missed = sum(a["delay"] is None for a in e["alerts"])
        partly = f", {missed} of {len(e['alerts'])} expected alerts missed" if missed and e["delay"] is not None else ""
        print(f"     {name:<10} {e['first']}..{e['last']}  {delay}{partly}   ({r['describe'][name]})")
        for a in e["alerts"]:
            got = "missed" if a["delay"] is None else f"{a['delay']} ({a['severity']})"
            print(f"         {a['expected']}: {got}")
    print(f"   critical alerts on days without an episode: {len(r['false_criticals'])}")
    for a in r["false_criticals"]:
        print(f"     {a['day']} {a['rule']} {a['dimension']} {a['key']}: {a['message']}")
    print(f"   critical alerts opened the day after an episode's end: {len(r['criticals_the_day_after'])}")
    for a in r["criticals_the_day_after"]:
        print(f"     {a['day']} {a['rule']} {a['dimension']} {a['key']}: {a['message']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--story", action="append", choices=sorted(review.PLAYS), help="default: every story")
    parser.add_argument("--seed", action="append", type=int, help="play with this seed (repeatable)")
    parser.add_argument("--days", type=int, help="another length than the play's")
    parser.add_argument("--json", action="store_true", help="one JSON object per play")
    args = parser.parse_args()
    runs = []
    for name in args.story or sorted(review.PLAYS):
        base = review.PLAYS[name]
        for seed in args.seed or [base.seed]:
            p = replace(base, seed=seed, days=args.days or base.days)
            r = play(p)
            runs.append(r)
            if args.json:
                print(json.dumps(r), flush=True)
            else:
                show(r)
    return 1 if any(r["failed_jobs"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
