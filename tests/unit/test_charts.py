"""The report charts' ECharts options: n on every chart and in every tooltip, the legend under
the plot only when there is more than one series, x labels tilted only when they do not fit,
empty values left empty, typed labels kept as plain text, and a description for screen
readers that says what the chart shows."""

import json

import pytest

from core.kernel.money import NO_VALUE, ClinicFormat
from ui import charts

GB = ClinicFormat(locale="en-GB")


def test_bars_carry_their_shown_values_and_n_into_the_tooltip():
    spec = charts.bars(
        ["Mon", "Tue"],
        {"A": [0.1, None], "B": [0.2, 0.3]},
        title="t",
        fmt=GB,
        percent=True,
        n=[3, 1200],
    )
    first = spec["series"][0]
    assert first["data"][0][1] == pytest.approx(10.0)  # percentages, for the axis
    assert first["data"][0][2:4] == ["10.0%", "Mon"]
    assert first["data"][1][1] is None and first["data"][1][2] == NO_VALUE  # empty, not zero
    assert first["data"][1][4] == "1,200"
    assert first["tooltip"]["formatter"] == "{@[3]}<br/>{a}: {@[2]}<br/>n = {@[4]}"
    assert spec["yAxis"]["axisLabel"]["formatter"] == "{value}%"
    assert spec["yAxis"]["minInterval"] == 1  # whole percentages on the axis
    assert spec["legend"]["show"] and spec["legend"]["bottom"] == 0
    assert spec["title"]["top"] < spec["grid"]["top"]  # the title above the plot
    assert (
        spec["aria"]["label"]["description"]
        == f"t. A: Mon 10.0%, Tue {NO_VALUE}. B: Mon 20.0%, Tue 30.0%."
    )


def test_one_series_has_no_legend_and_counts_are_not_percentages():
    spec = charts.bars(["1 ★", "2 ★"], {"Responses": [4, 2500]}, title="t", fmt=GB, n=[4, 2500])
    assert not spec["legend"]["show"]
    assert [d[2] for d in spec["series"][0]["data"]] == ["4", "2,500"]
    assert "axisLabel" not in spec["yAxis"]


def test_labels_tilt_only_when_they_do_not_fit():
    assert (
        charts.bars(["Mon", "Tue", "Wed"], {"A": [1, 2, 3]}, title="t", fmt=GB)["xAxis"][
            "axisLabel"
        ]["rotate"]
        == 0
    )
    services = ["Consultation", "Laser hair removal", "Vaccination", "Chemical peel"] * 2
    assert (
        charts.bars(services, {"A": [1] * 8}, title="t", fmt=GB)["xAxis"]["axisLabel"]["rotate"]
        == 30
    )
    names = [f"Dr Bench {i:03}" for i in range(15)]
    assert (
        charts.bars(names, {"A": [1] * 15}, title="t", fmt=GB)["xAxis"]["axisLabel"]["rotate"] == 90
    )
    weeks = [f"{d} Sept 2026" for d in range(1, 15)]
    wide = charts.lines(weeks, {"A": [0.1] * 14}, title="t", fmt=GB, percent=True)
    assert (
        wide["xAxis"]["axisLabel"]["rotate"] == 30 and wide["xAxis"]["axisLabel"]["interval"] == 0
    )


def test_a_year_earlier_is_dotted_and_faded():
    spec = charts.lines(
        ["w1", "w2"],
        {"Rate": [0.1, 0.2]},
        title="t",
        fmt=GB,
        percent=True,
        earlier={"Before": [0.3, None]},
    )
    earlier = spec["series"][1]
    assert earlier["lineStyle"] == {"color": charts.FADED[0], "type": "dotted"}
    assert earlier["data"][1][1] is None and "n =" not in earlier["tooltip"]["formatter"]


def test_a_heatmap_leaves_empty_cells_blank_and_scales_to_its_highest_rate():
    spec = charts.heatmap(
        ["Mon", "Tue"],
        ["08:00", "09:00"],
        [[0.1, 0.2], [0.4, None]],
        title="t",
        fmt=GB,
        n=[[1, 2], [3, 0]],
    )
    cells = spec["series"][0]["data"]
    assert [(c[0], c[1]) for c in cells] == [(0, 0), (1, 0), (0, 1)]  # no Tue 09:00
    assert spec["visualMap"]["max"] == 40.0 and spec["visualMap"]["dimension"] == 2
    assert spec["yAxis"]["data"] == ["Mon", "Tue"] and spec["yAxis"]["inverse"]
    assert "Tue 08:00 40.0%" in spec["aria"]["label"]["description"]


def test_typed_labels_stay_plain_text():
    label = "<b>zq</b> \u202eevil\x00"
    spec = charts.bars([label], {"Cancellations": [2]}, title=f"Reasons {label}", fmt=GB)
    text = json.dumps(spec, ensure_ascii=False)
    assert "<b>zq</b> [U+202E]evil" in text  # drawn as it is on the canvas, never as markup
    assert "&lt;" not in text and "\x00" not in text and "\u202e" not in text


