"""AppTest: the Today board — the default page, stages per provider, and its actions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import streamlit as st
from sqlalchemy import select, update

from core.kernel.clock import to_local
from core.kernel.config import load_settings
from core.kernel.money import format_clock
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentConfirmation,
    AppointmentKind,
    AppointmentStatus,
    CancellationPolicy,
    Provider,
    ProviderClinic,
    TimeOff,
)
from db.types import utcnow
from tests.pages.conftest import count_rows, every_clinic_speaks, free_the_time, today_in

PAGE = "app_pages/today.py"


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    """st.cache_data lives as long as the process: each test has its own database copy."""
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _add(url, start, status=AppointmentStatus.SCHEDULED, clinic_id=1, provider_id=1):
    database = _db(url)
    with database.write() as session:
        row = Appointment(
            clinic_id=clinic_id,
            provider_id=provider_id,
            patient_id=1,
            service_id=1,
            status=status,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            kind=AppointmentKind.APPOINTMENT,
        )
        session.add(row)
        session.flush()
        ident = row.id
    database.dispose()
    return ident


def _status(url, ident):
    database = _db(url)
    with database.read() as session:
        status = session.scalar(select(Appointment.status).where(Appointment.id == ident))
    database.dispose()
    return status


def test_today_is_the_landing_page_for_every_role(app_as):
    for user in ("owner", "manager", "staff"):
        at = app_as(user)
        assert not at.exception, at.exception
        assert at.title[0].value == "Today"
        assert {m.label.split(" ", 1)[1] for m in at.metric} >= {"Waiting", "With provider", "Done"}


def _board(at):
    """The board's table (the call list above it is a table too)."""
    return next(d for d in at.dataframe if "Stage" in d.value.columns).value


def _select(at, ident):
    """Select the appointment's row in the board (the table's index is the appointment id)."""
    position = list(_board(at).index).index(ident)
    at.session_state["today_table"] = {"selection": {"rows": [position], "columns": []}}
    at.run()
    return {b.key for b in at.button}


def _stage_of(at, ident):
    return _board(at).loc[ident, "Stage"]


def test_buttons_follow_the_time_and_status(app_as, app_db):
    later = _add(app_db, today_in(20))
    started = _add(app_db, today_in(-5))
    at = app_as("staff", PAGE)
    assert not any(b.key.startswith("today_in_") for b in at.button)  # nothing selected yet
    keys = _select(at, later)
    assert f"today_in_{later}" in keys
    assert f"today_done_{later}" not in keys and f"today_noshow_{later}" not in keys
    keys = _select(at, started)
    assert {f"today_in_{started}", f"today_done_{started}", f"today_noshow_{started}"} <= keys
    keys = _select(at, later)
    at.button(key=f"today_in_{later}").click().run()
    assert not at.exception and not at.error, at.error
    assert _status(app_db, later) == AppointmentStatus.CHECKED_IN
    assert "arrived" in at.success[0].value
    assert f"today_done_{later}" not in _select(at, later)  # not due yet
    _select(at, started)
    at.button(key=f"today_noshow_{started}").click().run()
    assert _status(app_db, started) == AppointmentStatus.SCHEDULED  # asked first
    assert "as a no-show?" in at.warning[0].value and "told at once" in at.warning[0].value
    at.button(key=f"today_noshow_yes_{started}").click().run()
    assert _status(app_db, started) == AppointmentStatus.NO_SHOW
    flash = at.success[0].value
    assert "recorded as a no-show." in flash and "Now no" not in flash, flash
    assert "No-show" in _stage_of(at, started) and "Waiting" in _stage_of(at, later)


def test_a_mistaken_arrival_can_be_undone(app_as, app_db):
    ident = _add(app_db, today_in(20))
    at = app_as("staff", PAGE)
    _select(at, ident)
    at.button(key=f"today_in_{ident}").click().run()
    assert _status(app_db, ident) == AppointmentStatus.CHECKED_IN
    assert f"today_undo_in_{ident}" in _select(at, ident)
    at.button(key=f"today_undo_in_{ident}").click().run()
    assert not at.error, at.error
    assert _status(app_db, ident) == AppointmentStatus.SCHEDULED
    assert "check-in undone" in at.success[0].value
    assert f"today_in_{ident}" in _select(at, ident)


