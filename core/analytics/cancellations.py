"""Cancellation and no-show analytics, with a what-if on the cancellation window.

`compute_figures` is the one entry the analytics page, the CSV export and `core.cli stats` use.
Every figure is aggregated in SQL, in a handful of queries over the filtered range (the
appointments table is never loaded): one query builds a small "cube" grouped by clinic-local
day, clinic-local hour, SMS-reminder flag and lead-time bucket with conditional sums, and the
overall, weekday, hour, heatmap, weekly, SMS and lead-time figures are added up from it.

Clinic-local weekday and hour in SQL, the same on SQLite and PostgreSQL: for every clinic in the
filter the UTC-offset periods of its IANA zone over the range are computed in Python (a DST
change is one more period), and the query adds the right offset with a CASE on clinic and start
time to the start's epoch seconds; day number and hour then come from integer arithmetic.

Formulas (also written on the page):
- booked = appointments (not out-of-office blocks) starting in the range whose status is
  scheduled, checked in, completed, no-show or cancelled
- cancellation rate = cancelled ÷ booked; late-cancellation rate = late cancelled ÷ booked
- no-show rate = no-shows ÷ (no-shows + completed + checked in) — the visits that were due
- lead time = start − booked; cancellation notice = start − cancelled; a visit imported
  without its booking time is counted under "booking time unknown", not in a lead-time bucket
- by service: each visit under the service it was booked as; a package booked as one visit is
  its own group ("Package: name"), never counted under its first service
- request turnaround = decided − requested, for online requests
- revenue at risk = price of cancelled and no-show appointments: a package's one price,
  otherwise the prices of its services
- money (revenue at risk, fees, the what-if's fees) is summed per currency, each clinic's own,
  and never across currencies (`Amounts`); counts and rates are across the clinics
- refill rate = cancelled slots booked again ÷ cancelled (those imported without when they were
  cancelled left out: whether they were booked again is not known); booked again = another
  appointment of the same provider overlapping the cancelled slot, created after the
  cancellation
- what-if: patients' cancellations with notice < the chosen window would have been late;
  charged = late × fee, points = late × points
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    case,
    func,
    select,
)
from sqlalchemy.orm import Session

from core.analytics import breakdowns, cancellation_rollups
from core.analytics.cancellation_parts import (
    FEE_AMOUNTS,
    HOUR,
    LEAD_BUCKETS,
    LEAD_UNKNOWN,
    MAX_RANGE_DAYS,
    NOTICE_BUCKETS,
    PARTS,
    REPEAT_THRESHOLD,
    TURNAROUND_BUCKETS,
    WEEKDAYS,
    Amounts,
    AnalyticsFilters,
    CancellationFigures,
    Counts,
    Fees,
    HeatCell,
    RepeatPatient,
    S,
    WhatIfResult,
    a_year_earlier,
    every_week,
    rows_subquery,
    scope_of,
    untimed_declines_query,
    validate_filters,
    weeks_a_year_earlier,
    where_clauses,
)
from core.analytics.cancellation_rollups import LEDGER_CODES
from core.kernel import exports
from core.kernel.authz import Actor, Permission, ensure
from db.models import (
    Appointment,
    LedgerEntry,
    Patient,
)

__all__ = [
    "MAX_RANGE_DAYS",
    "AnalyticsFilters",
    "a_year_earlier",
    "compute_figures",
    "default_filters",
    "export_csv",
    "validate_filters",
]


def compute_figures(
    session: Session, actor: Actor, filters: AnalyticsFilters, *, use_rollups: bool = True
) -> CancellationFigures:
    """Every cancellation and no-show figure for the filters, aggregated in SQL: from the
    maintained roll-ups (core.analytics.cancellation_rollups) when no provider or service is
    chosen, with the few days whose roll-ups lag behind a change read from the appointments;
    otherwise straight from the appointments of the range (`use_rollups=False` asks for that
    path)."""
    ensure(actor, Permission.ANALYTICS_READ)
    validate_filters(filters)
    return _compute(
        session, filters, cancellation_rollups.usable_for(session, filters, use_rollups)
    )


class _Sums:
    """Adds up the grouped rows (from the appointments or from the roll-ups) into figures:
    counts across the clinics, money per currency (`currencies`: clinic → its currency)."""

    def __init__(
        self, currencies: dict[int, str], by_day: bool = True, timing: bool = True
    ) -> None:
        self.currencies = currencies
        self.by_day = by_day  # False: the rows carry no day, so no weekday, week or cell
        self.timing = timing  # False: no lead-time, SMS or notice buckets (what-if still)
        self.risk = self.amounts()  # revenue at risk
        self.whatif_late_in = self.amounts()  # the what-if's late cancellations, by currency
        self.fee_sums = {name: self.amounts() for name in FEE_AMOUNTS}
        self.fee_points = {"points_assessed": 0, "points_waived": 0, "cancellation_points": 0}
        self.totals = Counts("All")
        self.sms = {True: Counts("SMS reminder"), False: Counts("No SMS reminder")}
        self.weekdays = [Counts(name) for name in WEEKDAYS]
        self.hours: dict[int, Counts] = {}
        self.cells: dict[tuple[int, int], Counts] = {}
        self.leads = [Counts(label) for label, _ in LEAD_BUCKETS] + [Counts(LEAD_UNKNOWN)]
        self.weeks: dict[int, Counts] = {}
        self.refilled = self.untimed = self.turn_n = self.turn_total = self.whatif_late = 0
        self.notice = [0] * len(NOTICE_BUCKETS)
        self.turn = [0] * len(TURNAROUND_BUCKETS)

    def hour(self, daynum: int, hour: int, core5: list[int]) -> None:
        if not core5[0]:  # declined requests only count towards the turnaround
            return
        self.totals.add(*core5)
        self.hours.setdefault(hour, Counts(f"{hour:02d}:00")).add(*core5)
        if not self.by_day:
            return
        weekday = (daynum + 3) % 7  # 1970-01-01 was a Thursday
        self.weekdays[weekday].add(*core5)
        label = f"{WEEKDAYS[weekday]} {hour:02d}:00"
        self.cells.setdefault((weekday, hour), Counts(label)).add(*core5)
        monday = daynum - weekday
        start_of_week = (date(1970, 1, 1) + timedelta(days=monday)).isoformat()
        self.weeks.setdefault(monday, Counts(start_of_week)).add(*core5)

    def lead(self, sms: bool, lead: int, core5: list[int]) -> None:
        if core5[0] and self.timing:
            self.sms[sms].add(*core5)
            self.leads[lead].add(*core5)

    def amounts(self) -> Amounts:
        """Nothing yet in each currency of the clinics, the first clinic's first."""
        return dict.fromkeys(self.currencies.values(), 0)

    def currency_of(self, clinic_id: int) -> str:
        return self.currencies.get(clinic_id, "")

    def money(self, currency: str, risk: int, refilled: int, untimed: int) -> None:
        self.risk[currency] = self.risk.get(currency, 0) + risk
        self.refilled += refilled
        self.untimed += untimed

    def late_within(self, currency: str, count: int) -> None:
        """Patients' cancellations the what-if window would have made late."""
        self.whatif_late += count
        self.whatif_late_in[currency] = self.whatif_late_in.get(currency, 0) + count

    def notice_hours(
        self, hours: int, by_patient: bool, count: int, window: int, currency: str
    ) -> None:
        for index, (_, bound) in enumerate(NOTICE_BUCKETS):
            if bound is None or hours * HOUR < bound:
                self.notice[index] += count if self.timing else 0
                break
        if by_patient and hours < window:
            self.late_within(currency, count)

    def fee(self, currency: str, code: int, waived: bool, values: list[int]) -> None:
        """Ledger sums (cents, points, points on cancellations not waived) of one kind
        (LEDGER_CODES: 0 late-cancellation fee, 1 no-show fee, 2 points)."""
        cents, points, cancelled_points = values[0], values[1], values[2]

        def bump(name: str, value: int) -> None:
            self.fee_sums[name][currency] = self.fee_sums[name].get(currency, 0) + value

        if code in (0, 1):
            kind = "late" if code == 0 else "no_show"
            bump(f"{kind}_assessed_cents", cents)
            bump(f"{kind}_waived_cents", cents if waived else 0)
        else:
            self.fee_points["points_assessed"] += points
            self.fee_points["points_waived"] += points if waived else 0
            self.fee_points["cancellation_points"] += cancelled_points

    def fees(self) -> Fees:
        return Fees(**self.fee_sums, **self.fee_points)

    def turnaround(self, bucket: int, count: int, seconds: int) -> None:
        self.turn[bucket] += count
        self.turn_n += count
        self.turn_total += seconds


