"""A new patient pressed twice (a double click, a press that seemed not to work, two desks
adding one walk-in) is one patient, told so; a real namesake is still added when staff say so."""

from __future__ import annotations

import contextlib
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from core.kernel.errors import Conflict
from core.patients import records as patients
from db.models import Patient


def _count(db, last_name: str) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).where(Patient.last_name == last_name))


def test_the_same_name_without_a_birth_date_pressed_again_is_refused_and_named(db, world):
    with db.write() as s:
        first = patients.create_patient(
            s, world.staff, first_name="Noor", last_name="Haddad", phone="07700 900123"
        )
    with (
        db.write() as s,
        pytest.raises(Conflict, match=rf"Noor Haddad \(#{first.id}\) was added \d+ s ago"),
    ):
        patients.create_patient(s, world.staff, first_name="NOOR", last_name="haddad ")
    assert _count(db, "Haddad") == 1
    with db.write() as s:  # told: another patient of that name
        patients.create_patient(
            s, world.staff, first_name="Noor", last_name="Haddad", different_person=True
        )
        # another name is someone else
        patients.create_patient(s, world.staff, first_name="Sami", last_name="Haddad")
    assert _count(db, "Haddad") == 3


def test_a_namesake_added_later_is_not_a_second_press(db, world):
    with db.write() as s:
        first = patients.create_patient(s, world.staff, first_name="Lea", last_name="Roth")
        s.get(Patient, first.id).created_at -= patients.JUST_ADDED + timedelta(seconds=1)
    with db.write() as s:
        patients.create_patient(s, world.staff, first_name="Lea", last_name="Roth")
    assert _count(db, "Roth") == 2


@pytest.mark.parametrize("born", [None, date(1991, 6, 2)], ids=["no birth date", "born"])
def test_two_presses_at_once_add_one_patient(db, world, monkeypatch, born):
    """Both presses checked for the patient before either wrote: on PostgreSQL both added
    them. Now the second waits for the first and is refused, naming the patient."""
    barrier, outcomes = threading.Barrier(2), []
    validate = patients.validate_contact

    def both_have_checked_the_input(*args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        return validate(*args, **kwargs)

    monkeypatch.setattr(patients, "validate_contact", both_have_checked_the_input)

    def press():
        try:
            with db.write() as s:
                patients.create_patient(
                    s, world.staff, first_name="Ines", last_name="Varga", date_of_birth=born
                )
            outcomes.append("added")
        except Conflict as error:
            outcomes.append("refused" if "Ines Varga (#" in str(error) else str(error))

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["added", "refused"]
    assert _count(db, "Varga") == 1
