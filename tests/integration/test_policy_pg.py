"""The policy tests again on PostgreSQL."""

import re
import threading
from time import monotonic, sleep

from sqlalchemy import event, select, text

from core.policy import cancellation as policy
from db.models import Patient
from tests.unit.test_policy import *  # noqa: F403
from tests.unit.test_policy import _merged_with_deductions


def patient_locks(db):
    """The patients' rows locked (SELECT … FROM patients … FOR UPDATE), in order, by id."""
    locked: list[int] = []

    def watch(conn, cursor, statement, parameters, context, executemany):
        if "FOR UPDATE" in statement and re.search(r"\bFROM patients\b", statement):
            values = parameters.values() if isinstance(parameters, dict) else parameters
            locked.extend(v for v in values if isinstance(v, int))

    event.listen(db.engine, "before_cursor_execute", watch)
    return locked, lambda: event.remove(db.engine, "before_cursor_execute", watch)


def test_points_given_back_on_a_merged_record_lock_both_rows_in_id_order(db, world):
    """A waiver on a duplicate merged into a record of a lower id locks both patients' rows in
    the order of their ids, as a merge does (core.patients.merge._pair), so the two cannot
    wait for each other. Before, the duplicate's row was locked first (balance.restore), the
    kept record's after it (follow_merge's transfer): the reverse of a merge's order."""
    duplicate, (deduction,) = _merged_with_deductions(db, world, 50, [40])
    assert world.patient_id < duplicate
    locked, stop = patient_locks(db)
    try:
        with db.write() as s:
            policy.waive_fee(s, world.manager, deduction, "Recorded by mistake")
    finally:
        stop()
    first = list(dict.fromkeys(locked))  # each row's first lock, in order
    assert first == [world.patient_id, duplicate]


def test_a_waiver_on_a_merged_record_and_a_merge_of_the_pair_do_not_deadlock(db, world):
    """Two connections: one holds the kept record's row (a merge locking the pair in id order,
    core.patients.merge._pair, has taken the first), the other waives a deduction on the
    merged duplicate and waits; the first then locks the duplicate's row too and commits, and
    the waiver goes on. Before, the waiver held the duplicate's row while it waited for the
    kept record's: PostgreSQL found a deadlock and aborted one of them."""
    duplicate, (deduction,) = _merged_with_deductions(db, world, 50, [40])
    outcome: dict = {}

    def waive():
        try:
            with db.write() as s:
                policy.waive_fee(s, world.manager, deduction, "Recorded by mistake")
        except Exception as error:  # noqa: BLE001 - the old code's deadlock
            outcome["waiver"] = error

    pair = select(Patient.id).order_by(Patient.id).with_for_update()
    try:
        with db.write() as other:
            other.execute(pair.where(Patient.id == world.patient_id))
            worker = threading.Thread(target=waive)
            worker.start()
            deadline = monotonic() + 20
            with db.engine.connect() as watcher:
                while monotonic() < deadline and worker.is_alive():
                    waiting = watcher.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND datname = current_database()"
                        )
                    ).scalar()
                    watcher.rollback()  # pg_stat_activity is read once per transaction
                    if waiting:
                        break
                    sleep(0.05)
            assert worker.is_alive()  # the waiver waits on the kept record's row
            other.execute(pair.where(Patient.id == duplicate))
    except Exception as error:  # noqa: BLE001 - the old code's deadlock
        outcome["merge"] = error
    worker.join(30)
    assert outcome == {}
    with db.read() as s:
        assert s.get(Patient, world.patient_id).points_balance == 150
