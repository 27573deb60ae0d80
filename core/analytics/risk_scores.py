"""No-show risk as the screens read it: stored probabilities, badge levels, the call list,
overbooking suggestions and the model's figures. No scikit-learn here (pages import this)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.analytics.risk_features import FEATURES, MIN_NO_SHOWS, MIN_ROWS, OUTCOMES, SCORABLE
from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_days_bounds, local_today, to_local
from core.kernel.errors import NotFound, ValidationError
from core.kernel.money import clinic_time
from core.kernel.text import clean
from core.messaging import reminders
from core.messaging.preferences import HIGH_RISK
from db.models import (
    Appointment,
    AppointmentKind,
    Clinic,
    Patient,
    Provider,
    RiskCall,
    RiskModel,
    RiskScore,
    User,
)
from db.types import utcnow

# how far ahead every visit is scored by the runs (risk_model.upcoming scores the clinic-local
# days to 14 days after today's UTC date: 13 days from now fall inside them in any time zone)
SCORED_AHEAD = timedelta(days=13)
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
    current: bool  # trained on today's feature list; else it scores nothing until retrained


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
        (row.features or {}).get("all") == list(FEATURES),  # as risk_model.is_current
    )


@dataclass(frozen=True)
class Readiness:
    """Whether visits can be scored at all, for the pages' empty states: no model yet (and how
    many past visits with a known outcome there are of the MIN_ROWS a first fit needs), a model
    from an older feature set (it scores nothing until retrained), or a model in use."""

    model: str  # "none", "outdated" or "ready"
    outcomes: int  # past visits with a known outcome, counted up to `needed`
    needed: int = MIN_ROWS
    no_shows: int = MIN_NO_SHOWS  # of them no-shows, counted up to `needed_no_shows`
    needed_no_shows: int = MIN_NO_SHOWS

    @property
    def enough(self) -> bool:
        """Enough history for the jobs to fit a first model (risk_jobs.retrain_job)."""
        return self.outcomes >= self.needed and self.no_shows >= self.needed_no_shows


def readiness(session: Session, actor: Actor) -> Readiness:
    """For whoever sees the badges and the call list (the roles that read appointments)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    features = session.execute(
        select(RiskModel.features).order_by(RiskModel.id.desc()).limit(1)
    ).first()
    if features is not None:
        current = (features[0] or {}).get("all") == list(FEATURES)  # as risk_model.is_current
        return Readiness("ready" if current else "outdated", MIN_ROWS)
    known = select(Appointment.id).where(
        Appointment.status.in_(tuple(OUTCOMES)), Appointment.start_at < utcnow()
    )
    count = session.scalar(select(func.count()).select_from(known.limit(MIN_ROWS).subquery()))
    missed = known.where(Appointment.status == SCORABLE[3]).limit(MIN_NO_SHOWS)  # no-shows
    no_shows = session.scalar(select(func.count()).select_from(missed.subquery()))
    return Readiness("none", count or 0, no_shows=no_shows or 0)


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


def current_score():
    """Whether a stored score still describes its visit: it was scored for its present start
    and provider (RiskScore.describes_visit). A move changes the lead time (and may change the
    day and the provider), so the score of the old time is not the new visit's; until the next
    daily run scores it again the visit counts as not scored (no badge figure, not on the call
    list, no extra reminder, not in an overbooking sum). A note or a payment changes nothing."""
    return RiskScore.describes_visit()


def probabilities(session: Session, appointment_ids: list[int]) -> dict[int, float]:
    """Current stored probabilities of these appointments still to come or under way (a
    cancelled visit keeps its row, not its badge; no permission: callers already read them)."""
    if not appointment_ids:
        return {}
    return dict(
        session.execute(
            select(RiskScore.appointment_id, RiskScore.probability)
            .join(Appointment, Appointment.id == RiskScore.appointment_id)
            .where(
                RiskScore.appointment_id.in_(appointment_ids),
                Appointment.status.in_(SCORABLE[:2]),  # scheduled or checked in, as stored
                current_score(),
            )
        ).all()
    )


@dataclass(frozen=True)
class Risk:
    """A visit's badge: its probability, or None for an upcoming visit booked or moved since
    the last scoring (not scored yet); its clinic says in which locale to show it."""

    probability: float | None
    clinic_id: int


