"""The outbox: consent, templates, and real delivery to an SMTP server on loopback."""

import json
import re
from datetime import UTC, datetime, time, timedelta
from email.utils import parseaddr

import pytest
from icalendar import Calendar
from sqlalchemy import event, insert, literal, select
from sqlalchemy.orm import selectinload

from core.forms import after_booking as forms
from core.interchange import patient_export
from core.kernel import phones
from core.kernel.clock import local_to_utc
from core.kernel.config import SmtpSettings
from core.kernel.errors import Conflict, PermissionDenied, ValidationError
from core.messaging import delivery, history, notify, reminders, sms_parts
from core.scheduling import moves
from db.models import (
    Appointment,
    Channel,
    Clinic,
    DeliveryStatus,
    DocumentKind,
    Notification,
    NotificationTemplate,
    Patient,
    Service,
    ServiceDocument,
    StopKind,
)
from db.types import utcnow
from tests.support.days import PLAIN_THURSDAY
from tests.support.smtp import text_of


def _queue(db, patient_id, **kwargs):
    with db.write() as session:
        patient = session.get(Patient, patient_id)
        return notify.queue_for_patient(
            session,
            patient,
            "appointment_cancelled",
            {"when": "Tue 01 Dec 2026, 09:30", "reason": "Ill"},
            **kwargs,
        )


def test_messages_go_only_to_consented_channels_and_say_why_not(db, world):
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.consent_sms, patient.reminders_enabled = False, False
    queued = _queue(db, world.patient_id)
    assert [n.channel for n in queued.notifications] == [Channel.EMAIL]
    assert queued.skipped == ["no consent to text messages"]
    assert "Alex Morgan" in queued.notifications[0].body and "Ill" in queued.notifications[0].body


def test_no_text_goes_to_a_landline_on_file_and_the_reason_says_so(db, world):
    """A record kept from before the landline check (or imported) with text consent on a fixed
    line: confirmations, reminders and the rest go by email, and the text is skipped saying
    why, not sent to a number no text reaches. A mobile still gets its text."""
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.phone, patient.consent_sms = "020 7946 0123", True
    queued = _queue(db, world.patient_id)
    assert [n.channel for n in queued.notifications] == [Channel.EMAIL]
    assert queued.skipped == ["'020 7946 0123' is a landline: texts cannot reach it"]
    with db.write() as session:
        session.get(Patient, world.patient_id).phone = "07700 900123"
    queued = _queue(db, world.patient_id)
    assert [n.channel for n in queued.notifications] == [Channel.EMAIL, Channel.SMS]


@pytest.mark.parametrize(
    ("typed", "regions", "fixed"),
    [
        ("020 7946 0123", ("GB",), True),  # a London landline
        ("07911 123456", ("GB", "DE"), False),  # a British mobile, though Berlin reads a line
        ("07700 900123", ("GB", "DE"), False),  # unplaced in Britain: may be a mobile
        ("07700 900123", ("DE",), True),  # a Berlin practice's national number: a line
        ("+49 30 1234567", ("GB", "DE"), True),  # international: read as it stands
        ("0151 23456789", ("DE",), False),  # a German mobile
    ],
)
def test_a_number_is_a_landline_only_when_every_reading_of_it_is_one(typed, regions, fixed):
    assert phones.landline(typed, regions) is fixed


@pytest.mark.parametrize(
    ("typed", "digits"),
    [
        ("07700 900123", "700900123"),  # the trunk 0 off, at most the last nine
        ("+44 7700 900123", "700900123"),  # the national number after the country code
        ("0044 7700 900123", "700900123"),
        ("  +44 (0)7700-900.123 ", "700900123"),  # spaced, bracketed, dashed, dotted
        ("+44 7700 900", "7700900"),  # the start of a number
        ("07700 900", "7700900"),
        ("900123", "900123"),  # its end
        ("007", "007"),  # fewer than three digits after the 0s: the digits as typed
        ("+999 123", "999123"),  # no country's code: its digits
        ("abc123", None),  # a word with letters is a name's or an email's
        ("12", None),  # fewer than three digits
        ("", None),
    ],
)
def test_a_typed_number_is_read_as_the_digits_every_form_on_file_holds(typed, digits):
    """core.kernel.phones.dialled: the one rule the patient search (core.patients.search) and
    the outbox's search (notify) read a typed number by."""
    assert phones.dialled(typed) == digits


def test_a_stored_number_is_found_by_its_digits_however_it_was_spaced(db, world):
    """core.kernel.phones.bare_phone: a column's digits with the separators people type
    removed (a patient's phone by default, or another number, such as the address a text went
    to), so the digits `dialled` reads are found in any form on file, on either database."""
    with db.write() as session:
        session.get(Patient, world.patient_id).phone = "+44 (0)7700-900.123"
    with db.read() as session:
        stored = select(phones.bare_phone()).where(Patient.id == world.patient_id)
        assert session.scalar(stored) == "4407700900123"
        holds = phones.bare_phone().contains(phones.dialled("07700 900123"))
        assert session.scalar(select(Patient.id).where(holds)) == world.patient_id
        address = phones.bare_phone(literal("07700 900 123"))
        assert session.scalar(select(address)) == "07700900123"


def test_edited_template_is_used_and_unknown_placeholders_refused(db, world):
    with db.write() as session:
        notify.save_template(
            session,
            world.manager,
            "appointment_cancelled",
            "Cancelled: {when}",
            "Hello {patient_name}, {reason}.",
        )
        with pytest.raises(ValidationError, match="Unknown placeholder"):
            notify.save_template(session, world.manager, "appointment_cancelled", "x", "{secret}")
        with pytest.raises(PermissionDenied):
            notify.save_template(session, world.staff, "appointment_cancelled", "x", "y")
    queued = _queue(db, world.patient_id, channels=[Channel.EMAIL])
    assert queued.notifications[0].subject == "Cancelled: Tue 01 Dec 2026, 09:30"


@pytest.mark.parametrize("subject", ["", "   "])
def test_an_empty_subject_is_refused_and_the_built_in_text_stands(db, world, subject):
    """Before, an emptied subject was saved: every email of the template went without a
    subject line and its text message began '. Dear …' (seen on the Notifications page)."""
    refused = pytest.raises(ValidationError, match="The subject cannot be empty")
    with db.write() as session, refused:
        notify.save_template(session, world.manager, "appointment_cancelled", subject, "Hi {when}")
    queued = _queue(db, world.patient_id, channels=[Channel.EMAIL])
    assert queued.notifications[0].subject.strip()


