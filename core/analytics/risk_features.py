"""No-show risk features, built from what was known the day before each visit.

One streamed query, ordered by patient and start time (the (patient_id, start_at) index), reads
only the appointments of the patients concerned; each patient's appointments are gathered and
then read in two ways:

- outcomes: the patient's history is folded day by day, so an appointment sees only the
  outcomes of visits on earlier clinic-local days;
- bookings: the patient's other appointments count only when they were already booked when
  this one was booked (how many on the same day, how many later), whatever became of them.

The appointment's own reminder and confirmation count only when they came before its day. Its
own outcome, and anything about a later visit beyond a booking made before this one, never
reach its features (tests/unit/test_risk.py proves it).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.analytics.cancellation_parts import booked_when
from core.kernel.clock import to_local
from db.models import (
    Appointment,
    AppointmentConfirmation,
    AppointmentKind,
    AppointmentStatus,
    Clinic,
    Patient,
    ReminderSent,
)

S = AppointmentStatus
FEATURES = (
    "lead_days",  # from booking to start
    "lead_calendar_days",  # clinic-local days from the booking day to the visit day
    "booking_hour",  # clinic-local time of day the booking was made
    "booking_weekday",
    "prior_visits",  # attended visits on earlier days
    "prior_no_shows",
    "prior_no_show_rate",  # no-shows / (visits + no-shows), missing without history
    "prior_cancellations",
    "days_since_last_visit",  # missing without an earlier visit
    "days_since_last_no_show",  # missing without an earlier no-show
    "days_since_last_outcome",  # since the last visit or no-show
    "last_was_no_show",  # the latest earlier outcome; missing without one
    "same_day_booked",  # the patient's other visits that day, already booked when this one was
    "later_booked",  # the patient's visits on later days, already booked when this one was
    "earlier_bookings",  # every other booking of the patient made before this one
    "batch_earlier",  # earlier-day visits booked on the same day as this one
    "batch_no_shows",  # … of which no-shows
    "booked_since",  # earlier-day visits booked after this one was
    "booked_since_no_shows",  # … of which no-shows
    "no_shows_since_booking",  # earlier-day no-shows after this one was booked
    "age",  # whole years at the visit day
    "weekday",
    "hour",
    "sms_reminder",  # an imported record's reminder flag
    "reminded",  # a reminder was queued to a channel before the visit day
    "confirmed",  # the patient confirmed before the visit day
    "service",
    "provider",
    "clinic",
    "gender",  # 0 female, 1 male, missing otherwise
    "area",  # the patient's recorded neighbourhood (imported records), as a category
    "welfare",  # recorded welfare support (imported records)
    "conditions",  # recorded chronic conditions and disabilities, counted
    "hypertension",  # each recorded condition on its own: they pull in different directions
    "diabetes",
    "alcohol_use",
    "disability",  # the recorded level (0 none)
)
CATEGORICAL = ("weekday", "booking_weekday", "service", "provider", "clinic", "area")
# patient attributes kept from imported records (Patient.extra) that describe the patient, not
# the visit; absent keys are simply missing values
AREA_KEYS = ("Neighbourhood", "neighbourhood", "area")
WELFARE_KEYS = ("Scholarship",)
CONDITION_KEYS = (  # keys of each condition feature, in FEATURES order
    ("Hipertension", "Hypertension"),
    ("Diabetes",),
    ("Alcoholism",),
    ("Handcap", "Handicap"),
)
OUTCOMES = {S.COMPLETED: 0, S.CHECKED_IN: 0, S.NO_SHOW: 1}
MIN_ROWS = 200  # fewer past visits with an outcome than this: not enough to learn from
MIN_NO_SHOWS = 10  # fewer no-shows than this in the history: nothing to learn them from
SCORABLE = (S.SCHEDULED, S.CHECKED_IN, S.COMPLETED, S.NO_SHOW)
DAY_SLACK = timedelta(hours=15)  # UTC bounds wide enough for any clinic's local day
NAN = math.nan


@dataclass(frozen=True)
class FeatureRow:
    appointment_id: int
    external_ref: str | None
    day: date  # clinic-local day of the visit
    outcome: int | None  # 1 no-show, 0 attended, None not yet known
    values: tuple[float, ...]  # in FEATURES order
    # the visit as it was read (not features): a stored score is of this start and provider
    start_at: datetime | None = None
    provider_id: int | None = None


@dataclass
class _History:
    visits: int = 0
    no_shows: int = 0
    cancellations: int = 0
    last_visit: date | None = None
    last_no_show: date | None = None
    last_outcome: tuple[date, int] | None = None  # (day, 1 no-show / 0 attended)

    def fold(self, day: date, status: S) -> None:
        if status in (S.COMPLETED, S.CHECKED_IN):
            self.visits += 1
            self.last_visit = max(self.last_visit or day, day)
            self.last_outcome = max(self.last_outcome or (day, 0), (day, 0))
        elif status == S.NO_SHOW:
            self.no_shows += 1
            self.last_no_show = max(self.last_no_show or day, day)
            self.last_outcome = max(self.last_outcome or (day, 1), (day, 1))
        elif status == S.CANCELLED:
            self.cancellations += 1


@dataclass(frozen=True)
class _Visit:
    """One of the patient's appointments, as the feature builder reads it."""

    row: object  # the query's row
    local: datetime  # clinic-local start
    day: date
    booked: datetime | None  # UTC; None: imported without its booking time
    booked_day: date | None  # clinic-local


