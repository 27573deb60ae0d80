"""Passwordless sign-in to the patient portal and the portal's own short sessions.

Enrolment opens the portal (a one-time sign-in link is issued with it). Afterwards the patient
types their email address or phone number and, if it belongs to an enrolled patient, receives a
one-time sign-in link (purpose `portal`: 256 random bits stored as a hash, single use, expiring
after SIGN_IN_MINUTES); a family sharing one address or number gets one link per enrolled
member, each in a message naming them. The answer is the same whether or not the address is
known, and requests are rate-limited per address, strictly (it protects the patient's inbox), and
per network, loosely: a waiting room's Wi-Fi shows every patient in it as one address (in the
database, so across instances).

The link opens `/_clinicdesk/portal/sign-in` (serve.py), which exchanges it for a portal session:
a random token in an HttpOnly cookie, its hash in `portal_sessions`, ended after the idle limit
(30 minutes by default). Portal sessions are not staff sessions: nothing here ever yields a
staff actor. Housekeeping (core.practice.housekeeping) deletes a session not seen for 30 days,
as it does staff sessions: the longest portal idle limit is a day, so it has ended; a cookie
naming it then finds nothing, which `touch` answers as it answers an ended session (None). The
sign-ins stay in the audit events.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit, rate_limits, tokens
from core.kernel.authz import patient_actor
from core.kernel.errors import LinkInvalid, ValidationError
from core.kernel.phones import bare_phone, booked_regions, phone_region, practice_regions
from core.kernel.text import clean
from core.messaging import notify
from core.patients import invitations
from db.models import Channel, Clinic, Patient, PortalSession
from db.types import utcnow

PURPOSE = "portal"
COOKIE = "clinicdesk_portal"
SIGN_IN_MINUTES = 15
LIMIT_PER_CONTACT = 5  # sign-in requests an hour per email address or phone number
LIMIT_PER_NETWORK = 60  # ... per network: a busy waiting room's Wi-Fi, not a script
SHARED_MAX = 6  # enrolled patients one address or number signs in (a family shares them)
ROUTE = "/_clinicdesk/portal/sign-in"
NEUTRAL = (
    "If this email address or mobile number belongs to a patient enrolled in our portal, we "
    "have sent a sign-in link, by email or text message as they agreed to receive messages. "
    f"It works once and expires in {SIGN_IN_MINUTES} minutes. If nothing arrives within a few "
    "minutes, call the practice: they can check the email address and mobile number they have "
    "for you, and how you agreed to be contacted."
)
TOO_MANY = (
    "There have been too many sign-in requests for this address or from this network. "
    "Please wait an hour and try again, or call the practice."
)
NO_SPACES = (
    "An email address has no spaces in it. Please type yours again without the space (a dot, "
    "a hyphen or nothing may belong there), or use your mobile number."
)
_SPACES = re.compile(r"\s")
_BESIDE_MARK = re.compile(r"\s*([.@+_-])\s*")


def _key(kind: str, value: str) -> str:
    return f"portal:{kind}:" + hashlib.sha256(value.encode()).hexdigest()


def network(ip: str) -> str:
    """The network a request is counted against: an IPv4 address itself (a practice's Wi-Fi is
    one), an IPv6 address's /64 (a home or a phone holds a whole /64 and a script could take a
    new address of it for every request)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


def _typed_email(typed: str) -> str:
    """The typed address as patient records store theirs (core.patients.records: cleaned,
    lower case; a stored address never holds a space). A space beside @, a dot, a hyphen, + or
    _ goes ('alex .morgan@example.org', a phone keyboard's 'alex@ example.org'); one between two
    letters could stand for a dot, a hyphen or nothing ('alex morgan@…'): NO_SPACES asks for the
    address again, the same for every address (it says nothing of who is enrolled)."""
    address = _BESIDE_MARK.sub(r"\1", (clean(typed, field="email address") or "").strip())
    if _SPACES.search(address):
        raise ValidationError(NO_SPACES)
    return address.lower()


def phone_readings(typed: str, regions: Iterable[str]) -> set[str]:
    """A phone number in E.164 (+447700900123), read in each region a national form could
    belong to (an international form reads the same in all): '+44 7700 900123',
    '07700 900123' and '447700900123' in GB are one number."""
    found = set()
    for region in regions:
        try:
            number = phonenumbers.parse(typed, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return found


def patient_phone_regions(session: Session, patient_ids: Iterable[int]) -> dict[int, set[str]]:
    """The countries each patient's stored phone number, if national, may be read in: those of
    every clinic they have an appointment at (any status, any time), else the first clinic's
    (as invitations.clinic_for). Not every practice country: '07700 900123' is a UK number, but
    read in Germany it is +49 7700 900123, a stranger's (the other countries are read only
    for a number that can be none of these, _read_abroad)."""
    ids = set(patient_ids)
    booked = booked_regions(session, ids)
    found: dict[int, set[str]] = {patient_id: set(booked.get(patient_id, ())) for patient_id in ids}
    unbooked = [regions for regions in found.values() if not regions]
    if unbooked:
        first = phone_region(session.scalar(select(Clinic.locale).order_by(Clinic.id).limit(1)))
        for regions in unbooked:
            regions.add(first)
    return found


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number or "")


