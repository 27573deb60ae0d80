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
- lead time = start − booked; cancellation notice = start − cancelled
- request turnaround = decided − requested, for online requests
- revenue at risk = price of the services of cancelled and no-show appointments
- refill rate = cancelled slots booked again ÷ cancelled; booked again = another appointment of
  the same provider overlapping the cancelled slot, created after the cancellation
- what-if: patients' cancellations with notice < the chosen window would have been late;
  charged = late × fee, points = late × points
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from core import exports
from core.authz import Actor, Permission, ensure
from core.clock import local_days_bounds, zone
from core.errors import ValidationError
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Patient,
    Provider,
    Service,
    Source,
)

S = AppointmentStatus
BOOKED = (S.SCHEDULED, S.CHECKED_IN, S.COMPLETED, S.NO_SHOW, S.CANCELLED)
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
HOUR, DAY = 3600, 86400
# (label, upper bound in seconds); the last bucket is open-ended
LEAD_BUCKETS = [("under 1 day", DAY), ("1–3 days", 3 * DAY), ("3–7 days", 7 * DAY),
                ("7–14 days", 14 * DAY), ("14–30 days", 30 * DAY), ("30+ days", None)]  # fmt: skip
NOTICE_BUCKETS = [("under 2 h", 2 * HOUR), ("2–12 h", 12 * HOUR), ("12–24 h", DAY),
                  ("24–48 h", 2 * DAY), ("2–7 days", 7 * DAY), ("7+ days", None)]  # fmt: skip
TURNAROUND_BUCKETS = [("under 1 h", HOUR), ("1–4 h", 4 * HOUR), ("4–24 h", DAY),
                      ("1–3 days", 3 * DAY), ("3+ days", None)]  # fmt: skip
MAX_RANGE_DAYS = 3 * 366
REPEAT_THRESHOLD = 2
MAX_WHAT_IF_HOURS = 24 * 14
NOTICE_CAP = MAX_WHAT_IF_HOURS + 1  # hours of notice are stored up to this
# by_day: the weekday, weekly and weekday × hour figures (per-day rows: the heaviest read)
# timing: lead-time buckets, SMS reminder split and the notice histogram (without it the
# what-if still counts the short-notice cancellations, from the few roll-up rows it needs)
PARTS = ("reasons", "repeat_patients", "by_day", "timing")


@dataclass(frozen=True)
class WhatIf:
    window_hours: int
    late_fee_cents: int
    points: int


@dataclass(frozen=True)
class AnalyticsFilters:
    start: date  # first clinic-local day
    end: date  # last clinic-local day (inclusive)
    clinic_id: int | None = None
    provider_id: int | None = None
    service_id: int | None = None
    what_if: WhatIf | None = None
    # optional parts a screen may leave out when it does not show them (default: everything)
    parts: frozenset[str] = frozenset(PARTS)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Counts:
    label: str
    booked: int = 0
    cancelled: int = 0
    late: int = 0
    no_shows: int = 0
    attended: int = 0

    @property
    def cancellation_rate(self) -> float | None:
        return _rate(self.cancelled, self.booked)

    @property
    def late_cancellation_rate(self) -> float | None:
        return _rate(self.late, self.booked)

    @property
    def no_show_rate(self) -> float | None:
        return _rate(self.no_shows, self.no_shows + self.attended)

    def add(self, booked, cancelled, late, no_shows, attended) -> None:
        self.booked += booked
        self.cancelled += cancelled
        self.late += late
        self.no_shows += no_shows
        self.attended += attended

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "cancellation_rate": self.cancellation_rate,
            "late_cancellation_rate": self.late_cancellation_rate,
            "no_show_rate": self.no_show_rate,
        }


@dataclass(frozen=True)
class HeatCell:
    weekday: int  # 0 = Monday, clinic-local
    hour: int  # clinic-local
    counts: Counts