def _lead_buckets(leads: list[Counts]) -> list[Counts]:
    """The lead-time buckets, and after them "booking time unknown" when any visit in the
    range was imported without its booking time (counted there, never as booked that day)."""
    known, unknown = leads[: len(LEAD_BUCKETS)], leads[len(LEAD_BUCKETS)]
    return known + [unknown] if unknown.booked else known


def _compute(session: Session, filters: AnalyticsFilters, lagging: set | None):
    use_rollups = lagging is not None
    dialect = session.get_bind().dialect.name
    scope = scope_of(session, filters, periods_too=not use_rollups)
    # the appointment conditions: only for the direct path, the reasons and repeat patients
    direct = not use_rollups or {"reasons", "repeat_patients"} & filters.parts
    where = where_clauses(scope, filters) if direct else []
    window = filters.what_if.window_hours if filters.what_if else 0
    sums = _Sums(scope.currencies, "by_day" in filters.parts, "timing" in filters.parts)
    if use_rollups:
        cancellation_rollups.read_into(
            session, sums, filters, [c for c, _ in scope.clinics], window, lagging
        )
    else:
        _raw_into(session, sums, dialect, scope, where, filters, window)
        _fees_into(session, sums, where)
    fees = sums.fees()
    figures = CancellationFigures(
        filters=filters,
        totals=sums.totals,
        by_sms=[sums.sms[True], sums.sms[False]],
        by_weekday=sums.weekdays,
        by_hour=[sums.hours[h] for h in sorted(sums.hours)],
        heatmap=[HeatCell(w, h, c) for (w, h), c in sorted(sums.cells.items())],
        by_lead_time=_lead_buckets(sums.leads),
        weekly=[sums.weeks[k] for k in sorted(sums.weeks)],
        notice=[(label, n) for (label, _), n in zip(NOTICE_BUCKETS, sums.notice, strict=True)],
        turnaround=[
            (label, n) for (label, _), n in zip(TURNAROUND_BUCKETS, sums.turn, strict=True)
        ],
        turnaround_mean_hours=sums.turn_total / sums.turn_n / HOUR if sums.turn_n else None,
        reasons=_reasons(session, where) if "reasons" in filters.parts else [],
        fees=fees,
        revenue_at_risk_cents=sums.risk,
        refilled=sums.refilled,
        untimed_cancellations=sums.untimed,
        repeat_patients=(
            _repeat_patients(session, where) if "repeat_patients" in filters.parts else []
        ),
        from_rollups=use_rollups,
        lagging_days=len(lagging or ()),
    )
    if filters.what_if is not None:
        w = filters.what_if
        figures.what_if = WhatIfResult(
            actual_late=sums.totals.late,
            actual_fee_cents={
                code: cents - fees.late_waived_cents.get(code, 0)
                for code, cents in fees.late_assessed_cents.items()
            },
            actual_points=fees.cancellation_points,
            window_hours=w.window_hours,
            late=sums.whatif_late,
            fee_cents={
                code: n * dict(w.fee_by_currency).get(code, w.late_fee_cents)
                for code, n in sums.whatif_late_in.items()
            },
            points=sums.whatif_late * w.points,
        )
    return figures


