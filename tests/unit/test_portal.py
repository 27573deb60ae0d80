"""The patient portal: passwordless sign-in, short sessions, rate limits, a patient
sees and acts on their own data only, survey points, late cancellation from the portal."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from core.feedback import surveys
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import Conflict, LinkInvalid, NotFound, ValidationError
from core.kernel.money import clinic_time, format_day_range
from core.payments.providers import DeskProvider
from core.portal import home, patient_links, sign_in
from core.portal import waitlist as portal_waitlist
from core.requests import changes
from core.waitlist import entries, offers
from core.waitlist.rules import Mode, Rules, set_rules
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    Clinic,
    FeedbackStatus,
    LedgerEntry,
    LedgerKind,
    LinkToken,
    Notification,
    OfferStatus,
    Patient,
    PortalSession,
    RateLimitHit,
    Service,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from db.types import utcnow
from tests.factories import make_patient

BASE = "https://desk.example"


def _enrol(db, patient_id):
    with db.write() as s:
        s.get(Patient, patient_id).portal_enrolled_at = utcnow()


def _link_raw(db, patient_id) -> str:
    with db.read() as s:
        body = s.scalars(
            select(Notification.body)
            .where(Notification.patient_id == patient_id, Notification.template == "portal_sign_in")
            .order_by(Notification.id.desc())
        ).first()
    link = next(w for w in body.split() if sign_in.ROUTE in w)
    return parse_qs(urlparse(link).query)["t"][0]


def _appointment(db, world, hours_ahead=72, status=AppointmentStatus.SCHEDULED, patient_id=None):
    start = utcnow() + timedelta(hours=hours_ahead)
    with db.write() as s:
        a = Appointment(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            patient_id=patient_id or world.patient_id,
            service_id=world.service_id,
            status=status,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        s.add(a)
        s.flush()
        return a.id


def _policy(db, world, **fields):
    values = dict(
        clinic_id=world.clinic_id,
        version=1,
        effective_at=utcnow() - timedelta(days=1),
        window_hours=12,
        late_cancel_fee_cents=0,
        points_deducted=20,
        inside_window_needs_approval=False,
        policy_text="Cancel 12 hours ahead; later costs 20 points.",
    )
    with db.write() as s:
        s.add(CancellationPolicy(**(values | fields)))


# ---------------------------------------------------------------- sign-in


def test_an_enrolled_patient_gets_a_one_time_link_that_opens_a_session_once(db, world):
    _enrol(db, world.patient_id)
    with db.write() as s:
        answer = sign_in.request_sign_in(s, "ALEX@example.org", base_url=BASE, ip="1.2.3.4")
    assert answer == sign_in.NEUTRAL
    raw = _link_raw(db, world.patient_id)
    with db.write() as s:
        cookie = sign_in.start_session(s, raw)
    with db.read() as s:
        stored = s.scalars(select(PortalSession.token_hash)).all()
    assert cookie not in stored and len(stored) == 1  # only the hash is kept
    with db.write() as s:
        assert sign_in.resume(s, cookie, 30) == world.patient_id
    with db.write() as s, pytest.raises(LinkInvalid):  # single use
        sign_in.start_session(s, raw)


def test_a_spent_sign_in_link_tapped_again_opens_the_portal_only_for_its_own_patient(db, world):
    """The email's link opened a second time: the browser still signed in by it goes on to the
    portal; without that session, or signed in as someone else, it is a dead link."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        other = make_patient(s, first_name="Kim", email="kim@example.org").id
    _enrol(db, other)
    with db.write() as s:
        raw = sign_in.issue_sign_in(s, world.patient_id)
        theirs = sign_in.start_session(s, sign_in.issue_sign_in(s, other))
    with db.write() as s:
        cookie = sign_in.start_session(s, raw)
    with db.write() as s:
        assert sign_in.signed_in_already(s, raw, cookie, 30)
        assert not sign_in.signed_in_already(s, raw, theirs, 30)
        assert not sign_in.signed_in_already(s, raw, None, 30)
        assert not sign_in.signed_in_already(s, "forged", cookie, 30)
        sign_in.end_session(s, sign_in.session_id_for(s, cookie))
    with db.write() as s:
        assert not sign_in.signed_in_already(s, raw, cookie, 30)


def test_unknown_and_unenrolled_addresses_get_the_same_answer_and_no_message(db, world):
    with db.write() as s:
        unknown = sign_in.request_sign_in(s, "nobody@example.org", base_url=BASE)
        not_enrolled = sign_in.request_sign_in(s, "alex@example.org", base_url=BASE)
    assert unknown == not_enrolled == sign_in.NEUTRAL
    with db.read() as s:
        assert not s.scalars(
            select(Notification).where(Notification.template == "portal_sign_in")
        ).all()


def test_sign_in_by_phone_sends_a_text(db, world):
    _enrol(db, world.patient_id)
    with db.write() as s:
        sign_in.request_sign_in(s, "07700-900-123", base_url=BASE)
    with db.read() as s:
        sent = s.scalars(select(Notification).where(Notification.template == "portal_sign_in"))
        assert [n.channel.value for n in sent] == ["sms"]


