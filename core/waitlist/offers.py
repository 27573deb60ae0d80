"""Freed slots offered to the waitlist: match, rank, send (respecting quiet hours and the
minimum notice), accept through the life cycle, tell the others, expire, refill figures.

The jobs loop calls `process_openings` and `expire_offers`; a manager may offer a slot by hand
(`offer_slot`). Accepting locks the opening row, so two patients accepting at once get one
booking and one "just taken" (on PostgreSQL the row lock, on SQLite the serialised writer)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, event, false, func, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit, tokens
from core.kernel.authz import SYSTEM, Actor, Permission, ensure, patient_actor
from core.kernel.clock import local_days_bounds, to_local
from core.kernel.errors import Conflict, LinkInvalid, NotFound, ValidationError
from core.kernel.locks import hold
from core.kernel.money import clinic_time, clinic_time_range, format_clock
from core.messaging import notify
from core.practice import skills
from core.practice.timing import Timing
from core.scheduling.availability import find_conflicts, patients_visits, working_hours_cover
from core.scheduling.moves import NewBooking, PatientBusy, own_visit, schedule_appointment
from core.scheduling.openings import slot_opened
from core.waitlist.entries import (
    barred,
    bookable,
    cannot_reach,
    fits,
    services_of,
    stopped_by,
    timing,
    treatment,
    unbookable,
)
from core.waitlist.rules import Mode, Ranking, Rules, get_rules
from db.models import (
    Appointment,
    AppointmentKind,
    Clinic,
    LinkToken,
    OfferStatus,
    OpeningStatus,
    Package,
    Patient,
    Provider,
    Service,
    SlotOpening,
    Source,
    VisitMode,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from db.types import utcnow

PURPOSE = "waitlist_offer"
STEP = timedelta(minutes=15)
OPEN = (OfferStatus.QUEUED, OfferStatus.SENT)
MODE = VisitMode.IN_PERSON  # how an accepted offer is booked (entries name no visit mode)


@dataclass(frozen=True)
class Match:
    entry: WaitlistEntry
    start_at: datetime


def _free(
    session: Session,
    opening: SlotOpening,
    start: datetime,
    end: datetime,
    visit: Timing = Timing(0),
) -> bool:
    """Whether the opening's provider may be booked [start, end), by the rules a booking
    passes (lifecycle.place): working then, and no clash with their bookings, widened by the
    visit's own buffers (`visit`: no time off may touch them either, availability.away_span)
    and, at another clinic, the travel time between clinics (none for a video visit)."""
    return _working(session, opening, start, end, visit) and not _clashes(
        session, opening, start, end, visit
    )


def _working(
    session: Session, opening: SlotOpening, start: datetime, end: datetime, visit: Timing
) -> bool:
    """The opening's provider works [start, end) at its clinic and no time off touches the
    visit or its buffers (lifecycle.place's time_off_during, one rule with away_span)."""
    before, after = visit.padding
    return working_hours_cover(
        session, opening.provider_id, opening.clinic_id, start, end, before=before, after=after
    )


def _clashes(
    session: Session, opening: SlotOpening, start: datetime, end: datetime, visit: Timing
) -> list:
    """The opening provider's bookings a visit [start, end) with `visit`'s buffers clashes
    with (availability.find_conflicts, as lifecycle.place asks it)."""
    before, after = visit.padding
    return find_conflicts(
        session,
        opening.provider_id,
        start,
        end,
        before=before,
        after=after,
        clinic_id=opening.clinic_id,
        virtual=MODE == VisitMode.VIRTUAL,  # travel time kept as the booking keeps it
    )


def _any_free(session: Session, opening: SlotOpening) -> bool:
    """Whether any STEP of the opening is still free for its provider, by the check matching
    uses (_free): with the buffers of the visit it freed, when it freed one."""
    freed = session.get(Appointment, opening.appointment_id) if opening.appointment_id else None
    visit = Timing(0)
    if freed is not None:
        visit = Timing(0, freed.buffer_before_minutes or 0, freed.buffer_after_minutes or 0)
    start = opening.start_at
    while start + STEP <= opening.end_at:
        if _free(session, opening, start, start + STEP, visit):
            return True
        start += STEP
    return False


def _patients_busy(
    session: Session, patient_ids: set[int], opening: SlotOpening
) -> dict[int, list[tuple[datetime, datetime]]]:
    """The times within the opening at which each patient already has a visit, or keeps an
    original time held for a proposal of theirs (availability.patients_visits): a time they
    cannot take is not offered to them (booking it would be refused as their own clash)."""
    visits = patients_visits(session, patient_ids, opening.start_at, opening.end_at)
    return {pid: [(v.start_at, v.end_at) for v in theirs] for pid, theirs in visits.items()}


def find_matches(
    session: Session, opening: SlotOpening, rules: Rules, now: datetime, *, everyone: bool = False
) -> list[Match]:
    """Waiting entries the opening suits (its provider performs all they wait for; the
    earliest fitting free start each, at which the patient has no other visit), ranked; only
    those whose patient a message can reach and who may book online, unless `everyone` (what
    the time would suit were they reachable and not barred, to say why nobody was offered
    it)."""
    tz = session.get(Clinic, opening.clinic_id).timezone
    # a patient holding an offer for another time may be offered this one too (they choose);
    # a patient is offered each opening once, and not while an offer of an overlapping opening
    # of the same provider is out or queued for them (a cancelled time also offered by hand):
    # by patient, not by entry, as one may wait for two services (or twice, once merged)
    already = select(WaitlistOffer.patient_id).where(WaitlistOffer.opening_id == opening.id)
    overlapping = (
        select(WaitlistOffer.patient_id)
        .join(SlotOpening, SlotOpening.id == WaitlistOffer.opening_id)
        .where(
            WaitlistOffer.status.in_(OPEN),
            SlotOpening.provider_id == opening.provider_id,
            SlotOpening.start_at < opening.end_at,
            SlotOpening.end_at > opening.start_at,
        )
    )
    entries = session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.clinic_id == opening.clinic_id,
            WaitlistEntry.status == WaitlistStatus.WAITING,
            (WaitlistEntry.provider_id == opening.provider_id)
            | WaitlistEntry.provider_id.is_(None),
            WaitlistEntry.latest >= to_local(opening.start_at, tz).date(),
            WaitlistEntry.earliest <= to_local(opening.end_at, tz).date(),
            WaitlistEntry.patient_id.not_in(already),
            WaitlistEntry.patient_id.not_in(overlapping),
            bookable(),
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    ).all()
    found = []
    suited = [
        e
        for e in skills.performed_by(session, opening.provider_id, list(entries))
        if everyone
        or (_reachable(session, e.patient_id) and not barred(session.get(Patient, e.patient_id)))
    ]
    busy = _patients_busy(session, {e.patient_id for e in suited}, opening)
    for entry in suited:
        theirs = busy.get(entry.patient_id, [])
        visit = timing(session, entry)
        duration = timedelta(minutes=visit.minutes)
        start = opening.start_at
        while start + duration <= opening.end_at:
            if (
                start >= now + rules.min_notice
                and fits(entry, start, start + duration, tz)
                and not any(s < start + duration and e > start for s, e in theirs)
            ):
                if _free(session, opening, start, start + duration, visit):
                    found.append(Match(entry, start))
                    break
            start += STEP
    if rules.ranking == Ranking.SOONEST_NEED:
        found.sort(key=lambda m: (m.entry.latest, m.entry.created_at, m.entry.id))
    first, seen = [], set()  # each patient once, for their best-ranked entry
    for match in found:
        if match.entry.patient_id not in seen:
            seen.add(match.entry.patient_id)
            first.append(match)
    return first