@dataclass(frozen=True)
class Fees:
    late_assessed_cents: int = 0
    late_waived_cents: int = 0
    no_show_assessed_cents: int = 0
    no_show_waived_cents: int = 0
    points_assessed: int = 0
    points_waived: int = 0
    cancellation_points: int = 0  # points deducted for late cancellations (not waived or waived)


@dataclass(frozen=True)
class WhatIfResult:
    actual_late: int
    actual_fee_cents: int
    actual_points: int
    window_hours: int
    late: int
    fee_cents: int
    points: int


@dataclass(frozen=True)
class RepeatPatient:
    patient_id: int
    name: str
    late_cancellations: int
    no_shows: int


@dataclass
class CancellationFigures:
    filters: AnalyticsFilters
    totals: Counts
    by_sms: list[Counts]
    by_weekday: list[Counts]
    by_hour: list[Counts]
    heatmap: list[HeatCell]
    by_lead_time: list[Counts]
    weekly: list[Counts]
    notice: list[tuple[str, int]]
    turnaround: list[tuple[str, int]]
    turnaround_mean_hours: float | None
    reasons: list[tuple[str, int]]
    fees: Fees
    revenue_at_risk_cents: int
    refilled: int
    repeat_patients: list[RepeatPatient]
    what_if: WhatIfResult | None = None
    from_rollups: bool = field(default=False)

    @property
    def refill_rate(self) -> float | None:
        return _rate(self.refilled, self.totals.cancelled)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO text): what `python -m core.cli stats --json` prints."""
        f = self.filters
        return {
            "filters": {"start": f.start.isoformat(), "end": f.end.isoformat(),
                        "clinic_id": f.clinic_id, "provider_id": f.provider_id,
                        "service_id": f.service_id,
                        "what_if": asdict(f.what_if) if f.what_if else None},
            "totals": self.totals.as_dict(),
            "no_show_rate": self.totals.no_show_rate,
            "no_show_rate_by_sms": {c.label: c.no_show_rate for c in self.by_sms},
            "by_sms": [c.as_dict() for c in self.by_sms],
            "by_weekday": [c.as_dict() for c in self.by_weekday],
            "by_hour": [c.as_dict() for c in self.by_hour],
            "heatmap": [{"weekday": h.weekday, "hour": h.hour} | h.counts.as_dict()
                        for h in self.heatmap],
            "lead_time_buckets": [c.as_dict() for c in self.by_lead_time],
            "weekly": [c.as_dict() for c in self.weekly],
            "cancellation_notice": dict(self.notice),
            "request_turnaround": dict(self.turnaround),
            "request_turnaround_mean_hours": self.turnaround_mean_hours,
            "reasons": dict(self.reasons),
            "fees": asdict(self.fees),
            "revenue_at_risk_cents": self.revenue_at_risk_cents,
            "refilled": self.refilled,
            "refill_rate": self.refill_rate,
            "repeat_patients": [asdict(p) for p in self.repeat_patients],
            "what_if": asdict(self.what_if) if self.what_if else None,
        }  # fmt: skip


# ---------------------------------------------------------------- SQL building blocks


def _epoch(column, dialect: str):
    """Seconds since 1970 of a stored (naive UTC) timestamp, as an integer."""
    if dialect == "sqlite":
        if sqlite3.sqlite_version_info >= (3, 38):
            return func.unixepoch(column, type_=BigInteger)  # about twice as fast as strftime('%s')
        return cast(func.strftime("%s", column), BigInteger)
    return cast(extract("epoch", column), BigInteger)


def offset_periods(tz: str, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The UTC-offset periods of `tz` between two UTC moments: [(from, offset seconds)], the
    first starting at `start`. DST changes are found day by day, then to the second."""
    z = zone(tz)

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(z).utcoffset().total_seconds())

    periods = [(start, offset(start))]
    cursor = start
    while cursor < end:
        nxt = min(cursor + timedelta(days=1), end)
        if offset(nxt) != periods[-1][1]:
            low, high = cursor, nxt  # offset(low) is the old one, offset(high) the new
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == periods[-1][1] else (low, middle)
            periods.append((high.replace(microsecond=0), offset(nxt)))
        cursor = nxt
    return periods