def _since(day: date, earlier: date | None) -> float:
    return float((day - earlier).days) if earlier is not None else NAN


def _bookings(visit: _Visit, others: list[_Visit]) -> tuple[float, ...]:
    """What the patient's other appointments tell, each only as far as it was known: its
    booking if made before this one, its outcome if its day is earlier."""
    if visit.booked is None:  # its booking time is unknown: so is all that hangs on it
        return (NAN,) * 8
    same = later = before = batch = batch_ns = since = since_ns = ns_after = 0
    for other in others:
        if other is visit:
            continue
        if other.row.status == S.NO_SHOW and other.day < visit.day:
            ns_after += other.row.start_at > visit.booked
        if other.booked is None:  # when it was booked is not known: not counted either way
            continue
        if other.booked <= visit.booked:
            before += 1
            same += other.day == visit.day
            later += other.day > visit.day
        if other.day >= visit.day:
            continue
        no_show = other.row.status == S.NO_SHOW
        if other.booked_day == visit.booked_day:
            batch += 1
            batch_ns += no_show
        if other.booked > visit.booked:
            since += 1
            since_ns += no_show
    return tuple(
        float(v) for v in (same, later, before, batch, batch_ns, since, since_ns, ns_after)
    )


def _age(day: date, birth: date | None, extra: dict | None) -> float:
    if birth is not None:
        return (day - birth).days / 365.25
    if extra and isinstance(extra.get("age"), int | float):
        try:
            on = date.fromisoformat(str(extra.get("age_on")))
        except ValueError:
            on = day
        return float(extra["age"]) + (day - on).days / 365.25
    return NAN


def _code(text: object) -> float:
    """A stable number for a category's text (the model maps it to a small code)."""
    digest = hashlib.sha256(str(text).strip().lower().encode()).digest()
    return float(int.from_bytes(digest[:6], "big"))


def _record(extra: dict | None, gender: str | None) -> tuple[float, ...]:
    extra = extra or {}
    sex = (gender or "").strip().lower()[:1]
    area = next((extra[k] for k in AREA_KEYS if extra.get(k) not in (None, "")), None)
    welfare = [extra[k] for k in WELFARE_KEYS if isinstance(extra.get(k), int | float)]
    conditions = [_number(extra, keys) for keys in CONDITION_KEYS]
    recorded = [c for c in conditions if c == c]
    return (
        {"f": 0.0, "m": 1.0}.get(sex, NAN),
        _code(area) if area is not None else NAN,
        float(sum(welfare)) if welfare else NAN,
        float(sum(1 for c in recorded if c)) if recorded else NAN,
        *conditions,
    )


def _number(extra: dict, keys: tuple[str, ...]) -> float:
    """The first of `keys` recorded as a number, else missing."""
    return next((float(extra[k]) for k in keys if isinstance(extra.get(k), int | float)), NAN)


def _before_day(moment: datetime | None, tz: str, day: date) -> float:
    return 1.0 if moment is not None and to_local(moment, tz).date() < day else 0.0


def _booking(visit: _Visit) -> tuple[float, ...]:
    """lead_days, lead_calendar_days, booking_hour, booking_weekday: missing when the visit
    was imported without its booking time (not a same-day booking)."""
    if visit.booked is None:
        return (NAN,) * 4
    local = to_local(visit.booked, visit.row.timezone)
    return (
        max((visit.row.start_at - visit.booked).total_seconds(), 0.0) / 86400,
        float(max((visit.day - visit.booked_day).days, 0)),
        local.hour + local.minute / 60,
        float(local.weekday()),
    )


