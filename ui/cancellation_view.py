"""Widgets of the Cancellations page: key figures, charts, what-if table and the formulas.
Everything shown is computed by core.analytics.cancellations; this module only draws it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, time
from typing import Any

import pandas as pd
import streamlit as st

from core.analytics.breakdowns import TOP, Group
from core.analytics.cancellation_parts import (
    MIN_N,
    YEAR,
    Amounts,
    CancellationFigures,
    Counts,
    WhatIf,
    compared,
    every_week,
    weeks_a_year_earlier,
)
from core.kernel.errors import DomainError
from core.kernel.money import NO_VALUE, ClinicFormat, minor_digits, to_major, typed_minor
from ui import charts
from ui.context import show_error
from ui.figures import key_figure
from ui.locale import in_currency, table_moment
from ui.text import escape, show_table

# the fees' amounts (per currency) of late cancellations and no-shows
OTHERS = "others"  # the bar summing the groups beyond the TOP largest
# a rate over fewer than MIN_N (its own n) is marked on every rate chart, as it is never
# compared in the key figures: one visit more moves a rate over 2 bookings 50 points
FEW = charts.Few(
    MIN_N,
    {
        name + suffix: what
        for name, what in (("Cancellation rate", "bookings"), ("No-show rate", "visits due"))
        for suffix in ("", " a year earlier")
    },
)
FEW_SAID = (
    f"Lighter, hatched bars, hatched heatmap cells and dashed rings on the weekly lines are "
    f"rates over fewer than {MIN_N} (bookings; visits due for the no-show rate): one visit "
    "more or less moves them a lot, so read them with care."
)
PACKAGES_SAID = (
    "A package booked as one visit is its own bar (“Package: …”); a service's bar counts the "
    "visits booked as that service alone."
)
_ASSESSED = ("late_assessed_cents", "no_show_assessed_cents")
_WAIVED = ("late_waived_cents", "no_show_waived_cents")

FORMULAS = f"""
**How the figures are computed** (clinic-local days and hours; out-of-office blocks excluded)

- *booked* = appointments starting in the range that were scheduled, checked in, completed,
  missed (no-show) or cancelled
- **cancellation rate** = cancelled ÷ booked · **late-cancellation rate** = cancellations
  marked late under the policy version in force ÷ booked
- **no-show rate** = no-shows ÷ (no-shows + completed + checked in)
- **lead time** = start − booked (visits imported without their booking time are shown
  apart, as *booking time unknown*) · **cancellation notice** = start − cancelled
  (cancellations imported without when they were cancelled are left out, and counted under
  the chart)
- **by service** = each visit under the service it was booked as; a package booked as one
  visit is its own bar (*Package: …*), not counted under its services
- **request turnaround** = decided − requested, online requests (approved or declined)
- **revenue at risk** = price of cancelled and no-show appointments (a package's one price,
  otherwise the prices of its services)
- **refill rate** = cancelled slots booked again ÷ cancelled; booked again = another
  appointment of the same provider overlapping the slot, created after the cancellation
  (cancellations imported without when they were cancelled are left out: not known)
- **fees** = fees assessed on these appointments, and the part waived
- money is shown in each clinic's own currency: with clinics in several currencies, one figure
  per currency (never added up, never converted)
- **changes** = against the period of the same length just before, with the same filters; a
  rate over fewer than {MIN_N} (bookings, visits due, cancellations, requests) in either period is
  not compared, and nothing is when nothing was booked in the period before; on the charts
  such a rate is marked (lighter and hatched, a dashed ring on a line, "few" on hover)
- **repeat patients** = late cancellations + no-shows ≥ 2 in the range
- **what-if** = patients' cancellations whose notice was shorter than the chosen window would
  have been late (the practice's own cancellations are never charged); charged = late × fee,
  the fee in each clinic's own currency; points = late × points (next to what actually
  happened)