def _raw_into(session, sums: _Sums, dialect, scope, where, filters, window) -> None:
    i = rows_subquery(dialect, scope, where).c
    core5 = [
        func.sum(i.booked),
        func.sum(i.cancelled),
        func.sum(i.late),
        func.sum(i.no_show),
        func.sum(i.attended),
    ]
    extra = [func.sum(i.risk), func.sum(i.refill), func.sum(i.untimed)]
    # the currency is one more key only where the clinics have several (risk is money)
    keys = (i.daynum, i.hour, i.sms, i.lead, i.currency)
    for row in session.execute(select(*keys, *core5, *extra).group_by(*keys)):
        values = [int(v or 0) for v in row[5:]]
        sums.hour(int(row[0]), int(row[1]), values[:5])
        sums.lead(bool(row[2]), int(row[3]), values[:5])
        sums.money(row[4], values[5], values[6], values[7])
    notice_keys = (i.notice_h, i.by_patient, i.currency)
    notice = select(*notice_keys, func.count()).where(i.notice_h.is_not(None))
    for hours, by_patient, currency, count in session.execute(notice.group_by(*notice_keys)):
        sums.notice_hours(int(hours), bool(by_patient), int(count), window, currency)
    turn = select(i.turn, func.count(), func.sum(i.turn_s)).where(i.turn.is_not(None))
    for bucket, count, seconds in session.execute(turn.group_by(i.turn)):
        sums.turnaround(int(bucket), int(count), int(seconds or 0))
    # declined online requests that never had a time: their turnaround still counts
    for bucket, count, seconds in _untimed_declines(session, scope, filters, dialect):
        sums.turnaround(bucket, count, seconds)


