"""Proposals nobody answered. A proposed time holds its slot until the patient answers through
the link (core.requests.decisions.send_proposal: at most PROPOSAL_TTL, never past the time
itself). When the link lapses unanswered, the time is let go as if the patient had turned it
down: a booking request goes back to the queue as a request, a change request's proposal gives
way to the booking the patient had. The freed time goes to the waitlist, the patient is told
once, and the history says the proposal lapsed (by ClinicDesk, not by the patient)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from core.kernel.authz import SYSTEM
from core.kernel.config import Settings
from core.kernel.errors import InvalidTransition, NotFound
from core.kernel.money import clinic_time
from core.requests.decisions import let_go, open_change
from core.scheduling.lifecycle import flush, load, record, tell_patient, when_text
from core.scheduling.states import Action, S
from db.engine import Database
from db.models import Appointment, ChangeStatus, LinkToken
from db.types import utcnow

BATCH = 50  # appointments a round; each in its own transaction


def _proposal_links(*, live: bool, now: datetime):
    """A proposal link of the appointment not used nor revoked, still valid (`live`) or lapsed."""
    return exists().where(
        LinkToken.purpose == "proposal",
        LinkToken.subject_id == Appointment.id,
        LinkToken.used_at.is_(None),
        LinkToken.revoked_at.is_(None),
        LinkToken.expires_at > now if live else LinkToken.expires_at <= now,
    )


def lapsed_proposals(session: Session, now: datetime, limit: int = BATCH) -> list[int]:
    """Tentative appointments whose latest proposal's link lapsed unanswered, oldest first."""
    return list(
        session.scalars(
            select(Appointment.id)
            .where(
                Appointment.status == S.TENTATIVE,
                _proposal_links(live=False, now=now),
                ~_proposal_links(live=True, now=now),
            )
            .order_by(Appointment.id)
            .limit(limit)
        )
    )


def lapse_proposal(session: Session, appointment_id: int, now: datetime | None = None) -> bool:
    """Let the appointment's unanswered proposal go; False when it was answered, replaced or
    decided meanwhile (nothing is done)."""
    now = now or utcnow()
    try:  # locked, then read: answered or decided since the list was read, it is not tentative
        appointment = load(session, appointment_id, Action.LAPSE_PROPOSAL)
    except (InvalidTransition, NotFound):
        return False
    still = select(Appointment.id).where(
        Appointment.id == appointment_id, ~_proposal_links(live=True, now=now)
    )
    if session.scalar(still) is None:  # a new proposal since the list was read
        return False
    before, proposed_when = appointment.status, when_text(appointment)
    # the link the patient had: one a newer proposal replaced (revoked) may have run longer
    lapsed_at = session.scalar(
        select(LinkToken.expires_at)
        .where(
            LinkToken.purpose == "proposal",
            LinkToken.subject_id == appointment_id,
            LinkToken.revoked_at.is_(None),
            LinkToken.used_at.is_(None),
        )
        .order_by(LinkToken.expires_at.desc())
        .limit(1)
    )
    reason = (
        f"The patient did not answer the proposed time ({proposed_when}) before its link "
        f"lapsed at {clinic_time(appointment.clinic, lapsed_at, zone=True)}."
    )
    change = open_change(session, appointment.id, ChangeStatus.PROPOSED)
    details = {"proposed_when": proposed_when}
    if change is not None:
        details["change_request_id"] = change.id
        change.decided_at = now
    let_go(session, appointment, change, reason)
    flush(session, appointment)
    record(
        session, SYSTEM, appointment, Action.LAPSE_PROPOSAL, before, reason=reason, details=details
    )
    if change is not None:
        told = "We did not hear back about the time we proposed ({}), so it is no longer held."
        tell_patient(
            session, appointment, "change_request_denied", reason=told.format(proposed_when)
        )
    else:
        tell_patient(session, appointment, "proposal_lapsed", proposed_when=proposed_when)
    return True


def lapse_job(database: Database, settings: Settings) -> None:
    """The jobs loop: each lapsed proposal in its own transaction. Two servers at once: the
    row lock in `load` makes the second find the appointment no longer tentative."""
    now = utcnow()
    with database.read() as session:
        due = lapsed_proposals(session, now)
    for appointment_id in due:
        with database.write() as session:
            session.info["base_url"] = settings.base_url
            lapse_proposal(session, appointment_id, now)
