"""Patient-portal invitations: send, resend, revoke, expire, enrol, and the enrolment funnel.

Each patient has one portal status, derived from the patient row and their latest invitation
(`status_expr` computes it in SQL so lists, counts and filters agree with `portal_status`).
Pending invitations past their expiry count as expired at once (lazily, by comparing
`expires_at`); the `expire_invitations` job also marks them, audited, for the record.

An invitation goes by email when the patient has an email address and agreed to email, else by
text message when they have a mobile number and agreed to texts (`channel_for`). The invitation
row keeps the address it went to (its `email` column holds the number for a text: an email
address always has an "@", a phone number never; `channel_of`).

A text never reaches a landline: the record refuses text consent on one
(core.patients.records.check_texts), and an old or imported record that has it anyway is not
invited by text. Each record says whether its phone is a landline for the practice
(`Patient.phone_landline`, kept by core.patients.landlines), so a landline is no mobile in SQL
as in Python: such a record counts and lists as one without a mobile (`has_mobile`), and its
advice and a send's refusal name the number and what to add (`landline_held`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from core.kernel import audit, tokens
from core.kernel.authz import SYSTEM, Actor, Permission, ensure, patient_actor
from core.kernel.clock import to_local
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.locks import setting_row
from core.kernel.money import clinic_format, format_day
from core.kernel.phones import not_for_texts
from core.messaging import notify
from db.models import (
    Appointment,
    Channel,
    Clinic,
    DeliveryStatus,
    InvitationStatus,
    LinkToken,
    Notification,
    Patient,
    PortalInvitation,
    PortalSession,
    Setting,
)
from db.types import utcnow

EXPIRY_SETTING = "invitation_expiry_days"


DEFAULT_EXPIRY_DAYS = 14


MAX_EXPIRY_DAYS = 90


PAGE_SIZE = 50


class PortalStatus(enum.StrEnum):
    NO_CONTACT = "no_contact"  # neither an email address nor a mobile number
    OPTED_OUT = "opted_out"  # an address or number, but no consent to be contacted on it
    NOT_INVITED = "not_invited"
    INVITED = "invited"
    ENROLLED = "enrolled"
    EXPIRED = "expired"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS = {
    PortalStatus.NO_CONTACT: "No email or mobile",
    PortalStatus.OPTED_OUT: "Opted out",
    PortalStatus.NOT_INVITED: "Not invited",
    PortalStatus.INVITED: "Invited",
    PortalStatus.ENROLLED: "Enrolled",
    PortalStatus.EXPIRED: "Expired",
    PortalStatus.REVOKED: "Revoked",
}


# what a status means for the desk, and what to do next
ADVICE = {
    PortalStatus.NO_CONTACT: "The patient has no email address or mobile number: add one to "
    "the record first.",
    PortalStatus.OPTED_OUT: "The patient has agreed neither to email nor to text messages on "
    "the address or number on file: record their consent first.",
    PortalStatus.NOT_INVITED: "Not invited yet.",
    PortalStatus.INVITED: "Invitation sent; waiting for the patient to enrol.",
    PortalStatus.ENROLLED: "Enrolled in the patient portal.",
    PortalStatus.EXPIRED: "The invitation expired before the patient enrolled: renew it.",
    PortalStatus.REVOKED: "The invitation was revoked: send a new one if appropriate.",
}


SENDABLE = (PortalStatus.NOT_INVITED, PortalStatus.EXPIRED, PortalStatus.REVOKED)
REPLACED = "Replaced by a new invitation"  # why a resend revoked the earlier invitation
# a resend to the same address this soon is a second press (a double click, two desks, a bulk
# list read before the patient was invited by hand): it would send a second message and kill
# the link in the first, the one the patient opens
RESEND_GAP = timedelta(minutes=2)


# enrolling asks the patient for their date of birth (core.portal.patient_links.enroll): a
# record without one could never enrol, so it is not invited until the desk adds it
NO_BIRTH = (
    "The patient has no date of birth on file, and enrolling asks them to confirm it: "
    "add it to the patient's record first."
)


def get_expiry_days(session: Session) -> int:
    row = session.get(Setting, EXPIRY_SETTING)
    value = (row.value or {}).get("days") if row else None
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_EXPIRY_DAYS


def set_expiry_days(session: Session, actor: Actor, days: int) -> None:
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    if not isinstance(days, int) or not 1 <= days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"Invitations must expire after 1 to {MAX_EXPIRY_DAYS} days.")
    row = setting_row(session, EXPIRY_SETTING)
    before = (row.value or {}).get("days")
    row.value, row.updated_by_user_id = {"days": days}, actor.user_id
    session.add(row)
    audit.record(
        session,
        actor,
        "setting_changed",
        "setting",
        None,
        details={"key": EXPIRY_SETTING, "from": before, "to": days},
    )


def has_mobile(patient: Patient) -> bool:
    """Whether the patient has a number a text reaches: one on file that is no landline."""
    return bool(patient.phone) and not patient.phone_landline


def channel_for(patient: Patient) -> Channel | None:
    """The channel an invitation goes by: email when the patient has an address and agreed to
    email, else a text message when they have a mobile and agreed to texts; None for neither."""
    if patient.email and patient.consent_email:
        return Channel.EMAIL
    if has_mobile(patient) and patient.consent_sms:
        return Channel.SMS
    return None


def channel_of(address: str) -> Channel:
    """The channel an invitation went by, read from the address it went to."""
    return Channel.EMAIL if "@" in address else Channel.SMS


def address_on(patient: Patient, channel: Channel) -> str:
    return (patient.email if channel == Channel.EMAIL else patient.phone) or ""


def _has(column) -> ColumnElement[bool]:
    return func.coalesce(column, "") != ""


def mobile_expr() -> ColumnElement[bool]:
    """SQL of `has_mobile(Patient)` (never NULL)."""
    return and_(_has(Patient.phone), Patient.phone_landline.is_(False))


def reachable_expr() -> ColumnElement[bool]:
    """SQL of `channel_for(Patient) is not None` (never NULL: NOT of it is safe in a CASE)."""
    return or_(
        and_(_has(Patient.email), Patient.consent_email.is_(True)),
        and_(mobile_expr(), Patient.consent_sms.is_(True)),
    )


def latest_invitation():
    latest = (
        select(PortalInvitation.patient_id, func.max(PortalInvitation.id).label("invitation_id"))
        .group_by(PortalInvitation.patient_id)
        .subquery("latest")
    )
    return latest, aliased(PortalInvitation, name="inv")


def status_expr(inv, now: datetime) -> ColumnElement[str]:
    """The portal status of `Patient` joined (outer) to its latest invitation `inv`."""
    return case(
        (Patient.portal_enrolled_at.is_not(None), literal(PortalStatus.ENROLLED.value)),
        (
            and_(~_has(Patient.email), ~mobile_expr()),
            literal(PortalStatus.NO_CONTACT.value),
        ),
        (~reachable_expr(), literal(PortalStatus.OPTED_OUT.value)),
        (inv.id.is_(None), literal(PortalStatus.NOT_INVITED.value)),
        (
            and_(inv.status == InvitationStatus.PENDING, inv.expires_at > now),
            literal(PortalStatus.INVITED.value),
        ),
        (inv.status == InvitationStatus.REVOKED, literal(PortalStatus.REVOKED.value)),
        (inv.status == InvitationStatus.ENROLLED, literal(PortalStatus.ENROLLED.value)),
        else_=literal(PortalStatus.EXPIRED.value),
    )


@dataclass(frozen=True)
class PortalState:
    status: PortalStatus
    invitation_id: int | None
    sent_at: datetime | None
    expires_at: datetime | None
    enrolled_at: datetime | None
    expires_on: str = ""  # the expiry day in the patient's clinic's zone and locale
    held: str = ""  # why an invitation cannot be sent or used yet (a landline, NO_BIRTH), else ""

    @property
    def label(self) -> str:
        if self.status == PortalStatus.INVITED and self.expires_on:
            return f"Invited (expires {self.expires_on})"
        return self.status.label

    @property
    def advice(self) -> str:
        return self.held or ADVICE[self.status]

    @property
    def can_send(self) -> bool:
        return self.status in (*SENDABLE, PortalStatus.INVITED) and not self.held


def landline_held(patient: Patient) -> str:
    """Why an invitation cannot go by text to the number the patient agreed to texts on, a
    landline, when nothing else reaches them (`channel_for`), else ""."""
    if not (patient.phone and patient.phone_landline and patient.consent_sms) or channel_for(
        patient
    ):
        return ""
    return (
        f"{patient.full_name}'s number {not_for_texts(patient.phone)}; add a mobile number or "
        "an email address on the patient's record, then invite them."
    )


def state_of(session: Session, patient: Patient, now: datetime | None = None) -> PortalState:
    """The portal state of one patient (no permission check: callers check their own)."""
    now = now or utcnow()
    inv = session.scalar(
        select(PortalInvitation)
        .where(PortalInvitation.patient_id == patient.id)
        .order_by(PortalInvitation.id.desc())
        .limit(1)
    )
    if patient.portal_enrolled_at is not None:
        status = PortalStatus.ENROLLED
    elif not patient.email and not has_mobile(patient):
        status = PortalStatus.NO_CONTACT
    elif channel_for(patient) is None:
        status = PortalStatus.OPTED_OUT
    elif inv is None:
        status = PortalStatus.NOT_INVITED
    elif inv.status == InvitationStatus.PENDING and inv.expires_at > now:
        status = PortalStatus.INVITED
    elif inv.status == InvitationStatus.REVOKED:
        status = PortalStatus.REVOKED
    elif inv.status == InvitationStatus.ENROLLED:
        status = PortalStatus.ENROLLED
    else:
        status = PortalStatus.EXPIRED
    return PortalState(
        status,
        inv.id if inv else None,
        inv.sent_at if inv else None,
        inv.expires_at if inv else None,
        patient.portal_enrolled_at or (inv.enrolled_at if inv else None),
        clinic_day(session, patient.id, inv.expires_at) if status == PortalStatus.INVITED else "",
        _held(patient) if status != PortalStatus.ENROLLED else "",
    )


def _held(patient: Patient) -> str:
    """The landline's word for any status short of enrolled (with no other channel the record
    counts as one without a mobile, or opted out); a missing birth date's for one to send."""
    return landline_held(patient) or (
        NO_BIRTH if patient.date_of_birth is None and channel_for(patient) else ""
    )


