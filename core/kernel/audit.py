"""The audit trail: one event per change, written in the caller's transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import ValidationError
from core.kernel.money import ClinicFormat
from core.kernel.text import plain_words
from db.models import (
    Appointment,
    AuditEvent,
    CancellationPolicy,
    Clinic,
    LedgerEntry,
    Patient,
    User,
)

PAGE_SIZE = 200


def record(
    session: Session,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: int | None = None,
    *,
    patient_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        user_id=actor.user_id,
        actor_label=actor.label[:120],  # a label, never refused for its length
        action=action,
        entity=entity,
        entity_id=entity_id,
        patient_id=patient_id,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        message=message,
        details=details,
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    actor: Actor,
    *,
    user_id: int | None = None,
    action: str | None = None,
    patient_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> list[AuditEvent]:
    """Newest first, filtered and paginated in SQL. A patient's events include those of the
    records merged into it (core.patients.merge), each still about the record it was written
    about: the trail is never rewritten, and the kept record's history shows both."""
    ensure(actor, Permission.AUDIT_READ)
    query = _filtered(select(AuditEvent), user_id, action, patient_id, since, until)
    return list(session.scalars(query.limit(page_size).offset(page * page_size)))


def _filtered(
    query: Select,
    user_id: int | None,
    action: str | None,
    patient_id: int | None,
    since: datetime | None,
    until: datetime | None,
    *,
    appointment_id: int | None = None,
    patient_name: str | None = None,
) -> Select:
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if user_id is not None:
        # what the person did, and what was done to their account: a wrong password typed
        # as them, a lock-out, a reset or a role change (written by System or the owner)
        query = query.where(
            or_(
                AuditEvent.user_id == user_id,
                and_(AuditEvent.entity == "user", AuditEvent.entity_id == user_id),
            )
        )
    if action:
        query = query.where(AuditEvent.action == action)
    if patient_id is not None:
        # a merge points every record merged into this one, earlier merges' too, straight at it
        merged = select(Patient.id).where(Patient.merged_into_id == patient_id)
        query = query.where(
            or_(AuditEvent.patient_id == patient_id, AuditEvent.patient_id.in_(merged))
        )
    if patient_name is not None:
        words = plain_words(patient_name)
        if not words:
            raise ValidationError(
                "Type a patient's name (or part of it), like Patel, or their number, like #12."
            )
        named = select(Patient.id).where(
            *(Patient.search_text.contains(w, autoescape=True) for w in words)
        )
        query = query.where(AuditEvent.patient_id.in_(named))
    if appointment_id is not None:
        # the appointment's own events, and those of its fees (written about the fee)
        fees = select(LedgerEntry.id).where(LedgerEntry.appointment_id == appointment_id)
        query = query.where(
            or_(
                and_(AuditEvent.entity == "appointment", AuditEvent.entity_id == appointment_id),
                and_(AuditEvent.entity == "ledger_entry", AuditEvent.entity_id.in_(fees)),
            )
        )
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return query


@dataclass(frozen=True)
class LogEntry:
    """One event as the owner reads it: the action in words, the patient by name, the record
    named (a person's account by their name), and the appointment it concerns, if any (its
    own events, and a fee's), for a link to its page."""

    id: int
    at: datetime
    who: str
    action: str  # the stored code, for filtering again
    what: str  # the code in words: 'Appointment cancelled'
    patient_id: int | None
    patient: str  # 'Priya Patel (#12)', '' when about no patient
    record: str  # 'Appointment #57', "Fran Lee's account", 'Cancellation policy #3'
    appointment_id: int | None
    from_status: str | None
    to_status: str | None
    reason: str | None
    message: str | None
    details: dict[str, Any] | None
    currency: str | None = None  # of the amounts in the details, when known (its clinic's)


