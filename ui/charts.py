"""Charts shared by the report pages, drawn with Streamlit's ECharts element: one look, rates
as percentages, n on every chart and in every tooltip, the title above the plot and the legend
below it (they never overlap), and a click on a bar that returns what was clicked.

ECharts draws on a canvas in one pass and lays out its own axis labels; Plotly drew each chart
twice (Streamlit measures the chart's width only after a first, hidden draw). Measured in
Chromium: seven charts in a test app took a third of Plotly's main-thread time; on the
Cancellations page its seven charts add about 190 ms to a visit (Plotly's added 260 ms), and
the chart library the browser loads on a first visit is 1.2 MB instead of 4.7 MB.

Every value is shown in the clinic's locale (ClinicFormat: '12,8%' and '1.234' in pt-BR).

Typed text is never markup: ECharts draws labels, names and titles as plain text, and
Streamlit expands a tooltip template with every value HTML-escaped. Labels still go through
ui.text.plain (control characters and direction overrides)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.kernel.money import NO_VALUE, ClinicFormat
from ui.text import plain

COLOURS = ["#4c78a8", "#f58518", "#e45756", "#54a24b", "#b279a2", "#72b7b2"]
# a lighter partner of each colour: the same series a year earlier
FADED = ["#a9c1dc", "#fac28b", "#f1aaa9", "#a8d3a4", "#d8bcd0", "#b6dbd8"]
HEIGHT = 340
HEAT = ["#fff5f0", "#fcbba1", "#fb6a4a", "#cb181d", "#67000d"]  # ColorBrewer Reds
CHAR_PX = 7  # a generous width of a character of the 12 px axis font
PLOT_PX = {False: 330, True: 800}  # the plot area of a half- and a full-width chart

# a rate over few (its n under Few.below) is marked: a lighter, hatched bar, a hatched heatmap
# cell, a larger dashed ring on a line; its tooltip says "(few bookings)"
HATCH = {
    "symbol": "rect",
    "symbolSize": 1,
    "color": "rgba(0, 0, 0, 0.35)",
    "dashArrayX": [1, 0],
    "dashArrayY": [2, 4],
    "rotation": -0.7854,  # diagonal stripes
}

Spec = dict[str, Any]
# n per label, one list for every series, or each series' own (a rate's own denominator: the
# cancellation rate's is the bookings, the no-show rate's the visits due; NPS's the 0–10
# answers, CSAT's the ratings)
Ns = Sequence[int] | dict[str, Sequence[int]]


@dataclass(frozen=True)
class Few:
    """Marks a value whose n is under `below` (a rate over 2 bookings is not one over 400):
    `what` names what each series' n counts ("bookings"), one word for all or per series."""

    below: int
    what: str | dict[str, str] = field(default="")

    def says(self, name: str, n: int) -> str:
        """' (few bookings)' for a value over fewer than `below` (but some), else ''."""
        if not 0 < n < self.below:
            return ""
        word = self.what if isinstance(self.what, str) else self.what.get(name, "")
        return f" (few {word})" if word else " (few)"


def marked(spec: Spec) -> bool:
    """Whether the chart marks any value as over few (`Few`)."""
    return any(isinstance(item, dict) for one in spec["series"] for item in one["data"])


def _value(item: list | dict) -> list:
    return item["value"] if isinstance(item, dict) else item


def _n_of(n: Ns | None, name: str) -> Sequence[int] | None:
    return n.get(name) if isinstance(n, dict) else n


def with_n(title: str, n: int, fmt: ClinicFormat, what: str = "") -> str:
    return f"{title} · n = {fmt.number(n)}{' ' + what if what else ''}"


def _shown(value: float | None, percent: bool, fmt: ClinicFormat) -> str:
    if percent:
        return fmt.percent(value)  # NO_VALUE for no value, as below
    if value is None or value != value:
        return NO_VALUE
    return fmt.number(value, 0 if float(value).is_integer() else 1)


def _percent_axis(fmt: ClinicFormat) -> Spec:
    """Whole-percent ticks with the locale's percent sign ('{value}%', '{value} %'): the axis
    numbers themselves are ECharts', and a whole number reads the same in every locale."""
    zero = fmt.percent(0, 0)
    return {"minInterval": 1, "axisLabel": {"formatter": zero.replace("0", "{value}", 1)}}


def _rotation(labels: Sequence[str], wide: bool) -> int:
    """Tilt the x labels when they do not fit side by side (every label is shown)."""
    room = PLOT_PX[wide]
    if sum(CHAR_PX * len(v) + 12 for v in labels) <= room:
        return 0
    return 30 if room / max(len(labels), 1) >= 30 else 90