def _reachable(session: Session, patient_id: int) -> bool:
    """Whether an offer message can reach the patient (an address with consent on a channel,
    a record not merged away; entries.cannot_reach): an offer nobody reads would hold the
    time for nobody."""
    return cannot_reach(session.get(Patient, patient_id)) is None


def _context(session: Session, offer: WaitlistOffer, **extra) -> dict[str, object]:
    opening = offer.opening
    clinic = session.get(Clinic, opening.clinic_id)
    provider = session.get(Provider, opening.provider_id)
    return {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "when": clinic_time(clinic, offer.start_at, zone=True),
        "service_name": treatment(session, offer.entry),
        "provider_name": provider.name if provider else "our team",
        **extra,
    }


TERMS = {  # the offer message's sentence on who else may take the time
    Mode.ONE_AT_A_TIME: "We are holding this time for you alone until then.",
    Mode.FIRST_TO_ACCEPT: "Other patients may have been offered it too; the first to accept "
    "gets it.",
}


def _send(session: Session, offer: WaitlistOffer, rules: Rules, now: datetime, base_url: str):
    hold = min(rules.hold, offer.start_at - now - rules.min_notice / 2)
    token = tokens.issue(session, PURPOSE, offer.id, max(hold, timedelta(minutes=5)))
    offer.status, offer.sent_at, offer.token_id = OfferStatus.SENT, now, token.row.id
    offer.expires_at = now + max(hold, timedelta(minutes=5))
    offer.mode = rules.mode  # its words and its hold, whatever the practice's mode later
    patient = session.get(Patient, offer.patient_id)
    clinic = session.get(Clinic, offer.opening.clinic_id)
    notify.queue_for_patient(
        session,
        patient,
        "waitlist_offer",
        _context(
            session,
            offer,
            link=tokens.link(base_url, PURPOSE, token.raw),
            expires=_deadline(clinic, offer.expires_at, now),
            terms=TERMS[offer.mode],
        ),
        waitlist_offer_id=offer.id,
    )


def _deadline(clinic: Clinic, expires_at: datetime, now: datetime) -> str:
    """An offer's deadline as its message says it: the clock time alone on the day it is sent
    (the visit's time beside it names the zone; the day and zone again kept a text with a name
    outside the GSM alphabet in four parts), else the moment in full."""
    if to_local(expires_at, clinic.timezone).date() == to_local(now, clinic.timezone).date():
        return format_clock(to_local(expires_at, clinic.timezone), clinic.locale)
    return clinic_time(clinic, expires_at, zone=True)


def _slot_still_open(session: Session, opening: SlotOpening, offer: WaitlistOffer, rules, now):
    """Still free, beyond the minimum notice, and its provider still performs the entry's
    services (they may have changed while the offer was queued)."""
    visit = timing(session, offer.entry)
    end = offer.start_at + timedelta(minutes=visit.minutes)
    return (
        offer.start_at >= now + rules.min_notice
        and not unbookable(session, offer.entry)
        and _free(session, opening, offer.start_at, end, visit)
        and bool(skills.performed_by(session, opening.provider_id, [offer.entry]))
    )


def _queue_matches(
    session: Session, opening: SlotOpening, rules: Rules, now: datetime
) -> list[WaitlistOffer]:
    """The opening's new matches (entries not offered it yet), queued after those already in
    line."""
    matches = find_matches(session, opening, rules, now)
    last = session.scalar(
        select(func.max(WaitlistOffer.rank)).where(WaitlistOffer.opening_id == opening.id)
    )
    queued = []
    for rank, match in enumerate(matches, start=(last or 0) + 1):
        offer = WaitlistOffer(
            opening_id=opening.id,
            opening=opening,
            entry_id=match.entry.id,
            entry=match.entry,
            patient_id=match.entry.patient_id,
            rank=rank,
            start_at=match.start_at,
        )
        session.add(offer)
        queued.append(offer)
    session.flush()
    return queued


def _advance(
    session: Session, opening: SlotOpening, rules: Rules, now: datetime, base_url: str
) -> int:
    """Send the next queued offers (per mode), queueing new matches first when the line is too
    short. In quiet hours the queued offers wait (the opening pending, for the jobs loop); with
    nobody to offer, the opening is unfilled: the jobs loop matches it again while it is beyond
    the minimum notice. A time of a provider the practice deactivated is closed: nobody can
    book it (lifecycle.place refuses an inactive provider), its offers are closed before
    (_gone_meanwhile)."""
    if not _provider_active(session, opening):  # nobody can book them: the time leaves
        opening.status, opening.processed_at = OpeningStatus.CLOSED, now
        _withdraw_queued(session, opening, now)
        return 0
    offers = session.scalars(
        select(WaitlistOffer)
        .where(WaitlistOffer.opening_id == opening.id, WaitlistOffer.status.in_(OPEN))
        .order_by(WaitlistOffer.rank)
    ).all()
    live = [o for o in offers if o.status == OfferStatus.SENT]
    queued = [o for o in offers if o.status == OfferStatus.QUEUED]
    # a time held for one patient stays theirs alone until it is answered or lapses, though
    # the practice has since moved to first to accept (the offer told them it was held)
    held = any(o.mode == Mode.ONE_AT_A_TIME for o in live)
    want = 1 if held or rules.mode == Mode.ONE_AT_A_TIME else rules.batch
    new = _queue_matches(session, opening, rules, now) if len(live) + len(queued) < want else []
    queued += new
    opening.processed_at = now
    tz = session.get(Clinic, opening.clinic_id).timezone
    if rules.quiet(now, tz) and queued and len(live) < want:
        if not live:
            opening.status = OpeningStatus.PENDING  # sent when quiet hours end
        return len(new)
    for offer in queued:
        if len(live) >= want:
            break
        if (
            offer.entry.status != WaitlistStatus.WAITING
            or not _slot_still_open(session, opening, offer, rules, now)
            or not _reachable(session, offer.patient_id)  # consent withdrawn while in line
            or barred(session.get(Patient, offer.patient_id))  # online booking barred meanwhile
        ):
            offer.status, offer.answered_at = OfferStatus.WITHDRAWN, now
            continue
        _send(session, offer, rules, now, base_url)
        live.append(offer)
    opening.status = OpeningStatus.OFFERING if live else OpeningStatus.UNFILLED
    return len(new)


