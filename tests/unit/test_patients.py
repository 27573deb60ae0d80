"""Patient records: editing, the email-change rule, the record read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from core.kernel import tokens
from core.kernel.clock import to_local
from core.kernel.errors import (
    Conflict,
    LinkInvalid,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from core.kernel.money import format_moment
from core.messaging import notify
from core.patients import enrolment, invitations
from core.patients import records as patients
from core.patients.invitations import PortalStatus
from db import migrate
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Channel,
    Clinic,
    DeliveryStatus,
    LedgerEntry,
    LedgerKind,
    Notification,
    Patient,
    PortalInvitation,
    Source,
)
from db.types import utcnow
from tests.factories import invitations_sent_a_while_ago, make_patient, make_visit
from tests.support.locks import wait_until_a_writer_waits

BASE = "https://desk.example"
ROOT = Path(__file__).resolve().parents[2]
FHIR_DIR = Path("/work/shared/data/fhir")


def _invite(db, world):
    with db.write() as s:
        sent = invitations.send_invitation(s, world.staff, world.patient_id, base_url=BASE)
    return parse_qs(urlparse(sent.link).query)["t"][0]


def test_email_change_revokes_the_pending_invitation_and_offers_a_new_one(db, world):
    raw = _invite(db, world)
    with db.write() as s:
        result = patients.update_patient(s, world.staff, world.patient_id, email="New@Example.org")
    assert result.changed == ["email"] and result.invitation_revoked and result.offer_new_invitation
    assert "revoked" in result.message
    with db.read() as s:
        patient = s.get(Patient, world.patient_id)
        assert patient.email == "new@example.org"
        assert invitations.state_of(s, patient).status == PortalStatus.REVOKED
        with pytest.raises(LinkInvalid):
            tokens.verify(s, raw, "enroll")
        history = enrolment.invitation_history(s, world.staff, world.patient_id)
        assert history[0].revoked_reason == "Email address changed"
        assert history[0].email == "alex@example.org"
        events = list(
            s.execute(
                select(AuditEvent.action, AuditEvent.details)
                .where(AuditEvent.patient_id == world.patient_id)
                .order_by(AuditEvent.id)
            )
        )
    assert [a for a, _ in events] == ["invitation_sent", "invitation_revoked", "patient_updated"]
    assert events[-1][1] == {"email": "changed"}  # the audit keeps that it changed, not the value
    # a new invitation goes to the new address; the old one is never resent there
    with db.write() as s:
        sent = invitations.send_invitation(s, world.staff, world.patient_id, base_url=BASE)
    with db.read() as s:
        mails = [n.to_address for n in s.scalars(select(Notification).order_by(Notification.id))]
    assert mails == ["alex@example.org", "new@example.org"] and sent.address == "new@example.org"


def test_a_texted_invitation_is_revoked_when_the_mobile_changes_not_the_email(db, world):
    """An invitation sent by text went to the mobile number: a new number revokes it (and
    offers a new one), an email address added leaves it."""
    with db.write() as s:
        pid = make_patient(s, first_name="Tam", email=None, consent_email=False).id
        sent = invitations.send_invitation(s, world.staff, pid, base_url=BASE)
    with db.write() as s:
        kept = patients.update_patient(s, world.staff, pid, email="tam@example.org")
    with db.write() as s:
        moved = patients.update_patient(s, world.staff, pid, phone="07700 900777")
    assert not kept.invitation_revoked
    assert moved.invitation_revoked and moved.offer_new_invitation
    with db.read() as s:
        assert s.get(PortalInvitation, sent.invitation_id).revoked_reason == "Mobile number changed"


def test_other_changes_keep_the_invitation(db, world):
    _invite(db, world)
    with db.write() as s:
        result = patients.update_patient(
            s,
            world.staff,
            world.patient_id,
            last_name="Morgan-Lee",
            email="alex@example.org",
            phone="07700 900999",
        )
    assert result.changed == ["last_name", "phone"]
    assert not result.invitation_revoked and not result.offer_new_invitation
    with db.read() as s:
        assert (
            invitations.state_of(s, s.get(Patient, world.patient_id)).status == PortalStatus.INVITED
        )


def test_withdrawing_email_consent_revokes_without_offering(db, world):
    with db.write() as s:  # nor texts: no channel is left to offer a new invitation on
        s.get(Patient, world.patient_id).consent_sms = False
    _invite(db, world)
    with db.write() as s:
        result = patients.update_patient(s, world.staff, world.patient_id, consent_email=False)
    assert result.invitation_revoked and not result.offer_new_invitation
    with db.read() as s:
        state = invitations.state_of(s, s.get(Patient, world.patient_id))
        assert state.status == PortalStatus.OPTED_OUT
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient_updated")).one()
        assert event.details == {"consent_email": {"from": True, "to": False}}


def test_withdrawing_text_consent_stops_the_texts_still_waiting(db, world):
    """Unticked on the patient's record, as a STOP reply does: a text already queued is not
    sent; the email still goes."""
    with db.write() as s:
        patient = s.get(Patient, world.patient_id)
        patient.phone, patient.consent_sms, patient.consent_email = "07700 900123", True, True
        notify.queue_for_patient(s, patient, "appointment_cancelled", {"when": "x"})
    with db.write() as s:
        patients.update_patient(s, world.staff, world.patient_id, consent_sms=False)
    with db.read() as s:
        rows = {n.channel: n for n in s.scalars(select(Notification))}
    assert rows[Channel.SMS].status == DeliveryStatus.FAILED and rows[Channel.SMS].permanent_failure
    assert "consent to text messages was withdrawn" in rows[Channel.SMS].last_error
    assert rows[Channel.EMAIL].status == DeliveryStatus.QUEUED


def test_removing_the_email_removes_email_consent(db, world):
    with db.write() as s:
        result = patients.update_patient(s, world.staff, world.patient_id, email="")
    assert set(result.changed) == {"email", "consent_email"}
    with db.read() as s:
        patient = s.get(Patient, world.patient_id)
        assert patient.email is None and patient.consent_email is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"email": "not-an-email"}, "is not an email address"),
        ({"phone": "call me"}, "is not a phone number"),
        ({"first_name": "  ", "last_name": "\x00"}, "Enter the patient's name"),
        # after today in UTC+14, as of the test's run, not its collection
        (
            {"date_of_birth": lambda: (utcnow() + timedelta(hours=14, days=1)).date()},
            "cannot be in the future",
        ),
        ({"date_of_birth": date(1, 1, 1)}, r"more than 130 years ago: check the year \(1\)"),
        ({"date_of_birth": date(1800, 6, 1)}, "more than 130 years ago: check the year"),
        ({"points_balance": 1000}, "cannot be edited here: points_balance"),
    ],
)
def test_invalid_changes_are_refused(db, world, changes, message):
    changes = {key: value() if callable(value) else value for key, value in changes.items()}
    with db.write() as s, pytest.raises(ValidationError, match=message):
        patients.update_patient(s, world.staff, world.patient_id, **changes)


@pytest.mark.parametrize(
    ("contact", "message"),
    [
        # what the email sender refuses (email-validator), so no confirmation could ever go
        ({"email": "ann@example..org"}, "is not an email address: .*two periods"),
        ({"email": "ann@-example.org"}, "is not an email address"),
        ({"email": "ann.@example.org"}, "is not an email address"),
        # what no phone can dial, though it is only digits, spaces, brackets and dashes
        ({"phone": "------"}, "is not a phone number: it has no digits"),
        ({"phone": "(((((("}, "is not a phone number"),
        ({"phone": "000000"}, "is not a phone number: it has no area code"),
        ({"phone": "077"}, "is not a phone number: it is too short"),
        ({"phone": "07700 900123 4567"}, "is not a phone number: it is too long"),
        ({"phone": "call me"}, "is not a phone number: use digits"),
        ({"phone": "+999 7700 900123"}, "is not a phone number: .*no country's code"),
    ],
)
def test_a_new_patients_contact_details_must_be_ones_a_message_can_reach(
    db, world, contact, message
):
    with db.write() as s, pytest.raises(ValidationError, match=message):
        patients.create_patient(s, world.staff, first_name="Ann", last_name="Lee", **contact)
    with db.write() as s, pytest.raises(ValidationError, match=message):
        patients.update_patient(s, world.staff, world.patient_id, **contact)


def test_phone_numbers_are_read_in_the_practices_countries(db, world):
    """A national number is read in the country of a clinic of the practice (its locale), an
    international one as it stands; kept as typed. The example in the refusal is the country's."""
    good = ("07700 900123", "+44 7700 900123", "020 0000 0000", "+1 212 555 0100")
    with db.write() as s:
        for number in good:
            made = patients.create_patient(
                s, world.staff, first_name="Ann", last_name=f"Lee {number}", phone=number
            )
            assert made.phone == number
    with db.write() as s, pytest.raises(ValidationError, match=r"area code, like 07400 123456"):
        patients.create_patient(s, world.staff, first_name="Ann", last_name="Lee", phone="7")
    with db.write() as s:  # a New York clinic joins: its national form is read too
        s.add(Clinic(name="Midtown", timezone="America/New_York", locale="en-US", currency="USD"))
    with db.write() as s:
        made = patients.create_patient(
            s, world.staff, first_name="Bo", last_name="Diaz", phone="(212) 555-0123"
        )
        assert made.phone == "(212) 555-0123"


