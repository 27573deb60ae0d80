"""Two-way SMS: parsing, the inbound route's authentication (shared secret and Twilio's
signature, as real HTTP requests to a loopback server), and what each reply does.
Re-run on PostgreSQL by tests/integration/test_sms_replies_pg.py."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import time as clock
from datetime import timedelta

import phonenumbers as pn
import pytest
import sqlalchemy as sa
import uvicorn
from alembic import command
from sqlalchemy import func, select
from starlette.applications import Starlette

from core.kernel import phones
from core.kernel.clock import local_to_utc
from core.kernel.config import Settings, SmsSettings
from core.kernel.errors import Conflict, LinkInvalid, ValidationError
from core.kernel.money import clinic_time, format_moment
from core.messaging import history, notify, reminders
from core.messaging.sms_inbound import Intent, parse_reply, twilio_signature
from core.patients import invitations, merge
from core.portal import patient_links, replies, sign_in
from core.scheduling import moves
from db import migrate
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    ChangeStatus,
    Channel,
    Clinic,
    DeliveryStatus,
    InvitationStatus,
    Notification,
    Patient,
    PortalInvitation,
    SmsReply,
    WorkingHours,
)
from db.types import utcnow
from tests.factories import make_patient
from tests.support.days import PLAIN_THURSDAY
from tests.support.postgres import free_port
from ui.webhooks import SMS_PATH, sms_route

TZ = "Europe/London"
DAY = PLAIN_THURSDAY  # ahead, in standard time
SECRET = "s3cret-shared-with-the-sms-provider"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"


def book(db, world, day=DAY, hour=10) -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=local_to_utc(day, clock(hour), TZ),
            ),
        ).id


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("C", Intent.CONFIRM),
        (" yes ", Intent.CONFIRM),
        ("Yes!", Intent.CONFIRM),
        ("c.", Intent.CONFIRM),
        ("X", Intent.CANCEL),
        ("cancel", Intent.CANCEL),
        ("CANCEL ", Intent.CANCEL),
        ("Can I come at 3 instead?", Intent.OTHER),
        ("yes but late", Intent.OTHER),
        ("", Intent.OTHER),
        ("NO", Intent.OTHER),
        ("STOP", Intent.STOP),
        ("stop.", Intent.STOP),
        ("Unsubscribe", Intent.STOP),
        ("STOP ALL", Intent.STOP),
        ("quit", Intent.STOP),
        ("END", Intent.STOP),
        ("start", Intent.START),
        ("UNSTOP", Intent.START),
        ("please stop the noise", Intent.OTHER),
        # as a UK or German clinic gets them: any case, a full stop, German's STOPP
        ("Stop.", Intent.STOP),
        ("STOPP", Intent.STOP),
        ("stopp!", Intent.STOP),
        ("Unstop", Intent.START),
        ("Start.", Intent.START),
        ("Stopp bitte nicht", Intent.OTHER),
    ],
)
def test_replies_are_parsed_strictly(text, intent):
    assert parse_reply(text) == intent


def test_twilio_signature_matches_twilios_documented_example():
    # the vector of Twilio's request-validation docs and its SDKs' RequestValidator tests
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


# ---------------------------------------------------------------- acting on replies


def test_c_confirms_the_next_appointment_by_sms(db, world):
    later = book(db, world, DAY + timedelta(days=2))
    first = book(db, world)
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="+44 7700 900123", body="C")
    assert outcome.outcome == "confirmed" and "is confirmed" in outcome.answer
    with db.read() as session:
        confirmed = reminders.confirmations(session, [first, later])
        reply = session.get(SmsReply, outcome.reply_id)
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "sms_reply_received"))
    assert list(confirmed) == [first] and confirmed[first].channel == "SMS reply"
    with db.read() as session:  # the answer texted back shows with the reply
        (shown,) = replies.list_replies(session, world.staff, appointment_id=first)
    assert shown.answer == outcome.answer and shown.note == ""
    assert reply.appointment_id == first and reply.body == "C"
    # the patient's words stay with the reply, not in the append-only audit log
    assert event.entity_id == first and event.message == f"Text reply #{reply.id}, read as confirm"
    assert event.actor_label.endswith("(text message)")  # not "(link)"


def test_x_asks_to_cancel_under_the_policy(db, world):
    appointment_id = book(db, world)
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                late_cancel_fee_cents=2500,
                policy_text="24 hours' notice please.",
            )
        )
    now = local_to_utc(DAY, clock(8), TZ)  # two hours before: inside the window
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="07700900123", body="X", now=now)
    assert outcome.outcome == "cancel_requested" and "a fee of £25.00 may apply" in outcome.answer
    with db.read() as session:
        change = session.scalar(select(ChangeRequest))
        assert change.status == ChangeStatus.OPEN and change.inside_window
        assert session.get(Appointment, appointment_id).status == AppointmentStatus.SCHEDULED


def test_x_inside_the_window_is_told_the_share_of_the_price_and_its_amount(db, world):
    """A fee of 50% of the visit's price: the answer names the share and what it comes to for
    this £60.00 visit (before, a bare £30.00 the patient could not check against the policy)."""
    book(db, world)
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                late_cancel_fee_basis="percent",
                late_cancel_fee_percent=50,
                policy_text="24 hours' notice please; later costs half the treatment.",
            )
        )
    now = local_to_utc(DAY, clock(8), TZ)
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="07700900123", body="X", now=now)
    assert outcome.outcome == "cancel_requested"
    assert "a fee of 50% of the visit's price (£30.00 for this visit) may apply." in outcome.answer


def test_x_outside_the_window_cancels_where_the_policy_accepts_at_once(db, world):
    appointment_id = book(db, world)
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                outside_window_auto_accept=True,
                policy_text="Free until a day before.",
            )
        )
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="07700 900123", body="cancel")
    assert outcome.outcome == "cancelled"
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == AppointmentStatus.CANCELLED
        texts = session.scalars(
            select(Notification).where(
                Notification.appointment_id == appointment_id,
                Notification.channel == Channel.SMS,
                Notification.template == "appointment_cancelled",
            )
        ).all()
    # told once by text: the cancellation's own message, not a second answer beside it
    # (before, the webhook answered "Your appointment ... is cancelled." as well)
    assert len(texts) == 1 and outcome.answer in ("", None)


def test_x_inside_the_window_cancelled_at_once_is_told_the_fee_and_points_charged(db, world):
    """A late cancellation the policy accepts at once, for a patient whose cancellation goes by
    email only (no consent to texts): the answer texted back said only 'Your appointment on ...
    is cancelled.', not the fee nor the points it had just charged. It says both, in the
    clinic's money, as the cancellation's own message does, and no record number."""
    appointment_id = book(db, world)
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                late_cancel_fee_cents=2500,
                points_deducted=10,
                inside_window_needs_approval=False,
                policy_text="24 hours' notice please.",
            )
        )
        patient = session.get(Patient, world.patient_id)
        patient.consent_sms, patient.points_balance = False, 50
    now = local_to_utc(DAY, clock(8), TZ)  # two hours before: inside the window
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="07700900123", body="X", now=now)
    assert outcome.outcome == "cancelled"
    with db.read() as session:
        visit = session.get(Appointment, appointment_id)
        assert visit.status == AppointmentStatus.CANCELLED and visit.late_cancellation
        when = clinic_time(visit.clinic, visit.start_at)
    assert outcome.answer == (
        f"Your appointment on {when} is cancelled. A late-cancellation fee of £25.00 applies. "
        "10 points were deducted."
    )


def test_anything_else_lands_in_the_staff_inbox_on_that_appointment(db, world):
    appointment_id = book(db, world)
    with db.write() as session:
        outcome = replies.receive_sms(
            session, from_number="07700 900123", body="Running late, sorry <b>x</b>"
        )
    assert outcome.outcome == "inbox" and outcome.answer == ""
    with db.read() as session:
        inbox = replies.list_replies(session, world.staff, open_only=True)
        mine = replies.list_replies(session, world.staff, appointment_id=appointment_id)
    assert [r.appointment_id for r in inbox] == [appointment_id]
    assert mine[0].body == "Running late, sorry <b>x</b>"  # kept as typed; pages escape it
    with db.write() as session:
        replies.mark_handled(session, world.staff, outcome.reply_id, "Called back.")
    with db.read() as session:
        assert replies.list_replies(session, world.staff, open_only=True) == []


def test_a_reply_marked_handled_twice_says_by_whom_and_keeps_the_first_note(db, world):
    appointment_id = book(db, world)
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="07700 900123", body="Parking?")
    with db.write() as session:
        replies.mark_handled(session, world.manager, outcome.reply_id, "Told her: level 2.")
    with pytest.raises(Conflict) as refused, db.write() as session:
        replies.mark_handled(session, world.staff, outcome.reply_id, "Rang back.")
    with db.read() as session:
        reply = session.get(SmsReply, outcome.reply_id)
        when = format_moment(reply.handled_at, TZ, "en-GB")
        assert (
            reply.note.endswith("\nTold her: level 2.") and reply.appointment_id == appointment_id
        )
    assert str(refused.value) == (
        f"This reply was already marked handled by {world.manager.name} at {when}. "
        "Your note was not saved."
    )


def test_unknown_number_is_kept_for_staff_and_provider_retries_act_once(db, world):
    book(db, world)
    with db.write() as session:
        unknown = replies.receive_sms(session, from_number="+1 555 0100 999", body="C")
    assert unknown.outcome == "inbox"
    with db.write() as session:
        first = replies.receive_sms(session, from_number="07700900123", body="C", provider_ref="m1")
    with db.write() as session:
        again = replies.receive_sms(session, from_number="07700900123", body="C", provider_ref="m1")
    assert first.outcome == "confirmed" and again.outcome == "duplicate"


def test_stop_withdraws_text_consent_once_audited_and_start_gives_it_back(db, world):
    appointment_id = book(db, world)
    with db.write() as session:  # a reminder text waiting in the outbox
        patient = session.get(Patient, world.patient_id)
        notify.queue_for_patient(
            session, patient, "appointment_cancelled", {"when": "x"}, appointment_id=appointment_id
        )
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="+44 7700 900123", body="STOP")
    assert outcome.outcome == "opted_out" and "START" in outcome.answer
    with db.write() as session:
        again = replies.receive_sms(session, from_number="07700900123", body="stop")
    assert again.outcome == "opted_out" and again.answer == ""  # acknowledged once
    with db.read() as session:
        patient = session.get(Patient, world.patient_id)
        assert patient.consent_sms is False
        assert notify.channels_for(patient)[1] == ["no consent to text messages"]
        withdrawn = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "sms_consent_withdrawn")
        ).all()
        waiting = session.scalar(select(Notification).where(Notification.channel == Channel.SMS))
    assert [(e.entity, e.entity_id) for e in withdrawn] == [("patient", world.patient_id)]
    assert waiting.status == DeliveryStatus.FAILED and waiting.permanent_failure
    assert "STOP" in waiting.last_error
    with db.write() as session, pytest.raises(ValidationError, match="withdrawn consent to text"):
        notify.retry(session, world.manager, waiting.id)  # staff cannot send it after all
    with db.write() as session:
        back = replies.receive_sms(session, from_number="07700 900123", body="START")
    assert back.outcome == "opted_in" and "STOP" in back.answer
    with db.read() as session:
        assert session.get(Patient, world.patient_id).consent_sms is True
        assert session.scalar(select(func.count()).where(AuditEvent.action == "sms_consent_given"))
    with db.write() as session:  # consent given back: staff may send it after all
        notify.retry(session, world.manager, waiting.id)
    with db.read() as session:
        assert session.get(Notification, waiting.id).status == DeliveryStatus.QUEUED


def test_start_from_a_landline_gives_no_text_consent_and_says_why_but_stop_still_stops(db, world):
    """A fixed line can send a text (a landline texting service, a number ported to VoIP):
    START from the number of a record the desk saved as a landline without text consent left
    the record with consent no text can use, which the desk and the booking form refuse
    (core.patients.records.check_texts). Now it lands in the staff inbox saying why, as a
    record kept with consent on a landline still stops on STOP."""
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.phone, patient.consent_sms = "020 7946 0123", False
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="+442079460123", body="START")
    assert (outcome.outcome, outcome.answer) == ("inbox", "")
    with db.read() as session:
        assert session.get(Patient, world.patient_id).consent_sms is False
        reply = session.get(SmsReply, outcome.reply_id)
        assert reply.patient_id == world.patient_id
        assert "landline" in reply.note and "mobile" in reply.note
        assert not session.scalar(
            select(func.count()).where(AuditEvent.action == "sms_consent_given")
        )
    with db.write() as session:  # one kept from before the check, with consent: STOP stops it
        session.get(Patient, world.patient_id).consent_sms = True
    with db.write() as session:
        stopped = replies.receive_sms(session, from_number="+442079460123", body="Stop.")
    assert stopped.outcome == "opted_out"
    with db.read() as session:
        assert session.get(Patient, world.patient_id).consent_sms is False


def test_a_clinic_added_abroad_never_makes_a_number_on_file_a_landline_one_closed_can():
    """How a START can come from a number on file as a landline, besides a fixed line's own
    texting service: not by a clinic added in another country (a number typed at the desk
    could be dialled in one of the practice's countries then, and that reading stays, so the
    number is no landline while it does: core.kernel.phones.landline), but by one closed or
    moved to another country's locale: '07700 900123', unplaced in Britain (maybe a mobile),
    is a Berlin line once the London clinic is gone."""
    regions = ("GB", "DE", "FR", "IE", "AT")
    kinds = (pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.VOIP)
    numbers = {"07700 900123", "07911 123456", "030 1234567", "0151 23456789"} | {
        pn.format_number(example, pn.PhoneNumberFormat.NATIONAL)
        for region in regions
        for kind in kinds
        if (example := pn.example_number_for_type(region, kind))
    }
    for number in numbers:
        for first, added in itertools.permutations(regions, 2):
            if not phones.phone_problem(number, (first,)):  # dialable when it was typed
                assert phones.landline(number, (first, added)) <= phones.landline(
                    number, (first,)
                ), (number, first, added)
    assert not phones.landline("07700 900123", ("GB", "DE"))
    assert phones.landline("07700 900123", ("DE",))


def test_stop_revokes_a_pending_text_invitation_as_the_patients_own_act(db, world):
    """STOP withdraws text consent, and the invitation texted to that number (its link would
    still enrol them) is revoked as a staff edit withdrawing the consent revokes it, audited as
    the patient's act; an invitation that went by email stays."""
    with db.write() as session:
        session.get(Patient, world.patient_id).consent_email = False  # invited by text
        texted = invitations.send_invitation(
            session, world.staff, world.patient_id, base_url="http://desk"
        )
        emailed_id = make_patient(session, first_name="Sam", phone="07700 900123").id
        emailed = invitations.send_invitation(session, world.staff, emailed_id, base_url="x")
    assert texted.channel == Channel.SMS and emailed.channel == Channel.EMAIL
    with db.write() as session:
        replies.receive_sms(session, from_number="+44 7700 900123", body="STOP")
    with db.read() as session:
        inv = session.get(PortalInvitation, texted.invitation_id)
        assert (inv.status, inv.revoked_reason) == (
            InvitationStatus.REVOKED,
            "Consent to text messages withdrawn",
        )
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "invitation_revoked",
                AuditEvent.entity_id == texted.invitation_id,
            )
        ).one()
        assert event.user_id is None and event.actor_label == "Patient Alex (text message)"
        with pytest.raises(LinkInvalid):
            patient_links.enrollment_view(session, texted.link.split("t=")[1])
        kept = session.get(PortalInvitation, emailed.invitation_id)
        assert kept.status == InvitationStatus.PENDING