def test_a_no_show_is_confirmed_first_and_names_the_fee(app_as, app_db):
    database = _db(app_db)
    with database.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=1,
                service_id=1,  # the visit's service: its override wins over the clinic's
                version=99,
                effective_at=utcnow() - timedelta(minutes=1),
                window_hours=24,
                late_cancel_fee_cents=0,
                no_show_fee_cents=2500,
                points_deducted=0,
                policy_text="",
            )
        )
    database.dispose()
    ident = _add(app_db, today_in(-5))
    at = app_as("staff", PAGE)
    _select(at, ident)
    at.button(key=f"today_noshow_{ident}").click().run()
    assert "a no-show fee of £25.00 is recorded" in at.warning[0].value, at.warning
    at.button(key=f"today_noshow_no_{ident}").click().run()
    assert _status(app_db, ident) == AppointmentStatus.SCHEDULED
    assert not at.warning and f"today_noshow_yes_{ident}" not in {b.key for b in at.button}


def test_provider_filter_narrows_the_board(app_as, app_db):
    ident = _add(app_db, today_in(40))
    at = app_as("staff", PAGE)
    assert ident in _board(at).index
    box = at.selectbox(key="today_provider")
    assert box.options[0] == "All providers"
    box.select(1).run()  # provider #1, the one the appointment is with
    shown = _board(at)
    assert len(set(shown["Provider"])) == 1 and ident in shown.index
    assert not at.exception, at.exception


def test_tomorrows_unconfirmed_visits_are_folded_and_open_on_the_phone_numbers(app_as, app_db):
    """The fold is named for what it lists, not 'Call list', the name of Front desk → Call
    list (high no-show risk visits of the next days): a practice took one for the other."""
    tomorrow = utcnow().replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=1)
    _add(app_db, tomorrow)  # scheduled, not confirmed by the patient
    at = app_as("staff", PAGE)

    def panel():
        return next(e for e in at.expander if e.label.startswith("Unconfirmed for tomorrow: "))

    assert not [e for e in at.expander if "call list" in e.label.lower()]
    assert panel().label.endswith(" to call")
    count = int(panel().label.split()[3])
    assert count >= 1
    assert not panel().dataframe  # folded: the table is not built
    at.session_state["today_calls_open"] = True  # a click on the fold
    at.run()
    calls = panel().dataframe[0].value
    assert len(calls) == count and list(calls.columns)[:3] == ["#", "Time", "Patient"]


def test_a_mistaken_no_show_can_be_undone_after_a_confirmation(app_as, app_db):
    database = _db(app_db)
    with database.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=1,
                service_id=1,
                version=99,
                effective_at=utcnow() - timedelta(minutes=1),
                window_hours=24,
                late_cancel_fee_cents=0,
                no_show_fee_cents=2500,
                points_deducted=0,
                policy_text="",
            )
        )
    database.dispose()
    ident = _add(app_db, today_in(-5))
    free_the_time(app_db, ident)  # the demo's bookings around now would need double booking
    recorded_earlier = _add(app_db, today_in(-5), AppointmentStatus.NO_SHOW)  # no record of when
    at = app_as("staff", PAGE)
    _select(at, ident)
    at.button(key=f"today_noshow_{ident}").click().run()
    at.button(key=f"today_noshow_yes_{ident}").click().run()
    assert _status(app_db, ident) == AppointmentStatus.NO_SHOW
    assert f"today_undo_noshow_{recorded_earlier}" not in _select(at, recorded_earlier)
    assert f"today_undo_noshow_{ident}" in _select(at, ident)
    at.button(key=f"today_undo_noshow_{ident}").click().run()
    warning = at.warning[0].value
    assert "no-show" in warning and "the no-show fee of £25.00 is waived" in warning, warning
    at.button(key=f"today_undo_noshow_no_{ident}").click().run()  # keep it
    assert _status(app_db, ident) == AppointmentStatus.NO_SHOW and not at.warning
    at.button(key=f"today_undo_noshow_{ident}").click().run()
    at.button(key=f"today_undo_noshow_yes_{ident}").click().run()
    assert not at.error, at.error
    assert _status(app_db, ident) == AppointmentStatus.SCHEDULED
    assert "no-show undone, back to scheduled." in at.success[0].value
    keys = _select(at, ident)
    assert f"today_in_{ident}" in keys and f"today_undo_noshow_{ident}" not in keys


