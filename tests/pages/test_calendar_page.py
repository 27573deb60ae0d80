"""AppTest: the Calendar page. The component's callbacks are simulated by putting the value the
browser would send (the payload shapes of streamlit-calendar 1.4) into the widget's state."""

from __future__ import annotations

import json
from datetime import date, time, timedelta

import pytest
import streamlit as st
from sqlalchemy import select

from core.kernel.accounts import actor_of
from core.kernel.clock import to_local
from core.kernel.config import load_settings
from core.scheduling import calendar as cal
from core.scheduling import moves
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    Resource,
    ServiceResource,
    User,
)
from db.types import utcnow
from tests.pages.conftest import block_around
from ui import calendar_widget as cw
from ui.calendar_widget import ink

PAGE = "app_pages/calendar.py"


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    """st.cache_data lives as long as the process: each test has its own database copy."""
    st.cache_data.clear()


def _database(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _upcoming(url, clinic_id=1):
    """A scheduled appointment of the clinic later this week (or next), with its clinic zone."""
    database = _database(url)
    with database.read() as session:
        row = session.scalars(
            select(Appointment)
            .where(
                Appointment.clinic_id == clinic_id,
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.start_at > utcnow() + timedelta(hours=2),
            )
            .order_by(Appointment.start_at)
            .limit(1)
        ).one()
        found = (
            row.id,
            row.start_at,
            row.end_at,
            row.provider_id,
            session.get(Clinic, clinic_id).timezone,
        )
    database.dispose()
    return found


def _component_key(at):
    """The user key of the calendar drawn in the last run (its widget id ends with it)."""
    component = next(e for e in at.main if e.type == "component_instance")
    return component.proto.id[component.proto.id.index("calendar_fc_") :]


def _goto(at, moment, tz):
    at.date_input(key="calendar_day").set_value(to_local(moment, tz).date()).run()
    return at


def _send(at, value):
    at.session_state[_component_key(at)] = value
    return at.run()


def _event(ident, start, end, provider_id, tz):
    return {
        "id": str(ident),
        "title": "x",
        "start": cal.local_iso(start, tz),
        "end": cal.local_iso(end, tz),
        "resourceId": str(provider_id),
    }


def test_every_role_sees_the_calendar_with_legend(app_as):
    for user in ("owner", "manager", "staff"):
        at = app_as(user, PAGE)
        assert not at.exception, at.exception
        assert at.title[0].value == "Calendar"
        assert "Requested" in at.markdown[0].value and "Out of office" in at.markdown[0].value
        assert any(  # whose clock the grid's times are (the practice's first: London)
            c.value.startswith("All times are the clinic's: London time (") for c in at.caption
        )


def test_clicking_an_event_opens_its_details_and_actions(app_as, app_db):
    ident, start, end, provider, tz = _upcoming(app_db)
    at = _goto(app_as("staff", PAGE), start, tz)
    at = _send(
        at,
        {
            "callback": "eventClick",
            "eventClick": {"event": _event(ident, start, end, provider, tz), "view": {}},
        },
    )
    assert not at.exception, at.exception
    assert any(f"{ident} · " in h.value for h in at.subheader)
    assert at.button(key=f"calendar_qr_{ident}_show")
    at.button(key=f"calendar_qr_{ident}_show").click().run()
    assert at.text and at.text[0].value.startswith("CDCHK:")
    at.button(key="calendar_close").click().run()
    assert not any(f"{ident} · " in h.value for h in at.subheader)


def test_dragging_to_a_free_time_reschedules_and_notifies(app_as, app_db):
    ident, start, end, provider, tz = _upcoming(app_db)
    at = _goto(app_as("manager", PAGE), start, tz)
    old = _event(ident, start, end, provider, tz)
    # FullCalendar sends wall times with the old offset; 23:00 local is free but after hours
    local = to_local(start, tz).replace(hour=20, minute=30)
    new = dict(old, start=local.isoformat(), end=(local + (end - start)).isoformat())
    at = _send(
        at,
        {
            "callback": "eventChange",
            "eventChange": {"event": new, "oldEvent": old, "relatedEvents": []},
        },
    )
    assert not at.exception, at.exception
    assert f"Move appointment #{ident}" in at.warning[0].value
    at.button(key="calendar_move_go").click().run()
    assert "not working" in at.error[0].value  # refused: outside hours, nothing moved
    assert _component_key(at).endswith("_1")  # redrawn from the stored events
    database = _database(app_db)
    with database.read() as session:
        assert session.get(Appointment, ident).start_at == start
    database.dispose()
    at = _send(
        at,
        {
            "callback": "eventChange",
            "eventChange": {"event": new, "oldEvent": old, "relatedEvents": []},
        },
    )
    at.checkbox(key="calendar_move_outside").check()
    at.text_input(key="calendar_move_message").input("Running late today")
    at.button(key="calendar_move_go").click().run()
    assert not at.exception and not at.error, at.error
    database = _database(app_db)
    with database.read() as session:
        row = session.get(Appointment, ident)
        assert to_local(row.start_at, tz).strftime("%H:%M") == "20:30"
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.entity_id == ident, AuditEvent.action == "reschedule"
            )
        )
        assert event.message == "Running late today" and event.actor_label == "Max Manager"
    database.dispose()