@pytest.mark.parametrize(
    "typed",
    [
        "Dear {patient_name}, see you on {when:%d %B}.",  # a strftime pattern is no format spec
        "Dear {patient_name}, see you on {}.",  # a placeholder without a name
        "Dear {patient_name}, see you on {when!s:>10}.",  # a conversion and a width
    ],
)
def test_a_placeholder_is_a_bare_name_or_the_template_is_refused(db, world, typed):
    """Before, these were saved, and every message of the template then failed to render
    (ValueError: Unknown format code …): approving, cancelling or reminding raised."""
    refused = pytest.raises(ValidationError, match=r"Write each placeholder as its bare name")
    with db.write() as session, refused:
        notify.save_template(session, world.manager, "appointment_cancelled", "x", typed)
    queued = _queue(db, world.patient_id, channels=[Channel.EMAIL])  # the built-in text stands
    assert "Reason: Ill" in queued.notifications[0].body


@pytest.mark.parametrize("typed", ["See you on {when:%d %B}.", "See you on {}.", "A { alone"])
def test_a_template_saved_before_the_check_that_cannot_be_filled_sends_the_built_in_text(
    db, world, typed
):
    """Stored by an earlier version (or by hand), past check_template: the message goes with the
    built-in wording instead of failing every approval, cancellation and reminder."""
    with db.write() as session:
        session.add(NotificationTemplate(key="appointment_cancelled", subject="x", body=typed))
    queued = _queue(db, world.patient_id, channels=[Channel.EMAIL])
    assert "Reason: Ill" in queued.notifications[0].body


def test_a_template_keeps_its_link_and_only_the_placeholders_its_message_is_given(db, world):
    """Before, a proposal saved without {link} went out with nothing to accept (as did one
    saved so earlier), {where} in a message never given it arrived blank while the preview
    showed an address, and the lapsed proposal's own {proposed_when} was refused."""
    with db.write() as session:
        with pytest.raises(ValidationError, match=r"must keep \{link\} \(the patient's link"):
            notify.save_template(
                session, world.manager, "appointment_proposed", "Proposal", "Please call us."
            )
        with pytest.raises(ValidationError, match=r"\{where\} is not filled in for this message"):
            notify.save_template(session, world.manager, "waitlist_taken", "x", "At {where}.")
        lapsed = notify.TEMPLATES["proposal_lapsed"]
        notify.save_template(session, world.manager, "proposal_lapsed", "Lapsed", lapsed.body)
        session.add(NotificationTemplate(key="appointment_proposed", subject="x", body="Call."))
    with db.write() as session:
        queued = notify.queue_for_patient(
            session,
            session.get(Patient, world.patient_id),
            "appointment_proposed",
            {"when": "Tue 01 Dec 2026, 09:30", "link": "https://clinic.test/p?t=1"},
            channels=[Channel.EMAIL],
        )
    assert "accept or decline here: https://clinic.test/p?t=1" in queued.notifications[0].body


def test_two_managers_editing_one_template_lose_no_edit_unseen(db, world):
    """Before, the second save silently replaced the first (and a reset dropped it)."""
    key, built_in = "appointment_cancelled", notify.TEMPLATES["appointment_cancelled"]
    opened = (built_in.subject, built_in.body)  # both editors opened the built-in text
    with db.write() as session:
        notify.save_template(session, world.manager, key, "Cancelled", "Ill: {reason}", was=opened)
    for change in (
        lambda s: notify.save_template(s, world.owner, key, "Off", "Off: {reason}", was=opened),
        lambda s: notify.reset_template(s, world.owner, key, was=opened),
    ):
        refused = pytest.raises(Conflict, match=r"was saved by Manager at .+ after you opened it")
        with refused, db.write() as session:
            change(session)
    with db.write() as session:
        assert session.get(NotificationTemplate, key).body == "Ill: {reason}"
        notify.reset_template(session, world.owner, key, was=("Cancelled", "Ill: {reason}"))
        assert session.get(NotificationTemplate, key) is None


def test_sender_delivers_a_real_email_with_attachment(db, world, loopback_smtp):
    loopback_smtp.clear()
    _queue(db, world.patient_id, channels=[Channel.EMAIL], attachment=("qr.png", b"\x89PNG fake"))
    smtp = SmtpSettings(host=loopback_smtp.host, port=loopback_smtp.port)
    channels = {
        Channel.EMAIL: delivery.SmtpTransport(smtp),
        Channel.SMS: delivery.LoggingSmsTransport(),
    }
    report = delivery.send_due(db.write, channels)
    assert report.sent == 1
    message = loopback_smtp.wait_for(lambda m: m["To"] == "alex@example.org")
    assert "cancelled" in message["Subject"] and "Reason: Ill" in text_of(message)
    assert [p.get_filename() for p in message.iter_attachments()] == ["qr.png"]
    with db.read() as session:
        row = session.query(Notification).one()
        assert (row.status, row.attempts) == (DeliveryStatus.SENT, 1)


def test_several_files_reach_the_mail_server_intact_in_order(db, world, loopback_smtp):
    """Before, a caller could hand queue_for_patient one file only; the outbox holds several."""
    loopback_smtp.clear()
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 40  # every byte value, past one base64 line
    png = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 3
    _queue(
        db,
        world.patient_id,
        channels=[Channel.EMAIL],
        attachment=("qr.png", png),
        files=[
            ("Aftercare, 1 of 2.pdf", pdf),
            ("Aftercare, 2 of 2.txt", "Dürfen: nein ✓".encode()),
        ],
    )
    smtp = SmtpSettings(host=loopback_smtp.host, port=loopback_smtp.port)
    assert delivery.send_due(db.write, {Channel.EMAIL: delivery.SmtpTransport(smtp)}).sent == 1
    message = loopback_smtp.wait_for(lambda m: m["To"] == "alex@example.org")
    arrived = [
        (p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in message.iter_attachments()
    ]
    assert arrived == [
        ("qr.png", "image/png", png),
        ("Aftercare, 1 of 2.pdf", "application/pdf", pdf),
        ("Aftercare, 2 of 2.txt", "text/plain", "Dürfen: nein ✓".encode()),
    ]
    assert "Reason: Ill" in text_of(message)
    text = list(message.iter_attachments())[2]  # UTF-8, said: a mail program shows it as typed
    assert (text.get_content_charset(), text.get_content()) == ("utf-8", "Dürfen: nein ✓")


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ([("", b"x")], r"needs a name \(instructions.pdf\)"),
        ([("../../etc/passwd", b"x")], r"folder separator or a control character"),
        ([("a\r\nBcc: x@example.org.pdf", b"x")], r"folder separator or a control character"),
        ([("a" * 118 + ".pdf", b"x")], r"is 122 characters long; at most 120: shorten it"),
        ([("Form.pdf", b"x"), ("form.PDF", b"y")], r"Two files are named 'form.PDF'"),
        ([("empty.pdf", b"")], r"'empty.pdf' is empty"),
        ([("big.pdf", b"x" * (5 * 1024 * 1024 + 1))], r"is 5.0 MB; a file sent by email may"),
        (
            [(f"part{n}.pdf", b"x" * (4 * 1024 * 1024)) for n in range(3)],
            r"come to 12.0 MB together; one email may carry at most 10.0 MB",
        ),
        ([(f"{n}.txt", b"x") for n in range(11)], r"at most 10 files, not 11"),
    ],
)
def test_files_an_email_cannot_carry_are_refused_saying_what_to_fix(db, world, files, said):
    """Before, a name past 120 characters was cut (losing its extension, so its type), and
    nothing bounded a file's size, a name's characters or a repeated name. Refused also when
    the patient takes text messages only: the caller hears of it either way."""
    with db.write() as session:
        session.get(Patient, world.patient_id).consent_email = False
    with pytest.raises(ValidationError, match=said):
        _queue(db, world.patient_id, files=files)
    with db.read() as session:
        assert session.scalar(select(Notification.id)) is None


