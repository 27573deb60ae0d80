"""Signed patient links: token security, proposals, change requests, public booking requests."""

from __future__ import annotations

import hmac
import itertools
import string
import sys
import threading
from datetime import date, time, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update

from core.kernel import tokens
from core.kernel.clock import local_to_utc
from core.kernel.config import BookingLimits, load_settings
from core.kernel.errors import LinkInvalid, PermissionDenied, ValidationError
from core.patients import invitations
from core.portal import patient_links
from core.requests import decisions, queue
from core.scheduling.appointments import get_appointment_detail
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    LinkToken,
    Notification,
    Package,
    Patient,
    RateLimitHit,
    RequestFlag,
    Service,
    Source,
)
from db.types import utcnow
from tests.factories import make_patient
from tests.support.locks import wait_until_a_writer_waits

BASE = "https://desk.example"


def _raw(link: str) -> str:
    return parse_qs(urlparse(link).query)["t"][0]


# ---------------------------------------------------------------- tokens


def test_tokens_have_256_random_bits_and_only_the_hash_is_stored(db):
    with db.write() as s:
        issued = [tokens.issue(s, "enroll", 1, timedelta(days=1)) for _ in range(20)]
    raws = {i.raw for i in issued}
    assert len(raws) == 20 and all(len(r) >= 43 for r in raws)  # 32 bytes, base64url
    with db.read() as s:
        stored = {row.token_hash for row in s.scalars(select(LinkToken))}
    assert not raws & stored and stored == {tokens.hash_token(r) for r in raws}


def test_expired_token_is_refused(db):
    with db.write() as s:
        issued = tokens.issue(s, "enroll", 1, timedelta(hours=1))
    with db.read() as s:
        tokens.verify(s, issued.raw, "enroll")
        with pytest.raises(LinkInvalid):
            tokens.verify(s, issued.raw, "enroll", now=utcnow() + timedelta(hours=1, seconds=1))


def test_single_use_token_works_once_and_a_reusable_one_keeps_working(db):
    with db.write() as s:
        once = tokens.issue(s, "enroll", 1, timedelta(days=1))
        many = tokens.issue(s, "change", 1, timedelta(days=1), single_use=False)
    with db.write() as s:
        tokens.consume(s, tokens.verify(s, once.raw, "enroll"))
        tokens.consume(s, tokens.verify(s, many.raw, "change"))
    with db.write() as s:
        with pytest.raises(LinkInvalid):
            tokens.verify(s, once.raw, "enroll")
        tokens.verify(s, many.raw, "change")
        row = s.get(LinkToken, once.row.id)
        with pytest.raises(LinkInvalid):  # a concurrent second use finds nothing to update
            tokens.consume(s, row)


def test_wrong_purpose_tampered_revoked_and_empty_tokens_are_refused_alike(db):
    with db.write() as s:
        issued = tokens.issue(s, "proposal", 7, timedelta(days=1))
        other = tokens.issue(s, "enroll", 7, timedelta(days=1))
        tokens.revoke(s, other.row.id)
    flipped = issued.raw[:-1] + ("A" if issued.raw[-1] != "A" else "B")
    messages = set()
    with db.read() as s:
        for raw, purpose in [
            (issued.raw, "enroll"),
            (flipped, "proposal"),
            (other.raw, "enroll"),
            ("", "proposal"),
            (None, "proposal"),
            ("x" * 500, "proposal"),
        ]:
            with pytest.raises(LinkInvalid) as caught:
                tokens.verify(s, raw, purpose)
            messages.add(str(caught.value))
        assert tokens.verify(s, issued.raw, "proposal").subject_id == 7
    assert messages == {
        "This link is not valid any more. Please contact the practice for a new one."
    }


