"""Display pieces of the survey analytics page. Comments are patient text: they are only ever
shown through st.dataframe (rendered as plain text), never as Markdown or HTML."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from core.analytics import surveys as sa
from core.kernel.money import NO_VALUE, ClinicFormat
from ui import charts
from ui.figures import key_figure
from ui.text import escape, show_table

FORMULAS = f"""
- **NPS** = % promoters (answered 9–10) − % detractors (0–6), in percentage points from −100
  to +100, over the responses that answered *would you recommend us* (imported responses with
  only a star rating are left out). Passives (7–8) count in the total only.
- **CSAT** = share of overall ratings that are 4 or 5 (of 1–5).
- **Average rating** x̄ over n ratings, **95% interval** x̄ ± t(0.975, n−1) · s / √n with
  s² = (Σx² − (Σx)²/n) / (n − 1), cut at 1 and 5 (no average is outside the scale). When
  all the ratings are the same there is no spread to estimate it from, and no interval is
  given. Groups with fewer than {sa.MIN_N} ratings are marked
  *low n* (hidden unless you ask for them): their figures move a lot with each answer.
- **By service**: each response under the service its visit was booked as; a visit booked
  as a package is its own bar (*Package: …*), not counted under its services (as on
  Cancellations). The responses listed and the export name it the same way.
- **Service filter**: the responses to visits holding the service, booked as it, as a
  package holding it or with it among several services, wherever it comes in them (as on
  Cancellations); each stays in its own bar by service. The funnel counts those visits.
- **Provider filter**: the responses recording the provider (as *By provider* counts them);
  the funnel counts that provider's visits.
- **Changes** = against the period of the same length just before; none when nothing was
  answered then, and NPS, CSAT and the average are not compared where either period has
  fewer than {sa.MIN_N} answers behind them (as on Cancellations).
- **Funnel**: completed visits in the period (by visit date) → asked for feedback → answered;
  the rates are requested ÷ completed and answered ÷ requested.
