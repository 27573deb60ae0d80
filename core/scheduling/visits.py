"""The day itself: check-in, completion and no-show."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from core.kernel.authz import Actor
from core.kernel.clock import local_today
from core.kernel.errors import InvalidTransition, NotFound
from core.kernel.money import clinic_money, clinic_time
from core.messaging.preferences import preferences
from core.policy import cancellation as policy
from core.scheduling.lifecycle import Outcome, flush, load, outcome_of, record, tell_patient
from core.scheduling.states import Action, S, ensure_allowed
from db.models import (
    Appointment,
)
from db.types import utcnow

# The survey line of a completed visit's thank-you. Surveys sit above scheduling, so the
# feedback layer hands it in (core.startup.install_session_rules, also run by the test
# fixtures); without it the thank-you simply has no survey line.
SurveyLine = Callable[[Session, Appointment, datetime], str]
_survey_line: list[SurveyLine] = []


def use_survey_line(line: SurveyLine) -> None:
    _survey_line[:] = [line]


# ---------------------------------------------------------------- the day itself


def is_check_in_day(start_at: datetime | None, tz: str, now: datetime | None = None) -> bool:
    """Whether `now` falls on the appointment's clinic-local day: check-in is open that day only."""
    return start_at is not None and local_today(tz, start_at) == local_today(tz, now)


def check_in_day_refusal(
    appointment: Appointment, now: datetime | None = None, what: str = "This appointment"
) -> str:
    """Why the appointment cannot be checked in at `now` ('' on its clinic-local day); `what`
    names what was tried ("This code" at the check-in desk)."""
    clinic = appointment.clinic
    if is_check_in_day(appointment.start_at, clinic.timezone, now):
        return ""
    when = clinic_time(clinic, appointment.start_at)
    if appointment.start_at > (now or utcnow()):
        return f"{what} is for {when}; check-in opens on the day."
    return (
        f"{what} was for {when}; it can no longer be checked in. Record the visit as "
        "completed or a no-show instead."
    )


def check_in(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Mark the patient arrived, on the appointment's clinic-local day only."""
    ensure_allowed(actor, Action.CHECK_IN)
    appointment = load(session, appointment_id, Action.CHECK_IN, expected_version)
    refusal = check_in_day_refusal(appointment, now)
    if refusal:
        raise InvalidTransition(refusal)
    before = appointment.status
    appointment.status, appointment.checked_in_at = S.CHECKED_IN, utcnow()
    flush(session, appointment)
    record(session, actor, appointment, Action.CHECK_IN, before)
    queued = None
    if preferences(session, appointment.clinic_id).tell_checked_in:  # the practice's choice
        queued = tell_patient(session, appointment, "appointment_checked_in")
    return outcome_of(appointment, queued)


def undo_check_in(
    session: Session, actor: Actor, appointment_id: int, *, expected_version: int | None = None
) -> Outcome:
    """A mistaken check-in undone: back to scheduled, audited; the patient is not messaged."""
    ensure_allowed(actor, Action.UNDO_CHECK_IN)
    appointment = load(session, appointment_id, Action.UNDO_CHECK_IN, expected_version)
    before = appointment.status
    appointment.status, appointment.checked_in_at = S.SCHEDULED, None
    flush(session, appointment)
    record(session, actor, appointment, Action.UNDO_CHECK_IN, before)
    return outcome_of(appointment)


def _require_started(appointment: Appointment, now: datetime, rule: str) -> None:
    if appointment.start_at > now:
        starts = clinic_time(appointment.clinic, appointment.start_at)
        raise InvalidTransition(f"This visit starts at {starts}; {rule}.")


def complete(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    ensure_allowed(actor, Action.COMPLETE)
    appointment = load(session, appointment_id, Action.COMPLETE, expected_version)
    now = now or utcnow()
    _require_started(appointment, now, "it can be completed once it is due")
    before = appointment.status
    appointment.status, appointment.completed_at = S.COMPLETED, now
    flush(session, appointment)
    record(session, actor, appointment, Action.COMPLETE, before)
    # the thank-you, with the survey link only when the feedback rules would ask right now
    survey = _survey_line[0](session, appointment, now) if _survey_line else ""
    queued = tell_patient(session, appointment, "appointment_completed", survey=survey)
    return outcome_of(appointment, queued)


def no_show_consequences(session: Session, actor: Actor, appointment_id: int) -> str:
    """What recording a no-show will do, for the confirmation before it: the fee and points
    of the cancellation policy in force (if any) and that the patient is told."""
    ensure_allowed(actor, Action.NO_SHOW)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    who = appointment.patient.full_name if appointment.patient else "the patient"
    charges = []
    rules = policy.current_policy(session, appointment.clinic_id, appointment.service_id)
    if rules is not None and appointment.patient_id is not None:
        if rules.no_show_fee_cents:
            fee = clinic_money(appointment.clinic, rules.no_show_fee_cents)
            charges.append(f"a no-show fee of {fee} is recorded")
        if rules.points_deducted:
            charges.append(f"{rules.points_deducted} points are deducted")
    text = f"Record {who} as a no-show? " + (
        f"Under the cancellation policy {' and '.join(charges)}. "
        if charges
        else "No fee applies. "
    )
    told = "They are told at once (email and text, as they agreed)."
    return text + (told if appointment.patient else "")


def mark_no_show(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    ensure_allowed(actor, Action.NO_SHOW)
    appointment = load(session, appointment_id, Action.NO_SHOW, expected_version)
    now = now or utcnow()
    _require_started(appointment, now, "a no-show can only be recorded after it started")
    before = appointment.status
    appointment.status = S.NO_SHOW
    entries = policy.assess_no_show(session, appointment)
    flush(session, appointment)
    fee = sum(e.amount_cents or 0 for e in entries)
    record(
        session,
        actor,
        appointment,
        Action.NO_SHOW,
        before,
        details={"fee_cents": fee, "points": sum(e.points or 0 for e in entries)},
    )
    queued = tell_patient(
        session,
        appointment,
        "appointment_no_show",
        fee=f"\nA no-show fee of {clinic_money(appointment.clinic, fee)} applies." if fee else "",
    )
    return outcome_of(appointment, queued)