def risk_of(session: Session, actor: Actor, appointment_ids: list[int]) -> dict[int, Risk]:
    """The badges' figures of appointments the actor may see: the current score of each scored
    one, 'not scored yet' (None) for a scheduled visit to come that has none while a model
    exists and the visit is within the days the runs score (SCORED_AHEAD: a visit further
    ahead is scored once it comes within them, so 'not scored yet, within the hour' would be
    untrue); nothing for the rest (a cancelled visit, a past one, no model yet)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment_ids = appointment_ids[:5000]
    if not appointment_ids:
        return {}
    scored = probabilities(session, appointment_ids)
    found = {}
    rows = session.execute(
        select(
            Appointment.id, Appointment.clinic_id, Appointment.status, Appointment.start_at
        ).where(Appointment.id.in_(appointment_ids))
    ).all()
    waiting = latest_model_id(session) is not None
    now = utcnow()
    for ident, clinic_id, status, start_at in rows:
        if ident in scored:
            found[ident] = Risk(scored[ident], clinic_id)
        elif waiting and status == SCORABLE[0] and start_at is not None:
            if now < start_at < now + SCORED_AHEAD:  # later visits are not scored yet at all
                found[ident] = Risk(None, clinic_id)
    return found


# ---------------------------------------------------------------- the call list

# a call's outcomes, in the order the page offers them (rules as data: the page's choices and
# the check here come from this table)
CALL_OUTCOMES = {"reached": "Reached", "message": "Left a message", "no_answer": "No answer"}
SETTLED = frozenset({"reached", "message"})  # no second call; no answer settles its day only
NOTE_LIMIT = 500
CALL_LIMIT = 200  # visits listed at most (the riskest): the page says when the list is full
BANDS = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Call:
    """The last call made from the call list for a visit's present start."""

    outcome: str
    note: str
    called_at: datetime
    called_by: str

    def text(self, clinic) -> str:
        """'Left a message · Sam Staff · Tue 12 May 2026, 14:03' in the clinic's zone and
        locale (anything with .timezone and .locale)."""
        when = clinic_time(clinic, self.called_at)
        return f"{CALL_OUTCOMES[self.outcome]} · {self.called_by} · {when}"

    def settled(self, today: date, tz: str) -> bool:
        """Done for now: the patient was reached or left a message; no answer only for the day
        it was made (the next day the visit is to be called again)."""
        return self.outcome in SETTLED or to_local(self.called_at, tz).date() == today


@dataclass(frozen=True)
class CallRow:
    appointment_id: int
    when: str
    patient: str
    phone: str
    provider: str
    probability: float
    confirmed: str = ""  # "Confirmed by the patient · when · channel" for the present start
    call: str = ""  # the last call: "Reached · Sam Staff · Tue 12 May 2026, 14:03"
    note: str = ""  # the last call's note, as typed (escape where Markdown renders)
    called: bool = False  # done for now (Call.settled): listed under the calls still to make


def calls_made(session: Session, appointment_ids: list[int]) -> dict[int, Call]:
    """Each visit's last call for its present start (a move makes it a visit to call again)."""
    if not appointment_ids:
        return {}
    rows = session.execute(
        select(
            RiskCall.appointment_id,
            RiskCall.outcome,
            RiskCall.note,
            RiskCall.called_at,
            User.display_name,
        )
        .join(Appointment, Appointment.id == RiskCall.appointment_id)
        .outerjoin(User, User.id == RiskCall.called_by_user_id)
        .where(
            RiskCall.appointment_id.in_(appointment_ids),
            RiskCall.start_at == Appointment.start_at,
        )
        .order_by(RiskCall.called_at, RiskCall.id)
    )
    return {i: Call(outcome, note, at, who or "—") for i, outcome, note, at, who in rows}


