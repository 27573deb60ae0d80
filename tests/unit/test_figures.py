"""Key figures: a change that shows as nothing is grey with no arrow; others keep Streamlit's
direction and the colour asked for (a rise in a rate of cancellations is bad news)."""

from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest


def _page():
    import streamlit as st

    from ui.figures import key_figure

    for label, change, colour in (
        ("rate flat", "0,0 pp", "inverse"),
        ("money flat", "±£0.00", "inverse"),
        ("count flat", "0", "normal"),
        ("rate up", "+1,2 pp", "inverse"),
        ("money down", "-£3.50", "inverse"),
        ("no change known", None, "normal"),
    ):
        key_figure(st, label, "12,8%", change, colour=colour)
    key_figure(st, "flat, against", "12,8%", "0,0 pp", colour="inverse", against="(n=12)")


def test_a_change_of_nothing_is_neither_good_nor_bad_news():
    at = AppTest.from_function(_page).run()
    assert not at.exception
    shown = {m.label: (m.proto.color, m.proto.direction) for m in at.metric}
    for flat in ("rate flat", "money flat", "count flat", "flat, against"):
        assert shown[flat] == (Metric.MetricColor.GRAY, Metric.MetricDirection.NONE), flat
    assert shown["rate up"] == (Metric.MetricColor.RED, Metric.MetricDirection.UP)
    assert shown["money down"] == (Metric.MetricColor.GREEN, Metric.MetricDirection.DOWN)
    assert at.metric[5].delta == ""
    assert at.metric[6].delta == "0,0 pp (n=12)"  # what it is against: not a change