def list_log(
    session: Session,
    actor: Actor,
    *,
    user_id: int | None = None,
    action: str | None = None,
    patient_id: int | None = None,
    patient_name: str | None = None,
    appointment_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> list[LogEntry]:
    """list_events as the audit log page shows it: the names beside the numbers are read in
    the same query (outer joins on primary keys, after the page is cut), not row by row.
    A person (`user_id`) is found by what they did and what was done to their account; a
    patient by number or by name (`patient_name`: every word in it, as the patient search
    finds them); an appointment by its own events and its fees'."""
    ensure(actor, Permission.AUDIT_READ)
    cut = _filtered(
        select(AuditEvent.id),
        user_id,
        action,
        patient_id,
        since,
        until,
        appointment_id=appointment_id,
        patient_name=patient_name,
    )
    cut = cut.limit(page_size).offset(page * page_size).subquery()
    account, fee = aliased(User), aliased(LedgerEntry)
    visit, fee_visit = aliased(Appointment), aliased(Appointment)
    policy = aliased(CancellationPolicy)
    # the clinic whose currency an amount in the details is in: the appointment's, the fee's
    # appointment's, the policy's; none for the rest (the practice's currency is shown)
    clinic_id = func.coalesce(visit.clinic_id, fee_visit.clinic_id, policy.clinic_id)
    query = (
        select(
            AuditEvent,
            Patient.first_name,
            Patient.last_name,
            account.display_name,
            fee.appointment_id,
            Clinic.currency,
        )
        .join(cut, cut.c.id == AuditEvent.id)
        .outerjoin(Patient, Patient.id == AuditEvent.patient_id)
        .outerjoin(account, and_(AuditEvent.entity == "user", AuditEvent.entity_id == account.id))
        .outerjoin(fee, and_(AuditEvent.entity == "ledger_entry", AuditEvent.entity_id == fee.id))
        .outerjoin(
            visit, and_(AuditEvent.entity == "appointment", AuditEvent.entity_id == visit.id)
        )
        .outerjoin(fee_visit, fee_visit.id == fee.appointment_id)
        .outerjoin(
            policy,
            and_(AuditEvent.entity == "cancellation_policy", AuditEvent.entity_id == policy.id),
        )
        .outerjoin(Clinic, Clinic.id == clinic_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )
    return [
        LogEntry(
            id=e.id,
            at=e.at,
            who=e.actor_label,
            action=e.action,
            what=action_words(e.action),
            patient_id=e.patient_id,
            patient=(
                f"{first} {last} (#{e.patient_id})".strip() if e.patient_id is not None else ""
            ),
            record=_record(e.entity, e.entity_id, account_name),
            appointment_id=e.entity_id if e.entity == "appointment" else fee_appointment,
            from_status=e.from_status,
            to_status=e.to_status,
            reason=e.reason,
            message=e.message,
            details=e.details,
            currency=currency,
        )
        for e, first, last, account_name, fee_appointment, currency in session.execute(query)
    ]


# The actions in a practice's words; an action not listed reads as its code in words
# ('waitlist_added' as 'Waitlist added'), never as the bare code.
ACTION_WORDS: dict[str, str] = {
    "request": "Appointment requested",
    "schedule": "Appointment booked",
    "approve": "Request approved",
    "decline": "Request declined",
    "propose": "Time proposed to the patient",
    "accept_proposal": "Proposed time accepted",
    "decline_proposal": "Proposed time turned down",
    "proposal_lapsed": "Proposed time left to lapse",
    "reschedule": "Appointment moved",
    "update": "Appointment changed",
    "cancel": "Appointment cancelled",
    "check_in": "Checked in",
    "undo_check_in": "Check-in undone",
    "complete": "Visit completed",
    "no_show": "Marked no-show",
    "undo_no_show": "No-show undone",
    "request_change": "Patient asked to change the appointment",
    "approve_change": "Change request approved",
    "deny_change": "Change request denied",
    "propose_for_change": "Other time proposed for a change request",
    "confirmed_by_patient": "Appointment confirmed by the patient",
    "reminder_queued": "Reminder queued",
    "sign_in": "Signed in",
    "sign_out": "Signed out",
    "sign_in_failed": "Sign-in failed: wrong password",
    "account_locked": "Account locked after wrong passwords",
    "sign_in_refused_locked": "Sign-in refused: account locked",
    "account_unlocked": "Account unlocked by the owner",
    "session_expired": "Signed out: idle too long",
    "password_changed": "Password changed",
    "password_reset": "Password reset",
    "owners_password_retired": "Owner's password retired: signed in with the organisation",
    "user_created": "Account created",
    "user_activated": "Account activated",
    "user_deactivated": "Account deactivated",
    "user_role_changed": "Role changed",
    "export": "Data exported",
    "import": "Data imported",
    "restore": "Database restored from a backup",
    "backup": "Backup made",
    "policy_saved": "Cancellation policy saved",
    "fee_paid": "Fee paid",
    "fee_waived": "Fee waived",
    "fee_refund_due": "Fee refund due",
    "payment_recorded": "Payment recorded",
    "payment_received": "Payment received",
    "payment_mismatch": "Payment did not match",
    "payment_refund_due": "Payment refund due",
    "refund_recorded": "Refund recorded",
    "prepayment_started": "Prepayment started",
    "prepayment_received": "Prepayment received",
    "prepayment_settled": "Prepayment settled",
    "points_earned": "Points earned",
    "points_adjusted": "Points adjusted",
    "patient_created": "Patient added",
    "patient_updated": "Patient record changed",
    "patient_merged_into": "Patient record merged into another",
    "patient_merged_from": "Another patient record merged into this one",
    "form_answers_viewed": "Form answers viewed",
    "sms_consent_given": "Consent to text messages given",
    "sms_consent_withdrawn": "Consent to text messages withdrawn",
    "enrollment_identity_failed": "Portal enrolment: identity not confirmed",
}

_ENTITY_WORDS = {
    "appointment": "Appointment",
    "ledger_entry": "Fee or points entry",
    "cancellation_policy": "Cancellation policy",
    "sms_reply": "Text reply",
    "slot_opening": "Freed slot",
    "waitlist_entry": "Waitlist entry",
    "waitlist_offer": "Waitlist offer",
}


def action_words(action: str) -> str:
    """An action as the audit log shows it: 'cancel' as 'Appointment cancelled'."""
    if words := ACTION_WORDS.get(action):
        return words
    return _humane(action) or "Unnamed action"


_ACRONYMS = {"fhir": "FHIR", "sms": "SMS", "qr": "QR", "csv": "CSV", "ical": "iCalendar"}


def _humane(code: str | None) -> str:
    """'provider.updated' as 'Provider updated', 'fhir_appointments' as 'FHIR appointments'."""
    words = re.sub(r"[._\s]+", " ", code or "").split()
    return " ".join(
        _ACRONYMS.get(w) or (w[:1].upper() + w[1:] if i == 0 else w) for i, w in enumerate(words)
    )


def _record(entity: str, entity_id: int | None, account_name: str | None) -> str:
    if entity == "user" and account_name:
        return f"{account_name}'s account"
    words = _ENTITY_WORDS.get(entity) or _humane(entity)
    return f"{words} #{entity_id}" if entity_id is not None else words


def list_actions(session: Session, actor: Actor) -> list[str]:
    ensure(actor, Permission.AUDIT_READ)
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def history_of(session: Session, entity: str, entity_id: int) -> list[AuditEvent]:
    """Every event of one record, oldest first (callers check their own read permission)."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return list(session.scalars(query))


# a stored day or moment: '2026-11-04', '2026-11-04 23:00:00+00:00', '2026-11-05T09:00:00Z'
_STORED_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)


def value_words(*vocabularies: Mapping[str, str]) -> dict[str, str]:
    """One map from the app's stored codes to the words their own dictionaries give them
    (core.scheduling.states.STATUS_WORDS, core.policy.cancellation.FEE_WORDS, ...; the kernel
    imports none of them: the screen hands them over), for `details_text` and `change_text`.
    A code written with an underscore only ('no_show', 'refund_due'): a plain word ('pending')
    is English already, and is an invitation's, a feedback's or an opening's state alike. A code
    two dictionaries name apart is refused (ValueError): no record reads another's words; named
    alike but for a capital ('No-show fee' where it stands alone), the first dictionary's words."""
    words: dict[str, str] = {}
    for vocabulary in vocabularies:
        for code, said in vocabulary.items():
            code = str(code)
            if "_" not in code:
                continue
            if words.setdefault(code, said).casefold() != said.casefold():
                raise ValueError(f"'{code}' is named both '{words[code]}' and '{said}'.")
    return words


def change_text(
    from_status: str | None, to_status: str | None, words: Mapping[str, str] | None = None
) -> str:
    """An event's change as a reader takes it: 'checked-in → no-show', each state in `words`
    (value_words) where it names it, otherwise as stored with its underscores spaced."""
    words = words or {}
    return " → ".join(words.get(s) or s.replace("_", " ") for s in (from_status, to_status) if s)


def details_text(details: Any, fmt: ClinicFormat, words: Mapping[str, str] | None = None) -> str:
    """An event's details as a reader takes them, stored values unchanged: 'key: value' pairs
    joined by '; ', a nested record in parentheses, a stored UTC moment in the clinic's zone and
    locale, a day in its locale, yes or no, an amount stored in cents (a key ending in 'cents')
    as money in `fmt`'s currency ('late-cancellation fee: £30.00', not 'late cancel fee cents:
    3000': a policy's fees named as every screen names them, KEY_WORDS); an empty value
    (None, the text 'None' that exports used to store for a filter not set, '', [] or {}) is
    left out; a stored code the app names in `words` (value_words) in those words ('kind:
    no-show fee', not 'kind: no_show_fee'), on the screen only: the event stays as recorded."""
    return _detail(details, fmt, words=words or {})


def _detail(
    value: Any, fmt: ClinicFormat, money: bool = False, words: Mapping[str, str] | None = None
) -> str:
    words = words or {}
    if isinstance(value, dict):
        pairs = (
            (_key(str(k), value), _part(v, fmt, money or _in_cents(str(k)), words))
            for k, v in value.items()
        )
        return "; ".join(f"{key}: {shown}" for key, shown in pairs if shown)
    if isinstance(value, list | tuple):
        return ", ".join(shown for v in value if (shown := _part(v, fmt, money, words)))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if money and isinstance(value, int):
        return fmt.money(value)
    if isinstance(value, datetime):
        return fmt.moment(value if value.tzinfo else value.replace(tzinfo=UTC))
    text = "" if value is None else str(value).strip()
    if text == "None":
        return ""
    if text in words:
        return words[text]
    if _STORED_TIME.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:  # shaped like one but no date (a name typed '2026-02-30'): as typed
            return text
        if len(text) == 10:
            return fmt.day(moment.date())
        return fmt.moment(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return text


def _in_cents(key: str) -> bool:
    return key == "cents" or key.endswith("_cents")


def _key(key: str, record: dict) -> str:
    """A key as words; an amount's without 'cents' ('points worth' beside a count 'points')."""
    if _in_cents(key):
        name = key.removesuffix("cents").removesuffix("_") or "amount"
        key = f"{name} worth" if name in record else name
    for start, words in KEY_WORDS.items():
        if key == start or key.startswith(f"{start}_"):
            key = words + key.removeprefix(start)
    return key.replace("_", " ")


# keys (or their start: 'no_show_fee_basis') whose words are not their spelling with spaces: a
# policy's fees as every screen names them
KEY_WORDS = {"late_cancel_fee": "late-cancellation fee", "no_show_fee": "no-show fee"}


def _part(
    value: Any, fmt: ClinicFormat, money: bool = False, words: Mapping[str, str] | None = None
) -> str:
    """A value inside a record or list; a nested record in parentheses."""
    shown = _detail(value, fmt, money, words)
    return f"({shown})" if shown and isinstance(value, dict) else shown
