"""Merging a duplicate patient record into the record kept (two records of one person, from
imports, the public booking form or older data).

What points at the duplicate is found from the schema: every foreign key to patients.id in the
SQLAlchemy metadata (`references`). Each is moved to the kept record except where `HOW` says
otherwise, and a test fails when a new reference is not in `HOW`, so nothing is left behind.
The duplicate is never deleted: it is marked merged into the kept record, left out of search
and lists, and refused by booking, messages and invitations (`refuse_merged`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Column, Table, and_, func, select, update
from sqlalchemy.orm import Session, aliased

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import clinic_format, clinic_time, format_day
from core.kernel.phones import dialable, e164, practice_regions
from core.kernel.text import clean
from core.messaging import notify
from core.patients import invitations
from core.patients.emails import email_address
from core.payments import points
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Base,
    Channel,
    LedgerEntry,
    LedgerKind,
    OfferStatus,
    Patient,
    SurveyResponse,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from db.types import utcnow

MAX_REASON = 500
# statuses that hold a time (availability.OCCUPYING, which sits above this package)
HOLDING = (AppointmentStatus.TENTATIVE, AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN)
FEE_KINDS = (LedgerKind.LATE_CANCEL_FEE, LedgerKind.NO_SHOW_FEE)
PATIENT_TOKENS = ("enroll", "portal")  # link tokens whose subject is the patient

# every reference to patients.id and what a merge does with it: (words for the preview, how)
MOVE, FEES, STAYS = "move", "fees", "stays"
HOW: dict[tuple[str, str], tuple[str, str]] = {
    ("appointments", "patient_id"): ("appointments", MOVE),
    ("notifications", "patient_id"): ("messages", MOVE),
    ("payments", "patient_id"): ("payments", MOVE),
    # the fees go with their appointments; the points entries stay, so the duplicate's history
    # still adds up, and its balance beyond its opening moves as one entry on each side
    ("ledger_entries", "patient_id"): ("fees", FEES),
    ("form_requests", "patient_id"): ("forms sent and answered", MOVE),
    ("feedback_requests", "patient_id"): ("survey requests", MOVE),
    ("waitlist_entries", "patient_id"): ("waitlist entries", MOVE),
    ("waitlist_offers", "patient_id"): ("waitlist offers", MOVE),
    ("portal_invitations", "patient_id"): ("portal invitations", MOVE),  # pending: revoked
    ("portal_sessions", "patient_id"): ("portal sessions", MOVE),  # open ones: ended
    ("sms_replies", "patient_id"): ("text replies", MOVE),
    ("patients", "merged_into_id"): ("records merged into it before", MOVE),
    # the audit trail is never rewritten: events stay on the record they were written about
    ("audit_events", "patient_id"): ("audit events", STAYS),
}


def references() -> list[Column]:
    """Every column of the schema that refers to patients.id, in table order."""
    target = Patient.__table__.c.id
    return [
        fk.parent
        for table in Base.metadata.sorted_tables
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name)
        if fk.column is target
    ]


def _key(column: Column) -> tuple[str, str]:
    return column.table.name, column.name


def _in_order() -> list[Column]:
    """`references` in the order of `HOW` (the preview's and the message's), new ones last."""
    order = list(HOW)
    return sorted(references(), key=lambda c: order.index(_key(c)) if _key(c) in order else 99)


def _how(column: Column) -> tuple[str, str]:
    # a reference added after this module was written is moved (the coverage test asks for a
    # decision all the same)
    return HOW.get(_key(column), (column.table.name.replace("_", " "), MOVE))


def _selector(column: Column, patient_id: int):
    table: Table = column.table
    condition = column == patient_id
    if _key(column) == ("ledger_entries", "patient_id"):
        condition = and_(condition, table.c.kind.in_(FEE_KINDS))
    return condition


# ---------------------------------------------------------------- refusing a merged record


def merged_note(patient: Patient) -> str | None:
    """'Alex Morgan (#12) was merged into record #7.', or None for a record in use."""
    if patient.merged_into_id is None:
        return None
    return f"{patient.full_name} (#{patient.id}) was merged into record #{patient.merged_into_id}."


def current_record(session: Session, patient: Patient | None) -> Patient | None:
    """The record in use for `patient`: itself, or the record it was merged into (and that
    one's, should it have been merged in turn)."""
    seen = set()
    while patient is not None and patient.merged_into_id is not None and patient.id not in seen:
        seen.add(patient.id)
        patient = session.get(Patient, patient.merged_into_id)
    return patient


def refuse_merged(patient: Patient | None, doing: str) -> None:
    """Raise ValidationError when `patient` was merged into another record: nothing is booked
    for, sent to or offered to a merged record ('book an appointment for')."""
    note = merged_note(patient) if patient is not None else None
    if note:
        raise ValidationError(f"{note} Open #{patient.merged_into_id} to {doing} them.")


# ---------------------------------------------------------------- the preview


@dataclass(frozen=True)
class Side:
    id: int
    name: str
    born: str
    email: str
    phone: str
    points: int
    enrolled: bool


@dataclass(frozen=True)
class ContactChoice:
    """An email or phone the two records hold differently, and what the merge does with it:
    the kept record's stays, or the duplicate's fills its blank (`taken`), checked as an edit
    checks what is typed."""

    field: str  # "email" or "phone"
    kept: str  # the kept record's, "" when it has none
    other: str  # the duplicate's, "" when it has none
    taken: bool  # the duplicate's goes on the kept record (as `value`)
    does: str  # what the merge does, with both values, in a sentence (the preview)
    said: str = ""  # what the message after the merge says of it ("" for nothing)
    left: str = ""  # not taken, for the audit: why, without the value
    value: str = ""  # taken: as stored (an email lower-cased)


@dataclass(frozen=True)
class MergePreview:
    keep: Side
    duplicate: Side
    moves: list[tuple[str, int]]  # (what, how many) moved to the kept record, nothing left out
    stays: list[tuple[str, int]]  # what stays on the duplicate, and why in `notes`
    filled: list[str]  # the kept record's blanks filled from the duplicate
    consents: list[str]  # consents withdrawn by the merge, in words
    notes: list[str]  # points, portal, what stays, in sentences
    overlaps: list[str]  # appointments of both at the same time (confirm to merge anyway)
    contacts: list[ContactChoice] = field(default_factory=list)  # email and phone that differ
    points: int = 0  # of the duplicate's balance, moved: what it has beyond its opening
    opening_left: int = 0  # of the duplicate's balance, not carried: its opening (`_carried`)


@dataclass(frozen=True)
class Merged:
    keep_id: int
    duplicate_id: int
    moved: dict[str, int] = field(default_factory=dict)
    points: int = 0
    sessions_ended: int = 0
    address_left: str = ""  # the duplicate's address, not taken: the kept record has its own
    contacts: tuple[ContactChoice, ...] = ()  # email and phone that differed: the message says
    opening: str = ""  # the duplicate's opening balance not added, in a sentence

    @property
    def message(self) -> str:
        what = ", ".join(f"{n} {w}" for w, n in self.moved.items() if n) or "nothing else"
        text = (
            f"Record #{self.duplicate_id} was merged into #{self.keep_id}: moved {what}"
            + (f", {self.points} points" if self.points else "")
            + "."
        )
        text += f" {self.opening}" if self.opening else ""
        text += "".join(f" {c.said}" for c in self.contacts if c.said)
        if self.address_left:
            text += (
                f" #{self.duplicate_id}'s address ({self.address_left}) was not taken: "
                f"#{self.keep_id} keeps its own; change it on #{self.keep_id} if the other is "
                "the one in use."
            )
        return text


def _pair(
    session: Session, keep_id: int, duplicate_id: int, *, lock: bool
) -> tuple[Patient, Patient]:
    if keep_id == duplicate_id:
        raise ValidationError(
            "A record cannot be merged into itself: choose the duplicate and the record to keep."
        )
    query = (
        select(Patient)
        .where(Patient.id.in_((keep_id, duplicate_id)))
        .order_by(Patient.id)  # both rows, always in the same order: no deadlock
        .execution_options(populate_existing=True)
    )
    found = {p.id: p for p in session.scalars(query.with_for_update() if lock else query)}
    for patient_id in (duplicate_id, keep_id):
        if patient_id not in found:
            raise NotFound(f"There is no patient #{patient_id}.")
    keep, duplicate = found[keep_id], found[duplicate_id]
    if keep.merged_into_id is not None:
        when = clinic_time(clinic_format(session), keep.merged_at)
        raise Conflict(
            f"#{keep.id} was itself merged into #{keep.merged_into_id} ({when}): "
            f"merge into #{keep.merged_into_id} instead."
        )
    if duplicate.merged_into_id is not None:
        when = clinic_time(clinic_format(session), duplicate.merged_at)
        raise Conflict(
            f"#{duplicate.id} was already merged into #{duplicate.merged_into_id} ({when})."
        )
    return keep, duplicate


def _side(patient: Patient) -> Side:
    return Side(
        patient.id,
        patient.full_name,
        format_day(patient.date_of_birth, weekday=False),
        patient.email or "",
        patient.phone or "",
        patient.points_balance,
        patient.portal_enrolled_at is not None,
    )


def _count(session: Session, column: Column, patient_id: int) -> int:
    query = select(func.count()).select_from(column.table)
    return session.scalar(query.where(_selector(column, patient_id))) or 0


def _overlaps(session: Session, keep: Patient, duplicate: Patient) -> list[str]:
    """The kept record's and the duplicate's appointments at the same time, in words."""
    mine, theirs = aliased(Appointment), aliased(Appointment)

    def held(a):
        return and_(a.kind == AppointmentKind.APPOINTMENT, a.status.in_(HOLDING))

    rows = session.execute(
        select(mine.id, theirs.id, theirs.clinic_id, theirs.start_at, theirs.end_at)
        .join(theirs, and_(theirs.start_at < mine.end_at, theirs.end_at > mine.start_at))
        .where(mine.patient_id == keep.id, theirs.patient_id == duplicate.id)
        .where(held(mine), held(theirs))
        .order_by(theirs.start_at, mine.id)
        .limit(6)
    ).all()
    return [
        f"#{theirs_id} at {clinic_time(clinic_format(session, clinic_id), start)} "
        f"overlaps #{mine_id}"
        for mine_id, theirs_id, clinic_id, start, _end in rows
    ]


# blanks of the kept record filled from the duplicate; its email and phone: `_contacts`
FILLED = (
    ("date_of_birth", "date of birth"),
    ("gender", "gender"),
    ("external_ref", "imported reference"),
)
# an email or phone and the consent to its channel (the model keeps one of each a record)
CONTACTS = {"email": ("consent_email", "email"), "phone": ("consent_sms", "text messages")}
# the postal address's parts (core.patients.records checks them): filled as one, never a street
# from one record with a town from the other; a country alone is no address
ADDRESS = ("address_line1", "address_line2", "city", "postcode", "country")


def address_of(patient: Patient) -> str:
    """'1 High Street, York, YO1 7HH, GB', or "" when the record has no address."""
    if not any(getattr(patient, f) for f in ADDRESS[:-1]):
        return ""
    return ", ".join(v for f in ADDRESS if (v := getattr(patient, f)))


def _address_left(keep: Patient, duplicate: Patient) -> str:
    """The duplicate's address when the kept record keeps another of its own, else "" (the
    same address typed otherwise, case and spaces aside, is no other)."""
    theirs, mine = address_of(duplicate), address_of(keep)
    same = " ".join(theirs.casefold().split()) == " ".join(mine.casefold().split())
    return theirs if theirs and mine and not same else ""


def _same(name: str, mine: str, theirs: str, regions: tuple[str, ...]) -> bool:
    """One address or number written otherwise (case and spaces; a national or international
    form of one number) is no other."""
    if name == "email":
        return mine.strip().casefold() == theirs.strip().casefold()
    if mine and theirs and (number := e164(mine, regions)) is not None:
        return number == e164(theirs, regions)
    return " ".join(mine.split()) == " ".join(theirs.split())


def _checked(name: str, value: str, regions: tuple[str, ...]) -> str:
    """The duplicate's email or phone as an edit would store it typed."""
    if name == "email":
        return email_address(value) or ""
    return dialable(value, regions) or ""


def _contacts(session: Session, keep: Patient, duplicate: Patient) -> list[ContactChoice]:
    """The email and phone the records hold differently and what the merge does with each:
    the kept record's stays; its blank takes the duplicate's, checked as typed, with the
    duplicate's consent to that channel (`_consents`: its address's holder alone has a say)."""
    regions = practice_regions(session)
    k, d = f"#{keep.id}", f"#{duplicate.id}"
    found = []
    for name, (consent, channel) in CONTACTS.items():
        mine, theirs = getattr(keep, name) or "", getattr(duplicate, name) or ""
        if _same(name, mine, theirs, regions):
            continue
        if not theirs:
            found.append(
                ContactChoice(name, mine, theirs, False, f"{k} keeps {mine}; {d} has none.")
            )
            continue
        if mine:
            does = (
                f"{k} keeps {mine}; {d}'s {theirs} is not taken: add it by hand if it is "
                "theirs (the message after the merge names it)."
            )
            said = (
                f"{d}'s {name} ({theirs}) was not taken: {k} keeps its own ({mine}); change it "
                f"on {k} if the other is the one in use."
            )
            if name == "phone" and keep.phone_landline and not duplicate.phone_landline:
                landline = (
                    f"{k}'s is a landline, which texts do not reach: make it {d}'s mobile if "
                    "texts should go there"
                )
                does, said = f"{does} {landline}.", f"{said} {landline}."
            left = "the kept record's own stays"
            found.append(ContactChoice(name, mine, theirs, False, does, said, left))
            continue
        try:
            value = _checked(name, theirs, regions)
        except ValidationError as error:
            found.append(
                ContactChoice(
                    name,
                    mine,
                    theirs,
                    False,
                    f"{d}'s {theirs} is not taken: {error} {k} has none: type the right one.",
                    f"{d}'s {name} ({theirs}) was not taken: {error} {k} has none: type the "
                    f"right one on {k}.",
                    "not valid",
                )
            )
            continue
        given = "given" if getattr(duplicate, consent) else "not given"
        brings = f"with it {d}'s consent to {channel} ({given})"
        found.append(
            ContactChoice(
                name,
                mine,
                theirs,
                True,
                f"{k} has none: it takes {d}'s {theirs}, {brings}.",
                f"{d}'s {name} ({value}) was taken: {k} had none; {brings}.",
                value=value,
            )
        )
    return found


def _consents(
    keep: Patient, duplicate: Patient, taken: tuple[str, ...] | list[str] = ("email", "phone")
) -> dict[str, bool]:
    """The kept record's consents after the merge: a consent given on only one record, or
    withdrawn on either, is not kept (safer). A record without the address a consent is about
    has no say in it (its 'no' means 'no address', not 'withdrawn'); a kept record left
    without one (the duplicate's was not `taken`: not valid) has no consent to it."""

    def both(pairs: list[tuple[object, bool]], name: str) -> bool:
        holders = [ok for address, ok in pairs if address]
        after = getattr(keep, name) or (name in taken and getattr(duplicate, name))
        return bool(holders) and all(holders) and bool(after)

    return {
        "consent_email": both(
            [(keep.email, keep.consent_email), (duplicate.email, duplicate.consent_email)],
            "email",
        ),
        "consent_sms": both(
            [(keep.phone, keep.consent_sms), (duplicate.phone, duplicate.consent_sms)],
            "phone",
        ),
        "consent_marketing": keep.consent_marketing and duplicate.consent_marketing,
        "reminders_enabled": keep.reminders_enabled and duplicate.reminders_enabled,
    }


CONSENT_WORDS = {
    "consent_email": "consent to email",
    "consent_sms": "consent to text messages",
    "consent_marketing": "consent to marketing",
    "reminders_enabled": "reminders",
}


def _plan(session: Session, keep: Patient, duplicate: Patient) -> MergePreview:
    moves, stays = [], []
    for column in _in_order():
        words, how = _how(column)
        count = _count(session, column, duplicate.id)
        (stays if how == STAYS else moves).append((words, count))
    answered = session.scalar(
        select(func.count())
        .select_from(SurveyResponse)
        .join(Appointment, Appointment.id == SurveyResponse.appointment_id)
        .where(Appointment.patient_id == duplicate.id)
    )
    moves.append(("survey responses (with their appointments)", answered or 0))
    filled = [w for f, w in FILLED if not getattr(keep, f) and getattr(duplicate, f)]
    if address_of(duplicate) and not address_of(keep):
        filled.append("postal address")
    contacts = _contacts(session, keep, duplicate)
    after = _consents(keep, duplicate, [c.field for c in contacts if c.taken])
    consents = [
        f"{CONSENT_WORDS[f]}: {'on' if getattr(keep, f) else 'off'} here, "
        f"{'on' if getattr(duplicate, f) else 'off'} on #{duplicate.id}; off after the merge"
        for f, ok in after.items()
        if getattr(keep, f) and not ok
    ]
    notes = []
    if left := _address_left(keep, duplicate):
        notes.append(
            f"#{duplicate.id}'s address ({left}) is not taken: #{keep.id} keeps its own "
            f"({address_of(keep)})."
        )
    carried, left, opening = _carried(session, duplicate)
    if opening_said := _opening_words(keep.id, duplicate.id, opening, left):
        notes.append(opening_said)
    if carried:
        notes.append(
            f"{carried} points move (what #{duplicate.id} has beyond its opening balance): the "
            f"kept record's history shows 'Merged from #{duplicate.id}', the duplicate's "
            f"'Merged into #{keep.id}'."
        )
    points_stay = _count_points_entries(session, duplicate.id)
    if points_stay:
        notes.append(
            f"The duplicate's {points_stay} points entries stay in its own history, which "
            "adds up to its balance of 0 after the merge."
        )
    if duplicate.portal_enrolled_at is not None:
        notes.append(
            "The duplicate's portal sessions are ended and its sign-in links stop working; "
            + (
                "the kept record keeps its own sign-in."
                if keep.portal_enrolled_at is not None
                else "the kept record becomes enrolled and signs in with its own contact details."
            )
        )
    if any(words == "audit events" and n for words, n in stays):
        notes.append(
            "Audit events stay on the record they were written about, and the kept record's "
            "audit history lists them too; the merge is recorded on both."
        )
    return MergePreview(
        _side(keep),
        _side(duplicate),
        moves,
        stays,
        filled,
        consents,
        notes,
        _overlaps(session, keep, duplicate),
        contacts,
        carried,
        left,
    )


def _carried(session: Session, duplicate: Patient) -> tuple[int, int, int]:
    """(points moved, points not carried, the opening balance) of the duplicate's balance.
    Each record opens with points (core.payments.points.open_account); one person opens one
    balance, so the duplicate's opening is not carried: what moves is its balance less its
    opening, never below 0. Points it spent or lost count against what it earned first, then
    against its opening: the person keeps, on one balance, what they earned less what they
    used (nothing minted), and what the duplicate used beyond its earnings is not taken from
    the kept record's own points (nothing destroyed that they earned there)."""
    balance = max(0, duplicate.points_balance)
    opening = max(0, points.opening_points(session, duplicate.id))
    carried = max(0, balance - opening)
    return carried, balance - carried, opening


def _opening_words(keep_id: int, duplicate_id: int, opening: int, left: int) -> str:
    """The duplicate's opening balance not added, in a sentence ("" without one)."""
    if not opening:
        return ""
    said = (
        f"#{duplicate_id}'s opening balance of {opening} points is not added: one person opens "
        "one balance."
    )
    if left < opening:
        said += (
            f" {opening - left} of them were used there: they are not taken from #{keep_id}'s "
            "own points."
        )
    return said


def _count_points_entries(session: Session, patient_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.patient_id == patient_id, LedgerEntry.kind.not_in(FEE_KINDS))
        )
        or 0
    )


