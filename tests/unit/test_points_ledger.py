"""A patient's points ledger adds up to their balance from the first day: every way a patient
is created opens the balance with an entry, and the migration backfills the missing ones; every
writer of the balance keeps it adding up, also two at once (PostgreSQL's twin:
tests/integration/test_points_ledger_pg.py)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from core.interchange import imports
from core.interchange import standards as interchange
from core.kernel import audit
from core.kernel.authz import patient_actor
from core.kernel.errors import NotFound, PermissionDenied
from core.patients import records
from core.payments import points, prepay
from core.payments.providers import DeskProvider
from core.policy import cancellation as policy
from core.portal import home, patient_links
from core.scheduling import moves, visits
from db import migrate
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    LedgerEntry,
    LedgerKind,
    Patient,
)
from db.types import utcnow
from tests.factories import make_visit

OPENING = "Opening balance"


def ledger_sums(session) -> dict[int, tuple[int, int]]:
    """patient id -> (balance, what the ledger entries add up to)."""
    # the two columns only: read on older schemas too (the migration test)
    balances = session.execute(select(Patient.id, Patient.points_balance))
    sums = {pid: [balance, 0] for pid, balance in balances}
    for entry in session.scalars(select(LedgerEntry)):
        sums[entry.patient_id][1] += points.delta(entry)
    return {pid: tuple(pair) for pid, pair in sums.items()}


def assert_adds_up(db) -> dict[int, tuple[int, int]]:
    with db.read() as s:
        sums = ledger_sums(s)
    wrong = {pid: pair for pid, pair in sums.items() if pair[0] != pair[1]}
    first = dict(list(wrong.items())[:8])
    assert not wrong, f"{len(wrong)} patients' (balance, ledger) disagree, such as {first}"
    return sums


def openings(session, patient_id: int) -> list[LedgerEntry]:
    return session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.patient_id == patient_id, LedgerEntry.kind == LedgerKind.POINTS_OPENING
        )
    ).all()


def test_a_patient_added_by_staff_opens_with_their_points_in_the_ledger(db, world):
    with db.write() as s:
        patient_id = records.create_patient(
            s, world.staff, first_name="Nia", last_name="Shah", email="nia@example.org"
        ).id
    assert assert_adds_up(db)[patient_id] == (points.OPENING_POINTS, points.OPENING_POINTS)
    with db.read() as s:
        patient = s.get(Patient, patient_id)
        (entry,) = openings(s, patient_id)
        assert (entry.points, entry.created_at) == (100, patient.created_at)
        history = points.points_history(s, world.staff, patient_id)
        assert [(r.what, r.points, r.appointment_id) for r in history] == [(OPENING, 100, None)]
        with pytest.raises(NotFound):
            points.points_history(s, world.staff, patient_id + 99)


def test_a_new_contact_from_the_public_booking_form_opens_with_their_points(db, world):
    with db.write() as s:
        link = patient_links.issue_booking_link(
            s, world.manager, world.clinic_id, base_url="https://desk.example"
        )
    raw = parse_qs(urlparse(link).query)["t"][0]
    with db.write() as s:
        patient_links.submit_booking(
            s,
            raw,
            service_id=world.service_id,
            requested_day=date.today() + timedelta(days=4),
            time_of_day="morning",
            first_name="Robin",
            last_name="Hart",
            email="robin@example.org",
            consent_email=True,
        )
    with db.read() as s:
        robin = s.scalars(select(Patient).where(Patient.email == "robin@example.org")).one()
        assert [e.points for e in openings(s, robin.id)] == [100]
    assert assert_adds_up(db)[robin.id] == (100, 100)


def test_patients_imported_from_a_csv_file_open_with_their_points(db, world, tmp_path):
    with open(imports.NOSHOW_FILE, newline="") as handle:
        head = [line for _, line in zip(range(41), handle, strict=False)]
    path = tmp_path / "noshow.csv"
    path.write_text("".join(head))
    report = imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)
    finished = utcnow()
    assert report.patients_created > 10
    sums = assert_adds_up(db)
    with db.read() as s:
        imported = s.scalars(select(Patient.id).where(Patient.external_ref.is_not(None))).all()
        assert len(imported) == report.patients_created
        assert all([e.points for e in openings(s, pid)] == [100] for pid in imported)
        # whole entries (no fee, visit, policy or waiver), the chunk's dated together, each
        # at its patient's creation as a single patient's is (save_patients gives both one time)
        rows = s.execute(
            select(LedgerEntry, Patient.created_at)
            .join(Patient, Patient.id == LedgerEntry.patient_id)
            .where(Patient.external_ref.is_not(None))
        ).all()
        assert {
            (e.amount_cents, e.appointment_id, e.policy_id, e.waived_at, e.waived_by_user_id)
            for e, _ in rows
        } == {(0, None, None, None, None)}
        assert {e.waive_reason for e, _ in rows} == {None}
        assert len({e.created_at for e, _ in rows}) == 1  # the file's 40 rows: one chunk
        assert all(e.created_at == created <= finished for e, created in rows)
    assert {sums[pid] for pid in imported} == {(100, 100)}
    imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)  # again
    with db.read() as s:
        assert len(openings(s, imported[0])) == 1  # nobody is opened twice
    assert_adds_up(db)


def test_a_patient_imported_from_fhir_opens_with_their_points(db, world):
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Okafor"}]}
    appointment = {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "start": "2025-03-30T09:00:00Z",
        "end": "2025-03-30T09:30:00Z",
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/p1"}}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient}, {"resource": appointment}],
    }
    with db.write() as s:
        interchange.import_fhir(s, world.owner, [json.dumps(bundle)])
    with db.read() as s:
        okafor = s.scalars(select(Patient).where(Patient.last_name == "Okafor")).one()
        assert [e.points for e in openings(s, okafor.id)] == [100]
    assert assert_adds_up(db)[okafor.id] == (100, 100)


def test_the_portal_and_staff_show_the_opening_entry_and_it_is_no_fee(db, world):
    with db.write() as s:
        s.get(Patient, world.patient_id).portal_enrolled_at = datetime.now(UTC)
        points.adjust_points(s, world.manager, world.patient_id, 5, "Goodwill")
    with db.read() as s:
        portal = [(r.what, r.points) for r in home.home(s, world.patient_id).ledger]
        staff = [
            (r.what, r.points, r.note)
            for r in points.points_history(s, world.staff, world.patient_id)
        ]
        assert policy.list_fees(s, world.manager, patient_id=world.patient_id) == []
        (entry,) = openings(s, world.patient_id)
    assert portal == [("Adjusted by the practice", 5), (OPENING, 100)]  # newest first
    assert staff == [("Adjusted by the practice", 5, "Goodwill"), (OPENING, 100, "")]
    with db.write() as s, pytest.raises(NotFound, match=f"no fee #{entry.id}"):
        policy.waive_fee(s, world.manager, entry.id, "not a fee")
    assert assert_adds_up(db)[world.patient_id] == (105, 105)


def test_only_staff_read_a_patients_points_history_through_the_staff_read(db, world):
    with db.read() as s, pytest.raises(PermissionDenied):
        points.points_history(s, patient_actor("Alex"), world.patient_id)


# ---------------------------------------------------------------- the backfill (migration 0006)


def _alembic(db, verb: str, revision: str) -> None:
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, verb)(config, revision)


def test_the_migration_backfills_an_opening_entry_where_the_ledger_falls_short(db, world):
    _alembic(db, "downgrade", "0005")  # as the older code left things: balances without entries
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    with db.write() as s:

        def patient(name: str, balance: int, *entries: tuple[LedgerKind, int, bool]) -> int:
            # a Core insert names only the columns given or defaulted: the ORM's would name
            # the columns later migrations add, which the old schema does not have
            values = dict(first_name=name, last_name="Old", points_balance=balance)
            pid = s.execute(
                insert(Patient.__table__).values(**values, created_at=created)
            ).inserted_primary_key[0]
            for kind, pts, waived in entries:
                s.add(
                    LedgerEntry(
                        patient_id=pid,
                        kind=kind,
                        points=pts,
                        waived_at=created if waived else None,
                        created_at=created + timedelta(days=3),
                    )
                )
            return pid

        ids = {
            "untouched": patient("Ann", 100),
            "deducted": patient("Ben", 70, (LedgerKind.POINTS, 30, False)),
            "waived and earned": patient(
                "Cy",
                110,
                (LedgerKind.POINTS, 20, True),
                (LedgerKind.POINTS_EARNED, 10, False),
                (LedgerKind.LATE_CANCEL_FEE, 0, False),
            ),
            "clamped at zero": patient("Di", 0, (LedgerKind.POINTS, 60, False)),
            "spent and given back": patient(
                "Ed",
                90,
                (LedgerKind.POINTS_SPENT, 40, False),
                (LedgerKind.POINTS_REFUNDED, 30, False),
            ),
            "nothing ever": patient("Flo", 0),
            "already adds up": patient("Gus", 5, (LedgerKind.POINTS_ADJUSTED, 5, False)),
            "more in the ledger": patient("Hal", 10, (LedgerKind.POINTS_EARNED, 30, False)),
        }
    with db.read() as s:  # the defect: the ledgers do not add up
        assert ledger_sums(s)[ids["untouched"]] == (100, 0)
        assert ledger_sums(s)[world.patient_id] == (100, 0)  # its opening went with 0004
    _alembic(db, "upgrade", "head")
    assert_adds_up(db)
    with db.read() as s:
        backfilled = {name: [e.points for e in openings(s, pid)] for name, pid in ids.items()}
        assert backfilled == {
            "untouched": [100],
            "deducted": [100],
            "waived and earned": [100],
            "clamped at zero": [60],
            "spent and given back": [100],
            "nothing ever": [],
            "already adds up": [],
            "more in the ledger": [-20],
        }
        (entry,) = openings(s, ids["deducted"])
        assert entry.created_at == created  # dated when the patient was created
        assert [e.points for e in openings(s, world.patient_id)] == [100]
        history = points.points_history(s, world.staff, ids["deducted"])
        assert [(r.what, r.points) for r in history] == [
            ("Deducted by the cancellation policy", -30),
            (OPENING, 100),
        ]
    _alembic(db, "downgrade", "0005")  # and back: the older kinds only
    with db.read() as s:
        assert s.scalars(select(LedgerEntry.kind)).all().count(LedgerKind.POINTS_OPENING) == 0
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(LedgerEntry(patient_id=world.patient_id, kind=LedgerKind.POINTS_OPENING, points=1))
    _alembic(db, "upgrade", "head")
    assert_adds_up(db)


def test_the_migration_corrects_old_deductions_that_recorded_more_than_they_took(db, world):
    """Before 0006 the policy's deduction stopped the balance at zero but recorded all of it,
    and 'Add points' wrote no entry: the backfill replays each history from the 100 every
    patient opened with, so the opening is 100 and a waiver gives back what was taken."""
    _alembic(db, "downgrade", "0005")
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

    def day(n: int) -> datetime:
        return created + timedelta(days=n)

    with db.write() as s:

        def patient(name: str, balance: int) -> int:
            values = dict(first_name=name, last_name="Old", points_balance=balance)
            return s.execute(
                insert(Patient.__table__).values(**values, created_at=created)
            ).inserted_primary_key[0]

        def deduction(pid: int, at: datetime, waived: datetime | None = None) -> int:
            # as the old policy wrote it: the full 60, whatever the balance had left
            entry = LedgerEntry(
                patient_id=pid, kind=LedgerKind.POINTS, points=60, created_at=at, waived_at=waived
            )
            s.add(entry)
            s.flush()
            return entry.id

        def event(pid: int, entity_id: int, action: str, at: datetime, **details) -> None:
            entity = "patient" if action == "points_added" else "ledger_entry"
            values = dict(actor_label="Sam", action=action, entity=entity, entity_id=entity_id)
            s.execute(
                insert(AuditEvent.__table__).values(
                    **values, patient_id=pid, at=at, reason="Goodwill", details=details
                )
            )

        # the reviewer's case: 100, then 60 and 60, the second taking the 40 left
        twice = patient("Ivy", 0)
        deduction(twice, day(1))
        twice_second = deduction(twice, day(2))
        # the old waiver gave back the 60 recorded where 40 had been taken
        over = patient("Jo", 60)
        deduction(over, day(1))
        over_waived = deduction(over, day(2), waived=day(3))
        event(over, over_waived, "fee_waived", day(3), points=60, points_given_back=60)
        # an undone no-show gave back what was taken (its waiver's audit event says 40)
        undone = patient("Kit", 40)
        deduction(undone, day(1))
        undone_waived = deduction(undone, day(2), waived=day(3))
        event(undone, undone_waived, "fee_waived", day(3), points=60, points_given_back=40)
        # 'Add points' changed the balance with an audit event only, between deductions
        added = patient("Lou", 0)
        deduction(added, day(1))
        added_second = deduction(added, day(2))
        event(added, added, "points_added", day(3), points=50, balance_before=0)
        added_last = deduction(added, day(4))

    _alembic(db, "upgrade", "head")
    assert_adds_up(db)

    def ledger(pid: int) -> list[tuple[str, int, datetime, str]]:
        with db.read() as s:
            rows = s.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.patient_id == pid)
                .order_by(LedgerEntry.created_at, LedgerEntry.id)
            )
            return [(e.kind.value, e.points, e.created_at, e.waive_reason or "") for e in rows]

    opening = ("points_opening", 100, created, "")
    assert ledger(twice) == [opening, ("points", 60, day(1), ""), ("points", 40, day(2), "")]
    assert ledger(over) == [
        opening,
        ("points", 60, day(1), ""),
        ("points", 40, day(2), ""),
        (
            "points_adjusted",
            20,
            day(3),
            f"The waiver of deduction #{over_waived} gave back 60 points; "
            "the deduction had taken 40",
        ),
    ]
    assert ledger(undone) == [opening, ("points", 60, day(1), ""), ("points", 40, day(2), "")]
    assert ledger(added) == [
        opening,
        ("points", 60, day(1), ""),
        ("points", 40, day(2), ""),
        ("points_adjusted", 50, day(3), "Goodwill"),
        ("points", 50, day(4), ""),
    ]
    with db.read() as s:  # what each deduction recorded is kept in the audit trail
        corrected = s.execute(
            select(AuditEvent.entity_id, AuditEvent.details, AuditEvent.patient_id).where(
                AuditEvent.action == "points_deduction_corrected"
            )
        ).all()
        assert sorted((e, d["recorded"], d["taken"], p) for e, d, p in corrected) == [
            (twice_second, 60, 40, twice),
            (over_waived, 60, 40, over),
            (undone_waived, 60, 40, undone),
            (added_second, 60, 40, added),
            (added_last, 60, 50, added),
        ]
        history = points.points_history(s, world.staff, twice)
        assert [(r.what, r.points) for r in history] == [
            ("Deducted by the cancellation policy", -40),
            ("Deducted by the cancellation policy", -60),
            (OPENING, 100),
        ]

    with db.write() as s:  # a waiver now gives back what was taken, never more
        policy.waive_fee(s, world.manager, twice_second, "goodwill")
        policy.waive_fee(s, world.manager, added_last, "goodwill")
    with db.read() as s:
        assert s.get(Patient, twice).points_balance == 40
        assert s.get(Patient, added).points_balance == 50
    assert_adds_up(db)

    _alembic(db, "downgrade", "0005")  # the ledger as the older code left it
    with db.read() as s:
        assert ledger(over) == [
            ("points", 60, day(1), ""),
            ("points", 60, day(2), ""),
        ]
        assert [e[1] for e in ledger(added)] == [60, 60, 60]
        assert (
            s.scalars(
                select(AuditEvent.id).where(
                    AuditEvent.action.in_(("points_deduction_corrected", "points_entry_backfilled"))
                )
            ).all()
            == []
        )
        (waived,) = ledger(twice)[1:]
        assert waived[:2] == ("points", 60)
    _alembic(db, "upgrade", "head")  # and up again: the same ledgers, nothing twice
    assert_adds_up(db)
    assert ledger(over)[-1][:2] == ("points_adjusted", 20)
    assert len(ledger(over)) == 4
    assert [e[:2] for e in ledger(added)] == [
        ("points_opening", 100),
        ("points", 60),
        ("points", 40),
        ("points_adjusted", 50),
        ("points", 50),
    ]
    assert [e[:2] for e in ledger(twice)] == [
        ("points_opening", 100),
        ("points", 60),
        ("points", 40),
    ]


# ---------------------------------------------------------------- every writer, and two at once


def _visit(db, world, hours_from_now: float, status=AppointmentStatus.SCHEDULED) -> int:
    """A 30-minute visit of the world's patient starting `hours_from_now` (negative: started)."""
    start = utcnow() + timedelta(hours=hours_from_now)
    with db.write() as s:
        visit = make_visit(
            s,
            world,
            status=status,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            completed_at=start + timedelta(minutes=30)
            if status == AppointmentStatus.COMPLETED
            else None,
        )
        return visit.id