"""


def key_figures(f: CancellationFigures, before: CancellationFigures, fmt: ClinicFormat) -> None:
    """The key figures with their change against the previous period of the same length: a
    change only where there is something to compare with (the previous period had bookings;
    a rate's n is at least MIN_N on both sides, core.analytics.cancellation_parts.compared)."""
    t, p = f.totals, before.totals
    days = (f.filters.end - f.filters.start).days + 1
    period = "day" if days == 1 else f"{fmt.number(days)} days"
    span = f"{fmt.day(before.filters.start)} – {fmt.day(before.filters.end)}"
    if p.booked:
        st.caption(
            f"Changes compare with the {period} before ({span}); a rate over fewer than "
            f"{MIN_N} (either side) is not compared."
        )
    else:  # a new practice, or a range before its first booking: nothing to compare with
        st.caption(f"Nothing was booked in the {period} before ({span}): no changes shown.")
    cols = st.columns(4)
    key_figure(
        cols[0],
        "Booked",
        fmt.number(t.booked),
        fmt.number(t.booked - p.booked, signed=True) if p.booked else None,
        colour="off",
        help=f"{fmt.number(p.booked)} in the previous period",
    )

    def change(now, n_now, earlier, n_earlier) -> str | None:
        difference = compared(now, n_now, earlier, n_earlier)
        return None if difference is None else fmt.points(difference, 0.0)

    def few(n_now, n_earlier) -> str:
        low = min(n_now, n_earlier) < MIN_N and p.booked
        return f" · fewer than {fmt.number(MIN_N)}: too few to compare" if low else ""

    due, due_before = t.visits_due, p.visits_due
    for col, label, attribute, count, of in (
        (cols[1], "Cancellation rate", "cancellation_rate", "cancelled", "booked"),
        (cols[2], "Late-cancellation rate", "late_cancellation_rate", "late", "booked"),
        (cols[3], "No-show rate", "no_show_rate", "no_shows", "visits due"),
    ):
        now, earlier = getattr(t, attribute), getattr(p, attribute)
        # each rate's n: its own denominator, now and in the previous period
        whole, whole_before = (due, due_before) if of == "visits due" else (t.booked, p.booked)
        key_figure(
            col,
            label,
            fmt.percent(now),
            change(now, whole, earlier, whole_before),
            colour="inverse",  # a rise is bad news
            help=f"{fmt.number(getattr(t, count))} {count.replace('_', '-')} of "
            f"{fmt.number(whole)} {of}; before: {fmt.percent(earlier)} of "
            f"{fmt.number(whole_before)}{few(whole, whole_before)}",
        )
    mean, earlier = f.turnaround_mean_hours, before.turnaround_mean_hours
    decided, decided_before = _decided(f), _decided(before)
    # nothing booked before: no change at all, as the caption says (declined requests alone
    # may still have a turnaround then)
    hours = compared(mean, decided, earlier, decided_before) if p.booked else None
    shown = _currencies_shown(f, before)
    money = [_money_figure(f, before, fmt, code, len(shown) > 1, bool(p.booked)) for code in shown]
    others = [
        dict(
            label="Refill rate",
            value=fmt.percent(f.refill_rate),
            change=change(f.refill_rate, f.refill_base, before.refill_rate, before.refill_base),
            help=f"{fmt.number(f.refilled)} of {fmt.number(f.refill_base)} cancelled slots "
            f"refilled · previous period {fmt.percent(before.refill_rate)} of "
            f"{fmt.number(before.refill_base)}{few(f.refill_base, before.refill_base)}"
            + (
                f" · {fmt.number(f.untimed_cancellations)} imported cancellations left out: "
                "the file did not say when they were cancelled"
                if f.untimed_cancellations
                else ""
            ),
        ),
        dict(
            label="Mean request turnaround",
            value=NO_VALUE if mean is None else f"{fmt.number(mean, 1)} h",
            change=None if hours is None else f"{fmt.number(hours, 1, True)} h",
            colour="inverse",
            help=f"over {fmt.number(decided)} online requests decided · previous period "
            f"{NO_VALUE if earlier is None else fmt.number(earlier, 1) + ' h'} over "
            f"{fmt.number(decided_before)}{few(decided, decided_before)}",
        ),
    ]
    # revenue at risk first and fees assessed last, one figure per currency: never a sum of
    # two currencies (one currency: the four figures of one row)
    row = [risk for risk, _ in money] + others + [fees for _, fees in money]
    for first in range(0, len(row), 4):
        for column, figure in zip(st.columns(4), row[first : first + 4], strict=False):
            key_figure(column, **figure)


def _decided(f: CancellationFigures) -> int:
    """The mean turnaround's n: the online requests decided."""
    return sum(n for _, n in f.turnaround)


def _currencies_shown(f: CancellationFigures, before: CancellationFigures) -> list[str]:
    """The currencies of the clinics in the filter (the first clinic's first); with several,
    those with money in either period."""
    codes = list(f.revenue_at_risk_cents) or [None]
    if len(codes) == 1:
        return codes

    def any_money(code: str) -> bool:
        amounts = [x.revenue_at_risk_cents for x in (f, before)]
        amounts += [getattr(x.fees, name) for x in (f, before) for name in _ASSESSED]
        return any(a.get(code, 0) for a in amounts)

    return [code for code in codes if any_money(code)] or codes[:1]


def _money_figure(
    f, before, fmt: ClinicFormat, code: str | None, named: bool, compare: bool = True
) -> tuple:
    """Revenue at risk and fees assessed in one currency (`named`: in the label too), each
    against the previous period (unless not `compare`: nothing was booked then)."""
    money = fmt if code is None else in_currency(fmt, code)
    suffix = f" ({code})" if named else ""
    risk, risk_before = (x.revenue_at_risk_cents.get(code, 0) for x in (f, before))
    assessed, assessed_before = (
        sum(getattr(x.fees, name).get(code, 0) for name in _ASSESSED) for x in (f, before)
    )
    waived = sum(getattr(f.fees, name).get(code, 0) for name in _WAIVED)
    return (
        dict(
            label="Revenue at risk" + suffix,
            value=money.money(risk),
            change=money.money_change(risk - risk_before) if compare else None,
            colour="inverse",
            help=f"previous period {money.money(risk_before)}",
        ),
        dict(
            label="Fees assessed" + suffix,
            value=money.money(assessed),
            change=money.money_change(assessed - assessed_before) if compare else None,
            colour="off",
            help=f"{money.money(waived)} waived",
        ),
    )


def amounts_text(amounts: Amounts, fmt: ClinicFormat) -> str:
    """Money in one or more currencies, each in its own: '£14,455.00 + US$11,925.00' (never
    one sum of two currencies)."""
    shown = [in_currency(fmt, code).money(cents) for code, cents in amounts.items()]
    return " + ".join(shown) or fmt.money(0)


@dataclass(frozen=True)
class Pick:
    """A bar, a week's point or a heatmap cell clicked: the appointments to list behind it."""

    dimension: str  # core.analytics.breakdowns.DIMENSIONS, or OTHERS
    value: Any
    label: str
    counted: str = "booked"  # the point's n: "booked" (cancellation rate), "due" (no-show)
    year_earlier: bool = False  # a point of a dotted line: that week a year earlier


def _picked(chart_key: str, points: list, keys: list[tuple], fmt: ClinicFormat) -> Pick | None:
    """The point clicked on a rate chart, as the appointments behind it: a cancellation rate
    (even series) stands on the bookings, a no-show rate (odd series) on the visits due; the
    weekly chart's series 2 and 3 are the same rates a year earlier (YEAR before the week)."""
    point = charts.clicked_point(chart_key, points)
    if point is None or not 0 <= point[1] < len(keys):
        return None
    series, index = point
    dimension, value, label = keys[index]
    if dimension == OTHERS:
        return Pick(dimension, value, label)
    if series >= 2:  # the dotted lines: the week a year earlier
        monday = date.fromisoformat(value) - YEAR
        value = monday.isoformat()
        label = f"week of {fmt.day(monday, weekday=False)} (a year earlier)"
    due = series % 2 == 1
    label += ", no-show rate: the visits due" if due else ""
    return Pick(dimension, value, label, "due" if due else "booked", series >= 2)


def _rate_bars(groups: list[Counts], title: str, fmt: ClinicFormat) -> charts.Spec:
    return charts.bars(
        [c.label for c in groups],
        {
            "Cancellation rate": [c.cancellation_rate for c in groups],
            "No-show rate": [c.no_show_rate for c in groups],
        },
        title=charts.with_n(title, sum(c.booked for c in groups), fmt, "booked"),
        fmt=fmt,
        percent=True,
        n=rate_ns(groups),
        few=FEW,
    )


def rate_ns(groups: list[Counts | None], suffix: str = "") -> dict[str, list[int]]:
    """Each rate's own n: bookings for the cancellation rate, visits due (no-shows + attended)
    for the no-show rate (a week of bookings still to come has a cancellation rate over them
    and no no-show rate yet: n = 0, not their number). `suffix` names the series."""
    return {
        "Cancellation rate" + suffix: [c.booked if c else 0 for c in groups],
        "No-show rate" + suffix: [c.visits_due if c else 0 for c in groups],
    }


def dashboard(
    f: CancellationFigures,
    year_before: CancellationFigures | None,
    providers: list[Group],
    services: list[Group],
    fmt: ClinicFormat,
) -> Pick | None:
    """The charts an owner opens the page for; returns the bar, point or heatmap cell clicked
    when there was a click, to list the appointments behind it. Above them, when any rate is
    over few (FEW), what its mark means."""
    note = st.empty()  # filled once the charts are drawn, when one of them marks a rate
    picks, drawn = [], []

    def draw(spec: charts.Spec, key: str, keys: list[tuple] | None = None) -> None:
        """Draw a chart; with `keys` (one per point) it is clickable, and a click is a pick."""
        drawn.append(spec)
        points = charts.show(spec, key=key, selectable=keys is not None)
        if keys is not None:
            picks.append(_picked(key, points, keys, fmt))

    weeks = every_week(f)
    earlier, ns = {}, rate_ns(weeks)
    shifted = weeks_a_year_earlier(f, year_before)  # the same export's rows
    if shifted is not None:
        earlier = {
            "Cancellation rate a year earlier": [c.cancellation_rate for c in shifted],
            "No-show rate a year earlier": [c.no_show_rate for c in shifted],
        }
        ns |= rate_ns(shifted, " a year earlier")
    labels = [fmt.day(date.fromisoformat(c.label), weekday=False) for c in weeks]
    draw(
        charts.lines(
            labels,
            {
                "Cancellation rate": [c.cancellation_rate for c in weeks],
                "No-show rate": [c.no_show_rate for c in weeks],
            },
            title=charts.with_n("Rates by week (week starting)", f.totals.booked, fmt, "booked"),
            fmt=fmt,
            percent=True,
            n=ns,
            earlier=earlier,
            few=FEW,
        ),
        "cancel_chart_weekly",
        [("week", c.label, f"week of {lab}") for c, lab in zip(weeks, labels, strict=True)],
    )
    left, right = st.columns(2)
    with left:
        days = [replace(c, label=fmt.weekday(i, "abbreviated")) for i, c in enumerate(f.by_weekday)]
        draw(
            _rate_bars(days, "Rates by weekday", fmt),
            "cancel_chart_weekday",
            [("weekday", i, fmt.weekday(i)) for i in range(7)],
        )
    with right:
        _heatmap(f, fmt, draw)
    left, right = st.columns(2)
    for column, groups, name in ((left, providers, "provider"), (right, services, "service")):
        with column:
            draw(
                _rate_bars([g.counts for g in groups], f"Rates by {name}", fmt),
                f"cancel_chart_{name}",
                [
                    (OTHERS, name, "Others")
                    if g.counts.label == "Others"
                    else (g.dimension, g.key, g.counts.label)  # a package: its own visits
                    for g in groups
                ],
            )
            if name == "service" and any(g.dimension == "package" for g in groups):
                st.caption(PACKAGES_SAID)
    left, right = st.columns(2)
    with left:
        draw(
            _rate_bars(f.by_lead_time, "Rates by lead time (start − booked)", fmt),
            "cancel_chart_lead",
            [("lead", i, f"lead time {c.label}") for i, c in enumerate(f.by_lead_time)],
        )
    with right:
        draw(
            charts.bars(
                ["SMS reminder", "No SMS reminder"],
                {"No-show rate": [c.no_show_rate for c in f.by_sms]},
                title=charts.with_n(
                    "No-show rate by SMS reminder",
                    sum(c.visits_due for c in f.by_sms),
                    fmt,
                    "visits due",
                ),
                fmt=fmt,
                percent=True,
                n=[c.visits_due for c in f.by_sms],
                few=FEW,
            ),
            "cancel_chart_sms",
        )
    if any(charts.marked(spec) for spec in drawn):
        note.caption(FEW_SAID)
    return next((p for p in picks if p), None)


def _heatmap(f: CancellationFigures, fmt: ClinicFormat, draw) -> None:
    """The cancellation rate by weekday and hour; a click on a cell lists its bookings."""
    hours = sorted({cell.hour for cell in f.heatmap})
    grid = {(cell.weekday, cell.hour): cell.counts for cell in f.heatmap}
    values = [
        [grid[(w, h)].cancellation_rate if (w, h) in grid else None for h in hours]
        for w in range(7)
    ]
    counts = [[grid[(w, h)].booked if (w, h) in grid else 0 for h in hours] for w in range(7)]
    keys = [
        ("cell", (w, hours[c]), f"{fmt.weekday(w)} {fmt.clock(time(hours[c]))}")
        for w, c in charts.heat_cells(values)
    ]
    draw(
        charts.heatmap(
            [fmt.weekday(w, "abbreviated") for w in range(7)],
            [fmt.clock(time(h)) for h in hours],
            values,
            title=charts.with_n(
                "Cancellation rate by weekday and hour", f.totals.booked, fmt, "booked"
            ),
            fmt=fmt,
            n=counts,
            few=charts.Few(MIN_N, "bookings"),
        ),
        "cancel_chart_heatmap",
        keys,
    )


def time_charts(f: CancellationFigures, fmt: ClinicFormat) -> None:
    left, right = st.columns(2)
    with left:
        charts.show(
            charts.bars(
                [label for label, _ in f.turnaround],
                {"Requests": [n for _, n in f.turnaround]},
                title=charts.with_n(
                    "Request turnaround (decided − requested)",
                    sum(n for _, n in f.turnaround),
                    fmt,
                ),
                fmt=fmt,
            ),
            key="cancel_chart_turnaround",
        )
    with right:
        charts.show(
            charts.bars(
                [label for label, _ in f.notice],
                {"Cancellations": [n for _, n in f.notice]},
                title=charts.with_n(
                    "Cancellation notice (start − cancelled)", sum(n for _, n in f.notice), fmt
                ),
                fmt=fmt,
            ),
            key="cancel_chart_notice",
        )
        if f.untimed_cancellations:  # counted in the cancellation rate, not in this chart
            st.caption(
                f"{fmt.number(f.untimed_cancellations)} of {fmt.number(f.totals.cancelled)} "
                "cancellations left out: imported without when they were cancelled, so "
                "their notice is not known."
            )


def reasons_and_fees(f: CancellationFigures, fmt: ClinicFormat) -> None:
    left, right = st.columns(2)
    with left:
        # reasons may be typed by patients: charts draw every label as plain text (ui.charts)
        charts.show(
            charts.bars(
                [r for r, _ in f.reasons],
                {"Cancellations": [n for _, n in f.reasons]},
                title=charts.with_n("Cancellations by reason", sum(n for _, n in f.reasons), fmt),
                fmt=fmt,
            ),
            key="cancel_chart_reasons",
        )
    with right:
        codes = list(f.revenue_at_risk_cents) or [fmt.currency]
        for code in codes:  # one chart per currency: amounts of two are never on one axis
            named = f" ({code})" if len(codes) > 1 else ""
            charts.show(
                charts.bars(
                    ["Late cancellation", "No-show"],
                    {
                        series: [
                            float(to_major(getattr(f.fees, name).get(code, 0), code))
                            for name in names
                        ]
                        for series, names in (("Assessed", _ASSESSED), ("Waived", _WAIVED))
                    },
                    title="Fees assessed and waived" + named,
                    fmt=in_currency(fmt, code),
                    y_title=code,
                ),
                key="cancel_chart_fees" + (f"_{code}" if named else ""),
            )


def what_if_inputs(fmt: ClinicFormat, currencies: list[str]) -> WhatIf | None:
    """The what-if's window, fee and points. The fee is one number for the practice, charged
    in each clinic's own currency (as prices are): 'Late fee (GBP or USD)', 25 typed is £25.00
    and US$25.00 (and ￥25 beside €25.00), each converted in its own currency. None, with the
    error shown, when the fee has more decimals than one of the currencies."""
    currencies = currencies or [fmt.currency]
    digits = max(minor_digits(code) for code in currencies)
    with st.form("cancel_whatif"):
        st.markdown("Another window, fee or points value, replayed on the same history")
        w1, w2, w3 = st.columns(3)
        window = w1.number_input("Window (hours)", value=12, step=1, key="cancel_whatif_window")
        fee = w2.number_input(
            f"Late fee ({' or '.join(currencies)})",
            value=25.0,
            step=5.0,
            format=f"%.{digits}f",
            key="cancel_whatif_fee",
            help="Charged in each clinic's own currency, never converted"
            if len(currencies) > 1
            else None,
        )
        points = w3.number_input("Points", value=20, step=5, key="cancel_whatif_points")
        st.form_submit_button("Compare")
    try:
        per_currency = tuple((code, typed_minor(fee, code)) for code in currencies)
    except DomainError as error:
        show_error(error)
        return None
    return WhatIf(int(window), per_currency[0][1], int(points), per_currency)


def what_if_table(f: CancellationFigures, fmt: ClinicFormat) -> None:
    w = f.what_if
    if w is None:
        return
    show_table(
        pd.DataFrame(
            {
                "": ["Late cancellations", "Late-cancellation fees", "Points deducted"],
                "Actual (policy in force)": [
                    fmt.number(w.actual_late),
                    amounts_text(w.actual_fee_cents, fmt),
                    fmt.number(w.actual_points),
                ],
                f"What-if ({w.window_hours} h window)": [
                    fmt.number(w.late),
                    amounts_text(w.fee_cents, fmt),
                    fmt.number(w.points),
                ],
            }
        ),
        hide_index=True,
        width="stretch",
        key="cancel_whatif_table",
    )


def repeat_patients(f: CancellationFigures) -> None:
    show_table(
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


# the further sections below the dashboard, and the optional parts of the figures each needs
# (core.analytics.cancellations.PARTS); the dashboard itself needs "by_day" and "timing"
WHAT_IF = "What-if on the policy"
MORE = {
    "Reasons and fees": frozenset({"reasons"}),
    "Turnaround and notice": frozenset({"timing"}),
    "Repeat patients": frozenset({"repeat_patients"}),
    WHAT_IF: frozenset(),
}
DASHBOARD_PARTS = frozenset({"by_day", "timing"})


def nothing_booked(f: CancellationFigures, fmt: ClinicFormat) -> None:
    """In place of the charts when no appointment starts in the range for the filters."""
    st.info(
        f"No appointments start between {fmt.day(f.filters.start)} and "
        f"{fmt.day(f.filters.end)} for these filters, so there is nothing to chart yet. The "
        "cancellation and no-show rates by week, weekday and hour, provider, service, lead "
        "time and SMS reminder appear here once appointments in the range are booked; choose "
        "other dates or filters to see others.",
        icon=":material/event_busy:",
    )


def behind(picked: Pick | None, read_behind, fmt: ClinicFormat, filters=None) -> None:
    """The appointments behind the last bar (week, heatmap cell) clicked under these `filters`
    (kept until another is clicked or the filters change: a bar of other filters, such as a
    week the range no longer holds or a provider not chosen, is none of the charts shown):
    those its rate is over, as many as its n (`read_behind(pick)`: rows and their number)."""
    if picked:
        st.session_state["cancel_picked"] = (picked, filters)
    kept = st.session_state.get("cancel_picked")
    if not kept or kept[1] != filters:
        st.session_state.pop("cancel_picked", None)
        st.caption("Click a bar, a week or a heatmap cell to list the appointments behind it.")
        return
    pick = kept[0]
    dimension, value, label = pick.dimension, pick.value, pick.label
    if dimension == OTHERS:  # many groups summed: no one list of theirs would read right
        st.info(
            f"“Others” sums the {value}s beyond the {TOP - 1} with the most bookings. Choose "
            f"one in the {value.capitalize()} filter above to see its figures and list its "
            "appointments.",
            icon=":material/info:",
        )
        return
    rows, total = read_behind(pick)
    st.subheader(f"Appointments behind {escape(label)}")
    shown = f"; the latest {fmt.number(len(rows))} shown" if total > len(rows) else ""
    what = "visits due (no-shows, completed and checked in)" if pick.counted == "due" else "booked"
    st.caption(f"{fmt.number(total)} {what}{shown}")
    show_table(
        rows,
        hide_index=True,
        width="stretch",
        key="cancel_behind_table",
        column_config={
            "Start": st.column_config.DatetimeColumn(
                "Start (clinic time)", format=table_moment(fmt.locale)
            )
        },
    )


def more(read_figures, filters, fmt: ClinicFormat, currencies: list[str]) -> None:
    """The further sections, one at a time: only what is shown is computed. `currencies`:
    those of the clinics in the filter."""
    section = st.segmented_control("More", list(MORE), key="cancel_section")
    if not section:
        return
    what_if = what_if_inputs(fmt, currencies) if section == WHAT_IF else None
    try:
        figures = read_figures(replace(filters, what_if=what_if, parts=MORE[section]))
    except DomainError as error:
        show_error(error)
        return
    if section == WHAT_IF:
        what_if_table(figures, fmt)
    elif section == "Reasons and fees":
        reasons_and_fees(figures, fmt)
    elif section == "Turnaround and notice":
        time_charts(figures, fmt)
    else:
        repeat_patients(figures)
