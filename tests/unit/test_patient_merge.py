"""Merging a duplicate patient record into the record kept: everything that pointed at the
duplicate moves, the points ledgers keep adding up, consents stay withdrawn, the duplicate's
portal sessions end, both records are audited, and the duplicate is refused from then on."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from alembic import command
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from core.kernel.errors import Conflict, LinkInvalid, PermissionDenied, ValidationError
from core.messaging import notify
from core.patients import invitations, merge, records
from core.payments import points
from core.policy import cancellation as policy
from core.portal import patient_links, sign_in
from core.scheduling import booking
from core.waitlist import entries
from db import migrate
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Channel,
    DeliveryStatus,
    DocumentKind,
    FeedbackRequest,
    FormRequest,
    InvitationStatus,
    LedgerEntry,
    LedgerKind,
    Notification,
    Patient,
    PatientPortalTally,
    Payment,
    PortalInvitation,
    PortalSession,
    ServiceDocument,
    SlotOpening,
    SmsReply,
    SurveyResponse,
    WaitlistEntry,
    WaitlistOffer,
)
from db.types import utcnow
from tests.factories import make_patient

BASE = "https://desk.example"
REASON = "Same person: imported twice"


def _duplicate(db, **fields) -> int:
    values = dict(first_name="Alex", last_name="Morgan", email="alex.m@example.net", phone=None)
    with db.write() as s:
        return make_patient(s, **(values | fields)).id


def _appointment(s, world, patient_id, hours=72, status=AppointmentStatus.SCHEDULED) -> int:
    start = utcnow().replace(microsecond=0) + timedelta(hours=hours)
    a = Appointment(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        patient_id=patient_id,
        service_id=world.service_id,
        status=status,
        start_at=start,
        end_at=start + timedelta(minutes=30),
    )
    s.add(a)
    s.flush()
    return a.id


def _one_of_everything(db, world, patient_id: int) -> dict[str, int]:
    """A row in every table that refers to a patient, for `patient_id`."""
    with db.write() as s:
        visit = _appointment(s, world, patient_id, hours=-48, status=AppointmentStatus.COMPLETED)
        document = ServiceDocument(
            service_id=world.service_id, kind=DocumentKind.CONSENT, title="Consent"
        )
        opening = SlotOpening(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            start_at=utcnow() + timedelta(days=3),
            end_at=utcnow() + timedelta(days=3, minutes=30),
            reason="cancelled",
        )
        wish = WaitlistEntry(
            patient_id=patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            earliest=date.today(),
            latest=date.today() + timedelta(days=30),
        )
        feedback = FeedbackRequest(
            appointment_id=visit, patient_id=patient_id, sent_on=date.today()
        )
        s.add_all([document, opening, wish, feedback])
        s.flush()
        s.add_all(
            [
                Notification(
                    patient_id=patient_id,
                    appointment_id=visit,
                    channel=Channel.EMAIL,
                    template="thank_you",
                    to_address="alex.m@example.net",
                    body="Thank you",
                ),
                Payment(
                    appointment_id=visit,
                    patient_id=patient_id,
                    kind="fee",
                    method="cash",
                    status="paid",
                    amount_cents=2500,
                    currency="GBP",
                ),
                LedgerEntry(
                    patient_id=patient_id,
                    appointment_id=visit,
                    kind=LedgerKind.NO_SHOW_FEE,
                    amount_cents=2500,
                ),
                FormRequest(
                    appointment_id=visit,
                    document_id=document.id,
                    patient_id=patient_id,
                    kind=DocumentKind.CONSENT,
                    signed_name="Alex Morgan",
                ),
                WaitlistOffer(
                    opening_id=opening.id,
                    entry_id=wish.id,
                    patient_id=patient_id,
                    rank=1,
                    start_at=opening.start_at,
                ),
                PortalInvitation(
                    patient_id=patient_id,
                    email="alex.m@example.net",
                    expires_at=utcnow() - timedelta(days=1),
                ),
                PortalSession(token_hash=f"{patient_id:064d}", patient_id=patient_id),
                SmsReply(
                    from_number="+447700900999", body="C", patient_id=patient_id, outcome="inbox"
                ),
                SurveyResponse(
                    feedback_request_id=feedback.id,
                    appointment_id=visit,
                    clinic_id=world.clinic_id,
                    submitted_at=utcnow(),
                    nps=9,
                ),
            ]
        )
        earlier = make_patient(s, first_name="Old", last_name="Copy")
        earlier.merged_into_id, earlier.merged_at = patient_id, utcnow()
        s.flush()
        return {"visit": visit, "earlier": earlier.id}


def ledger_adds_up(s, patient_id: int) -> tuple[int, int]:
    entries_ = s.scalars(select(LedgerEntry).where(LedgerEntry.patient_id == patient_id))
    return s.get(Patient, patient_id).points_balance, sum(points.delta(e) for e in entries_)


def _merge(db, actor, keep, duplicate, **kwargs):
    with db.write() as s:
        return merge.merge_patients(s, actor, keep, duplicate, REASON, **kwargs)


# ---------------------------------------------------------------- nothing is left behind


def test_every_reference_to_patients_is_handled_by_the_merge():
    """A new foreign key to patients.id fails here until merge.HOW says what a merge does with
    it (moved, fees only, or kept where it was written)."""
    found = {(c.table.name, c.name) for c in merge.references()}
    assert found == set(merge.HOW), (
        f"not handled by core.patients.merge: {sorted(found - set(merge.HOW))}; "
        f"gone from the schema: {sorted(set(merge.HOW) - found)}"
    )


def test_the_merge_moves_every_row_that_pointed_at_the_duplicate(db, world):
    duplicate = _duplicate(db)
    made = _one_of_everything(db, world, duplicate)
    with db.read() as s:
        preview = merge.preview_merge(s, world.manager, world.patient_id, duplicate)
    moves = dict(preview.moves)
    assert moves["appointments"] == moves["messages"] == moves["payments"] == 1
    assert moves["fees"] == 1 and moves["survey responses (with their appointments)"] == 1
    assert moves["text replies"] == moves["portal sessions"] == moves["waitlist offers"] == 1
    assert moves["records merged into it before"] == 1
    result = _merge(db, world.manager, world.patient_id, duplicate)
    assert result.moved["appointments"] == 1 and result.moved["forms sent and answered"] == 1
    with db.read() as s:
        for column in merge.references():
            words, how = merge.HOW[(column.table.name, column.name)]
            left = s.scalar(
                select(func.count()).select_from(column.table).where(column == duplicate)
            )
            if how == merge.MOVE:
                assert left == 0, f"{column.table.name}.{column.name} still points at the duplicate"
            moved = s.scalar(
                select(func.count()).select_from(column.table).where(column == world.patient_id)
            )
            if how != merge.STAYS:
                assert moved >= 1, f"{column.table.name}.{column.name}: nothing moved"
        fees = s.scalars(select(LedgerEntry.kind).where(LedgerEntry.patient_id == duplicate))
        assert LedgerKind.NO_SHOW_FEE not in list(fees)  # the fee went with its appointment
        visit = s.get(Appointment, made["visit"])
        assert visit.patient_id == world.patient_id and visit.version == 2
        assert s.get(Patient, made["earlier"]).merged_into_id == world.patient_id
        kept, gone = s.get(Patient, world.patient_id), s.get(Patient, duplicate)
        assert gone.merged_into_id == world.patient_id and gone.merged_at is not None
        assert (kept.first_name, kept.email) == ("Alex", "alex@example.org")  # its own contact
    assert "moved 1 appointments" in result.message


def test_blanks_are_filled_from_the_duplicate_and_its_own_details_win(db, world):
    with db.write() as s:
        kept = make_patient(
            s, first_name="Sam", last_name="Lee", date_of_birth=None, email=None, phone="0161 1"
        ).id
    duplicate = _duplicate(
        db, first_name="Samuel", date_of_birth=date(1990, 1, 2), phone="0161 2", gender="male"
    )
    _merge(db, world.manager, kept, duplicate)
    with db.read() as s:
        p = s.get(Patient, kept)
        assert (p.first_name, p.last_name, p.phone) == ("Sam", "Lee", "0161 1")
        assert (p.date_of_birth, p.email, p.gender) == (
            date(1990, 1, 2),
            "alex.m@example.net",
            "male",
        )
        assert p.consent_email  # the address came from the duplicate, with its consent
        assert "alex m example net" in p.search_text  # found by the address it took


HOME = dict(address_line1="1 High Street", address_line2="Flat 2", city="York", postcode="YO1 7HH")


def _merged_from(s) -> AuditEvent:
    return s.scalar(select(AuditEvent).where(AuditEvent.action == "patient_merged_from"))


def test_a_kept_record_without_an_address_takes_the_duplicates_whole(db, world):
    """As for an email or a date of birth: the kept record's blank is filled, all five parts
    together (never one street with another's town), shown in the preview and audited as
    filled, without the address itself. A country alone is no address."""
    with db.write() as s:
        s.get(Patient, world.patient_id).country = "IE"
    duplicate = _duplicate(db, **HOME, country="GB")
    with db.read() as s:
        preview = merge.preview_merge(s, world.manager, world.patient_id, duplicate)
    assert "postal address" in preview.filled
    result = _merge(db, world.manager, world.patient_id, duplicate)
    assert "address" not in result.message
    with db.read() as s:
        p = s.get(Patient, world.patient_id)
        assert (p.address_line1, p.address_line2, p.city, p.postcode, p.country) == (
            *HOME.values(),
            "GB",
        )
        event = _merged_from(s)
    assert "address" in event.details["filled"] and "York" not in str(event.details)
    assert event.details["address_not_taken"] is False


def test_a_kept_address_stays_and_the_merge_says_the_duplicates_was_not_taken(db, world):
    with db.write() as s:
        kept = s.get(Patient, world.patient_id)
        kept.address_line1, kept.city, kept.country = "9 Mill Lane", "Leeds", "GB"
    duplicate = _duplicate(db, **HOME, country="GB")
    with db.read() as s:
        preview = merge.preview_merge(s, world.manager, world.patient_id, duplicate)
    assert "postal address" not in preview.filled
    note = (
        f"#{duplicate}'s address (1 High Street, Flat 2, York, YO1 7HH, GB) is not taken: "
        f"#{world.patient_id} keeps its own (9 Mill Lane, Leeds, GB)."
    )
    assert note in preview.notes
    same = _duplicate(db, address_line1="9 mill lane", city="LEEDS", country="GB")
    with db.read() as s:  # the same address typed otherwise: nothing is lost, nothing said
        alike = merge.preview_merge(s, world.manager, world.patient_id, same)
    assert not any("address" in line for line in alike.notes)
    result = _merge(db, world.manager, world.patient_id, duplicate)
    assert result.message.endswith(
        f" #{duplicate}'s address (1 High Street, Flat 2, York, YO1 7HH, GB) was not taken: "
        f"#{world.patient_id} keeps its own; change it on #{world.patient_id} if the other "
        "is the one in use."
    )
    with db.read() as s:
        p = s.get(Patient, world.patient_id)
        assert (p.address_line1, p.address_line2, p.city, p.postcode) == (
            "9 Mill Lane",
            None,
            "Leeds",
            None,
        )
        event = _merged_from(s)
    assert "address" not in event.details["filled"]
    assert event.details["address_not_taken"] is True and "York" not in str(event.details)


# ---------------------------------------------------------------- email and phone


def _kept(db, **fields) -> int:
    with db.write() as s:
        return make_patient(s, first_name="Sam", last_name="Lee", **fields).id


def _contacts(db, actor, keep, duplicate) -> dict[str, merge.ContactChoice]:
    with db.read() as s:
        return {c.field: c for c in merge.preview_merge(s, actor, keep, duplicate).contacts}


def test_the_preview_names_each_contact_detail_that_differs_and_what_the_merge_does(db, world):
    """The kept record has no email: the duplicate's is taken with its consent; both have a
    mobile: the kept one stays and the message after the merge names the other, so the desk
    can add it by hand. The audit says which were taken and which not, without the values."""
    kept = _kept(db, email=None, consent_email=False, phone="07700 900123")
    duplicate = _duplicate(db, email="Sam.Lee@Example.net", phone="07700 900456")
    contacts = _contacts(db, world.manager, kept, duplicate)
    email, phone = contacts["email"], contacts["phone"]
    assert (email.kept, email.other, email.taken) == ("", "Sam.Lee@Example.net", True)
    assert email.does == (
        f"#{kept} has none: it takes #{duplicate}'s Sam.Lee@Example.net, with it "
        f"#{duplicate}'s consent to email (given)."
    )
    assert (phone.kept, phone.other, phone.taken) == ("07700 900123", "07700 900456", False)
    assert phone.does == (
        f"#{kept} keeps 07700 900123; #{duplicate}'s 07700 900456 is not taken: add it by hand "
        "if it is theirs (the message after the merge names it)."
    )
    result = _merge(db, world.manager, kept, duplicate)
    assert (
        f"#{duplicate}'s email (sam.lee@example.net) was taken: #{kept} had none; with it "
        f"#{duplicate}'s consent to email (given)."
    ) in result.message
    assert (
        f"#{duplicate}'s phone (07700 900456) was not taken: #{kept} keeps its own "
        f"(07700 900123); change it on #{kept} if the other is the one in use."
    ) in result.message
    with db.read() as s:
        p = s.get(Patient, kept)
        assert (p.email, p.consent_email, p.phone) == ("sam.lee@example.net", True, "07700 900123")
        event = _merged_from(s)
    assert event.details["contacts_taken"] == ["email"]
    assert event.details["contacts_not_taken"] == {"phone": "the kept record's own stays"}
    assert "900456" not in str(event.details) and "sam.lee" not in str(event.details)


def test_a_taken_number_brings_its_consent_as_the_duplicate_gave_it(db, world):
    kept = _kept(db, phone=None, consent_sms=False)
    duplicate = _duplicate(db, email="alex@example.org", phone="07700 900456", consent_sms=False)
    contacts = _contacts(db, world.manager, kept, duplicate)
    assert list(contacts) == ["phone"]  # the same email: nothing to say about it
    assert contacts["phone"].does == (
        f"#{kept} has none: it takes #{duplicate}'s 07700 900456, with it #{duplicate}'s "
        "consent to text messages (not given)."
    )
    _merge(db, world.manager, kept, duplicate)
    with db.read() as s:
        p = s.get(Patient, kept)
        assert (p.phone, p.consent_sms, p.email, p.consent_email) == (
            "07700 900456",
            False,
            "alex@example.org",
            True,
        )


def test_the_same_address_or_number_written_otherwise_is_no_difference(db, world):
    kept = _kept(db, email="sam@example.net", phone="07700 900123")
    duplicate = _duplicate(db, email=" SAM@example.net", phone="+44 7700 900123")
    assert _contacts(db, world.manager, kept, duplicate) == {}
    result = _merge(db, world.manager, kept, duplicate)
    assert "taken" not in result.message


def test_a_duplicates_email_or_number_that_is_not_one_is_not_taken_and_the_merge_says_why(
    db, world
):
    """Checked as an edit checks what is typed (email-validator, phonenumbers): an import's
    broken value does not become the kept record's, nor does the consent that came with it."""
    kept = _kept(db, email=None, consent_email=False, phone=None, consent_sms=False)
    duplicate = _duplicate(db, email="sam at example", phone="12", consent_sms=True)
    contacts = _contacts(db, world.manager, kept, duplicate)
    assert not contacts["email"].taken and not contacts["phone"].taken
    said = f"#{duplicate}'s sam at example is not taken: 'sam at example' is not an email"
    assert contacts["email"].does.startswith(said)
    assert contacts["phone"].does.startswith(f"#{duplicate}'s 12 is not taken: '12' is not a")
    assert contacts["phone"].does.endswith(f"#{kept} has none: type the right one.")
    result = _merge(db, world.manager, kept, duplicate)
    assert f"#{duplicate}'s email (sam at example) was not taken: " in result.message
    assert f"#{kept} has none: type the right one on #{kept}." in result.message
    with db.read() as s:
        p = s.get(Patient, kept)
        assert (p.email, p.consent_email, p.phone, p.consent_sms) == (None, False, None, False)
        event = _merged_from(s)
    assert event.details["contacts_taken"] == []
    assert event.details["contacts_not_taken"] == {"email": "not valid", "phone": "not valid"}


def test_a_kept_landline_stays_and_the_merge_names_the_duplicates_mobile(db, world):
    kept = _kept(db, phone="0161 496 0000", consent_sms=False)
    duplicate = _duplicate(db, phone="07700 900456")
    phone = _contacts(db, world.manager, kept, duplicate)["phone"]
    assert not phone.taken
    assert phone.does.endswith(
        f"#{kept}'s is a landline, which texts do not reach: make it #{duplicate}'s mobile "
        "if texts should go there."
    )
    result = _merge(db, world.manager, kept, duplicate)
    assert f"#{duplicate}'s phone (07700 900456) was not taken" in result.message
    assert "is a landline, which texts do not reach" in result.message
    with db.read() as s:
        assert s.get(Patient, kept).phone == "0161 496 0000"


# ---------------------------------------------------------------- points


def test_a_fresh_duplicate_adds_no_second_opening_balance(db, world):
    """A second record (the public booking link, a known name with another email) opens with
    100 points like any new record; merged, those 100 are not added to the kept record: one
    person opens one balance. The duplicate's ledger closes its opening, so both add up."""
    duplicate = _duplicate(db)
    with db.read() as s:
        preview = merge.preview_merge(s, world.manager, world.patient_id, duplicate)
    opening = f"#{duplicate}'s opening balance of 100 points is not added: one person opens one"
    assert (preview.points, preview.opening_left) == (0, 100)
    assert any(line.startswith(opening) for line in preview.notes), preview.notes
    result = _merge(db, world.manager, world.patient_id, duplicate)
    assert result.points == 0 and f"{opening} balance." in result.message
    assert ", 0 points" not in result.message
    with db.read() as s:
        assert ledger_adds_up(s, world.patient_id) == (100, 100)
        assert ledger_adds_up(s, duplicate) == (0, 0)
        gone = points.points_history(s, world.manager, duplicate)
        events = s.scalars(select(AuditEvent).where(AuditEvent.action.like("patient_merged%")))
        details = [e.details for e in events]
    assert [(r.what, r.points) for r in gone] == [
        ("Opening balance", -100),
        ("Opening balance", 100),
    ]
    assert gone[0].note == f"Not carried into #{world.patient_id}: one person opens one balance"
    assert [(d["points"], d["opening_not_carried"]) for d in details] == [(0, 100), (0, 100)]


def test_what_the_duplicate_earned_beyond_its_opening_moves(db, world):
    duplicate = _duplicate(db)
    with db.write() as s:
        points.adjust_points(s, world.manager, duplicate, 50, "Survey on paper")
    with db.read() as s:
        preview = merge.preview_merge(s, world.manager, world.patient_id, duplicate)
    assert (preview.points, preview.opening_left) == (50, 100)
    result = _merge(db, world.manager, world.patient_id, duplicate)
    assert result.points == 50 and ", 50 points." in result.message
    with db.read() as s:
        assert ledger_adds_up(s, world.patient_id) == (150, 150)
        assert ledger_adds_up(s, duplicate) == (0, 0)
        kept = points.points_history(s, world.manager, world.patient_id)
        gone = points.points_history(s, world.manager, duplicate)
    assert (kept[0].points, kept[0].note) == (50, f"Merged from #{duplicate}")
    assert [(r.points, r.note) for r in gone[:2]] == [
        (-50, f"Merged into #{world.patient_id}"),
        (-100, f"Not carried into #{world.patient_id}: one person opens one balance"),
    ]
    assert [r.points for r in gone[2:]] == [50, 100]  # its history stays and still adds up


def test_points_the_duplicate_used_come_out_of_its_own_opening_not_the_kept_balance(db, world):
    """Spent or deducted on the duplicate, points count against what it earned first and then
    its opening: 100 opened, 30 used, 70 left of the opening, nothing earned: nothing moves,
    and the 30 are not taken from the kept record (its points are the person's own)."""
    duplicate = _duplicate(db)
    with db.write() as s:
        points.adjust_points(s, world.manager, duplicate, -30, "Used at the desk")
    with db.read() as s:
        preview = merge.preview_merge(s, world.manager, world.patient_id, duplicate)
    assert (preview.points, preview.opening_left) == (0, 70)
    note = next(n for n in preview.notes if "opening balance" in n)
    assert "30 of them were used there: they are not taken from" in note
    _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:
        assert ledger_adds_up(s, world.patient_id) == (100, 100)
        assert ledger_adds_up(s, duplicate) == (0, 0)
        gone = points.points_history(s, world.manager, duplicate)
    assert [r.points for r in gone] == [-70, -30, 100]


def test_points_given_back_on_the_duplicate_after_the_merge_reach_the_kept_record(db, world):
    """50 earned on the duplicate, 40 of them deducted: 10 move with the merge (its opening
    does not); the deduction waived afterwards gives the 40 back on the kept record, as one
    balance would have had them: 100 + 50 - 40 + 40."""
    duplicate = _duplicate(db)
    with db.write() as s:
        points.adjust_points(s, world.manager, duplicate, 50, "Survey on paper")
        visit = _appointment(s, world, duplicate, hours=-2, status=AppointmentStatus.NO_SHOW)
        deduction = LedgerEntry(
            patient_id=duplicate, appointment_id=visit, kind=LedgerKind.POINTS, points=40
        )
        s.add(deduction)
        s.get(Patient, duplicate).points_balance -= 40
        s.flush()
        deduction_id = deduction.id
    assert _merge(db, world.manager, world.patient_id, duplicate).points == 10
    with db.write() as s:
        policy.waive_fee(s, world.manager, deduction_id, "Phoned ahead")
    with db.read() as s:
        assert ledger_adds_up(s, duplicate) == (0, 0)
        assert ledger_adds_up(s, world.patient_id) == (150, 150)  # 100 + 10 moved + 40 back


# ---------------------------------------------------------------- consents


def test_a_consent_withdrawn_on_either_record_stays_withdrawn(db, world):
    duplicate = _duplicate(db, consent_email=False, consent_marketing=True, reminders_enabled=False)
    with db.write() as s:
        kept = s.get(Patient, world.patient_id)
        kept.consent_marketing = True
        queued = notify.queue_for_patient(s, kept, "portal_invitation", {"link": "x"})
        s.flush()
        email_id = next(n.id for n in queued.notifications if n.channel == Channel.EMAIL)
    with db.read() as s:
        preview = merge.preview_merge(s, world.manager, world.patient_id, duplicate)
    assert any(line.startswith("consent to email: on here, off") for line in preview.consents)
    _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:
        p = s.get(Patient, world.patient_id)
        # email withdrawn on the duplicate: off; the duplicate had no phone, so no say in texts
        assert (p.consent_email, p.consent_sms, p.consent_marketing) == (False, True, True)
        assert p.reminders_enabled is False
        email = s.get(Notification, email_id)
        assert email.status == DeliveryStatus.FAILED and "merged" in email.last_error


def test_a_consent_the_merge_withdraws_revokes_the_kept_records_invitation_by_it(db, world):
    """Email withdrawn on the duplicate withdraws it on the kept record (as an edit of the
    record would), but the kept record's pending invitation by email stayed pending and its
    link enrolled: now it is revoked as an edit revokes it, and the link no longer works."""
    with db.write() as s:
        sent = invitations.send_invitation(s, world.staff, world.patient_id, base_url=BASE)
    duplicate = _duplicate(db, consent_email=False)
    _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:
        inv = s.get(PortalInvitation, sent.invitation_id)
        assert (inv.status, inv.revoked_reason) == (
            InvitationStatus.REVOKED,
            "Consent to email withdrawn",
        )
        raw = sent.link.split("t=")[1]
        with pytest.raises(LinkInvalid):
            patient_links.enrollment_view(s, raw)


# ---------------------------------------------------------------- portal


def _enrol_and_sign_in(db, patient_id) -> str:
    with db.write() as s:
        s.get(Patient, patient_id).portal_enrolled_at = utcnow()
    with db.write() as s:
        return sign_in.start_session(s, sign_in.issue_sign_in(s, patient_id))


def test_the_duplicates_portal_sessions_end_and_the_kept_sign_in_stays(db, world):
    duplicate = _duplicate(db)
    kept_cookie = _enrol_and_sign_in(db, world.patient_id)
    gone_cookie = _enrol_and_sign_in(db, duplicate)
    with db.write() as s:
        unused = sign_in.issue_sign_in(s, duplicate)
    result = _merge(db, world.manager, world.patient_id, duplicate)
    assert result.sessions_ended == 1
    with db.write() as s:
        assert sign_in.resume(s, gone_cookie, 30) is None
        assert sign_in.resume(s, kept_cookie, 30) == world.patient_id
    with db.write() as s, pytest.raises(LinkInvalid):
        sign_in.start_session(s, unused)
    with db.write() as s:  # the duplicate's address signs in to nobody
        assert sign_in.request_sign_in(s, "alex.m@example.net", base_url=BASE) == sign_in.NEUTRAL
    with db.read() as s:
        sent = s.scalars(
            select(Notification.patient_id).where(Notification.template == "portal_sign_in")
        ).all()
        assert sent == []
        assert s.get(PortalSession, 1).patient_id in (world.patient_id, duplicate)
        assert (
            s.scalar(
                select(func.count())
                .select_from(PortalSession)
                .where(PortalSession.patient_id == duplicate)
            )
            == 0
        )


def test_an_enrolled_duplicate_enrols_the_kept_record(db, world):
    duplicate = _duplicate(db)
    _enrol_and_sign_in(db, duplicate)
    _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:
        assert s.get(Patient, world.patient_id).portal_enrolled_at is not None


# ---------------------------------------------------------------- audit


def test_the_merge_is_audited_on_both_records_with_the_counts(db, world):
    duplicate = _duplicate(db)
    _one_of_everything(db, world, duplicate)
    _merge(db, world.owner, world.patient_id, duplicate)
    with db.read() as s:
        events = {
            e.action: e
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("patient_merged%")))
        }
    into, from_ = events["patient_merged_into"], events["patient_merged_from"]
    assert (into.patient_id, from_.patient_id) == (duplicate, world.patient_id)
    assert into.reason == from_.reason == REASON and into.actor_label == "Owner"
    assert into.details["into"] == world.patient_id and from_.details["from"] == duplicate
    assert into.details["moved"]["appointments"] == 1 and into.details["points"] == 0
    assert into.details["opening_not_carried"] == 100