def test_cancel_still_cancels_and_does_not_stop_texts(db, world):
    book(db, world)
    with db.write() as session:
        replies.receive_sms(session, from_number="07700 900123", body="CANCEL")
    with db.read() as session:
        assert session.get(Patient, world.patient_id).consent_sms is True


# ---------------------------------------------------------------- the route, over real HTTP


class _Server:
    def __init__(self, db, base_url: str, port: int) -> None:
        settings = Settings(
            database_url="sqlite://",
            secret_key="x" * 40,
            data_dir=None,
            base_url=base_url,
            sms=SmsSettings(inbound_secret=SECRET, twilio_auth_token=TWILIO_TOKEN),
        )
        app = Starlette(routes=[sms_route(lambda: db, lambda: settings)])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def route(db):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with _Server(db, base, port):
        yield base + SMS_PATH


def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_route_takes_the_shared_secret_and_refuses_without_it(db, world, route):
    appointment_id = book(db, world)
    body = json.dumps({"from": "+447700900123", "text": "YES", "id": "p-1"}).encode()
    json_headers = {"Content-Type": "application/json"}
    assert _post(route, body, json_headers)[0] == 403
    assert _post(route, body, json_headers | {"X-ClinicDesk-Secret": "wrong"})[0] == 403
    with db.read() as session:
        assert session.scalar(select(SmsReply)) is None  # nothing was touched
    status, text = _post(route, body, json_headers | {"X-ClinicDesk-Secret": SECRET})
    assert status == 200 and json.loads(text)["outcome"] == "confirmed"
    with db.read() as session:
        assert appointment_id in reminders.confirmations(session, [appointment_id])