def test_the_final_comparison_is_constant_time(db, monkeypatch):
    with db.write() as s:
        issued = tokens.issue(s, "enroll", 1, timedelta(days=1))
    compared = []
    real = hmac.compare_digest

    def recording(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", recording)
    with db.read() as s:
        tokens.verify(s, issued.raw, "enroll")
    assert compared == [(tokens.hash_token(issued.raw), tokens.hash_token(issued.raw))]


# Any text of up to 60 characters, drawn without st.text(): its table of Unicode categories is
# built on first use wherever .hypothesis holds none (a fresh clone, CI), 3.2 s of this test's
# 3.3 s alone. Half the guesses are any code points but the surrogates (which st.text() leaves
# out too), half are made of the tokens' own alphabet, as a guessed token would be.
_GUESS = st.one_of(
    st.lists(st.sampled_from(string.ascii_letters + string.digits + "-_"), max_size=60).map(
        "".join
    ),
    st.lists(
        st.integers(0, sys.maxunicode).filter(lambda c: not 0xD800 <= c <= 0xDFFF).map(chr),
        max_size=60,
    ).map("".join),
)


@settings(max_examples=60, deadline=None)
@given(guess=_GUESS)
def test_no_guessed_token_ever_verifies(tmp_path_factory, guess):
    from db.engine import Database
    from db.models import Base

    database = _shared_db(tmp_path_factory, Database, Base)
    with database.read() as s, pytest.raises(LinkInvalid):
        tokens.verify(s, guess, "enroll")


_DB = {}


def _shared_db(factory, Database, Base):
    if "db" not in _DB:
        database = Database(f"sqlite:///{factory.mktemp('guess') / 'g.db'}")
        Base.metadata.create_all(database.engine)
        with database.write() as s:
            for i in range(5):
                tokens.issue(s, "enroll", i, timedelta(days=1))
        _DB["db"] = database
    return _DB["db"]


# ---------------------------------------------------------------- proposals


def _proposal(db, world, days=3):
    day = date.today() + timedelta(days=days)
    with db.write() as s:
        request = decisions.request_appointment(
            s,
            world.staff,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day="morning",
        )
        raw = decisions.propose_time(
            s,
            world.manager,
            request.id,
            provider_id=world.provider_id,
            start_at=local_to_utc(day, time(10), "Europe/London"),
        )
    return request.id, raw


def test_patient_declines_a_proposal_through_the_link(db, world):
    appointment_id, raw = _proposal(db, world)
    with db.read() as s:
        view = patient_links.proposal_view(s, raw)
    assert view.first_name == "Alex" and view.service == "Consultation" and "10:00" in view.when
    with db.write() as s:
        message = patient_links.answer_proposal(s, raw, accept=False)
    assert "in touch" in message
    with db.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.REQUESTED
        with pytest.raises(patient_links.ProposalAnswered):  # opened again: says so
            patient_links.proposal_view(s, raw)
    with db.write() as s, pytest.raises(patient_links.ProposalAnswered):
        patient_links.answer_proposal(s, raw, accept=True)


def test_patient_accepts_a_proposal(db, world):
    appointment_id, raw = _proposal(db, world)
    with db.write() as s:
        assert "confirmed" in patient_links.answer_proposal(s, raw, accept=True)
    with db.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.SCHEDULED


def test_a_proposal_link_cannot_open_another_purpose(db, world):
    _, raw = _proposal(db, world)
    with db.read() as s:
        for view in (
            patient_links.change_view,
            patient_links.enrollment_view,
            patient_links.booking_view,
        ):
            with pytest.raises(LinkInvalid):
                view(s, raw)


# ---------------------------------------------------------------- change requests


def _scheduled(db, world, hours_ahead: float, **policy):
    start = utcnow() + timedelta(hours=hours_ahead)
    with db.write() as s:
        s.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                late_cancel_fee_cents=2500,
                points_deducted=20,
                policy_text="Give us 24 hours' notice; later costs 25.00 and 20 points.",
                **policy,
            )
        )
        appointment = Appointment(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            patient_id=world.patient_id,
            service_id=world.service_id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        s.add(appointment)
        s.flush()
        link = patient_links.change_link(s, appointment, BASE)
    return appointment.id, _raw(link)


def test_inside_the_window_the_patient_sees_the_fee_and_points_before_confirming(db, world):
    appointment_id, raw = _scheduled(db, world, hours_ahead=5)
    with db.read() as s:
        view = patient_links.change_view(s, raw)
    assert view.changeable and view.inside_window
    assert (view.fee, view.points, view.window_hours) == ("£25.00", 20, 24)
    assert "24 hours" in view.policy_text
    with db.write() as s:
        message = patient_links.submit_change(s, raw, kind="cancel", reason="Flu <b>bad</b>")
    assert "sent to the practice" in message
    with db.read() as s:
        change = s.scalars(select(ChangeRequest)).one()
        assert (change.status, change.inside_window, change.fee_cents, change.points) == (
            ChangeStatus.OPEN,
            True,
            2500,
            20,
        )
        assert change.reason == "Flu <b>bad</b>"  # stored as typed, escaped on display
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.SCHEDULED
    with db.write() as s, pytest.raises(ValidationError, match="already an open request"):
        patient_links.submit_change(s, raw, kind="cancel")


@pytest.mark.parametrize(
    "status, reason",
    [
        (AppointmentStatus.NO_SHOW, "This appointment is already marked as a no-show."),
        (AppointmentStatus.CHECKED_IN, "This appointment is already checked in."),
        (AppointmentStatus.CANCELLED, "This appointment is already cancelled."),
        (
            AppointmentStatus.REQUESTED,
            "This appointment is still a request the practice has not answered.",
        ),
    ],
)
def test_a_link_to_a_visit_past_changing_says_its_state_in_english(db, world, status, reason):
    """'This appointment is already marked as a no-show.', not 'is no show already.'"""
    appointment_id, raw = _scheduled(db, world, hours_ahead=72)
    with db.write() as s:
        s.get(Appointment, appointment_id).status = status
    with db.read() as s:
        view = patient_links.change_view(s, raw)
    assert (view.changeable, view.reason_not) == (False, reason)


def test_the_change_page_names_a_share_of_the_price_and_what_it_comes_to(db, world):
    """A fee of 50% of the visit's price: the page says so, with its amount for this £60.00
    visit, and the request records that amount (before, the fixed £25.00 whatever it cost)."""
    _, raw = _scheduled(
        db, world, hours_ahead=5, late_cancel_fee_basis="percent", late_cancel_fee_percent=50
    )
    with db.read() as s:
        view = patient_links.change_view(s, raw)
    assert view.fee == "50% of the visit's price (£30.00 for this visit)"
    with db.write() as s:
        patient_links.submit_change(s, raw, kind="cancel")
    with db.read() as s:
        assert s.scalars(select(ChangeRequest.fee_cents)).one() == 3000


def test_the_change_page_names_the_whole_treatment_not_only_the_first_service(db, world):
    appointment_id, raw = _scheduled(db, world, hours_ahead=72)
    with db.write() as s:
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        package = Package(name="Skin renewal", price_cents=12000)
        s.add_all([peel, package])
        s.flush()
        s.add_all(
            [
                AppointmentService(appointment_id=appointment_id, service_id=world.service_id),
                AppointmentService(appointment_id=appointment_id, service_id=peel.id, position=1),
            ]
        )
        two_services = patient_links.change_view(s, raw).appointment.service
        s.get(Appointment, appointment_id).package_id = package.id
        s.flush()
        s.expire_all()
        as_package = patient_links.change_view(s, raw).appointment.service
    assert two_services == "Consultation + Peel"
    assert as_package == "Skin renewal (Consultation + Peel)"


def test_outside_the_window_with_auto_accept_the_cancellation_is_done_at_once(db, world):
    appointment_id, raw = _scheduled(db, world, hours_ahead=72, outside_window_auto_accept=True)
    with db.read() as s:
        view = patient_links.change_view(s, raw)
    assert not view.inside_window and view.fee == "" and view.auto_accept
    with db.write() as s:
        assert "has been cancelled" in patient_links.submit_change(s, raw, kind="cancel")
    with db.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.CANCELLED
        view = patient_links.change_view(s, raw)
    assert not view.changeable and "already cancelled" in view.reason_not


def test_reschedule_needs_a_day(db, world):
    _, raw = _scheduled(db, world, hours_ahead=72)
    with db.write() as s, pytest.raises(ValidationError, match="day you would prefer"):
        patient_links.submit_change(s, raw, kind="reschedule")
    with db.write() as s:
        patient_links.submit_change(
            s,
            raw,
            kind="reschedule",
            time_of_day="afternoon",
            requested_day=date.today() + timedelta(days=6),
        )
    with db.read() as s:
        change = s.scalars(select(ChangeRequest)).one()
    assert change.kind.value == "reschedule" and change.time_of_day.value == "afternoon"


def _token_reads(db, what):
    """What `what(session)` returns, and how many of its statements read the link tokens."""
    seen = []

    def count(conn, cursor, statement, *args):
        if "FROM link_tokens" in statement:
            seen.append(statement)

    with db.write() as s:
        sa_event.listen(db.engine, "before_cursor_execute", count)
        try:
            done = what(s)
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", count)
    return done, len(seen)


def test_a_change_or_confirm_link_reads_its_token_once_and_a_dead_one_is_refused_alike(db, world):
    """Before, a change link's page read its token twice (a look for it as a change link, then
    again to check it), a reminder's confirm link three times (as a change link first), and
    sending the request read it all again for the page's terms: four and six reads. Each now
    reads it once. A link expired, revoked, used for something else, altered or empty is
    refused as before, with the one message."""
    appointment_id, change = _scheduled(db, world, hours_ahead=72)
    with db.write() as s:
        confirm = tokens.issue(s, "confirm", appointment_id, timedelta(days=3), single_use=False)
        gone = [tokens.issue(s, "change", appointment_id, timedelta(days=3)) for _ in "ab"]
        gone[0].row.expires_at = utcnow() - timedelta(seconds=1)
        tokens.revoke(s, gone[1].row.id)
        proposal = tokens.issue(s, "proposal", appointment_id, timedelta(days=3))
    day = date.today() + timedelta(days=5)
    for raw in (change, confirm.raw):
        view, reads = _token_reads(db, lambda s, raw=raw: patient_links.change_view(s, raw))
        assert view.changeable and reads == 1
        said, reads = _token_reads(
            db,
            lambda s, raw=raw: patient_links.submit_change(
                s, raw, kind="reschedule", requested_day=day
            ),
        )
        assert "sent to the practice" in said and reads == 1
        with db.write() as s:  # the next link asks afresh
            s.execute(update(ChangeRequest).values(status=ChangeStatus.DENIED))
    flipped = change[:-1] + ("A" if change[-1] != "A" else "B")
    dead = [r.raw for r in gone] + [proposal.raw, flipped, "", None, "x" * 500]
    with db.write() as s:
        for raw in dead:
            with pytest.raises(LinkInvalid, match="not valid any more"):
                patient_links.change_view(s, raw)
            with pytest.raises(LinkInvalid, match="not valid any more"):
                patient_links.submit_change(s, raw, kind="cancel")
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.SCHEDULED


# ---------------------------------------------------------------- public booking requests


def _booking_link(db, world):
    with db.write() as s:
        with pytest.raises(PermissionDenied):
            patient_links.issue_booking_link(s, world.staff, world.clinic_id, base_url=BASE)
        return _raw(
            patient_links.issue_booking_link(s, world.manager, world.clinic_id, base_url=BASE)
        )


_DAYS = itertools.count()
DAYS_AHEAD = patient_links.BOOKING_DAYS_AHEAD


def _book(db, raw, **fields):
    """A public booking request; each on a day of its own unless told (the same request twice
    is refused: core.requests.decisions._not_asked_already)."""
    values = dict(
        service_id=1,
        # within the booking window however many requests this process has made
        requested_day=date.today() + timedelta(days=4 + next(_DAYS) % (DAYS_AHEAD - 10)),
        time_of_day="morning",
        first_name="Robin",
        last_name="Hart",
        email="robin@example.org",
        phone="",
        consent_email=True,
        consent_sms=True,
        ip="203.0.113.9",
    )
    with db.write() as s:
        return patient_links.submit_booking(s, raw, **(values | fields))


def test_a_new_contact_becomes_a_patient_and_an_online_request(db, world):
    raw = _booking_link(db, world)
    with db.read() as s:
        view = patient_links.booking_view(s, raw)
    assert view.clinic_name == "Test Clinic" and view.services == [(1, "Consultation")]
    message = _book(db, raw, notes="<script>alert(1)</script>")
    with db.read() as s:
        patient = s.scalars(select(Patient).where(Patient.email == "robin@example.org")).one()
        request = s.scalars(select(Appointment).where(Appointment.patient_id == patient.id)).one()
    assert (request.status, request.source) == (AppointmentStatus.REQUESTED, Source.ONLINE)
    assert request.created_by_user_id is None and request.notes == "<script>alert(1)</script>"
    assert patient.consent_email and not patient.consent_sms
    # a known contact gets the same answer and no duplicate patient
    assert (
        _book(
            db, raw, first_name="Alex", last_name="Morgan", email="ALEX@example.org", ip="1.2.3.4"
        )
        == message
    )
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 2
        known = s.scalars(
            select(Appointment).where(Appointment.patient_id == world.patient_id)
        ).one()
    assert known.source == Source.ONLINE


LANDLINE_SAYS = (
    r"^'020 7946 0123' is a landline: texts cannot reach it\. Untick text messages, or type a "
    r"mobile number instead\.$"
)


@pytest.mark.parametrize("known", [False, True])
def test_consent_to_texts_on_a_landline_is_refused_alike_for_anyone(db, world, known):
    """A public request ticking texts for a landline (core.patients.records.check_texts) is
    refused saying what to do, before anything is stored, in the same words whether the
    number is on file or not; unticked, or with a mobile, it is taken (before, a new record
    was made with text consent no text could honour)."""
    raw = _booking_link(db, world)
    if known:
        with db.write() as s:
            s.get(Patient, world.patient_id).phone = "020 7946 0123"
    with pytest.raises(ValidationError, match=LANDLINE_SAYS):
        _book(db, raw, first_name="Alex" if known else "Kim", phone="020 7946 0123")
    with pytest.raises(ValidationError, match=LANDLINE_SAYS):  # texts alone ticked
        _book(
            db,
            raw,
            first_name="Alex" if known else "Kim",
            phone="020 7946 0123",
            consent_email=False,
        )
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Appointment)) == 0
    _book(db, raw, email="", phone="020 7946 0123", consent_email=False, consent_sms=False)
    _book(db, raw, email="", phone="07911 123456", first_name="Sam", last_name="Vale")
    with db.read() as s:
        sam = s.scalars(select(Patient).where(Patient.last_name == "Vale")).one()
    assert sam.consent_sms


