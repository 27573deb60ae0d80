"""Golden paths in real Chromium: the calendar's week view shows demo events inside the
component's iframe, clicking one opens its details, selecting a free time books a patient there
through the form, and a picture of a generated check-in QR code checks the patient in."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import func, select

from core.kernel.authz import SYSTEM
from core.kernel.clock import local_days_bounds, to_local
from core.kernel.config import load_settings
from core.scheduling import checkin
from core.scheduling.availability import find_conflicts
from core.startup import open_database
from db.models import Appointment, AppointmentKind, AppointmentStatus, Patient
from db.types import utcnow
from tests.support.browser import wait_for_app_idle

CALENDAR_FRAME = 'iframe[title="streamlit_calendar.calendar"]'
TZ = "Europe/London"
# every frame counts the drawing requests ("streamlit:render") it receives, on the top window
COUNT_RENDERS = """if (window !== window.top) window.addEventListener('message', (e) => {
  const top = window.top;
  if (e.data && e.data.type === 'streamlit:render') top.__renders = (top.__renders || 0) + 1;
});"""


def _database(tmp_path):
    return open_database(
        load_settings(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "CLINICDESK_SECRET_KEY": "k" * 40}
        )
    )


def _calendar(page, showing: str):
    """The calendar's frame once it shows `showing` (a CSS selector). A new view or window is a
    new component: for a moment the old and the new iframe are both on the page."""
    page.wait_for_function(
        """(sel) => [...document.querySelectorAll('iframe[title="streamlit_calendar.calendar"]')]
                     .some(f => f.contentDocument && f.contentDocument.querySelector(sel))""",
        arg=showing,
        timeout=30000,
    )
    expect(page.locator(CALENDAR_FRAME)).to_have_count(1, timeout=30000)
    return page.frame_locator(CALENDAR_FRAME)


def _pick(page, key: str, text: str, tries: int = 30) -> None:
    """Choose the first option matching `text` in a selectbox whose options arrive with the
    rerun that a previous input started (open it again until they are there)."""
    for _ in range(tries):
        page.locator(f".st-key-{key} input").click()
        option = page.get_by_role("option", name=re.compile(text)).first
        try:
            expect(option).to_be_visible(timeout=1000)
        except AssertionError:
            page.keyboard.press("Escape")
            continue
        option.click()
        return
    raise AssertionError(f"no option matching {text!r} in {key}")


def _twin_in_its_week(session, appointment) -> bool:
    """Whether the week view would show another event with the appointment's title (its
    patient and service), which the click on the first one found might open instead."""
    day = to_local(appointment.start_at, TZ).date()
    monday = day - timedelta(days=day.weekday())
    start, end = local_days_bounds(monday, monday + timedelta(days=6), TZ)
    return bool(
        session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.id != appointment.id,
                Appointment.patient_id == appointment.patient_id,
                Appointment.service_id == appointment.service_id,
                Appointment.start_at >= start,
                Appointment.start_at < end,
            )
        )
    )


def _open(page, title):
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=20000)
    wait_for_app_idle(page)


def test_week_view_click_and_booking_from_a_selected_slot(chromium_browser, sign_in, tmp_path):
    database = _database(tmp_path)
    now = utcnow()
    today = to_local(now, TZ).date()
    this_week = today - timedelta(days=today.weekday())  # the week shown first (from Monday)
    next_week = this_week + timedelta(days=7)
    with database.read() as session:  # a demo appointment of Harbour Street later this week
        # or, after Friday's last visit and at the weekend (nobody works then), next week
        candidates = session.scalars(
            select(Appointment)
            .where(
                Appointment.clinic_id == 1,
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.start_at > now,
                Appointment.start_at
                < local_days_bounds(this_week, next_week + timedelta(days=6), TZ)[1],
            )
            .order_by(Appointment.start_at, Appointment.id)
        )
        shown = next(  # one no other event overlaps on screen (the team meeting may)
            a
            for a in candidates
            if not find_conflicts(session, a.provider_id, a.start_at, a.end_at, a.id)
            and not _twin_in_its_week(session, a)
        )
        ident, title = shown.id, f"{shown.patient.full_name} · {shown.service.name}"
        ahead = to_local(shown.start_at, TZ).date() >= next_week
    context = chromium_browser.new_context(viewport={"width": 1600, "height": 1100})
    context.add_init_script(COUNT_RENDERS)
    page = context.new_page()
    sign_in(page, "staff")
    _open(page, "Calendar")
    frame = _calendar(page, ".fc-resourceTimeGridWeek-view")
    # the frame has its height from the start, so Streamlit sends the events once and
    # FullCalendar draws them once (a frame that grows to its height is sent them again)
    assert page.locator(CALENDAR_FRAME).get_attribute("height") == "760"
    page.wait_for_timeout(500)  # a second drawing request would have arrived by now
    assert page.evaluate("() => window.__renders") == 1
    # each provider's name stays inside its own narrow column (it was written over the next one)
    overflowing = frame.locator(".fc-col-header-cell.fc-resource").evaluate_all(
        "cells => cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)"
    )
    assert frame.locator(".fc-col-header-cell.fc-resource").count() > 0 and not overflowing
    # and reads whole: across its column (PROVIDER_COLUMN_PX wide), on two lines at most,
    # broken between words only, never every few letters
    broken = frame.locator(".fc-resource .fc-col-header-cell-cushion").evaluate_all(
        """names => names.filter(n => {
            const text = n.firstChild, r = document.createRange();
            r.selectNodeContents(n);
            const lines = new Set([...r.getClientRects()].map(b => Math.round(b.top))).size;
            let at = 0;
            const split = n.textContent.split(" ").some(word => {
                const w = document.createRange();
                w.setStart(text, at); w.setEnd(text, at + word.length); at += word.length + 1;
                return new Set([...w.getClientRects()].map(b => Math.round(b.top))).size > 1;
            });
            return lines > 2 || split;
        }).map(n => n.innerText)"""
    )
    assert not broken, broken
    if ahead:
        wait_for_app_idle(page)
        page.locator(".st-key-calendar_next").get_by_role("button", name="▶").click()
        frame = _calendar(page, f'.fc-resourceTimeGridWeek-view [data-date="{next_week}"]')
        wait_for_app_idle(page)
    expect(frame.locator(".fc-event").first).to_be_visible(timeout=30000)
    event = frame.locator(f'.fc-event:has-text("{title}")').first
    expect(event).to_be_attached()
    event.click()
    expect(page.get_by_role("heading", name=f"#{ident} ·")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    expect(page.get_by_text("Status: scheduled")).to_be_visible()

    # rooms and equipment in rows: a booking sits in the row of each room it uses
    page.locator(".st-key-calendar_view").get_by_role("radio", name="Week by room").click()
    frame = _calendar(page, ".fc-resourceTimelineWeek-view")
    expect(frame.locator(".fc-datagrid-cell", has_text="Treatment room")).to_be_visible(
        timeout=30000
    )
    expect(frame.locator(".fc-timeline-event").first).to_be_attached(timeout=30000)
    wait_for_app_idle(page)

    # tomorrow, one provider per column: select 20:00 in the first column and book there
    page.locator(".st-key-calendar_view").get_by_role("radio", name="Day by provider").click()
    _calendar(page, ".fc-resourceTimeGridDay-view")
    wait_for_app_idle(page)
    if ahead:  # the calendar shows a day of next week: back to today first
        page.locator(".st-key-calendar_today").get_by_role("button", name="Today").click()
        _calendar(page, f'.fc-resourceTimeGridDay-view [data-date="{today}"]')
        wait_for_app_idle(page)
    page.locator(".st-key-calendar_next").get_by_role("button", name="▶").click()
    tomorrow = to_local(utcnow(), "Europe/London").date() + timedelta(days=1)
    frame = _calendar(page, f'.fc-resourceTimeGridDay-view [data-date="{tomorrow}"]')
    expect(frame.locator(".fc-toolbar-title")).to_have_text(
        f"{tomorrow.day} {tomorrow:%B} {tomorrow.year}",
        timeout=30000,  # en-GB: day month year
    )
    wait_for_app_idle(page)
    lane = frame.locator('.fc-timegrid-slot-lane[data-time="20:00:00"]')
    expect(lane).to_be_visible(timeout=30000)
    lane.click(position={"x": 40, "y": 5}, force=True)  # over the shading of after-hours
    expect(page.get_by_text("20:00", exact=False).first).to_be_visible(timeout=20000)
    page.locator(".st-key-calendar_book_slot button").click()
    expect(page.get_by_role("heading", name="New appointment")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    page.locator(".st-key-book_all label").click()
    expect(page.locator(".st-key-book_provider input")).to_have_value(re.compile("not working"))
    wait_for_app_idle(page)
    page.locator(".st-key-book_services").click()
    page.get_by_role("option", name="Follow-up (15 min, can be virtual)").click()
    page.keyboard.press("Escape")
    expect(page.get_by_text("Length: 15 minutes")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    page.locator(".st-key-book_search input").fill("Santos")
    page.locator(".st-key-book_search input").press("Enter")
    _pick(page, "book_patient", "Santos")
    expect(page.locator(".st-key-book_patient input")).to_have_value(re.compile("Santos"))
    wait_for_app_idle(page)
    page.locator(".st-key-book_outside label").click()
    expect(page.locator(".st-key-book_outside input")).to_be_checked()
    wait_for_app_idle(page)
    page.locator(".st-key-book_submit button").click()
    expect(
        page.get_by_text("Booked #", exact=False).or_(page.get_by_test_id("stAlertContentError"))
    ).to_be_visible(timeout=20000)
    errors = page.get_by_test_id("stAlertContentError").all_inner_texts()
    assert not errors, errors
    expect(page.get_by_text("Booked #", exact=False)).to_be_visible(timeout=20000)
    wait_for_app_idle(page)

    with database.read() as session:
        booked = session.scalars(select(Appointment).order_by(Appointment.id.desc()).limit(1)).one()
        name = session.get(Patient, booked.patient_id).full_name
        assert booked.outside_hours_override
        assert to_local(booked.start_at, "Europe/London").strftime("%H:%M") == "20:00"
    database.dispose()
    _open(page, "Calendar")  # back on the calendar: tomorrow, one column per provider
    page.locator(".st-key-calendar_view").get_by_role("radio", name="Day by provider").click()
    _calendar(page, ".fc-resourceTimeGridDay-view")
    wait_for_app_idle(page)
    page.locator(".st-key-calendar_next").get_by_role("button", name="▶").click()
    frame = _calendar(page, f'.fc-resourceTimeGridDay-view [data-date="{tomorrow}"]')
    expect(frame.locator(f'.fc-event:has-text("{name} · Follow-up")')).to_be_visible(timeout=30000)
    context.close()


def test_a_picture_of_the_check_in_qr_code_checks_the_patient_in(
    chromium_browser, sign_in, tmp_path
):
    database = _database(tmp_path)
    with database.write() as session:
        # today at the clinic (check-in opens on the day): ten minutes on, or ago late at night
        late = to_local(utcnow(), "Europe/London").hour >= 12
        start = utcnow() + timedelta(minutes=-10 if late else 10)
        row = Appointment(
            clinic_id=1,
            provider_id=1,
            patient_id=7,
            service_id=1,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        session.add(row)
        session.flush()
        ident, (_, png) = row.id, checkin.issue_code_for(session, SYSTEM, row.id)
    (tmp_path / "qr.png").write_bytes(png)
    context = chromium_browser.new_context()
    page = context.new_page()
    sign_in(page, "staff")
    _open(page, "Check-in")
    page.get_by_role("tab", name="Picture file").click()
    page.locator('.st-key-check_in_file input[type="file"]').set_input_files(
        str(tmp_path / "qr.png")
    )
    said = re.compile(rf"^Checked in: .+ at .+ \(#{ident}\)\.$")  # who, what and when
    expect(page.get_by_text(said)).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    with database.read() as session:
        assert session.get(Appointment, ident).status == AppointmentStatus.CHECKED_IN
    # the same code a second time, typed as a scanner would: refused, it works once
    page.locator(".st-key-check_in_code input").fill(checkin.decode_qr(png))
    page.locator(".st-key-check_in_code input").press("Enter")
    expect(page.get_by_text("a code works once", exact=False)).to_be_visible(timeout=20000)
    database.dispose()
    context.close()
