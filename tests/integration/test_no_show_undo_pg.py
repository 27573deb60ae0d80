"""Undoing a no-show again, on a real PostgreSQL (the race included)."""

from core.patients import merge
from core.scheduling import visits
from tests.factories import make_patient
from tests.integration.test_policy_pg import patient_locks
from tests.unit.test_no_show_undo import *  # noqa: F403
from tests.unit.test_no_show_undo import _no_show, _policy


def test_undoing_a_no_show_of_a_record_merged_into_a_later_one_locks_in_id_order(db, world):
    """The world's patient's no-show (5 points deducted), the record then merged into a newer
    one (kept: a higher id), the no-show undone: the undo locks the visit's patient (the kept
    record) and the record its points come back to (the duplicate) in the order of their ids,
    as a merge locks them, so the two cannot wait for each other. Before, the kept record was
    locked first (the clash check's lock on the visit's patient), the duplicate after it."""
    _policy(db, world)
    ident = _no_show(db, world, balance=20)
    with db.write() as s:
        kept = make_patient(s, email="alex.new@example.net", phone=None).id
    with db.write() as s:
        merge.merge_patients(s, world.manager, kept, world.patient_id, "Same person")
    assert world.patient_id < kept
    locked, stop = patient_locks(db)
    try:
        with db.write() as s:
            visits.undo_no_show(s, world.staff, ident)
    finally:
        stop()
    assert list(dict.fromkeys(locked)) == [world.patient_id, kept]