LANDLINE = "020 7946 0123"  # phonenumbers: a fixed line in London


def test_text_consent_on_a_landline_is_refused_saying_what_to_do(db, world):
    """A text to a landline never arrives: consent to texts on one is refused, naming it and
    what to do, when the number or the consent is typed. A mobile, or a number that may be
    either (phonenumbers' FIXED_LINE_OR_MOBILE: US numbers), is taken."""
    landline = r"'020 7946 0123' is a landline: texts cannot reach it\. Untick text messages"
    with db.write() as s, pytest.raises(ValidationError, match=landline):
        patients.create_patient(
            s, world.staff, first_name="Ann", last_name="Lee", phone=LANDLINE, consent_sms=True
        )
    with db.write() as s:  # kept for calls, without texts
        ann = patients.create_patient(
            s, world.staff, first_name="Ann", last_name="Lee", phone=LANDLINE
        )
        for last, number in (("Mobile", "07911 123456"), ("Either", "+1 212 555 0123")):
            patients.create_patient(
                s, world.staff, first_name="Bo", last_name=last, phone=number, consent_sms=True
            )
    with db.write() as s, pytest.raises(ValidationError, match=landline):
        patients.update_patient(s, world.staff, ann.id, consent_sms=True)
    with db.write() as s, pytest.raises(ValidationError, match=landline):  # consent on file
        patients.update_patient(s, world.staff, world.patient_id, phone=LANDLINE)
    with db.write() as s:
        patients.update_patient(s, world.staff, world.patient_id, phone=LANDLINE, consent_sms=False)
    with db.read() as s:
        assert not s.get(Patient, world.patient_id).consent_sms


def test_a_landline_with_text_consent_on_file_does_not_block_other_edits(db, world):
    """An old or imported record keeps what it has until its number or consent is edited."""
    with db.write() as s:
        s.get(Patient, world.patient_id).phone = LANDLINE
    with db.write() as s:
        patients.update_patient(
            s, world.staff, world.patient_id, last_name="Lee", phone=LANDLINE, consent_sms=True
        )
    with db.read() as s:
        assert s.get(Patient, world.patient_id).last_name == "Lee"


def test_a_phone_on_file_that_no_longer_passes_does_not_block_changing_the_email(db, world):
    """Validation reads what is typed: an old or imported number left as it is stays, also
    when the edit form sends it back unchanged with the new email."""
    with db.write() as s:
        s.get(Patient, world.patient_id).phone = "0161 1"
    with db.write() as s:
        patients.update_patient(
            s, world.staff, world.patient_id, email="new@example.org", phone=" 0161 1"
        )
    with db.read() as s:
        patient = s.get(Patient, world.patient_id)
        assert (patient.email, patient.phone) == ("new@example.org", "0161 1")


