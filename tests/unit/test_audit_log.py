"""The audit log as an owner investigating reads it (core.kernel.audit.list_log): actions in
words, the patient and the account named, the appointment a fee belongs to found."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.kernel import accounts, audit
from core.kernel.errors import ValidationError
from core.kernel.money import ClinicFormat
from core.payments import desk
from core.payments.providers import DeskProvider
from core.scheduling import moves
from db.models import AppointmentStatus, Clinic, LedgerEntry, LedgerKind, Patient
from db.types import utcnow
from tests.factories import PASSWORD, make_visit
from tests.unit.test_policy import save


def _cancelled_with_a_fee_paid(db, world) -> tuple[int, int]:
    """Mrs Patel's visit, cancelled by the desk, and a late-cancellation fee paid for it."""
    with db.write() as s:
        s.get(Patient, world.patient_id).first_name = "Priya"
        s.get(Patient, world.patient_id).last_name = "Patel"
        start = utcnow() + timedelta(days=2)
        visit = make_visit(
            s,
            world,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        visit_id = visit.id
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, visit_id, reason="Patient phoned")
    with db.write() as s:
        fee = LedgerEntry(
            patient_id=world.patient_id,
            appointment_id=visit_id,
            kind=LedgerKind.LATE_CANCEL_FEE,
            amount_cents=2500,
        )
        s.add(fee)
        s.flush()
        desk.pay_fee(s, world.staff, fee.id, method="cash", provider=DeskProvider())
    return visit_id, fee.id


def test_the_log_reads_in_words_with_the_patient_and_the_appointment_named(db, world):
    """Before, the page showed 'cancel', 'appointment', '57' and a patient's number only; a
    fee paid showed 'fee_paid' on 'ledger_entry' with nothing leading to its appointment."""
    visit_id, fee_id = _cancelled_with_a_fee_paid(db, world)
    with db.read() as s:
        log = audit.list_log(s, world.owner, patient_id=world.patient_id)
    paid, cancelled = log[0], next(e for e in log if e.action == "cancel")
    assert (cancelled.who, cancelled.what) == ("Staff", "Appointment cancelled")
    assert cancelled.patient == f"Priya Patel (#{world.patient_id})"
    assert (cancelled.record, cancelled.appointment_id) == (f"Appointment #{visit_id}", visit_id)
    assert (paid.what, paid.patient) == ("Fee paid", f"Priya Patel (#{world.patient_id})")
    assert (paid.record, paid.appointment_id) == (f"Fee or points entry #{fee_id}", visit_id)


def test_an_account_is_named_and_an_action_without_words_is_never_a_bare_code(db, world):
    with db.write() as s:
        accounts.sign_in(s, "staff", "not the password")
        accounts.sign_in(s, "staff", PASSWORD)
        audit.record(s, world.owner, "provider.updated", "provider", 3)
    with db.read() as s:
        newest, signed_in, failed = audit.list_log(s, world.owner)[:3]
    assert (newest.what, newest.record) == ("Provider updated", "Provider #3")
    assert (signed_in.what, signed_in.record, signed_in.who) == (
        "Signed in",
        "Staff's account",
        "Staff",
    )
    assert (failed.what, failed.record, failed.who) == (
        "Sign-in failed: wrong password",
        "Staff's account",
        "System",
    )
    assert failed.patient == "" and failed.appointment_id is None


def test_codes_without_words_keep_their_acronyms():
    """An export of FHIR appointments read 'Fhir appointments #…', a text reply 'Sms reply …'."""
    assert audit.action_words("sms_reply_received") == "SMS reply received"
    assert audit.action_words("ical_exported") == "iCalendar exported"
    assert audit._record("fhir_appointments", None, None) == "FHIR appointments"
    assert audit._record("qr_code", 4, None) == "QR code #4"
    assert audit.action_words("smsish.thing") == "Smsish thing"  # a whole word only


def _another_visit_changed_and_wrong_passwords(db, world) -> None:
    with db.write() as s:
        other = make_visit(
            s,
            world,
            status=AppointmentStatus.SCHEDULED,
            start_at=utcnow() + timedelta(days=3),
            end_at=utcnow() + timedelta(days=3, minutes=30),
        ).id
        audit.record(s, world.owner, "update", "appointment", other, patient_id=world.patient_id)
        accounts.sign_in(s, "staff", "not the password")
        accounts.sign_in(s, "manager", "not the password")


def test_a_persons_filter_finds_what_was_done_to_their_account_too(db, world):
    """Before, filtering by Staff missed the wrong password typed as them (written by System):
    'who signed in as Fran?' found only Fran's own sign-ins."""
    _cancelled_with_a_fee_paid(db, world)
    _another_visit_changed_and_wrong_passwords(db, world)
    with db.read() as s:
        staff = audit.list_log(s, world.owner, user_id=world.staff.user_id)
    assert [e.what for e in staff] == [
        "Sign-in failed: wrong password",
        "Fee paid",
        "Appointment cancelled",
        "Account created",  # by System, for the world
    ]