def _close_twin_entries(session: Session, patient_id: int, now: datetime) -> list[int]:
    """Each record waited for the same service (or package) at the same clinic: merged, one
    patient would wait twice, which adding an entry refuses (core.waitlist.entries), and see
    it twice (the portal, the staff list). The twin is withdrawn, keeping the one with an
    offer out, else the oldest (first come); a twin with an offer of its own out is left (its
    offer ends it). The ids withdrawn, for the merge's audit."""
    waiting = session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.patient_id == patient_id, WaitlistEntry.status == WaitlistStatus.WAITING
        )
        .order_by(WaitlistEntry.id)
    ).all()
    offered = set(
        session.scalars(
            select(WaitlistOffer.entry_id).where(
                WaitlistOffer.entry_id.in_([e.id for e in waiting]),
                WaitlistOffer.status.in_([OfferStatus.QUEUED, OfferStatus.SENT]),
            )
        )
    )
    alike: dict[tuple, list[WaitlistEntry]] = {}
    for e in waiting:
        alike.setdefault((e.clinic_id, e.service_id, e.package_id), []).append(e)
    closed = []
    for twins in alike.values():
        kept = next((e for e in twins if e.id in offered), twins[0])
        for e in twins:
            if e is not kept and e.id not in offered:
                e.status, e.closed_at = WaitlistStatus.WITHDRAWN, now  # its wait ends now
                closed.append(e.id)
    return closed


