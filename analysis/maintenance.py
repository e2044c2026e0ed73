"""Store upkeep: the months of the partitioned event tables (PostgreSQL)."""
from __future__ import annotations

from datetime import timedelta

from analysis.jobs import JobContext, job
from store.partitions import ensure_partitions


@job("partitions", every=timedelta(hours=24), order=95)
def partitions_job(ctx: JobContext) -> int:
    """Create the coming months' partitions of the event tables (PostgreSQL; nothing on SQLite)."""
    with ctx.sessions.begin() as session:
        return len(ensure_partitions(session.connection(), today=ctx.clock().date()))
