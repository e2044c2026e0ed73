"""`postwatch rules test [FILE]`: run the `test` samples of a bounce rules file."""
from __future__ import annotations

import json
import os
import sys

DESCRIPTION = """\
Run the `test` samples of a bounce rules file through the classifier, as it reads bounces:
FILE's rules first, then the shipped ones. A sample passes when its own [[rule]] block decides
it, with the sample's reason, that reason's category and the sample's hard flag (default
false). Each failing sample is printed with its rule and what it got instead: the reason, hard
or soft, the category and the rule that decided. Exit status: 0 when every sample passes, 1
when one fails, 2 when the file cannot be read or a block is malformed.

A sample is a bounce as `postwatch parse --json` prints it, written in the block:

  [[rule]]
  reason = "blocked"
  name = "acme-gateway"
  match = ['rejected by acme gateway']
  test = { recipient = "kim@example.org", status = "5.7.1", reply_code = "550",
           diagnostic = "550 5.7.1 Rejected by ACME gateway", reason = "blocked" }

(in the file, one line), or a list of such tables. The shipped rules' samples are run by the
test suite."""


def register(sub) -> None:
    p = sub.add_parser("rules", help="check a bounce rules file", description="Check a bounce rules file.")
    rsub = p.add_subparsers(dest="rules_command", metavar="COMMAND", required=True)
    t = rsub.add_parser("test", help="run the test samples of a rules file (default: ingest.rules_file)",
                        description=DESCRIPTION, formatter_class=_raw())
    t.add_argument("file", nargs="?", metavar="FILE",
                   help="the rules file to check (default: the one ingest.rules_file names)")
    t.add_argument("--all", action="store_true", help="print the samples that pass too")
    t.add_argument("--json", action="store_true",
                   help="one JSON object per sample: rule, sample, ok, expected, got")
    t.set_defaults(func=cmd_rules_test)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def cmd_rules_test(args, config) -> int:
    from ingest.bounce.rules import load_rules
    from ingest.bounce.samples import run_samples

    path = args.file or config.ingest.rules_file
    if not path:
        print("postwatch: no rules file to test: give FILE, or set ingest.rules_file "
              "(the shipped rules' samples are run by the test suite)", file=sys.stderr)
        return 2
    if args.file and not os.path.isfile(path):
        print(f"postwatch: {path}: no such rules file", file=sys.stderr)
        return 2
    rules = load_rules(os.path.abspath(path))  # a RulesError is printed by main, status 2
    mine = rules.rules[:len(rules.rules) - len(load_rules().rules)]  # the file's rules come first
    results = run_samples(rules, mine)
    failed = [r for r in results if not r.ok]
    out = sys.stdout
    for r in results:
        if args.json:
            out.write(json.dumps(_as_json(r)) + "\n")
        elif not r.ok:
            out.write(f"FAIL {r.describe()}\n")
        elif args.all:
            out.write(f"ok   {r.describe()}\n")
    if not args.json:
        without = sum(1 for rule in mine if not rule.samples)
        note = f" (rules without a sample: {without} of {len(mine)})" if without else ""
        if not results:
            out.write(f"{os.path.basename(path)}: no rule carries a `test` sample{note}\n")
        else:
            n = len(results)
            out.write(f"{os.path.basename(path)}: {n} sample{'' if n == 1 else 's'}, {n - len(failed)} passed, "
                      f"{len(failed)} failed{note}\n")
    return 1 if failed else 0


def _as_json(r) -> dict:
    return {"rule": r.rule.label(None), "sample": r.number, "ok": r.ok, "event": r.sample.event,
            "expected": {"reason": r.sample.reason, "hard_bounce": r.sample.hard},
            "got": {"reason": r.reason, "hard_bounce": r.hard, "category": r.category, "rule": r.decided_by}}