def test_a_drag_of_a_visit_moved_elsewhere_meanwhile_moves_nothing(app_as, app_db):
    ident, start, end, provider, tz = _upcoming(app_db)
    at = _goto(app_as("staff", PAGE), start, tz)
    old = _event(ident, start, end, provider, tz)  # where the calendar drew it
    new = dict(
        old,
        start=cal.local_iso(start + timedelta(hours=1), tz),
        end=cal.local_iso(end + timedelta(hours=1), tz),
    )
    theirs = start + timedelta(days=1)
    database = _database(app_db)  # another desk moved it meanwhile (the patient phoned)
    with database.write() as session:
        manager = session.scalar(select(User).where(User.username == "manager"))
        moves.reschedule(
            session,
            actor_of(manager),
            ident,
            start_at=theirs,
            allow_double_booking=True,
            outside_hours_override=True,
        )
    database.dispose()
    at = _send(
        at,
        {
            "callback": "eventChange",
            "eventChange": {"event": new, "oldEvent": old, "relatedEvents": []},
        },
    )
    at.checkbox(key="calendar_move_double").check()
    at.checkbox(key="calendar_move_outside").check()
    at.button(key="calendar_move_go").click().run()
    said = " ".join(e.value for e in at.error)
    assert f"Appointment #{ident} was already handled by Max Manager at" in said, said
    database = _database(app_db)
    with database.read() as session:
        assert session.get(Appointment, ident).start_at == theirs  # not dragged from it
    database.dispose()


def test_a_resized_visit_is_not_recorded_as_moved(app_as, app_db):
    """A visit's length follows its services: the calendar offers no resize, and one that
    reaches the page (the same start and provider) moves nothing and is not counted as a
    reschedule (it was: "Moved.", one of the patient's reschedules used up)."""
    ident, start, end, provider, tz = _upcoming(app_db)
    at = _goto(app_as("staff", PAGE), start, tz)
    old = _event(ident, start, end, provider, tz)
    longer = dict(old, end=cal.local_iso(end + timedelta(minutes=30), tz))
    at = _send(
        at,
        {
            "callback": "eventChange",
            "eventChange": {"event": longer, "oldEvent": old, "relatedEvents": []},
        },
    )
    at.button(key="calendar_move_go").click().run()
    said = " ".join(e.value for e in at.error)
    assert f"Appointment #{ident} is already on" in said and "nothing was moved" in said, said
    assert not at.exception
    database = _database(app_db)
    with database.read() as session:
        row = session.get(Appointment, ident)
        assert (row.start_at, row.end_at, row.reschedule_count) == (start, end, 0)
        assert not session.scalars(
            select(AuditEvent).where(
                AuditEvent.entity_id == ident, AuditEvent.action == "reschedule"
            )
        ).all()
    database.dispose()
    opts = cw.options(
        "resourceTimeGridWeek", start.date(), tz, resources=[], business_hours=[], editable=True
    )
    assert opts["editable"] and not opts["eventDurationEditable"]  # drag, but no resize