@pytest.mark.parametrize("email_box, texts_box", [(True, False), (False, True)])
def test_the_public_form_asks_consent_to_email_and_to_texts_each_on_its_own(
    db, world, email_box, texts_box
):
    """A patient may want emails but no texts, or the reverse: each box gives its own channel
    on the new record and is kept as typed on a flagged request's flag, for the desk's new
    record (core.requests.flags); before, one box gave both or neither."""
    raw = _booking_link(db, world)
    _book(
        db,
        raw,
        email="robin@example.org",
        phone="07911 123456",
        consent_email=email_box,
        consent_sms=texts_box,
    )
    _book(  # Alex's email typed by Kim: flagged, what she ticked kept for the desk
        db,
        raw,
        first_name="Kim",
        last_name="Morgan",
        email="alex@example.org",
        phone="07911 654321",
        consent_email=email_box,
        consent_sms=texts_box,
    )
    with db.read() as s:
        robin = s.scalars(select(Patient).where(Patient.last_name == "Hart")).one()
        typed = s.scalars(select(RequestFlag.typed)).one()
    assert (robin.consent_email, robin.consent_sms) == (email_box, texts_box)
    assert (typed["consent_email"], typed["consent_sms"]) == (email_box, texts_box)


def test_email_consent_alone_with_a_landline_is_taken(db, world):
    """Only the texts box is refused with a landline: a patient ticking email only, with a
    landline and an email address, is taken (before, one box asked both, and ticking it with
    a landline was refused though only texts cannot reach one)."""
    raw = _booking_link(db, world)
    _book(db, raw, phone="020 7946 0123", consent_email=True, consent_sms=False)
    with db.read() as s:
        robin = s.scalars(select(Patient).where(Patient.last_name == "Hart")).one()
    assert (robin.phone, robin.consent_email, robin.consent_sms) == ("020 7946 0123", True, False)