@dataclass(frozen=True)
class _Scope:
    clinics: list[tuple[int, str]]  # (id, time zone)
    bounds: dict[int, tuple[datetime, datetime]]  # clinic → UTC [start, end)
    periods: dict[int, list[tuple[datetime, int]]]


def _scope(session: Session, filters: AnalyticsFilters, periods_too: bool = True) -> _Scope:
    query = select(Clinic.id, Clinic.timezone).order_by(Clinic.id)
    if filters.clinic_id is not None:
        query = query.where(Clinic.id == filters.clinic_id)
    clinics = [(cid, tz) for cid, tz in session.execute(query)]
    bounds, periods = {}, {}
    for cid, tz in clinics:
        begin, finish = local_days_bounds(filters.start, filters.end, tz)
        bounds[cid] = (begin, finish)
        if periods_too:  # only the direct path needs the UTC offsets
            periods[cid] = offset_periods(tz, begin, finish)
    return _Scope(clinics, bounds, periods)


def _where(scope: _Scope, filters: AnalyticsFilters, a=Appointment) -> list:
    in_range = [and_(a.clinic_id == cid, a.start_at >= lo, a.start_at < hi)
                for cid, (lo, hi) in scope.bounds.items()]  # fmt: skip
    conditions = [a.kind == AppointmentKind.APPOINTMENT, or_(*in_range) if in_range else False]
    if filters.provider_id is not None:
        conditions.append(a.provider_id == filters.provider_id)
    if filters.service_id is not None:
        conditions.append(a.service_id == filters.service_id)
    return conditions


def _local_offset(scope: _Scope):
    whens = []
    for cid, periods in scope.periods.items():
        for (_, offset), (following, _) in zip(periods, periods[1:], strict=False):
            whens.append((and_(Appointment.clinic_id == cid, Appointment.start_at < following),
                          literal_column(str(offset), Integer)))  # fmt: skip
        whens.append((Appointment.clinic_id == cid, literal_column(str(periods[-1][1]), Integer)))
    return case(*whens, else_=0) if whens else literal_column("0", Integer)


def _bucket(seconds, buckets):
    whens = [(seconds < bound, index) for index, (_, bound) in enumerate(buckets) if bound]
    return case(*whens, else_=len(buckets) - 1)


def _refill_horizon(dialect: str):
    """The outer appointment's start minus 12 hours: bounds the refill look-up on the
    (provider_id, start_at) index (a refilling visit is assumed to last under 12 hours)."""
    if dialect == "sqlite":
        return literal_column("datetime(appointments.start_at, '-12 hours')")
    return literal_column("(appointments.start_at - INTERVAL '12 hours')")


def _extra_services_price():
    """The price of an appointment's other booked services (beyond its first): a look-up on
    appointment_services' primary key, made only for cancelled and no-show rows."""
    a = Appointment
    return (
        select(func.coalesce(func.sum(Service.price_cents), 0))
        .select_from(AppointmentService)
        .join(Service, Service.id == AppointmentService.service_id)
        .where(AppointmentService.appointment_id == a.id,
               or_(a.service_id.is_(None), AppointmentService.service_id != a.service_id))
        .scalar_subquery()
    )  # fmt: skip


# ---------------------------------------------------------------- the entry point


@dataclass(frozen=True)
class Choices:
    clinics: list[tuple[int, str]]
    providers: list[tuple[int, str]]
    services: list[tuple[int, str]]


def list_choices(session: Session, actor: Actor) -> Choices:
    """The clinics, providers and services the page's filters offer."""
    ensure(actor, Permission.ANALYTICS_READ)

    # one round trip for the three lists (the page asks on every first view)
    parts = [select(literal(n).label("list"), m.id, m.name.label("name"))
             for n, m in enumerate((Clinic, Provider, Service))]  # fmt: skip
    found: list[list[tuple[int, str]]] = [[], [], []]
    for n, id_, name in session.execute(union_all(*parts).order_by("list", "name")):
        found[n].append((id_, name))
    return Choices(*found)


