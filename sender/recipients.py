"""A campaign's recipient list: a CSV file whose column `email` holds the address.

Every other column is a field the template may use. A row that cannot be used — the wrong
number of fields, an invalid address, an address already listed above — is reported with its
line number and left out; the others go on.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from store.addresses import AddressError, normalise, split_address

ADDRESS_COLUMN = "email"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_BAD_LOCAL = re.compile(r'[\s()<>\[\]\\,;:"@\x00-\x1f\x7f]')


class RecipientsError(ValueError):
    """A recipient file that cannot be read at all (missing, no `email` column, not UTF-8)."""


@dataclass(frozen=True)
class Recipient:
    line: int
    email: str  # normalised: lower-case, IDNA domain
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    line: int
    email: str
    message: str


def check_address(raw: str) -> str:
    """The normalised address, or AddressError saying what is wrong with it.

    Stricter than the store's normaliser, which must accept whatever a bounce names: a
    sender only mails dot-atom local parts (non-ASCII allowed: SMTPUTF8) at a real domain name.
    """
    address = normalise(raw)
    local, domain = split_address(address)
    if len(local.encode()) > 64:
        raise AddressError(f"{raw!r}: the part before @ is longer than 64 octets")
    if _BAD_LOCAL.search(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise AddressError(f"{raw!r} is not a valid address (quotes, spaces, brackets, commas or "
                           "misplaced dots before the @)")
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_LABEL.match(x) for x in labels) or labels[-1].isdigit():
        raise AddressError(f"{raw!r} does not end in a valid domain name")
    if len(address.encode()) > 254:
        raise AddressError(f"{raw!r} is longer than 254 octets")
    return address


def read_recipients(path: str | Path) -> tuple[list[Recipient], list[RowError]]:
    """The usable rows of the file and the errors of the others, in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RecipientsError(f"recipient file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise RecipientsError(f"recipient file {path} is not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise RecipientsError(f"recipient file {path} is empty") from None
    except csv.Error as exc:
        raise RecipientsError(f"recipient file {path}: the header line cannot be read: {exc}") from None
    if ADDRESS_COLUMN not in header:
        raise RecipientsError(f"recipient file {path} has no column {ADDRESS_COLUMN!r} in its header line "
                              f"(it has: {', '.join(header) or 'nothing'})")
    if len(set(header)) != len(header) or "" in header:
        raise RecipientsError(f"recipient file {path}: every column needs a name of its own")
    at = header.index(ADDRESS_COLUMN)
    rows: list[Recipient] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(reader.line_num, "", f"the row cannot be read: {exc}"))
            continue
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue  # blank lines are not recipients
        raw = values[at].strip() if at < len(values) else ""
        if len(values) != len(header):
            errors.append(RowError(line, raw, f"the row has {len(values)} fields, the header {len(header)}"))
            continue
        try:
            address = check_address(raw)
        except AddressError as exc:
            errors.append(RowError(line, raw, str(exc) if raw else "no address in column email"))
            continue
        if address in seen:
            errors.append(RowError(line, raw, f"duplicate of line {seen[address]}: sent once"))
            continue
        seen[address] = line
        fields = {k: v for k, v in zip(header, values) if k != ADDRESS_COLUMN}
        rows.append(Recipient(line, address, fields))
    return rows, errors
