"""What reading MTA logs leaves behind: the result lines already counted, and how far each
followed file was read."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base


class LogLine(Base):
    """One delivery-result line of an MTA log (sent, bounced, deferred...), counted once.

    `digest` is the first 16 bytes of the sha256 of the line as written (hex): the same line
    read again (the file read twice, a rotated copy) is found here and counted no more.
    """

    __tablename__ = "log_lines"

    digest: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(10))  # sent | bounced | deferred | expired | dsn | ...

    __table_args__ = (Index(None, "day"),)


class LogOffset(Base):
    """How far `postwatch ingest-log --follow` has read a file: the file (device and inode, so
    a rotated file is told from its successor) and the position after the last line counted."""

    __tablename__ = "log_offsets"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    device: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]