def call_list(
    session: Session, actor: Actor, *, clinic_id: int, days: int = 3, threshold: float = HIGH
) -> list[CallRow]:
    """Scheduled visits from now to the end of the clinic's day `days` days ahead (1: the rest
    of today and all of tomorrow) whose predicted no-show risk is at least `threshold`
    (default: high, the visits that also get the extra reminder): call them.

    The calls still to make come first, those done for now (Call.settled) after them, still
    shown for the day. Among the calls to make, the visits the patient has confirmed for their
    present time come after the others: the score was made without that confirmation (the
    daily run counts one only from before the visit's day), and an unconfirmed visit is the
    call that can still change something. Within each: by risk band (high, then medium, then
    low), then by start:
    a call helps only before the visit, and within a band the model's figures differ by less
    than its calibration error, so the soonest visit is called first rather than a 41% in three
    days before a 39% tomorrow. Each row says whether the patient has confirmed."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    now = utcnow()
    today = local_today(clinic.timezone, now)
    last_day = today + timedelta(days=days)
    until = local_days_bounds(last_day, last_day, clinic.timezone)[1]
    rows = session.execute(
        select(Appointment.id, Appointment.start_at, Patient, Provider.name, RiskScore.probability)
        .join(RiskScore, RiskScore.appointment_id == Appointment.id)
        .join(Patient, Patient.id == Appointment.patient_id)
        .outerjoin(Provider, Provider.id == Appointment.provider_id)
        .where(
            Appointment.clinic_id == clinic_id,
            Appointment.status == SCORABLE[0],
            Appointment.start_at >= now,
            Appointment.start_at < until,
            RiskScore.probability >= threshold,
            current_score(),
        )
        .order_by(RiskScore.probability.desc(), Appointment.start_at, Appointment.id)
        .limit(CALL_LIMIT)
    ).all()
    ids = [r[0] for r in rows]
    confirmed = reminders.confirmations(session, ids)
    made = calls_made(session, ids)

    def order(row) -> tuple:
        ident, start, _, _, probability = row
        call = made.get(ident)
        done = call is not None and call.settled(today, clinic.timezone)
        return done, ident in confirmed, -BANDS[level(probability)], start, ident

    found = []
    for row in sorted(rows, key=order):
        ident, start, patient, provider, probability = row
        call = made.get(ident)
        found.append(
            CallRow(
                ident,
                clinic_time(clinic, start),
                patient.full_name,
                patient.phone or "",
                provider or "",
                probability,
                confirmed[ident].text(clinic) if ident in confirmed else "",
                call.text(clinic) if call else "",
                call.note if call else "",
                call is not None and call.settled(today, clinic.timezone),
            )
        )
    return found


def record_call(
    session: Session, actor: Actor, appointment_id: int, outcome: str, note: str = ""
) -> Call:
    """Record a call made from the call list: its outcome, an optional note, who and when
    (audited). Whoever sees the call list may work it (the roles that see appointments)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    if outcome not in CALL_OUTCOMES:
        raise ValidationError(
            "Choose how the call went: " + ", ".join(CALL_OUTCOMES.values()).lower() + "."
        )
    note = (clean(note or "", field="call note", limit=NOTE_LIMIT) or "").strip()
    visit = session.get(Appointment, appointment_id)
    if visit is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    if visit.status != SCORABLE[0] or visit.start_at is None:
        raise ValidationError(
            f"Appointment #{appointment_id} is {visit.status.value.replace('_', ' ')} now, not "
            "scheduled: there is no visit to call about. Reload the call list."
        )
    if visit.start_at <= utcnow():
        raise ValidationError(
            f"Appointment #{appointment_id} began at {clinic_time(visit.clinic, visit.start_at)}: "
            "a reminder call is for a visit still to come, so none was recorded. Reload the "
            "call list."
        )
    row = RiskCall(
        appointment_id=visit.id,
        start_at=visit.start_at,
        outcome=outcome,
        note=note,
        called_by_user_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "call_list_call",
        "appointment",
        visit.id,
        patient_id=visit.patient_id,
        message=note or None,
        details={"outcome": outcome, "start_at": visit.start_at.isoformat()},
    )
    return Call(outcome, note, row.called_at, actor.label)


@dataclass(frozen=True)
class Overbooking:
    provider_id: int
    provider: str
    day: date
    expected_no_shows: float
    visits: int
    start_at: datetime  # the start of that day's highest-risk visit: book the extra one beside it
    highest: float  # that visit's probability
    not_scored: int = 0  # that day's visits still to come left out of the sum: not scored yet


def overbooking_suggestions(
    session: Session, actor: Actor, *, clinic_id: int, start: datetime, end: datetime
) -> list[Overbooking]:
    """Provider-days in [start, end) where the expected no-shows (sum of probabilities) of the
    visits still to come exceed one: a suggestion to book one extra visit, never done
    automatically, at the start of the day's highest-risk visit (the earliest of equals), where
    a no-show is likeliest to leave the provider free; booking it is a double booking on
    purpose, which staff confirm on the booking form. Visits already past are left out (an extra
    booking cannot be made before now, and a visit of a day gone by still 'scheduled' was only
    never marked)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    tz = clinic.timezone
    start = max(start, utcnow())
    sums: dict[tuple[int, date], list[tuple[float, datetime]]] = {}
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
            current_score(),
        )
    ):
        names[pid] = name
        sums.setdefault((pid, to_local(at, tz).date()), []).append((p, at))
    found = []
    for (pid, day), visits in sorted(sums.items(), key=lambda kv: (kv[0][1], names[kv[0][0]])):
        expected = sum(p for p, _ in visits)
        if expected > 1:
            highest, at = min(visits, key=lambda v: (-v[0], v[1]))
            found.append(Overbooking(pid, names[pid], day, expected, len(visits), at, highest))
    if not found:
        return found
    # the visits of those days the sum leaves out (booked or moved since the last scoring), so
    # that the suggestion says on how many of the day's visits it stands
    scored = select(RiskScore.appointment_id).where(
        RiskScore.appointment_id == Appointment.id, current_score()
    )
    left_out: dict[tuple[int, date], int] = {}
    for pid, at in session.execute(
        select(Appointment.provider_id, Appointment.start_at).where(
            Appointment.clinic_id == clinic_id,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status == SCORABLE[0],
            Appointment.provider_id.in_({f.provider_id for f in found}),
            Appointment.start_at >= start,
            Appointment.start_at < end,
            ~scored.exists(),
        )
    ):
        key = (pid, to_local(at, tz).date())
        left_out[key] = left_out.get(key, 0) + 1
    return [replace(f, not_scored=left_out.get((f.provider_id, f.day), 0)) for f in found]