def test_route_takes_twilios_signed_form_and_refuses_a_forged_one(db, world, route):
    appointment_id = book(db, world)
    fields = {"From": "+447700900123", "Body": "C", "MessageSid": "SM123", "To": "+4420"}
    data = urllib.parse.urlencode(fields).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = twilio_signature(route, fields, "not-the-token")
    assert _post(route, data, form | {"X-Twilio-Signature": forged})[0] == 403
    tampered = urllib.parse.urlencode(fields | {"Body": "X"}).encode()
    good = twilio_signature(route, fields, TWILIO_TOKEN)
    assert _post(route, tampered, form | {"X-Twilio-Signature": good})[0] == 403
    status, text = _post(route, data, form | {"X-Twilio-Signature": good})
    assert status == 200 and "<Message>Thank you, your appointment" in text
    with db.read() as session:
        assert appointment_id in reminders.confirmations(session, [appointment_id])
        assert session.scalar(select(SmsReply.provider_ref)) == "SM123"


# ---------------------------------------------------------------- the appointment's messages


def _messages(db, world, appointment_id):
    with db.read() as session:
        return history.messages_of(session, world.staff, appointment_id)


def test_replies_through_the_route_are_listed_with_their_answers_on_the_appointment(
    db, world, route
):
    """C (Twilio's form) and STOP (the HTTP adapter's JSON) from the patient's phone: each is on
    the Messages list of the appointment it was about, in the clinic's zone and locale, with
    the answer sent back just after it, among the messages ClinicDesk sent; not on the
    patient's other appointment."""
    with db.write() as session:  # a clinic speaking US English; a British patient's number
        session.get(Clinic, world.clinic_id).locale = "en-US"
        session.get(Patient, world.patient_id).phone = "+44 7700 900123"
    later = book(db, world, DAY + timedelta(days=2))
    first = book(db, world)
    fields = {"From": "+447700900123", "Body": " c ", "MessageSid": "SM1", "To": "+4420"}
    signed = {"X-Twilio-Signature": twilio_signature(route, fields, TWILIO_TOKEN)}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, twiml = _post(route, urllib.parse.urlencode(fields).encode(), form | signed)
    assert status == 200
    answered = re.search(r"<Message>(.*)</Message>", twiml).group(1)
    stop = json.dumps({"from": "+447700900123", "text": "STOP", "id": "p-2"}).encode()
    headers = {"Content-Type": "application/json", "X-ClinicDesk-Secret": SECRET}
    status, text = _post(route, stop, headers)
    assert status == 200 and json.loads(text)["outcome"] == "opted_out"
    with db.read() as session:
        received = {r.body: r.received_at for r in session.scalars(select(SmsReply))}
    rows = _messages(db, world, first)
    texts = [(r.kind, r.template, r.text) for r in rows if r.kind != "outbox"]
    assert texts == [
        ("answer", history.ANSWER, json.loads(text)["reply"]),
        ("reply", history.REPLY, "STOP"),
        ("answer", history.ANSWER, answered),
        ("reply", history.REPLY, "c"),
    ]
    reply = next(r for r in rows if r.kind == "reply" and r.text == "c")
    assert reply.channel == "text message" and reply.to_address == "+447700900123"
    assert reply.queued == format_moment(received[" c "], TZ, "en-US")  # 'Thu, Feb 11, …, AM'
    assert reply.status == "received" and reply.attempts is None
    sent = [r.kind for r in rows]  # the booking's own messages, queued before the replies
    assert sent[-1] == "outbox" and sent.index("outbox") == len(texts)
    assert {r.channel for r in rows if r.kind == "outbox"} <= {"email", "text message"}
    assert [r.kind for r in _messages(db, world, later)] == ["outbox"] * (len(rows) - len(texts))


