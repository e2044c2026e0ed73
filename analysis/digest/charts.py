"""The digest's charts: PNG images drawn with matplotlib (Agg, no display, no browser).

A chart is drawn only from a table with something in it; each carries its table (attached
as CSV) and an alt text that says the main figure, for readers with images off.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from analysis.digest.figures import Digest, Table

WIDTH_PX = 560  # shown at this width in a 600 px column
HEIGHT_PX = 230
DPI = 200  # drawn at twice the size shown: sharp on high-density screens
INK, GRID, BLUE, GREEN, RED, AMBER = "#1f2933", "#d9dee3", "#2563eb", "#16a34a", "#dc2626", "#d97706"


@dataclass(frozen=True)
class Chart:
    name: str  # the image's Content-ID and file name (NAME.png); its table is NAME.csv
    title: str
    table: Table
    alt: str
    png: bytes


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in threads

    fig = Figure(figsize=(WIDTH_PX / 100, HEIGHT_PX / 100), dpi=100, facecolor="white")
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("white")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=INK, labelsize=7)
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _png(fig) -> bytes:
    out = io.BytesIO()
    fig.tight_layout(pad=0.6)
    fig.savefig(out, format="png", dpi=DPI, facecolor="white")
    return out.getvalue()


def _day_labels(rows) -> list[str]:
    return [r[0].strftime("%d %b") for r in rows]


def volume_chart(table: Table) -> Chart:
    fig, ax = _figure()
    labels = _day_labels(table.rows)
    x = range(len(labels))
    ax.bar(x, [r[1] for r in table.rows], color=BLUE, width=0.7, label="sent")
    ax.plot(x, [r[2] for r in table.rows], color=GREEN, marker="o", markersize=3, linewidth=1.5, label="delivered")
    ax2 = ax.twinx()
    ax2.plot(x, [r[3] for r in table.rows], color=RED, marker="o", markersize=3, linewidth=1.2,
             label="bounced (right axis)")
    ax2.tick_params(colors=RED, labelsize=7)
    ax2.spines["top"].set_visible(False)
    from matplotlib.ticker import MaxNLocator

    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    headroom = 1.45  # room above the highest point for the legend
    ax2.set_ylim(0, max([r[3] for r in table.rows] + [1]) * headroom)
    ax.set_xticks(list(x), labels, rotation=0 if len(labels) <= 10 else 45)
    ax.set_ylim(0, max([r[1] for r in table.rows] + [1]) * headroom)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7, frameon=False, loc="upper left")
    total = sum(r[1] for r in table.rows)
    bounced = sum(r[3] for r in table.rows)
    alt = f"Chart: {total:,} sent and {bounced:,} bounced over {len(labels)} days (table below)."
    return Chart(table.name, table.title, table, alt, _png(fig))


def complaint_chart(table: Table, warning: float, critical: float) -> Chart:
    fig, ax = _figure()
    labels = _day_labels(table.rows)
    x = list(range(len(labels)))
    rates = [(r[3] or 0) * 100 for r in table.rows]
    ax.plot(x, rates, color=BLUE, marker="o", markersize=3, linewidth=1.6, label="complaint rate")
    ax.axhline(warning * 100, color=AMBER, linestyle="--", linewidth=1, label=f"{warning * 100:.1f}% line")
    ax.axhline(critical * 100, color=RED, linestyle="--", linewidth=1, label=f"{critical * 100:.1f}% line")
    ax.set_ylim(0, max(max(rates, default=0), critical * 100) * 1.2)
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.2f}%")
    ax.set_xticks(x, labels, rotation=0 if len(labels) <= 10 else 45)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    worst = max(rates, default=0)
    alt = (f"Chart: daily complaint rate, at most {worst:.3f}%, against the {warning * 100:.1f}% and "
           f"{critical * 100:.1f}% lines (table below).")
    return Chart(table.name, table.title, table, alt, _png(fig))


def bar_chart(table: Table, label_col: int, value_col: int, what: str) -> Chart:
    fig, ax = _figure()
    rows = list(reversed(table.rows))
    labels = [str(r[label_col])[:28] for r in rows]
    values = [r[value_col] for r in rows]
    ax.barh(range(len(rows)), values, color=BLUE, height=0.6)
    ax.set_yticks(range(len(rows)), labels)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color=GRID, linewidth=0.6)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,}", (v, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7, color=INK)
    top = table.rows[0]
    alt = f"Chart: {what}; the largest is {top[label_col]} with {top[value_col]:,} (table below)."
    return Chart(table.name, table.title, table, alt, _png(fig))


def dmarc_chart(table: Table) -> Chart:
    fig, ax = _figure()
    rows = list(reversed(table.rows))
    labels = [str(r[0])[:28] for r in rows]
    passed = [r[2] for r in rows]
    failed = [r[1] - r[2] for r in rows]
    y = range(len(rows))
    ax.barh(y, passed, color=GREEN, height=0.6, label="DMARC pass")
    ax.barh(y, failed, left=passed, color=RED, height=0.6, label="fail")
    ax.set_yticks(list(y), labels)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color=GRID, linewidth=0.6)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    top = table.rows[0]
    alt = (f"Chart: DMARC pass and fail per domain; {top[0]} had {top[1]:,} messages, "
           f"{top[5] * 100:.1f}% passing (table below).")
    return Chart(table.name, table.title, table, alt, _png(fig))


def charts_for(digest: Digest) -> list[Chart]:
    """The charts with something to show; none for a period with no data."""
    if not digest.has_data:
        return []
    out = []
    if digest.period.days > 1:  # one day is a point, not a line: the headline says it
        if any(r[1] or r[3] for r in digest.volume.rows):
            out.append(volume_chart(digest.volume))
        if any(r[1] for r in digest.complaint_days.rows):
            out.append(complaint_chart(digest.complaint_days, digest.lines["complaint_warning"],
                                       digest.lines["complaint_critical"]))
    if digest.reasons:
        out.append(bar_chart(digest.reasons, 0, 2, "top bounce reasons"))
    if digest.dmarc:
        out.append(dmarc_chart(digest.dmarc))
    return out