def _no_show_policy(db, world, deducted: int = 30) -> None:
    with db.write() as s:
        s.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                no_show_fee_cents=2500,
                points_deducted=deducted,
                policy_text="24 hours' notice.",
            )
        )


def _balance_and_ledger(db, world) -> tuple[int, int]:
    return assert_adds_up(db)[world.patient_id]


def test_every_writer_of_the_balance_leaves_the_ledger_adding_up(db, world):
    """Each way the balance changes, one after the other: after each, the balance is what the
    change made it and the ledger's entries add up to it."""
    _no_show_policy(db, world, deducted=30)
    with db.write() as s:  # a manager adds, then removes
        points.adjust_points(s, world.manager, world.patient_id, 500, "Loyalty")
    assert _balance_and_ledger(db, world) == (600, 600)
    with db.write() as s:
        points.adjust_points(s, world.manager, world.patient_id, -50, "Entered twice")
    assert _balance_and_ledger(db, world) == (550, 550)

    prepaid = _visit(db, world, hours_from_now=72)  # £60.00, 600 points at 10p
    with db.write() as s:  # paid with points ...
        prepay.prepay(
            s,
            world.patient_id,
            prepaid,
            points=200,
            card=False,
            provider=DeskProvider(),
            return_url="x",
        )
    assert _balance_and_ledger(db, world) == (350, 350)
    with db.write() as s:  # ... and given back when the practice cancels
        moves.cancel_appointment(s, world.staff, prepaid, reason="Provider ill")
    assert _balance_and_ledger(db, world) == (550, 550)

    missed = _visit(db, world, hours_from_now=-1)
    with db.write() as s:  # the policy deducts for a no-show ...
        visits.mark_no_show(s, world.manager, missed)
    assert _balance_and_ledger(db, world) == (520, 520)
    with db.write() as s:  # ... and gives it back when the no-show is undone
        visits.undo_no_show(s, world.manager, missed)
    assert _balance_and_ledger(db, world) == (550, 550)

    again = _visit(db, world, hours_from_now=-3)
    with db.write() as s:
        visits.mark_no_show(s, world.manager, again)
        fee, deduction = policy.no_show_charges(s, again)  # in the order they were charged
        assert (fee.kind, deduction.kind) == (LedgerKind.NO_SHOW_FEE, LedgerKind.POINTS)
    assert _balance_and_ledger(db, world) == (520, 520)
    with db.write() as s:  # or when a manager waives it
        policy.waive_fee(s, world.manager, deduction.id, "Phoned ahead")
    assert _balance_and_ledger(db, world) == (550, 550)

    answered = _visit(db, world, hours_from_now=-30, status=AppointmentStatus.COMPLETED)
    with db.write() as s:  # an answered survey earns points
        assert points.award_survey_points(s, s.get(Appointment, answered)) == 10
    assert _balance_and_ledger(db, world) == (560, 560)


