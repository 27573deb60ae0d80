"""AppTest: provider schedules — weekly hours with validation, time off added and removed."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
from sqlalchemy import select

from core.kernel.accounts import actor_of
from core.kernel.clock import local_today
from core.kernel.config import load_settings
from core.requests import decisions
from core.scheduling import schedules
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    Provider,
    TimeOff,
    User,
    WaitlistEntry,
    WorkingHours,
)
from tests.pages.conftest import every_clinic_speaks, told_to_show

PAGE = "app_pages/schedules.py"


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    """st.cache_data lives as long as the process: each test has its own database copy."""
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _week(at):
    """The weekly hours table's key (one per provider and clinic) and the form's save button."""
    provider = at.selectbox(key="schedules_provider").value
    clinic = at.selectbox(key="schedules_clinic").value
    form = f"schedules_week_{provider.id}_{clinic.id}"
    return f"schedules_hours_{provider.id}_{clinic.id}", f"FormSubmitter:{form}-Save weekly hours"


def _edit(at, rows):
    """What the table sends after cell edits: {weekday: {column: value}}; times as the browser
    sends them."""
    table, save = _week(at)
    at.session_state[table] = {"edited_rows": rows, "added_rows": [], "deleted_rows": []}
    at.button(key=save).click().run()


def test_manager_sets_weekly_hours_and_bad_hours_are_explained(app_as, app_db):
    at = app_as("manager", PAGE)
    assert not at.exception, at.exception
    provider = at.selectbox(key="schedules_provider").value
    week = at.data_editor[0].value
    assert list(week.columns)[:4] == ["Day", "Works", "From", "To"] and len(week) == 7
    _edit(at, {5: {"Works": True, "From": "12:00:00.000", "To": "10:00:00.000"}})
    assert "Saturday: the hours must end after they start" in at.error[0].value
    _edit(at, {5: {"Works": True, "From": "12:00:00.000", "To": "14:00:00.000"}})
    assert not at.error, at.error
    database = _db(app_db)
    with database.read() as session:
        rows = session.scalars(
            select(WorkingHours).where(
                WorkingHours.provider_id == provider.id, WorkingHours.weekday == 5
            )
        ).all()
        assert [(r.starts, r.ends) for r in rows] == [(time(12), time(14))]
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "working_hours_set"))
    database.dispose()
    saturday = at.data_editor[0].value.iloc[5]
    assert (saturday.Works, saturday.From, saturday.To) == (True, time(12), time(14))


def test_a_lunch_break_is_one_row_and_a_day_of_three_periods_is_kept(app_as, app_db):
    """Mon–Fri 09:00–17:00 with lunch 13:00–14:00 is typed as breaks in the table; a break
    outside the hours is explained; a day the table cannot show whole (a practice file's three
    periods) is kept when left alone, not cut to its last period."""
    at = app_as("manager", PAGE)
    provider = at.selectbox(key="schedules_provider").value
    clinic = at.selectbox(key="schedules_clinic").value
    database = _db(app_db)
    with database.write() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        three = [schedules.HoursRow(5, time(h), time(h + 2)) for h in (8, 11, 14)]
        schedules.set_weekly_hours(
            session, manager, provider_id=provider.id, clinic_id=clinic.id, hours=three
        )
    st.cache_data.clear()
    at.run()
    assert "Saturday: more than one break" in at.info[0].value
    day = {"Works": True, "From": "09:00:00.000", "To": "17:00:00.000"}
    _edit(at, {0: {**day, "Break from": "12:00:00.000", "Break to": "18:00:00.000"}})
    assert at.error[0].value.replace("\\:", ":") == (  # markdown escapes the colons
        "Monday: the break 12:00–18:00 must fall within the hours 09:00–17:00, with work "
        "before and after it."
    )
    lunch = {**day, "Break from": "13:00:00.000", "Break to": "14:00:00.000"}
    _edit(at, dict.fromkeys(range(5), lunch))
    assert not at.error, at.error
    with database.read() as session:
        rows = session.scalars(
            select(WorkingHours)
            .where(WorkingHours.provider_id == provider.id, WorkingHours.clinic_id == clinic.id)
            .order_by(WorkingHours.weekday, WorkingHours.starts)
        ).all()
    database.dispose()
    periods = [(r.weekday, r.starts, r.ends) for r in rows]
    weekdays = (
        [(d, time(9), time(13)) for d in range(5)],
        [(d, time(14), time(17)) for d in range(5)],
    )
    assert periods == sorted(weekdays[0] + weekdays[1]) + [
        (5, time(8), time(10)),
        (5, time(11), time(13)),
        (5, time(14), time(16)),
    ]
    friday = at.data_editor[0].value.iloc[4]
    assert (friday.From, friday.To, friday["Break from"], friday["Break to"]) == (
        time(9),
        time(17),
        time(13),
        time(14),
    )


def test_unticking_a_day_with_bookings_warns_about_them(app_as, app_db):
    at = app_as("manager", PAGE)
    _edit(at, {0: {"Works": False}})  # the demo's providers have bookings on Mondays
    assert not at.error, at.error
    [warning] = at.warning
    assert "booked appointment(s) fall outside these hours (#" in warning.value
    assert "cancel it as the practice (no fee), on the Calendar" in warning.value


def test_a_working_day_without_a_time_is_explained_and_nothing_is_saved(app_as, app_db):
    at = app_as("manager", PAGE)
    provider = at.selectbox(key="schedules_provider").value
    database = _db(app_db)
    with database.read() as session:
        before = session.scalars(
            select(WorkingHours).where(WorkingHours.provider_id == provider.id)
        ).all()
        before = sorted((r.clinic_id, r.weekday, r.starts, r.ends) for r in before)
    _edit(at, {0: {"Works": True, "From": None}, 6: {"Works": True}})
    assert at.error[0].value == "Monday: give the time work starts and ends."
    with database.read() as session:
        after = session.scalars(
            select(WorkingHours).where(WorkingHours.provider_id == provider.id)
        ).all()
        assert sorted((r.clinic_id, r.weekday, r.starts, r.ends) for r in after) == before
    database.dispose()


def test_weekday_names_and_times_follow_the_clinics_locale(app_as, app_db):
    every_clinic_speaks(app_db, "de-DE")
    at = app_as("manager", PAGE)
    days = list(at.data_editor[0].value["Day"])
    assert days[0] == "Montag" and days[5] == "Samstag"
    assert '"HH:mm"' in at.data_editor[0].proto.columns
    _edit(at, {5: {"Works": True, "From": "12:00:00.000", "To": "10:00:00.000"}})
    assert at.error[0].value.startswith("Samstag: the hours must end after they start")


def test_a_twelve_hour_clinic_sees_twelve_hour_times(app_as, app_db):
    every_clinic_speaks(app_db, "en-US")
    at = app_as("manager", PAGE)
    assert '"h:mm A"' in at.data_editor[0].proto.columns


def test_time_off_is_added_and_removed(app_as, app_db, set_twice):
    at = app_as("manager", PAGE)
    day = date.today() + timedelta(days=30)
    at.date_input(key="schedules_off_from_day").set_value(day)
    at.date_input(key="schedules_off_to_day").set_value(day + timedelta(days=2))
    at.text_input(key="schedules_off_reason").input("Conference")
    at.button(key="FormSubmitter:schedules_time_off-Add time off").click().run()
    assert not at.error, at.error
    assert "Conference" in at.dataframe[1].value.to_string()  # [0]: the weekly hours
    told_to_show(at.text_input(key="schedules_off_reason"), "")  # added: the form is empty
    told_to_show(at.time_input(key="schedules_off_from_time"), None)
    told_to_show(at.time_input(key="schedules_off_to_time"), None)
    database = _db(app_db)
    with database.read() as session:
        today = local_today(session.get(Clinic, 1).timezone)  # the clinic's, not the server's
    database.dispose()
    told_to_show(at.date_input(key="schedules_off_from_day"), today)
    told_to_show(at.date_input(key="schedules_off_to_day"), today)
    # today is set in the state only: before, it was also the day boxes' value=, which
    # Streamlit logged as a default set twice
    assert set_twice == []
    database = _db(app_db)
    with database.read() as session:  # empty times: whole days, to the midnight after the last
        [off] = session.scalars(select(TimeOff)).all()
        tz = ZoneInfo(session.get(Clinic, 1).timezone)
        assert (off.starts_at.astimezone(tz), off.ends_at.astimezone(tz)) == (
            datetime.combine(day, time(0), tz),
            datetime.combine(day + timedelta(days=3), time(0), tz),
        )
    database.dispose()
    at.button(key="schedules_remove").click().run()
    database = _db(app_db)
    with database.read() as session:
        assert session.scalars(select(TimeOff)).all() == []
    database.dispose()


def test_time_off_over_bookings_names_them(app_as, app_db):
    """Off for a day the provider has visits booked: each is named (number, time, patient),
    the first of the day (_first_visit) among them whatever the hour the test runs (the
    first visit two days ahead had earlier ones that day listed before it)."""
    at = app_as("manager", PAGE)
    first, day, name = _first_visit(at, app_db)
    at.date_input(key="schedules_off_from_day").set_value(day)
    at.date_input(key="schedules_off_to_day").set_value(day)
    at.button(key="FormSubmitter:schedules_time_off-Add time off").click().run()
    assert not at.error, at.error
    [warning] = at.warning
    assert "booked appointment(s) fall in that time off (#" in warning.value
    assert f"#{first.id} " in warning.value and name in warning.value
    assert "cancel it as the practice (no fee)" in warning.value


def test_time_off_ending_before_it_starts_is_refused_and_keeps_what_was_typed(app_as, app_db):
    at = app_as("owner", PAGE)
    day = date.today() + timedelta(days=30)
    at.date_input(key="schedules_off_from_day").set_value(day)
    at.date_input(key="schedules_off_to_day").set_value(day - timedelta(days=1))
    at.time_input(key="schedules_off_from_time").set_value(time(9, 30))
    at.text_input(key="schedules_off_reason").input("Dentist")
    at.button(key="FormSubmitter:schedules_time_off-Add time off").click().run()
    assert "must end after it starts" in at.error[0].value
    # what was typed stays, to be corrected (before, the form was emptied)
    assert at.date_input(key="schedules_off_from_day").value == day
    assert at.date_input(key="schedules_off_to_day").value == day - timedelta(days=1)
    assert at.time_input(key="schedules_off_from_time").value == time(9, 30)
    assert at.text_input(key="schedules_off_reason").value == "Dentist"
    at.date_input(key="schedules_off_to_day").set_value(day)  # only the mistake corrected
    at.time_input(key="schedules_off_to_time").set_value(time(11))
    at.button(key="FormSubmitter:schedules_time_off-Add time off").click().run()
    assert not at.error, at.error
    database = _db(app_db)
    with database.read() as session:
        [added] = session.scalars(select(TimeOff)).all()
        assert added.reason == "Dentist" and added.ends_at - added.starts_at == timedelta(
            minutes=90
        )
    database.dispose()


def test_only_managers_and_owners_get_the_page():
    from core.kernel.authz import Actor
    from db.models import Role
    from ui.navigation import pages_for

    def files(role):
        return {p.file for p in pages_for(Actor(1, "x", role))}

    assert "schedules.py" not in files(Role.STAFF)
    assert "schedules.py" in files(Role.MANAGER) and "schedules.py" in files(Role.OWNER)


def test_time_off_removed_elsewhere_while_chosen_does_not_remove_the_next(app_as, app_db):
    at = app_as("manager", PAGE)
    provider = at.selectbox(key="schedules_provider").value
    database = _db(app_db)
    with database.write() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        for days, reason in ((30, "Conference"), (40, "Holiday")):
            start = datetime.now(UTC) + timedelta(days=days)
            schedules.add_time_off(
                session,
                manager,
                provider_id=provider.id,
                starts_at=start,
                ends_at=start + timedelta(days=1),
                reason=reason,
            )
    database.dispose()
    st.cache_data.clear()
    at.run()
    pick = at.selectbox(key="schedules_remove_pick")
    pick.select_index(1).run()  # the holiday
    database = _db(app_db)
    with database.write() as session:  # another manager removes it meanwhile
        holiday = session.scalar(select(TimeOff).where(TimeOff.reason == "Holiday"))
        schedules.remove_time_off(session, manager, holiday.id)
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.button(key="schedules_remove").click().run()
    said = " ".join(w.value for w in at.warning)
    assert "was removed meanwhile; nothing else was removed" in said, said
    database = _db(app_db)
    with database.read() as session:
        assert [t.reason for t in session.scalars(select(TimeOff))] == ["Conference"]
    database.dispose()
    at.button(key="schedules_remove").click().run()  # pressed again, on what is shown: removed
    assert not any("meanwhile" in w.value for w in at.warning)


def _first_visit(at, app_db) -> tuple[Appointment, date, str]:
    """The shown provider's first visit on the first day, three days ahead or more, that opens
    with a scheduled visit at the shown clinic (the time-off list is soonest first: an earlier
    visit that day would be listed above it); its clinic-local day and its patient's name."""
    provider = at.selectbox(key="schedules_provider").value.id
    clinic = at.selectbox(key="schedules_clinic").value.id
    database = _db(app_db)
    with database.read() as session:
        zone = ZoneInfo(session.get(Clinic, clinic).timezone)
        day = datetime.now(zone).date() + timedelta(days=3)
        for day in (day + timedelta(days=n) for n in range(28)):
            starts = datetime.combine(day, time(0), zone)
            booked = schedules.booked_in(session, provider, starts, starts + timedelta(days=1))
            first = booked and session.get(Appointment, booked[0].id)
            if first and (first.clinic_id, first.status) == (clinic, AppointmentStatus.SCHEDULED):
                break
        else:
            raise AssertionError("no day in four weeks opens with a scheduled visit")
        name = first.patient.full_name
    database.dispose()
    return first, day, name