# ---------------------------------------------------------------- refusals


def test_refusals_say_what_to_do(db, world):
    duplicate = _duplicate(db)
    with pytest.raises(ValidationError, match="into itself"):
        _merge(db, world.manager, duplicate, duplicate)
    with pytest.raises(PermissionDenied, match="merge duplicate patient records"):
        _merge(db, world.staff, world.patient_id, duplicate)
    with pytest.raises(ValidationError, match="Say why"), db.write() as s:
        merge.merge_patients(s, world.manager, world.patient_id, duplicate, "  ")
    _merge(db, world.manager, world.patient_id, duplicate)
    with pytest.raises(Conflict, match=f"#{duplicate} was already merged into #{world.patient_id}"):
        _merge(db, world.manager, world.patient_id, duplicate)
    third = _duplicate(db, email="third@example.net")
    with pytest.raises(Conflict, match=f"merge into #{world.patient_id} instead"):
        _merge(db, world.manager, duplicate, third)
    with db.read() as s:
        assert s.get(Patient, third).merged_into_id is None


def test_overlapping_appointments_are_refused_unless_confirmed(db, world):
    duplicate = _duplicate(db)
    with db.write() as s:
        _appointment(s, world, world.patient_id, hours=50)
        theirs = _appointment(s, world, duplicate, hours=50)
    with db.read() as s:
        assert merge.preview_merge(s, world.manager, world.patient_id, duplicate).overlaps
    with pytest.raises(Conflict, match=f"#{theirs} at .* overlaps"):
        _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:
        assert s.get(Patient, duplicate).merged_into_id is None  # nothing changed
    _merge(db, world.manager, world.patient_id, duplicate, allow_overlap=True)
    with db.read() as s:
        assert s.get(Appointment, theirs).patient_id == world.patient_id