def _untimed_declines(session, scope, filters, dialect) -> list[tuple[int, int, int]]:
    query = untimed_declines_query(
        dialect,
        [c for c, _ in scope.clinics],
        filters.start,
        filters.end,
        filters.provider_id,
        filters.service_id,
        scope.later,
    )
    rows = session.execute(query).all()
    return [(int(b), int(n), int(s or 0)) for _, _, b, n, s in rows]


def _reasons(session: Session, where: list, limit: int = 12) -> list[tuple[str, int]]:
    reason = func.coalesce(func.nullif(func.trim(Appointment.cancel_reason), ""), "(no reason)")
    inner = select(reason.label("reason")).where(*where, Appointment.status == S.CANCELLED)
    inner = inner.subquery()
    count = func.count().label("n")
    query = (
        select(inner.c.reason, count)
        .group_by(inner.c.reason)
        .order_by(count.desc(), inner.c.reason)
        .limit(limit)
    )
    return [(r, int(n)) for r, n in session.execute(query)]


def _fees_into(session: Session, sums: _Sums, where: list) -> None:
    waived = LedgerEntry.waived_at.is_not(None)
    query = (
        select(
            Appointment.clinic_id,
            LedgerEntry.kind,
            Appointment.status,
            waived.label("waived"),
            func.sum(LedgerEntry.amount_cents),
            func.sum(LedgerEntry.points),
        )
        .join(Appointment, Appointment.id == LedgerEntry.appointment_id)
        .where(*where, Appointment.status.in_((S.CANCELLED, S.NO_SHOW)))
        .group_by(Appointment.clinic_id, LedgerEntry.kind, Appointment.status, waived)
    )
    for clinic_id, kind, status, is_waived, cents, points in session.execute(query):
        cents, points = int(cents or 0), int(points or 0)
        on_cancelled = points if status == S.CANCELLED and not is_waived else 0
        code = LEDGER_CODES.get(kind, 2)
        sums.fee(sums.currency_of(clinic_id), code, bool(is_waived), [cents, points, on_cancelled])


def _repeat_patients(session: Session, where: list, limit: int = 50) -> list[RepeatPatient]:
    a = Appointment
    late = func.sum(case((and_(a.status == S.CANCELLED, a.late_cancellation), 1), else_=0))
    missed = func.sum(case((a.status == S.NO_SHOW, 1), else_=0))
    query = (
        select(Patient.id, Patient.first_name, Patient.last_name, late, missed)
        .join(Patient, Patient.id == a.patient_id)
        .where(*where, a.status.in_((S.CANCELLED, S.NO_SHOW)))
        .group_by(Patient.id, Patient.first_name, Patient.last_name)
        .having(late + missed >= REPEAT_THRESHOLD)
        .order_by((late + missed).desc(), Patient.id)
        .limit(limit)
    )
    return [
        RepeatPatient(pid, f"{first} {last}".strip(), int(lc), int(ns))
        for pid, first, last, lc, ns in session.execute(query)
    ]