def preview_merge(session: Session, actor: Actor, keep_id: int, duplicate_id: int) -> MergePreview:
    """What merging `duplicate_id` into `keep_id` would move, fill and withdraw; refused as the
    merge itself would be (the same record, a record merged already, no permission)."""
    ensure(actor, Permission.PATIENTS_MERGE)
    keep, duplicate = _pair(session, keep_id, duplicate_id, lock=False)
    return _plan(session, keep, duplicate)


# ---------------------------------------------------------------- the merge


def merge_patients(
    session: Session,
    actor: Actor,
    keep_id: int,
    duplicate_id: int,
    reason: str,
    *,
    allow_overlap: bool = False,
) -> Merged:
    """Merge the duplicate into the kept record, in the caller's transaction, both rows
    locked: every row pointing at the duplicate points at the kept record (see `HOW`); the
    kept record keeps its name, contact details and postal address and fills its blanks from
    the duplicate (an email or phone checked as typed, with the duplicate's consent to it; the
    address as one; the duplicate's email, phone or address not taken named in the message);
    a consent withdrawn on either stays withdrawn; the duplicate's points beyond its opening
    balance move as one ledger entry on each side, its opening is not added (`_carried`); its
    portal sessions end. The duplicate is marked merged, never deleted. Audited on both
    records with the counts moved, the points moved and not carried, and the contacts taken
    or not."""
    ensure(actor, Permission.PATIENTS_MERGE)
    reason = (clean(reason, field="reason", limit=MAX_REASON) or "").strip()
    if not reason:
        raise ValidationError("Say why these are one person's records; the reason is audited.")
    keep, duplicate = _pair(session, keep_id, duplicate_id, lock=True)
    plan = _plan(session, keep, duplicate)
    if plan.overlaps and not allow_overlap:
        raise Conflict(
            "Both records have appointments at the same time ("
            + "; ".join(plan.overlaps)
            + "): check they are one person, then confirm the overlap to merge anyway."
        )
    now = utcnow()
    ended = _end_portal(session, actor, duplicate, keep.id)
    taken = [c.field for c in plan.contacts if c.taken]
    withdrawn = _apply_consents(keep, duplicate, taken)  # the addresses each had: before _fill
    # as an edit withdrawing it would: the kept record's pending invitation by that channel
    invitations.revoke_for_contact_change(session, actor, keep, withdrawn)
    address_left = _address_left(keep, duplicate)
    filled = _fill(keep, duplicate, plan.contacts)
    moved_points, opening_left = _move_points(session, keep, duplicate, plan)
    duplicate.merged_into_id, duplicate.merged_at = keep.id, now
    session.flush()
    moved: dict[str, int] = {}
    for column in _in_order():
        words, how = _how(column)
        if how == STAYS:
            continue
        values = {column.name: keep.id}
        if column.table.name == "appointments":
            values["version"] = column.table.c.version + 1  # stale edits of them are refused
        done = session.execute(
            update(column.table).where(_selector(column, duplicate.id)).values(**values)
        )
        moved[words] = done.rowcount
    session.expire_all()  # the ORM's copies of the moved rows are stale
    closed = _close_twin_entries(session, keep.id, now)
    for name, channel, word in (
        ("consent_email", Channel.EMAIL, "email"),
        ("consent_sms", Channel.SMS, "text messages"),
    ):
        if name in withdrawn:  # the messages moved or waiting stop too
            notify.withdraw_queued(
                session,
                [keep_id],
                channel,
                f"Not sent: consent to {word} was withdrawn on a record merged into this one.",
            )
    details = {
        "moved": moved,
        "points": moved_points,
        # the duplicate's opening balance (what was left of it), not carried: one person opens
        # one balance
        "opening_not_carried": opening_left,
        "filled": filled,
        "consents_withdrawn": withdrawn,
        "portal_sessions_ended": ended,
        "overlaps_confirmed": plan.overlaps,
        "waitlist_twins_withdrawn": closed,
        # personal data: that the duplicate's address was left, not what it is
        "address_not_taken": bool(address_left),
        # the same for an email and a phone: which were taken, which not and why
        "contacts_taken": taken,
        "contacts_not_taken": {c.field: c.left for c in plan.contacts if c.left},
    }
    audit.record(
        session,
        actor,
        "patient_merged_into",
        "patient",
        duplicate_id,
        patient_id=duplicate_id,
        reason=reason,
        message=f"Merged into #{keep_id}.",
        details={"into": keep_id, **details},
    )
    audit.record(
        session,
        actor,
        "patient_merged_from",
        "patient",
        keep_id,
        patient_id=keep_id,
        reason=reason,
        message=f"Record #{duplicate_id} merged into this one.",
        details={"from": duplicate_id, **details},
    )
    session.flush()
    contacts = tuple(plan.contacts)
    opening = next((n for n in plan.notes if n.startswith(f"#{duplicate_id}'s opening ")), "")
    return Merged(
        keep_id, duplicate_id, moved, moved_points, ended, address_left, contacts, opening
    )