@pytest.mark.parametrize("typed", ["+44 7700 900123", "447700900123", "07700-900-123"])
def test_a_known_phone_in_another_form_is_the_same_patient(db, world, typed):
    """The world's patient is stored as "07700 900123": the international or dashed form
    typed on the form is them, not a new patient (before, a duplicate was made)."""
    raw = _booking_link(db, world)
    _book(db, raw, first_name="Alex", last_name="Morgan", email="", phone=typed)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        request = s.scalars(select(Appointment)).one()
    assert request.patient_id == world.patient_id


def test_two_first_requests_at_once_from_one_new_contact_make_one_patient(db, world):
    """A new patient sends the form twice at once (two tabs; the number typed in another form
    the second time). Each request looks for the contact and, finding no one, makes a record:
    on PostgreSQL the second must not look before the first has written (two records of one
    person). Here the first holds its transaction open until the second is seen waiting; the
    second then finds the first's record: one patient with both requests."""
    raw = _booking_link(db, world)
    holding, failures = threading.Event(), []

    def send(days: int, contact: dict[str, str], hold: bool) -> None:
        try:
            with db.write() as s:
                patient_links.submit_booking(
                    s,
                    raw,
                    service_id=1,
                    requested_day=date.today() + timedelta(days=days),
                    time_of_day="morning",
                    first_name="Robin",
                    last_name="Hart",
                    ip=f"198.51.100.{days}",
                    **contact,
                )
                if hold:
                    holding.set()
                    wait_until_a_writer_waits(db)  # the second request waits on us
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))
            holding.set()

    first = threading.Thread(
        target=send, args=(5, {"email": "robin@example.org", "phone": "07700 900777"}, True)
    )
    first.start()
    assert holding.wait(30)
    second = threading.Thread(target=send, args=(6, {"phone": "+44 7700 900777"}, False))
    second.start()
    first.join(30)
    second.join(30)
    assert failures == []
    with db.read() as s:
        robins = s.scalars(select(Patient.id).where(Patient.last_name == "Hart")).all()
        owners = s.scalars(select(Appointment.patient_id)).all()
        flags = s.scalars(select(RequestFlag.flag)).all()
    assert len(robins) == 1 and owners == robins * 2 and flags == []