def test_the_list_shows_a_reply_as_one_capped_line_of_plain_text(db, world):
    appointment_id = book(db, world)
    typed = "**Late**\r\n<b>sorry</b>\x07  " + "x" * 2000
    with db.write() as session:
        replies.receive_sms(session, from_number="07700900123", body=typed)
    (reply,) = [r for r in _messages(db, world, appointment_id) if r.kind == "reply"]
    assert reply.text.startswith("**Late** <b>sorry</b>  xxx") and reply.text.endswith("…")
    assert len(reply.text) == history.TEXT_SHOWN


def test_a_stranger_s_reply_is_on_nobody_s_list(db, world):
    appointment_id = book(db, world)
    with db.write() as session:
        mine = replies.receive_sms(session, from_number="07700900123", body="Is there parking?")
        theirs = replies.receive_sms(session, from_number="+1 555 0100 999", body="C")
    with db.read() as session:
        stranger = session.get(SmsReply, theirs.reply_id)
        audited = session.scalar(
            select(AuditEvent).where(AuditEvent.details["reply_id"].as_integer() == stranger.id)
        )
        confirmed = reminders.confirmations(session, [appointment_id])
    assert (stranger.patient_id, stranger.appointment_id, audited.patient_id) == (None,) * 3
    assert theirs.answer == "" and not confirmed
    listed = [r.id for r in _messages(db, world, appointment_id) if r.kind == "reply"]
    assert listed == [mine.reply_id]