def test_a_link_asked_for_by_a_channel_without_consent_goes_to_the_consented_one(db, world):
    """A patient who agreed to email only typed their mobile number, as the form invites: no
    text could go (no consent), so nothing went, and the screen said only that a link was sent
    if the number was known. The link now goes to their email; with consent to neither,
    nothing goes, and the audit log says why. The answer is the same either way."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        patient = s.get(Patient, world.patient_id)
        patient.consent_email, patient.consent_sms = True, False
    with db.write() as s:
        assert sign_in.request_sign_in(s, "07700 900123", base_url=BASE) == sign_in.NEUTRAL
    with db.read() as s:
        sent = s.execute(
            select(Notification.channel, Notification.to_address).where(
                Notification.template == "portal_sign_in"
            )
        ).all()
        assert [(c.value, to) for c, to in sent] == [("email", "alex@example.org")]
    with db.write() as s:
        assert sign_in.start_session(s, _link_raw(db, world.patient_id))
        s.get(Patient, world.patient_id).consent_email = False
    with db.write() as s:
        assert sign_in.request_sign_in(s, "alex@example.org", base_url=BASE) == sign_in.NEUTRAL
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 1
        said = s.scalars(
            select(AuditEvent.details)
            .where(AuditEvent.action == "portal_sign_in_requested")
            .order_by(AuditEvent.id)
        ).all()
    assert said == [
        {"by": "phone", "sent": "email"},
        {"by": "email", "sent": "nothing: no consent to email or text messages"},
    ]
    assert "call the practice" in sign_in.NEUTRAL


@pytest.mark.parametrize(
    "typed", ["+44 7700 900123", "07700 900123", "447700900123", "0044 (0)7700-900123"]
)
def test_sign_in_by_phone_matches_the_national_and_international_forms_of_one_number(
    db, world, typed
):
    _enrol(db, world.patient_id)  # stored as "07700 900123" at a London (en-GB) clinic
    with db.write() as s:
        other = make_patient(s, first_name="Sam", email="sam@example.org", phone="07700 900124")
        other.portal_enrolled_at = utcnow()
        assert sign_in.request_sign_in(s, typed, base_url=BASE) == sign_in.NEUTRAL
    with db.read() as s:
        sent = s.scalars(select(Notification).where(Notification.template == "portal_sign_in"))
        assert [(n.patient_id, n.channel.value) for n in sent] == [(world.patient_id, "sms")]


def test_sign_in_by_phone_finds_the_patient_whatever_clinic_they_last_booked(db, world):
    """A UK number stored in national form, the patient's latest booking at a New York
    clinic: read in the country of each clinic they booked at, it is still theirs (before, it
    was read in the US only, and the sign-in went nowhere)."""
    _enrol(db, world.patient_id)  # stored as "07700 900123"
    with db.write() as s:
        clinic = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        s.add(clinic)
        s.flush()
        for days, clinic_id in ((2, world.clinic_id), (3, clinic.id)):  # London, then New York
            start = utcnow().replace(microsecond=0) + timedelta(days=days)
            s.add(
                Appointment(
                    clinic_id=clinic_id,
                    provider_id=world.provider_id,
                    patient_id=world.patient_id,
                    service_id=world.service_id,
                    status=AppointmentStatus.SCHEDULED,
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                )
            )
            s.flush()
    with db.write() as s:
        assert sign_in.request_sign_in(s, "+44 7700 900123", base_url=BASE) == sign_in.NEUTRAL
    with db.read() as s:
        sent = s.scalars(select(Notification).where(Notification.template == "portal_sign_in"))
        assert [n.patient_id for n in sent] == [world.patient_id]


def test_sign_in_by_phone_reads_a_national_number_in_the_practices_other_country(db, world):
    """Stored as '07700 900123' (a UK number), booked only at a Paris clinic of a London and
    Paris practice: it is no French number, so it is read as the UK's and the sign-in by
    '+44 7700 900123' reaches the patient (before, nobody); the French '+33 7 00 90 01 23',
    ending in the same digits, still reaches no one."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        clinic = Clinic(name="Rive Gauche", timezone="Europe/Paris", locale="fr-FR")
        s.add(clinic)
        s.flush()
        start = utcnow().replace(microsecond=0) + timedelta(days=2)
        s.add(
            Appointment(
                clinic_id=clinic.id,
                provider_id=world.provider_id,
                patient_id=world.patient_id,
                service_id=world.service_id,
                status=AppointmentStatus.SCHEDULED,
                start_at=start,
                end_at=start + timedelta(minutes=30),
            )
        )
    with db.write() as s:
        for typed in ("+33 7 00 90 01 23", "+44 7700 900123"):
            assert sign_in.request_sign_in(s, typed, base_url=BASE) == sign_in.NEUTRAL
    with db.read() as s:
        sent = s.scalars(select(Notification).where(Notification.template == "portal_sign_in"))
        assert [(n.patient_id, n.channel.value) for n in sent] == [(world.patient_id, "sms")]


def test_a_number_in_another_country_or_a_stranger_matches_no_one(db, world):
    _enrol(db, world.patient_id)
    with db.write() as s:
        for typed in ("+1 770 090 0123", "+44 7700 900999", "7700900123000"):
            assert sign_in.request_sign_in(s, typed, base_url=BASE) == sign_in.NEUTRAL
    with db.read() as s:
        assert not s.scalars(select(Notification)).all()


def test_the_rate_limit_counts_every_form_of_one_number_together(db, world):
    forms = ["+44 7700 900555", "07700 900555", "447700900555", "07700-900-555", "+447700900555"]
    with db.write() as s:
        for typed in forms:
            sign_in.request_sign_in(s, typed, base_url=BASE)
    with db.write() as s, pytest.raises(ValidationError, match="too many"):
        sign_in.request_sign_in(s, "0044 7700 900555", base_url=BASE)


@pytest.mark.parametrize(
    ("typed", "channel"), [("Alex@Example.org", "email"), ("+44 7700 900123", "sms")]
)
def test_a_family_sharing_an_address_or_number_each_get_their_own_sign_in_link(
    db, world, typed, channel
):
    """A parent and a child enrolled with one email address and one mobile number: each gets
    a link of their own, in a message naming them, that opens their own portal (before, only
    the record with the lower number ever got one: the child could never sign in). A family
    member not enrolled gets nothing, and the answer on the screen is the same."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        child = make_patient(s, first_name="Robin", date_of_birth=date(2015, 3, 1))
        child.portal_enrolled_at = utcnow()
        make_patient(s, first_name="Kit", date_of_birth=date(2017, 5, 2))  # not enrolled
        child_id = child.id
    with db.write() as s:
        answer = sign_in.request_sign_in(s, typed, base_url=BASE, ip="1.2.3.4")
    assert answer == sign_in.NEUTRAL
    with db.read() as s:
        sent = s.scalars(
            select(Notification)
            .where(Notification.template == "portal_sign_in")
            .order_by(Notification.patient_id)
        ).all()
        assert [(n.patient_id, n.channel.value) for n in sent] == [
            (world.patient_id, channel),
            (child_id, channel),
        ]
        assert "Alex Morgan" in sent[0].body and "Robin Morgan" in sent[1].body
    for patient_id in (world.patient_id, child_id):
        with db.write() as s:
            cookie = sign_in.start_session(s, _link_raw(db, patient_id))
        with db.write() as s:
            assert sign_in.resume(s, cookie, 30) == patient_id


def test_new_contact_details_sign_the_patient_out_of_the_portal(db, world):
    """The desk corrects a patient's email address (or mobile number), often because it was
    someone else's. Before, a portal session opened with it went on, and a sign-in link sent to
    it in the last 15 minutes still opened the portal. Both now end with the change (audited,
    and the desk is told); a change of name ends nothing."""
    from core.patients import records

    _enrol(db, world.patient_id)
    address = "alex@example.org"
    for number, (field, value) in enumerate(
        (("first_name", "Alexa"), ("email", "alexa@example.org"), ("phone", "07700 900 999"))
    ):
        with db.write() as s:  # signed in, and a second link asked for meanwhile
            sign_in.request_sign_in(s, address, base_url=BASE, ip=f"9.9.{number}.1")
        with db.write() as s:
            cookie = sign_in.start_session(s, _link_raw(db, world.patient_id))
        with db.write() as s:
            sign_in.request_sign_in(s, address, base_url=BASE, ip=f"9.9.{number}.2")
        unused = _link_raw(db, world.patient_id)
        with db.write() as s:
            done = records.update_patient(s, world.staff, world.patient_id, **{field: value})
        with db.read() as s:
            said = s.scalars(
                select(AuditEvent.details)
                .where(AuditEvent.action == "patient_updated")
                .order_by(AuditEvent.id.desc())
            ).first()
        if field == "first_name":
            assert not done.portal_signed_out and "portal" not in said
            with db.write() as s:
                assert sign_in.resume(s, cookie, 30) == world.patient_id
                sign_in.start_session(s, unused)
            continue
        address = "alexa@example.org"
        assert done.portal_signed_out and "signed out of the portal" in done.message
        # the sessions opened since the last change (both after the name's), the unused link
        ended = 3 if field == "email" else 1
        assert said["portal"] == {"sessions_ended": ended, "sign_in_links_stopped": 1}, said
        with db.write() as s:
            assert sign_in.resume(s, cookie, 30) is None
        with db.write() as s, pytest.raises(LinkInvalid):
            sign_in.start_session(s, unused)


@pytest.mark.parametrize(
    "typed",
    [" ALEX@example.org ", "alex @example.org", "alex@ Example.org", "alex@example .org"],
)
def test_an_email_typed_with_spaces_beside_its_marks_or_in_capitals_finds_the_patient(
    db, world, typed
):
    """Stored addresses are lower case and never hold a space; a space beside @ or a dot
    (a phone keyboard puts one there) can only be a slip. Before, 'alex @example.org' found
    no one and the patient waited for a link that never came."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        assert sign_in.request_sign_in(s, typed, base_url=BASE, ip="1.2.3.4") == sign_in.NEUTRAL
    assert _link_raw(db, world.patient_id)


