"""Maintained roll-ups behind the cancellation analytics, so the figures of a clinic (or of all
clinics) for any range are read from a few thousand small rows instead of every appointment.

One row per clinic, clinic-local day (days since 1970-01-01), kind and key:

    kind    k1                     k2            v0 … v4
    hour    local hour             0             booked, cancelled, late, no-shows, attended
    lead    SMS reminder (0/1)     lead bucket   booked, cancelled, late, no-shows, attended
    notice  whole hours of notice  by patient    cancellations
    money   0                      0             revenue at risk, refilled slots, cancellations
                                                 without a time (imported)
    turn    turnaround bucket      0             requests, seconds
    fees    ledger kind            waived (0/1)  cents, points, points on cancellations
    provider  provider (0: none)   0             booked, cancelled, late, no-shows, attended
    service   service (0: none;      0          booked, cancelled, late, no-shows, attended
              −package: a package)

Keeping them current:
- every ORM flush that touches an appointment or a ledger entry marks the clinic-local days
  involved (old and new start) in `cancellation_rollup_dirty`, in the same transaction (a
  changed service or package price or clinic time zone marks everything)
  (a `before_flush` hook that `track_changes` registers where the database is opened);
- rows inserted in bulk (imports, the benchmark generator) are found by id beyond the last
  ones the roll-ups have seen;
- `refresh` recomputes the marked days, and the day either side of each (a slot across
  midnight refilled from the next day), from the appointments (the same SQL as the direct
  path); the jobs loop runs it (`refresh_job`). A read never writes: while the roll-ups lag,
  it takes the lagging days of its range from the appointments and the rest from the roll-ups
  (`lagging_days`). Bulk UPDATEs that bypass the ORM are not seen: after one, call `rebuild`.
- the state records the VERSION of the kinds stored: roll-ups built by an older version count as
  not built (reads go to the appointments) until the jobs loop's next refresh rebuilds them.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from core.analytics.cancellation_parts import (
    DAY,
    HOUR,
    NOTICE_BUCKETS,
    AnalyticsFilters,
    Scope,
    epoch_seconds,
    local_offset,
    offset_periods,
    rows_subquery,
    untimed_declines_query,
    where_clauses,
)
from core.kernel.clock import local_days_bounds, zone
from core.kernel.locks import setting_row
from db.models import (
    Appointment,
    AppointmentStatus,
    CancellationRollup,
    CancellationRollupDirty,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Package,
    Service,
    Setting,
)

log = logging.getLogger("clinicdesk.rollups")
STATE_KEY = "cancellation_rollups"
# the kinds stored (2: provider and service added; 3: lead bucket "booking time unknown";
# 4: money's cancellations without a time; 5: a package its own key under service, not its
# first service); another version is rebuilt
VERSION = 5
FIGURE_KINDS = frozenset({"hour", "lead", "notice", "money", "turn", "fees"})
GROUP_KINDS = ("provider", "service")  # the rates by provider and by service
EPOCH = date(1970, 1, 1)
FULL_REBUILD_DAYS = 2000  # more changed days than this: rebuild everything
EVERYTHING = (0, 0)  # the mark that asks for a full rebuild
MAX_LAGGING_SPANS = 30  # a read takes at most this many runs of lagging days from the appointments
DAY_KEY = 1_000_000  # clinic id × DAY_KEY + day number: one key per clinic-local day
MAX_NEW_ROWS = 5000  # more new rows than this near a read's days: it reads the appointments
LEDGER_CODES = {LedgerKind.LATE_CANCEL_FEE: 0, LedgerKind.NO_SHOW_FEE: 1, LedgerKind.POINTS: 2}
R = CancellationRollup
COLUMNS = ["clinic_id", "daynum", "kind", "k1", "k2", "v0", "v1", "v2", "v3", "v4"]


def daynum(moment, tz: str) -> int:
    return (moment.astimezone(zone(tz)).date() - EPOCH).days


def _zone_of(session: Session, clinic_id: int) -> str:
    zones = session.info.setdefault("clinic_zones", {})  # per session: never stale for long
    if clinic_id not in zones:
        zones[clinic_id] = session.scalar(select(Clinic.timezone).where(Clinic.id == clinic_id))
    return zones[clinic_id]


def _days_of(session: Session, appointment: Appointment, old_too: bool) -> set[tuple[int, int]]:
    if appointment.clinic_id is None:
        return set()
    tz = _zone_of(session, appointment.clinic_id)
    moments = [appointment.start_at]
    days = [appointment.requested_day]
    if old_too:
        state = inspect(appointment)
        moments += list(state.attrs.start_at.history.deleted or ())
        days += list(state.attrs.requested_day.history.deleted or ())
    found = {(appointment.clinic_id, daynum(m, tz)) for m in moments if m is not None}
    found |= {(appointment.clinic_id, (d - EPOCH).days) for d in days if d is not None}
    return found


def track_changes() -> None:
    """Mark the days every flush changes, so the roll-ups can catch up. Called once where the
    database is opened (core.startup, the test fixtures); calling it again changes nothing."""
    if not event.contains(Session, "before_flush", _mark_changed_days):
        event.listen(Session, "before_flush", _mark_changed_days)


def _mark_changed_days(session: Session, _context, _instances) -> None:
    days: set[tuple[int, int]] = set()
    new = session.new  # built anew on each read: once, not once an object (4,000 at a time)
    for obj in (*new, *session.dirty, *session.deleted):
        if isinstance(obj, Appointment):
            days |= _days_of(session, obj, old_too=obj not in new)
        elif isinstance(obj, LedgerEntry) and obj.appointment_id is not None:
            appointment = session.get(Appointment, obj.appointment_id)
            if appointment is not None:
                days |= _days_of(session, appointment, old_too=False)
        elif isinstance(obj, Service | Package | Clinic) and obj not in new:
            days.add(EVERYTHING)  # a price or a time zone changed: every day may differ
    session.add_all(CancellationRollupDirty(clinic_id=c, daynum=d) for c, d in days)


# ---------------------------------------------------------------- state


def _state(session: Session, lock: bool = False) -> Setting | None:
    query = select(Setting).where(Setting.key == STATE_KEY)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query)


def _latest_ids(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.max(Appointment.id))) or 0,
        session.scalar(select(func.max(LedgerEntry.id))) or 0,
    )


def is_fresh(
    session: Session, clinic_id: int | None = None, days: tuple[date, date] | None = None
) -> bool:
    """True when the roll-ups reflect every committed change (one round trip). With `days`
    (first and last clinic-local day), a change that lies more than a day outside them, or at
    another clinic than `clinic_id`, does not count: a read takes only those days' rows (the
    day either side covers a slot across midnight refilled from the next day)."""
    return _probe(session, clinic_id, days).fresh


def usable_for(session: Session, filters, use_rollups: bool = True) -> set[tuple[int, int]] | None:
    """The lagging days (see `lagging_days`) when a read with these filters can come from the
    roll-ups, None when it must read the appointments: asked not to, a provider or service
    chosen (the roll-ups are not kept per provider and service together), or not usable."""
    if not use_rollups or filters.provider_id is not None or filters.service_id is not None:
        return None
    return lagging_days(session, filters.clinic_id, (filters.start, filters.end))


def lagging_days(
    session: Session, clinic_id: int | None, days: tuple[date, date]
) -> set[tuple[int, int]] | None:
    """The (clinic, day number) pairs within `days` whose roll-ups lag behind a committed
    change, each with the day either side: a read takes those from the appointments and the
    rest from the roll-ups. Empty when the roll-ups are fresh for these days (one round trip);
    None when they cannot be used (not built yet, a price or time zone changed, or the lagging
    days lie in more than MAX_LAGGING_SPANS separate runs)."""
    probe = _probe(session, clinic_id, days)
    if probe.fresh:
        return set()
    if not probe.built:
        return None
    value = probe.state
    near = (days[0] - timedelta(days=1), days[1] + timedelta(days=1))
    found: set[tuple[int, int]] = set()
    if probe.dirty_found:
        D = CancellationRollupDirty
        query = select(D.clinic_id, D.daynum).where(_dirty_near(clinic_id, near)).distinct()
        found = {(c, d) for c, d in session.execute(query)}
        if EVERYTHING in found:
            return None
    A = Appointment
    on_days = _on_days(clinic_id, near)
    changed = []
    if probe.appointment_id > value["appointment_id"]:  # new rows (bulk inserts mark nothing)
        changed.append(
            select(A.clinic_id, A.start_at, A.requested_day).where(
                A.id > value["appointment_id"], on_days
            )
        )
    if probe.ledger_id > value["ledger_id"]:  # a new fee or points entry
        changed.append(
            select(A.clinic_id, A.start_at, A.requested_day)
            .join(LedgerEntry, LedgerEntry.appointment_id == A.id)
            .where(LedgerEntry.id > value["ledger_id"], on_days)
        )
    for query in changed:
        rows = session.execute(query.limit(MAX_NEW_ROWS + 1)).all()
        if len(rows) > MAX_NEW_ROWS:
            return None
        for c, start_at, requested_day in rows:
            if start_at is not None:
                found.add((c, daynum(start_at, _zone_of(session, c))))
            if requested_day is not None:
                found.add((c, (requested_day - EPOCH).days))
    first, last = (days[0] - EPOCH).days, (days[1] - EPOCH).days
    lagging = {
        (c, d + step)
        for c, d in found
        for step in (-1, 0, 1)
        if first <= d + step <= last and clinic_id in (None, c)
    }
    spans = sum(len(runs) for runs in _ranges(lagging).values())
    return lagging if spans <= MAX_LAGGING_SPANS else None


@dataclass(frozen=True)
class _Probe:
    """What the freshness check found in its one round trip: whether the roll-ups were ever
    built and are fresh for the days asked about; when they lag, the stored state, whether a
    changed day was marked near the days, and the latest appointment and ledger ids."""

    built: bool
    fresh: bool = False
    state: dict | None = None
    dirty_found: bool = False
    appointment_id: int = 0
    ledger_id: int = 0


def _probe(session: Session, clinic_id: int | None, days: tuple[date, date] | None) -> _Probe:
    """The roll-ups' freshness for the clinic's days (or everywhere, without days)."""
    D = CancellationRollupDirty
    dirty = select(D.id)
    near = (days[0] - timedelta(days=1), days[1] + timedelta(days=1)) if days else None
    if near is not None:
        dirty = dirty.where(_dirty_near(clinic_id, near))
    value, dirty, appointment_id, ledger_id = session.execute(
        select(
            select(Setting.value).where(Setting.key == STATE_KEY).scalar_subquery(),
            dirty.limit(1).scalar_subquery(),
            select(func.max(Appointment.id)).scalar_subquery(),
            select(func.max(LedgerEntry.id)).scalar_subquery(),
        )
    ).one()
    if not _built(value):
        return _Probe(built=False)
    lags = _Probe(True, False, value, dirty is not None, appointment_id or 0, ledger_id or 0)
    if lags.dirty_found or lags.ledger_id > value["ledger_id"]:
        return lags
    if lags.appointment_id <= value["appointment_id"]:
        return _Probe(built=True, fresh=True)
    # rows beyond the last ones seen (a booking, or a bulk insert that marks nothing): fresh
    # for these days only if none of them lies near them
    if near is None:
        return lags
    query = select(Appointment.id).where(
        Appointment.id > value["appointment_id"], _on_days(clinic_id, near)
    )
    return lags if session.scalar(query.limit(1)) is not None else _Probe(built=True, fresh=True)


def _built(value: dict | None) -> bool:
    return bool(value and value.get("built") and value.get("version") == VERSION)


def _dirty_near(clinic_id: int | None, near: tuple[date, date]):
    D = CancellationRollupDirty
    inside = D.daynum.between((near[0] - EPOCH).days, (near[1] - EPOCH).days)
    if clinic_id is not None:
        inside = and_(inside, D.clinic_id == clinic_id)
    return or_(and_(D.clinic_id == EVERYTHING[0], D.daynum == EVERYTHING[1]), inside)


def _on_days(clinic_id: int | None, days: tuple[date, date]):
    """Appointments that start, or were asked for, on the clinic-local `days` (UTC bounds a
    day wider: a clinic-local day is within 14 hours of UTC's)."""
    low = datetime.combine(days[0] - timedelta(days=1), time.min, UTC)
    high = datetime.combine(days[1] + timedelta(days=2), time.min, UTC)
    A = Appointment
    on_days = or_(and_(A.start_at >= low, A.start_at < high), A.requested_day.between(*days))
    return on_days if clinic_id is None else and_(on_days, A.clinic_id == clinic_id)


# ---------------------------------------------------------------- refresh


def rebuild(session: Session) -> int:
    """Recompute every roll-up row from the appointments (after bulk UPDATEs, say)."""
    state = _state(session, lock=True)
    if state is not None:
        state.value = {"built": False}
    return refresh(session)


def refresh(session: Session) -> int:
    """Recompute the clinic-local days that changed; returns how many days were recomputed."""
    state = setting_row(session, STATE_KEY, {"built": False})
    value = dict(state.value or {})
    appointment_id, ledger_id = _latest_ids(session)
    dirty_max = session.scalar(select(func.max(CancellationRollupDirty.id))) or 0
    if not _built(value):
        days = None
    else:
        days = _changed_days(session, value, dirty_max, appointment_id, ledger_id)
        if days is not None:  # and the day either side: a slot across midnight, refilled
            days = {(c, d + step) for c, d in days for step in (-1, 0, 1)}
        if days is not None and len(days) > FULL_REBUILD_DAYS:
            days = None
    if days is None:
        session.execute(delete(R))
        done = _recompute(session, _all_days(session))
    else:
        done = _recompute(session, days)
    session.execute(delete(CancellationRollupDirty).where(CancellationRollupDirty.id <= dirty_max))
    state.value = {
        "built": True,
        "version": VERSION,
        "appointment_id": appointment_id,
        "ledger_id": ledger_id,
    }
    session.flush()
    return done


def _changed_days(session, value, dirty_max, appointment_id, ledger_id):
    """The (clinic, day) pairs to recompute, or None for everything."""
    D = CancellationRollupDirty
    days = {
        (c, d)
        for c, d in session.execute(
            select(D.clinic_id, D.daynum).where(D.id <= dirty_max).distinct()
        )
    }
    if EVERYTHING in days:
        return None
    new = select(Appointment.clinic_id, Appointment.start_at, Appointment.requested_day).where(
        Appointment.id > value["appointment_id"], Appointment.id <= appointment_id
    )
    fees = (
        select(Appointment.clinic_id, Appointment.start_at, Appointment.requested_day)
        .join(LedgerEntry, LedgerEntry.appointment_id == Appointment.id)
        .where(LedgerEntry.id > value["ledger_id"], LedgerEntry.id <= ledger_id)
    )
    for query in (new, fees):
        for clinic_id, start_at, requested_day in session.execute(query.limit(200_000)):
            if start_at is not None:
                days.add((clinic_id, daynum(start_at, _zone_of(session, clinic_id))))
            if requested_day is not None:
                days.add((clinic_id, (requested_day - EPOCH).days))
            if len(days) > FULL_REBUILD_DAYS:
                return days
    return days


def _all_days(session: Session) -> dict[int, list[tuple[int, int]]]:
    """Per clinic, one range of day numbers covering all its appointments."""
    ranges = {}
    rows = session.execute(
        select(
            Appointment.clinic_id,
            func.min(Appointment.start_at),
            func.max(Appointment.start_at),
            func.min(Appointment.requested_day),
            func.max(Appointment.requested_day),
        ).group_by(Appointment.clinic_id)
    )
    for clinic_id, first, last, first_day, last_day in rows:
        tz = _zone_of(session, clinic_id)
        bounds = [daynum(m, tz) for m in (first, last) if m is not None]
        bounds += [(d - EPOCH).days for d in (first_day, last_day) if d is not None]
        if bounds:
            ranges[clinic_id] = [(min(bounds), max(bounds))]
    return ranges


def _ranges(days: set[tuple[int, int]]) -> dict[int, list[tuple[int, int]]]:
    per_clinic: dict[int, list[tuple[int, int]]] = {}
    for clinic_id, day in sorted(days):
        spans = per_clinic.setdefault(clinic_id, [])
        if spans and day <= spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], max(day, spans[-1][1]))
        else:
            spans.append((day, day))
    return per_clinic