def test_a_field_changed_since_the_form_showed_it_is_refused_with_its_value_now(db, world):
    """Decided under the patient's row lock, not on the page's copy of the record: a page
    whose record is cached (or another server's desk) cannot overwrite a change unseen."""
    with db.read() as s:
        phone = s.get(Patient, world.patient_id).phone or ""
    with db.write() as s:
        patients.update_patient(s, world.staff, world.patient_id, phone="07700 900461")
    with db.write() as s, pytest.raises(patients.ChangedMeanwhile) as refused:
        patients.update_patient(
            s, world.staff, world.patient_id, shown={"phone": phone}, phone="07700 900462"
        )
    assert refused.value.now == {"phone": "07700 900461"}
    assert "Someone else changed this patient's phone while this form was open" in str(
        refused.value
    )
    with db.write() as s:  # pressed again on what is on file now: saved
        patients.update_patient(
            s, world.staff, world.patient_id, shown=refused.value.now, phone="07700 900462"
        )
    with db.read() as s:
        assert s.get(Patient, world.patient_id).phone == "07700 900462"


def test_the_same_change_made_twice_or_another_field_changed_meanwhile_is_no_clash(db, world):
    with db.read() as s:
        patient = s.get(Patient, world.patient_id)
        shown = {"email": patient.email or "", "date_of_birth": patient.date_of_birth}
    with db.write() as s:
        patients.update_patient(
            s, world.staff, world.patient_id, email="both@example.org", consent_sms=False
        )
    with db.write() as s:
        patients.update_patient(
            s,
            world.staff,
            world.patient_id,
            shown=shown,
            email="both@example.org",
            date_of_birth=date(1990, 1, 2),
        )
    with db.read() as s:
        patient = s.get(Patient, world.patient_id)
        assert (patient.email, patient.date_of_birth) == ("both@example.org", date(1990, 1, 2))
        assert patient.consent_sms is False


def test_two_desks_saving_one_field_at_once_one_saves_and_one_is_told(db, world):
    """The second waits for the first's row lock, then reads what the first saved."""
    with db.read() as s:
        shown = {"phone": s.get(Patient, world.patient_id).phone or ""}
    outcomes: list[object] = []

    def desk(number: str) -> None:
        try:
            with db.write() as s:
                patients.update_patient(s, world.staff, world.patient_id, shown=shown, phone=number)
                outcomes.append(number)
                if number.endswith("1"):  # holds its lock until the other desk waits for it
                    wait_until_a_writer_waits(db)
        except patients.ChangedMeanwhile as error:
            outcomes.append(error)

    first = threading.Thread(target=desk, args=("07700 900471",))
    first.start()
    while not outcomes and first.is_alive():
        time.sleep(0.01)
    second = threading.Thread(target=desk, args=("07700 900472",))
    second.start()
    first.join()
    second.join()
    assert outcomes[0] == "07700 900471"
    assert isinstance(outcomes[1], patients.ChangedMeanwhile), outcomes
    assert outcomes[1].now == {"phone": "07700 900471"}
    with db.read() as s:
        assert s.get(Patient, world.patient_id).phone == "07700 900471"


def test_a_baby_born_today_in_any_zone_can_be_registered(db, world, monkeypatch):
    """At 11:00 UTC on 5 December it is already the 6th on Kiritimati (UTC+14)."""
    monkeypatch.setattr(patients, "utcnow", lambda: datetime(2026, 12, 5, 11, tzinfo=UTC))
    born = date(2026, 12, 6)
    with db.write() as s:
        patients.update_patient(s, world.staff, world.patient_id, date_of_birth=born)
    with db.read() as s:
        assert s.get(Patient, world.patient_id).date_of_birth == born


def test_a_new_patient_older_than_anyone_alive_is_refused_and_a_centenarian_is_not(db, world):
    with db.write() as s, pytest.raises(ValidationError, match="more than 130 years ago"):
        patients.create_patient(
            s, world.staff, first_name="Old", last_name="Year", date_of_birth=date(1800, 1, 1)
        )
    born = date(utcnow().year - 104, 1, 1)
    with db.write() as s:
        made = patients.create_patient(
            s, world.staff, first_name="Ada", last_name="Hundred", date_of_birth=born
        )
    with db.read() as s:
        assert s.get(Patient, made.id).date_of_birth == born


def test_a_likely_duplicate_is_named_unless_staff_say_it_is_someone_else(db, world):
    """Same name and date of birth (whatever the case) is a likely duplicate; a shared email or
    phone alone is not (families share them)."""
    born = date(1996, 1, 9)
    with db.write() as s:
        zara = patients.create_patient(
            s, world.staff, first_name="Zara", last_name="Brown", date_of_birth=born,
            email="zara@example.org",
        )  # fmt: skip
    with db.write() as s, pytest.raises(Conflict, match=rf"Zara Brown \(#{zara.id}\), born"):
        patients.create_patient(
            s, world.staff, first_name="zara", last_name="BROWN ", date_of_birth=born
        )
    with db.write() as s:
        twin = patients.create_patient(  # told: a different person
            s, world.staff, first_name="Zara", last_name="Brown", date_of_birth=born,
            different_person=True,
        )  # fmt: skip
        child = patients.create_patient(  # the family's email, another person
            s, world.staff, first_name="Ben", last_name="Brown", date_of_birth=date(2020, 5, 1),
            email="zara@example.org",
        )  # fmt: skip
    assert len({zara.id, twin.id, child.id}) == 3
    with db.write() as s:  # the date in the practice's locale (it read 9 Jan 1996 everywhere)
        s.get(Clinic, world.clinic_id).locale = "en-US"
    with db.write() as s, pytest.raises(Conflict, match=r"born Jan 9, 1996, is already"):
        patients.create_patient(
            s, world.staff, first_name="Zara", last_name="Brown", date_of_birth=born
        )


def test_a_duplicate_is_found_whatever_the_accents_and_case_on_every_database(db, world):
    """SQLite's lower() folds ASCII only: ÉLODIE and élodie, or Elodie typed without its
    accent, are the same person to the front desk on SQLite as on PostgreSQL."""
    born = date(1988, 3, 14)
    with db.write() as s:
        elodie = patients.create_patient(
            s, world.staff, first_name="Élodie", last_name="Müller-Ñúñez", date_of_birth=born
        )
    for first, last in (("ÉLODIE", "MÜLLER-ÑÚÑEZ"), ("elodie", "Muller Nunez")):
        with db.write() as s, pytest.raises(Conflict, match=rf"\(#{elodie.id}\)"):
            patients.create_patient(
                s, world.staff, first_name=first, last_name=last, date_of_birth=born
            )
    with db.write() as s:  # another name the same day is someone else
        patients.create_patient(
            s, world.staff, first_name="Elodie", last_name="Martin", date_of_birth=born
        )