def test_booking_requests_are_rate_limited_per_contact_strictly_not_per_address(db, world):
    """A waiting room's Wi-Fi is one address for every patient in it: its fourth patient to
    ask was refused (the address counted as a contact, 3 an hour). Each contact still may ask
    only 3 times an hour, from anywhere; the network's own limit is a looser one."""
    raw = _booking_link(db, world)
    per = BookingLimits().per_contact
    for i in range(per + 2):  # one address: the waiting room
        _book(db, raw, email=f"p{i}@example.org")
    for i in range(per):
        _book(db, raw, email="same@example.org", ip=f"192.0.2.{i}")
    with pytest.raises(ValidationError, match="many requests"):
        _book(db, raw, email="same@example.org", ip="192.0.2.200")  # same email
    for i in range(per):
        _book(db, raw, email=f"q{i}@example.org", phone="07700 900999", ip=f"192.0.2.{50 + i}")
    with pytest.raises(ValidationError, match="many requests"):
        _book(db, raw, email="q9@example.org", phone="07700900999", ip="192.0.2.99")  # same phone
    with db.read() as s:  # stored hashed, never the address itself
        keys = list(s.scalars(select(RateLimitHit.key)))
    assert keys and not any("example.org" in k or "192.0" in k or "900999" in k for k in keys)
    later = utcnow() + timedelta(hours=1, minutes=1)
    with db.write() as s:
        patient_links.submit_booking(
            s,
            raw,
            service_id=1,
            requested_day=date.today() + timedelta(days=4),
            time_of_day="evening",
            first_name="A",
            last_name="B",
            email="same@example.org",
            ip="192.0.2.200",
            now=later,
        )


def test_the_per_network_limit_counts_an_ipv6_64_together_and_refuses_all_alike(db, world):
    """Past the network's limit a known patient's email is refused as a stranger's is; an
    IPv6 client counts with its /64 (a new address of it for each request is no way round)."""
    raw = _booking_link(db, world)
    limits = BookingLimits(per_network=3)
    for i, ip in enumerate(["2001:db8:0:7::1", "2001:db8:0:7::a:2", "2001:db8:0:7:ff:1:2:3"]):
        _book(db, raw, email=f"v{i}@example.org", ip=ip, limits=limits)
    refusals = []
    for email in ("alex@example.org", "v9@example.org"):  # a patient's, then nobody's
        with pytest.raises(ValidationError, match="many requests in the last hour") as refused:
            _book(db, raw, email=email, ip="2001:db8:0:7::99", limits=limits)
        refusals.append(str(refused.value))
    assert refusals[0] == refusals[1]
    _book(db, raw, email="v9@example.org", ip="2001:db8:0:8::1", limits=limits)  # another /64


def test_the_booking_limits_are_read_from_the_settings(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[clinicdesk]\nbooking_per_contact = 2\nbooking_per_network = 50\n")
    env = {"CLINICDESK_DATA_DIR": str(tmp_path), "CLINICDESK_BOOKING_PER_NETWORK": "40"}
    assert load_settings(env, secrets).booking_limits == BookingLimits(
        per_contact=2, per_link=20, per_clinic=60, per_network=40
    )


def test_a_national_phone_number_is_read_in_the_country_of_the_links_clinic(db, world):
    """A São Paulo clinic's booking form takes a São Paulo number as its patients type it:
    before, a national number was read as British and '(11) 91234-5678' was refused."""
    with db.write() as s:
        s.get(Clinic, world.clinic_id).locale = "pt-BR"
    raw = _booking_link(db, world)
    _book(db, raw, email="", phone="(11) 91234-5678")
    with db.read() as s:
        assert s.scalar(select(Patient.phone).where(Patient.first_name == "Robin")) == (
            "(11) 91234-5678"
        )


def test_the_per_contact_limit_counts_every_form_of_one_phone_number_together(db, world):
    """A phone typed in another form is the same number (as portal sign-in and text replies
    read it): each request from a new address and email, but one phone, counts against it."""
    raw = _booking_link(db, world)
    forms = ["+44 7700 900555", "07700 900555", "447700900555", "0044 7700 900555"]
    for i, typed in enumerate(forms[:3]):
        _book(db, raw, email=f"f{i}@example.org", phone=typed, ip=f"192.0.2.{i}")
    with pytest.raises(ValidationError, match="many requests in the last hour"):
        _book(db, raw, email="f9@example.org", phone=forms[3], ip="192.0.2.99")


@pytest.mark.parametrize("scope", ["contact", "link", "clinic"])
def test_booking_limits_hold_when_requests_arrive_at_once(db, world, scope):
    """Twelve requests at the same moment, each in its own transaction: exactly the limit's
    number get in, on PostgreSQL (where each would count before any had written) as on SQLite."""
    raw = _booking_link(db, world)
    limits = {
        "contact": BookingLimits(per_contact=3, per_link=100, per_clinic=100),
        "link": BookingLimits(per_contact=100, per_link=4, per_clinic=100),
        "clinic": BookingLimits(per_contact=100, per_link=100, per_clinic=5),
    }[scope]
    links = [raw if scope != "clinic" or i % 2 else _booking_link(db, world) for i in range(12)]
    barrier = threading.Barrier(12)
    results: list[str] = []

    def submit(i: int) -> None:
        email = "same@example.org" if scope == "contact" else f"t{i}@example.org"
        try:
            with db.write() as s:
                barrier.wait(timeout=30)  # all begin before any counts (SQLite: at BEGIN)
                patient_links.submit_booking(
                    s,
                    links[i],
                    service_id=1,
                    requested_day=date.today() + timedelta(days=4 + i),  # not one request twice
                    time_of_day="morning",
                    first_name="Robin",
                    last_name="Hart",
                    email=email,
                    consent_email=True,
                    ip=f"198.51.100.{i}",
                    limits=limits,
                )
            results.append("accepted")
        except ValidationError as error:
            results.append("limited" if "many requests" in str(error) else str(error))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    allowed = {"contact": 3, "link": 4, "clinic": 5}[scope]
    assert sorted(results) == ["accepted"] * allowed + ["limited"] * (12 - allowed)
    with db.read() as s:
        requests = s.scalar(
            select(func.count()).select_from(Appointment).where(Appointment.source == Source.ONLINE)
        )
    assert requests == allowed


def test_without_a_client_address_the_link_and_clinic_limits_still_hold(db, world):
    raw = _booking_link(db, world)
    limits = BookingLimits(per_contact=3, per_link=4, per_clinic=6)
    for i in range(4):  # every request from a new contact, no address known
        _book(db, raw, email=f"r{i}@example.org", ip=None, limits=limits)
    with pytest.raises(ValidationError, match="many requests in the last hour"):
        _book(db, raw, email="r9@example.org", ip=None, limits=limits)  # the link's limit
    second = _booking_link(db, world)  # another link of the same clinic
    for i in range(2):
        _book(db, second, email=f"s{i}@example.org", ip=None, limits=limits)
    with pytest.raises(ValidationError, match="many requests in the last hour"):
        _book(db, second, email="s9@example.org", ip=None, limits=limits)  # the clinic's limit
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Appointment)) == 6