def _recompute(session: Session, days) -> int:
    ranges = days if isinstance(days, dict) else _ranges(days)
    dialect = session.get_bind().dialect.name
    count = 0
    for clinic_id, spans in ranges.items():
        tz = _zone_of(session, clinic_id)
        for first, last in spans:
            count += last - first + 1
            session.execute(
                delete(R).where(R.clinic_id == clinic_id, R.daynum >= first, R.daynum <= last)
            )
            _insert_span(session, dialect, clinic_id, tz, first, last)
    return count


def _insert_span(session: Session, dialect: str, clinic_id: int, tz: str, first: int, last: int):
    for _, query in _span_queries(dialect, clinic_id, tz, first, last):
        session.execute(insert(R).from_select(COLUMNS, query))


def _span_queries(dialect: str, clinic_id: int, tz: str, first: int, last: int, kinds=None) -> list:
    """The roll-up rows of one clinic's local days first..last, as (kind, select of COLUMNS):
    what the refresh stores, and what a read takes straight from the appointments for days
    whose roll-ups lag. `kinds`: only the selects of these kinds are built (a read of the
    rates by provider needs one of the nine; building them all cost 11 ms a span)."""
    first_day, last_day = EPOCH + timedelta(days=first), EPOCH + timedelta(days=last)
    lo, hi = local_days_bounds(first_day, last_day, tz)
    scope = Scope([(clinic_id, tz)], {clinic_id: (lo, hi)}, {clinic_id: offset_periods(tz, lo, hi)})
    filters = AnalyticsFilters(first_day, last_day, clinic_id)
    where = where_clauses(scope, filters)
    i = rows_subquery(dialect, scope, where).c
    c = literal(clinic_id)
    core5 = [
        func.sum(i.booked),
        func.sum(i.cancelled),
        func.sum(i.late),
        func.sum(i.no_show),
        func.sum(i.attended),
    ]
    zero = literal(0)

    def counted(kind: str, k1, k2=None):
        """The five counts per day and key(s), for the days with a booking."""
        keys = [k for k in (k1, k2) if k is not None]
        query = select(c, i.daynum, literal(kind), k1, zero if k2 is None else k2, *core5)
        return query.group_by(i.daynum, *keys).having(func.sum(i.booked) > 0)

    def untimed_turn():
        untimed = untimed_declines_query(dialect, [clinic_id], first_day, last_day).subquery().c
        return select(
            untimed[0],
            untimed[1],
            literal("turn"),
            untimed[2],
            zero,
            untimed[3],
            untimed[4],
            zero,
            zero,
            zero,
        )

    builders = [
        ("hour", lambda: counted("hour", i.hour)),
        ("lead", lambda: counted("lead", i.sms, i.lead)),
        (
            "notice",
            lambda: (
                select(
                    c,
                    i.daynum,
                    literal("notice"),
                    i.notice_h,
                    i.by_patient,
                    func.count(),
                    zero,
                    zero,
                    zero,
                    zero,
                )
                .where(i.notice_h.is_not(None))
                .group_by(i.daynum, i.notice_h, i.by_patient)
            ),
        ),
        (
            "money",
            lambda: (
                select(
                    c,
                    i.daynum,
                    literal("money"),
                    zero,
                    zero,
                    func.sum(i.risk),
                    func.sum(i.refill),
                    func.sum(i.untimed),
                    zero,
                    zero,
                )
                .group_by(i.daynum)
                .having(func.sum(i.risk) + func.sum(i.refill) + func.sum(i.untimed) > 0)
            ),
        ),
        (
            "turn",
            lambda: (
                select(
                    c,
                    i.daynum,
                    literal("turn"),
                    i.turn,
                    zero,
                    func.count(),
                    func.sum(i.turn_s),
                    zero,
                    zero,
                    zero,
                )
                .where(i.turn.is_not(None))
                .group_by(i.daynum, i.turn)
            ),
        ),
        ("turn", untimed_turn),
        ("fees", lambda: _fees_query(dialect, scope, where)),
        *[(kind, functools.partial(counted, kind, getattr(i, kind))) for kind in GROUP_KINDS],
    ]
    return [(kind, build()) for kind, build in builders if kinds is None or kind in kinds]


