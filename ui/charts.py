"""Plotly chart helpers shared by the report pages: one look, rates as percentages, no
patient-supplied text rendered as HTML (plotly escapes labels; callers pass plain values)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

COLOURS = ["#4c78a8", "#f58518", "#e45756", "#54a24b", "#b279a2", "#72b7b2"]


def _layout(fig: go.Figure, title: str, y_title: str = "", percent: bool = False) -> go.Figure:
    fig.update_layout(
        title=title, margin=dict(l=10, r=10, t=40, b=10), height=320,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )  # fmt: skip
    fig.update_yaxes(title=y_title, tickformat=".0%" if percent else None, rangemode="tozero")
    return fig


def bars(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    y_title: str = "",
    percent: bool = False,
) -> go.Figure:
    """Grouped bars: one trace per series, one group per label."""
    fig = go.Figure()
    for index, (name, values) in enumerate(series.items()):
        fig.add_bar(x=list(labels), y=list(values), name=name,
                    marker_color=COLOURS[index % len(COLOURS)])  # fmt: skip
    return _layout(fig, title, y_title, percent)


def lines(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    y_title: str = "",
    percent: bool = False,
) -> go.Figure:
    fig = go.Figure()
    for index, (name, values) in enumerate(series.items()):
        fig.add_scatter(x=list(labels), y=list(values), name=name, mode="lines+markers",
                        line_color=COLOURS[index % len(COLOURS)])  # fmt: skip
    return _layout(fig, title, y_title, percent)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str,
    percent: bool = True,
) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=[list(r) for r in values], x=list(columns), y=list(rows),
                               colorscale="Reds", hoverongaps=False,
                               zmin=0, colorbar=dict(tickformat=".0%" if percent else None)))  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title)


def show(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, key=key, width="stretch", config={"displaylogo": False})