def validate_filters(filters: AnalyticsFilters) -> None:
    if filters.end < filters.start:
        raise ValidationError("The end date is before the start date; swap them.")
    if (filters.end - filters.start).days > MAX_RANGE_DAYS:
        raise ValidationError("Choose a range of at most three years.")
    w = filters.what_if
    if w is not None:
        if not 0 <= w.window_hours <= MAX_WHAT_IF_HOURS:
            raise ValidationError(
                f"The what-if window must be between 0 and {MAX_WHAT_IF_HOURS} hours."
            )
        if w.late_fee_cents < 0 or w.points < 0:
            raise ValidationError("The what-if fee and points cannot be negative.")


def compute_figures(
    session: Session, actor: Actor, filters: AnalyticsFilters
) -> CancellationFigures:
    """Every cancellation and no-show figure for the filters, aggregated in SQL: from the
    maintained roll-ups (core.cancellation_rollups) when no provider or service is chosen,
    otherwise straight from the appointments of the range."""
    ensure(actor, Permission.ANALYTICS_READ)
    validate_filters(filters)
    from core import cancellation_rollups

    use_rollups = filters.provider_id is None and filters.service_id is None
    use_rollups = use_rollups and cancellation_rollups.ensure_fresh(session)
    return _compute(session, filters, use_rollups)


