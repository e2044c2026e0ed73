"""What several command modules share: the store a command opens, its job context, date
arguments, the one-line failure and the list of inputs that could not be read. Imports stay
inside the functions (start-up stays light)."""
from __future__ import annotations

import argparse
import sys
from datetime import date


def arg_date(text: str) -> date:
    """An argparse `type=` for YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def open_store(config):
    """The session factory of `config.database`, its schema brought up to date first."""
    from store.engine import session_factory, upgrade

    upgrade(config.database)
    return session_factory(config.database)


def job_context(config):
    """A JobContext for running analysis jobs from a command."""
    from analysis.jobs import JobContext
    from store.clock import utcnow

    return JobContext(sessions=open_store(config), settings=config, clock=utcnow)


def report_unreadable(failed: list[str]) -> int:
    """The inputs of `parse`, `explain` or `ingest` that could not be read (`PATH: why`), one
    line each on standard error once the others were read; the exit status: 1 when any."""
    sys.stdout.flush()  # the results first, when both go to one terminal
    for line in failed:
        print(f"postwatch: {line}", file=sys.stderr)
    if len(failed) > 1:
        print(f"postwatch: {len(failed)} inputs could not be read", file=sys.stderr)
    return 1 if failed else 0


def fail(message: str) -> int:
    """Say what went wrong on standard error; the exit status 2."""
    print(f"postwatch: {message}", file=sys.stderr)
    return 2
