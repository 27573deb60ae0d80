"""Display pieces of the survey analytics page. Comments are patient text: they are only ever
shown through st.dataframe (rendered as plain text), never as Markdown or HTML."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.analytics import surveys as sa

FORMULAS = f"""
- **NPS** = % promoters (answered 9–10) − % detractors (0–6), in percentage points from −100
  to +100, over the responses that answered *would you recommend us* (imported responses with
  only a star rating are left out). Passives (7–8) count in the total only.
- **CSAT** = share of overall ratings that are 4 or 5 (of 1–5).
- **Average rating** x̄ over n ratings, **95% interval** x̄ ± t(0.975, n−1) · s / √n with
  s² = (Σx² − (Σx)²/n) / (n − 1). Groups with fewer than {sa.MIN_N} ratings are marked
  *low n* (hidden unless you ask for them): their figures move a lot with each answer.
- **Funnel**: completed visits in the period (by visit date) → asked for feedback → answered;
  the rates are requested ÷ completed and answered ÷ requested.
- Weeks start on Monday; weeks and months are by submission date (UTC).
"""


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.0f}" if signed else f"{value:.0f}%"


def overview(s: sa.Figures) -> None:
    cols = st.columns(4)
    cols[0].metric("Responses", f"{s.responses:,}")
    cols[1].metric("NPS", _pct(s.nps, signed=True), help=f"over {s.nps_n:,} answers (0–10)")
    cols[2].metric("CSAT", _pct(s.csat), help=f"over {s.rating_n:,} ratings (1–5)")
    interval = s.interval
    cols[3].metric(
        "Average rating",
        "—" if s.mean is None else f"{s.mean:.2f} / 5",
        help=f"n = {s.rating_n:,}"
        + (f", 95% interval {interval[0]:.2f}–{interval[1]:.2f}" if interval else ""),
    )
    if interval:
        st.caption(
            f"Average rating {s.mean:.2f} (95% interval {interval[0]:.2f}–"
            f"{interval[1]:.2f}, n = {s.rating_n:,})"
        )
    groups = st.columns(3)
    groups[0].metric("Promoters (9–10)", f"{s.promoters:,}")
    groups[1].metric("Passives (7–8)", f"{s.passives:,}")
    groups[2].metric("Detractors (0–6)", f"{s.detractors:,}")


def funnel(f: sa.Funnel) -> None:
    st.subheader("Response funnel")
    steps = st.columns(3)
    steps[0].metric("Completed visits", f"{f.completed:,}")
    steps[1].metric(
        "Asked for feedback",
        f"{f.requested:,}",
        _pct(f.request_rate) + " of completed",
        delta_color="off",
        delta_arrow="off",
    )
    steps[2].metric(
        "Answered",
        f"{f.answered:,}",
        _pct(f.answer_rate) + " of asked",
        delta_color="off",
        delta_arrow="off",
    )


def detractors(frame: pd.DataFrame) -> None:
    st.subheader(f"Detractors of the last {sa.DETRACTOR_DAYS} days")
    if frame.empty:
        st.caption("None — nobody answered 0–6 in the last seven days.")
        return
    shown = frame.assign(
        visit=[f"/appointment?id={int(a)}" if pd.notna(a) else None for a in frame.appointment_id]
    )
    st.dataframe(
        shown[
            [
                "visit",
                "appointment_id",
                "submitted",
                "clinic",
                "provider",
                "nps",
                "rating",
                "comment",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "visit": st.column_config.LinkColumn("", display_text="Open", width="small"),
            "appointment_id": st.column_config.NumberColumn("Appointment", format="#%d"),
            "nps": "Recommend",
            "comment": st.column_config.TextColumn("Comment", width="large"),
        },
    )


def groups(board: sa.Groups, show_small: bool) -> None:
    for title, frame in (
        ("By provider", board.providers),
        ("By service", board.services),
        ("By clinic", board.clinics),
    ):
        st.subheader(title)
        shown = frame if show_small else frame[frame.enough]
        hidden = len(frame) - len(shown)
        if hidden:
            st.caption(f"{hidden} group(s) with fewer than {sa.MIN_N} ratings hidden.")
        shown = shown.assign(enough=shown.enough.map({True: "", False: "low n"}))
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            column_config={
                "mean": st.column_config.NumberColumn("Average", format="%.2f"),
                "ci_low": st.column_config.NumberColumn("95% from", format="%.2f"),
                "ci_high": st.column_config.NumberColumn("95% to", format="%.2f"),
                "csat": st.column_config.NumberColumn("CSAT %", format="%.0f"),
                "nps": st.column_config.NumberColumn("NPS", format="%+.0f"),
                "nps_n": "NPS n",
                "enough": "Note",
            },
        )


def _chart(frame: pd.DataFrame, title: str, label: str) -> None:
    """NPS and CSAT lines over the responses' bars: a plain Vega-Lite spec (no Altair objects
    to build, so the page stays quick)."""
    data = frame.assign(period=frame.period.dt.strftime(label))
    x = {"field": "period", "type": "ordinal", "title": None, "sort": None}
    spec = {
        "title": title,
        "height": 260,
        "resolve": {"scale": {"y": "independent"}},
        "layer": [
            {
                "mark": {"type": "bar", "opacity": 0.25},
                "encoding": {
                    "x": x,
                    "y": {"field": "responses", "type": "quantitative", "title": "responses"},
                },
            },
            {
                "transform": [{"fold": ["nps", "csat"], "as": ["figure", "value"]}],
                "mark": {"type": "line", "point": True},
                "encoding": {
                    "x": x,
                    "y": {"field": "value", "type": "quantitative", "title": "NPS / CSAT %"},
                    "color": {"field": "figure", "type": "nominal", "title": None},
                },
            },
        ],
    }
    st.vega_lite_chart(data, spec, width="stretch")


def trends(board: sa.Trends) -> None:
    for title, frame, label in (
        ("Weekly (weeks from Monday)", board.weekly, "%d %b %Y"),
        ("Monthly", board.monthly, "%b %Y"),
    ):
        if frame.empty:
            st.caption(f"{title}: no responses in this period.")
            continue
        _chart(frame, f"{title}: NPS, CSAT and responses", label)


def comment_feed(frame: pd.DataFrame) -> None:
    if frame.empty:
        st.caption("No comments match.")
        return
    st.dataframe(
        frame[["submitted", "clinic", "provider", "nps", "rating", "comment"]],
        hide_index=True,
        width="stretch",
        column_config={
            "comment": st.column_config.TextColumn("Comment", width="large"),
            "nps": "Recommend",
        },
    )