def test_undoing_a_merged_duplicates_no_show_says_where_its_points_went(app_as, app_db):
    """A fresh duplicate's no-show took 40 of its opening points; merged since, the undo gives
    them back as one balance would have them (none to the kept record), and the desk's message
    says so. Before, it said only that the no-show was undone."""
    from core.kernel.accounts import actor_of
    from core.patients import merge, records
    from db.models import Patient, User

    database = _db(app_db)
    with database.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=1,
                service_id=1,
                version=99,
                effective_at=utcnow() - timedelta(minutes=1),
                window_hours=24,
                late_cancel_fee_cents=0,
                no_show_fee_cents=0,
                points_deducted=40,
                policy_text="",
            )
        )
        owner = actor_of(session.scalars(select(User).where(User.username == "owner")).one())
        twin = records.create_patient(
            session, owner, first_name="Twin", last_name="Record", different_person=True
        )
        duplicate = twin.id
    ident = _add(app_db, today_in(-5))
    free_the_time(app_db, ident)
    with database.write() as session:
        session.execute(
            update(Appointment).where(Appointment.id == ident).values(patient_id=duplicate)
        )
    at = app_as("staff", PAGE)
    _select(at, ident)
    at.button(key=f"today_noshow_{ident}").click().run()
    at.button(key=f"today_noshow_yes_{ident}").click().run()
    with database.write() as session:
        assert session.get(Patient, duplicate).points_balance == 60
        kept = session.get(Patient, 1).points_balance
        merge.merge_patients(session, owner, 1, duplicate, "One person", allow_overlap=True)
    st.cache_data.clear()  # the merge moved the visit: the board reads it again
    at.run()
    _select(at, ident)
    at.button(key=f"today_undo_noshow_{ident}").click().run()
    at.button(key=f"today_undo_noshow_yes_{ident}").click().run()
    assert not at.error, [e.value for e in at.error]
    said = at.success[0].value
    assert "no-show undone" in said and f"#{duplicate} was merged into #1" in said, said
    assert "gets none of them" in said, said
    with database.read() as session:
        assert session.get(Patient, 1).points_balance == kept
    database.dispose()


def test_undoing_a_no_show_whose_time_was_booked_meanwhile_needs_double_booking(app_as, app_db):
    ident = _add(app_db, today_in(-5))
    free_the_time(app_db, ident)
    at = app_as("staff", PAGE)
    _select(at, ident)
    at.button(key=f"today_noshow_{ident}").click().run()
    at.button(key=f"today_noshow_yes_{ident}").click().run()
    other = _add(app_db, today_in(5))  # booked in the time the no-show freed
    at.button(key=f"today_undo_noshow_{ident}").click().run()
    warning = at.warning[0].value
    assert f"has appointment #{other}" in warning, warning
    assert "Allow double booking to undo it anyway" in warning
    at.button(key=f"today_undo_noshow_yes_{ident}").click().run()  # without the override
    assert f"appointment #{other}" in at.error[0].value, at.error
    assert _status(app_db, ident) == AppointmentStatus.NO_SHOW
    at.button(key=f"today_undo_noshow_{ident}").click().run()
    at.checkbox(key=f"today_undo_noshow_double_{ident}").check().run()
    at.button(key=f"today_undo_noshow_yes_{ident}").click().run()
    assert not at.error, at.error
    assert _status(app_db, ident) == _status(app_db, other) == AppointmentStatus.SCHEDULED


def test_who_confirmed_names_their_start_on_the_clinics_clock(app_as, app_db):
    """A New York (en-US) clinic writes 12-hour times: the line of who confirmed gives each
    start whole ('2:35 PM Alex Morgan (email link)'), not the first five characters of the
    visit's time range ('2:35 ', the AM or PM lost; '11:50' of '11:50 AM – 12:20 PM')."""
    every_clinic_speaks(app_db, "en-US")
    start = today_in(7)
    ident = _add(app_db, start)
    database = _db(app_db)
    with database.write() as session:
        session.add(
            AppointmentConfirmation(appointment_id=ident, start_at=start, channel="email link")
        )
    database.dispose()
    at = app_as("staff", PAGE)
    line = next(t.value for t in at.text if t.value.startswith("Confirmed by the patient:"))
    clock = format_clock(to_local(start, "Europe/London"), "en-US")
    assert clock.endswith(("AM", "PM")) and f"{clock} " in line, (clock, line)