def test_a_known_email_with_another_name_is_flagged_check_identity_not_attached_silently(db, world):
    raw = _booking_link(db, world)
    unknown = _book(db, raw, first_name="Mallory", last_name="Stone", email="m@example.org")
    known = _book(db, raw, first_name="Mallory", last_name="Stone", email="alex@example.org")
    same = _book(db, raw, first_name="alex", last_name="MORGAN ", email="alex@example.org")
    assert unknown == known == same == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        flagged = s.scalars(select(RequestFlag)).one()
        request = s.get(Appointment, flagged.appointment_id)
        rows = queue.list_queue(s, world.manager, "requests")
        detail = get_appointment_detail(s, world.manager, flagged.appointment_id)
    assert request.patient_id == world.patient_id and flagged.typed_name == "Mallory Stone"
    assert flagged.flag.startswith("Check identity: typed as “Mallory Stone”")
    by_id = {r.appointment_id: r for r in rows}
    assert by_id[flagged.appointment_id].check == flagged.flag
    assert [r.check for r in rows].count("") == 2  # the new patient and the matching name
    assert queue.describe(by_id[flagged.appointment_id])["Check"].startswith("⚠ Check identity")
    assert detail.check == flagged.flag


def test_a_family_members_request_goes_on_their_own_record_not_the_first_with_that_email(db, world):
    """Families share an email: Sam, on file with Alex's address, booking as himself was put
    on Alex's record (the first with that email) flagged 'Check identity'. It now goes on
    Sam's record, unflagged; a name no one of that email has is still flagged on the first."""
    raw = _booking_link(db, world)
    with db.write() as s:
        sam = make_patient(s, first_name="Sam", last_name="Morgan", phone="07700 900456").id
    _book(db, raw, first_name="sam", last_name="MORGAN", email="alex@example.org")
    _book(db, raw, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.read() as s:
        booked = {a.patient_id: a.id for a in s.scalars(select(Appointment))}
        flags = dict(s.execute(select(RequestFlag.appointment_id, RequestFlag.flag)).all())
    assert set(booked) == {sam, world.patient_id} and booked[sam] not in flags
    assert flags[booked[world.patient_id]].startswith("Check identity: typed as “Kim Morgan”")


@pytest.mark.parametrize(
    ("first", "last", "born", "flagged"),
    [
        ("Alex", "Morgan", date(1985, 4, 12), False),  # the world's Alex Morgan's day
        ("Alex", "Morgan", date(1990, 1, 2), True),
        ("Kim" * 26, "Morgan" * 13, date(1990, 1, 2), True),  # and a long name not theirs
    ],
)
def test_a_known_contact_typing_another_date_of_birth_is_flagged(
    db, world, first, last, born, flagged
):
    """A request whose email is Alex's, with a date of birth not Alex's, went on Alex's record
    with the typed day dropped and no word to the desk. It is now flagged, the typed day in
    the flag (which fits, after a long typed name too); the record keeps its own date of
    birth, and the answer is any request's."""
    raw = _booking_link(db, world)
    answer = _book(
        db, raw, first_name=first, last_name=last, email="alex@example.org", date_of_birth=born
    )
    assert answer == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        assert s.scalars(select(Appointment.patient_id)).one() == world.patient_id
        assert s.get(Patient, world.patient_id).date_of_birth == date(1985, 4, 12)
        flag = s.scalars(select(RequestFlag.flag)).one_or_none()
    if not flagged:
        assert flag is None
        return
    assert flag.startswith("Check identity: ") and len(flag) <= 300
    assert flag.endswith(
        f"he typed date of birth (2 Jan 1990) differs from #{world.patient_id}'s (12 Apr 1985): "
        "a family member sharing the email address? Call them before confirming."
    )


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("Alex", "Morgan"),  # the record's own name: the day alone is flagged
        ("Kim" * 26, "Morgan" * 13),  # a long name not theirs: one flag holds both
    ],
    ids=["own name", "long other name"],
)
def test_a_date_of_birth_typed_for_a_record_with_none_is_kept_in_the_flag(db, world, first, last):
    """A known email whose patient has no date of birth on file: the day typed was dropped
    (rightly not written to the record from a public form) with no word to the desk. The
    request is now flagged with the day, in the clinic's format, and what to do with it; a
    name not theirs is in the same flag, which still fits. The answer is any request's."""
    with db.write() as s:
        s.get(Patient, world.patient_id).date_of_birth = None
        s.get(Clinic, world.clinic_id).locale = "en-US"
    raw = _booking_link(db, world)
    answer = _book(
        db,
        raw,
        first_name=first,
        last_name=last,
        email="alex@example.org",
        date_of_birth=date(1990, 1, 2),
    )
    assert answer == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        assert s.scalars(select(Appointment.patient_id)).one() == world.patient_id
        assert s.get(Patient, world.patient_id).date_of_birth is None
        flag = s.scalars(select(RequestFlag.flag)).one()
    day = (
        f"Date of birth typed: Jan 2, 1990; #{world.patient_id} has none on file: confirm it "
        "and add it to the record."
    )
    if first == "Alex":
        assert flag == day
    else:
        assert flag.startswith("Check identity: typed as “KimKim") and flag.endswith(day)
        assert len(flag) <= 300