def test_undo_puts_a_dragged_event_back(app_as, app_db):
    ident, start, end, provider, tz = _upcoming(app_db)
    at = _goto(app_as("staff", PAGE), start, tz)
    old = _event(ident, start, end, provider, tz)
    new = dict(
        old,
        start=cal.local_iso(start + timedelta(hours=1), tz),
        end=cal.local_iso(end + timedelta(hours=1), tz),
    )
    at = _send(
        at,
        {
            "callback": "eventChange",
            "eventChange": {"event": new, "oldEvent": old, "relatedEvents": []},
        },
    )
    at.button(key="calendar_move_undo").click().run()
    assert not at.warning and _component_key(at).endswith("_1")


def test_selecting_a_free_time_offers_booking_there(app_as, app_db):
    _, start, _, provider, tz = _upcoming(app_db)
    at = _goto(app_as("staff", PAGE), start, tz)
    wall = to_local(start, tz).replace(hour=7, minute=15, tzinfo=None).isoformat() + ".000Z"
    at = _send(
        at,
        {
            "callback": "select",
            "select": {
                "allDay": False,
                "start": wall,
                "end": wall,
                "view": {},
                "resource": {"id": str(provider), "title": "x"},
            },
        },
    )
    assert not at.exception, at.exception
    assert "07:15" in at.info[0].value
    at.button(key="calendar_book_slot").click().run()
    assert at.title[0].value == "New appointment"  # the booking form, filled in
    assert at.time_input(key="book_time").value.strftime("%H:%M") == "07:15"
    assert at.date_input(key="book_day").value == to_local(start, tz).date()


def test_navigation_moves_the_window(app_as):
    at = app_as("staff", PAGE)
    first = at.date_input(key="calendar_day").value
    at.button(key="calendar_next").click().run()
    assert at.date_input(key="calendar_day").value == first + timedelta(days=7)
    at.button_group(key="calendar_view").set_value("Month").run()
    assert "dayGridMonth" in _component_key(at)
    assert not at.exception


def test_a_large_team_opens_on_the_day_by_provider(app_as, app_db):
    """A week by provider for the demo's small teams; a day by provider once a clinic has more
    providers than a week's columns can show."""
    from datetime import time

    from db.models import Provider, WorkingHours

    at = app_as("staff", PAGE)
    assert "resourceTimeGridWeek" in _component_key(at)
    database = _database(app_db)
    with database.write() as session:
        for n in range(cw.WEEK_COLUMNS_LIMIT + 1):
            provider = Provider(name=f"Dr Extra {n}")
            provider.working_hours.append(
                WorkingHours(clinic_id=1, weekday=0, starts=time(9), ends=time(17))
            )
            session.add(provider)
    database.dispose()
    st.cache_data.clear()
    at = app_as("staff", PAGE)
    assert at.button_group(key="calendar_view").value == "Day by provider"
    assert "resourceTimeGridDay" in _component_key(at)
    at.button_group(key="calendar_view").set_value("Week by provider").run()
    assert "resourceTimeGridWeek" in _component_key(at) and not at.exception


def _drawn(at) -> dict:
    """The events and options the calendar component was given in the last run."""
    component = next(e for e in at.main if e.type == "component_instance")
    return json.loads(component.proto.json_args)


