"""The appointment life cycle's rules: the one place where status transitions are decided.

`RULES` drives both validation and the actions a page offers. Every transition service
(core.requests.decisions, .changes, .bulk; core.scheduling.moves, .visits) is one step of this
state machine: it checks the permission, loads the appointment (row-locked, version-checked),
validates, changes it, writes exactly one audit event on the appointment and queues the patient's
notifications — all in the caller's transaction.

Choices worth knowing:
- A patient who declines a proposal for a *new request* puts the request back into the queue
  (tentative → requested) so the practice can offer another time; declining a proposal made in
  answer to a *change request* restores the original booking (tentative → scheduled).
- A practice-initiated cancellation records the policy version but charges nothing; a patient's
  cancellation (by_patient=True) is assessed under the policy (late flag, fee, points).
- Patients are told about every status change they did not cause (consent per channel is
  respected by core.messaging.notify; reminders being off does not matter). Completion sends a
  thank-you; check-in is messaged only where the clinic chose it (core.messaging.preferences).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import InvalidTransition
from db.models import (
    Appointment,
    AppointmentStatus,
)

S = AppointmentStatus
P = Permission
ENTITY = "appointment"
PROPOSAL_TTL = timedelta(days=7)
PAST_GRACE = timedelta(minutes=15)  # a booking may start this much before "now"


class Action(enum.StrEnum):
    REQUEST = "request"
    SCHEDULE = "schedule"
    APPROVE = "approve"
    DECLINE = "decline"
    PROPOSE = "propose"
    ACCEPT_PROPOSAL = "accept_proposal"
    DECLINE_PROPOSAL = "decline_proposal"
    LAPSE_PROPOSAL = "proposal_lapsed"  # unanswered until its link lapsed (core.requests.lapses)
    RESCHEDULE = "reschedule"
    UPDATE = "update"
    CANCEL = "cancel"
    CHECK_IN = "check_in"
    UNDO_CHECK_IN = "undo_check_in"
    COMPLETE = "complete"
    NO_SHOW = "no_show"
    UNDO_NO_SHOW = "undo_no_show"
    REQUEST_CHANGE = "request_change"
    APPROVE_CHANGE = "approve_change"
    DENY_CHANGE = "deny_change"
    PROPOSE_FOR_CHANGE = "propose_for_change"


@dataclass(frozen=True)
class Rule:
    sources: frozenset[AppointmentStatus]
    target: AppointmentStatus | None  # None: the status stays as it is
    permission: Permission | None  # None: a patient through a verified link (or staff)
    verb: str  # "A completed appointment cannot be {verb}"


def _rule(sources, target, permission, verb) -> Rule:
    return Rule(frozenset(sources), target, permission, verb)


RULES: dict[Action, Rule] = {
    Action.REQUEST: _rule((), S.REQUESTED, P.APPOINTMENTS_BOOK, "requested"),
    Action.SCHEDULE: _rule((), S.SCHEDULED, P.APPOINTMENTS_BOOK, "booked"),
    Action.APPROVE: _rule((S.REQUESTED,), S.SCHEDULED, P.REQUESTS_DECIDE, "approved"),
    Action.DECLINE: _rule((S.REQUESTED, S.TENTATIVE), S.DECLINED, P.REQUESTS_DECIDE, "declined"),
    Action.PROPOSE: _rule((S.REQUESTED, S.TENTATIVE), S.TENTATIVE, P.REQUESTS_DECIDE, "proposed"),
    Action.ACCEPT_PROPOSAL: _rule((S.TENTATIVE,), S.SCHEDULED, None, "accepted"),
    Action.DECLINE_PROPOSAL: _rule((S.TENTATIVE,), S.REQUESTED, None, "turned down"),
    Action.LAPSE_PROPOSAL: _rule((S.TENTATIVE,), S.REQUESTED, None, "left to lapse"),
    Action.RESCHEDULE: _rule((S.SCHEDULED,), S.SCHEDULED, P.APPOINTMENTS_RESCHEDULE, "moved"),
    Action.UPDATE: _rule((S.SCHEDULED,), S.SCHEDULED, P.APPOINTMENTS_RESCHEDULE, "updated"),
    Action.CANCEL: _rule(
        (S.REQUESTED, S.TENTATIVE, S.SCHEDULED), S.CANCELLED, P.APPOINTMENTS_CANCEL, "cancelled"
    ),
    Action.CHECK_IN: _rule((S.SCHEDULED,), S.CHECKED_IN, P.APPOINTMENTS_CHECK_IN, "checked in"),
    Action.UNDO_CHECK_IN: _rule(
        (S.CHECKED_IN,), S.SCHEDULED, P.APPOINTMENTS_CHECK_IN, "reset to scheduled"
    ),
    Action.COMPLETE: _rule(
        (S.SCHEDULED, S.CHECKED_IN), S.COMPLETED, P.APPOINTMENTS_CHECK_IN, "completed"
    ),
    Action.NO_SHOW: _rule((S.SCHEDULED,), S.NO_SHOW, P.APPOINTMENTS_CHECK_IN, "marked no-show"),
    # a mistaken no-show, on the clinic-local day it was recorded (core.scheduling.visits)
    Action.UNDO_NO_SHOW: _rule(
        (S.NO_SHOW,), S.SCHEDULED, P.APPOINTMENTS_CHECK_IN, "reset to scheduled"
    ),
    Action.REQUEST_CHANGE: _rule((S.SCHEDULED,), None, None, "changed on request"),
    Action.APPROVE_CHANGE: _rule((S.SCHEDULED,), None, P.REQUESTS_DECIDE, "changed"),
    Action.DENY_CHANGE: _rule((S.SCHEDULED,), S.SCHEDULED, P.REQUESTS_DECIDE, "kept"),
    Action.PROPOSE_FOR_CHANGE: _rule((S.SCHEDULED,), S.TENTATIVE, P.REQUESTS_DECIDE, "proposed"),
}

# status → the statuses it may move to (derived from RULES, so the two cannot disagree)
TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    status: frozenset(rule.target or status for rule in RULES.values() if status in rule.sources)
    | (frozenset({S.CANCELLED}) if status in RULES[Action.APPROVE_CHANGE].sources else frozenset())
    for status in AppointmentStatus
}
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

FHIR_STATUS = {
    S.REQUESTED: "proposed",
    S.TENTATIVE: "pending",
    S.SCHEDULED: "booked",
    S.CHECKED_IN: "arrived",
    S.COMPLETED: "fulfilled",
    S.NO_SHOW: "noshow",
    S.DECLINED: "cancelled",
    S.CANCELLED: "cancelled",
}

STATUS_WORDS = {
    S.REQUESTED: "requested",
    S.TENTATIVE: "tentative",
    S.SCHEDULED: "scheduled",
    S.CHECKED_IN: "checked-in",
    S.COMPLETED: "completed",
    S.NO_SHOW: "no-show",
    S.DECLINED: "declined",
    S.CANCELLED: "cancelled",
}
# what an appointment is, in a sentence ('This appointment is marked as a no-show.'): the words
# a patient or the desk reads of a visit's state, where STATUS_WORDS names it in a list or before
# a noun ('a no-show appointment'); status_is adds 'already' to a state reached
STATUS_STATES = {
    S.REQUESTED: "still a request the practice has not answered",
    S.TENTATIVE: "waiting for an answer to the time the practice proposed",
    S.SCHEDULED: "booked",
    S.CHECKED_IN: "checked in",
    S.COMPLETED: "completed",
    S.NO_SHOW: "marked as a no-show",
    S.DECLINED: "declined",
    S.CANCELLED: "cancelled",
}
_STILL = frozenset({S.REQUESTED, S.TENTATIVE})


def status_is(status: AppointmentStatus | str, already: bool = False) -> str:
    """The words after 'This appointment is': 'marked as a no-show', 'checked in'; `already`:
    'already marked as a no-show' (a visit still waiting is 'still a request ...' either way)."""
    status = AppointmentStatus(status)
    words = STATUS_STATES[status]
    return f"already {words}" if already and status not in _STILL else words


ACTION_LABELS = {
    Action.APPROVE: "approve",
    Action.DECLINE: "decline",
    Action.PROPOSE: "propose a time",
    Action.ACCEPT_PROPOSAL: "accept the proposal",
    Action.DECLINE_PROPOSAL: "turn down the proposal",
    Action.RESCHEDULE: "reschedule",
    Action.UPDATE: "update",
    Action.CANCEL: "cancel",
    Action.CHECK_IN: "check in",
    Action.UNDO_CHECK_IN: "undo the check-in",
    Action.COMPLETE: "complete",
    Action.NO_SHOW: "mark no-show",
    Action.UNDO_NO_SHOW: "undo the no-show (on the day it was recorded)",
}


def fhir_status(status: AppointmentStatus | str) -> str:
    """FHIR R4 Appointment.status for a ClinicDesk status (FHIR_STATUS above)."""
    return FHIR_STATUS[AppointmentStatus(status)]


def _article(word: str) -> str:
    return "An" if word[0] in "aeiou" else "A"


def allowed_actions(status: AppointmentStatus, actor: Actor | None = None) -> list[Action]:
    """The actions a status allows (and, given an actor, that the actor may take)."""
    return [
        action
        for action, rule in RULES.items()
        if status in rule.sources
        and action in ACTION_LABELS
        and (actor is None or (rule.permission is not None and actor.can(rule.permission)))
    ]


def check_transition(appointment: Appointment, action: Action) -> None:
    rule = RULES[action]
    if appointment.status in rule.sources:
        return
    words = STATUS_WORDS[appointment.status]
    message = f"{_article(words)} {words} appointment cannot be {rule.verb}."
    options = [ACTION_LABELS[a] for a in allowed_actions(appointment.status)]
    message += (
        f" What it allows: {', '.join(options)}." if options else " Nothing more can happen to it."
    )
    raise InvalidTransition(message)


def ensure_allowed(actor: Actor, action: Action) -> None:
    permission = RULES[action].permission
    if permission is None:  # patient link paths: a signed-in user still needs the decide right
        if actor.role is not None:
            ensure(actor, P.REQUESTS_DECIDE)
        return
    ensure(actor, permission)