def patients_by_phone(session: Session, number: str, limit: int = 2) -> list[Patient]:
    """The patients whose stored phone is this number (read in the practice's countries): the
    national and international forms of one number match, a number of another country that
    only ends in the same digits does not. Records merged into another are left out (their
    replies belong to the record kept). At most `limit`."""
    if len(_digits(number)) < 7:
        return []
    readings = phone_readings(number, practice_regions(session))
    return _with_number(session, readings, Patient.merged_into_id.is_(None), limit=limit)


def _with_number(session: Session, readings: set[str], *where, limit: int) -> list[Patient]:
    """The patients (meeting `where`) whose stored phone is one of `readings` (E.164): a stored
    national form read in the country of each clinic they booked at (patient_phone_regions),
    or, when it is no number there, in the one other country of the practice where it can be
    one (_read_abroad); an international form as it stands. One query finds the stored numbers
    ending in the same seven digits (usually none or one); only those are read in full."""
    if not readings:
        return []
    tails = or_(*(bare_phone().like(f"%{n[-7:]}") for n in sorted(readings)))
    query = select(Patient).where(tails, *where).order_by(Patient.id).limit(100)
    candidates = list(session.scalars(query))
    regions = patient_phone_regions(session, [p.id for p in candidates])
    practice: list[str] | None = None
    found = []
    for patient in candidates:
        numbers = phone_readings(patient.phone or "", regions[patient.id])
        if not numbers:
            practice = practice_regions(session) if practice is None else practice
            numbers = _read_abroad(patient.phone or "", set(practice) - regions[patient.id])
        if numbers & readings:
            found.append(patient)
    return found[:limit]


def _read_abroad(stored: str, regions: Iterable[str]) -> set[str]:
    """A stored national number that is no number in any country the patient booked in (a UK
    '07700 900123' of a patient who booked only in Paris: French numbers have nine digits
    after the 0), read in the practice's other countries: its reading when exactly one of them
    can own it (+44 7700 900123 in a London-and-Paris practice), else none. With London,
    Paris and Berlin it could be +44 or +49 7700 900123; a stranger's number must never reach
    the patient, so neither is theirs (stored with its +44, it always is)."""
    found = phone_readings(stored, regions)
    return found if len(found) == 1 else set()


def _normalise(session: Session, address: str) -> tuple[str, str, set[str]]:
    """('email', the address as stored, _typed_email) or ('phone', its canonical form, its
    E.164 readings): one key for every form of one address or number, so the rate limit counts
    them together."""
    address = (address or "").strip()
    if "@" in address:
        return "email", _typed_email(address), set()
    digits = re.sub(r"\D", "", address)
    if len(digits) < 6:
        raise ValidationError("Please enter your email address or your mobile number.")
    numbers = phone_readings(address, practice_regions(session))
    return "phone", min(numbers, default=digits), numbers


def phone_key(session: Session, typed: str) -> str:
    """One key for every form of one number, for counting requests (a rate limit): its E.164
    reading in the practice's countries (the first of several), else its digits."""
    return min(phone_readings(typed, practice_regions(session)), default=_digits(typed))


def _enrolled_patients(session: Session, kind: str, value: str, numbers: set[str]) -> list[Patient]:
    """The enrolled patients with this email address, or whose stored phone is one of
    `numbers` (_with_number): more than one when a family shares it, each with a portal of
    their own (at most SHARED_MAX)."""
    # a duplicate merged into another record signs in no more (core.patients.merge)
    enrolled = and_(Patient.portal_enrolled_at.is_not(None), Patient.merged_into_id.is_(None))
    if kind == "email":
        match = func.lower(Patient.email) == value
        query = select(Patient).where(enrolled, match).order_by(Patient.id).limit(SHARED_MAX)
        return list(session.scalars(query))
    return _with_number(session, numbers, enrolled, limit=SHARED_MAX)


def sign_in_link(base_url: str, raw: str) -> str:
    return f"{base_url.rstrip('/')}{ROUTE}?t={raw}"


def issue_sign_in(session: Session, patient_id: int) -> str:
    """A fresh one-time sign-in token for the patient (after enrolment, or by request)."""
    issued = tokens.issue(session, PURPOSE, patient_id, timedelta(minutes=SIGN_IN_MINUTES))
    return issued.raw


