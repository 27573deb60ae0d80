"""Patient-portal invitations: send, resend, revoke, expire, enrol, and the enrolment funnel.

Each patient has one portal status, derived from the patient row and their latest invitation
(`status_expr` computes it in SQL so lists, counts and filters agree with `portal_status`).
Pending invitations past their expiry count as expired at once (lazily, by comparing
`expires_at`); the `expire_invitations` job also marks them, audited, for the record.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session, aliased

from core import audit, tokens
from core.authz import SYSTEM, Actor, Permission, ensure
from core.errors import NotFound, ValidationError
from db.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    InvitationStatus,
    Patient,
    PatientPortalTally,
    PortalInvitation,
    Setting,
    User,
)
from db.triggers import ENROLLED, bucket
from db.types import utcnow

EXPIRY_SETTING = "invitation_expiry_days"
DEFAULT_EXPIRY_DAYS = 14
MAX_EXPIRY_DAYS = 90
PAGE_SIZE = 50


class PortalStatus(enum.StrEnum):
    NO_EMAIL = "no_email"
    OPTED_OUT = "opted_out"
    NOT_INVITED = "not_invited"
    INVITED = "invited"
    ENROLLED = "enrolled"
    EXPIRED = "expired"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS = {
    PortalStatus.NO_EMAIL: "No email",
    PortalStatus.OPTED_OUT: "Opted out",
    PortalStatus.NOT_INVITED: "Not invited",
    PortalStatus.INVITED: "Invited",
    PortalStatus.ENROLLED: "Enrolled",
    PortalStatus.EXPIRED: "Expired",
    PortalStatus.REVOKED: "Revoked",
}
# what a status means for the desk, and what to do next
ADVICE = {
    PortalStatus.NO_EMAIL: "The patient has no email address: add one to the record first.",
    PortalStatus.OPTED_OUT: "The patient has not consented to email and text messages: "
    "record consent first.",
    PortalStatus.NOT_INVITED: "Not invited yet.",
    PortalStatus.INVITED: "Invitation sent; waiting for the patient to enrol.",
    PortalStatus.ENROLLED: "Enrolled in the patient portal.",
    PortalStatus.EXPIRED: "The invitation expired before the patient enrolled: renew it.",
    PortalStatus.REVOKED: "The invitation was revoked: send a new one if appropriate.",
}
SENDABLE = (PortalStatus.NOT_INVITED, PortalStatus.EXPIRED, PortalStatus.REVOKED)


# ---------------------------------------------------------------- settings


def get_expiry_days(session: Session) -> int:
    row = session.get(Setting, EXPIRY_SETTING)
    value = (row.value or {}).get("days") if row else None
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_EXPIRY_DAYS


def set_expiry_days(session: Session, actor: Actor, days: int) -> None:
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    if not isinstance(days, int) or not 1 <= days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"Invitations must expire after 1 to {MAX_EXPIRY_DAYS} days.")
    row = session.get(Setting, EXPIRY_SETTING) or Setting(key=EXPIRY_SETTING)
    before = (row.value or {}).get("days")
    row.value, row.updated_by_user_id = {"days": days}, actor.user_id
    session.add(row)
    audit.record(session, actor, "setting_changed", "setting", None,
                 details={"key": EXPIRY_SETTING, "from": before, "to": days})  # fmt: skip


# ---------------------------------------------------------------- status


def _latest_invitation():
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
        (or_(Patient.email.is_(None), Patient.email == ""), literal(PortalStatus.NO_EMAIL.value)),
        (Patient.consent_email.is_(False), literal(PortalStatus.OPTED_OUT.value)),
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

    @property
    def label(self) -> str:
        if self.status == PortalStatus.INVITED and self.expires_at:
            return f"Invited (expires {self.expires_at:%d %b %Y})"
        return self.status.label

    @property
    def advice(self) -> str:
        return ADVICE[self.status]

    @property
    def can_send(self) -> bool:
        return self.status in (*SENDABLE, PortalStatus.INVITED)


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
    elif not patient.email:
        status = PortalStatus.NO_EMAIL
    elif not patient.consent_email:
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
    )


def get_portal_state(session: Session, actor: Actor, patient_id: int) -> PortalState:
    ensure(actor, Permission.PATIENTS_READ)
    return state_of(session, _patient(session, patient_id))


# ---------------------------------------------------------------- sending


@dataclass(frozen=True)
class InvitationSent:
    invitation_id: int
    patient_id: int
    email: str
    link: str
    expires_at: datetime
    replaced: int  # how many earlier pending invitations this one revoked
    queued: bool  # whether an email was queued (False for a desk QR only)
    patient_name: str = ""


def _patient(session: Session, patient_id: int, *, lock: bool = False) -> Patient:
    patient = session.get(Patient, patient_id, with_for_update=lock)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    return patient


def check_invitable(patient: Patient) -> None:
    """Raise ValidationError saying exactly why `patient` cannot be invited and what to do."""
    if patient.portal_enrolled_at is not None:
        raise ValidationError(
            f"{patient.full_name} is already enrolled in the portal: no invitation is needed."
        )
    if not patient.email:
        raise ValidationError(
            "The patient has no email address: add one to the patient's record first."
        )
    if not patient.consent_email:
        raise ValidationError(
            "The patient has not consented to email and text messages: record consent first."
        )


def _clinic_for(session: Session, patient_id: int) -> Clinic | None:
    """The clinic the patient is most likely to know: of their latest appointment, else the first."""
    clinic_id = session.scalar(
        select(Appointment.clinic_id)
        .where(Appointment.patient_id == patient_id)
        .order_by(Appointment.created_at.desc(), Appointment.id.desc())
        .limit(1)
    )
    if clinic_id is not None:
        return session.get(Clinic, clinic_id)
    return session.scalar(select(Clinic).order_by(Clinic.id).limit(1))


def _revoke_pending(
    session: Session, actor: Actor, patient_id: int, reason: str, now: datetime
) -> int:
    pending = list(
        session.scalars(
            select(PortalInvitation).where(
                PortalInvitation.patient_id == patient_id,
                PortalInvitation.status == InvitationStatus.PENDING,
            )
        )
    )
    for inv in pending:
        inv.status, inv.revoked_at, inv.revoked_reason = InvitationStatus.REVOKED, now, reason
        if inv.token_id:
            tokens.revoke(session, inv.token_id)
        audit.record(session, actor, "invitation_revoked", "invitation", inv.id,
                     patient_id=patient_id, from_status=InvitationStatus.PENDING.value,
                     to_status=InvitationStatus.REVOKED.value, reason=reason)  # fmt: skip
    return len(pending)


def send_invitation(
    session: Session,
    actor: Actor,
    patient_id: int,
    *,
    base_url: str,
    expiry_days: int | None = None,
    email: bool = True,
) -> InvitationSent:
    """Invite a patient to the portal (or resend/renew: the earlier link is revoked).
    With `email=False` no message is queued: the desk prints the link as a QR code instead."""
    ensure(actor, Permission.INVITATIONS_SEND)
    patient = _patient(session, patient_id, lock=True)
    check_invitable(patient)
    days = expiry_days if expiry_days is not None else get_expiry_days(session)
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"Invitations must expire after 1 to {MAX_EXPIRY_DAYS} days.")
    now = utcnow()
    previous = state_of(session, patient, now)
    replaced = _revoke_pending(session, actor, patient.id, "Replaced by a new invitation", now)
    issued = tokens.issue(session, "enroll", patient.id, timedelta(days=days))
    invitation = PortalInvitation(
        patient_id=patient.id, email=patient.email, status=InvitationStatus.PENDING,
        token_id=issued.row.id, sent_at=now, expires_at=issued.row.expires_at,
        created_by_user_id=actor.user_id,
    )  # fmt: skip
    session.add(invitation)
    session.flush()
    url = tokens.link(base_url.rstrip("/"), "enroll", issued.raw)
    queued = False
    if email:
        from core import notify  # local: notify is heavy and only needed when sending

        clinic = _clinic_for(session, patient.id)
        result = notify.queue_for_patient(
            session, patient, "portal_invitation",
            {"clinic_name": clinic.name if clinic else "", "clinic_phone": clinic.phone if clinic else "",
             "link": url, "expires": f"{invitation.expires_at:%a %d %b %Y}"},
            channels=[Channel.EMAIL],
        )  # fmt: skip
        queued = bool(result.notifications)
    action = {PortalStatus.EXPIRED: "invitation_renewed", PortalStatus.INVITED: "invitation_resent",
              PortalStatus.REVOKED: "invitation_resent"}.get(previous.status, "invitation_sent")  # fmt: skip
    audit.record(session, actor, action, "invitation", invitation.id, patient_id=patient.id,
                 from_status=previous.status.value, to_status=PortalStatus.INVITED.value,
                 details={"expires_at": invitation.expires_at.isoformat(), "email_queued": queued,
                          "replaced": replaced})  # fmt: skip
    return InvitationSent(invitation.id, patient.id, patient.email, url, invitation.expires_at,
                          replaced, queued, patient.full_name)  # fmt: skip


def revoke_invitation(session: Session, actor: Actor, invitation_id: int, reason: str = "") -> None:
    ensure(actor, Permission.INVITATIONS_SEND)
    inv = session.get(PortalInvitation, invitation_id)
    if inv is None:
        raise NotFound(f"There is no invitation #{invitation_id}.")
    if inv.status != InvitationStatus.PENDING:
        raise ValidationError(
            f"This invitation is {inv.status.value} already; only a pending one can be revoked."
        )
    now = utcnow()
    inv.status, inv.revoked_at = InvitationStatus.REVOKED, now
    inv.revoked_reason = reason.strip()[:200] or "Revoked by the practice"
    if inv.token_id:
        tokens.revoke(session, inv.token_id)
    audit.record(session, actor, "invitation_revoked", "invitation", inv.id,
                 patient_id=inv.patient_id, from_status=InvitationStatus.PENDING.value,
                 to_status=InvitationStatus.REVOKED.value, reason=inv.revoked_reason)  # fmt: skip


def revoke_pending_for_patient(session: Session, actor: Actor, patient_id: int, reason: str) -> int:
    """Revoke the patient's pending invitations (e.g. their email address changed)."""
    ensure(actor, Permission.PATIENTS_EDIT)
    return _revoke_pending(session, actor, patient_id, reason, utcnow())


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
            .where(PortalInvitation.id == inv.id,
                   PortalInvitation.status == InvitationStatus.PENDING)
            .values(status=InvitationStatus.EXPIRED)
        )  # fmt: skip
        if done.rowcount == 1:
            audit.record(session, SYSTEM, "invitation_expired", "invitation", inv.id,
                         patient_id=inv.patient_id, from_status="pending", to_status="expired")  # fmt: skip
    session.expire_all()
    return len(due)