def clinic_day(session: Session, patient_id: int, moment: datetime) -> str:
    """The day of `moment` (an invitation's expiry, an enrolment) in the patient's clinic's
    zone and locale."""
    local = clinic_for(session, patient_id) or clinic_format(session)
    return format_day(to_local(moment, local.timezone).date(), local.locale)


def get_portal_state(session: Session, actor: Actor, patient_id: int) -> PortalState:
    ensure(actor, Permission.PATIENTS_READ)
    return state_of(session, _patient(session, patient_id))


@dataclass(frozen=True)
class InvitationSent:
    invitation_id: int
    patient_id: int
    address: str  # the email address or mobile number it went to (channel_of)
    link: str
    expires_at: datetime
    replaced: int  # how many earlier pending invitations this one revoked
    queued: bool  # whether a message was queued (False for a desk QR only)
    patient_name: str = ""

    @property
    def channel(self) -> Channel:
        return channel_of(self.address)

    @property
    def sent_to(self) -> str:
        """Where it went, in words for the screen: "text message to 07700 900123"."""
        return f"{notify.CHANNEL_WORDS[self.channel]} to {self.address}"


def _patient(session: Session, patient_id: int, *, lock: bool = False) -> Patient:
    patient = session.get(Patient, patient_id, with_for_update=lock)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    return patient