def test_a_visit_of_several_services_is_titled_by_all_of_them_or_its_package(app_as, app_db):
    """Before, the calendar named a visit by its first service only ('… · Consultation')."""
    from db.models import AppointmentService, Package, Service

    ident, start, _, _, tz = _upcoming(app_db)
    database = _database(app_db)
    with database.write() as session:
        row = session.get(Appointment, ident)
        first = session.get(Service, row.service_id).name
        other = session.scalars(
            select(Service).where(Service.id != row.service_id).order_by(Service.id).limit(1)
        ).one()
        session.add(AppointmentService(appointment_id=ident, service_id=other.id, position=1))
        patient = f"{row.patient.first_name} {row.patient.last_name}"
    database.dispose()
    at = _goto(app_as("staff", PAGE), start, tz)
    [event] = [e for e in _drawn(at)["events"] if e.get("id") == str(ident)]
    assert event["title"].startswith(f"{patient} · {first} + {other.name}")

    database = _database(app_db)
    with database.write() as session:
        package = Package(name="Glow", price_cents=12000)
        session.add(package)
        session.flush()
        session.get(Appointment, ident).package_id = package.id
    database.dispose()
    st.cache_data.clear()
    at = _goto(app_as("staff", PAGE), start, tz)
    [event] = [e for e in _drawn(at)["events"] if e.get("id") == str(ident)]
    assert event["title"].startswith(f"{patient} · Glow ({first} + {other.name})")


def test_the_room_view_lays_out_the_day_by_room_and_equipment(app_as, app_db):
    database = _database(app_db)
    with database.read() as session:  # an upcoming booking that needs a room or the laser
        row = session.scalars(
            select(Appointment)
            .join(ServiceResource, ServiceResource.service_id == Appointment.service_id)
            .join(Resource, Resource.id == ServiceResource.resource_id)
            .where(
                Appointment.clinic_id == 1,
                Resource.clinic_id == 1,
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.start_at > utcnow() + timedelta(hours=2),
            )
            .order_by(Appointment.start_at)
            .limit(1)
        ).one()
        ident, start, end, provider = row.id, row.start_at, row.end_at, row.provider_id
        tz = session.get(Clinic, 1).timezone
        rooms = {
            f"room-{r.id}": r.name
            for r in session.scalars(select(Resource).where(Resource.clinic_id == 1))
        }
        needed = {
            f"room-{r}"
            for r in session.scalars(
                select(ServiceResource.resource_id).where(
                    ServiceResource.service_id == row.service_id,
                    ServiceResource.resource_id.in_([int(k[5:]) for k in rooms]),
                )
            )
        }
    database.dispose()
    at = _goto(app_as("staff", PAGE), start, tz)
    at.button_group(key="calendar_view").set_value("Day by room").run()
    assert not at.exception, at.exception
    assert "resourceTimelineDay" in _component_key(at)
    drawn = _drawn(at)
    options, events = drawn["options"], drawn["events"]
    assert {r["id"]: r["title"].split(" (×")[0] for r in options["resources"]} == rooms
    assert {r["kind"] for r in options["resources"]} == {"Rooms", "Equipment"}
    assert options["editable"] is False and options["selectable"] is False  # nothing to drag
    [mine] = [e for e in events if e.get("id") == str(ident)]
    assert set(mine["resourceIds"]) == needed and mine["editable"] is False
    held = {r for e in events for r in e.get("resourceIds", [])}
    assert held <= set(rooms)  # every event sits in a room's or equipment's row
    at = _send(
        at,
        {
            "callback": "eventClick",
            "eventClick": {"event": _event(ident, start, end, provider, tz), "view": {}},
        },
    )
    assert not at.exception and any(f"{ident} · " in h.value for h in at.subheader)
    at.button_group(key="calendar_view").set_value("Week by room").run()
    assert "resourceTimelineWeek" in _component_key(at) and not at.exception


def test_status_colours_get_the_text_colour_that_reads_on_them():
    assert ink("#f9a825") == "black" and ink("#9e9e9e") == "black"  # amber, grey
    assert ink("#1565c0") == "white" and ink("#6a1b9a") == "white"  # blue, purple


