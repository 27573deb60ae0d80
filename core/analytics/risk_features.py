"""No-show risk features, built from what was known the day before each visit.

One streamed query, ordered by patient and start time (the (patient_id, start_at) index), reads
only the appointments of the patients concerned; each patient's history is folded day by day,
so an appointment sees only visits on earlier clinic-local days. Its own outcome and anything
later never reach its features (tests/unit/test_risk.py proves it).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.clock import to_local
from db.models import Appointment, AppointmentKind, AppointmentStatus, Clinic, Patient

S = AppointmentStatus
FEATURES = (
    "lead_days",  # from booking to start
    "prior_visits",  # attended visits on earlier days
    "prior_no_shows",
    "prior_no_show_rate",  # no-shows / (visits + no-shows), missing without history
    "prior_cancellations",
    "days_since_last_visit",  # missing without an earlier visit
    "age_band",  # five-year bands at the visit day
    "weekday",
    "hour",
    "sms_reminder",
    "service",
    "provider",
    "clinic",
    "gender",  # 0 female, 1 male, missing otherwise
    "area",  # the patient's recorded neighbourhood (imported records), as a category
    "welfare",  # recorded welfare support (imported records)
    "conditions",  # recorded chronic conditions and disabilities, counted
)
CATEGORICAL = ("weekday", "service", "provider", "clinic", "area")
# patient attributes kept from imported records (Patient.extra) that describe the patient, not
# the visit; absent keys are simply missing values
AREA_KEYS = ("Neighbourhood", "neighbourhood", "area")
WELFARE_KEYS = ("Scholarship",)
CONDITION_KEYS = ("Hipertension", "Hypertension", "Diabetes", "Alcoholism", "Handcap")
OUTCOMES = {S.COMPLETED: 0, S.CHECKED_IN: 0, S.NO_SHOW: 1}
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


@dataclass
class _History:
    visits: int = 0
    no_shows: int = 0
    cancellations: int = 0
    last_visit: date | None = None

    def fold(self, day: date, status: S) -> None:
        if status in (S.COMPLETED, S.CHECKED_IN):
            self.visits += 1
            self.last_visit = max(self.last_visit or day, day)
        elif status == S.NO_SHOW:
            self.no_shows += 1
        elif status == S.CANCELLED:
            self.cancellations += 1


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
    conditions = [extra[k] for k in CONDITION_KEYS if isinstance(extra.get(k), int | float)]
    return (
        {"f": 0.0, "m": 1.0}.get(sex, NAN),
        _code(area) if area is not None else NAN,
        float(sum(welfare)) if welfare else NAN,
        float(sum(1 for c in conditions if c)) if conditions else NAN,
    )


def _values(row, local: datetime, history: _History, day: date) -> tuple[float, ...]:
    booked = row.booked_at or row.start_at
    seen = history.visits + history.no_shows
    age = _age(day, row.date_of_birth, row.extra)
    return (
        max((row.start_at - booked).total_seconds(), 0.0) / 86400,
        float(history.visits),
        float(history.no_shows),
        history.no_shows / seen if seen else NAN,
        float(history.cancellations),
        float((day - history.last_visit).days) if history.last_visit else NAN,
        NAN if math.isnan(age) else float(max(age, 0) // 5),
        float(local.weekday()),
        local.hour + local.minute / 60,
        1.0 if row.sms_reminder else 0.0,
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
    query = (
        select(
            a.id,
            a.patient_id,
            a.clinic_id,
            a.provider_id,
            a.service_id,
            a.start_at,
            a.booked_at,
            a.status,
            a.sms_reminder,
            a.external_ref,
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
    patient, history, pending, pending_day = None, _History(), [], None
    for row in session.execute(query):
        local = to_local(row.start_at, row.timezone)
        day = local.date()
        if row.patient_id != patient:
            patient, history, pending, pending_day = row.patient_id, _History(), [], None
        if pending_day is not None and day > pending_day:
            for earlier in pending:  # a day is over: its outcomes are history from now on
                history.fold(pending_day, earlier)
            pending = []
        pending_day = day
        pending.append(row.status)
        if row.status not in wanted:
            continue
        if (since is not None and day < since) or (until is not None and day >= until):
            continue
        yield FeatureRow(
            row.id,
            row.external_ref,
            day,
            OUTCOMES.get(row.status),
            _values(row, local, history, day),
        )


def _utc(day: date) -> datetime:
    from datetime import UTC, time

    return datetime.combine(day, time(0), tzinfo=UTC)