def _fill(keep: Patient, duplicate: Patient, contacts: list[ContactChoice]) -> list[str]:
    """The kept record's blanks filled from the duplicate (its own values win); its email and
    phone as `contacts` took them; its address as one: all its parts, when the kept record has
    none."""
    filled = []
    for contact in contacts:
        if contact.taken:
            setattr(keep, contact.field, contact.value)
            filled.append(contact.field)
    for name, _words in FILLED:
        if not getattr(keep, name) and getattr(duplicate, name):
            value = getattr(duplicate, name)
            if name == "external_ref":  # unique: the duplicate gives it up
                duplicate.external_ref = None
            setattr(keep, name, value)
            filled.append(name)
    if address_of(duplicate) and not address_of(keep):
        for name in ADDRESS:  # a stray country of the kept record's goes with its blank
            setattr(keep, name, getattr(duplicate, name))
        filled.append("address")
    if duplicate.extra:
        keep.extra = {**duplicate.extra, **(keep.extra or {})}
    keep.card_on_file = keep.card_on_file or duplicate.card_on_file
    if keep.portal_enrolled_at is None and duplicate.portal_enrolled_at is not None:
        keep.portal_enrolled_at = duplicate.portal_enrolled_at
        filled.append("portal_enrolled_at")
    return filled