def test_a_deactivated_provider_keeps_a_column_while_they_have_bookings(app_as, app_db):
    from db.models import Provider

    ident, start, _, provider_id, tz = _upcoming(app_db)
    database = _database(app_db)
    with database.write() as session:
        provider = session.get(Provider, provider_id)
        provider.active, name = False, provider.name
    database.dispose()
    at = _goto(app_as("staff", PAGE), start, tz)
    assert "resourceTimeGridWeek" in _component_key(at)  # the week by provider
    drawn = _drawn(at)
    columns = {r["id"]: r["title"] for r in drawn["options"]["resources"]}
    assert columns[str(provider_id)] == f"{name} (inactive)"
    [event] = [e for e in drawn["events"] if e.get("id") == str(ident)]
    assert event["resourceId"] == str(provider_id)


def _booking(start: str, end: str, **extra) -> dict:
    return {"id": "1", "title": "x", "start": start, "end": end, **extra}


def test_the_time_grid_widens_to_every_booking_outside_its_default_hours():
    opts = {"resources": [], "business_hours": [], "editable": True}
    default = cw.options("resourceTimeGridDay", date(2026, 12, 7), "Europe/London", **opts)
    assert (default["slotMinTime"], default["slotMaxTime"]) == ("07:00:00", "21:00:00")
    early_late = [
        _booking("2026-12-07T03:30:00+00:00", "2026-12-07T03:45:00+00:00"),
        _booking("2026-12-07T10:00:00+00:00", "2026-12-07T10:30:00+00:00"),
        _booking("2026-12-08T21:15:00+00:00", "2026-12-08T22:10:00+00:00"),
        # time off does not open the night
        _booking("2026-12-09T00:00:00+00:00", "2026-12-10T00:00:00+00:00", display="background"),
    ]
    wide = cw.options(
        "resourceTimeGridWeek", date(2026, 12, 7), "Europe/London", events=early_late, **opts
    )
    assert (wide["slotMinTime"], wide["slotMaxTime"]) == ("03:00:00", "23:00:00")
    # wall times as written (the clinic's), and a booking across midnight shows the whole day
    assert cw.hours_shown([_booking("2026-12-07T20:00:00-05:00", "2026-12-07T21:00:00-05:00")]) == (
        7,
        21,
    )
    overnight = [_booking("2026-12-07T23:00:00+00:00", "2026-12-08T01:00:00+00:00")]
    assert cw.hours_shown(overnight) == (0, 24)


def test_a_booking_at_half_past_three_shows_in_the_day_by_provider(app_as, app_db):
    from core.kernel.clock import local_to_utc

    ident, start, _, _, tz = _upcoming(app_db)
    early = local_to_utc(to_local(start, tz).date(), time(3, 30), tz)
    database = _database(app_db)
    with database.write() as session:  # as booked with the outside-hours override
        row = session.get(Appointment, ident)
        row.start_at, row.end_at = early, early + timedelta(minutes=15)
    database.dispose()
    at = _goto(app_as("staff", PAGE), early, tz)
    at.button_group(key="calendar_view").set_value("Day by provider").run()
    assert not at.exception, at.exception
    drawn = _drawn(at)
    assert any(e.get("id") == str(ident) for e in drawn["events"])
    assert drawn["options"]["slotMinTime"] == "03:00:00"
    assert drawn["options"]["slotMaxTime"] == "21:00:00"


def test_the_controls_have_the_width_they_need_at_1400_px(app_as):
    """The eight views need about 800 px: a row of their own (in a column they ended in
    "Wee…"); "New appointment" stands beside the title, whole (in the filters' row it was cut
    to "New appoin…", then to "+ N…" at 1280 px as "New")."""
    at = app_as("staff", PAGE)

    def keys(block):
        for child in getattr(block, "children", {}).values():
            yield getattr(child, "key", None)
            yield from keys(child)

    assert all("calendar_view" not in keys(column) for column in at.columns)
    new = at.button(key="calendar_new")
    assert new.label == "New appointment"
    # in the title's row (a column of its own beside the title's), not the filters'
    assert any(t.value == "Calendar" for c in at.columns for t in c.title)
    (holder,) = [c for c in at.columns if "calendar_new" in keys(c)]
    assert not {"calendar_clinic", "calendar_statuses"} & set(keys(holder))