def test_nothing_changed_writes_no_audit(db, world):
    with db.write() as s:
        result = patients.update_patient(s, world.staff, world.patient_id, first_name="Alex")
    assert result.changed == [] and result.message == "Nothing changed."
    with db.read() as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.patient_id.is_not(None))) is None


def test_permissions_and_unknown_patient(db, world):
    from core.kernel.authz import patient_actor

    with db.write() as s:
        with pytest.raises(PermissionDenied):
            patients.update_patient(s, patient_actor("x"), world.patient_id, first_name="Y")
        with pytest.raises(NotFound):
            patients.update_patient(s, world.staff, 99999, first_name="Y")


def test_record_has_details_portal_status_and_history(db, world):
    _invite(db, world)
    with db.write() as s:
        invitations_sent_a_while_ago(s, world.patient_id)
    _invite(db, world)
    with db.read() as s:
        record = patients.get_patient_record(s, world.staff, world.patient_id)
        status = patients.portal_status(s, world.staff, world.patient_id)
    assert record.name == "Alex Morgan" and record.consent_email and record.points_balance == 100
    assert record.portal.status == status.status == PortalStatus.INVITED
    assert [h.status for h in record.invitations] == ["pending", "revoked"]


def test_online_appointments_show_online_and_the_time_instead_of_a_staff_name(db, world):
    from datetime import UTC, datetime

    from db.models import Appointment, AppointmentStatus, Source

    booked = datetime(2026, 7, 1, 13, 5, tzinfo=UTC)
    with db.write() as s:
        s.add_all(
            [
                Appointment(
                    clinic_id=world.clinic_id,
                    patient_id=world.patient_id,
                    source=Source.ONLINE,
                    status=AppointmentStatus.REQUESTED,
                    requested_day=date(2026, 7, 9),
                    time_of_day="morning",
                    booked_at=booked,
                    created_at=booked,
                ),
                Appointment(
                    clinic_id=world.clinic_id,
                    patient_id=world.patient_id,
                    source=Source.STAFF,
                    status=AppointmentStatus.SCHEDULED,
                    created_by_user_id=world.staff.user_id,
                    start_at=booked + timedelta(days=30),
                    end_at=booked + timedelta(days=30, hours=1),
                ),
            ]
        )
    with db.read() as s:
        rows = patients.list_patient_appointments(s, world.staff, world.patient_id)
    assert [r.booked_by for r in rows] == ["Staff", "Online appointment · Wed, 1 Jul 2026, 14:05"]
    assert rows[0].when == "Fri, 31 Jul 2026, 14:05"
    assert rows[1].when == "Thu, 9 Jul 2026, morning (9:00\u201312:00)"  # its hours, as forms say


def test_visits_at_a_clinic_of_another_zone_name_their_zone_and_times_of_day_their_hours(db, world):
    """A 10:00 in London and a 10:00 in New York read the same on the record. A visit at a
    clinic whose zone is not the practice's (its first clinic's) names its zone, by its
    abbreviation that day as every message writes it, a request's time of day with its hours
    too; one in the practice's zone stays as it was."""
    london = datetime(2026, 12, 7, 10, tzinfo=UTC)  # 10:00 GMT
    new_york = datetime(2026, 12, 8, 15, tzinfo=UTC)  # 10:00 EST
    with db.write() as s:
        lakeside = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        s.add(lakeside)
        s.flush()
        s.add_all(
            Appointment(
                clinic_id=clinic_id,
                patient_id=world.patient_id,
                service_id=world.service_id,
                status=AppointmentStatus.REQUESTED if day else AppointmentStatus.SCHEDULED,
                start_at=start,
                end_at=start + timedelta(minutes=30) if start else None,
                requested_day=day,
                time_of_day="evening" if day else None,
                created_at=start or london,
                source=Source.ONLINE,
                booked_at=datetime(2026, 12, 1, 14, tzinfo=UTC),
            )
            for clinic_id, start, day in (
                (world.clinic_id, london, None),
                (lakeside.id, new_york, None),
                (lakeside.id, None, date(2026, 12, 9)),
                (world.clinic_id, None, date(2026, 12, 10)),
            )
        )
    with db.read() as s:
        rows = patients.list_patient_appointments(s, world.staff, world.patient_id)
    assert sorted((r.clinic, r.when) for r in rows) == [
        ("Lakeside", "Tue, Dec 8, 2026, 10:00\u202fAM (EST)"),
        ("Lakeside", "Wed, Dec 9, 2026, evening (after 5:00\u202fPM) (EST)"),
        ("Test Clinic", "Mon, 7 Dec 2026, 10:00"),
        ("Test Clinic", "Thu, 10 Dec 2026, evening (after 17:00)"),
    ]
    assert {(r.clinic, r.booked_by) for r in rows} == {  # when it was booked online, alike
        ("Lakeside", "Online appointment · Tue, Dec 1, 2026, 9:00\u202fAM (EST)"),
        ("Test Clinic", "Online appointment · Tue, 1 Dec 2026, 14:00"),
    }


