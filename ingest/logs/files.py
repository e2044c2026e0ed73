"""Reading log files into the store: a whole file (plain or gzip), or following growing files
(`--follow`) across rotation and restarts.

A followed file's position is stored with the records of each batch, in the same
transaction (`log_offsets`: device, inode, position after the last whole line), so a restart
resumes exactly after what was counted. Rotation: when the path names another file (a new
inode), the old one is read to its end first; when the file shrank, or starts with other
bytes than it did (truncated in place, then written again up to its old size or past it), it
is read again from the start; a file rotated away while postwatch was stopped is found again
beside the path (`maillog.1`, `maillog-20261206`) by its inode, and its rest read first.
Reading again what was already counted is harmless: each result line counts once
(`log_lines`).
"""
from __future__ import annotations

import glob
import gzip
import os
import threading
from datetime import datetime, timezone
from typing import BinaryIO, Callable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ingest.logs.records import LineError, LineReader, LogRecord, ReadOptions
from ingest.logs.writer import LogTotals, LogWriter
from store.bulk import upsert_insert
from store.clock import Clock, utcnow
from store.mta_logs import LogOffset

BATCH_LINES = 20_000  # lines per transaction
WARM_BYTES = 4 * 1024 * 1024  # read again, uncounted, before a resumed position
HEAD_BYTES = 256  # how much of a followed file's start tells it from the same file written again
Progress = Callable[[str, int, int, int], None]  # path, lines read, bytes read, bytes in all


ReaderFactory = Callable[[ReadOptions], LineReader]


def options_for(path: str, *, zone: str = "UTC", campaign_field: str = "campaign",
                sending_ip: str | None = None, clock: Clock = utcnow) -> ReadOptions:
    """A file's reading options; its mtime is the reference for syslog years."""
    try:
        reference = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
    except OSError:
        reference = clock()
    return ReadOptions(reference=reference, zone=zone, campaign_field=campaign_field, sending_ip=sending_ip)


class LogIngest:
    """Reads log files of one format into one store."""

    def __init__(self, sessions: sessionmaker[Session], reader: ReaderFactory, writer: LogWriter,
                 options: Callable[[str], ReadOptions], clock: Clock = utcnow, batch_lines: int = BATCH_LINES,
                 progress: Progress | None = None) -> None:
        self.sessions = sessions
        self.reader = reader
        self.writer = writer
        self.options = options
        self.clock = clock
        self.batch_lines = batch_lines
        self.progress = progress

    def ingest_file(self, path: str, totals: LogTotals | None = None) -> LogTotals:
        """Every line of `path` (gzip when it ends in .gz); an OSError when it cannot be read."""
        totals = totals or LogTotals()
        reader = self.reader(self.options(path))
        size = os.path.getsize(path)
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as fh:
            records: list[LogRecord] = []
            lineno = 0
            for lineno, raw in enumerate(fh, start=1):
                self._feed(reader, lineno, raw, path, records, totals)
                if lineno % self.batch_lines == 0:
                    self._commit(path, records, totals)
                    records = []
                    if self.progress:
                        self.progress(path, lineno, _tell(fh), size)
            self._commit(path, records, totals)
            if self.progress:
                self.progress(path, lineno, size, size)
        return totals

    def _feed(self, reader: LineReader, lineno: int, raw: bytes, path: str, records: list[LogRecord],
              totals: LogTotals) -> None:
        totals.lines += 1
        got = reader.feed(lineno, raw.decode("utf-8", "replace").rstrip("\r\n"))
        if got is None:
            return
        if isinstance(got, LineError):
            totals.add_error(path, got)
        else:
            records.extend(got)

    def _commit(self, path: str, records: list[LogRecord], totals: LogTotals,
                offset: tuple[int, int, int] | None = None) -> None:
        if not records and offset is None:
            return
        with self.sessions() as session, session.begin():
            self.writer.write(session, records, path=path, now=self.clock(), totals=totals)
            if offset is not None:
                _store_offset(session, path, *offset, self.clock())

    # ------------------------------------------------------------------ follow

    def follow(self, paths: list[str], stop: threading.Event, poll: float = 1.0,
               totals: LogTotals | None = None) -> LogTotals:
        """Read `paths` as they grow until `stop` is set; what was read is committed first."""
        totals = totals or LogTotals()
        with self.sessions() as session:
            stored = {o.path: o for o in session.scalars(select(LogOffset).where(LogOffset.path.in_(paths)))}
            session.expunge_all()
        files = [_Followed(p, self.reader(self.options(p))) for p in paths]
        for f in files:
            self._resume(f, stored.get(f.path), totals)
        while not stop.is_set():
            read = 0
            for f in files:
                read += self._drain(f, totals, stop)
            if read:
                continue
            for f in files:
                f.check_rotation()
            stop.wait(poll)
        for f in files:
            f.close()
        return totals

    def _resume(self, f: _Followed, stored: LogOffset | None, totals: LogTotals) -> None:
        if stored is not None:
            st = _stat(f.path)
            if st is not None and (st.st_dev, st.st_ino) == (stored.device, stored.inode):
                if st.st_size >= stored.position:
                    f.warm(stored.position)
                    return
            else:
                rotated = _rotated_away(f.path, stored.device, stored.inode)
                if rotated is not None:  # the rest of the file that was followed, then the new one
                    f.open_other(rotated, stored.position)
                    self._drain(f, totals, None, until_eof=True)
        f.open(0)

    def _drain(self, f: _Followed, totals: LogTotals, stop: threading.Event | None, until_eof: bool = False) -> int:
        """Whole lines available now, a batch per transaction; how many were read."""
        read = 0
        while f.fh is not None:
            records: list[LogRecord] = []
            n = 0
            for lineno, raw in f.lines(self.batch_lines):
                self._feed(f.reader, lineno, raw, f.path, records, totals)
                n += 1
            if n == 0:
                return read
            read += n
            self._commit(f.path, records, totals, offset=f.offset())
            if self.progress:
                self.progress(f.path, totals.lines, f.position, max(f.position, f.size()))
            if stop is not None and stop.is_set() and not until_eof:
                return read
        return read