def _figure(
    labels: Sequence[str],
    series: list[Spec],
    title: str,
    y_title: str,
    percent: bool,
    wide: bool,
    fmt: ClinicFormat,
) -> Spec:
    """The option of a chart over category labels: title at the top left, legend at the
    bottom (when there is more than one series), labels kept inside the chart."""
    legend = sum(1 for s in series if s.get("name")) > 1
    return {
        "animation": False,
        "aria": {"enabled": True, "label": {"description": _described(title, series)}},
        "title": {"text": plain(title), "left": 0, "top": 4, "textStyle": {"fontSize": 14}},
        "legend": {"show": legend, "bottom": 0, "left": 0},
        "grid": {"left": 8, "right": 16, "top": 48, "bottom": 40 if legend else 8},
        "tooltip": {"trigger": "item"},
        "xAxis": {
            "type": "category",
            "data": list(labels),
            "axisLabel": {"interval": 0, "rotate": _rotation(labels, wide)},
        },
        "yAxis": {
            "type": "value",
            "name": plain(y_title),
            **(_percent_axis(fmt) if percent else {}),
        },
        "series": series,
    }


def _described(title: str, series: list[Spec]) -> str:
    """What a screen reader says: the title, then each series' labels and shown values."""
    parts = [plain(title)]
    for one in series:
        values = ", ".join(
            f"{v[3]} {v[2]}{v[5] if len(v) > 5 else ''}" for v in map(_value, one["data"])
        )
        parts.append(f"{one['name']}: {values}")
    return ". ".join(parts) + "."


def _items(
    labels: Sequence[str],
    values: Sequence[float | None],
    n: Sequence[int] | None,
    percent: bool,
    fmt: ClinicFormat,
    few: tuple[Few, str, Spec] | None = None,
) -> tuple[list, str]:
    """Each point as [position, y, shown value, label, n] (by position: two groups may share a
    name) and its tooltip (Streamlit escapes {a} and every {@[i]} it expands). A series shorter
    than the labels (a baseline without figures) is empty where it has no value. With n and
    `few` (the Few, the series' name, the look of a point over few), each point carries what
    Few.says too, and a point over few is drawn as {"value": point, **look}."""
    scale = 100 if percent else 1
    values = [*values[: len(labels)], *[None] * (len(labels) - len(values))]
    marking = few is not None and n is not None
    items = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        empty = v is None or v != v
        item = [i, None if empty else v * scale, _shown(v, percent, fmt), label]
        item += [fmt.number(n[i])] if n is not None else []
        if marking:
            rule, name, look = few
            item.append("" if empty else rule.says(name, n[i]))
        items.append({"value": item, **look} if marking and item[5] else item)
    tip = "{@[3]}<br/>{a}: {@[2]}" + ("<br/>n = {@[4]}" if n is not None else "")
    return items, tip + ("{@[5]}" if marking else "")


def bars(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    fmt: ClinicFormat,
    y_title: str = "",
    percent: bool = False,
    n: Ns | None = None,
    few: Few | None = None,
) -> Spec:
    """Grouped bars: one series per entry, one group per label; `n` per label in the tooltip
    (one list for all series, or a dict of each series' own); with `few`, a bar over few is
    lighter and hatched."""
    labels = [plain(v) for v in labels]
    out = []
    for index, (name, values) in enumerate(series.items()):
        look = {"itemStyle": {"color": FADED[index % len(FADED)], "decal": HATCH}}
        marking = (few, name, look) if few else None
        items, tip = _items(labels, values, _n_of(n, name), percent, fmt, marking)
        out.append(
            {
                "type": "bar",
                "name": plain(name),
                "data": items,
                "encode": {"x": 0, "y": 1},
                "itemStyle": {"color": COLOURS[index % len(COLOURS)]},
                "tooltip": {"formatter": tip},
            }
        )
    return _figure(labels, out, title, y_title, percent, False, fmt)


def lines(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    fmt: ClinicFormat,
    y_title: str = "",
    percent: bool = False,
    n: Ns | None = None,
    earlier: dict[str, Sequence[float | None]] | None = None,
    wide: bool = True,
    few: Few | None = None,
) -> Spec:
    """Lines over the labels; `earlier` adds the same series a year before, dotted (with its
    own n when `n` is a dict naming it too). `wide`: drawn across the page (the report pages'
    weekly lines). With `few`, a point over few is a larger, lighter, dashed ring."""
    labels = [plain(v) for v in labels]

    def line(name: str, values, colour: str, counts, dotted: bool = False) -> Spec:
        faded = FADED[COLOURS.index(colour)] if colour in COLOURS else colour
        ring = {"color": faded, "borderType": "dashed", "borderWidth": 2}
        look = {"symbol": "emptyCircle", "symbolSize": 10, "itemStyle": ring}
        marking = (few, name, look) if few else None
        items, tip = _items(labels, values, counts, percent, fmt, marking)
        return {
            "type": "line",
            "name": plain(name),
            "data": items,
            "encode": {"x": 0, "y": 1},
            "itemStyle": {"color": colour},
            "lineStyle": {"color": colour, **({"type": "dotted"} if dotted else {})},
            "tooltip": {"formatter": tip},
            **({"symbol": "none"} if dotted else {}),
        }

    out = [
        line(name, values, COLOURS[i % len(COLOURS)], _n_of(n, name))
        for i, (name, values) in enumerate(series.items())
    ]
    out += [
        line(
            name,
            values,
            FADED[i % len(FADED)],
            _n_of(n, name) if isinstance(n, dict) else None,
            dotted=True,
        )
        for i, (name, values) in enumerate((earlier or {}).items())
    ]
    return _figure(labels, out, title, y_title, percent, wide, fmt)