def test_of_two_on_file_with_the_contact_and_name_the_one_born_that_day_is_found(db, world):
    """A father and son of one name sharing an email: the son's request went on the father's
    record (the first). The typed date of birth now tells them apart; unflagged, each."""
    with db.write() as s:
        son = make_patient(s, date_of_birth=date(2012, 6, 1), phone="").id
    raw = _booking_link(db, world)
    for born in (date(2012, 6, 1), date(1985, 4, 12)):
        _book(
            db,
            raw,
            first_name="Alex",
            last_name="Morgan",
            email="alex@example.org",
            date_of_birth=born,
        )
    with db.read() as s:
        owners = s.scalars(select(Appointment.patient_id).order_by(Appointment.id)).all()
        assert owners == [son, world.patient_id]
        assert s.scalar(select(func.count()).select_from(RequestFlag)) == 0


def test_a_returning_patient_writing_from_a_new_email_is_flagged_as_maybe_known(db, world):
    """Alex Morgan, on file, booking from a new address without saying so became a second
    Alex Morgan with no word to the desk. The new record's request is now flagged with the
    patient on file and how to put it on their record (merge); the answer is any request's."""
    raw = _booking_link(db, world)
    answer = _book(db, raw, first_name="ALEX", last_name="morgan", email="a.morgan@example.net")
    assert answer == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        new = s.scalars(select(Patient).where(Patient.email == "a.morgan@example.net")).one()
        flag = s.scalars(select(RequestFlag.flag)).one()
        row = queue.list_queue(s, world.manager, "requests")[0]
    assert new.id != world.patient_id and row.check == flag
    assert flag == (
        f"Maybe a known patient: #{world.patient_id} Alex Morgan (born 12 Apr 1985) on file, "
        f"with other contact details. New record #{new.id} was made; if it is them, merge "
        f"#{new.id} into theirs (the request moves with it)."
    )


@pytest.mark.parametrize(
    ("born", "expected"),
    [
        (date(1985, 4, 12), "same"),  # the world's Alex Morgan's
        (date(1990, 1, 2), "other"),
    ],
)
def test_a_typed_date_of_birth_is_kept_and_tells_a_namesake_apart(db, world, born, expected):
    """The public form asked no date of birth: a new record had none, and every namesake on
    file was 'maybe' them. The day typed is now stored on the new record; the namesake born
    that day is flagged as very likely them, one born on another day is someone else (not
    named), one with no date of birth on file stays 'maybe'. The answer is any request's."""
    with db.write() as s:  # a second Alex Morgan, born on no day on file: always 'maybe'
        other = make_patient(s, email="alex.m@example.com", phone="", date_of_birth=None).id
    raw = _booking_link(db, world)
    answer = _book(
        db, raw, first_name="Alex", last_name="Morgan", email="am@example.net", date_of_birth=born
    )
    assert answer == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        new = s.scalars(select(Patient).where(Patient.email == "am@example.net")).one()
        flag = s.scalars(select(RequestFlag.flag)).one()
    assert new.date_of_birth == born
    merge = f"New record #{new.id} was made; if it is them, merge #{new.id} into theirs"
    if expected == "same":
        assert flag.startswith(
            f"Very likely a known patient: #{world.patient_id} Alex Morgan on file has the same "
            f"name and date of birth (born 12 Apr 1985), with other contact details. {merge}"
        )
    else:
        assert flag.startswith(
            f"Maybe a known patient: #{other} Alex Morgan on file, with other contact details. "
            + merge
        )


@pytest.mark.parametrize(
    ("born", "says"),
    [
        (date.today() + timedelta(days=2), "in the future"),
        (date(1800, 5, 1), "more than 130 years ago"),
    ],
)
def test_an_impossible_date_of_birth_is_refused_before_anything_is_stored(db, world, born, says):
    raw = _booking_link(db, world)
    with pytest.raises(ValidationError, match=f"Please check your date of birth: it is {says}"):
        _book(db, raw, date_of_birth=born)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        assert s.scalar(select(func.count()).select_from(RateLimitHit)) == 0


@pytest.mark.parametrize("proposed", [False, True])
def test_a_known_contacts_request_already_waiting_gets_the_same_answer_as_a_stranger(
    db, world, proposed
):
    """Anyone may type a patient's email into the public booking form: a request that repeats
    one of theirs still waiting (or proposed a time) was answered 'You have already asked for
    Consultation on …: we have proposed a time for it', telling a stranger that this address
    is a patient's, and what they asked for. It now gets the answer any request gets, and
    adds nothing (the patient's own request stands)."""
    raw = _booking_link(db, world)
    day = date.today() + timedelta(days=9)
    first = _book(
        db, raw, first_name="Alex", last_name="Morgan", email="alex@example.org", requested_day=day
    )
    if proposed:
        with db.write() as s:
            waiting = s.scalars(select(Appointment)).one()
            waiting.status = AppointmentStatus.TENTATIVE
    again = _book(
        db,
        raw,
        first_name="Mallory",
        last_name="Stone",
        email="ALEX@example.org",
        requested_day=day,
        ip="198.51.100.7",
    )
    stranger = _book(
        db,
        raw,
        first_name="Mallory",
        last_name="Stone",
        email="m@example.org",
        requested_day=day,
        ip="198.51.100.7",
    )
    assert first == again == stranger == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        mine = s.scalars(select(Appointment).where(Appointment.patient_id == world.patient_id))
        assert len(mine.all()) == 1