@pytest.mark.parametrize("body", ["C", "STOP", "Who is this?"])
def test_a_number_that_only_ends_like_the_patients_is_a_stranger(db, world, body):
    """+33 7 00 90 01 23 (France) ends in the same nine digits as the patient's 07700 900123
    (United Kingdom): its texts confirm nothing, stop nothing and join nobody's messages."""
    appointment_id = book(db, world)
    with db.write() as session:
        outcome = replies.receive_sms(session, from_number="+33700900123", body=body)
    with db.read() as session:
        reply = session.get(SmsReply, outcome.reply_id)
        assert (reply.patient_id, reply.appointment_id) == (None, None)
        assert session.get(Patient, world.patient_id).consent_sms is True
        assert not reminders.confirmations(session, [appointment_id])
    assert outcome.answer == ""
    assert [r.kind for r in _messages(db, world, appointment_id)] == ["outbox"] * 2


@pytest.mark.parametrize("number", ["+447700900123", "447700900123", "07700 900123"])
def test_every_form_of_the_patients_number_is_theirs(db, world, number):
    appointment_id = book(db, world)
    with db.write() as session:
        assert replies.receive_sms(session, from_number=number, body="C").outcome == "confirmed"
    with db.read() as session:
        assert appointment_id in reminders.confirmations(session, [appointment_id])