def test_a_series_without_figures_is_empty_not_an_error():
    spec = charts.lines(["1", "2"], {"Predicted": [0.1, 0.2], "Baseline": []}, title="t", fmt=GB)
    assert [d[1] for d in spec["series"][1]["data"]] == [None, None]


def test_values_and_counts_follow_the_clinics_locale():
    brazil, germany = ClinicFormat(locale="pt-BR"), ClinicFormat(locale="de-DE")
    spec = charts.bars(
        ["Seg"],
        {"A": [0.128]},
        title=charts.with_n("t", 1234, brazil),
        fmt=brazil,
        percent=True,
        n=[1234],
    )
    assert spec["title"]["text"] == "t · n = 1.234"
    assert spec["series"][0]["data"][0][2:] == ["12,8%", "Seg", "1.234"]
    assert spec["yAxis"]["axisLabel"]["formatter"] == "{value}%"
    german = charts.bars(["Mo"], {"A": [0.128]}, title="t", fmt=germany, percent=True)
    assert german["series"][0]["data"][0][2] == "12,8\xa0%"
    assert german["yAxis"]["axisLabel"]["formatter"] == "{value}\xa0%"
    counts = charts.bars(["x"], {"A": [2500.5]}, title="t", fmt=germany)
    assert counts["series"][0]["data"][0][2] == "2.500,5"


def test_each_series_may_carry_its_own_n():
    """A rate's n is its own denominator: the cancellation rate's the bookings, the no-show
    rate's the visits due, and the same weeks a year earlier theirs (a series without one of
    its own has no n in its tooltip)."""
    spec = charts.lines(
        ["w1", "w2"],
        {"Cancellation rate": [0.1, 0.2], "No-show rate": [0.5, None]},
        title="t",
        fmt=GB,
        percent=True,
        n={
            "Cancellation rate": [10, 1200],
            "No-show rate": [4, 0],
            "No-show rate a year earlier": [8, 9],
        },
        earlier={"No-show rate a year earlier": [0.25, 0.1], "Other a year earlier": [0.1, 0.1]},
    )
    n = {s["name"]: [d[4] if len(d) > 4 else None for d in s["data"]] for s in spec["series"]}
    assert n == {
        "Cancellation rate": ["10", "1,200"],
        "No-show rate": ["4", "0"],  # a week of no visit due yet: n = 0 and no rate
        "No-show rate a year earlier": ["8", "9"],
        "Other a year earlier": [None, None],
    }
    assert spec["series"][1]["data"][1][2] == NO_VALUE
    bars = charts.bars(["Mon"], {"A": [0.1], "B": [0.2]}, title="t", fmt=GB, n={"A": [3]})
    assert [s["tooltip"]["formatter"].endswith("n = {@[4]}") for s in bars["series"]] == [
        True,
        False,
    ]


def test_a_value_over_few_is_marked_and_says_so():
    """With `few`, a value whose n is under its threshold is drawn apart (a lighter, hatched
    bar; a dashed ring on a line; a hatched heatmap cell) and its tooltip says "(few …)"; a
    value over more, or none at all, is left as it is."""
    few = charts.Few(10, {"A": "bookings"})
    spec = charts.bars(
        ["Mon", "Tue", "Wed"],
        {"A": [0.5, 0.1, None]},
        title="t",
        fmt=GB,
        percent=True,
        n=[2, 1200, 0],
        few=few,
    )
    thin, many, empty = spec["series"][0]["data"]
    assert thin["value"][2:] == ["50.0%", "Mon", "2", " (few bookings)"]
    assert thin["itemStyle"] == {"color": charts.FADED[0], "decal": charts.HATCH}
    assert many[4:] == ["1,200", ""] and empty[4:] == ["0", ""]
    assert spec["series"][0]["tooltip"]["formatter"].endswith("n = {@[4]}{@[5]}")
    assert "Mon 50.0% (few bookings)" in spec["aria"]["label"]["description"]
    assert charts.marked(spec)
    line = charts.lines(["w1"], {"B": [0.2]}, title="t", fmt=GB, n=[3], few=few)
    ring = line["series"][0]["data"][0]
    assert ring["value"][5] == " (few)" and ring["itemStyle"]["borderType"] == "dashed"
    heat = charts.heatmap(
        ["Mon"],
        ["09:00", "10:00"],
        [[0.5, 0.1]],
        title="t",
        fmt=GB,
        n=[[2, 40]],
        few=charts.Few(10, "bookings"),
    )
    cell, full = heat["series"][0]["data"]
    assert cell["value"][7] == " (few bookings)" and cell["itemStyle"]["decal"] == charts.HATCH
    assert full[7] == "" and "color" not in cell["itemStyle"]  # its colour is its rate's
    plain = charts.bars(["Mon"], {"A": [0.5]}, title="t", fmt=GB, percent=True, n=[2])
    assert not charts.marked(plain)  # without `few`, nothing is marked