def test_an_email_with_a_space_between_letters_is_asked_for_again(db, world):
    """'alex morgan@…' could be alex.morgan, alex-morgan or alexmorgan: the answer asks for
    the address again (the same words whoever it is), and nothing is sent or counted."""
    _enrol(db, world.patient_id)
    for typed in ("al ex@example.org", "nobody here@example.org"):
        with db.write() as s, pytest.raises(ValidationError) as refused:
            sign_in.request_sign_in(s, typed, base_url=BASE, ip="1.2.3.4")
        assert str(refused.value) == sign_in.NO_SPACES
    with db.read() as s:
        assert not s.scalar(select(func.count()).select_from(Notification))
        assert not s.scalar(select(func.count()).select_from(RateLimitHit))


def test_sign_in_links_expire(db, world):
    _enrol(db, world.patient_id)
    with db.write() as s:
        raw = sign_in.issue_sign_in(s, world.patient_id)
    later = utcnow() + timedelta(minutes=sign_in.SIGN_IN_MINUTES, seconds=1)
    with db.write() as s, pytest.raises(LinkInvalid):
        sign_in.start_session(s, raw, now=later)


def test_sign_in_requests_are_rate_limited_per_address_and_per_ip(db, world):
    with db.write() as s:
        for n in range(sign_in.LIMIT_PER_CONTACT):
            sign_in.request_sign_in(s, "x@example.org", base_url=BASE, ip=f"10.0.0.{n}")
    with db.write() as s, pytest.raises(ValidationError, match="too many"):
        sign_in.request_sign_in(s, "x@example.org", base_url=BASE, ip="10.0.1.1")
    later = utcnow() + timedelta(hours=1, minutes=1)
    with db.write() as s:  # an hour later the address may ask again
        sign_in.request_sign_in(s, "x@example.org", base_url=BASE, now=later)


