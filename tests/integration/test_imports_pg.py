"""The import and interchange tests again, on a real PostgreSQL; two imports of one file at
once (a row another import saves while this one is between its look-up and its insert); and
the statements an import sends psycopg."""

from tests.unit.test_imports import *  # noqa: F403  # isort: skip
from tests.unit.test_interchange import *  # noqa: F403  # isort: skip

import threading
from datetime import UTC, datetime, timedelta
from time import monotonic, sleep

from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS
from sqlalchemy import event, func, select, text

from core.interchange import imports
from db.models import Appointment, AppointmentStatus, LedgerEntry, LedgerKind, Patient, Source

# what an import holds in memory is Python's, whichever the database: measured on SQLite only
# (under tracemalloc it took 21 s here, against 5 s there)
del test_a_large_file_is_imported_in_memory_of_one_chunk  # noqa: F821

RACE = imports.AppointmentMapping(
    columns={
        "appointment_ref": "ref",
        "patient_ref": "patient",
        "day": "day",
        "status": "status",
    },
    source="race",
    provider=imports.WITHOUT_PROVIDER,
)
RACE_FILE = b"ref,patient,day,status\nA1,P1,2025-03-03,attended\nA2,P2,2025-03-04,dna\n"


def _import_meanwhile(db, world, other_writes):
    """Run the import while another transaction has written (not yet committed) what
    `other_writes` adds: the import does not see it, and its insert waits on that row's key.
    Once the import waits, the other transaction commits. The import's outcome or error."""
    outcome: dict = {}

    def run():
        try:
            outcome["report"] = imports.import_appointments(
                db.write, world.owner, RACE_FILE, RACE, clinic_name="Race", timezone="UTC"
            )
        except Exception as error:  # noqa: BLE001 - the old code's duplicate-key error
            outcome["error"] = error

    with db.write() as other:
        other_writes(other)
        other.flush()
        worker = threading.Thread(target=run)
        worker.start()
        deadline = monotonic() + 20
        with db.engine.connect() as watcher:
            while monotonic() < deadline:
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar()
                watcher.rollback()  # pg_stat_activity is read once per transaction
                if waiting or not worker.is_alive():
                    break
                sleep(0.05)
        assert worker.is_alive(), outcome  # the import waits on the uncommitted row
    worker.join(30)
    return outcome


def test_a_patient_saved_meanwhile_by_another_import_is_not_a_duplicate_key_error(db, world):
    def patient(session):
        session.add(Patient(first_name="P", last_name="One", external_ref="race:P1"))

    outcome = _import_meanwhile(db, world, patient)
    assert "error" not in outcome, outcome["error"]
    report = outcome["report"]
    assert (report.created, report.patients_created) == (2, 1)
    with db.read() as session:
        owners = session.scalars(
            select(Patient.external_ref)
            .join(Appointment, Appointment.patient_id == Patient.id)
            .where(Appointment.external_ref.like("race:%"))
            .order_by(Appointment.external_ref)
        ).all()
    assert owners == ["race:P1", "race:P2"]
    with db.read() as session:  # the opening points of the patient this import created only
        opened = session.scalars(
            select(Patient.external_ref)
            .join(LedgerEntry, LedgerEntry.patient_id == Patient.id)
            .where(LedgerEntry.kind == LedgerKind.POINTS_OPENING)
            .where(Patient.external_ref.like("race:%"))
        ).all()
    assert opened == ["race:P2"]


def test_an_appointment_saved_meanwhile_counts_as_already_imported(db, world):
    with db.write() as session:
        session.add(Patient(first_name="P", last_name="One", external_ref="race:P1"))

    def appointment(session):
        found = session.scalar(select(Patient.id).where(Patient.external_ref == "race:P1"))
        moment = datetime(2025, 3, 3, 8, tzinfo=UTC)
        session.add(
            Appointment(
                clinic_id=world.clinic_id,
                patient_id=found,
                provider_id=world.provider_id,
                status=AppointmentStatus.COMPLETED,
                start_at=moment,
                end_at=moment + timedelta(minutes=15),
                source=Source.IMPORT,
                external_ref="race:A1",
            )
        )

    outcome = _import_meanwhile(db, world, appointment)
    assert "error" not in outcome, outcome["error"]
    assert (outcome["report"].created, outcome["report"].already_imported) == (1, 1)
    with db.read() as session:
        count = session.scalar(select(func.count()).where(Appointment.external_ref.like("race:%")))
    assert count == 2


def test_psycopg_reads_each_statement_of_an_import_once(db, world):
    """psycopg splits a statement for its placeholders once and remembers it, but only a
    statement of at most 4,096 characters and 50 parameters: a longer one it splits again on
    every execution: nearly half of an import's CPU on PostgreSQL went there (a chunk's
    patients inserted with RETURNING, and its patients and appointments looked up, each a
    statement with a thousand placeholders or more). Every statement of an import, first and
    again, stays within both, whatever the chunk's size; 120 rows are enough to see one that
    does not."""
    rows = "".join(f"A{i},P{i},2025-03-03,attended\n" for i in range(120))
    source = ("ref,patient,day,status\n" + rows).encode()
    sent: list[tuple[int, int, str]] = []

    def watch(_conn, _cursor, statement, parameters, _context, _executemany):
        each = parameters[0] if isinstance(parameters, list | tuple) else parameters
        sent.append((len(statement), len(each or ()), statement[:80]))

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        reports = [
            imports.import_appointments(
                db.write, world.owner, source, RACE, clinic_name="Race", timezone="UTC"
            )
            for _ in range(2)
        ]
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert [(r.created, r.already_imported, r.patients_created) for r in reports] == [
        (120, 0, 120),
        (0, 120, 0),
    ]
    long = [
        s for s in sent if s[0] > MAX_CACHED_STATEMENT_LENGTH or s[1] > MAX_CACHED_STATEMENT_PARAMS
    ]
    assert long == []