def _lakeside(db, world) -> int:
    """A New York clinic (en-US) beside the world's London one, the provider working there."""
    return _clinic_abroad(db, world, "Lakeside", "America/New_York", "en-US", "USD")


def _clinic_abroad(db, world, name: str, tz: str, locale: str, currency: str) -> int:
    """A clinic beside the world's London one, the provider working there every day."""
    with db.write() as session:
        clinic = Clinic(name=name, timezone=tz, locale=locale, currency=currency)
        session.add(clinic)
        session.flush()
        for weekday in range(7):
            session.add(
                WorkingHours(
                    provider_id=world.provider_id,
                    clinic_id=clinic.id,
                    weekday=weekday,
                    starts=clock(9),
                    ends=clock(17),
                )
            )
        return clinic.id


@pytest.mark.parametrize("stored", ["07700 900123", "+44 7700 900123"])
def test_the_patient_is_found_by_their_number_whatever_clinic_they_last_booked(db, world, stored):
    """A UK number, its latest booking in New York: read in the country of each clinic the
    patient has booked at, it is still theirs, and still not the French number's."""
    book(db, world, DAY + timedelta(days=2))
    lakeside = _lakeside(db, world)
    with db.write() as session:
        session.get(Patient, world.patient_id).phone = stored
        new_york = moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=lakeside,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=local_to_utc(DAY, clock(10), "America/New_York"),
            ),
        ).id
    with db.write() as session:
        french = replies.receive_sms(session, from_number="+33700900123", body="C")
        theirs = replies.receive_sms(session, from_number="+447700900123", body="C")
    assert (french.outcome, theirs.outcome) == ("inbox", "confirmed")
    with db.read() as session:
        reply = session.get(SmsReply, theirs.reply_id)
        assert (reply.patient_id, reply.appointment_id) == (world.patient_id, new_york)
        assert session.get(SmsReply, french.reply_id).patient_id is None
        assert list(reminders.confirmations(session, [new_york])) == [new_york]


