"""The digest as HTML for mail clients and as plain text, from Jinja2 templates.

The HTML is built the way mail clients read it: tables for layout, inline styles, no script,
no web fonts, no external resources; images by Content-ID (`cid:NAME`) in the message, or by
file name in a preview; one column at most 600 px wide that narrows on a phone; colours that
hold in dark mode; and every chart followed by its table, so nothing is lost with images off.
"""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from analysis.digest.charts import Chart
from analysis.digest.figures import Digest, Figure, Table

TEMPLATES = Path(__file__).with_name("templates")
MAX_WIDTH = 600


def pct(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.{digits}f}%"


def num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def cell(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if column.endswith("rate") or column.endswith("share") or column == "share_lost":
        return pct(value, 3 if column == "complaint_rate" else 1)
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    return num(value)


def heading(column: str) -> str:
    return column.replace("_", " ")


def value_text(f: Figure) -> str:
    if f.value is None:
        return "–"
    return pct(f.value, 3 if f.name == "complaint_rate" else 2) if f.rate else num(f.value)


def previous_text(f: Figure) -> str:
    if f.previous is None:
        return "–"
    return pct(f.previous, 3 if f.name == "complaint_rate" else 2) if f.rate else num(f.previous)


def change_text(f: Figure) -> str:
    """Rates change in percentage points; counts in per cent of the previous period."""
    if f.change is None:
        return "–"
    if f.rate:
        points = f.change * 100
        return "no change" if abs(points) < 0.0005 else f"{points:+.3f} pts"
    if not f.previous:
        return "new" if f.value else "no change"
    rel = f.change / f.previous * 100
    return "no change" if f.change == 0 else f"{rel:+.1f}%"


def change_tone(f: Figure) -> str:
    """good | bad | '' — the direction of a change, for its colour (the words say it too)."""
    if not f.change:
        return ""
    better = f.change > 0 if f.higher_is_better else f.change < 0
    return "good" if better else "bad"


def line_text(f: Figure) -> str:
    if f.lines is None or f.value is None:
        return ""
    warning, critical = f.lines
    if f.status == "critical":
        return f"at or above the {pct(critical, 1)} line"
    if f.status == "warning":
        return f"above the {pct(warning, 1)} line"
    return f"under the {pct(warning, 1)} line"


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, num=num, heading=heading)
    env.globals.update(cell=cell, value_text=value_text, previous_text=previous_text, change_text=change_text,
                       change_tone=change_tone, line_text=line_text, MAX_WIDTH=MAX_WIDTH)
    return env


def _context(digest: Digest, charts: list[Chart], title: str) -> dict[str, Any]:
    by_name = {c.name: c for c in charts}
    return {"d": digest, "title": title, "charts": by_name,
            "sections_empty": not any((digest.providers, digest.reasons, digest.diagnostics, digest.campaigns,
                                       digest.dmarc, digest.sources, digest.tls, digest.blocklists,
                                       digest.suppressions, digest.alerts))}


def title_for(digest: Digest) -> str:
    kind = digest.period.kind.capitalize()
    return f"{kind} digest, {digest.period.label} — {digest.scope.label}"


def html(digest: Digest, charts: list[Chart], image_src: Callable[[Chart], str]) -> str:
    """The HTML part; `image_src` gives each chart's src (`cid:NAME` in mail, `NAME.png` on disk)."""
    ctx = _context(digest, charts, title_for(digest))
    return _environment().get_template("digest.html.j2").render(src=image_src, **ctx)


def text(digest: Digest, charts: list[Chart]) -> str:
    """The plain-text alternative: the same figures and tables, no images."""
    ctx = _context(digest, charts, title_for(digest))
    return _environment().get_template("digest.txt.j2").render(cols=_text_columns, **ctx)


def _text_columns(table: Table) -> list[str]:
    """A table as aligned plain-text lines."""
    rows = [[heading(c) for c in table.columns]] + [[cell(c, v) for c, v in zip(table.columns, r)]
                                                     for r in table.rows]
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(len(table.columns))]
    lines = []
    for r in rows:
        parts = [v[:60].ljust(w) if i < len(r) - 1 else v for i, (v, w) in enumerate(zip(r, widths))]
        lines.append("  " + "  ".join(parts).rstrip())
    return lines