def test_a_waiting_rooms_patients_all_sign_in_over_its_one_network(db, world):
    """The practice's Wi-Fi shows every patient in the waiting room as one address. Before,
    the sixth patient of the hour was refused; now a busy morning's worth sign in from it, and
    only a script's burst is refused, with the same words for an enrolled patient's address
    as for an unknown one."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        for n in range(sign_in.LIMIT_PER_NETWORK):
            answer = sign_in.request_sign_in(s, f"p{n}@example.org", base_url=BASE, ip="9.9.9.9")
            assert answer == sign_in.NEUTRAL
    for address in ("alex@example.org", "nobody@example.org"):
        with db.write() as s, pytest.raises(ValidationError) as refused:
            sign_in.request_sign_in(s, address, base_url=BASE, ip="9.9.9.9")
        assert str(refused.value) == sign_in.TOO_MANY
    with db.write() as s:  # another network is not held up
        sign_in.request_sign_in(s, "alex@example.org", base_url=BASE, ip="9.9.9.10")


def test_an_ipv6_network_counts_as_one_whatever_address_of_it_asks(db, world):
    """A client holds a whole IPv6 /64: a new address of it for each request is still one
    network."""
    with db.write() as s:
        for n in range(sign_in.LIMIT_PER_NETWORK):
            sign_in.request_sign_in(s, f"v{n}@example.org", base_url=BASE, ip=f"2001:db8::{n:x}")
    with db.write() as s, pytest.raises(ValidationError, match="too many"):
        sign_in.request_sign_in(s, "v9@example.org", base_url=BASE, ip="2001:db8::ffff:1:2")
    with db.write() as s:  # the next /64 is someone else's
        sign_in.request_sign_in(s, "v9@example.org", base_url=BASE, ip="2001:db8:0:1::1")


def test_the_sign_in_limit_holds_when_requests_arrive_at_once(db, world):
    """Twelve requests for one address at the same moment, each in its own transaction: the
    limit's number get through, on PostgreSQL (where each would count before any had written)
    as on SQLite."""
    barrier = threading.Barrier(12)
    results: list[str] = []

    def ask(i: int) -> None:
        try:
            with db.write() as s:
                barrier.wait(timeout=30)  # all begin before any counts (SQLite: at BEGIN)
                sign_in.request_sign_in(s, "same@example.org", base_url=BASE, ip=f"10.9.0.{i}")
            results.append("answered")
        except ValidationError as error:
            results.append("limited" if error.args[0] == sign_in.TOO_MANY else str(error))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    allowed = sign_in.LIMIT_PER_CONTACT
    assert sorted(results) == ["answered"] * allowed + ["limited"] * (12 - allowed)


def test_a_portal_session_ends_after_the_idle_limit_and_on_sign_out(db, world):
    _enrol(db, world.patient_id)
    with db.write() as s:
        cookie = sign_in.start_session(s, sign_in.issue_sign_in(s, world.patient_id))
    with db.write() as s:
        assert sign_in.resume(s, cookie, 30, now=utcnow() + timedelta(minutes=29)) is not None
    with db.write() as s:
        assert sign_in.resume(s, cookie, 30, now=utcnow() + timedelta(minutes=61)) is None
    with db.write() as s:  # ended for good
        assert sign_in.resume(s, cookie, 30) is None
        again = sign_in.start_session(s, sign_in.issue_sign_in(s, world.patient_id))
    with db.write() as s:
        sign_in.end_session(s, sign_in.session_id_for(s, again))
    with db.write() as s:
        assert sign_in.resume(s, again, 30) is None
        assert sign_in.resume(s, "forged", 30) is None


def test_enrolment_opens_the_portal(db, world):
    from core.patients import invitations

    with db.write() as s:
        sent = invitations.send_invitation(s, world.staff, world.patient_id, base_url=BASE)
    raw = parse_qs(urlparse(sent.link).query)["t"][0]
    with db.write() as s:
        result = patient_links.enroll(s, raw, date_of_birth=date(1985, 4, 12), accept_terms=True)
    assert result.enrolled and result.portal_token
    with db.write() as s:
        cookie = sign_in.start_session(s, result.portal_token)
        assert sign_in.resume(s, cookie, 30) == world.patient_id


# ---------------------------------------------------------------- own data only


def test_a_patient_sees_only_their_own_appointments(db, world):
    _enrol(db, world.patient_id)
    with db.write() as s:
        other = make_patient(s, first_name="Sam", email="sam@example.org").id
    mine = _appointment(db, world)
    theirs = _appointment(db, world, patient_id=other)
    with db.read() as s:
        view = home.home(s, world.patient_id)
        assert [a.id for a in view.upcoming] == [mine]
        assert [e["id"] for e in view.calendar_events()] == [str(mine)]
        assert view.upcoming[0].payment == "Not paid"
        for reader in (home.change_preview, home.survey_form):
            with pytest.raises(NotFound, match="no such appointment"):
                reader(s, world.patient_id, theirs)
    with db.write() as s, pytest.raises(NotFound, match="no such appointment"):
        home.ask_change(s, world.patient_id, theirs, kind="cancel")
    with db.write() as s, pytest.raises(NotFound, match="no such appointment"):
        home.answer_proposal(s, world.patient_id, theirs, accept=True)
    with db.read() as s:
        assert s.get(Appointment, theirs).status == AppointmentStatus.SCHEDULED


def test_a_patient_not_enrolled_has_no_portal(db, world):
    with db.read() as s, pytest.raises(NotFound):
        home.home(s, world.patient_id)


# ---------------------------------------------------------------- acting


def test_late_cancellation_from_the_portal_warns_then_deducts_points(db, world):
    _enrol(db, world.patient_id)
    _policy(db, world)
    appointment_id = _appointment(db, world, hours_ahead=5)
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 20
    with db.read() as s:
        preview = home.change_preview(s, world.patient_id, appointment_id)
    assert preview.inside_window and preview.points == 20 and preview.locks
    with db.write() as s:
        message = home.ask_change(s, world.patient_id, appointment_id, kind="cancel")
    assert "cancelled" in message
    with db.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.CANCELLED
        assert s.get(Patient, world.patient_id).points_balance == 0
        view = home.home(s, world.patient_id)
    assert view.locked and view.ledger[0].points == -20
    with db.write() as s, pytest.raises(ValidationError, match="zero"):
        home.request_appointment(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=date.today() + timedelta(days=3),
            time_of_day="morning",
        )


def test_a_zero_balance_says_whom_to_call_and_that_a_survey_opens_requests_again(db, world):
    """A patient at zero read 'Please call the practice' with no number, and not that the
    survey of their last visit (on the next tab) would earn the points that open requests
    again. The refusal and the portal's notice now name the clinic's number and the survey."""
    _enrol(db, world.patient_id)
    _appointment(db, world, hours_ahead=-48, status=AppointmentStatus.COMPLETED)
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 0
    with db.read() as s:
        shown = home.home(s, world.patient_id).locked_text
    day = date.today() + timedelta(days=3)
    with db.write() as s, pytest.raises(ValidationError) as refused:
        home.request_appointment(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day="morning",
        )
    with db.write() as s, pytest.raises(ValidationError) as waiting:
        portal_waitlist.join_waitlist(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            earliest=day,
            latest=day + timedelta(days=7),
        )
    assert str(refused.value) == str(waiting.value) == shown
    assert shown.startswith("Your points balance is zero")
    assert "Please call Test Clinic on 020 0000 0000" in shown
    assert "answer a survey under Visits and surveys: each earns you 10 points" in shown


def test_a_request_from_the_portal_lands_in_the_queue_prefilled(db, world):
    _enrol(db, world.patient_id)
    _appointment(db, world)
    with db.read() as s:
        form = home.request_form(s, world.patient_id)
    assert form.clinic_id == world.clinic_id and form.service_id == world.service_id
    with db.write() as s:
        home.request_appointment(
            s,
            world.patient_id,
            clinic_id=form.clinic_id,
            service_id=form.service_id,
            requested_day=date.today() + timedelta(days=3),
            time_of_day="morning",
        )
    with db.read() as s:
        statuses = s.scalars(select(Appointment.status)).all()
    assert AppointmentStatus.REQUESTED in statuses


def test_a_closed_clinic_is_neither_offered_nor_taken_by_the_portals_forms(db, world):
    """A deactivated clinic keeps its past visits, but the portal's request and waitlist forms
    neither list it nor take a request or an entry for it by id."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        closed = Clinic(name="Old Branch", timezone="Europe/London", active=False)
        s.add(closed)
        s.flush()
        closed = closed.id
    with db.read() as s:
        form = home.request_form(s, world.patient_id)
    assert [i for i, _ in form.clinics] == [world.clinic_id]
    day = date.today() + timedelta(days=3)
    asked = {"clinic_id": closed, "service_id": world.service_id}
    with db.write() as s, pytest.raises(ValidationError, match="one of the clinics listed"):
        home.request_appointment(
            s, world.patient_id, requested_day=day, time_of_day="morning", **asked
        )
    with db.write() as s, pytest.raises(ValidationError, match="one of the clinics listed"):
        portal_waitlist.join_waitlist(
            s, world.patient_id, earliest=day, latest=day + timedelta(days=7), **asked
        )
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(WaitlistEntry)) == 0
        assert s.scalar(select(func.count()).select_from(Appointment)) == 0