def check_invitable(patient: Patient) -> None:
    """Raise ValidationError saying exactly why `patient` cannot be invited and what to do."""
    if patient.merged_into_id is not None:  # as core.patients.merge.refuse_merged says it
        raise ValidationError(
            f"{patient.full_name} (#{patient.id}) was merged into record "
            f"#{patient.merged_into_id}. Open #{patient.merged_into_id} to invite them."
        )
    if patient.portal_enrolled_at is not None:
        raise ValidationError(
            f"{patient.full_name} is already enrolled in the portal: no invitation is needed."
        )
    if held := landline_held(patient):
        raise ValidationError(held)
    if channel_for(patient) is None:
        missing = [
            "no email address"
            if not patient.email
            else "no consent to email"
            if not patient.consent_email
            else "",
            "no mobile number"
            if not has_mobile(patient)
            else "no consent to text messages"
            if not patient.consent_sms
            else "",
        ]
        raise ValidationError(
            f"{patient.full_name} has no email or mobile they agreed to be contacted on "
            f"({'; '.join(missing)}): add one on the patient's record, or record their "
            "consent there, then invite them."
        )
    if patient.date_of_birth is None:
        raise ValidationError(
            f"{patient.full_name} has no date of birth on file, and enrolling asks them to "
            "confirm it: add it to the patient's record first, then invite them."
        )