def test_money_on_the_record_for_a_visit_of_another_zone_names_its_zone(db, world):
    """The record's payments and what is owed are timed on their visit's clinic's clock: one
    at a New York clinic names its zone beside the London practice's, as the visits do."""
    from core.payments import desk

    start = utcnow().replace(microsecond=0) - timedelta(days=3)
    with db.write() as s:
        lakeside = Clinic(
            name="Lakeside", timezone="America/New_York", locale="en-US", currency="USD"
        )
        s.add(lakeside)
        s.flush()
        here, there = (
            make_visit(
                s,
                world,
                status=AppointmentStatus.NO_SHOW,
                start_at=start,
                end_at=start + timedelta(minutes=30),
            )
            for _ in range(2)
        )
        there.clinic_id = lakeside.id
        s.flush()
        for visit in (here, there):
            desk.record_desk_payment(s, world.staff, visit.id, amount_cents=1000, method="cash")
            s.add(
                LedgerEntry(
                    patient_id=world.patient_id,
                    appointment_id=visit.id,
                    kind=LedgerKind.NO_SHOW_FEE,
                    amount_cents=2500,
                )
            )
        ids = here.id, there.id
    with db.read() as s:
        money = patients.patient_money(s, world.staff, world.patient_id)
        paid = {p.appointment_id: p.when for p in money.payments}
        owed = {o.appointment_id: o.when for o in money.owed}
    visit_zone, paid_zone = (to_local(t, "America/New_York").tzname() for t in (start, utcnow()))
    assert owed[ids[1]].endswith(f" ({visit_zone})"), owed
    assert paid[ids[1]].endswith(f" ({paid_zone})"), paid
    assert "(" not in owed[ids[0]] + paid[ids[0]]  # the practice's own zone: as before
    assert f"#{ids[1]}, {owed[ids[1]]})" in money.owed_text


def test_search_labels_show_the_date_of_birth_in_the_practices_locale(db, world):
    with db.read() as s:
        (found,) = patients.search_patients(s, world.staff, "Morgan")
    assert found.label == "Alex Morgan (#1), born 12 Apr 1985 · alex@example.org"  # en-GB
    with db.write() as s:
        s.get(Clinic, world.clinic_id).locale = "en-US"
    with db.read() as s:
        (found,) = patients.search_patients(s, world.staff, "Morgan")
    assert found.label == "Alex Morgan (#1), born Apr 12, 1985 · alex@example.org"


def test_patients_of_one_name_are_told_apart_by_number_and_by_a_date_of_birth_typed(db, world):
    """Twins of one name sharing the family's email (or two imported records with nothing but
    a name) read alike in the list but for their number; a date of birth typed as the practice
    writes dates (12/04/1985 in en-GB, 4/12/1985 in en-US) or as 1985-04-12 narrows the search
    to those born that day, where before it found nobody (a date read as words, or as a phone
    number)."""
    family = {"email": "smith.family@example.org", "date_of_birth": date(2001, 4, 5)}
    with db.write() as s:

        def add(last="Smith", **kw):
            return patients.create_patient(
                s, world.staff, first_name="Robin", last_name=last, different_person=True, **kw
            ).id

        one, two = add(**family), add(**family)
        older = add(date_of_birth=date(1950, 5, 4))
        other = add(last="Jones", date_of_birth=date(2001, 4, 5))
    with db.read() as s:
        labels = [p.label for p in patients.search_patients(s, world.staff, "robin smith")]
        assert labels == [
            f"Robin Smith (#{one}), born 5 Apr 2001 · smith.family@example.org",
            f"Robin Smith (#{two}), born 5 Apr 2001 · smith.family@example.org",
            f"Robin Smith (#{older}), born 4 May 1950 · no contact details",
        ]

        def ids(typed):
            return [p.id for p in patients.search_patients(s, world.staff, typed)]

        assert ids("smith 05/04/2001") == ids("Smith 5.4.01") == [one, two]
        assert ids("2001-04-05") == ids("05/04/2001") == [other, one, two]  # Jones, Smith
        assert ids("smith 04/05/1950") == [older] and ids("smith 04/05/2001") == []
        assert ids("smith 31/02/2001") == []  # no such day: a word no name contains
    with db.write() as s:
        s.get(Clinic, world.clinic_id).locale = "en-US"
    with db.read() as s:
        assert ids("smith 4/5/2001") == [one, two] and ids("smith 4/5/1950") == []
        assert ids("smith 1950-05-04") == [older]


def test_a_phone_number_typed_in_part_finds_it_in_either_form_on_file(db, world):
    """The desk types the start of a number as patients say it, national or international, and
    finds it however it is on file (before: '07700 900' found only a national form on file, and
    '+44 7700 900' neither, since the trunk 0 and the country code differ)."""
    with db.write() as s:
        national = patients.create_patient(
            s, world.staff, first_name="Ann", last_name="Lee", phone="07700 900555"
        ).id
        world_wide = patients.create_patient(
            s, world.staff, first_name="Ben", last_name="Lee", phone="+44 7700 900556"
        ).id
    with db.read() as s:
        for typed in ("07700 900", "+44 7700 900", "0044 7700 900", "7700 900"):
            found = {p.id for p in patients.search_patients(s, world.staff, typed)}
            assert {national, world_wide} <= found, typed
        for typed, who in (("07700 900555", national), ("+44 7700 900556", world_wide)):
            assert [p.id for p in patients.search_patients(s, world.staff, typed)] == [who]
        assert patients.search_patients(s, world.staff, "007 ann") == []  # not 'a 7 anywhere'


def test_a_number_is_read_by_one_rule_in_the_search_and_the_invitations_list(db, world):
    """search_patients read each word's digits as a phone number (so 'abc123' found every
    patient whose phone holds 123) and split '+44 7700' into '+44', a name, and '7700' (so it
    found nobody); the invitations list read the whole text as one number or none (so 'lee
    07700 900123' found nobody). Now both read words of a number typed together as one number
    (core.patients.search.numbers_joined) and each as phone_like reads it."""
    with db.write() as s:
        ann = patients.create_patient(
            s, world.staff, first_name="Ann", last_name="Lee", phone="07700 900555"
        ).id
        ben = patients.create_patient(
            s, world.staff, first_name="Ben", last_name="Lee", phone="+44 7700 900556"
        ).id
    alex = world.patient_id  # Alex Morgan, 07700 900123
    expected = {
        "abc123": set(),
        "+44 7700": {alex, ann, ben},
        "07700-900": {alex, ann, ben},
        "lee +44 7700 900555": {ann},
        "lee 07700 900556": {ben},
        "ann 900": {ann},
        "morgan 900 123": {alex},
    }
    with db.read() as s:
        for typed, who in expected.items():
            found = {p.id for p in patients.search_patients(s, world.staff, typed)}
            listed = {
                r.patient_id for r in enrolment.list_invitations(s, world.staff, search=typed)
            }
            assert (found, listed) == (who, who), typed