def row_values(dialect: str, scope: _Scope):
    """The per-appointment values every figure is summed from (labelled SQL expressions)."""
    a = Appointment
    start_s = _epoch(a.start_at, dialect)
    local = start_s + _local_offset(scope)
    notice = start_s - _epoch(a.cancelled_at, dialect)
    turn = _epoch(a.decided_at, dialect) - _epoch(a.created_at, dialect)
    other = aliased(Appointment)
    refill = exists().where(
        other.provider_id == a.provider_id, other.id != a.id,
        other.kind == AppointmentKind.APPOINTMENT, other.status.in_(BOOKED),
        other.start_at >= _refill_horizon(dialect), other.start_at < a.end_at,
        other.end_at > a.start_at, other.created_at > a.cancelled_at,
    )  # fmt: skip
    cancelled = a.status == S.CANCELLED
    # the practice's own cancellations are never charged (core.lifecycle); unknown = patient
    by_patient = or_(a.cancelled_by.is_(None), a.cancelled_by == "patient")
    decided_online = and_(a.source == Source.ONLINE, a.decided_at.is_not(None))
    # whole hours of notice (negative: after the start), capped above the longest window
    notice_hours = case((notice < 0, -1), (notice >= NOTICE_CAP * HOUR, NOTICE_CAP),
                        else_=notice // HOUR)  # fmt: skip
    return [
        (local // DAY).label("daynum"),
        ((local % DAY) // HOUR).label("hour"),
        case((a.sms_reminder, 1), else_=0).label("sms"),
        _bucket(start_s - _epoch(a.booked_at, dialect), LEAD_BUCKETS).label("lead"),
        case((a.status.in_(BOOKED), 1), else_=0).label("booked"),
        case((cancelled, 1), else_=0).label("cancelled"),
        case((and_(cancelled, a.late_cancellation), 1), else_=0).label("late"),
        case((a.status == S.NO_SHOW, 1), else_=0).label("no_show"),
        case((a.status.in_((S.COMPLETED, S.CHECKED_IN)), 1), else_=0).label("attended"),
        case((a.status.in_((S.CANCELLED, S.NO_SHOW)),
              func.coalesce(Service.price_cents, 0) + _extra_services_price()),
             else_=0).label("risk"),
        case((and_(cancelled, a.provider_id.is_not(None), refill), 1), else_=0).label("refill"),
        case((cancelled, notice_hours), else_=None).label("notice_h"),
        case((by_patient, 1), else_=0).label("by_patient"),
        case((decided_online, _bucket(turn, TURNAROUND_BUCKETS)), else_=None).label("turn"),
        case((decided_online, turn), else_=None).label("turn_s"),
    ]  # fmt: skip


def rows_subquery(dialect: str, scope: _Scope, where: list):
    return (
        select(*row_values(dialect, scope))
        .outerjoin(Service, Service.id == Appointment.service_id)
        .where(*where, Appointment.status.in_((*BOOKED, S.DECLINED)))
        .subquery()
    )


class _Sums:
    """Adds up the grouped rows (from the appointments or from the roll-ups) into figures."""

    def __init__(self, by_day: bool = True, timing: bool = True) -> None:
        self.by_day = by_day  # False: the rows carry no day, so no weekday, week or cell
        self.timing = timing  # False: no lead-time, SMS or notice buckets (what-if still)
        self.totals = Counts("All")
        self.sms = {True: Counts("SMS reminder"), False: Counts("No SMS reminder")}
        self.weekdays = [Counts(name) for name in WEEKDAYS]
        self.hours: dict[int, Counts] = {}
        self.cells: dict[tuple[int, int], Counts] = {}
        self.leads = [Counts(label) for label, _ in LEAD_BUCKETS]
        self.weeks: dict[int, Counts] = {}
        self.risk = self.refilled = self.turn_n = self.turn_total = self.whatif_late = 0
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

    def notice_hours(self, hours: int, by_patient: bool, count: int, window: int) -> None:
        for index, (_, bound) in enumerate(NOTICE_BUCKETS):
            if bound is None or hours * HOUR < bound:
                self.notice[index] += count if self.timing else 0
                break
        if by_patient and hours < window:
            self.whatif_late += count

    def turnaround(self, bucket: int, count: int, seconds: int) -> None:
        self.turn[bucket] += count
        self.turn_n += count
        self.turn_total += seconds


def _compute(session: Session, filters: AnalyticsFilters, use_rollups: bool):
    dialect = session.get_bind().dialect.name
    scope = _scope(session, filters, periods_too=not use_rollups)
    # the appointment conditions: only for the direct path, the reasons and repeat patients
    direct = not use_rollups or {"reasons", "repeat_patients"} & filters.parts
    where = _where(scope, filters) if direct else []
    window = filters.what_if.window_hours if filters.what_if else 0
    sums = _Sums(by_day="by_day" in filters.parts, timing="timing" in filters.parts)
    if use_rollups:
        from core import cancellation_rollups

        fees = cancellation_rollups.read_into(session, sums, filters, [c for c, _ in scope.clinics],
                                              window)  # fmt: skip
    else:
        _raw_into(session, sums, dialect, scope, where, filters, window)
        fees = _fees(session, where)
    figures = CancellationFigures(
        filters=filters,
        totals=sums.totals,
        by_sms=[sums.sms[True], sums.sms[False]],
        by_weekday=sums.weekdays,
        by_hour=[sums.hours[h] for h in sorted(sums.hours)],
        heatmap=[HeatCell(w, h, c) for (w, h), c in sorted(sums.cells.items())],
        by_lead_time=sums.leads,
        weekly=[sums.weeks[k] for k in sorted(sums.weeks)],
        notice=[(label, n) for (label, _), n in zip(NOTICE_BUCKETS, sums.notice, strict=True)],
        turnaround=[(label, n)
                    for (label, _), n in zip(TURNAROUND_BUCKETS, sums.turn, strict=True)],
        turnaround_mean_hours=sums.turn_total / sums.turn_n / HOUR if sums.turn_n else None,
        reasons=_reasons(session, where) if "reasons" in filters.parts else [],
        fees=fees,
        revenue_at_risk_cents=sums.risk,
        refilled=sums.refilled,
        repeat_patients=(
            _repeat_patients(session, where) if "repeat_patients" in filters.parts else []
        ),
        from_rollups=use_rollups,
    )  # fmt: skip
    if filters.what_if is not None:
        w = filters.what_if
        figures.what_if = WhatIfResult(
            actual_late=sums.totals.late,
            actual_fee_cents=fees.late_assessed_cents - fees.late_waived_cents,
            actual_points=fees.cancellation_points,
            window_hours=w.window_hours,
            late=sums.whatif_late,
            fee_cents=sums.whatif_late * w.late_fee_cents,
            points=sums.whatif_late * w.points,
        )
    return figures


def _raw_into(session, sums: _Sums, dialect, scope, where, filters, window) -> None:
    i = rows_subquery(dialect, scope, where).c
    core5 = [func.sum(i.booked), func.sum(i.cancelled), func.sum(i.late), func.sum(i.no_show),
             func.sum(i.attended)]  # fmt: skip
    extra = [func.sum(i.risk), func.sum(i.refill)]
    keys = (i.daynum, i.hour, i.sms, i.lead)
    for row in session.execute(select(*keys, *core5, *extra).group_by(*keys)):
        values = [int(v or 0) for v in row[4:]]
        sums.hour(int(row[0]), int(row[1]), values[:5])
        sums.lead(bool(row[2]), int(row[3]), values[:5])
        sums.risk += values[5]
        sums.refilled += values[6]
    notice = select(i.notice_h, i.by_patient, func.count()).where(i.notice_h.is_not(None))
    for hours, by_patient, count in session.execute(
        notice.group_by(i.notice_h, i.by_patient)
    ):  # fmt: skip
        sums.notice_hours(int(hours), bool(by_patient), int(count), window)
    turn = select(i.turn, func.count(), func.sum(i.turn_s)).where(i.turn.is_not(None))
    for bucket, count, seconds in session.execute(turn.group_by(i.turn)):
        sums.turnaround(int(bucket), int(count), int(seconds or 0))
    # declined online requests that never had a time: their turnaround still counts
    for bucket, count, seconds in _untimed_declines(session, scope, filters, dialect):
        sums.turnaround(bucket, count, seconds)


def untimed_declines_query(dialect, clinic_ids, first: date, last: date, provider_id=None,
                           service_id=None):  # fmt: skip
    """Declined online requests that never had a time, by clinic-local requested day:
    (clinic, day number, turnaround bucket, count, seconds)."""
    a = Appointment
    conditions = [a.status == S.DECLINED, a.start_at.is_(None), a.requested_day >= first,
                  a.requested_day <= last, a.source == Source.ONLINE,
                  a.decided_at.is_not(None), a.clinic_id.in_(clinic_ids)]  # fmt: skip
    if service_id is not None:
        conditions.append(a.service_id == service_id)
    if provider_id is not None:
        conditions.append(a.provider_id == provider_id)
    turn = _epoch(a.decided_at, dialect) - _epoch(a.created_at, dialect)
    if dialect == "sqlite":
        daynum = cast(func.julianday(a.requested_day) - 2440587.5, Integer)
    else:
        daynum = a.requested_day - literal_column("DATE '1970-01-01'")
    inner = select(a.clinic_id.label("clinic_id"), daynum.label("daynum"),
                   _bucket(turn, TURNAROUND_BUCKETS).label("b"), turn.label("s"))  # fmt: skip
    i = inner.where(*conditions).subquery().c
    return select(i.clinic_id, i.daynum, i.b, func.count(), func.sum(i.s)).group_by(
        i.clinic_id, i.daynum, i.b
    )


def _untimed_declines(session, scope, filters, dialect) -> list[tuple[int, int, int]]:
    query = untimed_declines_query(dialect, [c for c, _ in scope.clinics], filters.start,
                                   filters.end, filters.provider_id, filters.service_id)  # fmt: skip
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


def _fees(session: Session, where: list) -> Fees:
    waived = LedgerEntry.waived_at.is_not(None)
    query = (
        select(LedgerEntry.kind, Appointment.status, waived.label("waived"),
               func.sum(LedgerEntry.amount_cents), func.sum(LedgerEntry.points))
        .join(Appointment, Appointment.id == LedgerEntry.appointment_id)
        .where(*where, Appointment.status.in_((S.CANCELLED, S.NO_SHOW)))
        .group_by(LedgerEntry.kind, Appointment.status, waived)
    )  # fmt: skip
    totals: dict[str, int] = {}
    for kind, status, is_waived, cents, points in session.execute(query):
        cents, points = int(cents or 0), int(points or 0)

        def bump(key, value):
            totals[key] = totals.get(key, 0) + value

        if kind == LedgerKind.LATE_CANCEL_FEE:
            bump("late_assessed_cents", cents)
            bump("late_waived_cents", cents if is_waived else 0)
        elif kind == LedgerKind.NO_SHOW_FEE:
            bump("no_show_assessed_cents", cents)
            bump("no_show_waived_cents", cents if is_waived else 0)
        else:
            bump("points_assessed", points)
            bump("points_waived", points if is_waived else 0)
            if status == S.CANCELLED and not is_waived:
                bump("cancellation_points", points)
    return Fees(**totals)


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
    return [RepeatPatient(pid, f"{first} {last}".strip(), int(lc), int(ns))
            for pid, first, last, lc, ns in session.execute(query)]  # fmt: skip


# ---------------------------------------------------------------- export


def export_csv(session: Session, actor: Actor, filters: AnalyticsFilters) -> bytes:
    """The figures as CSV (one row per figure, every part), audited, safe to open in a
    spreadsheet."""
    figures = compute_figures(session, actor, replace(filters, parts=frozenset(PARTS)))
    rows: list[tuple[str, str, str, Any]] = []
    t = figures.totals
    for metric in ("booked", "cancelled", "late", "no_shows", "attended"):
        rows.append(("totals", "All", metric, getattr(t, metric)))
    for metric in ("cancellation_rate", "late_cancellation_rate", "no_show_rate"):
        rows.append(("totals", "All", metric, _fmt_rate(getattr(t, metric))))
    for section, groups in (("sms", figures.by_sms), ("weekday", figures.by_weekday),
                            ("hour", figures.by_hour), ("lead_time", figures.by_lead_time),
                            ("week", figures.weekly)):  # fmt: skip
        for c in groups:
            rows += [(section, c.label, "booked", c.booked),
                     (section, c.label, "cancellation_rate", _fmt_rate(c.cancellation_rate)),
                     (section, c.label, "no_show_rate", _fmt_rate(c.no_show_rate))]  # fmt: skip
    rows += [("cancellation_notice", label, "cancelled", n) for label, n in figures.notice]
    rows += [("request_turnaround", label, "requests", n) for label, n in figures.turnaround]
    rows += [("reason", label, "cancelled", n) for label, n in figures.reasons]
    rows += [("fees", key, "value", value) for key, value in asdict(figures.fees).items()]
    rows += [("revenue_at_risk", "All", "cents", figures.revenue_at_risk_cents),
             ("refill", "All", "refilled", figures.refilled),
             ("refill", "All", "refill_rate", _fmt_rate(figures.refill_rate))]  # fmt: skip
    for p in figures.repeat_patients:
        rows += [("repeat_patient", f"#{p.patient_id} {p.name}", "late_cancellations",
                  p.late_cancellations),
                 ("repeat_patient", f"#{p.patient_id} {p.name}", "no_shows", p.no_shows)]  # fmt: skip
    if figures.what_if:
        for key, value in asdict(figures.what_if).items():
            rows.append(("what_if", "All", key, value))
    exports.record_export(session, actor, "cancellation_analytics", len(rows),
                          {"start": filters.start, "end": filters.end,
                           "clinic_id": filters.clinic_id, "provider_id": filters.provider_id,
                           "service_id": filters.service_id})  # fmt: skip
    return exports.to_csv(("section", "group", "metric", "value"), rows)


def _fmt_rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def default_filters(today: date | None = None, days: int = 90) -> AnalyticsFilters:
    today = today or datetime.now(UTC).date()
    return AnalyticsFilters(start=today - timedelta(days=days), end=today)