def _fees_query(dialect, scope, where):
    L = LedgerEntry
    local = epoch_seconds(Appointment.start_at, dialect) + local_offset(scope)
    code = case(*[(L.kind == kind, n) for kind, n in LEDGER_CODES.items()], else_=2)
    waived = case((L.waived_at.is_not(None), 1), else_=0)
    on_cancelled = case(
        (and_(Appointment.status == AppointmentStatus.CANCELLED, L.waived_at.is_(None)), L.points),
        else_=0,
    )
    inner = (
        select(
            literal(scope.clinics[0][0]).label("c"),
            (local // DAY).label("daynum"),
            code.label("code"),
            waived.label("waived"),
            L.amount_cents.label("cents"),
            L.points.label("points"),
            on_cancelled.label("cpoints"),
        )
        .join(Appointment, Appointment.id == L.appointment_id)
        .where(
            *where, Appointment.status.in_((AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW))
        )
        .subquery()
    ).c
    return select(
        inner.c,
        inner.daynum,
        literal("fees"),
        inner.code,
        inner.waived,
        func.sum(inner.cents),
        func.sum(inner.points),
        func.sum(inner.cpoints),
        literal(0),
        literal(0),
    ).group_by(inner.c, inner.daynum, inner.code, inner.waived)


# ---------------------------------------------------------------- reading


def read_into(
    session: Session,
    sums: Any,
    filters,
    clinic_ids: list[int],
    window: int,
    lagging: set[tuple[int, int]] = frozenset(),
) -> None:
    """Add the roll-ups of the clinics' local days start..end into `sums` (money per clinic's
    currency, `sums.currency_of`), the `lagging` (clinic, day) pairs taken from the
    appointments instead."""
    # by_day: hours per day (weekday / weekly / heatmap figures); without timing (the first
    # view) no lead rows and no notice histogram
    by_day, timing = "by_day" in filters.parts, "timing" in filters.parts
    values = _range_values(filters, clinic_ids, lagging, window=window)
    statement = _read_statement(by_day, timing, bool(lagging))
    for kind, clinic, day, k1, k2, *row in session.execute(statement, values):
        row = [int(v or 0) for v in row]
        if kind == "notice":
            sums.notice[int(k1)] += row[0] if timing else 0
            if k2 == 2:
                sums.late_within(sums.currency_of(clinic), row[0])
        else:
            _add(sums, kind, clinic, day, k1, k2, row)
    for clinic, day, kind, k1, k2, *row in _lagging_rows(session, lagging, FIGURE_KINDS):
        row = [int(v or 0) for v in row]
        if kind == "notice":
            sums.notice_hours(int(k1), k2 == 1, row[0], window, sums.currency_of(clinic))
        else:
            _add(sums, kind, clinic, day, k1, k2, row)


def _lagging_rows(session: Session, lagging, kinds):
    """The lagging days' roll-up rows of these kinds, computed from the appointments as the
    refresh would."""
    dialect = session.get_bind().dialect.name
    for clinic_id, runs in _ranges(lagging).items():
        tz = _zone_of(session, clinic_id)
        for first, last in runs:
            for _, query in _span_queries(dialect, clinic_id, tz, first, last, kinds):
                yield from session.execute(query)


def read_groups(
    session: Session,
    kind: str,
    filters,
    clinic_ids: list[int],
    lagging: set[tuple[int, int]] = frozenset(),
) -> dict[int, list[int]]:
    """Per provider or service id (`kind`; 0: none recorded), its booked, cancelled, late,
    no-show and attended counts over the clinics' local days start..end, the `lagging`
    (clinic, day) pairs taken from the appointments instead."""
    values = _range_values(filters, clinic_ids, lagging, kind=kind)
    counts: dict[int, list[int]] = {}
    rows = list(session.execute(_groups_statement(bool(lagging)), values))
    rows += [(k1, *row) for _, _, _, k1, _, *row in _lagging_rows(session, lagging, {kind})]
    for key, *row in rows:
        total = counts.setdefault(int(key), [0] * 5)
        for index, value in enumerate(row):
            total[index] += int(value or 0)
    return counts


@functools.cache
def _groups_statement(skipping: bool):
    """One range of the covering index per clinic: the kind's rows of the days, by key."""
    conditions = _in_range(R.kind == bindparam("kind"), skipping)
    return select(R.k1, *_sums()).where(*conditions).group_by(R.k1)


def _in_range(kind, skipping: bool, *conditions) -> tuple:
    """A kind's rows of the clinics' days first..last (parameters, see `_range_values`),
    without the lagging days' keys when `skipping`."""
    skip = (R.clinic_id * DAY_KEY + R.daynum).not_in(bindparam("skip", expanding=True))
    return (
        R.clinic_id.in_(bindparam("clinics", expanding=True)),
        kind,
        R.daynum >= bindparam("first"),
        R.daynum <= bindparam("last"),
        *conditions,
        *([skip] if skipping else []),
    )


def _sums() -> list:
    return [func.sum(R.v0), func.sum(R.v1), func.sum(R.v2), func.sum(R.v3), func.sum(R.v4)]


def _range_values(filters, clinic_ids: list[int], lagging, **more) -> dict[str, Any]:
    """The parameters of `_in_range`: the clinics, the filters' days, the lagging keys."""
    values = {
        "clinics": clinic_ids,
        "first": (filters.start - EPOCH).days,
        "last": (filters.end - EPOCH).days,
        **more,
    }
    if lagging:
        values["skip"] = [c * DAY_KEY + d for c, d in lagging]
    return values


def _add(sums: Any, kind: str, clinic, day, k1, k2, row: list[int]) -> None:
    """One roll-up row (or a sum of them) into the figures, except the notice rows."""
    if kind == "hour":
        sums.hour(int(day), int(k1), row)
    elif kind == "lead":
        sums.lead(bool(k1), int(k2), row)
    elif kind == "money":
        sums.money(sums.currency_of(clinic), row[0], row[1], row[2])
    elif kind == "turn":
        sums.turnaround(int(k1), row[0], row[1])
    elif kind == "fees":
        sums.fee(sums.currency_of(clinic), int(k1), bool(k2), row)


@functools.cache
def _read_statement(by_day: bool, timing: bool, skipping: bool = False):
    """One simple grouped select per kind, read in one round trip: each one is a single range
    of the covering index ix_cancellation_rollups_read (clinic, kind, day, keys, values). Built
    once per shape; the clinics, days, what-if window and the (clinic, day) keys to leave out
    while they lag (`skipping`) are parameters. Rows: kind, clinic, day, k1, k2, sums; money,
    fees and the what-if's notice rows by clinic (for its currency), the others across the
    clinics (clinic 0)."""
    zero = literal_column("0")
    v = _sums()

    def of(kind: str, *conditions):
        return _in_range(R.kind == kind, skipping, *conditions)

    day = R.daynum if by_day else zero
    hours = select(func.min(R.kind), zero, day, R.k1, zero, *v).where(*of("hour"))
    hours = hours.group_by(R.daynum, R.k1) if by_day else hours.group_by(R.k1)
    # k2 = 1: a patient's cancellation; inside the what-if window it would have been late
    inside = and_(R.k2 == 1, R.k1 < bindparam("window"))
    counted = [func.sum(R.v0), zero, zero, zero, zero]
    if timing:
        bucket = case(
            *[
                (R.k1 * HOUR < bound, index)
                for index, (_, bound) in enumerate(NOTICE_BUCKETS)
                if bound is not None
            ],
            else_=len(NOTICE_BUCKETS) - 1,
        )
        flag = case((inside, 2), else_=0)
        notice = (
            select(func.min(R.kind), R.clinic_id, zero, bucket, flag, *counted)
            .where(*of("notice"))
            .group_by(R.clinic_id, bucket, flag)
        )
    else:  # only the cancellations inside the what-if window, one number per clinic
        notice = (
            select(func.min(R.kind), R.clinic_id, zero, zero, literal_column("2"), *counted)
            .where(*of("notice", inside))
            .group_by(R.clinic_id)
        )
    parts = [
        hours,
        notice,
        select(func.min(R.kind), R.clinic_id, zero, zero, zero, *v)
        .where(*of("money"))
        .group_by(R.clinic_id),
        select(func.min(R.kind), zero, zero, R.k1, zero, *v).where(*of("turn")).group_by(R.k1),
        select(func.min(R.kind), R.clinic_id, zero, R.k1, R.k2, *v)
        .where(*of("fees"))
        .group_by(R.clinic_id, R.k1, R.k2),
    ]
    if timing:
        parts.append(
            select(func.min(R.kind), zero, zero, R.k1, R.k2, *v)
            .where(*of("lead"))
            .group_by(R.k1, R.k2)
        )
    return union_all(*parts)


def refresh_job(database, settings) -> None:
    """Periodic job (core.jobs): recompute the days changed since the last run."""
    with database.read() as session:
        if is_fresh(session):
            return
    with database.write() as session:
        days = refresh(session)
    log.info("cancellation roll-ups: %s day(s) recomputed", days)