def test_the_portal_counts_days_in_the_clinics_zone_not_the_servers(db, world):
    """At 22:00 in New York it is already tomorrow in UTC: the clinic's today may still be
    asked for, its yesterday may not, and the forms start on the clinic's today."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        s.get(Clinic, world.clinic_id).timezone = "America/New_York"
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # Saturday 5 December, 22:00 in New York
    asked = dict(
        clinic_id=world.clinic_id,
        service_id=world.service_id,
        time_of_day="evening",
        now=now,
    )
    with db.write() as s:
        home.request_appointment(s, world.patient_id, requested_day=date(2026, 12, 5), **asked)
    with db.write() as s, pytest.raises(ValidationError, match="day has passed"):
        home.request_appointment(s, world.patient_id, requested_day=date(2026, 12, 4), **asked)
    with db.read() as s:
        assert s.scalar(select(Appointment.requested_day)) == date(2026, 12, 5)
        zone_today = to_local(utcnow(), "America/New_York").date()
        assert home.request_form(s, world.patient_id).first_day == zone_today
        assert home.home(s, world.patient_id).today == zone_today


def test_a_move_may_not_ask_for_a_day_that_has_passed_in_the_clinic(db, world):
    _enrol(db, world.patient_id)
    appointment_id = _appointment(db, world)
    with db.write() as s:
        s.get(Clinic, world.clinic_id).timezone = "Pacific/Kiritimati"  # UTC+14
    today = to_local(utcnow(), "Pacific/Kiritimati").date()
    with db.read() as s:
        assert home.change_preview(s, world.patient_id, appointment_id).today == today
    move = dict(kind="reschedule", time_of_day="morning")
    with db.write() as s, pytest.raises(ValidationError, match="has passed"):
        home.ask_change(
            s, world.patient_id, appointment_id, requested_day=today - timedelta(days=1), **move
        )
    with db.write() as s:
        home.ask_change(s, world.patient_id, appointment_id, requested_day=today, **move)
    with db.read() as s:
        assert s.scalar(select(ChangeRequest.requested_day)) == today


def test_the_patient_joins_the_waitlist_for_a_package_or_a_service(db, world):
    from core.practice import setup

    _enrol(db, world.patient_id)
    with db.write() as s:
        peel = setup.save_service(s, world.owner, setup.ServiceData("Peel", 30))
        glow = setup.save_package(
            s, world.owner, setup.PackageData("Glow", (world.service_id, peel), 9000)
        )
    with db.read() as s:
        form = home.request_form(s, world.patient_id)
    assert glow in [i for i, _ in form.packages]  # what the portal's forms offer
    days = dict(earliest=date.today(), latest=date.today() + timedelta(days=14))
    with db.write() as s:
        said = portal_waitlist.join_waitlist(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            package_id=glow,
            windows=("morning",),
            **days,
        )
        portal_waitlist.join_waitlist(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            service_id=peel,
            note=" Mornings ",
            **days,
        )
    assert said.startswith("Thank you: you are on the waitlist")
    with db.read() as s:
        rows = s.scalars(select(WaitlistEntry).order_by(WaitlistEntry.id)).all()
        got = [(r.package_id, r.service_id, r.source, r.windows, r.note) for r in rows]
    assert got == [
        (glow, world.service_id, "portal", "morning", ""),  # stored under its first service
        (None, peel, "portal", "", "Mornings"),
    ]
    with db.write() as s, pytest.raises(ValidationError, match="already on the waitlist for"):
        portal_waitlist.join_waitlist(
            s, world.patient_id, clinic_id=world.clinic_id, package_id=glow, **days
        )
    with db.write() as s:  # a zero balance pauses online requests, the waitlist too
        s.get(Patient, world.patient_id).points_balance = 0
    with db.write() as s, pytest.raises(ValidationError, match="online requests are paused"):
        portal_waitlist.join_waitlist(
            s, world.patient_id, clinic_id=world.clinic_id, service_id=peel, **days
        )


def _offer_hours(db, world, day: date, mode: Mode = Mode.ONE_AT_A_TIME):
    """The practice offers 10:00–11:00 (clinic time) on `day` to the waitlist, by hand."""
    with db.write() as s:
        set_rules(s, world.owner, Rules(mode=mode, quiet_start=time(0), quiet_end=time(0)))
    with db.write() as s:
        offers.offer_slot(
            s,
            world.manager,
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            start_at=local_to_utc(day, time(10), "Europe/London"),
            end_at=local_to_utc(day, time(11), "Europe/London"),
            base_url=BASE,
        )


def _waiting_with_an_offer(
    db, world, mode: Mode = Mode.ONE_AT_A_TIME
) -> portal_waitlist.PortalWaitlistEntry:
    """The enrolled patient waits for the service (any day) and is offered 10:00 in 3 days."""
    _enrol(db, world.patient_id)
    day = date.today() + timedelta(days=3)
    days = dict(earliest=day - timedelta(days=1), latest=day + timedelta(days=7))
    with db.write() as s:
        portal_waitlist.join_waitlist(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            weekdays=tuple(range(7)),
            **days,
        )
    _offer_hours(db, world, day, mode)
    with db.read() as s:
        (entry,) = portal_waitlist.waitlist_entries(s, world.patient_id)
    return entry


@pytest.mark.parametrize("mode", list(Mode))
def test_the_portal_says_whether_the_offered_time_is_held_or_first_come(db, world, mode):
    """One at a time, the time is held for this patient alone; the portal said "the first
    patient to accept gets it" either way. It now says what the offer message says."""
    entry = _waiting_with_an_offer(db, world, mode)
    assert entry.offer.terms == offers.TERMS[mode]
    held = "for you alone" in entry.offer.terms
    assert held == (mode == Mode.ONE_AT_A_TIME)
    assert ("first to accept" in entry.offer.terms) == (not held)


@pytest.mark.parametrize("mode", list(Mode))
def test_the_portal_words_an_offer_in_the_mode_it_went_out_in_not_the_practices_now(
    db, world, mode
):
    """The practice changes its mode while the offer is out. Before, the portal then told the
    patient the other mode's terms (held for them alone, though others were offered it too, or
    the reverse); now it says what the offer message said."""
    _waiting_with_an_offer(db, world, mode)
    other = next(m for m in Mode if m != mode)
    with db.write() as s:
        set_rules(s, world.owner, Rules(mode=other, quiet_start=time(0), quiet_end=time(0)))
    with db.read() as s:
        (entry,) = portal_waitlist.waitlist_entries(s, world.patient_id)
        body = s.scalars(
            select(Notification.body).where(
                Notification.template == "waitlist_offer", Notification.channel == "email"
            )
        ).one()
    assert entry.offer.terms == offers.TERMS[mode] != offers.TERMS[other]
    assert entry.offer.terms in body


def test_twice_on_the_waitlist_the_patient_reads_their_own_words(db, world):
    _enrol(db, world.patient_id)
    days = dict(earliest=date.today(), latest=date.today() + timedelta(days=14))
    with db.write() as s:
        portal_waitlist.join_waitlist(
            s, world.patient_id, clinic_id=world.clinic_id, service_id=world.service_id, **days
        )
    with db.write() as s, pytest.raises(ValidationError) as said:
        portal_waitlist.join_waitlist(
            s, world.patient_id, clinic_id=world.clinic_id, service_id=world.service_id, **days
        )
    assert str(said.value) == (
        "You are already on the waitlist for this service at this clinic; withdraw that entry "
        "below to change it."
    )
    wish = entries.Wish(world.patient_id, world.clinic_id, world.service_id, **days)
    with db.write() as s, pytest.raises(ValidationError, match=r"This patient already waits"):
        entries.add_entry(s, world.staff, wish)  # the staff wording is unchanged


def test_the_patient_sees_their_waiting_entries_with_an_open_offer(db, world):
    from core.practice import setup

    _enrol(db, world.patient_id)
    day = date.today() + timedelta(days=3)
    days = dict(earliest=day - timedelta(days=1), latest=day + timedelta(days=7))
    with db.write() as s:
        s.get(Clinic, world.clinic_id).locale = "de-DE"
        peel = setup.save_service(s, world.owner, setup.ServiceData("Peel", 30))
        glow = setup.save_package(
            s, world.owner, setup.PackageData("Glow", (world.service_id, peel), 9000)
        )
        portal_waitlist.join_waitlist(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            weekdays=tuple(range(7)),
            note="<b>Mornings</b>",
            **days,
        )
        portal_waitlist.join_waitlist(
            s,
            world.patient_id,
            clinic_id=world.clinic_id,
            package_id=glow,
            weekdays=(0, 2),
            windows=("morning",),
            **days,
        )
        other = make_patient(s, first_name="Olga", email="olga@example.org")
        entries.add_entry(
            s, world.staff, entries.Wish(other.id, world.clinic_id, peel, **days)
        )  # someone else's entry is never shown
    _offer_hours(db, world, day)
    with db.read() as s:
        mine = portal_waitlist.waitlist_entries(s, world.patient_id)
        offer = s.scalars(select(WaitlistOffer).where(WaitlistOffer.status == "sent")).one()
        clinic = s.get(Clinic, world.clinic_id)
        expires = clinic_time(clinic, offer.expires_at, zone=True)
    assert [(e.treatment, e.clinic) for e in mine] == [
        ("Consultation", "Test Clinic"),
        ("Glow (Consultation + Peel)", "Test Clinic"),  # as the staff list names a package
    ]
    first, second = mine
    german = format_day_range(days["earliest"], days["latest"], "de-DE")
    assert first.days == german != format_day_range(days["earliest"], days["latest"], "en-US")
    assert (first.weekdays, first.times, first.note) == (
        "Any day",
        "Any time of day",
        "<b>Mornings</b>",
    )
    assert (second.weekdays, second.times) == ("Mo, Mi", "Morning (9:00–12:00)")
    assert offer.entry_id == first.id and offer.status == OfferStatus.SENT
    assert first.offer == portal_waitlist.PortalOffer(
        offer.id,
        clinic_time(clinic, offer.start_at, zone=True),
        expires,
        offers.TERMS[Mode.ONE_AT_A_TIME],
    )
    assert "10:00" in first.offer.when and second.offer is None
    with db.read() as s, pytest.raises(NotFound):
        portal_waitlist.waitlist_entries(s, other.id)  # not enrolled: no portal