def clinic_for(session: Session, patient_id: int) -> Clinic | None:
    """The clinic the patient most likely knows: their latest appointment's, else the first."""
    clinic_id = session.scalar(
        select(Appointment.clinic_id)
        .where(Appointment.patient_id == patient_id)
        .order_by(Appointment.created_at.desc(), Appointment.id.desc())
        .limit(1)
    )
    if clinic_id is not None:
        return session.get(Clinic, clinic_id)
    return session.scalar(select(Clinic).order_by(Clinic.id).limit(1))


def _pending(session: Session, patient_id: int) -> list[PortalInvitation]:
    return list(
        session.scalars(
            select(PortalInvitation)
            .where(
                PortalInvitation.patient_id == patient_id,
                PortalInvitation.status == InvitationStatus.PENDING,
            )
            .with_for_update()  # a desk revoking one of them at once: one revocation each
            .execution_options(populate_existing=True)
        )
    )


def _revoke_pending(
    session: Session, actor: Actor, patient_id: int, reason: str, now: datetime
) -> int:
    pending = _pending(session, patient_id)
    for inv in pending:
        _revoke(session, actor, inv, reason, now)
    return len(pending)


def _revoke(
    session: Session, actor: Actor, inv: PortalInvitation, reason: str, now: datetime
) -> None:
    """A pending invitation revoked: its link no longer works, and the audit log says why."""
    inv.status, inv.revoked_at, inv.revoked_reason = InvitationStatus.REVOKED, now, reason
    if inv.token_id:
        tokens.revoke(session, inv.token_id)
    # its email, if it has not gone out yet, would carry a dead link (a pending invitation is
    # the patient's only one: any invitation email still waiting is this one's or older)
    notify.withdraw_patient_unsent(
        session,
        inv.patient_id,
        "portal_invitation",
        f"Not sent: the invitation was revoked ({reason}).",
    )
    audit.record(
        session,
        actor,
        "invitation_revoked",
        "invitation",
        inv.id,
        patient_id=inv.patient_id,
        from_status=InvitationStatus.PENDING.value,
        to_status=InvitationStatus.REVOKED.value,
        reason=reason,
    )


