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


def lines(frame: pd.DataFrame, title: str, percent: bool = False, columns: Iterable[str] | None = None) -> Figure:
    columns = list(columns) if columns is not None else list(frame.columns)
    if frame.empty or not columns:
        return empty(title)
    x = _x(frame.index)
    data = [{"type": "scatter", "mode": "lines+markers", "name": str(name), "x": x, "y": _y(frame[name]),
             "marker": {"size": 4}, "connectgaps": False} for name in columns]
    layout = _layout(title)
    if percent:
        _percent(layout)
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