def _provider_active(session: Session, opening: SlotOpening) -> bool:
    provider = session.get(Provider, opening.provider_id)
    return provider is not None and provider.active


def open_offers(
    session: Session, opening: SlotOpening, rules: Rules, now: datetime, base_url: str
) -> int:
    """Queue the opening's new matches (ranked) and send the first ones; how many were
    queued."""
    return _advance(session, opening, rules, now, base_url)


RECHECK = timedelta(minutes=15)


def _withdraw_queued(session: Session, opening: SlotOpening, now: datetime) -> None:
    for offer in session.scalars(
        select(WaitlistOffer).where(
            WaitlistOffer.opening_id == opening.id, WaitlistOffer.status == OfferStatus.QUEUED
        )
    ):
        offer.status, offer.answered_at = OfferStatus.WITHDRAWN, now


def process_openings(
    session: Session, *, base_url: str, now: datetime | None = None, limit: int = 50
) -> int:
    """The jobs loop: offer pending openings (new, or queued through quiet hours), oldest
    first; then match the unfilled ones again while they are beyond the minimum notice (every
    RECHECK, or at once when a patient joined the clinic's waitlist since)."""
    now = now or utcnow()
    rules = get_rules(session)
    pending = session.scalars(
        select(SlotOpening)
        .where(SlotOpening.status == OpeningStatus.PENDING)
        .order_by(SlotOpening.created_at, SlotOpening.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    joined = (
        select(WaitlistEntry.id)
        .where(
            WaitlistEntry.clinic_id == SlotOpening.clinic_id,
            WaitlistEntry.status == WaitlistStatus.WAITING,
            WaitlistEntry.created_at > SlotOpening.processed_at,
        )
        .exists()
    )
    again = session.scalars(
        select(SlotOpening)
        .where(
            SlotOpening.status == OpeningStatus.UNFILLED,
            SlotOpening.end_at > now + rules.min_notice,
            SlotOpening.processed_at.is_(None)
            | (SlotOpening.processed_at <= now - RECHECK)
            | joined,
        )
        .order_by(SlotOpening.processed_at.asc().nulls_first(), SlotOpening.id)  # never tried first
        .limit(max(limit - len(pending), 0))
        .with_for_update(of=SlotOpening, skip_locked=True)
    ).all()
    done = 0
    for opening in [*pending, *again]:
        tz = session.get(Clinic, opening.clinic_id).timezone
        if opening.end_at <= now + rules.min_notice:
            opening.status, opening.processed_at = OpeningStatus.CLOSED, now
            _withdraw_queued(session, opening, now)
            continue
        if rules.quiet(now, tz):
            continue
        open_offers(session, opening, rules, now, base_url)
        done += 1
    return done


def expire_offers(session: Session, *, base_url: str, now: datetime | None = None) -> int:
    """Sent offers past their hold lapse; the next patient in line gets the slot.

    Locks as accepting does, openings first (in id order), then their offers: locking a
    lapsed offer before its opening, while an accept held the opening and then wrote that
    offer (telling it "taken"), deadlocked the two on PostgreSQL."""
    now = now or utcnow()
    rules = get_rules(session)
    lapsing = (WaitlistOffer.status == OfferStatus.SENT) & (WaitlistOffer.expires_at <= now)
    with_lapsed = select(WaitlistOffer.opening_id).where(lapsing)
    locked = session.scalars(
        select(SlotOpening)
        .where(SlotOpening.id.in_(with_lapsed) | (SlotOpening.status == OpeningStatus.OFFERING))
        .order_by(SlotOpening.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    openings = {opening.id: opening for opening in locked}
    lapsed = session.scalars(
        select(WaitlistOffer)
        .where(lapsing, WaitlistOffer.opening_id.in_(list(openings)))
        .order_by(WaitlistOffer.id)
        .execution_options(populate_existing=True)
    ).all()
    for offer in lapsed:
        offer.status = OfferStatus.EXPIRED
        if offer.token_id:
            tokens.revoke(session, offer.token_id)
    session.flush()
    for opening in openings.values():
        if opening.status == OpeningStatus.OFFERING:
            _gone_meanwhile(session, opening, now)
            _advance(session, opening, rules, now, base_url)
    return len(lapsed)


@dataclass(frozen=True)
class Offered:
    """What offering a slot by hand did: `matched` patients in the opening's line (queued or
    sent), `sent` offers out now; none sent means quiet hours hold them until `quiet_end`
    (clinic-local, as the clinic's clock). `already` of them were in line before (an offer
    quiet hours held), for the opening `span` words (its time and what freed it)."""

    opening_id: int
    matched: int
    sent: int
    quiet_end: str | None
    already: int = 0
    span: str = ""

    def message(self) -> str:
        if self.sent:
            who = "1 patient" if self.sent == 1 else f"{self.sent} patients"
            more = self.matched - self.sent
            rest = f"; {more} more in line after them" if more > 0 else ""
            return f"Offer sent to {who}{rest} (see the Waitlist page)."
        who = "1 matching patient" if self.matched == 1 else f"{self.matched} matching patients"
        if self.quiet_end is None:
            return "No offer could be sent: the time is no longer free."
        if self.already and self.matched == self.already:  # nobody new: the line waits
            who = "1 patient" if self.matched == 1 else f"{self.matched} patients"
            return (
                f"Quiet hours: an offer for this time ({self.span}) is already queued for {who} "
                f"and will be sent at {self.quiet_end}, when quiet hours end; nothing more was "
                "queued (see the Waitlist page)."
            )
        return (
            f"Quiet hours: the offer to {who} will be sent at {self.quiet_end}, when quiet hours "
            "end (see the Waitlist page)."
        )


def offer_slot(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    provider_id: int,
    start_at: datetime,
    end_at: datetime,
    base_url: str,
    appointment_id: int | None = None,
    now: datetime | None = None,
) -> Offered:
    """A manager offers a slot by hand (from the calendar or a cancellation): matched, ranked
    and offered at once, in the practice's mode. A time already offered is refused (its
    patients would get a second offer for it); a time a cancellation has just queued for the
    jobs loop is that opening, offered now (so the refill rate counts it as the freed slot)."""
    ensure(actor, Permission.WAITLIST_OFFER)
    now = now or utcnow()
    if start_at.tzinfo is None or end_at.tzinfo is None or not start_at < end_at:
        raise ValidationError("Choose a time range with a start before its end.")
    if end_at <= now:
        raise ValidationError("That time has passed; choose a slot in the future.")
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"There is no provider #{provider_id}.")
    if not provider.active:  # lifecycle.place refuses them: an offer nobody could book
        raise ValidationError(
            f"{provider.name} no longer works at the practice (inactive), so nobody can book "
            "their time: it is not offered to the waitlist. Nothing was sent."
        )
    hold(session, f"waitlist_opening:{provider_id}")  # two managers offering it: one at a time
    # the same freed time, already queued or offered, or matched to nobody so far (its own
    # appointment's, or the very range): offered as that opening, so it is counted once
    same = SlotOpening.status == OpeningStatus.UNFILLED
    same &= (
        SlotOpening.appointment_id == appointment_id
        if appointment_id is not None
        else (SlotOpening.start_at == max(start_at, now)) & (SlotOpening.end_at == end_at)
    )
    live = session.scalars(
        select(SlotOpening)
        .where(
            SlotOpening.provider_id == provider_id,
            SlotOpening.clinic_id == clinic_id,
            SlotOpening.status.in_((OpeningStatus.PENDING, OpeningStatus.OFFERING)) | same,
            SlotOpening.start_at < end_at,
            SlotOpening.end_at > max(start_at, now),
        )
        .order_by(SlotOpening.id)
    ).all()
    clinic = session.get(Clinic, clinic_id)
    if out := next((o for o in live if o.status == OpeningStatus.OFFERING), None):
        since = clinic_time(clinic, out.processed_at or out.created_at)
        raise Conflict(
            f"This time is already offered to the waitlist (since {since}); its offers are on "
            "the Waitlist page. Nothing more was sent."
        )
    opening = (
        live[0]
        if live
        else SlotOpening(
            clinic_id=clinic_id,
            provider_id=provider_id,
            start_at=max(start_at, now),
            end_at=end_at,
            reason="by_hand",
            appointment_id=appointment_id,
            status=OpeningStatus.PENDING,
        )
    )
    opening.by_hand, opening.status = True, OpeningStatus.PENDING  # unfilled: offered again
    session.add(opening)
    session.flush()
    rules = get_rules(session)
    already = _in_line(session, opening)[OfferStatus.QUEUED]  # an offer quiet hours held
    count = open_offers(session, opening, rules, now, base_url)
    line = _in_line(session, opening)  # as it stands now, not only the new
    sent, matched = line[OfferStatus.SENT], line[OfferStatus.SENT] + line[OfferStatus.QUEUED]
    audit.record(
        session,
        actor,
        "slot_offered",
        "slot_opening",
        opening.id,
        details={"matches": count, "start_at": start_at.isoformat()},
    )
    if count == 0 and not matched:
        if opening.end_at <= now + rules.min_notice:  # too close for any offer: say so
            raise ValidationError(
                "That time is too close to offer: no offer goes out for a time starting within "
                f"the minimum notice of {rules.min_notice_minutes} minutes, and this one ends at "
                f"{clinic_time(clinic, opening.end_at)}. Nothing was sent; call a patient you "
                "know could come, or change the minimum notice under Offer rules."
            )
        if not _any_free(session, opening):
            raise ValidationError(
                "That time is no longer free (booked, or outside the provider's hours); nothing "
                "was sent."
            )
        if said := _not_offerable(session, opening, rules, now):
            raise ValidationError(f"{said}; nothing was sent.")
        raise ValidationError(
            "No waitlisted patient matches this slot (service length, days, weekdays, time of "
            "day, provider) with the minimum notice; nothing was sent."
        )
    quiet = not sent and rules.quiet(now, clinic.timezone)
    quiet_end = format_clock(rules.quiet_end, clinic.locale) if quiet else None
    span = clinic_time_range(clinic, opening.start_at, opening.end_at)
    span += f", {FREED_BY.get(opening.reason, opening.reason)}"
    return Offered(opening.id, matched, sent, quiet_end, already, span)


def _not_offerable(session: Session, opening: SlotOpening, rules: Rules, now: datetime) -> str:
    """Why nobody the opening would suit was offered it, naming them ("" when it suits
    nobody): those no message can reach, each with why (in the messages' own words,
    entries.cannot_reach: "Sam Morgan (no consent to email; …)"), and those barred from
    booking online (entries.barred), with what the desk can do for each."""
    unreached, barred_ones = [], []
    for match in find_matches(session, opening, rules, now, everyone=True):
        patient = session.get(Patient, match.entry.patient_id)
        if barred(patient):  # consent recorded would not let them book: the points first
            barred_ones.append(patient.full_name)
        elif (why := cannot_reach(patient)) is not None:
            unreached.append(f"{patient.full_name} ({why})")
    said = []
    if unreached:
        said.append(
            f"No offer can reach the waitlisted patients this slot suits: {', '.join(unreached)}."
            " Record their consent to email or text, with the address, on their record, then "
            "offer it again"
        )
    if barred_ones:
        who = "The others it suits" if unreached else "The waitlisted patients this slot suits"
        said.append(
            f"{who} may not book online (no points left), and an offer books online: "
            f"{', '.join(barred_ones)}. Add points on their record, then offer it again, or call "
            "them and book the time for them"
        )
    return ". ".join(said)


def _in_line(session: Session, opening: SlotOpening) -> Counter[OfferStatus]:
    """The opening's offers queued and sent, counted by status in one read."""
    return Counter(
        dict(
            session.execute(
                select(WaitlistOffer.status, func.count())
                .where(
                    WaitlistOffer.opening_id == opening.id,
                    WaitlistOffer.status.in_((OfferStatus.QUEUED, OfferStatus.SENT)),
                )
                .group_by(WaitlistOffer.status)
            ).all()
        )
    )


def offer_freed(session: Session, actor: Actor, appointment_id: int, *, base_url: str) -> Offered:
    """Offer the time a cancelled appointment held."""
    ensure(actor, Permission.WAITLIST_OFFER)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or appointment.start_at is None or appointment.provider_id is None:
        raise NotFound(f"Appointment #{appointment_id} has no time to offer.")
    return offer_slot(
        session,
        actor,
        clinic_id=appointment.clinic_id,
        provider_id=appointment.provider_id,
        start_at=appointment.start_at,
        end_at=appointment.end_at,
        base_url=base_url,
        appointment_id=appointment.id,
    )


# ---------------------------------------------------------------- the patient's link


@dataclass(frozen=True)
class OfferView:
    patient_name: str
    clinic_name: str
    service_name: str
    provider_name: str
    when: str
    expires: str
    status: str
    closed: str | None = None  # what became of an offer no longer open, for the patient
    terms: str = ""  # who else may take the time, in the mode the offer went out in (TERMS)


def _offer_for(session: Session, raw: str | None) -> tuple[LinkToken | None, WaitlistOffer]:
    """The offer behind a link, with its live token; a link spent, revoked or lapsed with its
    offer (taken by another patient, expired, answered) still finds its own offer, with no
    token, so the patient reads what became of it. Anything else is LinkInvalid."""
    try:
        token = tokens.verify(session, raw, PURPOSE)
    except LinkInvalid:
        token = None
        row = tokens.find(session, raw, PURPOSE)
        if row is None:
            raise
    offer = session.get(WaitlistOffer, (token or row).subject_id)
    if offer is None or offer.token_id != (token or row).id:
        raise LinkInvalid()
    return token, offer


def offer_view(session: Session, raw: str | None, *, now: datetime | None = None) -> OfferView:
    now = now or utcnow()
    token, offer = _offer_for(session, raw)
    context = _context(session, offer)
    clinic = session.get(Clinic, offer.opening.clinic_id)
    return OfferView(
        session.get(Patient, offer.patient_id).full_name,
        str(context["clinic_name"]),
        str(context["service_name"]),
        str(context["provider_name"]),
        str(context["when"]),
        clinic_time(clinic, offer.expires_at, zone=True),
        offer.status.value,
        _no_longer_offered(session, offer)
        if token and _open(offer, now)
        else _closed(session, offer, now),
        TERMS[offer.mode] if offer.mode else "",
    )


TAKEN = "Sorry, this time has just been taken by another patient. You stay on our waitlist."
CHANGED = (
    "Sorry, we cannot book this time for you: the clinic's schedule has changed since we "
    "offered it. You stay on our waitlist."
)


def accept_offer(session: Session, raw: str | None, *, now: datetime | None = None) -> Appointment:
    """The link in the offer: book the offered slot through the life cycle; the others are told
    it is taken."""
    now = now or utcnow()
    token, offer = _offer_for(session, raw)
    if token is None:
        raise Conflict(_closed(session, offer, now))
    return _accept(session, offer, now, token)


def accept_own_offer(
    session: Session, patient_id: int, offer_id: int, *, now: datetime | None = None
) -> Appointment:
    """The portal: the signed-in patient accepts an offer of theirs, as the link would (another
    patient's offer is the same NotFound as an unknown one). The link then reads as accepted."""
    offer = session.get(WaitlistOffer, offer_id)
    if offer is None or offer.patient_id != patient_id:
        raise NotFound("This offer is not yours or no longer exists.")
    return _accept(session, offer, now or utcnow(), None)


def _locked_opening(session: Session, offer: WaitlistOffer) -> SlotOpening:
    """The offer's opening, locked and read afresh: what answers an offer locks it before it
    writes any offer of it (the jobs loop's expire_offers too), so two answers wait in turn."""
    return session.execute(
        select(SlotOpening)
        .where(SlotOpening.id == offer.opening_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _accept(
    session: Session, offer: WaitlistOffer, now: datetime, token: LinkToken | None
) -> Appointment:
    """Either way in: the link's token is spent with the booking; the portal has none."""
    opening = _locked_opening(session, offer)
    session.get(  # its entry next: withdrawn meanwhile, the offer is (core.waitlist.entries)
        WaitlistEntry, offer.entry_id, with_for_update=True, populate_existing=True
    )
    session.refresh(offer)
    if offer.status != OfferStatus.SENT or opening.status != OpeningStatus.OFFERING:
        raise Conflict(_closed(session, offer, now))
    if offer.expires_at <= now:
        raise Conflict(EXPIRED)
    entry = offer.entry
    if refused := _paused(session, offer) or _no_longer_offered(session, offer):
        raise Conflict(refused)  # barred, or its treatment withdrawn, since it went out
    service_ids = [s.id for s in services_of(session, entry)]
    missing = skills.not_performed(session, opening.provider_id, service_ids)
    if missing:  # their services changed since the offer went out: nobody took the time
        provider = session.get(Provider, opening.provider_id)
        raise Conflict(
            f"Sorry, we cannot book this time for you: {provider.name} does not perform "
            f"{' or '.join(missing)}. You stay on our waitlist."
        )
    try:
        with session.begin_nested():
            booking = NewBooking(
                clinic_id=opening.clinic_id,
                provider_id=opening.provider_id,
                start_at=offer.start_at,
                patient_id=offer.patient_id,
                service_ids=service_ids,
                package_id=entry.package_id,
                source=Source.ONLINE,
                mode=MODE,
                notes="Booked from the waitlist.",
            )
            appointment = schedule_appointment(session, SYSTEM, booking)
    except PatientBusy as busy:  # their own visit then: nobody took the time, the offer holds
        raise Conflict(_own_visit(session, offer, busy.visits[0])) from None
    except Conflict:  # the provider's time (or a room it needs) was booked meanwhile
        _close_read(session, offer, now)
        _close_after_rollback(session, offer.id, now)
        raise Conflict(TAKEN) from None
    except ValidationError:  # the schedule changed (hours, time off, services withdrawn)
        raise Conflict(CHANGED) from None
    if token is not None:  # spent with the booking only: a refusal leaves the link working
        tokens.consume(session, token)
    offer.status, offer.answered_at, offer.appointment_id = (
        OfferStatus.ACCEPTED,
        now,
        appointment.id,
    )
    entry.status, entry.closed_at = WaitlistStatus.BOOKED, now
    entry.booked_appointment_id = appointment.id
    opening.status, opening.filled_at = OpeningStatus.FILLED, now
    opening.filled_appointment_id = appointment.id
    _queue_rest(session, opening, appointment, now)
    patient = session.get(Patient, offer.patient_id)
    audit.record(
        session,
        patient_actor(patient.full_name),
        "waitlist_offer_accepted",
        "waitlist_offer",
        offer.id,
        patient_id=offer.patient_id,
        from_status=OfferStatus.SENT.value,
        to_status=OfferStatus.ACCEPTED.value,
        details={"appointment_id": appointment.id, "opening_id": opening.id},
    )
    _tell_others(session, opening, offer, now)
    _withdraw_elsewhere(session, offer, now)
    session.flush()  # the opening's version check: a concurrent winner surfaces here
    return appointment


EXPIRED = (
    "This offer has expired, so the time is no longer held for you. You stay on our waitlist: "
    "we will write again when a time frees up."
)
REST = "rest"  # what a booking from the waitlist left of a longer freed time (not a new freed slot)
FREED_BY = {  # an opening's reason as the Offers table words it
    "cancelled": "cancellation",
    "moved": "visit moved",
    "declined": "proposal declined",
    "hours": "hours added",
    "time_off": "time off removed",
    "by_hand": "offered by hand",
    REST: "rest of a waitlist booking",
}


def _queue_rest(
    session: Session, opening: SlotOpening, appointment: Appointment, now: datetime
) -> None:
    """A shorter visit booked into a longer freed time leaves the rest free: it is queued for
    the jobs loop as its own opening (before and after the visit, each at least STEP long), so
    the next in line is offered it. Its reason is not a freed one: the refill figures count the
    freed time once, filled once."""
    for start, end in (
        (opening.start_at, appointment.start_at),
        (appointment.end_at, opening.end_at),
    ):
        if end - max(start, now) >= STEP:
            slot_opened(
                session,
                clinic_id=opening.clinic_id,
                provider_id=opening.provider_id,
                start_at=start,
                end_at=end,
                reason=REST,
                appointment_id=opening.appointment_id,
                now=now,
            )


def _own_visit(session: Session, offer: WaitlistOffer, visit: Appointment) -> str:
    """The patient's own clash (moves.own_visit), in the offer's clinic zone and locale."""
    clinic = session.get(Clinic, offer.opening.clinic_id)
    expires = clinic_time(clinic, offer.expires_at, zone=True)
    then = f"book this time before {expires}. You stay on our waitlist."
    return own_visit(clinic, visit, verb="book", kind="offered", then=then)


def _open(offer: WaitlistOffer, now: datetime) -> bool:
    return offer.status == OfferStatus.SENT and offer.expires_at > now


def _closed(session: Session, offer: WaitlistOffer, now: datetime) -> str:
    """What became of an offer no longer open, as its patient reads it."""
    if offer.status == OfferStatus.EXPIRED or (
        offer.status == OfferStatus.SENT and offer.expires_at <= now
    ):
        return EXPIRED
    if offer.status == OfferStatus.ACCEPTED:
        return "You have accepted this time already; the confirmation is in your inbox."
    if offer.status == OfferStatus.DECLINED:
        return "You have passed this time on to the next patient. You stay on our waitlist."
    if offer.status == OfferStatus.WITHDRAWN:
        return _withdrawn(session, offer)
    return TAKEN


def _withdrawn(session: Session, offer: WaitlistOffer) -> str:
    """Why a sent offer was withdrawn, as its patient reads it: another time from the waitlist
    booked (_withdraw_elsewhere), their entry withdrawn by them or the practice (entries), what
    it waits for withdrawn (_gone_meanwhile: the words accepting it is refused with), or the
    time gone from the schedule (_gone_meanwhile)."""
    entry = offer.entry
    if entry.status == WaitlistStatus.BOOKED:
        return "This offer no longer stands: you have booked another time from our waitlist."
    if entry.status == WaitlistStatus.WITHDRAWN:
        return (
            f"This offer no longer stands: your place on our waitlist for "
            f"{treatment(session, entry)} was withdrawn, so nothing was booked. If you did not "
            f"ask for this, please call {_call(session, offer)}."
        )
    if gone := _no_longer_offered(session, offer):  # closed by _gone_meanwhile
        return gone
    return (
        "This offer no longer stands: the time is no longer free, as the clinic's schedule has "
        "changed. Nothing was booked; you stay on our waitlist."
    )


def _call(session: Session, offer: WaitlistOffer) -> str:
    """The offer's clinic to call, with its number: "Harbour Street Clinic on 020 …"."""
    clinic = session.get(Clinic, offer.opening.clinic_id)
    return clinic.name + (f" on {clinic.phone}" if clinic.phone else "")


def _paused(session: Session, offer: WaitlistOffer) -> str | None:
    """The patient's online booking barred since the offer went out (no points left): why
    accepting is refused, or None."""
    if not barred(session.get(Patient, offer.patient_id)):
        return None
    return (
        "Sorry, we cannot book this time for you: your online booking is paused (no points "
        f"left), so please call {_call(session, offer)} to book."
    )


def _no_longer_offered(session: Session, offer: WaitlistOffer) -> str | None:
    """What the entry waits for withdrawn from the practice's list since the offer went out
    (entries.unbookable): why accepting is refused, and what the link's page reads as what
    became of the offer (it cannot be booked at any time), or None."""
    match stopped_by(session, offer.entry):
        case ("treatment", _):
            return (
                f"Sorry, we cannot book this time for you: {treatment(session, offer.entry)} is "
                f"no longer offered as it was when we wrote. Please call {_call(session, offer)} "
                "to choose another treatment or time."
            )
        case ("provider", name):  # the treatment still is: another provider may give it
            return (
                f"Sorry, we cannot book this time for you: {name} no longer works at the "
                f"practice. Please call {_call(session, offer)} to choose another provider or "
                "time."
            )
    return None


NOT_SENT_TAKEN = "Not sent: another patient took the time before this offer went out."
NOT_SENT_CHANGED = "Not sent: the time left the clinic's schedule before this offer went out."
NOT_SENT_STOPPED = (
    "Not sent: the practice withdrew what the entry waits for before this offer went out."
)
NOT_SENT_BOOKED = (
    "Not sent: the patient booked another time from the waitlist before this offer went out."
)


def _tell_others(session: Session, opening: SlotOpening, winner: WaitlistOffer, now) -> None:
    """The opening's other offers still out are told it was taken (those in line withdrawn),
    read locked and afresh: one whose entry is being withdrawn meanwhile waits for that, and
    then stays withdrawn, its patient told nothing (before, it was written over as taken and
    its patient, gone from the waitlist, told so)."""
    others = session.scalars(
        select(WaitlistOffer)
        .where(
            WaitlistOffer.opening_id == opening.id,
            WaitlistOffer.id != winner.id,
            WaitlistOffer.status.in_(OPEN),
        )
        .order_by(WaitlistOffer.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for other in others:
        if other.status == OfferStatus.SENT:
            _taken(session, other, now)
        else:
            other.status, other.answered_at = OfferStatus.WITHDRAWN, now


def _close_read(session: Session, offer: WaitlistOffer, now: datetime) -> None:
    """A sent offer whose patient has just read on accepting that the time was taken closes
    as taken, told nothing more (the jobs loop would otherwise tell them again): its link
    revoked (it then says "taken"), an offer message still unsent not sent."""
    offer.status, offer.answered_at = OfferStatus.TAKEN, now
    if offer.token_id:
        tokens.revoke(session, offer.token_id)
    notify.withdraw_offer_unsent(session, offer.id, NOT_SENT_TAKEN)


def _close_after_rollback(session: Session, offer_id: int, now: datetime) -> None:
    """The refusal rolls the caller's transaction back, the close with it: it is made again in
    its own transaction once that rollback is done (an offer still sent only; a caller that
    commits instead keeps the close made in its own)."""
    bind = session.get_bind()

    def close(_: Session) -> None:
        with Session(bind) as own, own.begin():
            offer = own.get(WaitlistOffer, offer_id, with_for_update=True)
            if offer is not None and offer.status == OfferStatus.SENT:
                _close_read(own, offer, now)

    event.listen(session, "after_rollback", close, once=True)


def _taken(session: Session, offer: WaitlistOffer, now: datetime) -> None:
    """A sent offer's time went to someone else (`_close_and_tell`)."""
    _close_and_tell(session, offer, now, OfferStatus.TAKEN, "waitlist_taken", NOT_SENT_TAKEN)


def _close_and_tell(
    session: Session,
    offer: WaitlistOffer,
    now: datetime,
    status,
    template: str,
    unsent: str,
    **extra: str,
) -> None:
    """A sent offer closes: its link is revoked and its patient told (`template`, with `extra`
    filled in), once, only where the offer reached them; an offer message still waiting (the
    mail server down, say) is not sent (`unsent` says why), and nor is the telling."""
    offer.status, offer.answered_at = status, now
    if offer.token_id:
        tokens.revoke(session, offer.token_id)
    reached, _ = notify.offer_reached_channels(session, offer.id)
    notify.withdraw_offer_unsent(session, offer.id, unsent)
    if reached:
        notify.queue_for_patient(
            session,
            session.get(Patient, offer.patient_id),
            template,
            _context(session, offer, **extra),
            channels=reached,
            waitlist_offer_id=offer.id,
        )


def _gone_meanwhile(session: Session, opening: SlotOpening, now: datetime) -> None:
    """Sent offers whose time went meanwhile are closed and their patients told, rather than
    left holding a time nobody can book until the hold ends (and then reading that it expired):
    what the entry waits for withdrawn by the practice (its treatment, or the provider it names:
    entries.stopped_by) as withdrawn, told so ("waitlist_stopped": the entry is offered nothing
    more, so not "you stay on our waitlist"); the opening's provider deactivated, for an entry
    for any provider, as withdrawn, told the schedule changed (it stays waiting for others);
    booked by the desk (or its cancellation undone) as taken; left out of the schedule (time off
    or an out-of-office block added, hours changed) as withdrawn. A time held by the patient's
    own visit stays theirs, as accepting says. The practice's set-up (core.practice) sits below
    the waitlist, so the jobs loop's round does this, not the deactivation itself."""
    for offer in session.scalars(
        select(WaitlistOffer).where(
            WaitlistOffer.opening_id == opening.id,
            WaitlistOffer.status == OfferStatus.SENT,
            WaitlistOffer.expires_at > now,
        )
    ).all():
        if stopped := _stopped(session, offer.entry):
            _close_and_tell(
                session,
                offer,
                now,
                OfferStatus.WITHDRAWN,
                "waitlist_stopped",
                NOT_SENT_STOPPED,
                stopped=stopped,
            )
            continue
        if not _provider_active(session, opening):
            _close_and_tell(
                session,
                offer,
                now,
                OfferStatus.WITHDRAWN,
                "waitlist_withdrawn",
                NOT_SENT_CHANGED,
            )
            continue
        visit = timing(session, offer.entry)
        end = offer.start_at + timedelta(minutes=visit.minutes)
        found = _clashes(session, opening, offer.start_at, end, visit)
        visits = [a for a in found if a.kind == AppointmentKind.APPOINTMENT]
        whose = {a.patient.id if a.patient is not None else None for a in visits}
        if whose - {offer.patient_id}:  # their own visit then: the offer stays theirs (_accept)
            _taken(session, offer, now)
        elif len(visits) < len(found) or not _working(session, opening, offer.start_at, end, visit):
            _close_and_tell(
                session,
                offer,
                now,
                OfferStatus.WITHDRAWN,
                "waitlist_withdrawn",
                NOT_SENT_CHANGED,
            )


def _stopped(session: Session, entry: WaitlistEntry) -> str | None:
    """What the practice withdrew that the entry waits for, as the "waitlist_stopped" message
    words it after "as" (the portal's words, core.portal.waitlist): "the practice no longer
    offers Peel", "Dr Test no longer works at the practice"; None when nothing is."""
    match stopped_by(session, entry):
        case ("treatment", names):
            return f"the practice no longer offers {names}"
        case ("provider", name):
            return f"{name} no longer works at the practice"
    return None


def _withdraw_elsewhere(session: Session, winner: WaitlistOffer, now: datetime) -> None:
    """The entry is booked: its offers for other times are withdrawn (their links then say so,
    and a message still waiting to go out is not sent); the jobs loop passes those times on to
    the next patient in line."""
    for other in session.scalars(
        select(WaitlistOffer).where(
            WaitlistOffer.entry_id == winner.entry_id,
            WaitlistOffer.id != winner.id,
            WaitlistOffer.status.in_(OPEN),
        )
    ):
        other.status, other.answered_at = OfferStatus.WITHDRAWN, now
        if other.token_id:
            tokens.revoke(session, other.token_id)
            notify.withdraw_offer_unsent(session, other.id, NOT_SENT_BOOKED)


def decline_offer(session: Session, raw: str | None, *, base_url: str) -> None:
    """The link's "No, thank you": the time goes to the next in line. Locks the opening first
    and reads the offer afresh, as accepting does: declining wrote the offer, then the opening,
    while another patient's accept held the opening and wrote this offer as taken (a deadlock
    on PostgreSQL); now it waits for that accept and says the time was taken."""
    now = utcnow()
    token, offer = _offer_for(session, raw)
    if token is None:
        raise Conflict(_closed(session, offer, now))
    opening = _locked_opening(session, offer)
    session.refresh(offer)
    if offer.status != OfferStatus.SENT:
        raise Conflict(_closed(session, offer, now))
    tokens.consume(session, token)
    offer.status, offer.answered_at = OfferStatus.DECLINED, now
    session.flush()
    _advance(session, opening, get_rules(session), now, base_url)


# ---------------------------------------------------------------- what managers see


@dataclass(frozen=True)
class OfferRow:
    offer_id: int
    opening_id: int
    reason: str
    slot: str
    provider: str
    patient: str
    service: str
    rank: int
    status: str
    sent: str
    expires: str
    why: str = ""  # the offer's state in words: why it stands where it does
    mode: Mode | None = None  # the mode it went out in (None: not sent yet)


def _why(
    session: Session, offer: WaitlistOffer, opening: SlotOpening, entry: WaitlistEntry, patient
) -> str:
    """Why an offer is in its state, for the staff's Offers table (derived from the offer, its
    opening and its entry; nothing extra is stored)."""
    status = offer.status
    if status == OfferStatus.QUEUED:
        if opening.status == OpeningStatus.PENDING:
            return "waits for quiet hours to end"
        return f"in line, number {offer.rank}"
    if status == OfferStatus.SENT:
        return "waiting for the patient's answer"
    if status == OfferStatus.ACCEPTED:
        return "booked by the patient"
    if status == OfferStatus.TAKEN:
        if opening.status == OpeningStatus.FILLED:
            return "another patient accepted first"
        return "the time was booked otherwise"
    if status == OfferStatus.DECLINED:
        return "passed on by the patient"
    if status == OfferStatus.EXPIRED:
        return "no answer before the hold ended"
    if entry.status == WaitlistStatus.BOOKED and entry.booked_appointment_id != (
        opening.filled_appointment_id
    ):
        return "the patient booked another time from the waitlist"
    if entry.status == WaitlistStatus.WITHDRAWN:
        return "the entry was withdrawn"
    if opening.status == OpeningStatus.FILLED:
        return "another patient accepted first"
    if gone := unbookable(session, entry):
        return gone.removeprefix("None: ").split(";")[0]
    if not _provider_active(session, opening):
        return "the provider was deactivated"
    if not notify.channels_for(patient)[0]:
        return "no message can reach the patient (consent or address)"
    if barred(patient):
        return "the patient may not book online (no points left)"
    return "the time was no longer free or too close"


def list_offers(
    session: Session, actor: Actor, *, clinic_id: int, limit: int = 100
) -> list[OfferRow]:
    ensure(actor, Permission.WAITLIST_OFFER)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    rows = session.execute(
        select(
            WaitlistOffer,
            SlotOpening,
            Patient,
            func.coalesce(Package.name, Service.name),  # a package by its name
            Provider.name,
            WaitlistEntry,
        )
        .join(SlotOpening, SlotOpening.id == WaitlistOffer.opening_id)
        .join(Patient, Patient.id == WaitlistOffer.patient_id)
        .join(WaitlistEntry, WaitlistEntry.id == WaitlistOffer.entry_id)
        .join(Service, Service.id == WaitlistEntry.service_id)
        .outerjoin(Package, Package.id == WaitlistEntry.package_id)
        .join(Provider, Provider.id == SlotOpening.provider_id)
        .where(SlotOpening.clinic_id == clinic_id)
        .order_by(SlotOpening.id.desc(), WaitlistOffer.rank)
        .limit(limit)
    )
    return [
        OfferRow(
            o.id,
            s.id,
            s.reason,
            clinic_time(clinic, o.start_at),
            provider,
            p.full_name,
            service,
            o.rank,
            o.status.value,
            clinic_time(clinic, o.sent_at),
            clinic_time(clinic, o.expires_at),
            _why(session, o, s, entry, p),
            o.mode,
        )
        for o, s, p, service, provider, entry in rows
    ]


@dataclass(frozen=True)
class RefillFigures:
    opened: int  # freed slots (cancellations, moves, declines; not added hours)
    offered: int
    filled: int
    median_minutes_to_fill: float | None

    @property
    def refill_rate(self) -> float | None:
        return self.filled / self.opened if self.opened else None


FREED = ("cancelled", "moved", "declined", "by_hand")


def refill_figures(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int | None,
    first: date,
    last: date,
    provider_id: int | None = None,
) -> RefillFigures:
    """Of the slots freed on the clinic-local days `first`..`last` (each clinic's own days, as
    the cancellation figures count them, so all clinics add up to the sum of the clinics),
    optionally of one provider: how many the waitlist refilled, and how fast."""
    ensure(actor, Permission.ANALYTICS_READ)
    if last < first:
        raise ValidationError("The end date is before the start date; swap them.")
    zones = select(Clinic.id, Clinic.timezone).order_by(Clinic.id)
    if clinic_id is not None:
        zones = zones.where(Clinic.id == clinic_id)
    days = []  # one (clinic_id, created_at) index range per clinic
    for cid, tz in session.execute(zones):
        since, until = local_days_bounds(first, last, tz)
        days.append(
            and_(
                SlotOpening.clinic_id == cid,
                SlotOpening.created_at >= since,
                SlotOpening.created_at < until,
            )
        )
    where = [or_(*days) if days else false(), SlotOpening.reason.in_(FREED)]
    if provider_id is not None:
        where.append(SlotOpening.provider_id == provider_id)
    sent = (
        select(WaitlistOffer.id)
        .where(WaitlistOffer.opening_id == SlotOpening.id, WaitlistOffer.sent_at.is_not(None))
        .exists()
    )
    opened, offered, filled = session.execute(
        select(
            func.count(),
            func.count().filter(sent),  # at least one offer went out (not merely matched)
            func.count().filter(SlotOpening.status == OpeningStatus.FILLED),
        ).where(*where)
    ).one()
    # the median of the latest 10,000 fills (of an even number: the mean of the middle two)
    waits = [
        (filled_at - created).total_seconds() / 60
        for created, filled_at in session.execute(
            select(SlotOpening.created_at, SlotOpening.filled_at)
            .where(*where, SlotOpening.status == OpeningStatus.FILLED)
            .order_by(SlotOpening.created_at.desc())
            .limit(10000)
        )
    ]
    median = statistics.median(waits) if waits else None
    return RefillFigures(opened, offered, filled, median)