def test_the_date_and_its_buttons_and_the_filters_keep_their_words_at_1024_px(app_as):
    """At 1024 px the date's columns (a share of the page each) left ◀ and ▶ empty boxes,
    Today 'T…' and the date '06/12/20', and the filters' cut the clinic to 'Harbour St'
    (seen in Chromium). Each now sits in a row that wraps, as wide as its words need: the
    date and the clinic at a width of their own, the buttons at their labels' (checked in
    Chromium at 1024 and 1280 px)."""
    at = app_as("staff", PAGE)

    def holder(key):
        return block_around(at, key)

    for keys in (
        ("calendar_day", "calendar_prev", "calendar_today", "calendar_next"),
        ("calendar_clinic", "calendar_providers", "calendar_statuses"),
    ):
        rows = {id(holder(k)[0]) for k in keys}
        assert len(rows) == 1, keys  # one row
        row, in_column = holder(keys[0])
        assert not in_column, keys
        assert row.proto.flex_container.direction == 2, keys  # horizontal (wraps)
        assert row.proto.flex_container.wrap, keys


def test_the_original_time_held_for_a_proposal_is_drawn_and_opens_its_visit(app_as, app_db):
    """A visit moved by a proposal waiting for the patient keeps its original time (booking
    there is refused): the calendar draws that time as held in the provider's column, the
    legend names it, and a click on it opens the visit. Before, the time was drawn free."""
    from core.kernel.accounts import actor_of
    from core.kernel.authz import patient_actor
    from core.requests import changes
    from db.models import User

    ident, start, end, provider, tz = _upcoming(app_db)
    database = _database(app_db)
    with database.write() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        patient = session.get(Appointment, ident).patient
        name = f"{patient.first_name} {patient.last_name}"
        change_id = changes.request_change(
            session, patient_actor(name), ident, kind="reschedule", requested_day=start.date()
        ).id
    with database.write() as session:
        changes.propose_for_change(
            session,
            manager,
            change_id,
            start_at=start + timedelta(days=7),
            allow_double_booking=True,
            outside_hours_override=True,
        )
    database.dispose()
    at = _goto(app_as("staff", PAGE), start, tz)
    assert not at.exception, at.exception
    assert "Held (original time)" in at.markdown[0].value
    [held] = [e for e in _drawn(at)["events"] if e.get("id") == f"held-{ident}"]
    assert held["title"] == f"Held: {name} (#{ident}) — answering a proposed time"
    assert (held["start"], held["end"]) == (cal.local_iso(start, tz), cal.local_iso(end, tz))
    assert (held["resourceId"], held["editable"]) == (str(provider), False)
    assert held["classNames"] == [cal.HELD_CLASS] and held["color"] == cal.HELD_COLOUR
    at = _send(at, {"callback": "eventClick", "eventClick": {"event": held, "view": {}}})
    assert not at.exception, at.exception
    assert any(f"{ident} · " in h.value for h in at.subheader)


@pytest.mark.parametrize("view, days", [("Week by provider", 7), ("Day by provider", 1)])
def test_previous_and_next_with_the_date_box_emptied_step_from_the_clinics_today(
    monkeypatch, view, days
):
    """With the date box emptied, ◀ and ▶ stepped from the server's date, which is another day
    than the clinic's for hours every day in a zone far from the server's (Auckland, Honolulu).
    They step from the clinic's today, as the Today button goes to it."""
    clinic_today = date.today() + timedelta(days=200)  # a day the server is not on
    state = {cw.VIEW_KEY: view, cw.DAY_KEY: None}
    monkeypatch.setattr(st, "session_state", state)
    cw._step(-1, clinic_today)
    assert state[cw.DAY_KEY] == clinic_today - timedelta(days=days)
    state[cw.DAY_KEY] = None
    cw._step(1, clinic_today)
    assert state[cw.DAY_KEY] == clinic_today + timedelta(days=days)