def _apply_consents(keep: Patient, duplicate: Patient, taken: list[str]) -> list[str]:
    """Set the kept record's consents (`_consents`, before its blanks are filled): the names
    the merge withdrew."""
    before = {name: getattr(keep, name) for name in CONSENT_WORDS}
    for name, ok in _consents(keep, duplicate, taken).items():
        setattr(keep, name, ok)
    return [name for name in CONSENT_WORDS if before[name] and not getattr(keep, name)]


def _move_points(
    session: Session, keep: Patient, duplicate: Patient, plan: MergePreview
) -> tuple[int, int]:
    """The duplicate's balance beyond its opening (`_carried`) moves as one entry on each
    side; what is left of its opening is taken off its own balance (an opening entry saying
    so), not added to the kept one: its balance ends at 0 and both ledgers add up. Returns
    (points moved, points not carried)."""
    if plan.opening_left:
        points.close_opening(
            session,
            duplicate,
            plan.opening_left,
            note=f"Not carried into #{keep.id}: one person opens one balance",
        )
    if plan.points:
        points.transfer(
            session,
            duplicate,
            keep,
            plan.points,
            out_note=f"Merged into #{keep.id}",
            in_note=f"Merged from #{duplicate.id}",
        )
    return plan.points, plan.opening_left


def _end_portal(session: Session, actor: Actor, duplicate: Patient, keep_id: int) -> int:
    """End the duplicate's open portal sessions, stop its sign-in and enrolment links and
    revoke its pending invitations: its person signs in to the kept record from now on."""
    ended, _ = invitations.end_portal_access(session, duplicate.id, PATIENT_TOKENS)
    invitations.revoke_pending_for_patient(session, actor, duplicate.id, f"Merged into #{keep_id}")
    return ended
