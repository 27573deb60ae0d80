"""The shared parts of the cancellation analytics: filters, values and SQL building blocks.

The figures (core.analytics.cancellations) and the roll-ups that keep them fast
(core.analytics.cancellation_rollups) both build on these; this module imports neither.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

from core.kernel.clock import local_days_bounds, zone
from core.kernel.errors import ValidationError
from core.kernel.money import DEFAULT_CURRENCY
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    Clinic,
    ImportBatch,
    Package,
    Service,
    Source,
)

S = AppointmentStatus


BOOKED = (S.SCHEDULED, S.CHECKED_IN, S.COMPLETED, S.NO_SHOW, S.CANCELLED)


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


HOUR, DAY = 3600, 86400


# (label, upper bound in seconds); the last bucket is open-ended
LEAD_BUCKETS = [
    ("under 1 day", DAY),
    ("1–3 days", 3 * DAY),
    ("3–7 days", 7 * DAY),
    ("7–14 days", 14 * DAY),
    ("14–30 days", 30 * DAY),
    ("30+ days", None),
]


# an imported visit whose file did not say when it was booked (stored with booked_at = start,
# see core.interchange.imports): its own bucket after LEAD_BUCKETS, never "under 1 day"
LEAD_UNKNOWN = "booking time unknown"


def booked_when(source, booked_at: datetime | None, start_at: datetime | None):
    """When the appointment was booked, None when not known (as booking_unknown, in Python)."""
    if source == Source.IMPORT and booked_at and start_at and booked_at >= start_at:
        return None
    return booked_at


def booking_unknown():
    """SQL: the appointment's booking time is not known (an import that did not give it)."""
    a = Appointment
    return and_(a.source == Source.IMPORT, a.booked_at >= a.start_at)


NOTICE_BUCKETS = [
    ("under 2 h", 2 * HOUR),
    ("2–12 h", 12 * HOUR),
    ("12–24 h", DAY),
    ("24–48 h", 2 * DAY),
    ("2–7 days", 7 * DAY),
    ("7+ days", None),
]


TURNAROUND_BUCKETS = [
    ("under 1 h", HOUR),
    ("1–4 h", 4 * HOUR),
    ("4–24 h", DAY),
    ("1–3 days", 3 * DAY),
    ("3+ days", None),
]


MAX_RANGE_DAYS = 3 * 366


YEAR = timedelta(days=364)  # 52 weeks: the same weekdays a year earlier


REPEAT_THRESHOLD = 2


MAX_WHAT_IF_HOURS = 24 * 14


NOTICE_CAP = MAX_WHAT_IF_HOURS + 1  # hours of notice are stored up to this


# by_day: the weekday, weekly and weekday × hour figures (per-day rows: the heaviest read)
# timing: lead-time buckets, SMS reminder split and the notice histogram (without it the
# what-if still counts the short-notice cancellations, from the few roll-up rows it needs)
PARTS = ("reasons", "repeat_patients", "by_day", "timing")


# Money per currency: currency code → minor units, one entry per currency of the clinics in
# the filter (the first clinic's first). There is no practice-wide currency: amounts of two
# currencies are never added up (and never converted).
Amounts = dict[str, int]


@dataclass(frozen=True)
class WhatIf:
    window_hours: int
    # one number for the practice, in minor units of each clinic's own currency (as prices are)
    late_fee_cents: int
    points: int
    # the typed fee in minor units of each currency, where they differ ((JPY, 25), (EUR, 2500)
    # for 25 typed); a currency not listed is charged late_fee_cents
    fee_by_currency: tuple[tuple[str, int], ...] = ()


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
        fees = [w.late_fee_cents, *(cents for _, cents in w.fee_by_currency)]
        if min(fees) < 0 or w.points < 0:
            raise ValidationError("The what-if fee and points cannot be negative.")


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# a rate (or mean) over fewer than this many is shown with its n but never compared with
# another period: over 4 bookings one cancellation more moves it 25 points, noise, not news
MIN_N = 10


def compared(now: float | None, n_now: int, before: float | None, n_before: int) -> float | None:
    """A rate's change against another period (now − before); None when either side has
    fewer than MIN_N behind it, or no value."""
    if now is None or before is None or min(n_now, n_before) < MIN_N:
        return None
    return now - before


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
        return rate(self.cancelled, self.booked)

    @property
    def late_cancellation_rate(self) -> float | None:
        return rate(self.late, self.booked)

    @property
    def visits_due(self) -> int:
        """The visits whose time came: the no-show rate's n."""
        return self.no_shows + self.attended

    @property
    def no_show_rate(self) -> float | None:
        return rate(self.no_shows, self.visits_due)

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
    """Fees assessed and waived, per currency; points across the clinics."""

    late_assessed_cents: Amounts = field(default_factory=dict)
    late_waived_cents: Amounts = field(default_factory=dict)
    no_show_assessed_cents: Amounts = field(default_factory=dict)
    no_show_waived_cents: Amounts = field(default_factory=dict)
    points_assessed: int = 0
    points_waived: int = 0
    cancellation_points: int = 0  # points deducted for late cancellations (not waived or waived)


