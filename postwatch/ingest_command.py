"""`postwatch ingest`: files, folders, mbox files and Maildirs into the store, with a summary."""
from __future__ import annotations

import collections
import json
import sys
import time

from ingest.envelope import Envelope
from ingest.outcome import Outcome
from ingest.pipeline import Pipeline
from ingest.sources import count_inputs, iter_inputs
from ingest.webhooks.facts import read_options
from postwatch.commands_common import report_unreadable
from store.engine import session_factory, upgrade


class Summary:
    """Counts per kind and status, and the quarantine reasons with an example of each."""

    def __init__(self) -> None:
        self.by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.reasons: collections.Counter = collections.Counter()
        self.examples: dict[str, str] = {}
        self.events = 0
        self.unreadable: list[str] = []
        self.started = time.monotonic()

    def add(self, out: Outcome) -> None:
        counts = self.by_kind[out.kind]
        counts["messages"] += 1
        counts["duplicate" if out.duplicate else out.status] += 1
        self.events += out.events
        if out.status == "quarantined" and not out.duplicate:
            reason = (out.error or "unreadable").splitlines()[0][:160]
            self.reasons[reason] += 1
            self.examples.setdefault(reason, out.origin or "")

    def as_dict(self) -> dict:
        return {"kinds": {k: dict(v) for k, v in sorted(self.by_kind.items())}, "events": self.events,
                "quarantine_reasons": [{"reason": r, "count": n, "example": self.examples[r]}
                                       for r, n in self.reasons.most_common()],
                "unreadable": self.unreadable, "seconds": round(time.monotonic() - self.started, 2)}

    def print(self, out=sys.stdout) -> None:
        total = sum(v["messages"] for v in self.by_kind.values())
        secs = time.monotonic() - self.started
        out.write(f"\n{total} messages in {secs:.1f}s, {self.events} events stored\n\n")
        out.write(f"{'kind':16} {'messages':>8} {'parsed':>7} {'quarant.':>8} {'ignored':>7} {'dupl.':>6}\n")
        for kind, c in sorted(self.by_kind.items()):
            out.write(f"{kind:16} {c['messages']:>8} {c['parsed']:>7} {c['quarantined']:>8} "
                      f"{c['ignored']:>7} {c['duplicate']:>6}\n")
        if self.reasons:
            out.write("\nquarantined, by reason:\n")
            for reason, n in self.reasons.most_common():
                out.write(f"  {n:>5}  {reason}\n         e.g. {self.examples[reason]}\n")


def run_ingest(args, config) -> int:
    upgrade(config.database)
    pipeline = Pipeline(session_factory(config.database), config.ingest, domains=config.domains)
    summary = Summary()
    inputs = iter_inputs(args.paths)

    def items():
        for item in inputs:
            item.load()
            if item.error is not None:
                summary.unreadable.append(item.error)
                continue
            yield item.raw, Envelope(args.source, item.name)

    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=count_inputs(args.paths), unit="msg", desc="ingest", file=sys.stderr)
    for outcome in pipeline.ingest_many(items()):
        summary.add(outcome)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(f"store: {config.database.url}")
        summary.print()
    return report_unreadable(summary.unreadable)


def run_reprocess(args, config) -> int:
    upgrade(config.database)
    webhooks = read_options(config.ingest.rules_file, config.webhooks.campaign_key, config.webhooks.volume_from)
    pipeline = Pipeline(session_factory(config.database), config.ingest, domains=config.domains, webhooks=webhooks)
    summary = Summary()
    released = 0
    for outcome in pipeline.reprocess_quarantined(kind=args.kind):
        summary.add(outcome)
        released += outcome.status != "quarantined"
    if args.json:
        print(json.dumps({**summary.as_dict(), "released": released}))
    else:
        print(f"store: {config.database.url}")
        summary.print()
        print(f"\n{released} message(s) left quarantine")
    return 0