def test_the_confirmation_email_carries_the_check_in_code_and_the_calendar_file(
    db, world, loopback_smtp
):
    loopback_smtp.clear()
    appointment_id = _book(db, world)
    smtp = SmtpSettings(host=loopback_smtp.host, port=loopback_smtp.port)
    delivery.send_due(db.write, {Channel.EMAIL: delivery.SmtpTransport(smtp)})
    message = loopback_smtp.wait_for(lambda m: "confirmed" in m["Subject"])
    files = {p.get_filename(): p for p in message.iter_attachments()}
    ics = f"test-clinic-{PLAIN_THURSDAY.isoformat()}.ics"
    assert sorted(files) == [f"check-in-{appointment_id}.png", ics]
    assert files[f"check-in-{appointment_id}.png"].get_content_type() == "image/png"
    calendar = files[ics]
    assert (calendar.get_content_type(), calendar.get_param("method")) == (
        "text/calendar",
        "PUBLISH",
    )
    assert f"UID:visit-{appointment_id}@" in calendar.get_content()
    row = _latest(db, appointment_id, "appointment_scheduled")[Channel.EMAIL]
    assert row.status == DeliveryStatus.SENT  # sent: the files' bytes dropped, their names kept
    assert [(f.position, f.name, f.content) for f in row.attachments] == [
        (0, f"check-in-{appointment_id}.png", None),
        (1, ics, None),
    ]
    with db.write() as session:  # the patient's file still says what was sent
        data = json.loads(patient_export.export_patient(session, world.owner, world.patient_id))
    [sent] = [
        m for m in data["messages"] if m["message"] == "appointment_scheduled" and "@" in m["to"]
    ]
    assert sent["attachment"] == f"check-in-{appointment_id}.png, {ics}"


def test_a_calendar_file_with_letters_outside_ascii_says_its_charset(db, world, loopback_smtp):
    """The .ics is UTF-8; its part said no charset, so a mail program read it as US-ASCII (the
    MIME default for text/*) and showed "K??nigstra??e". RFC 6047 (iMIP) 2.4: the charset
    parameter must be present when the object holds characters outside US-ASCII."""
    loopback_smtp.clear()
    with db.write() as session:
        session.get(Clinic, world.clinic_id).address = "Königstraße 5, Zürich · 2nd floor ✓"
    _book(db, world)
    smtp = SmtpSettings(host=loopback_smtp.host, port=loopback_smtp.port)
    delivery.send_due(db.write, {Channel.EMAIL: delivery.SmtpTransport(smtp)})
    message = loopback_smtp.wait_for(lambda m: "confirmed" in m["Subject"])
    [calendar] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert (calendar.get_param("method"), calendar.get_content_charset()) == ("PUBLISH", "utf-8")
    assert "LOCATION:Königstraße 5\\, Zürich · 2nd floor ✓" in calendar.get_content()


