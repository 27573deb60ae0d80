"""Portal enrolment at a glance: each patient's invitation status in a list, counts, history, the
enrolment funnel and the bulk-invite preview."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.text import plain_words
from core.messaging.notify import CHANNEL_WORDS
from core.patients.invitations import (
    PAGE_SIZE,
    PortalStatus,
    channel_of,
    latest_invitation,
    reachable_expr,
    status_expr,
)
from core.patients.search import numbers_joined, phone_like
from db.models import (
    Appointment,
    AppointmentStatus,
    InvitationStatus,
    Patient,
    PatientPortalTally,
    PortalInvitation,
    User,
)
from db.triggers import BUCKETS, CONSENTED, ENROLLED, HAS_EMAIL, HAS_PHONE, SMS_CONSENTED
from db.types import utcnow


def channel_words(address: str | None) -> str:
    """The channel an invitation went by, in words for the screen ("" for none)."""
    return CHANNEL_WORDS[channel_of(address)].capitalize() if address else ""


@dataclass(frozen=True)
class InvitationRow:
    patient_id: int
    name: str
    sent_to: str | None  # the latest invitation's email address or mobile number
    status: PortalStatus
    invitation_id: int | None
    sent_at: datetime | None
    expires_at: datetime | None
    enrolled_at: datetime | None

    @property
    def channel(self) -> str:
        return channel_words(self.sent_to)


def _now_param():
    """The `now` of the status expression as a parameter: statements built once per process
    (they are the same on every page load) and executed with {"now": now}."""
    return bindparam("now", type_=PortalInvitation.__table__.c.expires_at.type)


@functools.cache
def _list_base():
    latest, inv = latest_invitation()
    status = status_expr(inv, _now_param()).label("portal_status")
    query = (
        select(
            Patient.id,
            Patient.first_name,
            Patient.last_name,
            inv.email,
            status,
            inv.id,
            inv.sent_at,
            inv.expires_at,
            func.coalesce(Patient.portal_enrolled_at, inv.enrolled_at),
        )
        .select_from(Patient)
        .outerjoin(latest, latest.c.patient_id == Patient.id)
        .outerjoin(inv, inv.id == latest.c.invitation_id)
        .where(Patient.merged_into_id.is_(None))  # a merged duplicate is not listed
    )
    return query, status


def _filtered(*, clinic_id: int | None, search: str):
    """Patients with their portal status (parameter `now`), filtered by clinic and search."""
    query, status = _list_base()
    if clinic_id is not None:
        query = query.where(
            exists().where(Appointment.patient_id == Patient.id, Appointment.clinic_id == clinic_id)
        )
    # each word in the name or email, or a number typed (as the desk reads a mobile out) in
    # the phone: search_patients' rule
    for word in numbers_joined(search.split()):
        named = [Patient.search_text.contains(w, autoescape=True) for w in plain_words(word)]
        phone = phone_like(word)
        if phone is not None:
            query = query.where(or_(phone, and_(*named)))
        elif named:
            query = query.where(*named)
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
    return [
        InvitationRow(r[0], f"{r[1]} {r[2]}", r[3], PortalStatus(r[4]), r[5], r[6], r[7], r[8])
        for r in rows
    ]


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
    """Patients with an invitation whose status comes from it (not enrolled, and an email or
    mobile they agreed to be contacted on)."""
    latest, inv = latest_invitation()
    return (
        select(status_expr(inv, _now_param()).label("portal_status"), func.count())
        .select_from(latest)
        .join(Patient, Patient.id == latest.c.patient_id)
        .join(inv, inv.id == latest.c.invitation_id)
        .where(Patient.portal_enrolled_at.is_(None), reachable_expr())
        .group_by("portal_status")
    )


@functools.cache
def _merged_statement():
    """The statuses of merged duplicates (few, by their index), which the tally still counts."""
    latest, inv = latest_invitation()
    return (
        select(status_expr(inv, _now_param()).label("portal_status"), func.count())
        .select_from(Patient)
        .outerjoin(latest, latest.c.patient_id == Patient.id)
        .outerjoin(inv, inv.id == latest.c.invitation_id)
        # "> 0", not IS NOT NULL: SQLite then reads the few merged rows by their index, where
        # it scanned every patient (30 ms at 200,000 patients)
        .where(Patient.merged_into_id > 0)
        .group_by("portal_status")
    )


def _all_counts(session: Session, now: datetime) -> dict[PortalStatus, int]:
    """Every patient's status counted without reading the patient table: the patient-only
    statuses from the tally the database keeps per (enrolled, email, consent, mobile, consent
    to texts) bucket (db/triggers.py), the statuses of invited patients from their
    invitations, the rest of the invitable (by email or by text) not invited; less the merged
    duplicates, which are no patients of their own."""
    tally = dict(
        session.execute(select(PatientPortalTally.bucket, PatientPortalTally.patients)).all()
    )
    counts = dict.fromkeys((PortalStatus.ENROLLED, PortalStatus.NO_CONTACT), 0)
    counts[PortalStatus.OPTED_OUT] = invitable = 0
    for b in BUCKETS:
        n = tally.get(b, 0)
        email, phone = b & HAS_EMAIL, b & HAS_PHONE
        if b & ENROLLED:
            counts[PortalStatus.ENROLLED] += n
        elif not email and not phone:
            counts[PortalStatus.NO_CONTACT] += n
        elif (email and b & CONSENTED) or (phone and b & SMS_CONSENTED):  # as channel_for
            invitable += n
        else:
            counts[PortalStatus.OPTED_OUT] += n
    with_invitation = 0
    for status, n in session.execute(_invited_statement(), {"now": now}):
        counts[PortalStatus(status)] = counts.get(PortalStatus(status), 0) + n
        with_invitation += n
    counts[PortalStatus.NOT_INVITED] = invitable - with_invitation
    for status, n in session.execute(_merged_statement(), {"now": now}):
        counts[PortalStatus(status)] -= n
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
    rows = list_invitations(
        session, actor, status=status, clinic_id=clinic_id, search=search, page=page
    )
    counts = status_counts(session, actor, clinic_id=clinic_id, search=search)
    return Overview(rows, counts)


# one invitation's state as the record's history says it (the portal's status words where they
# are the same), not its stored value ('pending')
INVITATION_WORDS = {
    InvitationStatus.PENDING: "Sent, not used yet",
    InvitationStatus.ENROLLED: "Enrolled",
    InvitationStatus.EXPIRED: "Expired",
    InvitationStatus.REVOKED: "Revoked",
}


@dataclass(frozen=True)
class HistoryRow:
    invitation_id: int
    email: str  # the email address or mobile number it went to (invitations.channel_of)
    status: str  # stored (an expired one 'expired' though not marked yet); said in words
    sent_at: datetime
    expires_at: datetime
    enrolled_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    sent_by: str

    @property
    def channel(self) -> str:
        return channel_words(self.email)

    @property
    def said(self) -> str:
        return INVITATION_WORDS[InvitationStatus(self.status)]


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
        result.append(
            HistoryRow(
                inv.id,
                inv.email,
                shown,
                inv.sent_at,
                inv.expires_at,
                inv.enrolled_at,
                inv.revoked_at,
                inv.revoked_reason,
                by or "System",
            )
        )
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
            exists().where(
                Appointment.patient_id == PortalInvitation.patient_id,
                Appointment.clinic_id == clinic_id,
            )
        )
    enrolled_case = case(
        (PortalInvitation.status == InvitationStatus.ENROLLED, PortalInvitation.patient_id)
    )
    pending_case = case(
        (
            and_(
                PortalInvitation.status == InvitationStatus.PENDING,
                PortalInvitation.expires_at > now,
            ),
            PortalInvitation.id,
        )
    )
    invited, enrolled, pending = session.execute(
        select(
            func.count(PortalInvitation.patient_id.distinct()),
            func.count(enrolled_case.distinct()),
            func.count(pending_case),
        ).where(*scope)
    ).one()
    days = _days_between(session, PortalInvitation.sent_at, PortalInvitation.enrolled_at)
    done = (
        PortalInvitation.status == InvitationStatus.ENROLLED,
        PortalInvitation.enrolled_at.is_not(None),
        *scope,
    )
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
    PortalStatus.NO_CONTACT: "no email address or mobile number",
    PortalStatus.OPTED_OUT: "no consent to email or text messages",
    PortalStatus.REVOKED: "invitation revoked (check the record, then resend there)",
}
NO_BIRTH_SKIPPED = "no date of birth on file (add it to the record, then invite)"


def _upcoming_patients(now: datetime, today: date, clinic_id: int | None):
    """Patients with an open appointment ahead: (status, start_at) index ranges, unioned."""
    open_statuses = [
        AppointmentStatus.REQUESTED,
        AppointmentStatus.TENTATIVE,
        AppointmentStatus.SCHEDULED,
    ]
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
    latest, inv = latest_invitation()
    status = status_expr(inv, now).label("portal_status")
    columns = (Patient.id.label("id"), status, Patient.date_of_birth.label("born"))
    base = select(*columns).select_from(Patient)
    if upcoming_only:
        upcoming = _upcoming_patients(now, today or now.date(), clinic_id)
        base = (
            select(*columns)
            .select_from(upcoming)
            .join(Patient, Patient.id == upcoming.c.patient_id)
        )
    base = base.where(Patient.merged_into_id.is_(None))  # a duplicate is invited as its record
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
        counts = dict(
            session.execute(
                select(sub.c.portal_status, func.count()).group_by(sub.c.portal_status)
            ).all()
        )
    eligible = base.subquery("eligible")
    ready = eligible.c.portal_status.in_(sendable)
    ids = list(
        session.scalars(
            select(eligible.c.id)
            .where(ready, eligible.c.born.is_not(None))
            .order_by(eligible.c.id)
            .limit(limit)
        )
    )
    # enrolling asks for the date of birth: a record without one is not invited (check_invitable)
    no_birth = session.scalar(
        select(func.count()).select_from(eligible).where(ready, eligible.c.born.is_(None))
    )
    skipped: dict[str, int] = {}
    for status_value, n in counts.items():
        if status_value in sendable:
            continue
        reason = SKIP_REASONS.get(PortalStatus(status_value), "expired (renewal not chosen)")
        skipped[reason] = skipped.get(reason, 0) + n
    if no_birth:
        skipped[NO_BIRTH_SKIPPED] = no_birth
    over = sum(counts.get(s, 0) for s in sendable) - no_birth - len(ids)
    if over > 0:
        skipped[f"over the limit of {limit} per run"] = over
    return BulkPreview(ids, skipped)
