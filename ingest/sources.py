"""Where raw inputs come from on disk: files, folders (recursive), mbox files and Maildirs.

Each input is yielded with a name a person can find it by again (`path`, `path:3` for the
third message of an mbox, the Maildir file's path) and either its bytes or the reason it
could not be read.
"""
from __future__ import annotations

import mailbox
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SINGLE_MESSAGE_SUFFIXES = {".eml", ".msg", ".xml", ".json", ".gz", ".zip", ".txt"}
MBOX_SEPARATOR = re.compile(rb"\n\nFrom \S+ +\S.*\d\d:\d\d", re.M)


@dataclass
class Input:
    name: str
    raw: bytes | None = None
    error: str | None = None
    path: str | None = None  # a single-message file, read by `load()` where it is parsed

    def load(self) -> bytes | None:
        """The bytes, read now if they were not; None (and `error` set) when unreadable."""
        if self.raw is None and self.error is None and self.path is not None:
            try:
                self.raw = Path(self.path).read_bytes()
            except OSError as exc:
                self.error = f"cannot read {self.path}: {exc.strerror or exc}"
        return self.raw


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def is_mbox(path: Path, head: bytes) -> bool:
    if path.suffix.lower() in (".mbox", ".mbx") or path.name in ("mbox", "mbox.txt"):
        return True
    if path.suffix.lower() in SINGLE_MESSAGE_SUFFIXES or not head.startswith(b"From "):
        return False
    return bool(MBOX_SEPARATOR.search(head))


def count_inputs(paths: list[str]) -> int | None:
    """A quick estimate for a progress bar (mbox files count as one)."""
    total = 0
    for p in map(Path, paths):
        if p.is_dir():
            for _root, _dirs, files in os.walk(p):
                total += len(files)
        else:
            total += 1
    return total


def iter_inputs(paths: list[str]) -> Iterator[Input]:
    for raw_path in paths:
        path = Path(raw_path)
        if not path.exists():
            yield Input(raw_path, error=f"{raw_path}: no such file or folder")
        elif is_maildir(path):
            yield from _maildir(path)
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                here = Path(root)
                if is_maildir(here):
                    dirs[:] = []  # the Maildir reader walks cur/ and new/ itself
                    yield from _maildir(here)
                    continue
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    yield from _file(here / name)
        else:
            yield from _file(path)


def _file(path: Path) -> Iterator[Input]:
    if path.suffix.lower() in SINGLE_MESSAGE_SUFFIXES:
        yield Input(str(path), path=str(path))  # read where it is parsed (a worker process)
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
            if is_mbox(path, head):
                fh.close()
                yield from _mbox(path)
                return
            raw = head + fh.read()
    except OSError as exc:
        yield Input(str(path), error=f"cannot read {path}: {exc.strerror or exc}")
        return
    yield Input(str(path), raw)


def _mbox(path: Path) -> Iterator[Input]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for i, key in enumerate(box.iterkeys(), 1):
            try:
                yield Input(f"{path}:{i}", box.get_bytes(key, from_=False))
            except (OSError, KeyError) as exc:
                yield Input(f"{path}:{i}", error=f"cannot read message {i} of {path}: {exc}")
    finally:
        box.close()


def _maildir(path: Path) -> Iterator[Input]:
    for sub in ("new", "cur"):
        folder = path / sub
        for name in sorted(os.listdir(folder)):
            if name.startswith("."):
                continue
            yield from _file_as_single(folder / name)


def _file_as_single(path: Path) -> Iterator[Input]:
    try:
        yield Input(str(path), path.read_bytes())
    except OSError as exc:
        yield Input(str(path), error=f"cannot read {path}: {exc.strerror or exc}")
