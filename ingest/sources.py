"""Where raw inputs come from on disk: files, folders (recursive), mbox files and Maildirs.

Each input is yielded with a name a person can find it by again (`path`, `path:3` for the
third message of an mbox, the Maildir file's path) and either its bytes or the reason it
could not be read: a path that does not exist, a folder that cannot be listed, a file that
cannot be opened or is not a regular file (a FIFO would block the reader) comes back as an
`Input` whose `error` is `PATH: why`, never as an exception; the commands say those on
standard error and exit 1 (`readable_inputs`).
"""
from __future__ import annotations

import errno
import mailbox
import os
import re
import stat
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

    def __post_init__(self) -> None:
        # A file name need not be UTF-8: it is shown (and stored as an origin, which the store
        # could not hold with the undecodable bytes in it) with those bytes as \xNN.
        if not self.name.isascii():
            self.name = _shown(self.name)
        if self.error is not None and not self.error.isascii():
            self.error = _shown(self.error)

    def load(self) -> bytes | None:
        """The bytes, read now if they were not; None (and `error` set) when unreadable."""
        if self.raw is None and self.error is None and self.path is not None:
            try:
                self.raw = Path(self.path).read_bytes()
            except OSError as exc:
                self.error = _shown(_cannot_read(self.path, exc))
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
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            yield Input(raw_path, error=_missing(raw_path, exc))
            continue
        if stat.S_ISDIR(mode):
            if is_maildir(path):
                yield from _maildir(path)
            else:
                yield from _folder(path)
        else:
            yield from _file(path, mode)


def readable_inputs(paths: list[str], failed: list[str]) -> Iterator[Input]:
    """`iter_inputs` without the inputs that cannot be read: their `PATH: why` go to `failed`
    (for the command to say on standard error, and exit 1)."""
    for item in iter_inputs(paths):
        if item.error is None:
            yield item
        else:
            failed.append(item.error)


def _folder(top: Path) -> Iterator[Input]:
    """A folder, recursively: its files by name, then its folders by name (a Maildir inside
    is read as one); names starting with a dot are skipped, symbolic links to folders are
    not followed. A folder that cannot be listed is an input in error."""
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield Input(str(top), error=f"{top}: cannot read the folder: {_why(exc)}")
        return
    folders = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry)
                continue
            if entry.name.startswith(".") or entry.is_dir():  # hidden, or a link to a folder
                continue
            regular = entry.is_file(follow_symlinks=False)  # no system call: the folder's listing says
            mode = stat.S_IFREG if regular else entry.stat().st_mode
        except OSError as exc:  # a symbolic link to nothing
            yield Input(entry.path, error=_missing(entry.path, exc))
            continue
        yield from _file(Path(entry.path), mode)
    for entry in folders:
        here = Path(entry.path)
        if is_maildir(here):
            yield from _maildir(here)  # it walks cur/ and new/ itself
        else:
            yield from _folder(here)


def _file(path: Path, mode: int) -> Iterator[Input]:
    if not stat.S_ISREG(mode):
        yield Input(str(path), error=f"{path}: cannot read it: not a regular file ({_kind(mode)})")
        return
    if path.suffix.lower() in SINGLE_MESSAGE_SUFFIXES:
        if not os.access(path, os.R_OK):
            yield Input(str(path), error=f"{path}: cannot read it: permission denied")
            return
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
        yield Input(str(path), error=_cannot_read(path, exc))
        return
    yield Input(str(path), raw)


def _shown(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _why(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _cannot_read(path, exc: OSError) -> str:
    return f"{path}: cannot read it: {_why(exc)}"


def _missing(path: str, exc: OSError) -> str:
    """Why `path` cannot be looked at, in words: missing, a link to nothing, a file in the
    middle of the path."""
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"{path}: no such file or folder (a symbolic link to {os.readlink(path)}, which does not exist)"
        return f"{path}: no such file or folder"
    if exc.errno == errno.ENOTDIR:
        for parent in reversed(Path(path).parents):
            if parent.is_file():
                return f"{path}: no such file or folder ({parent} is a file, not a folder)"
        return f"{path}: no such file or folder (a part of the path is not a folder)"
    return _cannot_read(path, exc)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a file"


def _mbox(path: Path) -> Iterator[Input]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for i, key in enumerate(box.iterkeys(), 1):
            try:
                yield Input(f"{path}:{i}", box.get_bytes(key, from_=False))
            except (OSError, KeyError) as exc:
                yield Input(f"{path}:{i}", error=f"{path}:{i}: cannot read message {i}: {exc}")
    finally:
        box.close()


def _maildir(path: Path) -> Iterator[Input]:
    for sub in ("new", "cur"):
        folder = path / sub
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            yield Input(str(folder), error=f"{folder}: cannot read the folder: {_why(exc)}")
            continue
        for name in names:
            if name.startswith("."):
                continue
            yield from _file_as_single(folder / name)


def _file_as_single(path: Path) -> Iterator[Input]:
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            yield Input(str(path), error=f"{path}: cannot read it: not a regular file ({_kind(mode)})")
            return
        yield Input(str(path), path.read_bytes())
    except OSError as exc:
        yield Input(str(path), error=_missing(str(path), exc))