def test_an_appointment_is_found_with_its_fees_and_a_patient_by_name(db, world):
    """Before, the log could be filtered neither by appointment nor by a patient's name."""
    visit_id, _ = _cancelled_with_a_fee_paid(db, world)
    _another_visit_changed_and_wrong_passwords(db, world)
    with db.read() as s:
        visit = audit.list_log(s, world.owner, appointment_id=visit_id)
        patel = audit.list_log(s, world.owner, patient_name="  PATEL priya ")
        nobody = audit.list_log(s, world.owner, patient_name="Morgan")
    assert [e.what for e in visit] == ["Fee paid", "Appointment cancelled"]
    assert {e.action for e in patel} >= {"cancel", "fee_paid", "update"} and nobody == []


def test_a_patient_name_without_letters_or_digits_is_refused_with_a_sentence(db, world):
    with db.read() as s, pytest.raises(ValidationError) as refused:
        audit.list_log(s, world.owner, patient_name="--")
    assert str(refused.value) == (
        "Type a patient's name (or part of it), like Patel, or their number, like #12."
    )


def test_amounts_read_as_money_in_their_clinics_currency():
    """Before, a fee paid read 'cents: 3000' and a policy 'late cancel fee cents: 3000'."""
    pounds = ClinicFormat(timezone="Europe/London", locale="en-GB", currency="GBP")
    paid = {"payment_id": 4, "method": "cash", "cents": 3000}
    assert audit.details_text(paid, pounds) == "payment id: 4; method: cash; amount: £30.00"
    saved = {
        "version": 2,
        "window_hours": 48,
        "late_cancel_fee_cents": 3000,
        "no_show_fee_cents": 0,
        "no_show_fee_basis": "fixed",
    }
    assert audit.details_text(saved, pounds) == (
        "version: 2; window hours: 48; late-cancellation fee: £30.00; no-show fee: £0.00; "
        "no-show fee basis: fixed"
    )
    prepaid = {"points": 500, "points_cents": 500, "price_cents": {"from": 6000, "to": 7000}}
    assert audit.details_text(prepaid, pounds) == (
        "points: 500; points worth: £5.00; price: (from: £60.00; to: £70.00)"
    )


def test_a_stored_code_reads_as_its_own_dictionary_names_it_and_only_a_code():
    """The audit log's screen names a stored code ('no_show', 'no_show_fee', 'refund_due') in
    the words its vocabulary gives it, in details (a nested record and a list too) and in a
    change; a plain word ('pending', which is an invitation's and a feedback's) and a value no
    dictionary knows stay as stored; two dictionaries naming one code apart are refused."""
    pounds = ClinicFormat(timezone="Europe/London", locale="en-GB", currency="GBP")
    words = audit.value_words(
        {"no_show": "no-show", "pending": "Feedback asked for"}, {"no_show_fee": "no-show fee"}
    )
    assert words == {"no_show": "no-show", "no_show_fee": "no-show fee"}
    details = {"kind": "no_show_fee", "to": {"status": "no_show"}, "of": ["no_show", "odd_code"]}
    details["via"] = "pending"
    assert audit.details_text(details, pounds, words) == (
        "kind: no-show fee; to: (status: no-show); of: no-show, odd_code; via: pending"
    )
    assert audit.details_text(details, pounds).startswith("kind: no_show_fee;")  # no words given
    assert audit.change_text("checked_in", "no_show", words) == "checked in → no-show"
    assert audit.change_text(None, "scheduled", words) == "scheduled"
    with pytest.raises(ValueError, match="no_show"):
        audit.value_words({"no_show": "no-show"}, {"no_show": "missed"})
    alike = audit.value_words({"no_show_fee": "no-show fee"}, {"no_show_fee": "No-show fee"})
    assert alike == {"no_show_fee": "no-show fee"}  # but for a capital: the first's words


def test_an_events_amounts_are_in_the_currency_of_its_appointments_or_policys_clinic(db, world):
    with db.write() as s:
        s.get(Clinic, world.clinic_id).currency = "EUR"
    visit_id, _ = _cancelled_with_a_fee_paid(db, world)
    with db.write() as s:
        save(s, world)
    with db.read() as s:
        log = audit.list_log(s, world.owner)
    currencies = {e.action: e.currency for e in log}
    assert currencies["policy_saved"] == currencies["fee_paid"] == currencies["cancel"] == "EUR"
    assert currencies["user_created"] is None