def test_a_merged_record_is_hidden_and_refused_by_booking_messages_and_invitations(db, world):
    duplicate = _duplicate(db, first_name="Alexandra", date_of_birth=date(1970, 1, 1))
    _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:
        assert [p.id for p in records.search_patients(s, world.staff, "Morgan")] == [
            world.patient_id
        ]
        gone = s.get(Patient, duplicate)
        assert notify.channels_for(gone)[0] == []
    where = f"merged into record #{world.patient_id}"
    with pytest.raises(ValidationError, match=where), db.write() as s:
        booking.book(
            s,
            world.staff,
            booking.InOffice(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=utcnow() + timedelta(days=5),
                patient_id=duplicate,
            ),
        )
    with pytest.raises(ValidationError, match=where), db.write() as s:
        invitations.send_invitation(s, world.staff, duplicate, base_url=BASE)
    with pytest.raises(ValidationError, match=where), db.write() as s:
        records.update_patient(s, world.staff, duplicate, phone="0200 000000")
    with pytest.raises(ValidationError, match=where), db.write() as s:
        entries.add_entry(
            s,
            world.staff,
            entries.Wish(
                patient_id=duplicate,
                clinic_id=world.clinic_id,
                service_id=world.service_id,
                earliest=date.today(),
                latest=date.today() + timedelta(days=7),
            ),
        )
    with db.write() as s:  # a new patient like the merged one is not its duplicate any more
        records.create_patient(
            s,
            world.staff,
            first_name="Alexandra",
            last_name="Morgan",
            date_of_birth=date(1970, 1, 1),
        )
    with db.read() as s:  # the public booking form finds the kept record by the old address
        assert patient_links._find_patient(s, "alex.m@example.net", None).id == world.patient_id