# ---------------------------------------------------------------- enrolment (public, by token)


def enrolment_target(session: Session, token_id: int) -> PortalInvitation | None:
    return session.scalar(select(PortalInvitation).where(PortalInvitation.token_id == token_id))


def mark_enrolled(
    session: Session, actor: Actor, invitation: PortalInvitation, now: datetime
) -> None:
    """Record the enrolment (the caller verified the token and the patient's identity)."""
    patient = _patient(session, invitation.patient_id)
    invitation.status, invitation.enrolled_at = InvitationStatus.ENROLLED, now
    patient.portal_enrolled_at = now
    audit.record(session, actor, "invitation_enrolled", "invitation", invitation.id,
                 patient_id=patient.id, from_status=PortalStatus.INVITED.value,
                 to_status=PortalStatus.ENROLLED.value)  # fmt: skip


# ---------------------------------------------------------------- lists, counts, funnel


@dataclass(frozen=True)
class InvitationRow:
    patient_id: int
    name: str
    email: str | None
    status: PortalStatus
    invitation_id: int | None
    sent_at: datetime | None
    expires_at: datetime | None
    enrolled_at: datetime | None


def _now_param():
    """The `now` of the status expression as a parameter: statements built once per process
    (they are the same on every page load) and executed with {"now": now}."""
    return bindparam("now", type_=PortalInvitation.__table__.c.expires_at.type)