def _values(visit: _Visit, history: _History, others: list[_Visit]) -> tuple[float, ...]:
    row, local, day = visit.row, visit.local, visit.day
    seen = history.visits + history.no_shows
    age = _age(day, row.date_of_birth, row.extra)
    return (
        *_booking(visit),
        float(history.visits),
        float(history.no_shows),
        history.no_shows / seen if seen else NAN,
        float(history.cancellations),
        _since(day, history.last_visit),
        _since(day, history.last_no_show),
        _since(day, history.last_outcome[0] if history.last_outcome else None),
        float(history.last_outcome[1]) if history.last_outcome else NAN,
        *_bookings(visit, others),
        NAN if math.isnan(age) else float(max(age, 0) // 1),
        float(local.weekday()),
        local.hour + local.minute / 60,
        1.0 if row.sms_reminder else 0.0,
        _before_day(row.reminded_at, row.timezone, day),
        _before_day(row.confirmed_at, row.timezone, day),
        float(row.service_id) if row.service_id is not None else NAN,
        float(row.provider_id) if row.provider_id is not None else NAN,
        float(row.clinic_id),
        *_record(row.extra, row.gender),
    )


def iter_features(
    session: Session,
    *,
    since: date | None = None,
    until: date | None = None,
    statuses: tuple[S, ...] = tuple(OUTCOMES),
    batch: int = 5000,
) -> Iterator[FeatureRow]:
    """Features of the appointments whose clinic-local day is in [since, until) and whose
    status is one of `statuses`, each from its patient's history before that day."""
    a = Appointment
    window = select(a.patient_id).where(a.kind == AppointmentKind.APPOINTMENT)
    if since is not None:
        window = window.where(a.start_at >= _utc(since) - DAY_SLACK)
    if until is not None:
        window = window.where(a.start_at < _utc(until) + DAY_SLACK)
    # the first reminder queued to a channel, and the confirmation, for the current start time
    reminded = (
        select(func.min(ReminderSent.queued_at))
        .where(
            ReminderSent.appointment_id == a.id,
            ReminderSent.start_at == a.start_at,
            ReminderSent.channels != "",
        )
        .scalar_subquery()
    )
    confirmed = (
        select(func.min(AppointmentConfirmation.confirmed_at))
        .where(
            AppointmentConfirmation.appointment_id == a.id,
            AppointmentConfirmation.start_at == a.start_at,
        )
        .scalar_subquery()
    )
    query = (
        select(
            a.id,
            a.patient_id,
            a.clinic_id,
            a.provider_id,
            a.service_id,
            a.start_at,
            a.booked_at,
            a.source,
            a.status,
            a.sms_reminder,
            a.external_ref,
            reminded.label("reminded_at"),
            confirmed.label("confirmed_at"),
            Clinic.timezone,
            Patient.date_of_birth,
            Patient.extra,
            Patient.gender,
        )
        .join(Clinic, Clinic.id == a.clinic_id)
        .join(Patient, Patient.id == a.patient_id)
        .where(
            a.kind == AppointmentKind.APPOINTMENT,
            a.start_at.is_not(None),
            a.patient_id.in_(window.distinct()) if since or until else a.patient_id.is_not(None),
        )
        .order_by(a.patient_id, a.start_at, a.id)
        .execution_options(yield_per=batch)
    )
    wanted = set(statuses)

    def patient_rows(visits: list[_Visit]) -> Iterator[FeatureRow]:
        history, pending, pending_day = _History(), [], None
        for visit in visits:
            if pending_day is not None and visit.day > pending_day:
                for earlier in pending:  # a day is over: its outcomes are history from now on
                    history.fold(pending_day, earlier)
                pending = []
            pending_day = visit.day
            pending.append(visit.row.status)
            row = visit.row
            if row.status not in wanted:
                continue
            if (since is not None and visit.day < since) or (
                until is not None and visit.day >= until
            ):
                continue
            yield FeatureRow(
                row.id,
                row.external_ref,
                visit.day,
                OUTCOMES.get(row.status),
                _values(visit, history, visits),
                row.start_at,
                row.provider_id,
            )

    patient, visits = None, []
    for row in session.execute(query):
        if row.patient_id != patient:
            yield from patient_rows(visits)
            patient, visits = row.patient_id, []
        local = to_local(row.start_at, row.timezone)
        booked = booked_when(row.source, row.booked_at, row.start_at)
        booked = min(booked, row.start_at) if booked else None
        booked_day = to_local(booked, row.timezone).date() if booked else None
        visits.append(_Visit(row, local, local.date(), booked, booked_day))
    yield from patient_rows(visits)


def _utc(day: date) -> datetime:
    from datetime import UTC, time

    return datetime.combine(day, time(0), tzinfo=UTC)