def request_sign_in(
    session: Session,
    address: str,
    *,
    base_url: str,
    ip: str | None = None,
    now: datetime | None = None,
) -> str:
    """Send a sign-in link to an enrolled patient's email or phone; the same answer for any
    address. Over the hourly limit (per address, or per network: `ip` is the client's, see
    README) the request is refused, also alike."""
    kind, value, numbers = _normalise(session, address)
    now = now or utcnow()
    limits = {_key(kind, value): LIMIT_PER_CONTACT}
    if ip:
        limits[_key("ip", network(ip))] = LIMIT_PER_NETWORK
    if rate_limits.over_limit(session, limits, now):
        raise ValidationError(TOO_MANY)
    rate_limits.hit(session, limits, now)
    # a family sharing one address or number: each enrolled member gets their own link, in a
    # message naming them, so every one of them can reach their own portal
    for patient in _enrolled_patients(session, kind, value, numbers):
        channel = _channel(patient, Channel.EMAIL if kind == "email" else Channel.SMS)
        if channel is None:  # no consent to either: nothing is sent (the desk reads why)
            audit.record(
                session,
                patient_actor(patient.first_name, via="portal"),
                "portal_sign_in_requested",
                "patient",
                patient.id,
                patient_id=patient.id,
                details={"by": kind, "sent": "nothing: no consent to email or text messages"},
            )
            continue
        raw = issue_sign_in(session, patient.id)
        clinic = invitations.clinic_for(session, patient.id)
        notify.queue_for_patient(
            session,
            patient,
            "portal_sign_in",
            {
                "clinic_name": clinic.name if clinic else "",
                "clinic_phone": clinic.phone if clinic else "",
                "minutes": SIGN_IN_MINUTES,
                "link": sign_in_link(base_url, raw),
            },
            channels=[channel],
        )
        audit.record(
            session,
            patient_actor(patient.first_name, via="portal"),
            "portal_sign_in_requested",
            "patient",
            patient.id,
            patient_id=patient.id,
            details={"by": kind, "sent": channel.value},
        )
    return NEUTRAL


def _channel(patient: Patient, typed: Channel) -> Channel | None:
    """Where the patient's link goes: the kind of address typed when they agreed to messages
    there, else their other address when they agreed to those (a patient who consented to
    email only and typed their mobile number was sent nothing, and told nothing: the link now
    goes to their email), else nowhere. The answer on the screen is the same either way."""
    usable, _ = notify.channels_for(patient)
    return typed if typed in usable else next(iter(usable), None)


def start_session(session: Session, raw: str | None, *, now: datetime | None = None) -> str:
    """Exchange a sign-in token (once) for a portal session; returns the cookie's value."""
    token = tokens.verify(session, raw, PURPOSE, now=now)
    patient = session.get(Patient, token.subject_id)
    if patient is None or patient.portal_enrolled_at is None or patient.merged_into_id:
        raise LinkInvalid()
    tokens.consume(session, token)
    cookie = secrets.token_urlsafe(32)
    moment = now or utcnow()
    session.add(
        PortalSession(
            token_hash=tokens.hash_token(cookie),
            patient_id=patient.id,
            created_at=moment,
            last_seen_at=moment,
        )
    )
    audit.record(
        session,
        patient_actor(patient.first_name, via="portal"),
        "portal_signed_in",
        "patient",
        patient.id,
        patient_id=patient.id,
    )
    return cookie


def session_id_for(session: Session, cookie: str | None) -> int | None:
    """The portal session a cookie names (ended or not), or None."""
    if not cookie or len(cookie) > 128:
        return None
    return session.scalar(
        select(PortalSession.id).where(PortalSession.token_hash == tokens.hash_token(cookie))
    )


def touch(
    session: Session, session_id: int | None, idle_minutes: int, *, now: datetime | None = None
) -> int | None:
    """The signed-in patient's id for a live portal session, touching it; None when it is
    unknown, ended, or idle longer than `idle_minutes` (it then ends)."""
    row = session.get(PortalSession, session_id) if session_id else None
    now = now or utcnow()
    if row is None or row.ended_at is not None:
        return None
    if row.last_seen_at <= now - timedelta(minutes=idle_minutes):
        row.ended_at = now
        return None
    row.last_seen_at = now
    return row.patient_id


def resume(
    session: Session, cookie: str | None, idle_minutes: int, *, now: datetime | None = None
) -> int | None:
    """The signed-in patient's id for a portal cookie (see `touch`)."""
    return touch(session, session_id_for(session, cookie), idle_minutes, now=now)


def signed_in_already(
    session: Session, raw: str | None, cookie: str | None, idle_minutes: int
) -> bool:
    """Whether a sign-in link that opens no session any more (used, expired) was tapped in a
    browser still signed in as the link's own patient (the email opened again): the portal
    opens for them instead of the dead link's page. Another patient's link, or no live
    session, gets the dead link's page, as before."""
    token = tokens.find(session, raw, PURPOSE)
    if token is None:
        return False
    return resume(session, cookie, idle_minutes) == token.subject_id


def end_session(session: Session, session_id: int | None) -> None:
    row = session.get(PortalSession, session_id) if session_id else None
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