def test_the_patient_withdraws_their_own_entry_audited_via_the_portal(db, world):
    entry = _waiting_with_an_offer(db, world)
    with db.read() as s:
        token_id = s.scalars(select(WaitlistOffer.token_id)).one()
    assert entry.offer is not None
    with db.write() as s:
        said = portal_waitlist.withdraw_from_waitlist(s, world.patient_id, entry.id)
    assert said == "You have left the waitlist for this treatment."
    with db.read() as s:
        assert portal_waitlist.waitlist_entries(s, world.patient_id) == []
        row = s.get(WaitlistEntry, entry.id)
        offer = s.scalars(select(WaitlistOffer)).one()
        token = s.get(LinkToken, token_id)
        event = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "waitlist_withdrawn", AuditEvent.entity_id == entry.id
            )
        ).one()
    assert (row.status, row.closed_at is not None) == (WaitlistStatus.WITHDRAWN, True)
    assert offer.status == OfferStatus.WITHDRAWN and token.revoked_at is not None
    assert (event.entity, event.patient_id, event.user_id) == (
        "waitlist_entry",
        world.patient_id,
        None,
    )
    assert (event.from_status, event.to_status) == ("waiting", "withdrawn")
    assert event.actor_label.startswith("Patient ")
    assert event.details == {"via": "portal", "offers_withdrawn": [offer.id]}
    with db.write() as s, pytest.raises(ValidationError, match="withdrawn already"):
        portal_waitlist.withdraw_from_waitlist(s, world.patient_id, entry.id)


def test_another_patients_waitlist_entry_is_refused_like_an_unknown_one(db, world):
    _enrol(db, world.patient_id)
    days = dict(earliest=date.today(), latest=date.today() + timedelta(days=14))
    with db.write() as s:
        other = make_patient(s, first_name="Olga", email="olga@example.org")
        theirs = entries.add_entry(
            s, world.staff, entries.Wish(other.id, world.clinic_id, world.service_id, **days)
        ).id
    with db.write() as s, pytest.raises(NotFound) as foreign:
        portal_waitlist.withdraw_from_waitlist(s, world.patient_id, theirs)
    with db.write() as s, pytest.raises(NotFound) as unknown:
        portal_waitlist.withdraw_from_waitlist(s, world.patient_id, theirs + 1000)
    assert (
        str(foreign.value)
        == str(unknown.value)
        == "There is no such waitlist entry in your portal."
    )
    with db.read() as s:
        assert s.get(WaitlistEntry, theirs).status == WaitlistStatus.WAITING
        assert s.scalar(select(func.count()).where(AuditEvent.action == "waitlist_withdrawn")) == 0


def test_a_request_waiting_for_the_practice_shows_on_the_card_until_it_is_answered(db, world):
    _enrol(db, world.patient_id)
    _policy(db, world, inside_window_needs_approval=True)
    late, later = _appointment(db, world, hours_ahead=5), _appointment(db, world, hours_ahead=96)
    with db.write() as s:
        home.ask_change(s, world.patient_id, late, kind="cancel")
        home.ask_change(
            s,
            world.patient_id,
            later,
            kind="reschedule",
            requested_day=date.today() + timedelta(days=9),
            time_of_day="morning",
        )
    with db.read() as s:
        cards = {a.id: a for a in home.home(s, world.patient_id).upcoming}
        preview = home.change_preview(s, world.patient_id, late)
    assert cards[late].status_label == "Scheduled"  # still booked: the practice decides
    assert cards[late].change_pending == "Cancellation requested — waiting for the practice"
    assert cards[later].change_pending == "Reschedule requested — waiting for the practice"
    assert not cards[late].can_ask_change and not cards[later].can_ask_change
    assert not cards[late].payable  # nothing asked in advance for a visit being cancelled
    assert not preview.changeable and "waiting for the practice" in preview.reason_not
    with db.write() as s:
        change_id = s.scalars(select(ChangeRequest.id).where(ChangeRequest.appointment_id == late))
        changes.deny_change(s, world.manager, change_id.one(), reason="We need the slot kept.")
    with db.read() as s:
        cards = {a.id: a for a in home.home(s, world.patient_id).upcoming}
    assert cards[late].change_pending == "" and cards[late].can_ask_change


def test_the_cancel_warning_counts_the_prepaid_points_that_come_back(db, world):
    """99 of 100 points prepaid, a late cancellation deducting 20: the points paid come back
    first, so the balance after is 80 and nothing locks (before, the warning said the balance
    would be zero and lock online requests, while the same preview said the 99 come back)."""
    _enrol(db, world.patient_id)
    _policy(db, world)
    appointment_id = _appointment(db, world, hours_ahead=5)
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 100
    with db.write() as s:
        home.pay(
            s,
            world.patient_id,
            appointment_id,
            points=99,
            card=False,
            provider=DeskProvider(),
            return_url=BASE,
        )
    with db.read() as s:
        preview = home.change_preview(s, world.patient_id, appointment_id)
    assert "The 99 points you paid with go back to your balance." in preview.prepayment
    assert (preview.points, preview.balance_after, preview.locks) == (20, 80, False)
    with db.write() as s:
        home.ask_change(s, world.patient_id, appointment_id, kind="cancel")
    with db.read() as s:
        assert s.get(Patient, world.patient_id).points_balance == 80  # as the warning said


def test_the_cancel_warning_names_a_share_of_the_price_and_what_it_comes_to(db, world):
    """A late fee of 50% of the visit's price: the portal's warning says so with its amount for
    this £60.00 visit, and cancelling charges that amount."""
    _enrol(db, world.patient_id)
    _policy(db, world, late_cancel_fee_basis="percent", late_cancel_fee_percent=50)
    appointment_id = _appointment(db, world, hours_ahead=5)
    with db.read() as s:
        preview = home.change_preview(s, world.patient_id, appointment_id)
    assert preview.inside_window
    assert preview.fee == "50% of the visit's price (£30.00 for this visit)"
    with db.write() as s:
        home.ask_change(s, world.patient_id, appointment_id, kind="cancel")
    with db.read() as s:
        fees = s.scalars(select(LedgerEntry.amount_cents).where(LedgerEntry.amount_cents > 0))
        assert list(fees) == [3000]