@functools.cache
def _list_base():
    latest, inv = _latest_invitation()
    status = status_expr(inv, _now_param()).label("portal_status")
    query = (
        select(Patient.id, Patient.first_name, Patient.last_name, Patient.email, status,
               inv.id, inv.sent_at, inv.expires_at, func.coalesce(Patient.portal_enrolled_at, inv.enrolled_at))
        .select_from(Patient)
        .outerjoin(latest, latest.c.patient_id == Patient.id)
        .outerjoin(inv, inv.id == latest.c.invitation_id)
    )  # fmt: skip
    return query, status


def _filtered(*, clinic_id: int | None, search: str):
    """Patients with their portal status (parameter `now`), filtered by clinic and search."""
    query, status = _list_base()
    if clinic_id is not None:
        query = query.where(
            exists().where(Appointment.patient_id == Patient.id, Appointment.clinic_id == clinic_id)
        )
    for word in search.strip().lower().split():
        like = f"%{word}%"
        query = query.where(or_(func.lower(Patient.first_name).like(like),
                                func.lower(Patient.last_name).like(like),
                                func.lower(Patient.email).like(like)))  # fmt: skip
    return query, status


def list_invitations(
    session: Session,
    actor: Actor,
    *,
    status: str | None = None,
    clinic_id: int | None = None,
    search: str = "",
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> list[InvitationRow]:
    """One row per patient with their portal status, filtered and paginated in SQL."""
    ensure(actor, Permission.INVITATIONS_SEND)
    query, status_col = _filtered(clinic_id=clinic_id, search=search)
    if status:
        query = query.where(status_col == PortalStatus(status).value)
    query = query.order_by(Patient.last_name, Patient.first_name, Patient.id)
    query = query.limit(page_size).offset(page * page_size)
    rows = session.execute(query, {"now": utcnow()}).all()
    return [InvitationRow(r[0], f"{r[1]} {r[2]}", r[3], PortalStatus(r[4]), r[5], r[6], r[7], r[8])
            for r in rows]  # fmt: skip


def status_counts(
    session: Session, actor: Actor, *, clinic_id: int | None = None, search: str = ""
) -> dict[PortalStatus, int]:
    """How many patients have each portal status. Unfiltered, the counts come from the portal
    tally and the (small) invitations table, so they do not grow with the patient table;
    filtered by clinic or search, one grouped query over the matching patients."""
    ensure(actor, Permission.INVITATIONS_SEND)
    counts = dict.fromkeys(PortalStatus, 0)
    if clinic_id is None and not search.strip():
        counts.update(_all_counts(session, utcnow()))
        return counts
    query, status_col = _filtered(clinic_id=clinic_id, search=search)
    sub = query.subquery()
    counted = select(sub.c.portal_status, func.count()).group_by(sub.c.portal_status)
    counts.update({PortalStatus(s): n for s, n in session.execute(counted, {"now": utcnow()})})
    return counts


@functools.cache
def _invited_statement():
    """Patients with an invitation whose status comes from it (not enrolled, email, consent)."""
    latest, inv = _latest_invitation()
    return (
        select(status_expr(inv, _now_param()).label("portal_status"), func.count())
        .select_from(latest)
        .join(Patient, Patient.id == latest.c.patient_id)
        .join(inv, inv.id == latest.c.invitation_id)
        .where(Patient.portal_enrolled_at.is_(None), Patient.consent_email == true(),
               Patient.email > "")
        .group_by("portal_status")
    )  # fmt: skip


def _all_counts(session: Session, now: datetime) -> dict[PortalStatus, int]:
    """Every patient's status counted without reading the patient table: the patient-only
    statuses from the tally the database keeps per (enrolled, email, consent) bucket
    (db/triggers.py), the statuses of invited patients from their invitations, the rest of
    the invitable bucket not invited."""
    tally = dict(
        session.execute(select(PatientPortalTally.bucket, PatientPortalTally.patients)).all()
    )

    def patients(*buckets: int) -> int:
        return sum(tally.get(b, 0) for b in buckets)

    enrolled = [b for b in range(8) if b & ENROLLED]
    counts = {
        PortalStatus.ENROLLED: patients(*enrolled),
        PortalStatus.NO_EMAIL: patients(bucket(False, False, False), bucket(False, False, True)),
        PortalStatus.OPTED_OUT: patients(bucket(False, True, False)),
    }
    with_invitation = 0
    for status, n in session.execute(_invited_statement(), {"now": now}):
        counts[PortalStatus(status)] = counts.get(PortalStatus(status), 0) + n
        with_invitation += n
    counts[PortalStatus.NOT_INVITED] = patients(bucket(False, True, True)) - with_invitation
    return counts


@dataclass(frozen=True)
class Overview:
    rows: list[InvitationRow]
    counts: dict[PortalStatus, int]


def get_overview(
    session: Session,
    actor: Actor,
    *,
    status: str | None = None,
    clinic_id: int | None = None,
    search: str = "",
    page: int = 0,
) -> Overview:
    """What the invitations page shows on arrival, in one session: a page of the list and the
    status counts."""
    ensure(actor, Permission.INVITATIONS_SEND)
    rows = list_invitations(session, actor, status=status, clinic_id=clinic_id, search=search,
                            page=page)  # fmt: skip
    counts = status_counts(session, actor, clinic_id=clinic_id, search=search)
    return Overview(rows, counts)


@dataclass(frozen=True)
class HistoryRow:
    invitation_id: int
    email: str
    status: str
    sent_at: datetime
    expires_at: datetime
    enrolled_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    sent_by: str


def invitation_history(session: Session, actor: Actor, patient_id: int) -> list[HistoryRow]:
    """Every invitation of a patient, newest first (pending past expiry shown as expired)."""
    ensure(actor, Permission.PATIENTS_READ)
    now = utcnow()
    rows = session.execute(
        select(PortalInvitation, User.display_name)
        .outerjoin(User, User.id == PortalInvitation.created_by_user_id)
        .where(PortalInvitation.patient_id == patient_id)
        .order_by(PortalInvitation.id.desc())
        .limit(100)
    ).all()
    result = []
    for inv, by in rows:
        shown = inv.status.value
        if inv.status == InvitationStatus.PENDING and inv.expires_at <= now:
            shown = InvitationStatus.EXPIRED.value
        result.append(HistoryRow(inv.id, inv.email, shown, inv.sent_at, inv.expires_at,
                                 inv.enrolled_at, inv.revoked_at, inv.revoked_reason,
                                 by or "System"))  # fmt: skip
    return result


@dataclass(frozen=True)
class Funnel:
    invited: int  # patients who were ever sent an invitation
    enrolled: int  # of those, patients who enrolled
    pending: int  # invitations still open
    median_days: float | None  # invitation sent → enrolled

    @property
    def rate(self) -> float:
        return self.enrolled / self.invited if self.invited else 0.0


def _days_between(session: Session, start, end):
    if session.bind.dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 86400.0
    return func.julianday(end) - func.julianday(start)


def enrollment_funnel(session: Session, actor: Actor, *, clinic_id: int | None = None) -> Funnel:
    """Invited → enrolled counts, rate and median days to enrol, all computed in SQL."""
    ensure(actor, Permission.INVITATIONS_SEND)
    now = utcnow()
    scope = []
    if clinic_id is not None:
        scope.append(
            exists().where(Appointment.patient_id == PortalInvitation.patient_id,
                           Appointment.clinic_id == clinic_id)
        )  # fmt: skip
    enrolled_case = case((PortalInvitation.status == InvitationStatus.ENROLLED,
                          PortalInvitation.patient_id))  # fmt: skip
    pending_case = case(
        (and_(PortalInvitation.status == InvitationStatus.PENDING,
              PortalInvitation.expires_at > now), PortalInvitation.id)
    )  # fmt: skip
    invited, enrolled, pending = session.execute(
        select(func.count(PortalInvitation.patient_id.distinct()),
               func.count(enrolled_case.distinct()), func.count(pending_case))
        .where(*scope)
    ).one()  # fmt: skip
    days = _days_between(session, PortalInvitation.sent_at, PortalInvitation.enrolled_at)
    done = (PortalInvitation.status == InvitationStatus.ENROLLED,
            PortalInvitation.enrolled_at.is_not(None), *scope)  # fmt: skip
    n = session.scalar(select(func.count()).select_from(PortalInvitation).where(*done)) or 0
    median = None
    if n:
        # the middle value(s) by ORDER BY … OFFSET: portable SQL on SQLite and PostgreSQL
        middle = list(
            session.scalars(
                select(days).where(*done).order_by(days).offset((n - 1) // 2).limit(2 - n % 2)
            )
        )
        median = round(sum(float(v) for v in middle) / len(middle), 1)
    return Funnel(int(invited), int(enrolled), int(pending), median)


# ---------------------------------------------------------------- bulk


@dataclass(frozen=True)
class BulkPreview:
    patient_ids: list[int]  # will be invited
    skipped: dict[str, int]  # reason → how many

    @property
    def to_send(self) -> int:
        return len(self.patient_ids)


SKIP_REASONS = {
    PortalStatus.ENROLLED: "already enrolled",
    PortalStatus.INVITED: "invitation still pending",
    PortalStatus.NO_EMAIL: "no email address",
    PortalStatus.OPTED_OUT: "no consent to email",
    PortalStatus.REVOKED: "invitation revoked (check the record, then resend there)",
}


def _upcoming_patients(now: datetime, today: date, clinic_id: int | None):
    """Patients with an open appointment ahead: (status, start_at) index ranges, unioned."""
    open_statuses = [AppointmentStatus.REQUESTED, AppointmentStatus.TENTATIVE,
                     AppointmentStatus.SCHEDULED]  # fmt: skip
    scope = [Appointment.clinic_id == clinic_id] if clinic_id is not None else []
    booked = select(Appointment.patient_id).where(
        Appointment.status.in_(open_statuses), Appointment.start_at > now, *scope
    )
    requested = select(Appointment.patient_id).where(
        Appointment.status.in_(open_statuses), Appointment.requested_day >= today, *scope
    )
    return booked.union(requested).subquery("upcoming")


def bulk_preview(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int | None = None,
    upcoming_only: bool = True,
    include_expired: bool = True,
    limit: int = 500,
    today: date | None = None,
) -> BulkPreview:
    """Who a bulk invitation would reach (patients not invited yet, and with expired invitations
    when `include_expired`), and how many are skipped for which reason. Set-based SQL: the
    patients with an upcoming appointment (a union of index ranges) joined to their latest
    invitation, counted with one GROUP BY; the first `limit` sendable ids listed."""
    ensure(actor, Permission.INVITATIONS_SEND)
    now = utcnow()
    latest, inv = _latest_invitation()
    status = status_expr(inv, now).label("portal_status")
    base = select(Patient.id.label("id"), status).select_from(Patient)
    if upcoming_only:
        upcoming = _upcoming_patients(now, today or now.date(), clinic_id)
        base = (
            select(Patient.id.label("id"), status)
            .select_from(upcoming)
            .join(Patient, Patient.id == upcoming.c.patient_id)
        )
    base = base.outerjoin(latest, latest.c.patient_id == Patient.id).outerjoin(
        inv, inv.id == latest.c.invitation_id
    )
    if not upcoming_only and clinic_id is not None:
        base = base.where(
            exists().where(Appointment.patient_id == Patient.id, Appointment.clinic_id == clinic_id)
        )
    sendable = [PortalStatus.NOT_INVITED.value]
    if include_expired:
        sendable.append(PortalStatus.EXPIRED.value)
    if not upcoming_only and clinic_id is None:
        counts = {s.value: n for s, n in _all_counts(session, now).items() if n}
    else:
        sub = base.subquery()
        counts = dict(session.execute(
            select(sub.c.portal_status, func.count()).group_by(sub.c.portal_status)
        ).all())  # fmt: skip
    eligible = base.subquery("eligible")
    ids = list(
        session.scalars(
            select(eligible.c.id)
            .where(eligible.c.portal_status.in_(sendable))
            .order_by(eligible.c.id)
            .limit(limit)
        )
    )
    skipped: dict[str, int] = {}
    for status_value, n in counts.items():
        if status_value in sendable:
            continue
        reason = SKIP_REASONS.get(PortalStatus(status_value), "expired (renewal not chosen)")
        skipped[reason] = skipped.get(reason, 0) + n
    over = sum(counts.get(s, 0) for s in sendable) - len(ids)
    if over > 0:
        skipped[f"over the limit of {limit} per run"] = over
    return BulkPreview(ids, skipped)


def clinic_choices(session: Session, actor: Actor) -> list[tuple[int, str]]:
    ensure(actor, Permission.PATIENTS_READ)
    return [tuple(r) for r in session.execute(select(Clinic.id, Clinic.name).order_by(Clinic.name))]


def expire_job(database, settings) -> None:
    """Periodic job (core.jobs.JOBS): mark invitations past their expiry as expired."""
    with database.write() as session:
        expire_due(session)
