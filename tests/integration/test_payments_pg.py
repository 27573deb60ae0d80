"""The payments tests again on PostgreSQL (webhook races included)."""

from core.patients import merge
from core.payments.providers import DeskProvider
from core.scheduling import moves
from db.models import Patient
from tests.factories import make_patient
from tests.integration.test_policy_pg import patient_locks
from tests.unit.test_payments import *  # noqa: F403
from tests.unit.test_payments import _appointment, _paid_by_a_merged_duplicate, pay


def test_points_prepaid_on_a_merged_record_lock_both_rows_in_id_order(db, world):
    """The visit a duplicate paid 40 points towards, cancelled after it was merged into a
    record of a lower id: both patients' rows are locked in the order of their ids, as a merge
    locks them (core.patients.merge._pair), so the two cannot wait for each other."""
    duplicate, appointment_id = _paid_by_a_merged_duplicate(db, world, 50)
    assert world.patient_id < duplicate
    locked, stop = patient_locks(db)
    try:
        with db.write() as s:
            moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    finally:
        stop()
    assert list(dict.fromkeys(locked)) == [world.patient_id, duplicate]


def test_points_prepaid_on_a_record_merged_into_a_later_one_lock_in_id_order(db, world):
    """The visit the world's patient paid 40 points towards, their record then merged into a
    newer one (kept: a higher id), cancelled: the rows are locked in the order of their ids."""
    appointment_id = _appointment(db, world)
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 100
        pay(s, world.patient_id, appointment_id, 40, False, DeskProvider())
    with db.write() as s:
        kept = make_patient(s, email="alex.new@example.net", phone=None).id
    with db.write() as s:
        merge.merge_patients(s, world.manager, kept, world.patient_id, "Same person")
    locked, stop = patient_locks(db)
    try:
        with db.write() as s:
            moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    finally:
        stop()
    assert list(dict.fromkeys(locked)) == [world.patient_id, kept]