def test_a_patient_with_no_points_left_gets_the_same_answer_and_a_flagged_request(db, world):
    raw = _booking_link(db, world)
    with db.write() as s:
        make_patient(
            s, first_name="Zed", last_name="Zero", email="zero@example.org", points_balance=0
        )
    answer = _book(db, raw, first_name="Zed", last_name="Zero", email="zero@example.org")
    assert answer == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        assert "No online booking for this patient" in s.scalars(select(RequestFlag.flag)).one()


@pytest.mark.parametrize("names", [("Sukarno", ""), ("", "Sukarno")])
def test_a_patient_with_one_name_only_can_ask_for_an_appointment(db, world, names):
    """Someone with one name (a mononym) was told 'Please enter your first and last name.',
    which they cannot do, and could not ask online at all. One name in either box is a name."""
    raw = _booking_link(db, world)
    first, last = names
    assert _book(db, raw, first_name=first, last_name=last) == patient_links.BOOKING_RECEIVED
    with db.read() as s:
        patient = s.scalars(select(Patient).where(Patient.email == "robin@example.org")).one()
        body = s.scalars(select(Notification.body).where(Notification.patient_id == patient.id))
        assert s.scalars(select(Appointment.patient_id)).one() == patient.id
        assert (patient.full_name, body.one().split("\n")[0]) == ("Sukarno", "Dear Sukarno,")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"first_name": " ", "last_name": ""}, "enter your name"),
        ({"email": "", "phone": ""}, "email address or a phone number"),
        ({"service_id": 999}, "treatment from the list"),
        ({"requested_day": date.today() - timedelta(days=1)}, "choose a day between"),
        ({"time_of_day": "midnight"}, "time of day"),
        ({"email": "nope"}, "is not an email address"),
    ],
)
def test_booking_input_is_validated(db, world, fields, message):
    raw = _booking_link(db, world)
    with pytest.raises(ValidationError, match=message):
        _book(db, raw, **fields)


@pytest.mark.parametrize(
    "names",
    [("🙂🙂", ""), ("---", "Hart"), ("Robin", "!!"), ("", "123"), ("…", "🙂")],
)
def test_a_name_with_no_letter_in_it_is_refused_saying_what_to_type(db, world, names):
    """'🙂🙂' or '---' was taken as a patient's name: a record and a request in nobody's name.
    A name needs a letter, in any alphabet; nothing is stored."""
    raw = _booking_link(db, world)
    first, last = names
    with pytest.raises(ValidationError) as refused:
        _book(db, raw, first_name=first, last_name=last)
    assert "has no letter in it" in str(refused.value)
    assert "type your name as it is written" in str(refused.value)
    with db.read() as s:
        assert s.scalar(select(func.count(Appointment.id))) == 0


@pytest.mark.parametrize(
    "names", [("Zoë", "Brontë"), ("李", ""), ("Seán", "O'Brien"), ("Nguyễn", "Văn-An"), ("Ð", "")]
)
def test_a_name_in_any_alphabet_is_a_name(db, world, names):
    raw = _booking_link(db, world)
    first, last = names
    assert _book(db, raw, first_name=first, last_name=last) == patient_links.BOOKING_RECEIVED


def test_booking_with_a_wrong_token_reveals_nothing(db, world):
    _booking_link(db, world)
    with pytest.raises(LinkInvalid):
        _book(db, "not-a-real-token")


# ---------------------------------------------------------------- enrolment


def test_wrong_dates_of_birth_sent_at_once_get_no_more_tries_than_the_limit(db, world):
    """Twelve wrong dates of birth for one enrolment link, each in its own transaction at the
    same moment: only MAX_IDENTITY_ATTEMPTS are weighed (the last revoking the link), the rest
    find the link dead, on PostgreSQL (where each counted the failures before any had
    written, so all twelve were guesses) as on SQLite."""
    with db.write() as s:
        sent = invitations.send_invitation(s, world.staff, world.patient_id, base_url=BASE)
    raw = _raw(sent.link)
    barrier = threading.Barrier(12)
    results: list[str] = []

    def guess(i: int) -> None:
        try:
            with db.write() as s:
                barrier.wait(timeout=30)  # all begin before any counts (SQLite: at BEGIN)
                result = patient_links.enroll(
                    s, raw, date_of_birth=date(2000, 1, i + 1), accept_terms=True
                )
            results.append("revoked" if "not valid" in result.message else "wrong")
        except LinkInvalid:
            results.append("dead link")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    most = patient_links.MAX_IDENTITY_ATTEMPTS
    assert sorted(results) == ["dead link"] * (12 - most) + ["revoked"] + ["wrong"] * (most - 1)
    with db.read() as s:
        failed = s.scalar(
            select(func.count()).where(AuditEvent.action == "enrollment_identity_failed")
        )
    assert failed == most


@pytest.mark.parametrize(
    ("email", "phone", "sms", "heard"),
    [
        ("p@example.com", "07700900123", True, "We will let you know by email and text message."),
        (None, "07700900123", True, "We will let you know by text message."),
        ("p@example.com", "07700900123", False, "We will let you know by email."),
        (None, None, False, "The practice will contact you."),
    ],
)
def test_a_change_request_says_how_the_patient_will_hear(db, world, email, phone, sms, heard):
    """Before, every patient read "We will confirm by email", a patient who takes texts only
    and one the practice cannot message at all too."""
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.email, patient.phone, patient.consent_sms = email, phone, sms
        patient.consent_email = True
        said = patient_links.request_answer(patient, None)
        done = patient_links.request_answer(patient, "cancelled")
    assert said == f"Thank you: your request has been sent to the practice. {heard}"
    assert done.startswith("Your appointment has been cancelled.")
    assert ("confirmation" in done) == (heard != "The practice will contact you.")