def heat_cells(values: Sequence[Sequence[float | None]]) -> list[tuple[int, int]]:
    """(row, column) of each cell a heatmap draws, in the order of its data (what a click's
    index points at): the cells with a value, row by row."""
    return [
        (r, c)
        for r, line in enumerate(values)
        for c, v in enumerate(line)
        if v is not None and v == v
    ]


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str,
    fmt: ClinicFormat,
    percent: bool = True,
    n: Sequence[Sequence[int]] | None = None,
    few: Few | None = None,
) -> Spec:
    """Rows top to bottom, columns left to right; empty cells stay blank. With `few` and `n`,
    a cell over few is hatched, inside a dashed border (its colour stays its rate's)."""
    rows, columns = [plain(r) for r in rows], [plain(c) for c in columns]
    scale = 100 if percent else 1
    look = {"itemStyle": {"decal": HATCH, "borderColor": "#555", "borderType": "dashed"}}
    cells = []
    for r, c in heat_cells(values):
        v = values[r][c]
        cell = [c, r, v * scale, _shown(v, percent, fmt), "" if n is None else fmt.number(n[r][c])]
        cell += [rows[r], columns[c], few.says("", n[r][c]) if few and n is not None else ""]
        cells.append({"value": cell, **look} if cell[7] else cell)
    top = max((_value(cell)[2] for cell in cells), default=0) or 1
    spec = _figure(columns, [], title, "", False, False, fmt)
    said = [_value(cell) for cell in cells]
    cells_said = ", ".join(f"{v[5]} {v[6]} {v[3]}{v[7]}" for v in said)
    spec["aria"]["label"]["description"] = f"{plain(title)}. {cells_said}."
    spec["grid"] = {"left": 8, "right": 72, "top": 48, "bottom": 8}
    spec["yAxis"] = {"type": "category", "data": rows, "inverse": True}
    spec["visualMap"] = {
        "min": 0,
        "max": top,
        "calculable": False,
        "orient": "vertical",
        "right": 0,
        "top": "middle",
        "dimension": 2,
        "text": [_shown(top / scale, percent, fmt), _shown(0, percent, fmt)],
        "inRange": {"color": HEAT},
    }
    tip = "{@[5]} {@[6]}: {@[3]}" + ("<br/>n = {@[4]}{@[7]}" if n is not None else "")
    spec["series"] = [
        {
            "type": "heatmap",
            "data": cells,
            "encode": {"x": 0, "y": 1, "value": 2},
            "tooltip": {"formatter": tip},
        }
    ]
    return spec


def show(spec: Spec, key: str, selectable: bool = False) -> list[tuple[int, int]]:
    """Draw a chart; when `selectable`, a click on a bar or point reruns (the enclosing fragment
    only) and the selected points are returned as (series, index)."""
    if not selectable:
        st.echarts_chart(spec, key=key, height=HEIGHT)
        return []
    series = [{**one, "selectedMode": "single"} for one in spec["series"]]
    event = st.echarts_chart({**spec, "series": series}, key=key, height=HEIGHT, on_select="rerun")
    try:
        groups = event["selection"]["selected"]
    except (KeyError, TypeError):
        return []
    return [(group["series_index"], index) for group in groups for index in group["data_indices"]]


def clicked_point(key: str, points: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The point (series, index) the latest click on chart `key` chose: the one not selected
    before (a series keeps its own selection), once per click; None for no click."""
    seen = {tuple(p) for p in st.session_state.get(f"{key}_seen") or []}
    st.session_state[f"{key}_seen"] = points
    new = [p for p in points if tuple(p) not in seen]
    return tuple(new[0]) if new else None


def clicked(key: str, points: list[tuple[int, int]], keys: Sequence[Any]) -> Any:
    """What the latest click on chart `key` chose, whichever series (`clicked_point`): the
    key of its index; None for no click or a point without a key."""
    point = clicked_point(key, points)
    if point is None:
        return None
    index = point[1]
    return keys[index] if 0 <= index < len(keys) else None
