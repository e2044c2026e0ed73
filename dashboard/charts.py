"""Small plotly figure builders shared by the pages: one look for every chart."""
from __future__ import annotations

from typing import Iterable

import pandas as pd
import plotly.graph_objects as go

LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=40, b=40), height=320,
              legend=dict(orientation="h", y=-0.2), hovermode="x unified")


def empty(title: str, message: str = "No data in this range") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **{**LAYOUT, "hovermode": False})
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#888"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def lines(frame: pd.DataFrame, title: str, percent: bool = False, columns: Iterable[str] | None = None) -> go.Figure:
    columns = list(columns) if columns is not None else list(frame.columns)
    if frame.empty or not columns:
        return empty(title)
    fig = go.Figure()
    for name in columns:
        fig.add_trace(go.Scatter(x=list(frame.index), y=frame[name].tolist(), mode="lines+markers",
                                 name=str(name), marker=dict(size=4)))
    fig.update_layout(title=title, **LAYOUT)
    if percent:
        fig.update_yaxes(tickformat=".2%")
    return fig


def stacked(frame: pd.DataFrame, title: str, top: int = 8) -> go.Figure:
    """Stacked daily bars, the `top` biggest columns kept and the rest summed as 'other'."""
    if frame.empty or not len(frame.columns) or not frame.to_numpy().sum():
        return empty(title)
    order = frame.sum().sort_values(ascending=False).index.tolist()
    keep, rest = order[:top], order[top:]
    fig = go.Figure()
    for name in keep:
        fig.add_trace(go.Bar(x=list(frame.index), y=frame[name].tolist(), name=str(name)))
    if rest:
        fig.add_trace(go.Bar(x=list(frame.index), y=frame[rest].sum(axis=1).tolist(), name="other"))
    fig.update_layout(title=title, barmode="stack", **LAYOUT)
    return fig


def bars(labels: list[str], values: list[float], title: str, percent: bool = False,
         horizontal: bool = False) -> go.Figure:
    if not labels:
        return empty(title)
    bar = go.Bar(y=labels, x=values, orientation="h") if horizontal else go.Bar(x=labels, y=values)
    fig = go.Figure(bar)
    fig.update_layout(title=title, **{**LAYOUT, "hovermode": "closest"})
    if percent:
        (fig.update_xaxes if horizontal else fig.update_yaxes)(tickformat=".2%")
    return fig


def with_lines(fig: go.Figure, levels: list[tuple[float, str, str]]) -> go.Figure:
    """Horizontal reference lines: (y, label, colour)."""
    for y, label, colour in levels:
        fig.add_hline(y=y, line_dash="dash", line_color=colour, annotation_text=label,
                      annotation_position="top left")
    return fig