def send_invitation(
    session: Session,
    actor: Actor,
    patient_id: int,
    *,
    base_url: str,
    expiry_days: int | None = None,
    email: bool = True,
) -> InvitationSent:
    """Invite a patient to the portal (or resend/renew: the earlier link is revoked), by email
    or else by text message (`channel_for`). With `email=False` no message is queued: the desk
    prints the link as a QR code instead."""
    ensure(actor, Permission.INVITATIONS_SEND)
    patient = _patient(session, patient_id, lock=True)
    check_invitable(patient)
    channel = channel_for(patient)
    address = address_on(patient, channel)
    days = expiry_days if expiry_days is not None else get_expiry_days(session)
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"Invitations must expire after 1 to {MAX_EXPIRY_DAYS} days.")
    now = utcnow()
    if email:
        _refuse_second_press(session, patient.id, channel, address, now)
    previous = state_of(session, patient, now)
    replaced = _revoke_pending(session, actor, patient.id, REPLACED, now)
    issued = tokens.issue(session, "enroll", patient.id, timedelta(days=days))
    invitation = PortalInvitation(
        patient_id=patient.id,
        email=address,  # the address or number it went to (channel_of)
        status=InvitationStatus.PENDING,
        token_id=issued.row.id,
        sent_at=now,
        expires_at=issued.row.expires_at,
        created_by_user_id=actor.user_id,
    )
    session.add(invitation)
    session.flush()
    url = tokens.link(base_url.rstrip("/"), "enroll", issued.raw)
    queued = False
    if email:
        clinic = clinic_for(session, patient.id)
        result = notify.queue_for_patient(
            session,
            patient,
            "portal_invitation",
            {
                "first_name": patient.first_name or patient.last_name,  # a family's phone
                "clinic_name": clinic.name if clinic else "",
                "clinic_phone": clinic.phone if clinic else "",
                "link": url,
                "expires": clinic_day(session, patient.id, invitation.expires_at),
            },
            channels=[channel],
        )
        queued = bool(result.notifications)
    action = {
        PortalStatus.EXPIRED: "invitation_renewed",
        PortalStatus.INVITED: "invitation_resent",
        PortalStatus.REVOKED: "invitation_resent",
    }.get(previous.status, "invitation_sent")
    audit.record(
        session,
        actor,
        action,
        "invitation",
        invitation.id,
        patient_id=patient.id,
        from_status=previous.status.value,
        to_status=PortalStatus.INVITED.value,
        details={
            "expires_at": invitation.expires_at.isoformat(),
            "channel": channel.value,
            "message_queued": queued,
            "replaced": replaced,
        },
    )
    return InvitationSent(
        invitation.id,
        patient.id,
        address,
        url,
        invitation.expires_at,
        replaced,
        queued,
        patient.full_name,
    )


