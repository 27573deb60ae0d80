"""The audit log page: paging that starts again on new filters, a plain message when nothing
matches, and details shown as a reader takes them (clinic-local times, no 'None')."""

from __future__ import annotations

from sqlalchemy import select

from core.kernel import audit
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.kernel.money import ClinicFormat
from core.startup import open_database
from db.models import Appointment, AuditEvent, Clinic, Patient

APPLY = "FormSubmitter:audit_filters-Apply"


def write_events(
    url: str,
    count: int,
    details: dict | None = None,
    action: str = "note",
    entity: str = "setting",
    entity_id: int | None = None,
    patient_id: int | None = None,
) -> str:
    """Write `count` events; returns the name of the patient `patient_id`, if any."""
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        for _ in range(count):
            audit.record(
                session, SYSTEM, action, entity, entity_id, patient_id=patient_id, details=details
            )
        patient = session.get(Patient, patient_id) if patient_id else None
        name = f"{patient.first_name} {patient.last_name}" if patient else ""
    database.dispose()
    return name


def caption(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Page "))


def test_apply_after_older_starts_again_on_the_first_page_and_says_when_nothing_matches(
    app_as, app_db
):
    write_events(app_db, 250)  # more than one page of 200 whatever the demo holds
    at = app_as("owner", "app_pages/audit_log.py")
    at.button(key="audit_next").click().run()
    assert caption(at).startswith("Page 2 ·")
    at.text_input(key="audit_patient").input("#999999")  # no such patient
    at.button(key=APPLY).click().run()
    assert not at.exception and not at.error
    assert caption(at).startswith("Page 1 · 0 events")
    assert [i.value for i in at.info] == ["No events match these filters."]
    assert not at.dataframe  # no table without columns
    at.text_input(key="audit_patient").input("")
    at.button(key=APPLY).click().run()
    assert caption(at).startswith("Page 1 · 200 events") and len(at.dataframe[0].value) == 200


def test_details_show_times_in_the_clinics_zone_and_leave_empty_values_out(app_as, app_db):
    # as exports stored their filters until now: moments in UTC, a filter not set as 'None'
    stored = {
        "rows": 4,
        "filters": {
            "from": "2026-07-01 23:00:00+00:00",
            "to": "2026-08-01 23:00:00+00:00",
            "clinic_id": "None",
        },
    }
    write_events(app_db, 1, stored, action="export")
    at = app_as("owner", "app_pages/audit_log.py")
    table = at.dataframe[0].value
    details = table[table.Action == "Data exported"].iloc[0]["Details"]
    # the demo's clinics are in London (en-GB): 23:00 UTC on 1 July is midnight on 2 July, BST
    assert details == "rows: 4; filters: (from: Thu, 2 Jul 2026, 00:00; to: Sun, 2 Aug 2026, 00:00)"
    assert "None" not in details and "UTC" not in details and "+00:00" not in details


def test_an_event_reads_in_words_naming_the_patient_and_linking_the_appointment(app_as, app_db):
    """Before, the row read 'cancel', 'appointment', '57' and the patient's number alone, and
    the Action filter listed the same codes."""
    name = write_events(
        app_db, 1, action="cancel", entity="appointment", entity_id=57, patient_id=1
    )
    at = app_as("owner", "app_pages/audit_log.py")
    table = at.dataframe[0].value  # the owner's sign-in is newer
    row = table[table.Record == "Appointment #57"].iloc[0]
    assert (row.Who, row.Action, row.Record) == (
        "System",
        "Appointment cancelled",
        "Appointment #57",
    )
    assert row.Patient == f"{name} (#1)" and row.Open == "/appointment?id=57"
    assert "Appointment cancelled" in at.selectbox(key="audit_action").options
    assert "cancel" not in at.selectbox(key="audit_action").options


def test_filters_by_appointment_and_by_patient_name_and_a_name_without_letters_is_a_sentence(
    app_as, app_db
):
    """Before, there was no appointment filter and the patient filter took a number only."""
    name = write_events(
        app_db, 2, action="cancel", entity="appointment", entity_id=57, patient_id=1
    )
    write_events(app_db, 1, action="update", entity="appointment", entity_id=58, patient_id=2)
    at = app_as("owner", "app_pages/audit_log.py")
    assert at.number_input(key="audit_appointment").value is None  # any, not "0"
    at.number_input(key="audit_appointment").set_value(57)
    at.button(key=APPLY).click().run()
    assert set(at.dataframe[0].value.Record) == {"Appointment #57"}
    at.number_input(key="audit_appointment").set_value(None)
    at.text_input(key="audit_patient").input(name.split()[-1].lower())
    at.button(key=APPLY).click().run()
    assert f"{name} (#1)" in set(at.dataframe[0].value.Patient)
    at.text_input(key="audit_patient").input("--")
    at.button(key=APPLY).click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Type a patient's name (or part of it), like Patel, or their number, like #12."
    ]


