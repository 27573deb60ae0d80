"""No-show risk as the screens read it: stored probabilities, badge levels, the call list,
overbooking suggestions and the model's figures. No scikit-learn here (pages import this)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.analytics.risk_features import SCORABLE
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import to_local
from core.kernel.errors import NotFound
from core.kernel.money import clinic_time
from core.messaging.preferences import HIGH_RISK
from db.models import Appointment, Clinic, Patient, Provider, RiskModel, RiskScore
from db.types import utcnow

HIGH = HIGH_RISK  # the practice's high-risk threshold: badge, call list and extra reminder
LEVELS = ((0.15, "medium"), (HIGH, "high"))  # probability thresholds of the badge


@dataclass(frozen=True)
class ModelInfo:
    id: int
    trained_at: datetime
    data_from: date | None
    data_until: date | None
    rows: int
    features: list[str]
    metrics: dict[str, Any]


def get_model_info(session: Session, actor: Actor) -> ModelInfo | None:
    ensure(actor, Permission.ANALYTICS_READ)
    row = session.execute(
        select(
            RiskModel.id,
            RiskModel.trained_at,
            RiskModel.data_from,
            RiskModel.data_until,
            RiskModel.rows,
            RiskModel.features,
            RiskModel.metrics,
        )
        .order_by(RiskModel.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return ModelInfo(
        row.id,
        row.trained_at,
        row.data_from,
        row.data_until,
        row.rows,
        (row.features or {}).get("names", []),
        row.metrics or {},
    )


def latest_model_id(session: Session) -> int | None:
    return session.scalar(select(RiskModel.id).order_by(RiskModel.id.desc()).limit(1))


def level(probability: float | None) -> str | None:
    if probability is None:
        return None
    name = "low"
    for threshold, label in LEVELS:
        if probability >= threshold:
            name = label
    return name


def probabilities(session: Session, appointment_ids: list[int]) -> dict[int, float]:
    """Stored probabilities of these appointments (no permission: callers already read them)."""
    if not appointment_ids:
        return {}
    return dict(
        session.execute(
            select(RiskScore.appointment_id, RiskScore.probability).where(
                RiskScore.appointment_id.in_(appointment_ids)
            )
        ).all()
    )


def risk_of(session: Session, actor: Actor, appointment_ids: list[int]) -> dict[int, float]:
    """The badges' figures: stored probabilities of appointments the actor may see."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    return probabilities(session, appointment_ids[:5000])


@dataclass(frozen=True)
class CallRow:
    appointment_id: int
    when: str
    patient: str
    phone: str
    provider: str
    probability: float


def call_list(
    session: Session, actor: Actor, *, clinic_id: int, days: int = 3, threshold: float = HIGH
) -> list[CallRow]:
    """Scheduled visits in the next `days` whose predicted no-show risk is at least `threshold`
    (default: high, the visits that also get the extra reminder): call them."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    now = utcnow()
    rows = session.execute(
        select(Appointment.id, Appointment.start_at, Patient, Provider.name, RiskScore.probability)
        .join(RiskScore, RiskScore.appointment_id == Appointment.id)
        .join(Patient, Patient.id == Appointment.patient_id)
        .outerjoin(Provider, Provider.id == Appointment.provider_id)
        .where(
            Appointment.clinic_id == clinic_id,
            Appointment.status == SCORABLE[0],
            Appointment.start_at >= now,
            Appointment.start_at < now + timedelta(days=days),
            RiskScore.probability >= threshold,
        )
        .order_by(RiskScore.probability.desc())
        .limit(200)
    )
    return [
        CallRow(i, clinic_time(clinic, start), p.full_name, p.phone or "", prov or "", prob)
        for i, start, p, prov, prob in rows
    ]


@dataclass(frozen=True)
class Overbooking:
    provider_id: int
    provider: str
    day: date
    expected_no_shows: float
    visits: int


def overbooking_suggestions(
    session: Session, actor: Actor, *, clinic_id: int, start: datetime, end: datetime
) -> list[Overbooking]:
    """Provider-days in [start, end) where the expected no-shows (sum of probabilities) exceed
    one: a suggestion to book one extra visit, never done automatically."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    tz = session.get(Clinic, clinic_id).timezone
    sums: dict[tuple[int, date], list[float]] = {}
    names: dict[int, str] = {}
    for pid, name, at, p in session.execute(
        select(Appointment.provider_id, Provider.name, Appointment.start_at, RiskScore.probability)
        .join(RiskScore, RiskScore.appointment_id == Appointment.id)
        .join(Provider, Provider.id == Appointment.provider_id)
        .where(
            Appointment.clinic_id == clinic_id,
            Appointment.status == SCORABLE[0],
            Appointment.start_at >= start,
            Appointment.start_at < end,
        )
    ):
        names[pid] = name
        sums.setdefault((pid, to_local(at, tz).date()), []).append(p)
    return [
        Overbooking(pid, names[pid], day, sum(ps), len(ps))
        for (pid, day), ps in sorted(sums.items(), key=lambda kv: (kv[0][1], names[kv[0][0]]))
        if sum(ps) > 1
    ]
