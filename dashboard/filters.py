"""The filters every page shares, kept in the URL's query string so a view can be bookmarked.

    ?start=2024-05-01&end=2024-05-30&domain=news.example.com&provider=google&campaign=spring

(`provider=(unknown)` and the like pick the mail that is not attributed: the key '').

Rollups are kept per one dimension at a time (analysis/rollups.py), so a page reads the
rollups of the most specific entity the filters name: campaign, else provider, else sending
domain, else all mail. `Filters.entity()` says which one; `Filters.ignored()` names the
filters that a rollup-read chart could not apply, so the page can say so.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from urllib.parse import parse_qs, urlencode

DEFAULT_DAYS = 30
MAX_DAYS = 800
FIELDS = ("domain", "provider", "campaign")
# The rollups count what is not attributed under the key '' (analysis/rollups.py): the URL and
# the dropdowns carry it as UNKNOWN, and every table, legend and dropdown shows it as "unknown".
UNKNOWN = "(unknown)"
UNKNOWN_LABEL = "unknown"


def key_of(value: str) -> str:
    """The rollup key of a filter or dropdown value ('' for UNKNOWN)."""
    return "" if value == UNKNOWN else value


def label(key: str | None) -> str:
    """How an entity key is shown: '' (not attributed) as "unknown"."""
    return key if key and key != UNKNOWN else UNKNOWN_LABEL


def choices(keys: list[str]) -> list[dict[str, str]]:
    """Dropdown options for entity keys, '' among them as "unknown"."""
    return [{"label": label(k), "value": k or UNKNOWN} for k in keys]


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    domain: str | None = None
    provider: str | None = None
    campaign: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def entity(self) -> tuple[str, str]:
        """The (dimension, key) of rollups that answers these filters."""
        if self.campaign:
            return "campaign", key_of(self.campaign)
        if self.provider:
            return "provider", key_of(self.provider)
        if self.domain:
            return "sending_domain", key_of(self.domain)
        return "all", ""

    def ignored(self) -> list[str]:
        """Filters set but not applied to rollup-read charts (only one dimension applies)."""
        dimension, _ = self.entity()
        chosen = {"campaign": "campaign", "provider": "provider", "sending_domain": "domain"}.get(dimension)
        return [name for name in FIELDS if getattr(self, name) and name != chosen]

    def previous(self) -> Filters:
        """The period of the same length just before this one."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))

    def query_string(self) -> str:
        params = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        for name in FIELDS:
            value = getattr(self, name)
            if value:
                params[name] = value
        return "?" + urlencode(params)


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def parse(search: str | None, today: date, default_days: int = DEFAULT_DAYS) -> Filters:
    """Filters from a query string; what is missing or malformed takes its default."""
    query = parse_qs((search or "").lstrip("?"))

    def one(name: str) -> str | None:
        values = [v.strip() for v in query.get(name, []) if v.strip()]
        return values[0] if values else None

    end = _date(one("end")) or today
    start = _date(one("start")) or end - timedelta(days=default_days - 1)
    if start > end:
        start, end = end, start
    if (end - start).days >= MAX_DAYS:
        start = end - timedelta(days=MAX_DAYS - 1)
    return Filters(start, end, one("domain"), one("provider"), one("campaign"))


def param(search: str | None, name: str) -> str | None:
    """One more query parameter a page keeps in the URL (e.g. the compare page's groups)."""
    values = parse_qs((search or "").lstrip("?")).get(name, [])
    return values[0] if values else None


def from_controls(start: str | None, end: str | None, domain: str | None, provider: str | None,
                  campaign: str | None, today: date) -> Filters:
    """Filters from the filter bar's values (dates as the date picker gives them)."""
    f = parse(None, today)
    return Filters(_date(start) or f.start, _date(end) or f.end, domain or None, provider or None, campaign or None)
