"""Plotly chart helpers shared by the report pages: one look, rates as percentages, no
typed text rendered as HTML: plotly reads <b>, <a href> … in labels, so every text label, series
name and title goes through ui.text.for_html here (callers pass plain values)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

from ui.text import for_html

COLOURS = ["#4c78a8", "#f58518", "#e45756", "#54a24b", "#b279a2", "#72b7b2"]


def _labels(values: Sequence) -> list:
    return [for_html(v) if isinstance(v, str) else v for v in values]


def _figure(
    traces: list[dict],
    title: str,
    y_title: str = "",
    percent: bool = False,
    yaxis: dict | None = None,
) -> go.Figure:
    """One figure built in a single pass (plotly validates once, not per update call)."""
    return go.Figure(
        {
            "data": traces,
            "layout": {
                "title": {"text": for_html(title)},
                "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                "height": 320,
                "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
                "yaxis": yaxis
                or {
                    "title": {"text": y_title},
                    "rangemode": "tozero",
                    **({"tickformat": ".0%"} if percent else {}),
                },
            },
        }
    )


def bars(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    y_title: str = "",
    percent: bool = False,
) -> go.Figure:
    """Grouped bars: one trace per series, one group per label."""
    traces = [
        {
            "type": "bar",
            "x": _labels(labels),
            "y": list(values),
            "name": for_html(name),
            "marker": {"color": COLOURS[index % len(COLOURS)]},
        }
        for index, (name, values) in enumerate(series.items())
    ]
    return _figure(traces, title, y_title, percent)


def lines(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    y_title: str = "",
    percent: bool = False,
) -> go.Figure:
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": _labels(labels),
            "y": list(values),
            "name": for_html(name),
            "line": {"color": COLOURS[index % len(COLOURS)]},
        }
        for index, (name, values) in enumerate(series.items())
    ]
    return _figure(traces, title, y_title, percent)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str,
    percent: bool = True,
) -> go.Figure:
    trace = {
        "type": "heatmap",
        "z": [list(r) for r in values],
        "x": _labels(columns),
        "y": _labels(rows),
        "colorscale": "Reds",
        "hoverongaps": False,
        "zmin": 0,
        "colorbar": {"tickformat": ".0%"} if percent else {},
    }
    return _figure([trace], title, yaxis={"autorange": "reversed"})


def show(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, key=key, width="stretch", config={"displaylogo": False})