def test_two_merges_of_one_pair_at_once_do_one(db, world):
    """Each way round at the same moment: both rows are locked in one order, so one merge
    happens and the other is refused, never both (a chain of two records merged into each
    other)."""
    duplicate = _duplicate(db)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def run(keep: int, gone: int) -> None:
        try:
            with db.write() as s:
                barrier.wait(timeout=30)
                merge.merge_patients(s, world.manager, keep, gone, REASON)
            results.append("merged")
        except Conflict as error:
            results.append(str(error))

    threads = [
        threading.Thread(target=run, args=pair)
        for pair in ((world.patient_id, duplicate), (duplicate, world.patient_id))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results)[0] != "merged" and sorted(results).count("merged") == 1, results
    with db.read() as s:
        merged = s.scalars(select(Patient.id).where(Patient.merged_into_id.is_not(None))).all()
    assert len(merged) == 1


# ---------------------------------------------------------------- the migration


def _alembic(db, verb: str, revision: str) -> None:
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, verb)(config, revision)


def _tally(s) -> dict[int, int]:
    return dict(s.execute(select(PatientPortalTally.bucket, PatientPortalTally.patients)).all())


def test_the_migration_adds_the_merge_columns_and_takes_them_away(db, world):
    _alembic(db, "downgrade", "0006")
    columns = {c["name"] for c in inspect(db.engine).get_columns("patients")}
    assert "merged_into_id" not in columns and "merged_at" not in columns
    with db.read() as s:
        before = _tally(s)
    _alembic(db, "upgrade", "head")
    inspector = inspect(db.engine)
    assert {"merged_into_id", "merged_at"} <= {c["name"] for c in inspector.get_columns("patients")}
    assert any(
        fk["constrained_columns"] == ["merged_into_id"] and fk["referred_table"] == "patients"
        for fk in inspector.get_foreign_keys("patients")
    )
    duplicate = _duplicate(db)
    _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:  # the triggers on patients survived both ways
        after = _tally(s)
    assert sum(after.values()) == sum(before.values()) + 1
    with pytest.raises(IntegrityError), db.write() as s:  # the reference holds
        s.get(Patient, duplicate).merged_into_id = 999_999
    _alembic(db, "downgrade", "0006")  # and back again, with a merged record in it
    _alembic(db, "upgrade", "head")
    with db.read() as s:
        assert s.get(Patient, duplicate).merged_into_id is None