def test_reschedule_request_goes_to_the_practice(db, world):
    _enrol(db, world.patient_id)
    appointment_id = _appointment(db, world)
    with db.write() as s:
        home.ask_change(
            s,
            world.patient_id,
            appointment_id,
            kind="reschedule",
            requested_day=date.today() + timedelta(days=9),
            time_of_day="afternoon",
        )
    with db.read() as s:
        change = s.scalars(select(ChangeRequest)).one()
    assert change.kind.value == "reschedule" and change.status.value == "open"


def test_a_survey_from_the_portal_earns_points_and_closes_the_emailed_link(db, world):
    _enrol(db, world.patient_id)
    appointment_id = _appointment(db, world, hours_ahead=-3, status=AppointmentStatus.COMPLETED)
    with db.write() as s:
        sent = surveys.request_feedback(s, world.staff, appointment_id, base_url=BASE)
    emailed = parse_qs(urlparse(sent.link).query)["t"][0]
    with db.read() as s:
        before = s.get(Patient, world.patient_id).points_balance
        assert home.home(s, world.patient_id).completed[0].survey_open
    with db.write() as s:
        message = home.answer_survey(
            s, world.patient_id, appointment_id, surveys.SurveyAnswers(9, 5)
        )
    assert "10 points" in message
    with db.read() as s:
        assert s.get(Patient, world.patient_id).points_balance == before + 10
        earned = LedgerEntry.kind != LedgerKind.POINTS_OPENING  # beside the opening balance
        entry = s.scalars(select(LedgerEntry).where(earned)).one()
        assert entry.kind == LedgerKind.POINTS_EARNED and entry.points == 10
        assert s.get(Appointment, appointment_id).feedback_status == FeedbackStatus.COLLECTED
    with db.write() as s, pytest.raises(ValidationError, match="answered the survey"):
        surveys.submit_survey(s, emailed, surveys.SurveyAnswers(9, 5))


def test_the_patient_accepts_their_offer_in_the_portal_and_the_link_then_reads_accepted(db, world):
    entry = _waiting_with_an_offer(db, world)
    day = date.today() + timedelta(days=3)
    with db.write() as s:
        other = make_patient(s, first_name="Olga", email="olga@example.org").id
        s.get(Patient, other).portal_enrolled_at = utcnow()
    with db.read() as s:
        body = s.scalars(
            select(Notification.body).where(
                Notification.template == "waitlist_offer", Notification.channel == "email"
            )
        ).one()
        clinic = s.get(Clinic, world.clinic_id)
        when = clinic_time(clinic, local_to_utc(day, time(10), "Europe/London"), zone=True)
    raw = parse_qs(urlparse(next(w for w in body.split() if "t=" in w)).query)["t"][0]
    with db.write() as s, pytest.raises(NotFound):
        portal_waitlist.accept_offer(s, other, entry.offer.id)  # not Olga's offer
    with db.write() as s:
        said = portal_waitlist.accept_offer(s, world.patient_id, entry.offer.id)
    assert said == f"Booked: {when}. We have sent you the details."
    with db.read() as s:
        offer = s.get(WaitlistOffer, entry.offer.id)
        booked = s.get(Appointment, offer.appointment_id)
        row = s.get(WaitlistEntry, entry.id)
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "waitlist_offer_accepted")
        ).one()
        assert portal_waitlist.waitlist_entries(s, world.patient_id) == []  # booked: not waiting
    assert offer.status == OfferStatus.ACCEPTED and row.status == WaitlistStatus.BOOKED
    assert (booked.patient_id, booked.status) == (world.patient_id, AppointmentStatus.SCHEDULED)
    assert booked.start_at == local_to_utc(day, time(10), "Europe/London")
    assert event.entity_id == offer.id and event.patient_id == world.patient_id
    with db.write() as s, pytest.raises(Conflict):
        offers.accept_offer(s, raw)  # the emailed link cannot book it a second time
    with db.write() as s, pytest.raises(Conflict):
        portal_waitlist.accept_offer(s, world.patient_id, entry.offer.id)


def test_a_treatment_the_practice_books_itself_is_neither_offered_nor_taken_by_the_portal(
    db, world
):
    """A service (or a package of one) not ticked 'Patients may request it online' is left
    out of the portal's request and waitlist forms, as the signed booking link leaves it out,
    and refused by id. Before, the portal listed and took it."""
    from db.models import Package, PackageService, Service

    _enrol(db, world.patient_id)
    with db.write() as s:
        laser = Service(name="Laser resurfacing", duration_minutes=30, online_allowed=False)
        s.add(laser)
        s.flush()
        bundle = Package(name="Laser course", price_cents=50000)
        s.add(bundle)
        s.flush()
        s.add(PackageService(package_id=bundle.id, service_id=laser.id, position=0))
        laser, bundle = laser.id, bundle.id
    with db.read() as s:
        form = home.request_form(s, world.patient_id)
    assert [i for i, _ in form.services] == [world.service_id]
    assert bundle not in [i for i, _ in form.packages]
    day = date.today() + timedelta(days=3)
    for asked in ({"service_id": laser}, {"package_id": bundle}):
        with db.write() as s, pytest.raises(ValidationError, match="booked by the practice"):
            home.request_appointment(
                s, world.patient_id, clinic_id=world.clinic_id, requested_day=day,
                time_of_day="morning", **asked,
            )  # fmt: skip
        with db.write() as s, pytest.raises(ValidationError, match="booked by the practice"):
            portal_waitlist.join_waitlist(
                s, world.patient_id, clinic_id=world.clinic_id, earliest=day,
                latest=day + timedelta(days=7), **asked,
            )  # fmt: skip
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(WaitlistEntry)) == 0
        assert s.scalar(select(func.count()).select_from(Appointment)) == 0


def test_a_change_asked_on_terms_that_changed_since_the_page_showed_them_is_refused(db, world):
    """The portal's change panel sends back the terms it showed. Moved by the desk, or come
    inside the window (a longer window in force) since: refused, saying which, nothing
    written; on the terms now shown it goes."""
    from core.kernel.errors import Conflict
    from db.models import ChangeRequest

    _enrol(db, world.patient_id)
    _policy(db, world)
    appointment_id = _appointment(db, world, hours_ahead=72)
    with db.read() as s:
        first = home.change_preview(s, world.patient_id, appointment_id)
    assert not first.inside_window
    with db.write() as s:  # the desk moves it a day later
        row = s.get(Appointment, appointment_id)
        row.start_at += timedelta(days=1)
        row.end_at += timedelta(days=1)
    with db.write() as s, pytest.raises(Conflict, match="was moved: it is now on"):
        home.ask_change(s, world.patient_id, appointment_id, kind="cancel", shown=first.terms)
    with db.read() as s:
        moved = home.change_preview(s, world.patient_id, appointment_id)
    _policy(db, world, version=2, window_hours=200)  # a longer window, in force now
    with db.write() as s, pytest.raises(Conflict, match="cancellation window has begun"):
        home.ask_change(s, world.patient_id, appointment_id, kind="cancel", shown=moved.terms)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ChangeRequest)) == 0
        now = home.change_preview(s, world.patient_id, appointment_id)
    with db.write() as s:
        home.ask_change(s, world.patient_id, appointment_id, kind="cancel", shown=now.terms)
    with db.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.CANCELLED