def test_a_search_by_phone_keeps_the_plan_it_had(db, world):
    """The phone condition, now phone_like's, leaves the query on the index it used (the one on
    merged_into_id, for records not merged away): measured by EXPLAIN (QUERY PLAN)."""
    seen = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "FROM patients" in statement and "LIKE" in statement.upper():
            seen.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", grab)
    try:
        with db.read() as s:
            patients.search_patients(s, world.staff, "lee +44 7700 900")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", grab)
    ((statement, parameters),) = seen
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
            rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        else:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = "\n".join(str(r[-1]) for r in rows)
    assert "ix_patients_merged_into_id" in plan, plan


def test_a_search_by_number_reads_the_patients_once(db, world):
    """A number typed (whole, in part, international, beside a name, or a record's #number) is
    one statement reading the patients, on SQLite as on PostgreSQL: the phone's forms are one
    condition of the query (phone_like), not a second look-up. Measured before any change: one
    read already (a guard, not a fix)."""
    with db.write() as s:
        ann = patients.create_patient(
            s, world.staff, first_name="Ann", last_name="Lee", phone="07700 900555"
        ).id
    reads = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "FROM patients" in statement:
            reads.append(statement)

    for typed in ("07700 900555", "900555", "+44 7700 900555", "lee 07700 900", f"#{ann}"):
        reads.clear()
        sa.event.listen(db.engine, "before_cursor_execute", grab)
        try:
            with db.read() as s:
                found = [p.id for p in patients.search_patients(s, world.staff, typed)]
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", grab)
        assert (found, len(reads)) == ([ann], 1), (typed, reads)


def test_patients_are_found_whatever_the_accents_and_case(db, world):
    """The front desk types 'elodie' or 'ÉLODIE' for Élodie Müller-Ñúñez: found on SQLite (whose
    lower() folds ASCII only) as on PostgreSQL, by name, email or phone, and by her new name
    after a change; LIKE's wildcard '_' typed is a plain character."""
    with db.write() as s:
        elodie = patients.create_patient(
            s, world.staff, first_name="Élodie", last_name="Müller-Ñúñez",
            email="Elodie.M@example.org", phone="07700 900777",
        ).id  # fmt: skip
        patients.create_patient(s, world.staff, first_name="Eloise", last_name="Martin")
    with db.read() as s:
        for typed in ("elodie", "ÉLODIE", "élodie muller", "MULLER NUNEZ", "ñúñez", "elodie.m@"):
            found = [p.id for p in patients.search_patients(s, world.staff, typed)]
            assert found == [elodie], typed
        assert [p.id for p in patients.search_patients(s, world.staff, "900777")] == [elodie]
        for typed in ("+44 7700 900777", "07700-900-777", "(07700) 900777"):  # as on file, bare
            assert [p.id for p in patients.search_patients(s, world.staff, typed)] == [elodie]
        assert patients.search_patients(s, world.staff, "e_odie") == []
        listed = enrolment.list_invitations(s, world.staff, search="MÜLLER")
        assert [r.patient_id for r in listed] == [elodie]
    with db.write() as s:  # letters with a stroke, which Unicode does not split into an accent
        orsted = patients.create_patient(s, world.staff, first_name="Łukasz", last_name="Ørsted")
    with db.read() as s:
        for typed in ("orsted", "lukasz", "ØRSTED ŁUKASZ"):
            assert [p.id for p in patients.search_patients(s, world.staff, typed)] == [orsted.id]
    with db.write() as s:
        patients.update_patient(s, world.staff, elodie, last_name="Dubois")
    with db.read() as s:
        assert [p.id for p in patients.search_patients(s, world.staff, "dubois")] == [elodie]
        assert patients.search_patients(s, world.staff, "muller") == []


def test_a_name_typed_without_its_apostrophe_space_or_hyphen_is_found_and_is_a_duplicate(db, world):
    """The desk types 'obrien' for O'Brien, 'darcy' for D’Arcy, 'vanderberg' for Van der Berg
    and '王伟' (family name first, no space) for 伟 王: each is found, where before the search
    said nobody matched and the desk added the patient again; and 'OBrien' born the same day
    as Siobhán O'Brien is named as the likely duplicate she is."""
    with db.write() as s:

        def add(first, last, **kw):
            return patients.create_patient(
                s, world.staff, first_name=first, last_name=last, **kw
            ).id

        obrien = add("Siobhán", "O'Brien", date_of_birth=date(1970, 3, 1))
        darcy, berg, wang = add("Mary", "D’Arcy"), add("Anne", "Van der Berg"), add("伟", "王")
        add("Brienne", "Olsen")  # 'o' and 'brien' in her name, not 'obrien'
    with db.read() as s:
        for typed, who in (
            ("obrien", obrien), ("OBRIEN siobhan", obrien), ("O’Brien", obrien),
            ("darcy", darcy), ("mary darcy", darcy), ("vanderberg", berg), ("王伟", wang),
            ("王", wang),
        ):  # fmt: skip
            assert [p.id for p in patients.search_patients(s, world.staff, typed)] == [who], typed
    with db.write() as s, pytest.raises(Conflict, match=rf"Siobhán O'Brien \(#{obrien}\)"):
        patients.create_patient(
            s, world.staff, first_name="Siobhan", last_name="OBrien", date_of_birth=date(1970, 3, 1)
        )


def test_a_common_name_lists_whole_names_first_and_says_when_more_match(db, world):
    """On a large practice 'lee' matches the Lees and every Ashlee, Kathleen and Kleeman: the
    list is cut at its limit, so the Lees come first (whole names, then names starting so, then
    the rest) and the search says more match, where before the list was alphabetical by surname
    (Kathleen Adams first, the Lees cut off) and said nothing of the others."""
    with db.write() as s:

        def add(first, last):
            return patients.create_patient(s, world.staff, first_name=first, last_name=last).id

        others = [add("Kathleen", "Adams"), add("Ashlee", "Brown"), add("Tom", "Kleeman")]
        leeds = add("Ann", "Leeds")
        lees = [add("Ann", "Lee"), add("Lee", "Zhang")]
    with db.read() as s:
        found = patients.search_patients(s, world.staff, "lee", limit=3)
        assert [p.id for p in found] == [*lees, leeds] and found.more
        assert found.note == (
            "More patients match than the 3 shown (whole names first). Type more of the name "
            "(first and last), or search by phone, email or #number."
        )
        every = patients.search_patients(s, world.staff, "lee", limit=6)
        assert [p.id for p in every] == [*lees, leeds, *others] and not every.more
        assert every.note is None
        (ann,) = patients.search_patients(s, world.staff, "ann lee", limit=1)
        assert ann.id == lees[0]  # Ann Lee before Ann Leeds