def test_a_change_of_status_reads_in_words(app_as, app_db):
    """Before, the Change column showed stored codes: 'scheduled → checked_in'."""
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        audit.record(
            session,
            SYSTEM,
            "check_in",
            "appointment",
            58,
            from_status="scheduled",
            to_status="checked_in",
        )
    database.dispose()
    table = app_as("owner", "app_pages/audit_log.py").dataframe[0].value
    assert set(table[table.Record == "Appointment #58"].Change) == {"scheduled → checked-in"}


def test_a_stored_code_in_the_details_or_the_change_reads_as_the_screens_name_it(app_as, app_db):
    """Before, an event's details and change showed the app's stored codes: 'kind: no_show_fee;
    status: no_show; payment: fee_refund, refund_due' and 'checked in → no show'. They read as
    every other screen names them (STATUS_WORDS, FEE_WORDS, prepay's KIND_WORDS and
    STATUS_WORDS); the event is stored as recorded."""
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    details = {
        "kind": "no_show_fee",
        "status": "no_show",
        "payment": ["fee_refund", "refund_due"],
        "note": "pending",  # a plain word: as stored
    }
    with database.write() as session:
        audit.record(
            session,
            SYSTEM,
            "no_show",
            "appointment",
            59,
            from_status="checked_in",
            to_status="no_show",
            details=details,
        )
    with database.read() as session:
        stored = session.scalars(select(AuditEvent).where(AuditEvent.entity_id == 59)).one()
        assert stored.details == details and stored.to_status == "no_show"  # history as recorded
    database.dispose()
    table = app_as("owner", "app_pages/audit_log.py").dataframe[0].value
    row = table[table.Record == "Appointment #59"].iloc[0]
    assert row.Change == "checked-in → no-show"
    assert row.Details == (
        "kind: no-show fee; status: no-show; payment: fee given back, to give back; note: pending"
    )


def test_an_amount_reads_as_money(app_as, app_db):
    """Before, a fee paid read 'payment id: 3; method: cash; cents: 2500'."""
    write_events(app_db, 1, {"payment_id": 3, "method": "cash", "cents": 2500}, "fee_paid")
    at = app_as("owner", "app_pages/audit_log.py")
    table = at.dataframe[0].value
    paid = table[table.Action == "Fee paid"].iloc[0]
    assert paid.Details == "payment id: 3; method: cash; amount: £25.00"  # the demo's clinics: GBP


def test_an_amount_about_a_visit_is_in_its_clinics_currency(app_as, app_db):
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        clinic = session.scalars(select(Clinic).order_by(Clinic.id.desc())).first()
        clinic.currency, clinic.locale = "EUR", "de-DE"
        visit = session.scalar(select(Appointment.id).where(Appointment.clinic_id == clinic.id))
    database.dispose()
    write_events(app_db, 1, {"amount_cents": 2500}, "payment_recorded", "appointment", visit)
    at = app_as("owner", "app_pages/audit_log.py")
    table = at.dataframe[0].value
    assert table[table.Action == "Payment recorded"].iloc[0].Details == "amount: 25,00\xa0€"


def test_a_typed_value_shaped_like_a_date_is_shown_as_typed():
    """A room named '2026-02-30' (no such day) stays as typed; before, the audit log page
    failed with 'day is out of range for month' and showed no events at all."""
    fmt = ClinicFormat(timezone="Europe/London", locale="en-GB", currency="GBP")
    shown = audit.details_text({"name": "2026-02-30", "at": "2026-07-01 23:00:00+00:00"}, fmt)
    assert shown == "name: 2026-02-30; at: Thu, 2 Jul 2026, 00:00"