def _book_at(db, world, clinic_id: int, tz: str) -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=local_to_utc(DAY, clock(10), tz),
            ),
        ).id


def test_a_national_number_of_another_practice_country_is_the_patients(db, world):
    """The patient's UK number stored as typed, '07700 900123', and booked only in Paris: it is
    no French number (nine digits after the 0), so it is read in the practice's one other
    country, the UK, and their reply from +44 confirms the Paris visit (before, it was read in
    France only and the reply went to the staff inbox). The French number ending in the same
    digits is still a stranger."""
    paris = _clinic_abroad(db, world, "Rive Gauche", "Europe/Paris", "fr-FR", "EUR")
    appointment_id = _book_at(db, world, paris, "Europe/Paris")
    with db.write() as session:
        french = replies.receive_sms(session, from_number="+33700900123", body="C")
        theirs = replies.receive_sms(session, from_number="+447700900123", body="C")
    assert (french.outcome, theirs.outcome) == ("inbox", "confirmed")
    with db.read() as session:
        reply = session.get(SmsReply, theirs.reply_id)
        assert (reply.patient_id, reply.appointment_id) == (world.patient_id, appointment_id)
        assert session.get(SmsReply, french.reply_id).patient_id is None
        assert list(reminders.confirmations(session, [appointment_id])) == [appointment_id]
        assert [p.id for p in sign_in.patients_by_phone(session, "07700 900123")] == [
            world.patient_id
        ]