def _refuse_second_press(
    session: Session, patient_id: int, channel: Channel, address: str, now: datetime
) -> None:
    """Refuse a resend to `address` while the pending invitation's message went there less than
    RESEND_GAP ago (one failed may be sent again at once, and one whose invitation a QR printed
    at the desk replaced has a dead link). Called under the patient's row lock, so two desks at
    once are weighed one after the other."""
    since = session.scalar(
        select(Notification.created_at)
        .join(
            PortalInvitation,
            and_(
                PortalInvitation.patient_id == Notification.patient_id,
                PortalInvitation.status == InvitationStatus.PENDING,
                PortalInvitation.email == address,
                Notification.created_at >= PortalInvitation.sent_at,  # its message, not older
            ),
        )
        .where(
            Notification.patient_id == patient_id,
            Notification.template == "portal_invitation",
            Notification.to_address == address,
            Notification.status != DeliveryStatus.FAILED,
            Notification.created_at > now - RESEND_GAP,
        )
        .order_by(Notification.created_at.desc())
        .limit(1)
    )
    if since is None:
        return
    seconds = max(1, int((now - since).total_seconds()))
    how = "emailed" if channel == Channel.EMAIL else "texted"
    minutes = int(RESEND_GAP.total_seconds() // 60)
    raise Conflict(
        f"An invitation was {how} to {address} {seconds} s ago: this press sent no second one, "
        f"and the link in it still works. If it has not arrived after {minutes} minutes, "
        "resend it then, or print the QR for the desk."
    )


def revoke_invitation(session: Session, actor: Actor, invitation_id: int, reason: str = "") -> None:
    ensure(actor, Permission.INVITATIONS_SEND)
    # locked and read afresh: a second desk revoking it at once waits, then finds it revoked
    inv = session.get(PortalInvitation, invitation_id, with_for_update=True, populate_existing=True)
    if inv is None:
        raise NotFound(f"There is no invitation #{invitation_id}.")
    if inv.status != InvitationStatus.PENDING:
        raise ValidationError(
            f"This invitation is {inv.status.value} already; only a pending one can be revoked."
        )
    _revoke(session, actor, inv, reason.strip()[:200] or "Revoked by the practice", utcnow())


@dataclass(frozen=True)
class BulkRow:
    """One row of a bulk invite or revoke: done, or skipped with the reason."""

    patient_id: int
    patient: str
    done: bool
    detail: str


def send_many(
    session: Session,
    actor: Actor,
    patient_ids: list[int],
    *,
    base_url: str,
    progress: Callable[[int, int], None] | None = None,
) -> list[BulkRow]:
    """Invite each patient in a savepoint of its own, each by the channel they have and agreed
    to (email, else text message), so a refusal for one (no email or mobile, no consent…) is
    kept as that row's reason and does not undo the others."""
    ensure(actor, Permission.INVITATIONS_SEND)
    rows = []
    for number, patient_id in enumerate(patient_ids, start=1):
        try:
            with session.begin_nested():
                sent = send_invitation(session, actor, patient_id, base_url=base_url)
            rows.append(BulkRow(patient_id, sent.patient_name, True, sent.sent_to))
        except (ValidationError, NotFound, Conflict) as error:
            rows.append(BulkRow(patient_id, f"#{patient_id}", False, str(error)))
        if progress:
            progress(number, len(patient_ids))
    return rows


def revoke_many(
    session: Session, actor: Actor, invitation_ids: list[int], reason: str
) -> list[BulkRow]:
    """Revoke each pending invitation in a savepoint of its own; the others are kept."""
    ensure(actor, Permission.INVITATIONS_SEND)
    rows = []
    for invitation_id in invitation_ids:
        invitation = session.get(PortalInvitation, invitation_id)
        patient = session.get(Patient, invitation.patient_id) if invitation else None
        name = patient.full_name if patient else f"invitation #{invitation_id}"
        try:
            with session.begin_nested():
                revoke_invitation(session, actor, invitation_id, reason)
            rows.append(BulkRow(patient.id if patient else 0, name, True, "revoked"))
        except (ValidationError, NotFound) as error:
            rows.append(BulkRow(patient.id if patient else 0, name, False, str(error)))
    return rows


def end_portal_access(
    session: Session, patient_id: int, purposes: tuple[str, ...] = ("portal",)
) -> tuple[int, int]:
    """End the patient's open portal sessions and stop their unused links of `purposes` (the
    portal's sign-in links; a merge also its enrolment links): (sessions ended, links stopped)."""
    now = utcnow()
    ended = session.execute(
        update(PortalSession)
        .where(PortalSession.patient_id == patient_id, PortalSession.ended_at.is_(None))
        .values(ended_at=now)
    ).rowcount
    stopped = session.execute(
        update(LinkToken)
        .where(
            LinkToken.purpose.in_(purposes),
            LinkToken.subject_id == patient_id,
            LinkToken.used_at.is_(None),
            LinkToken.revoked_at.is_(None),
            LinkToken.expires_at > now,
        )
        .values(revoked_at=now)
    ).rowcount
    return ended, stopped


def revoke_pending_for_patient(session: Session, actor: Actor, patient_id: int, reason: str) -> int:
    """Revoke the patient's pending invitations (e.g. their email address changed)."""
    ensure(actor, Permission.PATIENTS_EDIT)
    return _revoke_pending(session, actor, patient_id, reason, utcnow())


def revoke_for_contact_change(
    session: Session, actor: Actor, patient: Patient, changed: list[str]
) -> int:
    """Revoke the patient's pending invitation when the address or number it went to changed,
    or consent to its channel was withdrawn (`changed`: the fields just saved): its link may
    be in a stranger's hands, or the patient no longer wants that channel. An invitation that
    went by the other channel stays."""
    ensure(actor, Permission.PATIENTS_EDIT)
    return _revoke_for_changes(session, actor, patient, changed)


def revoke_for_opt_out(session: Session, patient: Patient, channel: Channel, *, via: str) -> int:
    """The patient withdrew their consent to `channel` themselves (a STOP reply, `via` "text
    message"): their pending invitation by it is revoked by the rule a staff edit follows
    (`revoke_for_contact_change`), audited as their own act. Nothing when consent stands."""
    consent = "consent_email" if channel == Channel.EMAIL else "consent_sms"
    actor = patient_actor(patient.first_name, via=via)
    return _revoke_for_changes(session, actor, patient, [consent])


def _revoke_for_changes(
    session: Session, actor: Actor, patient: Patient, changed: list[str]
) -> int:
    """The rule of `revoke_for_contact_change`, for a caller that checked who may act."""
    reasons = {}
    for channel, address, consent, word, agreed in (
        (Channel.EMAIL, "email", "consent_email", "Email address", "email"),
        (Channel.SMS, "phone", "consent_sms", "Mobile number", "text messages"),
    ):
        if address in changed:
            reasons[channel] = f"{word} changed"
        elif consent in changed and not getattr(patient, consent):
            reasons[channel] = f"Consent to {agreed} withdrawn"
    now, revoked = utcnow(), 0
    for inv in _pending(session, patient.id) if reasons else []:
        if reason := reasons.get(channel_of(inv.email)):
            _revoke(session, actor, inv, reason, now)
            revoked += 1
    return revoked


def expire_due(session: Session, now: datetime | None = None, limit: int = 500) -> int:
    """Mark pending invitations past their expiry as expired (audited as the system)."""
    now = now or utcnow()
    due = list(
        session.scalars(
            select(PortalInvitation)
            .where(
                PortalInvitation.status == InvitationStatus.PENDING,
                PortalInvitation.expires_at <= now,
            )
            .order_by(PortalInvitation.id)
            .limit(limit)
        )
    )
    for inv in due:
        done = session.execute(
            update(PortalInvitation)
            .where(
                PortalInvitation.id == inv.id, PortalInvitation.status == InvitationStatus.PENDING
            )
            .values(status=InvitationStatus.EXPIRED)
        )
        if done.rowcount == 1:
            audit.record(
                session,
                SYSTEM,
                "invitation_expired",
                "invitation",
                inv.id,
                patient_id=inv.patient_id,
                from_status="pending",
                to_status="expired",
            )
    session.expire_all()
    return len(due)


def enrolment_target(session: Session, token_id: int) -> PortalInvitation | None:
    return session.scalar(select(PortalInvitation).where(PortalInvitation.token_id == token_id))


def mark_enrolled(
    session: Session, actor: Actor, invitation: PortalInvitation, now: datetime
) -> None:
    """Record the enrolment (the caller verified the token and the patient's identity)."""
    patient = _patient(session, invitation.patient_id)
    invitation.status, invitation.enrolled_at = InvitationStatus.ENROLLED, now
    patient.portal_enrolled_at = now
    audit.record(
        session,
        actor,
        "invitation_enrolled",
        "invitation",
        invitation.id,
        patient_id=patient.id,
        from_status=PortalStatus.INVITED.value,
        to_status=PortalStatus.ENROLLED.value,
    )


def expire_job(database, settings) -> None:
    """Periodic job (core.jobs.JOBS): mark invitations past their expiry as expired."""
    with database.write() as session:
        expire_due(session)