def _writer(db, world, name: str) -> tuple[object, int]:
    """One writer of the balance, ready to run in a transaction of its own, and the change it
    makes: a manager's adjustment, the policy's no-show deduction or a survey's points."""
    if name == "no-show deduction":
        _no_show_policy(db, world, deducted=30)
        missed = _visit(db, world, hours_from_now=-1)
        return (lambda s: visits.mark_no_show(s, world.manager, missed)), -30
    if name == "survey points":
        answered = _visit(db, world, hours_from_now=-30, status=AppointmentStatus.COMPLETED)
        return (lambda s: points.award_survey_points(s, s.get(Appointment, answered))), 10
    return (lambda s: points.adjust_points(s, world.owner, world.patient_id, 7, "Birthday")), 7


@pytest.mark.parametrize("other", ["no-show deduction", "survey points", "manager's adjustment"])
def test_two_changes_of_a_balance_at_once_both_count(db, world, monkeypatch, other):
    """A manager adds points while another change runs: the policy deducts for a no-show, a
    survey earns points, or another manager adjusts too. Both are held together until both
    would write; both count, and the balance is its ledger's sum. Before, on PostgreSQL both
    read the balance before either wrote, and the second wrote over the first: the ledger
    listed both changes and the balance had only one."""
    import threading

    change, by = _writer(db, world, other)
    barrier, failures = threading.Barrier(2), []
    record, waited = audit.record, threading.local()

    def record_once_both_have_read(*args, **kwargs):
        # each writer's first audit record comes after its read of the balance: both are here
        # at once, unless the second is held at the patient's row until the first commits
        if not getattr(waited, "done", False):
            waited.done = True
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=2)
        return record(*args, **kwargs)

    monkeypatch.setattr(audit, "record", record_once_both_have_read)

    def run(write):
        try:
            with db.write() as s:
                write(s)
        except Exception as error:  # reported below, with the balance
            failures.append(repr(error))

    def adds(s):
        points.adjust_points(s, world.manager, world.patient_id, 50, "Goodwill")

    threads = [threading.Thread(target=run, args=(w,)) for w in (adds, change)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    assert _balance_and_ledger(db, world) == (100 + 50 + by, 100 + 50 + by)


def test_the_portal_says_why_each_line_changed_the_balance_and_what_it_left(db, world):
    """The Points tab read 'Adjusted by the practice', 'Deducted by the cancellation policy' and
    'Given back' beside '#57', with no balance after each line: the patient could not tell why
    the practice took points, for what, nor follow their balance. Each line now says why (the
    practice's reason, a no-show, the visit cancelled that the points paid), names the visit,
    and gives the balance it left, ending at the balance shown above."""
    _no_show_policy(db, world, deducted=30)
    with db.write() as s:
        s.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
        points.adjust_points(s, world.manager, world.patient_id, -40, "Booked twice by mistake")
    prepaid = _visit(db, world, hours_from_now=72)
    with db.write() as s:
        prepay.prepay(
            s,
            world.patient_id,
            prepaid,
            points=20,
            card=False,
            provider=DeskProvider(),
            return_url="x",
        )
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, prepaid, reason="Provider ill")
    missed = _visit(db, world, hours_from_now=-1)
    with db.write() as s:
        visits.mark_no_show(s, world.manager, missed)
    with db.read() as s:
        view = home.home(s, world.patient_id)
        day = view.visit_names[missed]
    shown = [(r.words, r.points, r.balance_after) for r in view.ledger if r.points]
    assert shown == [
        ("Deducted for a missed appointment (no-show)", -30, 30),
        ("Given back: the appointment paid with them was cancelled", 20, 60),
        ("Spent on paying for an appointment in advance", -20, 40),
        ("Removed by the practice: Booked twice by mistake", -40, 60),
        (OPENING, 100, 100),
    ]
    assert view.points_balance == 30
    assert day.startswith("Consultation · ") and "#" not in day
