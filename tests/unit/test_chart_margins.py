"""The charts' margins are set from their labels up front (Plotly's automargin would otherwise
draw each figure a second time): room for level, tilted or upright x labels, the legend under
the axis, the weekday names of a heatmap and its colour bar."""

from ui import charts


def _margin(fig) -> dict:
    return fig.layout.margin.to_plotly_json()


def test_short_labels_stay_level_and_a_single_series_needs_no_legend_room():
    fig = charts.bars(["Mon", "Tue", "Wed"], {"Rate": [0.1, 0.2, 0.3]}, title="t", percent=True)
    margin = _margin(fig)
    assert margin["b"] < charts.LEGEND_B
    assert margin["r"] == 12
    assert fig.layout.xaxis.automargin  # still the safety net


def test_two_series_leave_room_for_the_legend_under_the_axis():
    fig = charts.bars(["Mon", "Tue"], {"A": [1, 2], "B": [2, 1]}, title="t")
    assert _margin(fig)["b"] >= charts.LEGEND_B


def test_many_long_labels_get_the_room_of_upright_labels():
    names = [f"Dr Bench {i:03}" for i in range(15)]
    fig = charts.bars(names, {"A": [1] * 15, "B": [1] * 15}, title="t")
    assert _margin(fig)["b"] >= charts.CHAR_PX * len(names[0])


def test_a_few_long_labels_are_tilted_and_the_last_one_reaches_right():
    services = ["Consultation", "Laser hair removal", "Vaccination", "Chemical peel"] * 2
    fig = charts.bars(services, {"A": [1] * 8}, title="t")
    margin = _margin(fig)
    assert charts.CHAR_PX * len("Laser hair removal") // 2 < margin["b"] < charts.LEGEND_B + 40
    assert margin["r"] > 12


def test_a_heatmap_keeps_room_for_its_row_names_and_colour_bar():
    fig = charts.heatmap(
        ["Monday", "Tue"], ["08:00", "09:00"], [[0.1, 0.2], [0.3, None]], title="t"
    )
    margin = _margin(fig)
    assert margin["l"] >= charts.CHAR_PX * len("Monday")
    assert margin["r"] >= 90


def test_wide_lines_keep_their_weekly_labels_tilted_not_upright():
    weeks = [f"{d} Sept 2026" for d in range(1, 15)]
    fig = charts.lines(weeks, {"A": [0.1] * 14, "B": [0.2] * 14}, title="t", percent=True)
    assert charts.LEGEND_B <= _margin(fig)["b"] < charts.CHAR_PX * len(weeks[0]) + 24