def test_a_patient_withdraws_a_request_still_waiting_and_no_other(db, world):
    """A request asked for in the portal can be withdrawn there while it waits: cancelled by
    the patient with no fee (nothing was booked), out of the queue, the clinic's inbox told
    in those words. A booked visit, another patient's request or one the practice answered
    meanwhile is refused. Before, a waiting request could not be withdrawn at all."""
    from core.messaging.preferences import PreferencesForm, save_preferences
    from core.requests import decisions, queue
    from db.models import ClinicEvent

    _enrol(db, world.patient_id)
    _policy(db, world, late_cancel_fee_cents=2500)
    with db.write() as s:
        save_preferences(
            s, world.owner, world.clinic_id, PreferencesForm(clinic_events=["change_request"])
        )
    day = date.today() + timedelta(days=3)
    with db.write() as s:
        home.request_appointment(
            s, world.patient_id, clinic_id=world.clinic_id, service_id=world.service_id,
            requested_day=day, time_of_day="morning",
        )  # fmt: skip
        asked = s.scalar(select(Appointment.id).where(Appointment.status == "requested"))
    # a booked visit two days after the asked day: at 72 hours from now it was on that day,
    # and from 13:30 to 14:00 it clashed with the visit approved at 14:00 below
    booked = _appointment(db, world, hours_ahead=120)
    with db.write() as s, pytest.raises(ValidationError, match="Cancel or reschedule"):
        home.withdraw_request(s, world.patient_id, booked)
    with db.write() as s:
        other = make_patient(s, first_name="Sam", email="sam@example.org").id
    with db.write() as s, pytest.raises(NotFound):
        home.withdraw_request(s, other, asked)
    with db.write() as s:
        assert (
            home.withdraw_request(s, world.patient_id, asked) == "Your request has been withdrawn."
        )
    with db.read() as s:
        row = s.get(Appointment, asked)
        assert (row.status, row.cancelled_by, row.late_cancellation) == (
            AppointmentStatus.CANCELLED, "patient", False,
        )  # fmt: skip
        assert queue.queue_counts(s, world.manager)[queue.QueueKind.REQUESTS] == 0
        said = s.scalars(select(ClinicEvent.summary)).all()
        assert any(
            w.startswith("Alex Morgan withdrew their request for Consultation") for w in said
        )
        fees = s.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.appointment_id == asked, LedgerEntry.amount_cents > 0))  # fmt: skip
        assert fees == 0
    with db.write() as s:  # answered by the practice at the same moment: refused
        second = decisions.request_appointment(
            s, world.manager, patient_id=world.patient_id, clinic_id=world.clinic_id,
            service_id=world.service_id, requested_day=day, time_of_day="afternoon",
        ).id  # fmt: skip
    with db.write() as s:
        decisions.approve_request(
            s, world.manager, second, provider_id=world.provider_id,
            start_at=local_to_utc(day, time(14), "Europe/London"),
        )  # fmt: skip
    with db.write() as s, pytest.raises(ValidationError, match="still waiting"):
        home.withdraw_request(s, world.patient_id, second)


def test_a_visit_neither_cancellable_nor_movable_online_is_not_changeable(db, world):
    """No online cancellation and no move left: the preview refuses (it offered an empty
    choice before), and a request with no kind is a clear error, not a ValueError."""
    _enrol(db, world.patient_id)
    _policy(db, world, online_cancel_allowed=False, max_reschedules=0)
    appointment_id = _appointment(db, world)
    with db.read() as s:
        preview = home.change_preview(s, world.patient_id, appointment_id)
    assert not preview.changeable
    assert "cannot be cancelled or moved online any more" in preview.reason_not
    _policy(db, world, version=2, max_reschedules=2)  # a move is possible again
    with db.write() as s, pytest.raises(ValidationError, match="cancel or to move"):
        home.ask_change(s, world.patient_id, appointment_id, kind=None)


def test_a_patient_no_offer_can_reach_joins_the_waitlist_and_is_told_so(db, world):
    """Alex, with consent to neither email nor text, joined in the portal and read 'Thank you:
    you are on the waitlist. We will offer you the first matching time that frees up': no offer
    could ever reach him. He is still added, told the truth and what to do (the portal cannot
    turn messages on: the practice records consent; a text STOP he sent is undone by START),
    and his entry keeps saying it."""
    _enrol(db, world.patient_id)
    with db.write() as s:
        alex = s.get(Patient, world.patient_id)
        alex.consent_email = alex.consent_sms = False
    days = dict(earliest=date.today(), latest=date.today() + timedelta(days=14))
    with db.write() as s:
        said = portal_waitlist.join_waitlist(
            s, world.patient_id, clinic_id=world.clinic_id, service_id=world.service_id, **days
        )
    truth = (
        "offers go by email or text message, and neither can reach you now (no consent to "
        "email; no consent to text messages). To be offered times, call Test Clinic on 020 0000 "
        "0000 and ask them to record your consent to email or text messages, with your email "
        "address or mobile number (or, if you stopped our text messages, reply START to one of "
        "them)."
    )
    assert said == f"You are on the waitlist, but we cannot offer you a time yet: {truth}"
    with db.read() as s:
        [entry] = portal_waitlist.waitlist_entries(s, world.patient_id)
        assert s.get(WaitlistEntry, entry.id).status == WaitlistStatus.WAITING
    assert entry.stopped == f"We cannot offer you a time for this entry: {truth}"
    with db.write() as s:  # no mobile number: START cannot help
        alex = s.get(Patient, world.patient_id)
        alex.phone, alex.consent_email = None, True
        alex.email = None
    with db.read() as s:
        [entry] = portal_waitlist.waitlist_entries(s, world.patient_id)
    assert entry.stopped == (
        "We cannot offer you a time for this entry: offers go by email or text message, and "
        "neither can reach you now (no email address; no phone number). To be offered times, "
        "call Test Clinic on 020 0000 0000 and ask them to record your consent to email or text "
        "messages, with your email address or mobile number."
    )
    with db.write() as s:  # reachable again: the entry says nothing, a new join thanks
        alex = s.get(Patient, world.patient_id)
        alex.email = "alex@example.org"
    with db.read() as s:
        [entry] = portal_waitlist.waitlist_entries(s, world.patient_id)
    assert entry.stopped == ""


def test_an_entry_with_an_offer_out_says_only_what_is_true_of_it(db, world):
    """An offer already out reached Alex, who then withdrew consent to email and texts: the
    offer still books, so the portal shows it without saying no time can be offered. Once the
    practice stops offering the service, the offer cannot be booked: the portal showed it with
    Book this time (refused) beside 'no time will be offered'; now only the latter."""
    entry = _waiting_with_an_offer(db, world)
    assert entry.offer is not None and entry.stopped == ""
    with db.write() as s:
        alex = s.get(Patient, world.patient_id)
        alex.consent_email = alex.consent_sms = False
    with db.read() as s:
        (entry,) = portal_waitlist.waitlist_entries(s, world.patient_id)
    assert entry.offer is not None and entry.stopped == ""
    with db.write() as s:
        s.get(Service, world.service_id).active = False
    with db.read() as s:
        (entry,) = portal_waitlist.waitlist_entries(s, world.patient_id)
    assert entry.offer is None
    assert entry.stopped.startswith("The practice no longer offers Consultation")
