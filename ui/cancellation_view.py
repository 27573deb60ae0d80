"""Widgets of the Cancellations page: key figures, charts, what-if table and the formulas.
Everything shown is computed by core.analytics.cancellations; this module only draws it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.analytics.cancellation_parts import WEEKDAYS, CancellationFigures, Counts, WhatIf
from ui import charts

FORMULAS = """
**How the figures are computed** (clinic-local days and hours; out-of-office blocks excluded)

- *booked* = appointments starting in the range that were scheduled, checked in, completed,
  missed (no-show) or cancelled
- **cancellation rate** = cancelled ÷ booked · **late-cancellation rate** = cancellations
  marked late under the policy version in force ÷ booked
- **no-show rate** = no-shows ÷ (no-shows + completed + checked in)
- **lead time** = start − booked · **cancellation notice** = start − cancelled
- **request turnaround** = decided − requested, online requests (approved or declined)
- **revenue at risk** = price of the services of cancelled and no-show appointments
- **refill rate** = cancelled slots booked again ÷ cancelled; booked again = another
  appointment of the same provider overlapping the slot, created after the cancellation
- **fees** = fees assessed on these appointments, and the part waived
- **repeat patients** = late cancellations + no-shows ≥ 2 in the range
- **what-if** = patients' cancellations whose notice was shorter than the chosen window would
  have been late (the practice's own cancellations are never charged); charged = late × fee;
  points = late × points (next to what actually happened)
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def key_figures(f: CancellationFigures) -> None:
    t = f.totals
    cols = st.columns(4)
    cols[0].metric("Booked", f"{t.booked:,}")
    cols[1].metric(
        "Cancellation rate",
        _pct(t.cancellation_rate),
        f"{t.cancelled:,} cancelled",
        delta_color="off",
    )
    cols[2].metric(
        "Late-cancellation rate",
        _pct(t.late_cancellation_rate),
        f"{t.late:,} late",
        delta_color="off",
    )
    cols[3].metric(
        "No-show rate", _pct(t.no_show_rate), f"{t.no_shows:,} no-shows", delta_color="off"
    )
    cols = st.columns(4)
    cols[0].metric("Revenue at risk", _money(f.revenue_at_risk_cents))
    cols[1].metric(
        "Refill rate", _pct(f.refill_rate), f"{f.refilled:,} slots refilled", delta_color="off"
    )
    mean = f.turnaround_mean_hours
    cols[2].metric("Mean request turnaround", "–" if mean is None else f"{mean:.1f} h")
    fees = f.fees
    cols[3].metric(
        "Fees assessed",
        _money(fees.late_assessed_cents + fees.no_show_assessed_cents),
        f"{_money(fees.late_waived_cents + fees.no_show_waived_cents)} waived",
        delta_color="off",
    )


def _rate_bars(groups: list[Counts], title: str, key: str) -> None:
    charts.show(
        charts.bars(
            [c.label for c in groups],
            {
                "Cancellation rate": [c.cancellation_rate for c in groups],
                "No-show rate": [c.no_show_rate for c in groups],
            },
            title=title,
            percent=True,
        ),
        key=key,
    )


def rate_charts(f: CancellationFigures) -> None:
    left, right = st.columns(2)
    with left:
        _rate_bars(f.by_weekday, "Rates by weekday", "cancel_chart_weekday")
    with right:
        charts.show(
            charts.lines(
                [c.label for c in f.weekly],
                {
                    "Cancellation rate": [c.cancellation_rate for c in f.weekly],
                    "Late-cancellation rate": [c.late_cancellation_rate for c in f.weekly],
                    "No-show rate": [c.no_show_rate for c in f.weekly],
                },
                title="Weekly trend (week starting)",
                percent=True,
            ),
            key="cancel_chart_weekly",
        )
    heat_metric = st.segmented_control(
        "Heatmap shows",
        ["Cancellation rate", "No-show rate"],
        default="Cancellation rate",
        key="cancel_heat_metric",
    )
    heat_metric = heat_metric or "Cancellation rate"
    hours = sorted({cell.hour for cell in f.heatmap})
    grid = {(cell.weekday, cell.hour): cell.counts for cell in f.heatmap}
    attribute = "no_show_rate" if heat_metric == "No-show rate" else "cancellation_rate"
    values = [
        [getattr(grid[(w, h)], attribute) if (w, h) in grid else None for h in hours]
        for w in range(7)
    ]
    charts.show(
        charts.heatmap(
            WEEKDAYS,
            [f"{h:02d}:00" for h in hours],
            values,
            title=f"{heat_metric} by weekday and hour",
        ),
        key="cancel_chart_heatmap",
    )


def time_charts(f: CancellationFigures) -> None:
    left, right = st.columns(2)
    with left:
        _rate_bars(f.by_lead_time, "Rates by lead time (start − booked)", "cancel_chart_lead")
        charts.show(
            charts.bars(
                [label for label, _ in f.turnaround],
                {"Requests": [n for _, n in f.turnaround]},
                title="Request turnaround (decided − requested)",
            ),
            key="cancel_chart_turnaround",
        )
    with right:
        charts.show(
            charts.bars(
                [label for label, _ in f.notice],
                {"Cancellations": [n for _, n in f.notice]},
                title="Cancellation notice (start − cancelled)",
            ),
            key="cancel_chart_notice",
        )
        charts.show(
            charts.bars(
                ["SMS reminder", "No SMS reminder"],
                {"No-show rate": [c.no_show_rate for c in f.by_sms]},
                title="No-show rate by SMS reminder",
                percent=True,
            ),
            key="cancel_chart_sms",
        )


def reasons_and_fees(f: CancellationFigures) -> None:
    left, right = st.columns(2)
    with left:
        # reasons may be typed by patients: charts escape every label (ui.text.for_html)
        charts.show(
            charts.bars(
                [r for r, _ in f.reasons],
                {"Cancellations": [n for _, n in f.reasons]},
                title="Cancellations by reason",
            ),
            key="cancel_chart_reasons",
        )
    with right:
        fees = f.fees
        charts.show(
            charts.bars(
                ["Late cancellation", "No-show"],
                {
                    "Assessed": [fees.late_assessed_cents / 100, fees.no_show_assessed_cents / 100],
                    "Waived": [fees.late_waived_cents / 100, fees.no_show_waived_cents / 100],
                },
                title="Fees assessed and waived",
                y_title="amount",
            ),
            key="cancel_chart_fees",
        )


def what_if_inputs() -> WhatIf:
    with st.form("cancel_whatif"):
        st.markdown("Another window, fee or points value, replayed on the same history")
        w1, w2, w3 = st.columns(3)
        window = w1.number_input("Window (hours)", value=12, step=1, key="cancel_whatif_window")
        fee = w2.number_input(
            "Late fee", value=25.0, step=5.0, format="%.2f", key="cancel_whatif_fee"
        )
        points = w3.number_input("Points", value=20, step=5, key="cancel_whatif_points")
        st.form_submit_button("Compare")
    return WhatIf(int(window), round(fee * 100), int(points))


def what_if_table(f: CancellationFigures) -> None:
    w = f.what_if
    if w is None:
        return
    st.dataframe(
        pd.DataFrame(
            {
                "": ["Late cancellations", "Late-cancellation fees", "Points deducted"],
                "Actual (policy in force)": [
                    f"{w.actual_late:,}",
                    _money(w.actual_fee_cents),
                    f"{w.actual_points:,}",
                ],
                f"What-if ({w.window_hours} h window)": [
                    f"{w.late:,}",
                    _money(w.fee_cents),
                    f"{w.points:,}",
                ],
            }
        ),
        hide_index=True,
        width="stretch",
        key="cancel_whatif_table",
    )


def repeat_patients(f: CancellationFigures) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Patient #": p.patient_id,
                    "Name": p.name,
                    "Late cancellations": p.late_cancellations,
                    "No-shows": p.no_shows,
                }
                for p in f.repeat_patients
            ]
        ),
        hide_index=True,
        width="stretch",
        key="cancel_repeat_table",
    )


# the optional parts of the figures each section needs (core.analytics.cancellations.PARTS)
NEEDS = {
    "Weekday, hour and trend": frozenset({"by_day"}),
    "Lead time and turnaround": frozenset({"timing"}),
    "Reasons and fees": frozenset({"reasons"}),
    "Repeat patients": frozenset({"repeat_patients"}),
}


def no_charts(f: CancellationFigures) -> None:
    st.caption(
        "Choose above: the what-if on another policy, or a group of charts (weekday, "
        "hour and trend; lead time and turnaround; reasons and fees; repeat patients)."
    )


WHAT_IF = "What-if"
# the first one is shown on arrival: the key figures only, no charts to draw
SECTIONS = {
    "Key figures": no_charts,
    WHAT_IF: what_if_table,
    "Weekday, hour and trend": rate_charts,
    "Lead time and turnaround": time_charts,
    "Reasons and fees": reasons_and_fees,
    "Repeat patients": repeat_patients,
}