def _off_on(at, app_db, day: date) -> str:
    """Add the day's time off; the key of the table of the visits booked in it."""
    at.date_input(key="schedules_off_from_day").set_value(day)
    at.date_input(key="schedules_off_to_day").set_value(day)
    at.button(key="FormSubmitter:schedules_time_off-Add time off").click().run()
    assert not at.error, at.error
    database = _db(app_db)
    with database.read() as session:
        off_id = session.scalar(select(TimeOff.id).order_by(TimeOff.id.desc()).limit(1))
    database.dispose()
    return f"schedules_cover_{off_id}"  # the visits of the time off just added


def test_the_visits_in_time_off_just_added_are_handled_in_one_go(app_as, app_db):
    """Off for a day with visits: they are listed with the action to take; the first cancelled
    (with the waitlist), the rest left; what became of it is shown, the rest stay booked."""
    at = app_as("manager", PAGE)
    provider = at.selectbox(key="schedules_provider").value
    first, day, name = _first_visit(at, app_db)
    key = _off_on(at, app_db, day)
    listed = at.data_editor(key=key).value
    assert listed["#"].iloc[0] == first.id and listed["Patient"].iloc[0] == name
    assert {"Free to take it", "Action"} <= set(listed.columns)
    leave = {i: {"Action": "Leave"} for i in range(1, len(listed))}
    at.session_state[key] = {
        "edited_rows": {0: {"Action": "Cancel"}, **leave},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.text_input(key="schedules_cover_reason").input("Provider unwell")
    at.checkbox(key="schedules_cover_wait").check()
    at.button(key="schedules_cover_go").click().run()
    assert not at.error, at.error
    assert at.info[0].value == "1 done, 0 refused."
    [outcome] = [d.value for d in at.dataframe if "What happened" in d.value.columns]
    assert outcome["What happened"].iloc[0].startswith("Cancelled as the practice, no fee.")
    assert "On the waitlist (entry #" in outcome["What happened"].iloc[0]
    database = _db(app_db)
    with database.read() as session:
        cancelled = session.get(Appointment, first.id)
        assert cancelled.status == AppointmentStatus.CANCELLED
        assert cancelled.cancel_reason == "Provider unwell"
        kept = session.scalars(
            select(Appointment).where(Appointment.id.in_([int(i) for i in listed["#"][1:]]))
        ).all()
        assert all(a.provider_id == provider.id for a in kept)
        waiting = session.scalar(
            select(WaitlistEntry).where(WaitlistEntry.note.contains(f"#{first.id} was cancelled"))
        )
        assert waiting.patient_id == first.patient_id
    database.dispose()


def test_a_visit_in_time_off_goes_to_the_free_colleague_chosen_in_its_row(app_as, app_db):
    """Two colleagues free at the visit's time: the first is offered in its row, the other
    named in its note, and choosing the other there moves the visit to them (before, only the
    first could take it)."""
    at = app_as("manager", PAGE)
    first, day, _ = _first_visit(at, app_db)
    database = _db(app_db)
    with database.write() as session:
        ids = {}
        for name in ("Dr Ash", "Dr Birch"):
            colleague = Provider(name=name)
            colleague.working_hours.append(
                WorkingHours(
                    clinic_id=first.clinic_id,
                    weekday=day.weekday(),
                    starts=time(0),
                    ends=time(23, 59),
                )
            )
            session.add(colleague)
            session.flush()
            ids[name] = colleague.id
    database.dispose()
    key = _off_on(at, app_db, day)
    listed = at.data_editor(key=key).value
    assert listed["Free to take it"].iloc[0] == "Dr Ash"
    assert listed["Note"].iloc[0] == "Also free: Dr Birch."
    leave = {i: {"Action": "Leave"} for i in range(1, len(listed))}
    at.session_state[key] = {
        "edited_rows": {0: {"Free to take it": "Dr Birch", "Action": "Move"}, **leave},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.button(key="schedules_cover_go").click().run()
    assert not at.error, at.error
    assert at.info[0].value == "1 done, 0 refused."
    database = _db(app_db)
    with database.read() as session:
        assert session.get(Appointment, first.id).provider_id == ids["Dr Birch"]
    database.dispose()


def test_a_request_for_a_day_off_is_listed_and_released_to_any_provider(app_as, app_db):
    """A request waiting with the provider for the day they take off is listed below the
    visits ("Requested for" that day); released with no colleague chosen, it goes back to the
    queue for any provider."""
    at = app_as("manager", PAGE)
    first, day, _ = _first_visit(at, app_db)
    database = _db(app_db)
    with database.write() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        asked = decisions.request_appointment(
            session,
            manager,
            patient_id=first.patient_id,
            clinic_id=first.clinic_id,
            service_id=first.service_id,
            requested_day=day,
            time_of_day=None,
            provider_id=first.provider_id,
            notes="Only Tuesdays",
        ).id
    database.dispose()
    key = _off_on(at, app_db, day)
    listed = at.data_editor(key=key).value
    [row] = [i for i, n in enumerate(listed["#"]) if n == asked]
    assert listed["When"].iloc[row].startswith("Requested for ")
    edits = {i: {"Action": "Leave"} for i in range(len(listed)) if i != row}
    edits[row] = {"Action": "Release", "Free to take it": None}
    at.session_state[key] = {"edited_rows": edits, "added_rows": [], "deleted_rows": []}
    at.button(key="schedules_cover_go").click().run()
    assert not at.error, at.error
    assert at.info[0].value == "1 done, 0 refused."
    database = _db(app_db)
    with database.read() as session:
        request = session.get(Appointment, asked)
        assert (request.provider_id, request.status) == (None, AppointmentStatus.REQUESTED)
    database.dispose()


def test_a_time_proposed_in_time_off_is_proposed_again_with_the_colleague(app_as, app_db):
    """A time proposed to the patient (tentative) in the time off was offered only Cancel: it
    is moved as a booked visit is, proposed again with the colleague chosen (the unit test
    checks the patient is sent it)."""
    at = app_as("manager", PAGE)
    first, day, _ = _first_visit(at, app_db)
    database = _db(app_db)
    with database.write() as session:
        session.get(Appointment, first.id).status = AppointmentStatus.TENTATIVE
        colleague = Provider(name="Dr Ash")
        colleague.working_hours.append(
            WorkingHours(
                clinic_id=first.clinic_id, weekday=day.weekday(), starts=time(0), ends=time(23, 59)
            )
        )
        session.add(colleague)
        session.flush()
        ash = colleague.id
    database.dispose()
    key = _off_on(at, app_db, day)
    listed = at.data_editor(key=key).value
    assert listed["#"].iloc[0] == first.id and listed["Action"].iloc[0] == "Move"
    assert listed["Free to take it"].iloc[0] == "Dr Ash"
    assert listed["Note"].iloc[0].startswith("A time proposed to the patient: moved, it is")
    leave = {i: {"Action": "Leave"} for i in range(1, len(listed))}
    at.session_state[key] = {
        "edited_rows": {0: {"Action": "Move"}, **leave},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.button(key="schedules_cover_go").click().run()
    assert not at.error, at.error
    assert at.info[0].value == "1 done, 0 refused."
    database = _db(app_db)
    with database.read() as session:
        moved = session.get(Appointment, first.id)
        assert (moved.status, moved.provider_id) == (AppointmentStatus.TENTATIVE, ash)
        proposed = session.scalar(
            select(AuditEvent).where(
                AuditEvent.entity_id == first.id, AuditEvent.action == "propose"
            )
        )
        assert proposed.details["provider_id"] == ash
    database.dispose()
