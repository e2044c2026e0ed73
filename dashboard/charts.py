"""Small figure builders shared by the pages: one look for every chart.

Figures are plain plotly JSON dicts ({"data": [...], "layout": {...}}), which dcc.Graph takes
as they are: building plotly's validated Figure objects (and copying a named template into
each) cost more than the database reads behind a chart.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

import pandas as pd

Figure = dict[str, Any]
GRID = "#e5e5e5"
# plotly's default colours, set on each line so that a line's partial-day segment matches it
COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff",
           "#fecb52")
PARTIAL = "{day}: partial day, so far (dotted)"
RIGHT = " (right axis)"


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    layout = {"title": {"text": title, "x": 0.02, "font": {"size": 15}}, "height": 320,
              "margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "paper_bgcolor": "white", "plot_bgcolor": "white",
              "legend": {"orientation": "h", "y": -0.2}, "hovermode": "x unified",
              "xaxis": {"gridcolor": GRID, "automargin": True}, "yaxis": {"gridcolor": GRID, "automargin": True,
                                                                         "rangemode": "tozero"},
              "font": {"family": "sans-serif", "size": 12}}
    layout.update(extra)
    return layout


def _x(values: Iterable[Any]) -> list[Any]:
    return [v.isoformat() if isinstance(v, (date, datetime)) else v for v in values]


def _y(series: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else (float(v) if not isinstance(v, int) else v) for v in series.tolist()]


def empty(title: str, message: str = "No data in this range") -> Figure:
    layout = _layout(title, hovermode=False, xaxis={"visible": False}, yaxis={"visible": False})
    layout["annotations"] = [{"text": message, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper",
                              "yref": "paper", "font": {"size": 14, "color": "#888"}}]
    return {"data": [], "layout": layout}


def _percent(layout: dict[str, Any], axis: str = "yaxis") -> None:
    layout[axis] = {**layout[axis], "tickformat": ".2%"}


def lines(frame: pd.DataFrame, title: str, percent: bool = False, columns: Iterable[str] | None = None,
          partial: date | None = None, right: Iterable[str] = ()) -> Figure:
    """One line per column over the days of the index.

    `partial`: the day that is not over yet (today): from the last complete day to it each line
    is drawn dotted, and the legend says so, so that a day still being counted does not read as
    a fall. `right`: the columns drawn against a second y axis on the right, with their own
    scale (a rate of a few percent beside one near 100 %)."""
    columns = list(columns) if columns is not None else list(frame.columns)
    if frame.empty or not columns:
        return empty(title)
    right = [c for c in right if c in columns]
    days = list(frame.index)
    cut = next((i for i, d in enumerate(days) if partial is not None and d >= partial), len(days))
    days = days[:cut + 1]  # the days after the partial one have not come yet
    x = _x(days)
    data = []
    for n, name in enumerate(columns):
        y = _y(frame[name])[:len(days)]
        colour = COLOURS[n % len(COLOURS)]
        trace = {"type": "scatter", "mode": "lines+markers", "name": str(name) + (RIGHT if name in right else ""),
                 "x": x, "y": y, "marker": {"size": 4, "color": colour}, "line": {"color": colour},
                 "connectgaps": False, "legendgroup": str(name)}
        if name in right:
            trace["yaxis"] = "y2"
        if cut == len(days):
            data.append(trace)
            continue
        # the line stops before the partial day (a gap point), whose value keeps its marker and
        # hover; a dotted segment without hover joins them
        data.append({**trace, "x": x[:cut] + [x[cut], x[cut]], "y": y[:cut] + [None, y[cut]]})
        start = max(cut - 1, 0)
        data.append({**trace, "name": f"{trace['name']} (partial day)", "x": x[start:], "y": y[start:],
                     "showlegend": False, "hoverinfo": "skip", "mode": "lines",
                     "line": {"color": colour, "dash": "dot"}})
    if cut < len(days):
        # one legend entry for the dotted segments of every line
        data.append({"type": "scatter", "mode": "lines", "x": [None], "y": [None], "hoverinfo": "skip",
                     "name": PARTIAL.format(day=x[cut]), "line": {"color": "#888", "dash": "dot"}})
    layout = _layout(title)
    if percent:
        _percent(layout)
    if right:
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False,
                            "automargin": True}
        layout["margin"] = {**layout["margin"], "r": 50}
        if percent:
            _percent(layout, "yaxis2")
    return {"data": data, "layout": layout}


def stacked(frame: pd.DataFrame, title: str, top: int = 8) -> Figure:
    """Stacked daily bars, the `top` biggest columns kept and the rest summed as 'other'."""
    if frame.empty or not len(frame.columns) or not frame.to_numpy().sum():
        return empty(title)
    order = frame.sum().sort_values(ascending=False).index.tolist()
    keep, rest = order[:top], order[top:]
    x = _x(frame.index)
    data = [{"type": "bar", "name": str(name), "x": x, "y": _y(frame[name])} for name in keep]
    if rest:
        data.append({"type": "bar", "name": "other", "x": x, "y": _y(frame[rest].sum(axis=1))})
    return {"data": data, "layout": _layout(title, barmode="stack")}


def bars(labels: list[str], values: list[float], title: str, percent: bool = False,
         horizontal: bool = False) -> Figure:
    if not labels:
        return empty(title)
    labels = [str(v) for v in labels]
    bar = ({"type": "bar", "y": labels, "x": list(values), "orientation": "h"} if horizontal
           else {"type": "bar", "x": labels, "y": list(values)})
    layout = _layout(title, hovermode="closest")
    if percent:
        _percent(layout, "xaxis" if horizontal else "yaxis")
    return {"data": [bar], "layout": layout}


def with_lines(fig: Figure, levels: list[tuple[float, str, str]]) -> Figure:
    """Horizontal reference lines across the plot: (y, label, colour)."""
    layout = fig["layout"]
    layout["shapes"] = layout.get("shapes", []) + [
        {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
         "line": {"dash": "dash", "color": colour, "width": 1}} for y, _label, colour in levels]
    layout["annotations"] = layout.get("annotations", []) + [
        {"xref": "paper", "x": 0, "yref": "y", "y": y, "text": label, "showarrow": False, "xanchor": "left",
         "yanchor": "bottom", "font": {"size": 10, "color": colour}} for y, label, colour in levels]
    return fig


def grouped_bars(traces: list[dict[str, Any]], title: str, percent: bool = False) -> Figure:
    layout = _layout(title, barmode="group", hovermode="closest")
    if percent:
        _percent(layout)
    return {"data": [{"type": "bar", **t} for t in traces], "layout": layout}