def test_a_visit_added_elsewhere_above_the_selected_row_does_not_move_the_press(app_as, app_db):
    later = _add(app_db, today_in(20))
    at = app_as("staff", PAGE)
    _select(at, later)
    earlier = _add(app_db, today_in(-1))  # another desk books a visit listed above it meanwhile
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.button(key=f"today_in_{later}").click().run()
    board = list(_board(at).index)
    assert board.index(earlier) < board.index(later)
    assert any("The list changed while a row was selected" in i.value for i in at.info)
    assert not any(b.key.startswith("today_in_") for b in at.button)  # no other row taken
    assert _status(app_db, later) == _status(app_db, earlier) == AppointmentStatus.SCHEDULED
    _select(at, later)  # selected again: acts on it
    at.button(key=f"today_in_{later}").click().run()
    assert _status(app_db, later) == AppointmentStatus.CHECKED_IN


def test_the_counters_count_the_provider_the_board_is_filtered_to(app_as, app_db):
    """With a provider chosen, the stage counters add up to the rows shown (they counted the
    whole clinic, so a provider's own day read, say, 9 expected over a table of 3)."""
    mine = [_add(app_db, today_in(30)), _add(app_db, today_in(50))]
    other = _add(app_db, today_in(40), provider_id=2)
    at = app_as("staff", PAGE)
    assert _board(at).loc[other, "Provider"] != _board(at).loc[mine[0], "Provider"]
    box = at.selectbox(key="today_provider")
    box.select(1).run()  # provider #1, the one `mine` are with
    assert not at.exception, at.exception
    shown = _board(at)
    counts = {m.label.split(" ", 1)[1]: int(m.value) for m in at.metric}
    assert sum(counts.values()) == len(shown), (counts, len(shown))
    assert counts["Expected"] == sum("Expected" in s for s in shown["Stage"])
    assert set(mine) <= set(shown.index) and other not in shown.index
    at.selectbox(key="today_provider").select(0).run()  # all providers
    every = {m.label.split(" ", 1)[1]: int(m.value) for m in at.metric}
    assert sum(every.values()) == len(_board(at)) > len(shown)


def test_a_visit_left_booked_with_a_provider_on_time_off_is_flagged(app_as, app_db):
    """The provider called in sick: their visits still on today's board say so, and what to
    do, until each is moved or cancelled."""
    ident = _add(app_db, today_in(30))
    database = _db(app_db)
    with database.write() as session:
        start = session.get(Appointment, ident).start_at
        session.add(
            TimeOff(
                provider_id=1,
                starts_at=start - timedelta(hours=1),
                ends_at=start + timedelta(hours=1),
            )
        )
    database.dispose()
    at = app_as("staff", PAGE)
    assert not at.exception, at.exception
    assert _board(at).loc[ident, "Provider"].endswith(" (on time off)")
    warning = next(w.value for w in at.warning if "on time off" in w.value)
    assert "still booked with a provider on time off" in warning
    assert "cancel it as the practice (no fee), on the Calendar" in warning


def test_the_board_says_which_clinics_day_and_clock_it_shows(app_as):
    """A London desk choosing the New York clinic read its times with no day or zone."""
    at = app_as("staff", PAGE)
    at.selectbox(key="today_clinic").select(2).run()  # the demo's Lakeside Aesthetics
    local = to_local(utcnow(), "America/New_York")
    said = next((c.value for c in at.caption if " at Lakeside" in c.value), "")
    assert said.startswith(f"{local:%a}, {local:%b} {local.day}, {local:%Y} at Lakeside")
    assert said.endswith(f"times are New York time ({local.tzname()})"), said