class _Followed:
    def __init__(self, path: str, reader: LineReader) -> None:
        self.path = path
        self.reader = reader
        self.fh: BinaryIO | None = None
        self.device = self.inode = self.position = 0
        self.lineno = 0
        self.head = b""

    def open(self, position: int) -> None:
        self.open_other(self.path, position)

    def open_other(self, path: str, position: int) -> None:
        self.close()
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return  # not there yet: looked for again at the next poll
        st = os.fstat(fh.fileno())
        fh.seek(position)
        self.fh, self.device, self.inode, self.position = fh, st.st_dev, st.st_ino, position
        self.head = os.pread(fh.fileno(), HEAD_BYTES, 0)

    def warm(self, position: int) -> None:
        """Open at `position`, after giving the reader the WARM_BYTES before it again (their
        records dropped: they were counted), so that it knows the messages still in flight
        (Postfix's sender and campaign lines come before the results)."""
        self.open(max(0, position - WARM_BYTES))
        if self.fh is None:
            return
        if self.position:
            self.position += len(self.fh.readline())  # the rest of a line cut in the middle
        while self.position < position:
            raw = self.fh.readline()
            if not raw:
                break
            self.position += len(raw)
            self.reader.feed(0, raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.fh.seek(position)
        self.position = position

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def lines(self, most: int) -> Iterator[tuple[int, bytes]]:
        """Up to `most` whole lines from the position; a partial last line waits for its end."""
        assert self.fh is not None
        for _ in range(most):
            raw = self.fh.readline()
            if not raw.endswith(b"\n"):
                self.fh.seek(self.position)
                return
            self.position += len(raw)
            self.lineno += 1
            yield self.lineno, raw

    def offset(self) -> tuple[int, int, int]:
        return self.device, self.inode, self.position

    def size(self) -> int:
        return os.fstat(self.fh.fileno()).st_size if self.fh is not None else 0

    def check_rotation(self) -> None:
        """After the open file was read to its end: follow the path to a new file, or back to
        the start of a truncated one."""
        st = _stat(self.path)
        if st is None:
            return  # rotated away and not created again yet: keep the old one open
        if self.fh is None or (st.st_dev, st.st_ino) != (self.device, self.inode):
            self.open(0)
        elif st.st_size < self.position or not self._same_head():
            self.open(0)

    def _same_head(self) -> bool:
        """Whether the file still starts with the bytes it started with when opened (and, while
        those were fewer than HEAD_BYTES, takes the longer start as the one to compare)."""
        assert self.fh is not None
        if os.pread(self.fh.fileno(), len(self.head), 0) != self.head:
            return False
        if len(self.head) < HEAD_BYTES:
            self.head = os.pread(self.fh.fileno(), HEAD_BYTES, 0)
        return True


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _rotated_away(path: str, device: int, inode: int) -> str | None:
    for other in sorted(glob.glob(glob.escape(path) + "?*")):
        st = _stat(other)
        if st is not None and (st.st_dev, st.st_ino) == (device, inode):
            return other
    return None


def _tell(fh) -> int:
    try:
        return fh.fileobj.tell() if hasattr(fh, "fileobj") else fh.tell()
    except (OSError, ValueError):
        return 0


def _store_offset(session: Session, path: str, device: int, inode: int, position: int, now: datetime) -> None:
    stmt = upsert_insert(session)(LogOffset).values(path=path, device=device, inode=inode, position=position,
                                                    updated_at=now)
    session.execute(stmt.on_conflict_do_update(index_elements=["path"], set_={
        "device": stmt.excluded.device, "inode": stmt.excluded.inode, "position": stmt.excluded.position,
        "updated_at": stmt.excluded.updated_at}))