def test_a_calendar_files_part_says_the_files_own_method_booked_and_cancelled(
    db, world, loopback_smtp
):
    """RFC 6047 2.4: the text/calendar part's method parameter is the file's METHOD (Outlook
    ignores a file whose part says otherwise). Before, every part said PUBLISH, so the
    cancellation's METHOD:CANCEL went in a part saying PUBLISH. The file's ORGANIZER is the
    address the email comes from."""
    loopback_smtp.clear()
    sender = "Harbour Street Desk <desk@harbour.example>"
    appointment_id = _book(db, world, sender=sender)
    with db.write() as session:
        session.info["sender"] = sender
        moves.cancel_appointment(session, world.manager, appointment_id, reason="Clinic closed")
    smtp = SmtpSettings(host=loopback_smtp.host, port=loopback_smtp.port, sender=sender)
    assert delivery.send_due(db.write, {Channel.EMAIL: delivery.SmtpTransport(smtp)}).sent == 2
    said = {}
    for subject in ("confirmed", "cancelled"):
        message = loopback_smtp.wait_for(lambda m, subject=subject: subject in m["Subject"])
        [part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
        calendar = Calendar.from_ical(part.get_content())
        [event] = calendar.walk("VEVENT")
        said[subject] = (part.get_param("method"), str(calendar["METHOD"]), event["STATUS"])
        address = parseaddr(message["From"])[1]
        assert str(event["ORGANIZER"]) == f"mailto:{address}" == "mailto:desk@harbour.example"
    assert said == {
        "confirmed": ("PUBLISH", "PUBLISH", "CONFIRMED"),
        "cancelled": ("CANCEL", "CANCEL", "CANCELLED"),
    }


def test_a_calendar_file_without_a_method_goes_in_a_part_saying_none(db, world, loopback_smtp):
    """A calendar file a caller hands over (not a visit's) with no METHOD, or one icalendar
    cannot read: its part names no method (RFC 5545 8.1: the parameter is given if and only if
    the file has a METHOD). Before, every calendar part said PUBLISH."""
    loopback_smtp.clear()
    plain = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Desk//EN\r\nEND:VCALENDAR\r\n"
    files = [("plain.ics", plain), ("broken.ics", b"not a calendar")]
    _queue(db, world.patient_id, channels=[Channel.EMAIL], files=files)
    smtp = SmtpSettings(host=loopback_smtp.host, port=loopback_smtp.port)
    assert delivery.send_due(db.write, {Channel.EMAIL: delivery.SmtpTransport(smtp)}).sent == 1
    message = loopback_smtp.wait_for(lambda m: m["To"] == "alex@example.org")
    arrived = [
        (p.get_filename(), p.get_param("method"), p.get_content_charset(), p.get_content())
        for p in message.iter_attachments()
    ]
    assert arrived == [
        ("plain.ics", None, "utf-8", plain.decode()),
        ("broken.ics", None, "utf-8", "not a calendar"),
    ]


def test_failed_delivery_is_visible_retried_with_backoff_then_given_up(db, world):
    _queue(db, world.patient_id, channels=[Channel.EMAIL])
    dead = SmtpSettings(host="127.0.0.1", port=9)  # nothing listens on the discard port
    channels = {Channel.EMAIL: delivery.SmtpTransport(dead, timeout=2)}
    now = utcnow()
    report = delivery.send_due(db.write, channels, now=now)
    assert (report.sent, report.retrying) == (0, 1)
    with db.read() as session:
        row = session.query(Notification).one()
        assert row.status == DeliveryStatus.FAILED and "Connection" in row.last_error
        assert row.next_attempt_at - now == delivery.BACKOFF[0]
    assert delivery.send_due(db.write, channels, now=now).retrying == 0  # not due yet
    later = now
    for _ in range(delivery.MAX_ATTEMPTS - 1):
        later += timedelta(days=1)
        delivery.send_due(db.write, channels, now=later)
    with db.read() as session:
        assert session.query(Notification).one().attempts == delivery.MAX_ATTEMPTS
    assert delivery.send_due(db.write, channels, now=later + timedelta(days=1)).retrying == 0
    with db.write() as session:
        notify.retry(session, world.manager, session.query(Notification).one().id)
    with db.read() as session:
        assert session.query(Notification).one().status == DeliveryStatus.QUEUED


def test_outbox_listing_and_counts(db, world):
    _queue(db, world.patient_id)
    with db.read() as session:
        rows = notify.list_outbox(session, world.staff)
        assert {r.channel for r in rows} == {"email", "sms"}
        assert notify.outbox_counts(session, world.staff)["queued"] == 2


def _outbox_of(db) -> tuple[int, int, dict[str, int]]:
    """Mrs Evans's text reminder, the oldest message, then 150 newer ones to another patient,
    three of the clinic's to addresses with a % or _ (or not), and Mrs Evans's survey to the
    address she had then; returns her id, the reminder's id and the others' ids."""
    with db.write() as session:
        evans = Patient(
            first_name="Margaret",
            last_name="Évans",
            email="m.evans@example.org",
            phone="+44 7700 900123",
        )
        shah = Patient(first_name="Priya", last_name="Shah", email="priya@example.org")
        session.add_all([evans, shah])
        session.flush()

        def message(patient, template, to, channel=Channel.EMAIL, **kw) -> Notification:
            row = Notification(
                patient_id=patient.id if patient else None,
                channel=channel,
                template=template,
                to_address=to,
                subject="Subject",
                body="Body",
                **kw,
            )
            session.add(row)
            return row

        reminder = message(evans, "appointment_reminder", "+447700900123", Channel.SMS)
        session.flush()
        for _ in range(150):
            message(shah, "appointment_scheduled", "priya@example.org")
        ids = {
            to: message(None, "clinic_event", to)
            for to in ("100%off@example.org", "100xoff@example.org", "a_b@example.org")
        }
        old = message(evans, "feedback_request", "old.address@example.org")
        ids["07700 900 123"] = message(evans, "appointment_cancelled", "07700 900 123", Channel.SMS)
        session.flush()
        return evans.id, reminder.id, {"old": old.id} | {to: r.id for to, r in ids.items()}


def test_the_outbox_pages_back_to_a_message_older_than_the_latest_100(db, world):
    _, reminder, _ = _outbox_of(db)
    with db.read() as session:
        first = notify.list_outbox(session, world.manager)
        assert len(first) == notify.OUTBOX_PAGE and reminder not in {r.id for r in first}
        total = sum(notify.outbox_counts(session, world.manager).values())
        last = -(-total // notify.OUTBOX_PAGE) - 1
        older = notify.list_outbox(session, world.manager, page=last)
    assert older[-1].id == reminder and older[-1].patient == "Margaret Évans"


def test_the_outbox_finds_a_patients_messages_by_name_and_by_address(db, world):
    _, reminder, ids = _outbox_of(db)
    with db.read() as session:

        def found(search: str) -> list[int]:
            rows = notify.list_outbox(session, world.manager, search=search)
            counts = notify.outbox_counts(session, world.manager, search=search)
            assert sum(counts.values()) == len(rows)  # the count under the same filters
            return [r.id for r in rows]

        # by her name, however typed (accents and case aside), older than the latest 100
        hers = [ids["07700 900 123"], ids["old"], reminder]
        assert found("evans") == found("MARGARET EVANS") == found("Évans") == hers
        # by her email, or a number typed as her record holds it or not, whatever the
        # address each message went to then (an old one's too: her messages go by her record)
        assert found("m.evans@example.org") == hers
        for typed in ("07700 900123", "+44 7700 900123", "7700900123", "900123"):
            assert found(typed) == hers, typed
        # the clinic's own messages (no patient) by the address they went to, a % or _
        # typed being that character, not a wildcard
        assert found("100%off") == [ids["100%off@example.org"]]
        assert found("a_b@") == [ids["a_b@example.org"]]
        assert found("nobody") == []


def test_the_outbox_finds_a_message_by_the_address_it_went_to_after_the_record_changed(db, world):
    """A message is found by the address or number it went to, though its patient has another
    on file now: an email typed in any case, a number typed in any form the practice's
    country reads (as the text's number was stored: the record's, as typed there). Another
    patient's messages, and a part of the old number, are not found by it."""
    evans, reminder, ids = _outbox_of(db)
    with db.write() as session:
        patient = session.get(Patient, evans)
        patient.email, patient.phone = "margaret@example.net", "+44 7700 900999"
        shah = session.scalars(select(Patient).where(Patient.first_name == "Priya")).one()
        other = Notification(
            patient_id=shah.id,
            channel=Channel.SMS,
            template="appointment_reminder",
            to_address="+44 7700 900124",
            subject="Subject",
            body="Body",
        )
        session.add(other)
    with db.read() as session:

        def found(search: str) -> list[int]:
            rows = notify.list_outbox(session, world.manager, search=search)
            counts = notify.outbox_counts(session, world.manager, search=search)
            assert sum(counts.values()) == len(rows)
            return [r.id for r in rows]

        # the survey went to the address she had then; her record holds another now
        for typed in ("old.address@example.org", "Old.Address@EXAMPLE.org "):
            assert found(typed) == [ids["old"]], typed
        # her text messages went to her old number, stored as her record held it (+44 ...
        # for the reminder, 07700 ... for the cancellation): either form, or another, finds both
        sent = [ids["07700 900 123"], reminder]
        for typed in ("07700 900123", "+44 7700 900123", "0044 7700 900 123", "(07700) 900-123"):
            assert found(typed) == sent, typed
        assert found("7700900123") == sent  # without its trunk 0
        assert found("900123") == []  # a part of an old number is no address
        assert found("old.address@example") == []  # nor a part of an old email
        assert found("07700 900124") == [other.id]


def test_the_outbox_lists_one_template_and_counts_it(db, world):
    _, reminder, ids = _outbox_of(db)
    with db.read() as session:
        rows = notify.list_outbox(session, world.manager, template="appointment_reminder")
        counts = notify.outbox_counts(session, world.manager, template="appointment_reminder")
        assert [r.id for r in rows] == [reminder] and counts["queued"] == 1
        shah = notify.list_outbox(
            session, world.manager, "queued", 1, template="appointment_scheduled"
        )
        assert len(shah) == 50 and {r.template for r in shah} == {"appointment_scheduled"}
        both = notify.list_outbox(
            session, world.manager, template="feedback_request", search="evans"
        )
        assert [r.id for r in both] == [ids["old"]]


def _a_busy_outbox(db) -> None:
    """3,000 messages of 300 other patients, most sent, as a practice's outbox holds them
    beside `_outbox_of`'s: three templates most of them (the feedback requests 3%), each
    patient's to their own address or number. On so few rows of one patient's the planner
    may rightly read the whole table; on these it has an index's range to prefer."""
    with db.write() as session:
        people = [
            Patient(first_name=f"P{i}", last_name="Busy", email=f"p{i}@example.com")
            for i in range(300)
        ]
        session.add_all(people)
        session.flush()
        templates = ["appointment_reminder"] * 20 + ["appointment_scheduled"] * 9
        statuses = [DeliveryStatus.SENT] * 18 + [DeliveryStatus.FAILED, DeliveryStatus.QUEUED]
        session.execute(
            insert(Notification),
            [
                {
                    "patient_id": people[i % 300].id,
                    "channel": Channel.SMS if i % 3 else Channel.EMAIL,
                    "template": "feedback_request" if i % 33 == 0 else templates[i % 29],
                    "to_address": f"+44 7700 8{i % 300:05d}"
                    if i % 3
                    else f"p{i % 300}@example.com",
                    "subject": "Subject",
                    "body": "Body",
                    "status": statuses[i % 20],
                }
                for i in range(3_000)
            ],
        )


def _outbox_plans(db, reads) -> list[str]:
    """The plan of every statement `reads` runs over the outbox, one text each (EXPLAIN QUERY
    PLAN; on PostgreSQL EXPLAIN, the table vacuumed and analysed as a practice's is, and no
    sequential scan: where the planner could use no index, it shows the primary key's)."""
    seen = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "FROM notifications" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        with db.read() as session:
            reads(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    assert seen
    plans = []
    with db.engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            auto = connection.execution_options(isolation_level="AUTOCOMMIT")
            auto.exec_driver_sql("SET synchronous_commit = on")  # as _plans_over_the_responses
            auto.exec_driver_sql("ANALYZE notifications")
            auto.exec_driver_sql("VACUUM ANALYZE notifications")
            connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in seen:
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(explain + statement, parameters)
            plans.append("\n".join(str(r[-1]) for r in rows))
    return plans


def _every_message(plan: str) -> bool:
    """Whether `plan` reads the whole outbox: its table (SQLite's bare SCAN, PostgreSQL's
    sequential scan) or the primary key's every entry."""
    return bool(
        re.search(r"SCAN notifications$|Seq Scan on notifications|pk_notifications", plan, re.M)
    )


def test_the_outbox_reads_a_templates_messages_from_its_index(db, world):
    """A template's counts by status, and a page of a template few messages have (alone, or
    with a status), read its range of ix_notifications_template_id_status, not every
    message. Before migration 0032 no index held the template: the counts read the whole
    outbox (300k messages on SQLite: 81-87 ms of CPU for the reminders', 33-34 now; 72-75 for
    a template of 2k messages, 1 now; PostgreSQL 5,185 pages, 920 and 17 now) and such a
    page walked it back from the newest."""
    _outbox_of(db)
    _a_busy_outbox(db)

    def reads(session):
        for status in (None, "sent", "failed"):
            notify.list_outbox(session, world.manager, status, template="feedback_request")
        for template in ("feedback_request", "appointment_reminder"):
            notify.outbox_counts(session, world.manager, template=template)

    plans = _outbox_plans(db, reads)
    used = [p for p in plans if "ix_notifications_template_id_status" in p]
    assert len(plans) == 5 and used == plans, "\n\n".join(plans)
    assert not any(_every_message(p) for p in plans), "\n\n".join(plans)


def test_the_outbox_finds_an_address_through_its_index_never_reading_every_message(db, world):
    """A search by an address or a number reads the outbox through indexes alone: the address
    a message went to through ix_notifications_address_key, the patients found through
    ix_notifications_patient_id (its range of no patient for the clinic's own), never every
    message (the address matched in every row took 350-755 ms at 300k messages). On
    PostgreSQL the patients found go to the index as one array: with an IN of their query
    it read the whole outbox for every search (failed first so, with the new index in place;
    300k messages: a number's counts 8,455 pages, 5,201 now)."""
    _outbox_of(db)
    _a_busy_outbox(db)

    def reads(session):
        for typed in ("old.address@example.org", "07700 900123", "+44 7700 900999"):
            notify.list_outbox(session, world.manager, search=typed)
            notify.outbox_counts(session, world.manager, search=typed)

    plans = _outbox_plans(db, reads)
    used = [p for p in plans if "ix_notifications_address_key" in p]
    assert len(plans) == 6 and used == plans, "\n\n".join(plans)
    assert not any(_every_message(p) for p in plans), "\n\n".join(plans)


def test_migration_0032_drops_the_template_and_address_indexes_and_makes_them_again(db, world):
    """0032 adds ix_notifications_template_id_status and ix_notifications_address_key; down to
    0031 neither is there, up again both, and the template filter and the search by an old
    address find the same messages through both (the indexes only change how)."""
    from alembic import command

    from db import migrate

    _, reminder, ids = _outbox_of(db)

    def indexes() -> set[str]:  # from the catalogue: SQLite's inspector skips an expression's
        catalogue = (
            "SELECT indexname FROM pg_indexes WHERE tablename = 'notifications'"
            if db.engine.dialect.name == "postgresql"
            else "SELECT name FROM sqlite_master WHERE tbl_name = 'notifications'"
        )
        with db.engine.connect() as connection:
            return set(connection.exec_driver_sql(catalogue).scalars())

    def found() -> tuple[list[int], list[int]]:
        with db.read() as session:
            one = notify.list_outbox(session, world.manager, template="appointment_reminder")
            old = notify.list_outbox(session, world.manager, search="OLD.address@example.org")
            return [r.id for r in one], [r.id for r in old]

    before = found()
    assert before == ([reminder], [ids["old"]])
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0031")
    assert not {"ix_notifications_template_id_status", "ix_notifications_address_key"} & indexes()
    assert found() == before
    migrate.upgrade(db.engine)
    assert {"ix_notifications_template_id_status", "ix_notifications_address_key"} <= indexes()
    assert found() == before


def test_every_template_and_channel_has_a_name_in_words():
    titles = {key: notify.template_title(key) for key in notify.TEMPLATES}
    assert len(titles) == 30 and len(set(titles.values())) == 30
    assert not [t for t in titles.values() if "_" in t or not t[0].isupper()]
    assert titles["request_received"] == "Request received"
    assert titles["feedback_request"] == "Feedback request"
    assert titles["appointment_no_show"] == "Appointment no-show"
    assert titles["portal_sign_in"] == "Portal sign-in link"
    assert titles["waitlist_stopped"] == "Waitlist offer no longer bookable"
    assert notify.template_title("retired_key") == "Retired key"  # an old message's template
    assert [notify.channel_title(c.value) for c in Channel] == ["Email", "Text message"]


# ---------------------------------------------------------------- text messages keep links whole

LONG_BASE = "https://bookings.harbourstreetclinic.co.uk"
_URL = re.compile(r"https?://\S+")


def _latest(db, appointment_id: int, template: str) -> dict[Channel, Notification]:
    with db.read() as session:
        rows = session.scalars(
            select(Notification)
            .where(Notification.appointment_id == appointment_id, Notification.template == template)
            .options(selectinload(Notification.attachments))
            .order_by(Notification.id)
        )
        return {n.channel: n for n in rows}


def _assert_links_whole(sent: dict[Channel, Notification], count: int) -> str:
    """Every link of the email arrives whole in the text message (and it has `count`)."""
    links = _URL.findall(sent[Channel.EMAIL].body)
    assert len(links) == count and all(link.startswith(LONG_BASE) for link in links)
    text = sent[Channel.SMS].body
    assert sorted(_URL.findall(text)) == sorted(links), text
    return text


def _book(db, world, day=PLAIN_THURSDAY, hour=10, sender: str | None = None) -> int:
    with db.write() as session:
        session.info["base_url"] = LONG_BASE
        if sender:
            session.info["sender"] = sender  # SMTP_FROM, as core.startup hands it over
        return moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=local_to_utc(day, time(hour), "Europe/London"),
                outside_hours_override=True,  # whatever the clinic's zone
            ),
        ).id


def _remind(db, appointment_id: int) -> dict[Channel, Notification]:
    with db.write() as session:
        reminders.queue_due_reminders(
            session,
            base_url=LONG_BASE,
            now=local_to_utc(PLAIN_THURSDAY - timedelta(days=1), time(10), "Europe/London"),
        )
    return _latest(db, appointment_id, "appointment_reminder")


def test_a_reminder_email_carries_three_links_and_its_text_the_confirm_link_whole(db, world):
    """The text carries one link, the email's confirm link, whose page offers to confirm and
    to ask to cancel or move the visit (core.portal.patient_links.CHANGE_PURPOSES)."""
    sent = _remind(db, _book(db, world))
    links = _URL.findall(sent[Channel.EMAIL].body)
    assert len(links) == 3 and all(link.startswith(LONG_BASE) for link in links)
    text = sent[Channel.SMS].body
    assert _URL.findall(text) == [links[0]] and "/patient?p=confirm&t=" in links[0]
    assert text.endswith(links[0]) and "Reply C to confirm or X to cancel" in text


def test_a_reminder_text_in_ucs2_at_a_long_named_clinic_goes_in_three_parts(db, world):
    """A Polish clinic's name (letters outside the GSM alphabet) sends the text in UCS-2, three
    parts 201 characters; before, its three links alone (confirm, cancel, move: 318
    characters under this address) were more, and it went in eight parts. Its text form would
    leave the clinic's name two letters ('Łó.'): the shorter one goes, naming the clinic, whose
    link's page confirms, cancels and moves (a reply C or X is read all the same)."""
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.name = "Łódzkie Centrum Dermatologii i Medycyny Estetycznej Śródmieście"
        clinic.address = "ul. Piotrkowska 140, 90-063 Łódź"
        session.get(Service, world.service_id).name = "Oczyszczanie wodorowe skóry twarzy"
        patient = session.get(Patient, world.patient_id)
        patient.first_name, patient.last_name = "Łucja", "Żółkiewska-Brzęczyszczykiewicz"
    sent = _remind(db, _book(db, world))
    text = sent[Channel.SMS].body
    counted = sms_parts.parts(text)
    assert not counted.gsm and counted.count <= 3, (counted, text)
    assert _URL.findall(text) == _URL.findall(sent[Channel.EMAIL].body)[:1]
    assert "Confirm, cancel or move it" in text
    clinic_named = text.split(": ", 1)[0]  # shortened, marked with "."
    assert clinic_named == "Łódzkie Centrum."


def test_the_forms_email_of_three_documents_carries_each_link_and_the_text_one_to_them(db, world):
    """The text's one link opens the visit's list of its forms (core.forms.after_booking);
    before, it carried all three links, as the email does."""
    with db.write() as session:
        session.add_all(
            ServiceDocument(service_id=world.service_id, kind=kind, title=title, body="Read me.")
            for kind, title in (
                (DocumentKind.QUESTIONNAIRE, "Health questionnaire before your treatment"),
                (DocumentKind.CONSENT, "Consent to the treatment and its risks"),
                (DocumentKind.INSTRUCTIONS, "Before your visit: what to do and avoid"),
            )
        )
    appointment_id = _book(db, world)
    with db.write() as session:
        assert forms.send_due_forms(session, base_url=LONG_BASE) == 3
    sent = _latest(db, appointment_id, "forms_to_complete")
    emailed = _URL.findall(sent[Channel.EMAIL].body)
    assert len(emailed) == 3 and all(f"{LONG_BASE}/patient?p=form&t=" in u for u in emailed)
    [texted] = _URL.findall(sent[Channel.SMS].body)
    assert texted.startswith(f"{LONG_BASE}/patient?p=visit_forms&t=")
    assert sent[Channel.SMS].body.endswith(f"Your 3 forms: {texted}")


def _three_forms(db, world) -> None:
    with db.write() as session:
        session.add_all(
            ServiceDocument(service_id=world.service_id, kind=kind, title=title, body="Read me.")
            for kind, title in (
                (DocumentKind.QUESTIONNAIRE, "Health questionnaire"),
                (DocumentKind.CONSENT, "Consent to the treatment"),
                (DocumentKind.INSTRUCTIONS, "Before your visit"),
            )
        )


def test_an_edited_forms_template_sends_each_forms_link_by_email_and_one_link_by_text(db, world):
    """A practice's own wording (no text form of its own: the text is its email, flattened)
    keeps the visit's one link in the text, and a link for each form in the email."""
    _three_forms(db, world)
    with db.write() as session:
        notify.save_template(
            session,
            world.manager,
            "forms_to_complete",
            "Your forms for {when}",
            "Hello {patient_name}, please complete these before your visit:\n{forms}\nThanks!",
        )
    appointment_id = _book(db, world)
    with db.write() as session:
        assert forms.send_due_forms(session, base_url=LONG_BASE) == 3
    sent = _latest(db, appointment_id, "forms_to_complete")
    emailed = _URL.findall(sent[Channel.EMAIL].body)
    assert len(emailed) == 3 and all(f"{LONG_BASE}/patient?p=form&t=" in u for u in emailed)
    assert sent[Channel.EMAIL].body.startswith("Hello Alex Morgan, please complete these")
    [texted] = _URL.findall(sent[Channel.SMS].body)
    assert texted.startswith(f"{LONG_BASE}/patient?p=visit_forms&t=")
    assert f"Your 3 forms: {texted} Thanks!" in sent[Channel.SMS].body


@pytest.mark.parametrize(
    ("key", "subject", "body"),
    [
        ("forms_to_complete", "Your forms: {forms}", "Please complete:\n{forms}"),
        ("appointment_proposed", "Accept {when}: {link}", "Accept or decline: {link}"),
    ],
)
def test_a_link_in_an_edited_subject_is_refused_and_one_saved_earlier_is_not_sent(
    db, world, key, subject, body
):
    """A subject is one line, cut at 250 characters, and the outbox keeps it as it was sent
    (only the text's tokens are replaced by their hash once it is). Before, {forms} in an
    edited subject put a link for each form there, the last cut short, and each link stayed
    usable on the Notifications page after sending; the text carried the visit's link twice."""
    with db.write() as session, pytest.raises(ValidationError) as refused:
        notify.save_template(session, world.manager, key, subject, body)
    name = re.search(r"\{(\w+)\}", subject.split(":", 1)[1])[1]
    assert str(refused.value) == (
        f"A link cannot go in the subject ({{{name}}}): a subject is one line, which mail "
        "programs cut short. Keep it in the text only."
    )
    if key != "forms_to_complete":
        return
    _three_forms(db, world)
    with db.write() as session:  # saved by an earlier version: the built-in text goes
        session.add(NotificationTemplate(key=key, subject=subject, body=body))
    appointment_id = _book(db, world)
    with db.write() as session:
        assert forms.send_due_forms(session, base_url=LONG_BASE) == 3
    sent = _latest(db, appointment_id, key)
    assert not any(_URL.findall(row.subject) for row in sent.values())
    assert len(_URL.findall(sent[Channel.EMAIL].body)) == 3
    assert len(_URL.findall(sent[Channel.SMS].body)) == 1


def test_the_booking_text_keeps_its_link_and_promises_no_attachment(db, world):
    appointment_id = _book(db, world)
    sent = _latest(db, appointment_id, "appointment_scheduled")
    assert "attached QR code" in sent[Channel.EMAIL].body and sent[Channel.EMAIL].attachments
    words = _URL.sub("", _assert_links_whole(sent, 1))  # a link's random token may hold "QR"
    assert "attach" not in words and "QR" not in words


def test_an_edited_template_still_keeps_its_links_whole_in_a_text(db, world):
    with db.write() as session:
        notify.save_template(
            session,
            world.manager,
            "appointment_reminder",
            "Reminder {when}",
            "Dear {patient_name}, "
            + "please read this carefully. " * 12
            + "Confirm {confirm_link} cancel {cancel_link} move {reschedule_link}. "
            + "Thank you and see you soon. " * 8,
        )
    appointment_id = _book(db, world)
    with db.write() as session:
        reminders.queue_due_reminders(
            session,
            base_url=LONG_BASE,
            now=local_to_utc(PLAIN_THURSDAY - timedelta(days=1), time(10), "Europe/London"),
        )
    text = _assert_links_whole(_latest(db, appointment_id, "appointment_reminder"), 3)
    assert text.startswith("Reminder ") and "Thank you" not in text
    assert text.endswith("&k=reschedule. ...")  # past the limit up to the last link, no more


def test_every_placeholder_of_every_message_is_explained():
    """The editor lists what each placeholder gives; one without words (a template added
    later, as payment_given_back's {amount} and {how} were) made the page fail."""
    missing = {
        (key, name)
        for key in notify.TEMPLATES
        for name in notify.placeholders_of(key)
        if name not in notify.MEANINGS
    }
    assert missing == set()


def test_the_length_guard_cuts_prose_but_never_a_link():
    link = "https://example.org/patient?p=form&t=" + "a" * 43
    assert notify.fit_text("x" * 500) == "x" * 455 + " ..."  # three parts: 459 characters
    whole = notify.fit_text("word " * 85 + link + " and more words after it")
    assert link in whole.split() and whole.endswith(" ...") and len(whole) > 459
    short = notify.fit_text("word " * 20 + link + " trailing " * 60)
    assert link in short.split() and len(short) <= 459 and short.endswith(" ...")


def test_an_appointments_messages_show_their_times_in_the_clinics_zone_and_locale(db, world):
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.timezone, clinic.locale = "America/New_York", "en-US"
    appointment_id = _book(db, world)
    at = datetime(2026, 12, 5, 2, 22, 34, tzinfo=UTC)  # 21:22 on the 4th in New York
    with db.write() as session:
        for row in session.scalars(select(Notification)):
            row.created_at, row.sent_at = at, at + timedelta(minutes=1)
    with db.read() as session:
        rows = history.messages_of(session, world.staff, appointment_id)
    assert {(r.queued.replace("\u202f", " "), r.sent.replace("\u202f", " ")) for r in rows} == {
        ("Fri, Dec 4, 2026, 9:22 PM", "Fri, Dec 4, 2026, 9:23 PM")
    }


def test_the_patients_messages_of_a_clinic_of_another_zone_name_its_zone(db, world):
    """The record lists a patient's messages of every clinic, newest first, each on its
    visit's clinic's clock: New York's 9:22 PM under London's 02:30 read as out of order, with
    nothing to say whose clocks they were. One of a clinic whose zone is not the practice's
    (its first clinic's) now names its zone; the practice's own reads as before."""
    london_visit, new_york_visit = _book(db, world), _book(db, world, hour=15)
    at = datetime(2026, 12, 5, 2, 22, 34, tzinfo=UTC)  # 21:22 on the 4th in New York
    with db.write() as session:
        lakeside = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        session.add(lakeside)
        session.flush()
        session.get(Appointment, new_york_visit).clinic_id = lakeside.id
        for row in session.scalars(select(Notification)):
            row.created_at, row.sent_at = at, None
    with db.read() as session:
        rows = history.messages_of_patient(session, world.staff, world.patient_id)
    queued = {(r.appointment_id, r.queued.replace("\u202f", " ")) for r in rows}
    assert queued == {
        (london_visit, "Sat, 5 Dec 2026, 02:22"),
        (new_york_visit, "Fri, Dec 4, 2026, 9:22 PM (EST)"),
    }


def test_a_stopped_message_shows_as_not_sent_and_a_permanent_failure_as_failed(db, world):
    """A message stopped before it went out (an undone no-show, a withdrawn consent) is "not
    sent (stopped)" with its reason; before, it showed "failed (retrying)". A permanent
    delivery failure is "failed"; only a passing one is "failed (retrying)"."""
    appointment_id = _book(db, world)
    with db.write() as session:
        reminders.queue_due_reminders(
            session,
            base_url=LONG_BASE,
            now=local_to_utc(PLAIN_THURSDAY - timedelta(days=1), time(10), "Europe/London"),
        )
        notify.withdraw_unsent(
            session, appointment_id, "appointment_scheduled", "Not sent: the no-show was undone."
        )
        first, second, *_ = session.scalars(
            select(Notification)
            .where(Notification.template == "appointment_reminder")
            .order_by(Notification.id)
        )
        first.status, first.attempts, first.permanent_failure = DeliveryStatus.FAILED, 1, True
        first.stop_kind = StopKind.REFUSED  # as delivery writes a refusal
        first.last_error = delivery.PERMANENT + "550 mailbox unavailable"
        second.status, second.attempts, second.last_error = DeliveryStatus.FAILED, 2, "timed out"
        ids = first.id, second.id
    with db.read() as session:
        rows = {r.id: r for r in history.messages_of(session, world.staff, appointment_id)}
    stopped = [r for r in rows.values() if r.template == "appointment_scheduled"]
    assert stopped and {(r.status, r.last_error) for r in stopped} == {
        ("not sent (stopped)", "Not sent: the no-show was undone.")
    }
    assert rows[ids[0]].status == "failed"
    assert rows[ids[1]].status == "failed (retrying)"


def test_the_migration_gives_messages_stopped_before_it_their_reason_from_their_words(db, world):
    """Before 0017 a message failed for good was told apart by its words: a refusal, a withdrawn
    consent, or stopped on purpose. The migration keeps each one's meaning in stop_kind, so
    Retry and the lists treat them as before: a refusal may be retried, a consent one once
    consent is back, one stopped on purpose never."""
    from alembic import command
    from sqlalchemy import inspect, text

    from db import migrate

    appointment_id = _book(db, world)
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0016")
    assert "stop_kind" not in {c["name"] for c in inspect(db.engine).get_columns("notifications")}
    words = {
        "refused": delivery.PERMANENT + "550 mailbox unavailable",
        "consent": "Not sent: the patient replied STOP to stop text messages.",
        "purpose": "Not sent: the no-show was undone.",
        "retrying": "timed out",
    }
    copy = (  # one of the booking's messages, once per kind
        "INSERT INTO notifications (patient_id, appointment_id, channel, template, to_address, "
        "subject, body, status, attempts, next_attempt_at, created_at, permanent_failure, "
        "last_error) SELECT patient_id, appointment_id, channel, template, to_address, subject, "
        "body, 'failed', 1, next_attempt_at, created_at, :p, :e FROM notifications WHERE id = "
        "(SELECT min(id) FROM notifications WHERE appointment_id = :a)"
    )
    with db.engine.begin() as connection:
        for kind, error in words.items():
            connection.execute(
                text(copy), {"p": kind != "retrying", "e": error, "a": appointment_id}
            )
        connection.execute(
            text("DELETE FROM notifications WHERE last_error IS NULL AND appointment_id = :a"),
            {"a": appointment_id},
        )
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with db.read() as session:
        kinds = {
            n.last_error: n.stop_kind
            for n in session.scalars(
                select(Notification).where(Notification.appointment_id == appointment_id)
            )
        }
    assert kinds == {
        words["refused"]: StopKind.REFUSED,
        words["consent"]: StopKind.CONSENT,
        words["purpose"]: StopKind.PURPOSE,
        words["retrying"]: None,
    }


def test_the_migration_moves_each_stored_file_into_rows_of_its_own(db, world):
    """Before 0023 an email's files were one column: a single file as it was, several packed
    as one MIME bundle, a sent message's names only. The migration makes each file a row, in
    order, with its type; the downgrade packs them back (the booking's QR code and .ics)."""
    from email.message import EmailMessage

    from alembic import command
    from sqlalchemy import text

    from db import migrate

    appointment_id = _book(db, world)  # its confirmation email carries two files
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0022")
    bundle = EmailMessage()  # as core.messaging.attachments packed several until 0023
    bundle["X-ClinicDesk-Files"] = "2"
    bundle.add_attachment(b"\x89PNG code", maintype="image", subtype="png", filename="a.png")
    bundle.add_attachment(b"BEGIN:VCALENDAR", maintype="text", subtype="calendar", filename="a.ics")
    stored = {
        "bundle": ("a.png, a.ics", bundle.as_bytes()),
        "single": ("check-in-9.png", b"\x89PNG nine"),
        "sent": ("check-in-8.png, b.ics", None),
    }
    copy = (  # one of the booking's messages, once per kind
        "INSERT INTO notifications (patient_id, channel, template, to_address, subject, body, "
        "status, attempts, next_attempt_at, created_at, permanent_failure, attachment_name, "
        "attachment) SELECT patient_id, channel, :kind, to_address, subject, body, status, "
        "attempts, next_attempt_at, created_at, permanent_failure, :name, :content "
        "FROM notifications WHERE id = (SELECT min(id) FROM notifications WHERE appointment_id "
        "= :a AND channel = 'email')"
    )
    with db.engine.begin() as connection:
        for kind, (name, content) in stored.items():
            connection.execute(
                text(copy), {"kind": kind, "name": name, "content": content, "a": appointment_id}
            )
    migrate.upgrade(db.engine)
    with db.read() as session:
        files = {
            n.template: [(f.position, f.name, f.content_type, f.content) for f in n.attachments]
            for n in session.scalars(
                select(Notification)
                .where(Notification.channel == Channel.EMAIL)
                .options(selectinload(Notification.attachments))
            )
        }
    assert files["bundle"] == [
        (0, "a.png", "image/png", b"\x89PNG code"),
        (1, "a.ics", "text/calendar", b"BEGIN:VCALENDAR"),
    ]
    assert files["single"] == [(0, "check-in-9.png", "image/png", b"\x89PNG nine")]
    assert files["sent"] == [
        (0, "check-in-8.png", "image/png", None),
        (1, "b.ics", "text/calendar", None),
    ]
    confirmation = files["appointment_scheduled"]  # packed by the downgrade, unpacked again
    assert [(p, name[-4:], kind) for p, name, kind, _ in confirmation] == [
        (0, ".png", "image/png"),
        (1, ".ics", "text/calendar"),
    ]
    assert confirmation[0][3].startswith(b"\x89PNG") and b"BEGIN:VCALENDAR" in confirmation[1][3]


def test_every_message_says_what_its_callers_give_beyond_its_text():
    """ALSO is decided for every template, () when its callers give nothing more: a template
    added without it (as proposal_answered and survey_received were, whose callers give the
    visit and the clinic event's words) refused an edit using what it is given."""
    assert sorted(notify.TEMPLATES) == sorted(notify.ALSO)
    for key, name in [
        ("proposal_answered", "service_name"),
        ("proposal_answered", "summary"),
        ("survey_received", "provider_name"),
        ("survey_received", "event"),
    ]:
        kept = "".join(f" {{{n}}}" for n in notify.needed_in(key))  # the links it must keep
        notify.check_template(key, "Answered", f"{{{name}}} on {{when}}{kept}")