def test_the_portal_status_counts_leave_the_merged_duplicate_out(db, world):
    """The counts the invitations page opens on come from the tally the database keeps of
    every patient row; a merged duplicate is no patient of its own and is not counted."""
    from core.patients import enrolment

    duplicate = _duplicate(db, email="dup@example.org", consent_email=True)

    def counted():
        with db.read() as s:
            counts = enrolment.status_counts(s, world.staff)
            expected = dict.fromkeys(counts, 0)
            for p in s.scalars(select(Patient).where(Patient.merged_into_id.is_(None))):
                expected[invitations.state_of(s, p).status] += 1
        return counts, expected

    before, _ = counted()
    _merge(db, world.manager, world.patient_id, duplicate)
    after, expected = counted()
    assert after == expected
    assert sum(after.values()) == sum(before.values()) - 1


def test_the_kept_records_history_shows_what_happened_to_the_duplicate_too(db, world):
    """The audit log filtered by the kept patient lists the duplicate's own events (its
    details changed before the merge), the merge on both sides, and the events of a record merged
    into the duplicate before; each event still names the record it was written about (nothing
    rewritten). Before, the duplicate's events were found only under its own number."""
    from core.kernel import audit

    older, duplicate = _duplicate(db, email="a.morgan@example.org"), _duplicate(db)
    with db.write() as s:
        for patient_id in (older, duplicate):
            audit.record(
                s, world.owner, "patient_updated", "patient", patient_id, patient_id=patient_id
            )
    _merge(db, world.owner, duplicate, older)
    _merge(db, world.owner, world.patient_id, duplicate)
    with db.read() as s:
        kept = audit.list_events(s, world.owner, patient_id=world.patient_id)
        only_duplicate = audit.list_events(s, world.owner, patient_id=duplicate)
    about = sorted((e.action, e.patient_id) for e in kept)
    assert about == sorted(
        [
            ("patient_updated", older),
            ("patient_updated", duplicate),
            ("patient_merged_into", older),
            ("patient_merged_from", duplicate),
            ("patient_merged_into", duplicate),
            ("patient_merged_from", world.patient_id),
        ]
    )
    assert ("patient_merged_into", duplicate) in {(e.action, e.patient_id) for e in only_duplicate}
    assert world.patient_id not in {e.patient_id for e in only_duplicate}


