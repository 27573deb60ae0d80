"""The same moment on every surface in the clinic's own time zone and locale: a London clinic
(en-GB) sees 24-hour times and day-month dates, a New York one (en-US) 12-hour times and
month-day dates; never UTC. Each surface is read through its own service."""

from datetime import UTC, datetime, timedelta

import pytest

from core.kernel.errors import DomainError, ValidationError
from core.messaging import reminders
from core.portal import home
from core.scheduling import lifecycle, schedules, visits
from core.scheduling.appointments import get_appointment_detail
from db.models import Appointment, AppointmentStatus, Clinic, Patient
from tests.factories import make_visit

NNBSP, THIN = "\u202f", "\u2009"  # CLDR's spaces: before AM/PM, around an en dash
START = datetime(2035, 7, 3, 14, 0, tzinfo=UTC)  # a Tuesday in summer time on both sides
END = START + timedelta(minutes=30)

LONDON = {
    "timezone": "Europe/London",
    "locale": "en-GB",
    "moment": "Tue, 3 Jul 2035, 15:00",
    "range": "Tue, 3 Jul 2035, 15:00–15:30",
    "zone": "BST",
}
NEW_YORK = {
    "timezone": "America/New_York",
    "locale": "en-US",
    "moment": f"Tue, Jul 3, 2035, 10:00{NNBSP}AM",
    "range": f"Tue, Jul 3, 2035, 10:00{THIN}–{THIN}10:30{NNBSP}AM",
    "zone": "EDT",
}
CLINICS = pytest.mark.parametrize("place", [LONDON, NEW_YORK], ids=["en-GB", "en-US"])


def _booked(db, world, place) -> int:
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.timezone, clinic.locale = place["timezone"], place["locale"]
        session.get(Patient, world.patient_id).portal_enrolled_at = START - timedelta(days=30)
        appointment = make_visit(
            session, world, status=AppointmentStatus.SCHEDULED, start_at=START, end_at=END
        )
        return appointment.id


@CLINICS
def test_the_portal_home_shows_the_visit_in_the_clinics_locale(db, world, place):
    _booked(db, world, place)
    with db.read() as session:
        [visit] = home.home(session, world.patient_id, now=START - timedelta(days=1)).upcoming
    assert visit.when == f"{place['range']} ({place['zone']})"
    assert "UTC" not in visit.when


@CLINICS
def test_reminders_and_confirmations_name_the_time_in_the_clinics_locale(db, world, place):
    appointment_id = _booked(db, world, place)
    with db.read() as session:
        appointment = session.get(Appointment, appointment_id)
        reminder = reminders.appointment_context(appointment)
        confirmation = lifecycle.message_context(appointment)
    expected = f"{place['moment']} ({place['zone']})"
    assert reminder["when"] == expected and confirmation["when"] == expected


@CLINICS
def test_the_appointment_details_show_start_and_end_in_the_clinics_locale(db, world, place):
    appointment_id = _booked(db, world, place)
    with db.read() as session:
        detail = get_appointment_detail(session, world.staff, appointment_id)
    assert detail.when == f"{place['range']} ({place['zone']})"


@CLINICS
def test_an_error_names_the_time_in_the_clinics_locale(db, world, place):
    appointment_id = _booked(db, world, place)
    with db.write() as session, pytest.raises(DomainError) as refused:
        visits.complete(session, world.staff, appointment_id, now=START - timedelta(hours=1))
    assert f"This visit starts at {place['moment']};" in str(refused.value)


@CLINICS
def test_overlapping_time_off_is_told_in_the_clinics_time_not_utc(db, world, place):
    _booked(db, world, place)
    with db.write() as session:
        schedules.add_time_off(
            session, world.manager, provider_id=world.provider_id, starts_at=START, ends_at=END
        )
    with db.write() as session, pytest.raises(ValidationError) as refused:
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=START + timedelta(minutes=10),
            ends_at=END,
            clinic_id=world.clinic_id,
        )
    assert f"already has time off ({place['range']} ({place['zone']}))" in str(refused.value)
    assert "UTC" not in str(refused.value)
