"""Plotly chart helpers shared by the report pages: one look, rates as percentages, n on every
chart, the title above the plot and the legend below it (they never overlap), and a click on a
bar that returns what was clicked. No typed text is rendered as HTML: plotly reads <b>, <a href>
… in labels, so every text label, series name and title goes through ui.text.for_html here
(callers pass plain values)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

from ui.text import for_html

COLOURS = ["#4c78a8", "#f58518", "#e45756", "#54a24b", "#b279a2", "#72b7b2"]
# a lighter partner of each colour: the same series a year earlier
FADED = ["#a9c1dc", "#fac28b", "#f1aaa9", "#a8d3a4", "#d8bcd0", "#b6dbd8"]


def with_n(title: str, n: int, what: str = "") -> str:
    return f"{title} · n = {n:,}{' ' + what if what else ''}"


def _labels(values: Sequence) -> list:
    return [for_html(v) if isinstance(v, str) else v for v in values]


def _figure(
    traces: list[dict],
    title: str,
    y_title: str = "",
    percent: bool = False,
    yaxis: dict | None = None,
    height: int = 340,
) -> go.Figure:
    """One figure built in a single pass (plotly validates once, not per update call). The
    title sits in the top margin and the legend under the x axis, so they cannot overlap."""
    return go.Figure(
        {
            "data": traces,
            "layout": {
                "title": {
                    "text": for_html(title),
                    "x": 0,
                    "xanchor": "left",
                    "y": 0.98,
                    "yanchor": "top",
                },
                "margin": {"l": 10, "r": 10, "t": 48, "b": 10},
                "height": height,
                "legend": {
                    "orientation": "h",
                    "yanchor": "top",
                    "y": -0.12,
                    "x": 0,
                    "xanchor": "left",
                },
                "xaxis": {"automargin": True},
                "yaxis": yaxis
                or {
                    "title": {"text": y_title},
                    "rangemode": "tozero",
                    "automargin": True,
                    **({"tickformat": ".0%"} if percent else {}),
                },
                "clickmode": "event+select",
                "dragmode": False,
            },
        }
    )


def _hover(percent: bool) -> str:
    value = "%{y:.1%}" if percent else "%{y:,}"
    return "%{x}<br>%{fullData.name}: " + value + "<br>n = %{customdata:,}<extra></extra>"


def bars(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    y_title: str = "",
    percent: bool = False,
    n: Sequence[int] | None = None,
) -> go.Figure:
    """Grouped bars: one trace per series, one group per label; `n` per label in the hover."""
    traces = [
        {
            "type": "bar",
            "x": _labels(labels),
            "y": list(values),
            "name": for_html(name),
            "marker": {"color": COLOURS[index % len(COLOURS)]},
            **({"customdata": list(n), "hovertemplate": _hover(percent)} if n is not None else {}),
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
    n: Sequence[int] | None = None,
    earlier: dict[str, Sequence[float | None]] | None = None,
) -> go.Figure:
    """Lines over the labels; `earlier` adds the same series a year before, dotted."""
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": _labels(labels),
            "y": list(values),
            "name": for_html(name),
            "line": {"color": COLOURS[index % len(COLOURS)]},
            **({"customdata": list(n), "hovertemplate": _hover(percent)} if n is not None else {}),
        }
        for index, (name, values) in enumerate(series.items())
    ]
    for index, (name, values) in enumerate((earlier or {}).items()):
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": list(labels),
                "y": list(values),
                "name": name,
                "line": {"color": FADED[index % len(FADED)], "dash": "dot"},
                "connectgaps": False,
            }
        )
    return _figure(traces, title, y_title, percent)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str,
    percent: bool = True,
    n: Sequence[Sequence[int]] | None = None,
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
    if n is not None:
        trace["customdata"] = [list(r) for r in n]
        trace["hovertemplate"] = "%{y} %{x}: %{z:.1%}<br>n = %{customdata:,}<extra></extra>"
    return _figure([trace], title, yaxis={"autorange": "reversed", "automargin": True})


def show(fig: go.Figure, key: str, selectable: bool = False) -> list[dict]:
    """Draw a figure; when `selectable`, a click on a bar reruns (the enclosing fragment only)
    and the clicked points are returned (each with its point_index and x)."""
    config = {"displaylogo": False}
    if not selectable:
        st.plotly_chart(fig, key=key, width="stretch", config=config)
        return []
    event = st.plotly_chart(
        fig,
        key=key,
        width="stretch",
        config=config,
        on_select="rerun",
        selection_mode="points",
    )
    try:
        return list(event["selection"]["points"])  # type: ignore[index]
    except (KeyError, TypeError):
        return []