def test_a_provider_of_two_clinics_lands_on_their_own_day_where_they_work_today(app_as, app_db):
    """Dr Tom Becker (Sam Staff's own provider record) also works at Lakeside in New York,
    where his patient is due today: before, he landed on Harbour Street (his first clinic by
    number), on a board without his day; now on Lakeside, filtered to him."""
    database = _db(app_db)
    with database.write() as session:
        session.execute(update(Provider).where(Provider.id == 2).values(user_id=3))
        session.add(ProviderClinic(provider_id=2, clinic_id=2))
        session.execute(  # his London day is empty: nothing else competes
            update(Appointment)
            .where(Appointment.provider_id == 2, Appointment.clinic_id == 1)
            .values(status=AppointmentStatus.CANCELLED)
        )
    database.dispose()
    ident = _add(app_db, today_in(30, "America/New_York"), clinic_id=2, provider_id=2)
    at = app_as("staff", PAGE)
    assert not at.exception, at.exception
    assert at.selectbox(key="today_clinic").value == 2
    assert at.selectbox(key="today_provider").value == 2
    assert list(_board(at).index) == [ident]


def test_the_selected_visit_opens_its_appointment_page(app_as, app_db):
    """Before, the board hid the appointment's number and led nowhere: a provider with their
    patient waiting could not reach the forms the patient filled in, their notes or history."""
    ident = _add(app_db, today_in(20))
    at = app_as("staff", PAGE)
    _select(at, ident)
    [link] = [e for e in at.get("page_link") if e.proto.label.startswith("Open appointment")]
    assert link.proto.label == f"Open appointment #{ident}: forms and answers, notes, history"
    assert link.proto.query_string == f"id={ident}"
    assert link.proto.page.endswith("appointment")


def test_the_counts_keep_their_stages_names_whole_at_1024_px(app_as):
    """Six columns cut 'Not arrived yet' to 'Not arriv…' and 'With provider' to 'With pro…'
    at 1024 px (seen in Chromium): the counts are one row that wraps, each as wide as its
    name (checked in Chromium at 1024 and 1280 px: one line, every name whole)."""
    at = app_as("staff", PAGE)
    ((row, in_column),) = count_rows(at)
    assert not in_column
    assert row.proto.flex_container.direction == 2 and row.proto.flex_container.wrap
    assert [m.label.split(" ", 1)[1] for m in at.metric][:2] == ["Expected", "Not arrived yet"]


def test_an_arrival_tells_the_desk_who_arrived_not_that_nobody_was_told(app_as, app_db):
    """'Amelia Santos arrived. Notified: nobody.' after every arrival (seen in Chromium) read
    as if someone should have been told and was not; nobody is told of an arrival. The
    headline stands alone when no message went and none was held back; who was told, or
    why not, still follows it when there is something to say."""
    ident = _add(app_db, today_in(20))
    at = app_as("staff", PAGE)
    _select(at, ident)
    at.button(key=f"today_in_{ident}").click().run()
    said = at.success[0].value
    assert said.endswith(" arrived."), said
    assert "Notified" not in said and "nobody" not in said


SELECT_COLUMN_PX = 33  # the row-selection tick boxes' column (measured in Chromium)
CONTENT_AT_1024_PX = 564  # the page's column beside the sidebar at 1024 px (Chromium)


def test_the_board_shows_the_no_show_risk_without_scrolling_at_1024_px(app_as, app_db):
    """At 1280 px the ten columns, each as wide as its longest cell, ran past the page's
    column and the no-show risk, last, was off-screen (seen in Chromium). The time and the
    patient are pinned (they stay while the table scrolls sideways), the risk and the stage
    follow them, and every column has its own width: the columns up to the risk fit beside
    the sidebar at 1024 px (checked in Chromium at 1024 and 1280 px)."""
    _add(app_db, today_in(20))  # a row, whatever the hour
    at = app_as("staff", PAGE)
    board = next(d for d in at.dataframe if "Stage" in d.value.columns)
    config = json.loads(board.proto.columns)
    order = list(board.value.columns)
    pinned = [c for c in order if config.get(c, {}).get("pinned")]
    shown = pinned + [c for c in order if c not in pinned]
    assert shown[:4] == ["Time", "Patient", "No-show risk", "Stage"], shown
    widths = {c: config.get(c, {}).get("width") for c in shown}
    assert all(isinstance(w, int) for w in widths.values()), widths
    assert SELECT_COLUMN_PX + sum(widths[c] for c in shown[:4]) <= CONTENT_AT_1024_PX
    # nothing a desk needs was dropped
    assert sorted(shown) == sorted(
        ["Time", "Patient", "No-show risk", "Stage", "Provider", "Service", "Paid"]
        + ["Waited", "Confirmed", "Forms"]
    )