def test_a_national_number_two_practice_countries_could_own_is_nobodys(db, world):
    """Booked only in Paris, '07700 900123' could be the UK's +44 or Germany's +49 7700 900123
    once the practice has a Berlin clinic too: a stranger's text must never reach the patient,
    so neither matches and both replies wait in the staff inbox, as before."""
    paris = _clinic_abroad(db, world, "Rive Gauche", "Europe/Paris", "fr-FR", "EUR")
    _clinic_abroad(db, world, "Mitte", "Europe/Berlin", "de-DE", "EUR")
    appointment_id = _book_at(db, world, paris, "Europe/Paris")
    with db.write() as session:
        german = replies.receive_sms(session, from_number="+497700900123", body="C")
        british = replies.receive_sms(session, from_number="+447700900123", body="C")
    assert (german.outcome, british.outcome) == ("inbox", "inbox")
    with db.read() as session:
        assert not reminders.confirmations(session, [appointment_id])
        assert {session.get(SmsReply, r.reply_id).patient_id for r in (german, british)} == {None}


def test_a_merged_duplicate_does_not_hide_the_kept_patient_s_replies(db, world):
    """A duplicate with the same number, merged into the patient: their replies confirm, and
    STOP reaches the kept record alone (the duplicate is no one's any more)."""
    appointment_id = book(db, world)
    with db.write() as session:
        duplicate = make_patient(session, email=None).id
    with db.write() as session:
        merge.merge_patients(session, world.manager, world.patient_id, duplicate, "Same person")
    with db.write() as session:
        assert [p.id for p in sign_in.patients_by_phone(session, "+447700900123", 20)] == [
            world.patient_id
        ]
        confirmed = replies.receive_sms(session, from_number="+447700900123", body="C")
    with db.write() as session:
        stopped = replies.receive_sms(session, from_number="07700 900123", body="STOP")
    assert confirmed.outcome == "confirmed"
    with db.read() as session:
        assert appointment_id in reminders.confirmations(session, [appointment_id])
        stop = session.get(SmsReply, stopped.reply_id)
        assert (stopped.outcome, stop.patient_id, stop.note) == ("opted_out", world.patient_id, "")


def test_the_migration_moves_the_answer_out_of_the_note(db, world):
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    old = sa.table(  # the table as the older code knew it
        "sms_replies",
        *(sa.column(name) for name in ("received_at", "from_number", "body", "outcome", "note")),
    )
    at, number = utcnow(), "07700900123"
    with db.engine.begin() as connection:
        connection.execute(
            old.insert(),
            [
                {
                    "received_at": at,
                    "from_number": number,
                    "outcome": "confirmed",
                    "body": "C",
                    "note": "Answered by text: Thank you.\nCalled back.",  # staff's, after
                },
                {
                    "received_at": at,
                    "from_number": number,
                    "outcome": "inbox",
                    "body": "Hi",
                    "note": "Not a C/YES or X/CANCEL reply.",
                },
            ],
        )
    migrate.upgrade(db.engine)
    with db.read() as session:
        rows = session.scalars(select(SmsReply).order_by(SmsReply.id)).all()
        assert [(r.answer, r.note) for r in rows] == [
            ("Thank you.", "Called back."),
            ("", "Not a C/YES or X/CANCEL reply."),
        ]


@pytest.mark.parametrize("sender", ["+447700900123", "+447700900999"])
def test_help_is_answered_with_who_is_texting_and_how_to_stop(db, world, sender):
    """HELP (or INFO) from the patient or any number: the clinic's name and contact details
    and how to stop, as the carriers expect; nothing else changes (before, it went to staff
    unanswered)."""
    book(db, world)
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.phone, clinic.email = "020 7946 0000", "desk@example.org"
        answered = replies.receive_sms(session, from_number=sender, body="help")
    assert answered.outcome == "help"
    assert answered.answer.startswith(f"{clinic.name}: appointment messages.")
    assert "020 7946 0000 or desk@example.org" in answered.answer
    assert answered.answer.endswith("Reply STOP to stop text messages.")
    assert parse_reply("Help me find the car park") == Intent.OTHER
