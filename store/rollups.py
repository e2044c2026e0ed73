"""Rollups and scores: the daily figures per entity that the dashboard, alerts and digests read.

`rollups` holds one counter per (day, dimension, key, metric); the rollup job adds the
counts of new events to it (see analysis/rollups.py). `scores` holds one reputation score
per (day, dimension, key) with the components that explain it (analysis/scores.py).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId

DIMENSIONS = ("all", "sending_domain", "sending_ip", "provider", "campaign")
GRADES = ("good", "watch", "critical")


class Rollup(Base):
    """One daily counter: `value` of `metric` on `day` for the entity (dimension, key)."""

    __tablename__ = "rollups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    dimension: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(255))  # '' for 'all', and for events the entity is unknown
    metric: Mapped[str] = mapped_column(String(80))
    value: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("day", "dimension", "key", "metric"),
                      Index(None, "dimension", "key", "day"))


class Score(Base):
    """The reputation score of one entity on one day, 0-100, with the components behind it."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    dimension: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(10))
    components: Mapped[dict[str, Any]]
    computed_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("day", "dimension", "key"), Index(None, "dimension", "day"))


class RollupWatermark(Base):
    """The highest id of a source table already counted into `rollups`."""

    __tablename__ = "rollup_watermarks"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class ScorePending(Base):
    """An entity-day whose rollups changed since its score was last computed."""

    __tablename__ = "score_pending"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)


class AlertDay(Base):
    """A day the alert rules must judge (its rollups changed), and when they last judged it.

    The alerts job judges every day from the earliest unjudged one to today, in order, as if
    it had run on each (DESIGN.md: every judgement is a judgement of a day)."""

    __tablename__ = "alert_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    changed_at: Mapped[datetime]  # when its rollups last changed
    judged_at: Mapped[datetime | None]  # when the alert rules last judged it; None: to judge
