"""What several command modules share: the store a command opens, its job context, date
arguments and the one-line failure. Imports stay inside the functions (start-up stays light)."""
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


def fail(message: str) -> int:
    """Say what went wrong on standard error; the exit status 2."""
    print(f"postwatch: {message}", file=sys.stderr)
    return 2
