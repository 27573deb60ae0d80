"""The signed-in patient's waitlist in the portal: join it for a service or a package, see the
entries still waiting with any offer out to them, accept an offer, and leave an entry. As
everywhere in the portal, only the signed-in patient's rows: another patient's entry or offer is
the same NotFound as an unknown one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.errors import ValidationError
from core.kernel.money import babel_locale, clinic_time, format_day_range
from core.messaging.recipients import unreachable
from core.policy.cancellation import online_booking_blocked
from core.portal.home import asked_online, locked_text, open_clinic, portal_patient
from core.scheduling.availability import time_of_day_label
from core.waitlist import entries, offers
from db.models import (
    Channel,
    Clinic,
    OfferStatus,
    Patient,
    TimeOfDay,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from db.types import utcnow


def join_waitlist(
    session: Session,
    patient_id: int,
    *,
    clinic_id: int,
    service_id: int | None = None,
    package_id: int | None = None,
    earliest: date,
    latest: date,
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4),
    windows: tuple[str, ...] = (),
    note: str = "",
) -> str:
    """Wait for a service or a package (booked as one) at a clinic between two days, on the
    weekdays and times of day given (none: any): the practice offers the first matching time
    that frees up (core.waitlist)."""
    patient = portal_patient(session, patient_id)
    if online_booking_blocked(patient):
        raise ValidationError(locked_text(session, patient))
    if earliest is None or latest is None:
        raise ValidationError("Please choose the first and the last day you could come.")
    open_clinic(session, clinic_id)
    asked_online(session, service_id, package_id)
    wish = entries.Wish(
        patient_id=patient.id,
        clinic_id=clinic_id,
        service_id=None if package_id is not None else service_id,
        package_id=package_id,
        earliest=earliest,
        latest=latest,
        weekdays=tuple(weekdays),
        windows=tuple(TimeOfDay(w) for w in windows),
        note=(note or "").strip(),
    )
    entries.add_for_patient(session, wish)
    if unreached := _unreached(patient, session.get(Clinic, clinic_id)):
        return f"You are on the waitlist, but we cannot offer you a time yet: {unreached}"
    return (
        "Thank you: you are on the waitlist. We will offer you the first matching time that "
        "frees up."
    )


def _unreached(patient: Patient, clinic: Clinic) -> str:
    """Why no offer can reach the patient and what to do, in their words ("" when one can),
    by the rule every message follows (entries.cannot_reach). The portal cannot turn messages
    on: the practice records consent, and a text STOP is undone by START."""
    why = entries.cannot_reach(patient)
    if why is None:
        return ""
    call = f"call {clinic.name}" + (f" on {clinic.phone}" if clinic.phone else "")
    start = ""
    if not patient.consent_sms and unreachable(patient, Channel.SMS, needs_consent=False) is None:
        start = " (or, if you stopped our text messages, reply START to one of them)"
    return (
        f"offers go by email or text message, and neither can reach you now ({why}). To be "
        f"offered times, {call} and ask them to record your consent to email or text messages, "
        f"with your email address or mobile number{start}."
    )


@dataclass(frozen=True)
class PortalOffer:
    """A freed time offered to the patient, open until `expires` (both clinic-local); `terms`
    says who else may take it, in the mode the offer went out in, as its message did."""

    id: int
    when: str
    expires: str
    terms: str


@dataclass(frozen=True)
class PortalWaitlistEntry:
    id: int
    clinic: str
    treatment: str  # as the staff list names it: "Skin renewal (Skin check + Chemical peel)"
    days: str  # clinic-local, in the clinic's locale
    weekdays: str
    times: str
    note: str  # as typed: escape on display
    offer: PortalOffer | None
    stopped: str = ""  # why no time will be offered (what it waits for withdrawn, or unreached)


def _weekdays(stored: str, locale: str) -> str:
    if len(stored) == 7:
        return "Any day"
    names = babel_locale(locale).days["stand-alone"]["abbreviated"]
    return ", ".join(names[int(d)] for d in stored)


def waitlist_entries(
    session: Session, patient_id: int, *, now: datetime | None = None
) -> list[PortalWaitlistEntry]:
    """The patient's entries still waiting (oldest first), each with the offer out to it."""
    portal_patient(session, patient_id)
    now = now or utcnow()
    rows = session.execute(
        select(WaitlistEntry, Clinic)
        .join(Clinic, Clinic.id == WaitlistEntry.clinic_id)
        .where(
            WaitlistEntry.patient_id == patient_id,
            WaitlistEntry.status == WaitlistStatus.WAITING,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(entries.PAGE_SIZE)
    ).all()
    sent = session.execute(
        select(WaitlistOffer)
        .where(
            WaitlistOffer.entry_id.in_([entry.id for entry, _ in rows]),
            WaitlistOffer.status == OfferStatus.SENT,
            WaitlistOffer.expires_at > now,
        )
        .order_by(WaitlistOffer.expires_at)
    ).scalars()
    soonest: dict[int, WaitlistOffer] = {}  # the open offer of each entry expiring first
    for offer in sent:
        soonest.setdefault(offer.entry_id, offer)
    result = []
    for entry, clinic in rows:
        stopped = _stopped(session, entry, clinic, offered=entry.id in soonest)
        # an offer for what the practice withdrew cannot be booked (its accept is refused)
        offer = None if entries.stopped_by(session, entry) else soonest.get(entry.id)
        windows = [time_of_day_label(w, clinic.locale) for w in entry.windows.split(",") if w]
        result.append(
            PortalWaitlistEntry(
                entry.id,
                clinic.name,
                entries.treatment(session, entry),
                format_day_range(entry.earliest, entry.latest, clinic.locale),
                _weekdays(entry.weekdays, clinic.locale),
                ", ".join(windows) or "Any time of day",
                entry.note,
                None
                if offer is None
                else PortalOffer(
                    offer.id,
                    clinic_time(clinic, offer.start_at, zone=True),
                    clinic_time(clinic, offer.expires_at, zone=True),
                    offers.TERMS[offer.mode],  # as it went out, whatever the mode now
                ),
                stopped,
            )
        )
    return result


def _stopped(session: Session, entry: WaitlistEntry, clinic: Clinic, *, offered: bool) -> str:
    """The patient's words for an entry the practice can no longer offer a time for: what it
    waits for withdrawn, or no offer can reach them (_unreached; not while an offer that
    reached them is out: it still books)."""
    call = f" or call the practice on {clinic.phone}" if clinic.phone else ""
    match entries.stopped_by(session, entry):
        case ("treatment", names):
            return (
                f"The practice no longer offers {names}, so no time will be offered for this "
                f"entry. Withdraw it{call}."
            )
        case ("provider", name):
            return (
                f"{name} no longer works at the practice, so no time will be offered with them. "
                "Withdraw this entry and join again for any provider" + f"{call}."
            )
    if not offered and (unreached := _unreached(entry.patient, clinic)):
        return f"We cannot offer you a time for this entry: {unreached}"
    return ""


def withdraw_from_waitlist(session: Session, patient_id: int, entry_id: int) -> str:
    """Withdraw one of the patient's own entries (another patient's id: the same NotFound as
    an unknown one); an offer out to it lapses and goes to the next patient in line."""
    portal_patient(session, patient_id)
    entries.withdraw_for_patient(session, patient_id, entry_id)
    return "You have left the waitlist for this treatment."


def accept_offer(session: Session, patient_id: int, offer_id: int) -> str:
    """Book a time offered to the patient, as the link in the offer would: through the life
    cycle; the other patients offered it (first to accept) are told it is taken."""
    portal_patient(session, patient_id)
    appointment = offers.accept_own_offer(session, patient_id, offer_id)
    clinic = session.get(Clinic, appointment.clinic_id)
    when = clinic_time(clinic, appointment.start_at, zone=True)
    return f"Booked: {when}. We have sent you the details."
