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


# Plotly's automargin makes room for tick labels and the legend after a first draw and then
# draws the whole figure again, often twice: most of a chart's time in the browser. Margins
# estimated from the labels up front (measured in Chromium with Streamlit's theme) leave it
# nothing to add, so a chart is drawn once; automargin stays on as the safety net for a
# narrower screen or labels wider than the estimate.
CHAR_PX = 6  # a generous average width of a character of Streamlit's 12 px chart font
PLOT_PX = {False: 330, True: 800}  # the plot area of a half- and a full-width chart
LEGEND_B = 70  # a one-row legend at y = −0.12 under a 340 px plot (Plotly's own push)


def _margins(
    x: Sequence, legend: bool, *, wide: bool = False, y: Sequence = (), colorbar: bool = False
) -> dict:
    """Left, right and bottom margins that hold the tick labels (Plotly tilts the x labels by
    30°, or 90° when even that is too tight, when they do not fit side by side), the legend
    and a colour bar."""
    labels = [str(v) for v in x]
    widest = max(map(len, labels), default=0)
    room = PLOT_PX[wide]
    if sum(CHAR_PX * len(v) + 12 for v in labels) <= room:  # level
        ticks, right = 38, 12
    elif room / len(labels) >= 30:  # tilted by 30°: the last label reaches to the right
        ticks, right = CHAR_PX * widest // 2 + 46, CHAR_PX * len(labels[-1]) // 2 + 24
    else:  # upright
        ticks, right = CHAR_PX * widest + 24, 24
    left = CHAR_PX * max((len(str(v)) for v in y), default=0) + 32 if y else 82
    return {
        "l": left,
        "r": 100 if colorbar else right,
        "t": 48,
        "b": max(ticks, LEGEND_B if legend else 0),
    }


def _figure(
    traces: list[dict],
    title: str,
    y_title: str = "",
    percent: bool = False,
    yaxis: dict | None = None,
    height: int = 340,
    margin: dict | None = None,
    wide: bool = False,
) -> go.Figure:
    """One figure built in a single pass (plotly validates once, not per update call). The
    title sits in the top margin and the legend under the x axis, so they cannot overlap."""
    if margin is None:
        shown = [t for t in traces if t.get("showlegend", True)]
        margin = _margins(traces[0].get("x", ()) if traces else (), len(shown) > 1, wide=wide)
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
                "margin": margin,
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
    wide: bool = True,
) -> go.Figure:
    """Lines over the labels; `earlier` adds the same series a year before, dotted. `wide`:
    drawn across the page (the report pages' weekly lines), for the margins' estimate."""
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
    return _figure(traces, title, y_title, percent, wide=wide)


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
    margin = _margins(columns, False, y=rows, colorbar=True)
    return _figure(
        [trace], title, yaxis={"autorange": "reversed", "automargin": True}, margin=margin
    )


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