def test_both_records_waiting_for_the_same_service_wait_once_after_the_merge(db, world):
    """Each record was on the waitlist for the consultation (days apart): merged, the patient
    would wait twice for it (two rows in the portal and on the staff list; adding a second
    entry is refused). The younger twin is withdrawn and the merge's audit names it; the
    duplicate's wait for another service stays."""
    from db.models import Service, WaitlistEntry, WaitlistStatus

    duplicate = _duplicate(db)
    first, last = date.today() + timedelta(days=1), date.today() + timedelta(days=14)
    with db.write() as s:
        peel = Service(name="Peel", duration_minutes=30)
        s.add(peel)
        s.flush()
        peel = peel.id

    def wait(patient_id, service_id, latest=last):
        wish = entries.Wish(
            patient_id=patient_id, clinic_id=world.clinic_id, service_id=service_id,
            earliest=first, latest=latest,
        )  # fmt: skip
        with db.write() as s:
            return entries.add_entry(s, world.staff, wish).id

    kept = wait(world.patient_id, world.service_id)
    twin = wait(duplicate, world.service_id, latest=last + timedelta(days=7))
    other = wait(duplicate, peel)
    _merge(db, world.manager, world.patient_id, duplicate)
    with db.read() as s:
        status = {e.id: e.status for e in s.scalars(select(WaitlistEntry))}
        closed = {e.id: e.closed_at for e in s.scalars(select(WaitlistEntry))}
        merged_at = s.get(Patient, duplicate).merged_at
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "patient_merged_into"))
    assert closed[twin] == merged_at  # its waiting days stop at the merge (the page counts them)
    assert closed[kept] is None and closed[other] is None
    assert status == {
        kept: WaitlistStatus.WAITING,
        twin: WaitlistStatus.WITHDRAWN,
        other: WaitlistStatus.WAITING,
    }
    assert event.details["waitlist_twins_withdrawn"] == [twin]