def export_csv(session: Session, actor: Actor, filters: AnalyticsFilters) -> bytes:
    """The figures as CSV, audited, safe to open in a spreadsheet: one row per figure, every
    part; the rates by every provider and service (each package booked its own row of the
    service section, "Package: name"), by weekday × hour (the heatmap) and by
    week a year earlier (the weekly chart's dotted line, each week by its own Monday) too,
    each rate with its numerator and n (an empty rate is one of n = 0). Money is one row per
    currency, named in the currency column (empty for counts and rates); amounts are in minor
    units."""
    figures = compute_figures(session, actor, replace(filters, parts=frozenset(PARTS)))
    rows: list[tuple[str, str, str, Any, str]] = []

    def counted(section: str, label: str, metric: str, value: Any) -> None:
        rows.append((section, label, metric, value, ""))

    def money(section: str, label: str, metric: str, amounts: Amounts) -> None:
        rows.extend((section, label, metric, cents, code) for code, cents in amounts.items())

    t = figures.totals
    for metric in ("booked", "cancelled", "late", "no_shows", "attended"):
        counted("totals", "All", metric, getattr(t, metric))
    for metric in ("cancellation_rate", "late_cancellation_rate", "no_show_rate"):
        counted("totals", "All", metric, _fmt_rate(getattr(t, metric)))
    by_group = [
        (group, [g.counts for g in breakdowns.rates_by(session, actor, filters, group, top=None)])
        for group in breakdowns.GROUPS
    ]
    # the weekly chart's line a year earlier, each week labelled by its own Monday
    year = a_year_earlier(filters)
    earlier = year and weeks_a_year_earlier(figures, compute_figures(session, actor, year))
    for section, groups in (
        ("sms", figures.by_sms),
        ("weekday", figures.by_weekday),
        ("hour", figures.by_hour),
        ("weekday_hour", [cell.counts for cell in figures.heatmap]),  # "Mon 09:00"
        ("lead_time", figures.by_lead_time),
        ("week", every_week(figures)),
        ("week_a_year_earlier", earlier or []),
        *by_group,
    ):
        for c in groups:  # each rate beside its own n (visits due: the no-show rate's)
            counted(section, c.label, "booked", c.booked)
            counted(section, c.label, "cancelled", c.cancelled)
            counted(section, c.label, "cancellation_rate", _fmt_rate(c.cancellation_rate))
            counted(section, c.label, "visits_due", c.visits_due)
            counted(section, c.label, "no_shows", c.no_shows)
            counted(section, c.label, "no_show_rate", _fmt_rate(c.no_show_rate))
    for label, n in figures.notice:
        counted("cancellation_notice", label, "cancelled", n)
    for label, n in figures.turnaround:
        counted("request_turnaround", label, "requests", n)
    for label, n in figures.reasons:
        counted("reason", label, "cancelled", n)
    for key, value in asdict(figures.fees).items():
        if isinstance(value, dict):
            money("fees", key, "value", value)
        else:
            counted("fees", key, "value", value)
    money("revenue_at_risk", "All", "cents", figures.revenue_at_risk_cents)
    counted("refill", "All", "refilled", figures.refilled)
    counted("refill", "All", "refill_rate", _fmt_rate(figures.refill_rate))
    if figures.untimed_cancellations:
        counted("refill", "All", "cancellations_without_time", figures.untimed_cancellations)
    for p in figures.repeat_patients:
        name = f"#{p.patient_id} {p.name}"
        counted("repeat_patient", name, "late_cancellations", p.late_cancellations)
        counted("repeat_patient", name, "no_shows", p.no_shows)
    if figures.what_if:
        for key, value in asdict(figures.what_if).items():
            if isinstance(value, dict):
                money("what_if", "All", key, value)
            else:
                counted("what_if", "All", key, value)
    exports.record_export(
        session,
        actor,
        "cancellation_analytics",
        len(rows),
        {
            "start": filters.start,
            "end": filters.end,
            "clinic_id": filters.clinic_id,
            "provider_id": filters.provider_id,
            "service_id": filters.service_id,
        },
    )
    return exports.to_csv(("section", "group", "metric", "value", "currency"), rows)


def _fmt_rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def default_filters(today: date | None = None, days: int = 90) -> AnalyticsFilters:
    today = today or datetime.now(UTC).date()
    return AnalyticsFilters(start=today - timedelta(days=days), end=today)