FEE_AMOUNTS = tuple(name for name in Fees.__dataclass_fields__ if name.endswith("_cents"))


@dataclass(frozen=True)
class WhatIfResult:
    actual_late: int
    actual_fee_cents: Amounts
    actual_points: int
    window_hours: int
    late: int
    fee_cents: Amounts
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
    revenue_at_risk_cents: Amounts
    refilled: int
    repeat_patients: list[RepeatPatient]
    what_if: WhatIfResult | None = None
    from_rollups: bool = field(default=False)
    lagging_days: int = 0  # of those, the clinic-days read from the appointments (a change)
    # cancellations imported without when they were cancelled: neither refilled nor not
    untimed_cancellations: int = 0

    @property
    def refill_base(self) -> int:
        """The cancellations the refill rate is of: those whose time is known."""
        return self.totals.cancelled - self.untimed_cancellations

    @property
    def refill_rate(self) -> float | None:
        return rate(self.refilled, self.refill_base)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO text): what `python -m core.cli stats --json` prints."""
        f = self.filters
        return {
            "filters": {
                "start": f.start.isoformat(),
                "end": f.end.isoformat(),
                "clinic_id": f.clinic_id,
                "provider_id": f.provider_id,
                "service_id": f.service_id,
                "what_if": asdict(f.what_if) if f.what_if else None,
            },
            "totals": self.totals.as_dict(),
            "no_show_rate": self.totals.no_show_rate,
            "no_show_rate_by_sms": {c.label: c.no_show_rate for c in self.by_sms},
            "by_sms": [c.as_dict() for c in self.by_sms],
            "by_weekday": [c.as_dict() for c in self.by_weekday],
            "by_hour": [c.as_dict() for c in self.by_hour],
            "heatmap": [
                {"weekday": h.weekday, "hour": h.hour} | h.counts.as_dict() for h in self.heatmap
            ],
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
            "cancellations_without_time": self.untimed_cancellations,
            "repeat_patients": [asdict(p) for p in self.repeat_patients],
            "what_if": asdict(self.what_if) if self.what_if else None,
        }


def epoch_seconds(column, dialect: str):
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
class Scope:
    clinics: list[tuple[int, str]]  # (id, time zone)
    bounds: dict[int, tuple[datetime, datetime]]  # clinic → UTC [start, end)
    periods: dict[int, list[tuple[datetime, int]]]
    currencies: dict[int, str] = field(default_factory=dict)  # clinic → its currency
    # filtered by a service: the visits of the range (or without a time) holding it after
    # their first service (later_holding); None: looked up in each statement instead
    later: list[int] | None = None


def scope_of(session: Session, filters: AnalyticsFilters, periods_too: bool = True) -> Scope:
    query = select(Clinic.id, Clinic.timezone, Clinic.currency).order_by(Clinic.id)
    if filters.clinic_id is not None:
        query = query.where(Clinic.id == filters.clinic_id)
    rows = session.execute(query).all()
    clinics = [(cid, tz) for cid, tz, _ in rows]
    currencies = {cid: currency or DEFAULT_CURRENCY for cid, _, currency in rows}
    bounds, periods = {}, {}
    for cid, tz in clinics:
        begin, finish = local_days_bounds(filters.start, filters.end, tz)
        bounds[cid] = (begin, finish)
        if periods_too:  # only the direct path needs the UTC offsets
            periods[cid] = offset_periods(tz, begin, finish)
    scope = Scope(clinics, bounds, periods, currencies)
    if filters.service_id is None:
        return scope
    return replace(scope, later=later_holding(session, filters.service_id, scope))


def later_holding(session: Session, service_id: int, scope: Scope) -> list[int]:
    """The visits holding the service after their first one (in a package or among several
    services) that start in the scope's range or have no time yet, read once for the figures'
    statements as numbers. Looked up in each statement instead (an `IN (SELECT ...)` of
    appointment_services), no engine tested the service as early as a number list: on the
    200k-visit bench a year of Chemical peel cost SQLite 7.0M VM steps (4.2M so) and
    PostgreSQL's statements 3 to 4 s (0.3 to 0.4 s so); an index of the service's rows would
    not help, the time went on the visits, not the look-up."""
    if not scope.bounds:
        return []
    lo = min(begin for begin, _ in scope.bounds.values())
    hi = max(finish for _, finish in scope.bounds.values())
    a = Appointment
    query = (
        select(AppointmentService.appointment_id)
        .join(a, a.id == AppointmentService.appointment_id)
        .where(
            AppointmentService.position > 0,
            AppointmentService.service_id == service_id,
            or_(a.start_at.is_(None), and_(a.start_at >= lo, a.start_at < hi)),
        )
    )
    return sorted(set(session.scalars(query)))


def currency_of(scope: Scope):
    """Each appointment's clinic's currency, as an SQL expression ('' for a clinic outside the
    scope's currencies): the money figures are summed per currency, never across."""
    codes = sorted(set(scope.currencies.values()))
    if len(codes) <= 1:
        return literal(codes[0] if codes else "", String)
    a = Appointment
    return case(
        *[(a.clinic_id == cid, literal(code, String)) for cid, code in scope.currencies.items()],
        else_=literal("", String),
    )


def unfinished_imports():
    """Import batches still being saved: their appointments are not counted yet."""
    return select(ImportBatch.id).where(ImportBatch.finished_at.is_(None))


def where_clauses(scope: Scope, filters: AnalyticsFilters, a=Appointment) -> list:
    in_range = [
        and_(a.clinic_id == cid, a.start_at >= lo, a.start_at < hi)
        for cid, (lo, hi) in scope.bounds.items()
    ]
    conditions = [
        a.kind == AppointmentKind.APPOINTMENT,
        or_(*in_range) if in_range else False,
        or_(a.import_batch_id.is_(None), a.import_batch_id.not_in(unfinished_imports())),
    ]
    if filters.provider_id is not None:
        conditions.append(a.provider_id == filters.provider_id)
    if filters.service_id is not None:
        conditions.append(holds_service(filters.service_id, a, scope.later))
    return conditions


# up to this many ids are written into a statement as numbers (about 7 kB): SQLite tests
# such a list before a visit's other conditions, a JSON array read by json_each after them
# (filtered by Chemical peel, the 200k-visit bench's figures for a year cost 4.2M VM steps
# with the numbers, 8.0M with the array); beyond it the statement would grow by 7 bytes an id
# (60,000 made each 414 kB), and one bound value holds them all
LITERAL_IDS = 1_000


class IdList(TypeDecorator):
    """Ids handed to a statement as one bound value, however many: a JSON array on SQLite
    (read by json_each), an integer array on PostgreSQL (read by unnest)."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(BigInteger))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value, dialect):
        ids = [int(i) for i in value]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


class _InIdList(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column, ids: BindParameter) -> None:
        self.column, self.ids = column, ids


@compiles(_InIdList)
def _in_id_list(element: _InIdList, compiler, **kw) -> str:  # SQLite
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"


@compiles(_InIdList, "postgresql")
def _in_id_list_pg(element: _InIdList, compiler, **kw) -> str:
    # a hashed subplan, built once: `= ANY(array parameter)` went through the array for each
    # row (40,000 ids: 10 s for a count of their visits)
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT unnest({ids}))"


def in_ids(column, ids):
    """SQL: whether `column` is one of `ids`: written as numbers up to LITERAL_IDS of them,
    else one bound value (IdList), so a statement stays the same size however many there
    are."""
    ids = list(ids)
    if len(ids) <= LITERAL_IDS:
        return column.in_(bindparam(None, ids, type_=Integer, expanding=True, literal_execute=True))
    return _InIdList(column, bindparam(None, ids, type_=IdList()))


def holds_service(service_id: int, a=Appointment, later: list[int] | None = None):
    """SQL: whether a visit holds the service: booked as it (its first service), or as a
    package holding it or with it among several services, wherever it comes in them (the
    filter a screen's service pick means; by service, such a visit stays in its own bar, its
    package's or its first service's). The visits it comes later in: `later` when read
    beforehand (later_holding; written into the statement by in_ids, as numbers or, for
    more than LITERAL_IDS, one bound value), else read once per statement from the few rows of
    ix_appointment_services_more, not looked up visit by visit."""
    if later is not None:
        return or_(a.service_id == service_id, in_ids(a.id, later))
    query = select(AppointmentService.appointment_id).where(
        AppointmentService.position > 0, AppointmentService.service_id == service_id
    )
    return or_(a.service_id == service_id, a.id.in_(query))


def local_offset(scope: Scope):
    whens = []
    for cid, periods in scope.periods.items():
        for (_, offset), (following, _) in zip(periods, periods[1:], strict=False):
            whens.append(
                (
                    and_(Appointment.clinic_id == cid, Appointment.start_at < following),
                    literal_column(str(offset), Integer),
                )
            )
        whens.append((Appointment.clinic_id == cid, literal_column(str(periods[-1][1]), Integer)))
    return case(*whens, else_=0) if whens else literal_column("0", Integer)


def bucket_case(seconds, buckets):
    whens = [(seconds < bound, index) for index, (_, bound) in enumerate(buckets) if bound]
    return case(*whens, else_=len(buckets) - 1)


def refill_horizon(dialect: str):
    """The outer appointment's start minus 12 hours: bounds the refill look-up on the
    (provider_id, start_at) index (a refilling visit is assumed to last under 12 hours)."""
    if dialect == "sqlite":
        return literal_column("datetime(appointments.start_at, '-12 hours')")
    return literal_column("(appointments.start_at - INTERVAL '12 hours')")


def extra_services_price():
    """The price of an appointment's other booked services (beyond its first): a look-up on
    appointment_services' primary key, made only for cancelled and no-show rows."""
    a = Appointment
    return (
        select(func.coalesce(func.sum(Service.price_cents), 0))
        .select_from(AppointmentService)
        .join(Service, Service.id == AppointmentService.service_id)
        .where(
            AppointmentService.appointment_id == a.id,
            or_(a.service_id.is_(None), AppointmentService.service_id != a.service_id),
        )
        .scalar_subquery()
    )


def price_at_risk():
    """What a cancelled or no-show appointment was worth: its package's one price, otherwise
    the price of its services (the first joined as Service, the others looked up)."""
    a = Appointment
    package_price = select(Package.price_cents).where(Package.id == a.package_id)
    return case(
        (a.package_id.is_not(None), func.coalesce(package_price.scalar_subquery(), 0)),
        else_=func.coalesce(Service.price_cents, 0) + extra_services_price(),
    )


def when_values(dialect: str, scope: Scope):
    """The labelled SQL expressions of when a visit lies: its clinic-local day number and hour
    and its lead-time bucket (the bars a click lists need these three, not every row value)."""
    a = Appointment
    start_s = epoch_seconds(a.start_at, dialect)
    local = start_s + local_offset(scope)
    return [
        (local // DAY).label("daynum"),
        ((local % DAY) // HOUR).label("hour"),
        case(
            (booking_unknown(), len(LEAD_BUCKETS)),
            else_=bucket_case(start_s - epoch_seconds(a.booked_at, dialect), LEAD_BUCKETS),
        ).label("lead"),
    ]


def row_values(dialect: str, scope: Scope):
    """The per-appointment values every figure is summed from (labelled SQL expressions)."""
    a = Appointment
    start_s = epoch_seconds(a.start_at, dialect)
    daynum, hour, lead = when_values(dialect, scope)
    notice = start_s - epoch_seconds(a.cancelled_at, dialect)
    turn = epoch_seconds(a.decided_at, dialect) - epoch_seconds(a.created_at, dialect)
    other = aliased(Appointment)
    refill = exists().where(
        other.provider_id == a.provider_id,
        other.id != a.id,
        other.kind == AppointmentKind.APPOINTMENT,
        other.status.in_(BOOKED),
        other.start_at >= refill_horizon(dialect),
        other.start_at < a.end_at,
        other.end_at > a.start_at,
        other.created_at > a.cancelled_at,
    )
    cancelled = a.status == S.CANCELLED
    # the practice's own cancellations are never charged (core.scheduling.moves);
    # unknown = patient
    by_patient = or_(a.cancelled_by.is_(None), a.cancelled_by == "patient")
    decided_online = and_(a.source == Source.ONLINE, a.decided_at.is_not(None))
    # whole hours of notice (negative: after the start), capped above the longest window
    notice_hours = case(
        (notice < 0, -1), (notice >= NOTICE_CAP * HOUR, NOTICE_CAP), else_=notice // HOUR
    )
    return [
        daynum,
        hour,
        case((a.sms_reminder, 1), else_=0).label("sms"),
        lead,
        case((a.status.in_(BOOKED), 1), else_=0).label("booked"),
        case((cancelled, 1), else_=0).label("cancelled"),
        case((and_(cancelled, a.late_cancellation), 1), else_=0).label("late"),
        case((a.status == S.NO_SHOW, 1), else_=0).label("no_show"),
        case((a.status.in_((S.COMPLETED, S.CHECKED_IN)), 1), else_=0).label("attended"),
        case((a.status.in_((S.CANCELLED, S.NO_SHOW)), price_at_risk()), else_=0).label("risk"),
        currency_of(scope).label("currency"),
        case((and_(cancelled, a.provider_id.is_not(None), refill), 1), else_=0).label("refill"),
        # imported without when it was cancelled: whether the slot was booked again is unknown
        case((and_(cancelled, a.cancelled_at.is_(None)), 1), else_=0).label("untimed"),
        case((cancelled, notice_hours), else_=None).label("notice_h"),
        case((by_patient, 1), else_=0).label("by_patient"),
        case((decided_online, bucket_case(turn, TURNAROUND_BUCKETS)), else_=None).label("turn"),
        case((decided_online, turn), else_=None).label("turn_s"),
        func.coalesce(a.provider_id, 0).label("provider"),  # 0: none recorded
        service_or_package().label("service"),
    ]


def service_or_package(a=Appointment):
    """SQL: the by-service key of a visit: its service's id, 0 when none is recorded, or minus
    its package's id when it was booked as a package (its own bar, never counted under its
    first service: "Botox" is the visits booked as Botox alone)."""
    return case((a.package_id.is_not(None), -a.package_id), else_=func.coalesce(a.service_id, 0))


def rows_subquery(dialect: str, scope: Scope, where: list):
    return (
        select(*row_values(dialect, scope))
        .outerjoin(Service, Service.id == Appointment.service_id)
        .where(*where, Appointment.status.in_((*BOOKED, S.DECLINED)))
        .subquery()
    )


def untimed_declines_query(
    dialect, clinic_ids, first: date, last: date, provider_id=None, service_id=None, later=None
):
    """Declined online requests that never had a time, by clinic-local requested day:
    (clinic, day number, turnaround bucket, count, seconds); `later` as holds_service takes."""
    a = Appointment
    conditions = [
        a.status == S.DECLINED,
        a.start_at.is_(None),
        a.requested_day >= first,
        a.requested_day <= last,
        a.source == Source.ONLINE,
        a.decided_at.is_not(None),
        a.clinic_id.in_(clinic_ids),
    ]
    if service_id is not None:
        conditions.append(holds_service(service_id, a, later))
    if provider_id is not None:
        conditions.append(a.provider_id == provider_id)
    turn = epoch_seconds(a.decided_at, dialect) - epoch_seconds(a.created_at, dialect)
    if dialect == "sqlite":
        daynum = cast(func.julianday(a.requested_day) - 2440587.5, Integer)
    else:
        daynum = a.requested_day - literal_column("DATE '1970-01-01'")
    inner = select(
        a.clinic_id.label("clinic_id"),
        daynum.label("daynum"),
        bucket_case(turn, TURNAROUND_BUCKETS).label("b"),
        turn.label("s"),
    )
    i = inner.where(*conditions).subquery().c
    return select(i.clinic_id, i.daynum, i.b, func.count(), func.sum(i.s)).group_by(
        i.clinic_id, i.daynum, i.b
    )


def every_week(f: CancellationFigures) -> list[Counts]:
    """The weekly figures for every week of the range (Monday to Monday), those without a
    booking too (n = 0): a closed fortnight over New Year is an empty stretch of the chart
    and of the export, not two weeks apart drawn as neighbours."""
    found = {c.label: c for c in f.weekly}
    monday = f.filters.start - timedelta(days=f.filters.start.weekday())
    weeks = []
    while monday <= f.filters.end:
        weeks.append(found.get(monday.isoformat()) or Counts(monday.isoformat()))
        monday += timedelta(days=7)
    return weeks


def a_year_earlier(filters: AnalyticsFilters) -> AnalyticsFilters | None:
    """The same filters 52 weeks earlier (the same weekdays), the weekly figures only; None
    when that falls before 2000 (no history is kept from before)."""
    if filters.start - YEAR < date(2000, 1, 1):
        return None
    return replace(
        filters,
        start=filters.start - YEAR,
        end=filters.end - YEAR,
        what_if=None,
        parts=frozenset({"by_day"}),
    )


def weeks_a_year_earlier(
    f: CancellationFigures, earlier: CancellationFigures | None
) -> list[Counts] | None:
    """For each week of `every_week(f)`, the same week 52 weeks earlier (labelled by its own
    Monday; n = 0 where nothing was booked); None when nothing was booked a year earlier (the
    weekly chart then draws no line a year earlier and the export has no rows of it)."""
    if earlier is None:
        return None
    found = {c.label: c for c in earlier.weekly}
    weeks = []
    for week in every_week(f):
        monday = (date.fromisoformat(week.label) - YEAR).isoformat()
        weeks.append(found.get(monday) or Counts(monday))
    return weeks if any(c.booked for c in weeks) else None