- Dates are each response's local submission date in its clinic's time zone, for the date
  filter, the weeks and the months alike; under *All clinics* too, so all clinics add up to
  the sum of the clinics (a response imported without a clinic: the practice's time zone).
  The funnel's visits are dated the same way, by their clinic's day. Weeks start on Monday.
"""


PACKAGES_SAID = (
    "A package booked as one visit is its own bar (“Package: …”); a service's bar counts the "
    "responses to visits booked as that service alone."
)

# the headings of the response tables (core's columns are lowercase names)
FEED_HEADINGS = {
    "submitted": "Submitted",
    "clinic": "Clinic",
    "provider": "Provider",
    "service": "Service",
    "nps": "Recommend",
    "rating": "Rating",
    "comment": st.column_config.TextColumn("Comment", width="large"),
}


def _nps(value: float | None, fmt: ClinicFormat) -> str:
    """NPS in points from −100 to +100, signed."""
    return NO_VALUE if value is None else fmt.number(value, signed=True)


def _of_100(value: float | None, fmt: ClinicFormat) -> str:
    """A figure that is a percentage already (CSAT, the funnel's rates: 0–100)."""
    return NO_VALUE if value is None else fmt.percent(value / 100, 0)


def _change(
    now: float | None,
    before: float | None,
    ns: tuple[int, int],
    unit: str,
    fmt: ClinicFormat,
    digits: int = 0,
) -> str | None:
    """A figure's change against the previous period; none when either side has fewer than
    MIN_N answers behind it (`ns`: now, before), as on Cancellations: NPS moves 100 points
    with one answer of two."""
    if now is None or before is None or min(ns) < sa.MIN_N:
        return None
    return f"{fmt.number(now - before, digits, signed=True)}{unit}"


def overview(
    s: sa.Figures,
    fmt: ClinicFormat,
    before: sa.Figures | None = None,
    days: int | None = None,
    span_before: tuple[date, date] | None = None,
) -> None:
    """The key figures; with `before`, each against the previous period of the same length
    (`span_before`: its first and last day, named in the caption). As on Cancellations, no
    change when nothing was answered in the period before, and NPS, CSAT and the average
    only where both periods have at least MIN_N answers behind them."""
    p = before or sa.Figures()
    compare = before is not None and p.responses > 0

    def against(n: int) -> str:  # the previous period's n of the figure, beside its change
        return f"vs previous period (n={fmt.number(n)})"

    def few(n_now: int, n_before: int) -> str:
        low = compare and min(n_now, n_before) < sa.MIN_N
        return f" · fewer than {fmt.number(sa.MIN_N)}: too few to compare" if low else ""

    if before is not None and days:
        span = f" ({fmt.day(span_before[0])} – {fmt.day(span_before[1])})" if span_before else ""
        if compare:
            st.caption(
                f"Changes compare with the {days} days before{span}; NPS, CSAT and the "
                f"average over fewer than {sa.MIN_N} (either side) are not compared."
            )
        else:  # the first surveys, or a range before them: nothing to compare with
            st.caption(f"Nothing was answered in the {days} days before{span}: no changes shown.")
    cols = st.columns(4)
    key_figure(
        cols[0],
        "Responses",
        fmt.number(s.responses),
        fmt.number(s.responses - p.responses, signed=True) if compare else None,
        colour="off",
        against=against(p.responses),
    )
    nps_ns, rating_ns = (s.nps_n, p.nps_n), (s.rating_n, p.rating_n)
    key_figure(
        cols[1],
        "NPS",
        _nps(s.nps, fmt),
        _change(s.nps, p.nps, nps_ns, " points", fmt) if compare else None,
        help=f"over {fmt.number(s.nps_n)} answers (0–10); previous period {_nps(p.nps, fmt)} "
        f"over {fmt.number(p.nps_n)}{few(*nps_ns)}",
        against=against(p.nps_n),
    )
    key_figure(
        cols[2],
        "CSAT",
        _of_100(s.csat, fmt),
        _change(s.csat, p.csat, rating_ns, " pp", fmt) if compare else None,
        help=f"over {fmt.number(s.rating_n)} ratings (1–5); previous period "
        f"{_of_100(p.csat, fmt)} over {fmt.number(p.rating_n)}{few(*rating_ns)}",
        against=against(p.rating_n),
    )
    interval = s.interval
    span = f"{fmt.number(interval[0], 2)}–{fmt.number(interval[1], 2)}" if interval else ""
    key_figure(
        cols[3],
        "Average rating",
        NO_VALUE if s.mean is None else f"{fmt.number(s.mean, 2)} / 5",
        _change(s.mean, p.mean, rating_ns, "", fmt, 2) if compare else None,
        help=f"n = {fmt.number(s.rating_n)}"
        + (f", 95% interval {span}" if interval else "")
        + few(*rating_ns),
        against=against(p.rating_n),
    )
    if interval:
        st.caption(
            f"Average rating {fmt.number(s.mean, 2)} (95% interval {span}, "
            f"n = {fmt.number(s.rating_n)})"
        )
    groups = st.columns(3)
    groups[0].metric("Promoters (9–10)", fmt.number(s.promoters))
    groups[1].metric("Passives (7–8)", fmt.number(s.passives))
    groups[2].metric("Detractors (0–6)", fmt.number(s.detractors))


def _ns(frame: pd.DataFrame) -> dict[str, list[int]]:
    """Each figure's own n: NPS over the 0–10 answers, CSAT over the ratings (an imported
    response may carry only a star rating)."""
    return {
        "NPS": [int(n) for n in frame.nps_n],
        "CSAT %": [int(n) for n in frame.rating_n],
    }


def every_week(weekly: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """The weeks (from Monday) of the days `first`..`last`, those without a response too
    (empty, n = 0): weeks either side of a quiet fortnight are not drawn as neighbours."""
    monday = first - timedelta(days=first.weekday())
    weeks = pd.DatetimeIndex(pd.date_range(monday, last, freq="7D"), name="period")
    filled = weekly.set_index("period").reindex(weeks)
    counts = ["responses", "nps_n", "rating_n"]
    filled[counts] = filled[counts].fillna(0).astype(int)
    return filled.reset_index()


def dashboard(
    weekly: pd.DataFrame, dist, board: sa.Groups, fmt, days: tuple[date, date] | None = None
) -> tuple | None:
    """NPS and CSAT by week (every week of `days`, the range's first and last day), the rating
    distribution, NPS and CSAT by provider and service; returns the bar clicked (dimension,
    value, label) to list the responses behind it."""
    picks = []
    if days is not None:
        weekly = every_week(weekly, *days)
    charts.show(
        charts.lines(
            [fmt.day(p.date(), weekday=False) for p in weekly.period],
            {"NPS": list(weekly.nps), "CSAT %": list(weekly.csat)},
            title=charts.with_n(
                "NPS and CSAT by week (week starting)",
                int(weekly.responses.sum()),
                fmt,
                "responses",
            ),
            fmt=fmt,
            y_title="points / %",
            n=_ns(weekly),
        ),
        key="survey_chart_weekly",
    )
    left, right = st.columns(2)
    with left:
        points = charts.show(
            charts.bars(
                [f"{r} ★" for r in range(1, 6)],
                {"Responses": dist.ratings},
                title=charts.with_n("Overall rating", sum(dist.ratings), fmt, "ratings"),
                fmt=fmt,
                n=dist.ratings,
            ),
            key="survey_chart_ratings",
            selectable=True,
        )
        keys = [("rating", r, f"{r} ★ ratings") for r in range(1, 6)]
        picks.append(charts.clicked("survey_chart_ratings", points, keys))
    with right:
        charts.show(
            charts.bars(
                [str(v) for v in range(11)],
                {"Answers": dist.nps},
                title=charts.with_n("Would recommend (0–10)", sum(dist.nps), fmt, "answers"),
                fmt=fmt,
                n=dist.nps,
            ),
            key="survey_chart_nps",
        )
    left, right = st.columns(2)
    for column, frame, name in (
        (left, board.providers, "provider"),
        (right, board.services, "service"),
    ):
        with column:
            shown = frame[frame.enough.astype(bool)].head(15)
            key = f"survey_chart_{name}"
            points = charts.show(
                charts.bars(
                    list(shown[name]),
                    {"NPS": list(shown.nps), "CSAT %": list(shown.csat)},
                    title=charts.with_n(
                        f"NPS and CSAT by {name}", int(shown.n.sum()), fmt, "ratings"
                    ),
                    fmt=fmt,
                    y_title="points / %",
                    n={"NPS": [int(n) for n in shown.nps_n], "CSAT %": [int(n) for n in shown.n]},
                ),
                key=key,
                selectable=True,
            )
            if len(shown) < len(frame):
                st.caption(f"Groups with fewer than {sa.MIN_N} ratings are left out.")
            if (shown.dimension == "package").any():
                st.caption(PACKAGES_SAID)
            keys = [  # a package's bar lists its own responses (dimension "package")
                (dimension, None if pd.isna(i) else int(i), label)
                for i, dimension, label in zip(shown.id, shown.dimension, shown[name], strict=True)
            ]
            picks.append(charts.clicked(key, points, keys))
    return next((p for p in picks if p), None)


def no_responses(first, last, fmt: ClinicFormat) -> None:
    """In place of the charts and comments when no response was submitted in the range."""
    st.info(
        f"No survey responses were submitted between {fmt.day(first)} and {fmt.day(last)} "
        "for these filters, so there is nothing to chart yet. NPS and CSAT by week, the "
        "ratings, the figures by provider and service and the latest comments appear here "
        "once patients answer the survey sent after a completed visit; choose other dates, "
        "another clinic, provider or service to see others.",
        icon=":material/reviews:",
    )


def behind(picked: tuple | None, read_behind, fmt: ClinicFormat, f=None) -> None:
    """The responses behind the last bar clicked under the filter `f` (kept until another bar
    is clicked or the filter changes: a bar of another clinic or range is none of the charts
    shown), with how many there are when the list shows only the latest of them."""
    if picked:
        st.session_state["survey_analytics_picked"] = (picked, f)
    kept = st.session_state.get("survey_analytics_picked")
    if not kept or kept[1] != f:
        st.session_state.pop("survey_analytics_picked", None)
        st.caption("Click a bar to list the responses behind it.")
        return
    dimension, value, label = kept[0]
    rows, total = read_behind(dimension, value)
    st.subheader(f"Responses behind {escape(label)}")
    shown = f"; the latest {fmt.number(len(rows))} shown" if total > len(rows) else ""
    st.caption(f"{fmt.number(total)} responses{shown}")
    comment_feed(rows, key="survey_analytics_behind", service=True)


def funnel(f: sa.Funnel, fmt: ClinicFormat) -> None:
    st.subheader("Response funnel")
    steps = st.columns(3)
    steps[0].metric("Completed visits", fmt.number(f.completed))
    steps[1].metric(
        "Asked for feedback",
        fmt.number(f.requested),
        _of_100(f.request_rate, fmt) + " of completed",
        delta_color="off",
        delta_arrow="off",
    )
    steps[2].metric(
        "Answered",
        fmt.number(f.answered),
        _of_100(f.answer_rate, fmt) + " of asked",
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
    show_table(
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
            **FEED_HEADINGS,
            "visit": st.column_config.LinkColumn("", display_text="Open", width="small"),
            "appointment_id": st.column_config.NumberColumn("Appointment", format="#%d"),
        },
    )


def groups(board: sa.Groups, show_small: bool) -> None:
    for title, frame in (
        ("By provider", board.providers),
        ("By service", board.services),
        ("By clinic", board.clinics),
    ):
        st.subheader(title)
        shown = frame if show_small else frame[frame.enough.astype(bool)]
        hidden = len(frame) - len(shown)
        if hidden:
            st.caption(f"{hidden} group(s) with fewer than {sa.MIN_N} ratings hidden.")
        shown = shown.assign(enough=shown.enough.map({True: "", False: "low n"}))
        show_table(
            shown.drop(columns=["id", "dimension"]),
            hide_index=True,
            width="stretch",
            column_config={
                "provider": "Provider",
                "service": "Service",
                "clinic": "Clinic",
                "n": "Ratings",
                "mean": st.column_config.NumberColumn("Average", format="%.2f"),
                "ci_low": st.column_config.NumberColumn("95% from", format="%.2f"),
                "ci_high": st.column_config.NumberColumn("95% to", format="%.2f"),
                "csat": st.column_config.NumberColumn("CSAT %", format="%.0f"),
                "nps": st.column_config.NumberColumn("NPS", format="%+.0f"),
                "nps_n": "NPS n",
                "enough": "Note",
            },
        )


def _chart(frame: pd.DataFrame, title: str, label) -> None:
    """NPS and CSAT lines over the responses' bars: a plain Vega-Lite spec (no Altair objects
    to build, so the page stays quick). `label` names a period's first day."""
    data = frame.assign(period=[label(p.date()) for p in frame.period])
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


def trends(board: sa.Trends, fmt, days: tuple[date, date] | None = None) -> None:
    weekly = every_week(board.weekly, *days) if days and not board.weekly.empty else board.weekly
    for title, frame, label in (
        ("Weekly (weeks from Monday)", weekly, lambda d: fmt.day(d, weekday=False)),
        ("Monthly", board.monthly, fmt.month),
    ):
        if frame.empty:
            st.caption(f"{title}: no responses in this period.")
            continue
        _chart(frame, f"{title}: NPS, CSAT and responses", label)


def comment_feed(frame: pd.DataFrame, key: str | None = None, service: bool = False) -> None:
    """Responses as a table; with `service`, what each visit was booked as (a package by its
    name, as the by-service chart counts it)."""
    if frame.empty:
        st.caption("No comments match.")
        return
    columns = ["submitted", "clinic", "provider", *(["service"] if service else [])]
    show_table(
        frame[[*columns, "nps", "rating", "comment"]],
        hide_index=True,
        width="stretch",
        column_config=FEED_HEADINGS,
        key=key,
    )


MORE = ["Response funnel", "Detractors", "By group", "Trends", "Comments"]


def more(
    f: sa.SurveyFilter,
    part,
    recent_detractors,
    comment_page,
    fmt,
    days: tuple[date, date] | None = None,
) -> None:
    """The further sections, one at a time (only what is shown is read); `days`: the range's
    first and last day, whose every week the weekly trend shows."""
    section = st.segmented_control("More", MORE, key="survey_analytics_section")
    if section == "Response funnel":
        funnel(part("funnel"), fmt)
    elif section == "Detractors":
        detractors(recent_detractors())
    elif section == "By group":
        small = st.toggle(
            f"Show groups with fewer than {sa.MIN_N} ratings", key="survey_analytics_small"
        )
        groups(part("groups"), small)
    elif section == "Trends":
        trends(part("trends"), fmt, days)
    elif section == "Comments":
        search = st.text_input(
            "Search comments",
            key="survey_analytics_search",
            placeholder="a word or phrase, e.g. parking",
        )
        page = st.number_input("Page", min_value=1, value=1, key="survey_analytics_page") - 1
        rows, further = comment_page(search, page)
        comment_feed(rows, key="survey_analytics_comments")
        st.caption(f"Page {page + 1}" + (" · more on the next page" if further else " · last page"))
