"""Bounded unpacking of report attachments, and the XML checks made before any parser runs.

A DMARC or TLS report arrives as xml/json, gzip or zip. A few kilobytes of gzip or zip can
expand to gigabytes, and XML can declare entities that expand the same way, so nothing is
handed to parsedmarc until it has been unpacked here in chunks under a cap
(`ingest.max_decompressed_bytes`) and its XML has been checked for DTD tricks.
"""
from __future__ import annotations

import io
import re
import zipfile
import zlib

MAGIC_ZIP = b"PK\x03\x04"
MAGIC_GZIP = b"\x1f\x8b"
CHUNK = 256 * 1024
MAX_RATIO = 1000  # deflate cannot honestly do better than ~1032:1; a bigger claim is a bomb
MAX_ZIP_MEMBERS = 50

# Aggregate reports never carry a DTD; any DOCTYPE/ENTITY declaration is refused (billion
# laughs, external entities, default-attribute blow-ups).
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ATTLIST|ELEMENT)", re.I)
_DTD_TEXT = re.compile(r"<!\s*(DOCTYPE|ENTITY|ATTLIST|ELEMENT)", re.I)


class UnsafeReport(ValueError):
    """The attachment was refused before parsing; the text is the quarantine reason."""


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n} bytes"


def _over(limit: int) -> UnsafeReport:
    return UnsafeReport(f"compressed report expands past the {_mb(limit)} limit "
                        "(ingest.max_decompressed_bytes); refused as a possible decompression bomb")


def is_compressed(data: bytes) -> bool:
    return data[:4] == MAGIC_ZIP or data[:2] == MAGIC_GZIP


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip (several members allowed) without ever holding more than `limit` bytes."""
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        pending = rest
        while True:
            try:
                chunk = d.decompress(pending, CHUNK)
            except zlib.error as exc:
                raise UnsafeReport(f"gzip data is corrupt ({exc})") from exc
            out += chunk
            if len(out) > limit:
                raise _over(limit)
            pending = d.unconsumed_tail
            if d.eof or (not pending and not chunk):
                break
        if not d.eof:
            raise UnsafeReport("gzip data is truncated (the stream ends before its end marker)")
        rest = d.unused_data.lstrip(b"\x00")
        if rest and rest[:2] != MAGIC_GZIP:
            break  # trailing garbage after a complete member: ignore it, as gzip(1) does
    return bytes(out)


def unzip_bounded(data: bytes, limit: int) -> bytes:
    """The report member of a zip archive, checked by its declared and its actual size."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise UnsafeReport(f"zip archive is unreadable ({exc})") from exc
    except NotImplementedError as exc:  # a member that needs a later version of zip
        raise UnsafeReport(f"zip archive needs a feature that cannot be read ({exc})") from exc
    if not infos:
        raise UnsafeReport("zip archive is empty")
    if len(infos) > MAX_ZIP_MEMBERS:
        raise UnsafeReport(f"zip archive has {len(infos)} members; a report has one")
    wanted = [i for i in infos if i.filename.lower().endswith((".xml", ".json"))] or infos
    info = wanted[0]
    if info.file_size > limit:
        raise UnsafeReport(f"zip member {info.filename!r} declares {_mb(info.file_size)}, above the "
                           f"{_mb(limit)} limit (ingest.max_decompressed_bytes)")
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > CHUNK:
        raise UnsafeReport(f"zip member {info.filename!r} claims a {info.file_size // info.compress_size}:1 "
                           "compression ratio; refused as a possible decompression bomb")
    out = bytearray()
    try:
        with archive.open(info) as member:
            while True:
                chunk = member.read(CHUNK)
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise _over(limit)
    except UnsafeReport:
        raise
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error, OSError, EOFError,
            ValueError) as exc:
        # a lying declared size ends here too: zipfile checks the CRC and length at the end
        raise UnsafeReport(f"zip member {info.filename!r} is unreadable ({exc})") from exc
    return bytes(out)


def unpack(data: bytes, limit: int) -> bytes:
    """Plain report bytes from raw, gzip or zip bytes, never more than `limit` of them."""
    if data[:4] == MAGIC_ZIP:
        return unzip_bounded(data, limit)
    if data[:2] == MAGIC_GZIP:
        return gunzip_bounded(data, limit)
    if len(data) > limit:
        raise UnsafeReport(f"report is {_mb(len(data))}, above the {_mb(limit)} limit "
                           "(ingest.max_decompressed_bytes)")
    return data


def check_xml(data: bytes | str) -> None:
    """Refuse XML that declares a DTD: entity expansion and external entities start there."""
    found = _DTD.search(data) if isinstance(data, bytes) else _DTD_TEXT.search(data)
    if found:
        raise UnsafeReport("XML declares a DTD (<!DOCTYPE/<!ENTITY>); DMARC reports never do, "
                           "and entity expansion is refused")