def test_the_month_view_shows_the_month_of_the_date_chosen(app_as):
    """The calendar was told to start at the first day of the month's grid, the Monday
    before the 1st: FullCalendar took that day's month, so the 7th of December showed
    November, its last row alone filled (seen in Chromium)."""
    day = date.today().replace(day=7)
    while day.replace(day=1).weekday() == 0:  # a month whose grid starts the month before
        day = (day.replace(day=28) + timedelta(days=7)).replace(day=7)
    at = app_as("staff", PAGE)
    at.button_group(key="calendar_view").set_value("Month").run()
    at.date_input(key="calendar_day").set_value(day).run()
    shown = date.fromisoformat(_drawn(at)["options"]["initialDate"])
    assert (shown.year, shown.month) == (day.year, day.month), shown
    # the week views still start on Monday (FullCalendar's firstDay)
    at.button_group(key="calendar_view").set_value("Week").run()
    assert _drawn(at)["options"]["initialView"] == "timeGridWeek"


def test_a_busy_month_shows_each_day_whole_with_more_behind_a_link(app_as):
    """A month's days listed every visit, a weekday of the demo's 20 or more, so each week
    grew taller than the frame and the month's later weeks were out of sight (seen in
    Chromium at 1024 and 1280 px). A day shows what fits and '+N more', which opens the rest."""
    at = app_as("staff", PAGE)
    at.button_group(key="calendar_view").set_value("Month").run()
    assert _drawn(at)["options"]["views"]["dayGridMonth"]["dayMaxEvents"] is True


def test_a_week_by_provider_keeps_each_providers_column_readable_and_scrolls_sideways(app_as):
    """At 1024 px a week by provider split the page's column into 21 columns of about 24 px
    (3 providers × 7 days): each visit a sliver, the names written sideways (seen in
    Chromium). The view is as wide as its columns need, PROVIDER_COLUMN_PX each, and
    scrolls sideways inside the calendar's frame (FullCalendar's dayMinWidth needs a plugin
    streamlit-calendar does not register); a day by provider too, for a large team. Checked
    in Chromium at 1024 and 1280 px: names on two lines, visits' times and names readable."""
    at = app_as("staff", PAGE)
    drawn = _drawn(at)
    assert drawn["options"]["initialView"] == "resourceTimeGridWeek"
    columns = 7 * len(drawn["options"]["resources"])
    wide = cw.AXIS_PX + columns * cw.PROVIDER_COLUMN_PX
    assert f".fc-resourceTimeGridWeek-view {{ min-width: {wide}px; }}" in drawn["custom_css"]
    assert ".fc-view-harness { overflow-x: auto; }" in drawn["custom_css"]
    assert cw.PROVIDER_COLUMN_PX >= 90
    at.button_group(key="calendar_view").set_value("Day by provider").run()
    wide = cw.AXIS_PX + len(drawn["options"]["resources"]) * cw.PROVIDER_COLUMN_PX
    assert f".fc-resourceTimeGridDay-view {{ min-width: {wide}px; }}" in _drawn(at)["custom_css"]
    at.button_group(key="calendar_view").set_value("Month").run()
    assert "min-width" not in _drawn(at)["custom_css"]


def test_the_room_views_name_each_room_whole_at_1024_px(app_as):
    """The room views' names took 22% of the calendar: at 1024 px some 124 px, which cut the
    header to 'Rooms and e…' and 'Treatment room' to 'Treatment r…' (seen in Chromium). The
    names' column has its own width, ROOM_NAMES_PX, enough for the header (checked in
    Chromium at 1024 and 1280 px: header and names whole, the hours scrolling beside them)."""
    at = app_as("staff", PAGE)
    at.button_group(key="calendar_view").set_value("Day by room").run()
    assert "resourceTimelineDay" in _component_key(at)
    assert _drawn(at)["options"]["resourceAreaWidth"] == f"{cw.ROOM_NAMES_PX}px"
    assert cw.ROOM_NAMES_PX >= 190