def test_the_migration_makes_every_earlier_patient_searchable(db, world):
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    row = {"first_name": "ZOË", "last_name": "Ångström-Ørsted", "points_balance": 100}
    row |= dict.fromkeys(("consent_email", "consent_sms", "consent_marketing"), False)
    row |= {"reminders_enabled": True, "card_on_file": False}
    row |= dict.fromkeys(("created_at", "updated_at"), utcnow())
    with db.engine.begin() as connection:
        connection.execute(sa.table("patients", *map(sa.column, row)).insert(), [row])
    migrate.upgrade(db.engine)
    with db.read() as s:
        (found,) = patients.search_patients(s, world.staff, "zoe angstrom orsted")
        assert found.name == "ZOË Ångström-Ørsted"
        texts = s.scalars(select(Patient.search_text)).all()
    assert texts and all(texts)  # every patient, the world's own included


def test_a_patient_written_by_a_fresh_cli_process_is_searchable(tmp_path):
    """The search text is kept by a hook the start-up registers (core.patients.search through
    core.startup.install_session_rules), not by an import done earlier in this test process:
    `core.cli import-fhir` in a process of its own creates the FHIR example's patient through
    the ORM, and its search text is there."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CLINICDESK_DATA_DIR": str(tmp_path),
        "CLINICDESK_SECRET_KEY": "k" * 40,
    }
    files = [str(p) for p in sorted(FHIR_DIR.glob("*.json"))]
    command_line = [sys.executable, "-m", "core.cli", "import-fhir", *files]
    done = subprocess.run(command_line, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    database = Database(env["DATABASE_URL"])
    try:
        with database.read() as s:
            rows = s.execute(select(Patient.first_name, Patient.last_name, Patient.search_text))
            texts = {(first, last): text for first, last, text in rows}
    finally:
        database.dispose()
    assert texts[("Peter James", "Chalmers")] == "peter james chalmers"
    assert all(texts.values()), texts


def test_the_record_says_the_next_visit_and_with_whom(db, world):
    """'When is my next visit, and with whom?' answered on the record, on the clinic's clock;
    a past visit or a cancelled one is not the next (before: the desk read the appointments
    table, newest first, to find it)."""
    now = utcnow().replace(second=0, microsecond=0)
    with db.write() as s:
        assert patients.get_patient_record(s, world.staff, world.patient_id).next_visit == ""
        for days, status in ((-2, "COMPLETED"), (3, "CANCELLED"), (9, "SCHEDULED")):
            start = now + timedelta(days=days)
            make_visit(
                s,
                world,
                status=AppointmentStatus[status],
                start_at=start,
                end_at=start + timedelta(minutes=30),
            )
    with db.read() as s:
        said = patients.get_patient_record(s, world.staff, world.patient_id).next_visit
    clinic = "Test Clinic"
    assert said.endswith(f": Consultation with Dr Test at {clinic}"), said
    nine = format_moment(now + timedelta(days=9), "Europe/London", zone=True)
    assert said.startswith(f"{nine}: "), said


def test_a_patient_with_one_name_only_is_added_at_the_desk_too(db, world):
    """The public form takes one name (a mononym) in either box; the desk's form refused it
    ('Enter the patient's first and last name'), so such a patient could not be added in
    person."""
    with db.write() as s:
        one = patients.create_patient(s, world.staff, first_name="", last_name="Sukarno")
        assert (one.first_name, one.last_name, one.full_name) == ("", "Sukarno", "Sukarno")
        patients.update_patient(s, world.staff, one.id, first_name="Bung", last_name="")
    with db.read() as s:
        assert s.get(Patient, one.id).full_name == "Bung"


@pytest.mark.parametrize("names", [("🙂🙂", ""), ("Ann", "---"), ("", "42")])
def test_the_desk_cannot_add_or_rename_a_patient_to_a_name_with_no_letter(db, world, names):
    """The desk's forms go through the public form's check: a name needs a letter (any
    alphabet), and the message says so."""
    first, last = names
    with db.write() as s, pytest.raises(ValidationError, match="has no letter in it"):
        patients.create_patient(s, world.staff, first_name=first, last_name=last)
    with db.write() as s, pytest.raises(ValidationError, match="type the patient's name as"):
        patients.update_patient(s, world.staff, world.patient_id, first_name=first, last_name=last)
    with db.read() as s:
        assert s.get(Patient, world.patient_id).full_name == "Alex Morgan"
    with db.write() as s:
        made = patients.create_patient(s, world.staff, first_name="李", last_name="O'Brien")
        assert made.full_name == "李 O'Brien"


# ---------------------------------------------------------------- the postal address


def test_an_address_is_kept_cleaned_in_the_practices_country_audited_and_not_searched(db, world):
    """Letters, invoices and insurers need where a patient lives: the record had no place for
    it. Typed text is cleaned; a country left out is the practice's (en-GB: GB); the audit says
    the address changed, not what it is; a search does not find a patient by their street."""
    with db.write() as s:
        made = patients.create_patient(
            s,
            world.staff,
            first_name="Ann",
            last_name="Lee",
            address={
                "address_line1": " 1  High\tStreet\u202e ",
                "city": "London",
                "postcode": "sw1a 1aa",
            },
        )
        saved = patients.update_patient(
            s, world.staff, world.patient_id, address_line1="2 Mill Lane", city="York"
        )
    assert saved.message == "Saved: address line 1, city, country."
    with db.read() as s:
        ann = patients.get_patient_record(s, world.staff, made.id)
        alex = patients.get_patient_record(s, world.staff, world.patient_id)
        audits = s.scalars(
            select(AuditEvent.details).where(AuditEvent.patient_id == world.patient_id)
        ).all()
        found = patients.search_patients(s, world.staff, "Mill")
    assert (ann.address_line1, ann.postcode, ann.country) == ("1 High Street", "SW1A 1AA", "GB")
    assert ann.address == "1 High Street, London, SW1A 1AA, United Kingdom"
    assert alex.address == "2 Mill Lane, York, United Kingdom"
    assert audits == [{"address_line1": "changed", "city": "changed", "country": "changed"}]
    assert list(found) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"address_line1": "x" * 121}, "The address's first line is too long: 121 characters"),
        ({"city": "y" * 81}, "The town or city is too long: 81 characters where at most 80"),
        ({"postcode": "SW1A 1AA 1234"}, "The postcode is too long: 13 characters"),
        ({"postcode": "SW1A#1AA"}, "'SW1A#1AA' is not a postcode: use letters, digits, spaces"),
        ({"postcode": "-1000"}, "is not a postcode"),
        ({"country": "UK"}, "'UK' is not a country code: use its two letters from ISO 3166"),
        ({"country": "EU"}, "not a country code"),
    ],
)
def test_an_address_the_record_cannot_hold_is_refused_saying_what_to_fix(
    db, world, changes, message
):
    with db.write() as s, pytest.raises(ValidationError, match=message):
        patients.update_patient(s, world.staff, world.patient_id, **changes)
    with db.write() as s, pytest.raises(ValidationError, match=message):
        patients.create_patient(s, world.staff, first_name="A", last_name="B", address=changes)


BOTH = "The address needs its first line and its town or city for a letter to reach it: type them"
TOWN = "The address needs its town or city for a letter to reach it: type it"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ({"country": "GB"}, BOTH),
        ({"postcode": "SW1A 1AA"}, BOTH),
        ({"address_line2": "Flat 2", "country": "FR"}, BOTH),
        ({"address_line1": "1 High Street", "postcode": "SW1A 1AA"}, TOWN),
        ({"city": "York", "postcode": "YO1 7HH"}, "needs its first line for a letter"),
    ],
)
def test_an_address_a_letter_cannot_reach_is_refused_naming_what_is_missing(
    db, world, address, message
):
    """A country alone, or a postcode alone, was saved as the patient's address: no letter
    reaches it. Once any part is typed, its first line and its town or city are needed."""
    with db.write() as s, pytest.raises(ValidationError, match=message):
        patients.create_patient(s, world.staff, first_name="A", last_name="B", address=address)
    with db.write() as s, pytest.raises(ValidationError, match=message):
        patients.update_patient(s, world.staff, world.patient_id, **address)
    with db.read() as s:
        alex = s.get(Patient, world.patient_id)
        assert [getattr(alex, f) for f in patients.ADDRESS] == [None] * 5
        assert s.scalar(select(Patient).where(Patient.last_name == "B")) is None


def test_an_edit_keeps_the_address_whole_or_clears_it_with_its_country(db, world):
    home = {"address_line1": "1 High Street", "city": "York", "postcode": "YO1 7HH"}
    with db.write() as s:
        patients.update_patient(s, world.staff, world.patient_id, **home)
    with db.write() as s, pytest.raises(ValidationError, match=TOWN):
        patients.update_patient(s, world.staff, world.patient_id, city="")
    with db.write() as s:  # the other parts cleared: no address, and no country left alone
        saved = patients.update_patient(s, world.staff, world.patient_id, **dict.fromkeys(home, ""))
    assert saved.message == "Saved: address line 1, city, postcode, country."
    with db.read() as s:
        alex = s.get(Patient, world.patient_id)
        assert [getattr(alex, f) for f in patients.ADDRESS] == [None] * 5


def test_the_patients_file_holds_their_address(db, world):
    from core.interchange import patient_export

    with db.write() as s:
        address = {"address_line1": "Hauptstr. 5", "postcode": "10115", "country": "de"}
        patients.update_patient(s, world.staff, world.patient_id, city="Berlin", **address)
        file = json.loads(patient_export.export_patient(s, world.owner, world.patient_id))
    assert file["patient"]["address"] == {
        "address_line1": "Hauptstr. 5",
        "address_line2": None,
        "city": "Berlin",
        "postcode": "10115",
        "country": "DE",
    }


def test_a_landline_created_at_the_desk_or_taken_in_a_merge_is_marked_as_one(db, world):
    """The landline mark (core.patients.landlines) follows a phone however it comes: a new
    record typed at the desk, and a merge that fills the kept record's blank phone from the
    duplicate's landline; the kept record is then one without a mobile in the invitation list
    (it had an email it never agreed to: opted out)."""
    from core.patients import merge

    with db.write() as s:
        typed = patients.create_patient(
            s, world.staff, first_name="Lin", last_name="Ode", phone="020 7946 0123"
        )
        keep = make_patient(s, first_name="Kit", phone=None, consent_email=False)
        duplicate = make_patient(s, first_name="Kit", email=None, phone="0161 496 0000")
        ids = typed.id, keep.id, duplicate.id
    with db.write() as s:
        merge.merge_patients(s, world.owner, ids[1], ids[2], "Same person")
    with db.read() as s:
        marks = [s.get(Patient, pid).phone_landline for pid in ids[:2]]
        rows = enrolment.list_invitations(s, world.staff, search="Kit")
    assert marks == [True, True]
    assert [(r.patient_id, r.status) for r in rows] == [(ids[1], PortalStatus.OPTED_OUT)]


def test_a_change_made_for_a_reason_says_it_in_the_audit(db, world):
    """A service adding to a record on someone's word (the desk's action on an online
    request's flag) says where the change came from in the audit entry, on a new record and
    an edited one; before, update_patient refused `note` as a field it cannot edit."""
    with db.write() as s:
        patients.update_patient(
            s, world.staff, world.patient_id, date_of_birth=date(1985, 4, 13), note="From a letter"
        )
        new = patients.create_patient(
            s, world.staff, first_name="Kim", last_name="Lee", note="From online request #9"
        ).id
    with db.read() as s:
        updated = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient_updated")).one()
        created = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "patient_created", AuditEvent.entity_id == new
            )
        ).one()
    assert (updated.message, updated.details) == ("From a letter", {"date_of_birth": "changed"})
    assert created.message == "From online request #9"
