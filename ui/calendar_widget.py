"""streamlit-calendar (FullCalendar 6) glue for the Calendar page.

Traps this module handles, so pages do not have to:
- The component gets one key per visible window (view + first day) plus a suffix that is bumped
  to undo a refused drag on screen; within a window the key never changes.
- Only the callbacks the page uses are switched on (each one reruns the script).
- streamlit-calendar 1.4 has no datesSet callback, so the visible range is driven from Streamlit
  (view, date, previous/next) and FullCalendar's own navigation buttons are hidden; the page
  queries exactly that window.
- FullCalendar runs with the clinic's IANA zone and no zone plugin: it shows each event at the
  wall time written in its string and returns clicked times as wall times labelled "Z". Every
  time coming back goes through core.scheduling.calendar.callback_time (clinic zone, DST-safe).
- The component keeps returning its last value on every rerun; `take` hands each new value out
  once.
- A component's frame starts 0 px high unless its arguments carry a `height`, and Streamlit
  sends the same events again once the frame reports its height: FullCalendar drew every visit
  twice. `render` passes the height (FullCalendar's own) through the component's function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import streamlit as st
import streamlit_calendar

from core.kernel.clock import to_local
from core.kernel.money import format_moment, hour_cycle
from core.scheduling import moves
from core.scheduling.calendar import (
    HELD_CLASS,
    OUT_OF_OFFICE_CLASS,
    STATUS_COLOURS,
    TENTATIVE_COLOUR,
    appointment_of,
    callback_time,
)
from db.types import utcnow
from ui.appointment_views import FLASH as FLASH_KEY
from ui.context import refresh, run_action
from ui.text import escape

LICENSE_KEY = "GPL-My-Project-Is-Open-Source"  # FullCalendar Scheduler under the GPL
CALLBACKS = ["eventClick", "select", "eventChange"]
VIEWS = {
    "Week by provider": "resourceTimeGridWeek",
    "Day by provider": "resourceTimeGridDay",
    "Day by room": "resourceTimelineDay",
    "Week by room": "resourceTimelineWeek",
    "Week": "timeGridWeek",
    "Day": "timeGridDay",
    "Month": "dayGridMonth",
    "List (week)": "listWeek",
}
# what the page shows until staff choose otherwise: every status but the ones that free the slot
DEFAULT_STATUSES = [s for s in STATUS_COLOURS if s not in ("cancelled", "declined")]
HEIGHT = 760  # px: FullCalendar's own height, and the frame's from its first draw
ROOM_VIEWS = ("resourceTimelineDay", "resourceTimelineWeek")  # rows: rooms and equipment
ROOM_NAMES_PX = 210  # the room views' column of names: 'Rooms and equipment' whole
CSS = f"""
.fc-event.{OUT_OF_OFFICE_CLASS} {{
  background-image: repeating-linear-gradient(45deg, rgba(255,255,255,.25) 0 6px,
                                              transparent 6px 12px);
  font-style: italic;
}}
.fc-event.{HELD_CLASS} {{
  border: 2px dashed {TENTATIVE_COLOUR} !important;
  font-style: italic;
}}
.fc-non-business {{ background: rgba(120,120,120,.16); }}
.fc-toolbar-title {{ font-size: 1.2rem; }}
/* a provider's name in their column (PROVIDER_COLUMN_PX at least, wide_css): smaller, and
   wrapped inside the column rather than written over the next one */
.fc-col-header-cell {{ overflow: hidden; }}
.fc-col-header-cell.fc-resource .fc-col-header-cell-cushion {{
  font-size: .75rem; font-weight: 500; line-height: 1.15; overflow-wrap: anywhere;
}}
/* a month in a narrow frame (a phone: some 50 px a day): a smaller dot (its colour the
   state's) and line, so an event's time, which starts its text, reads whole ('08:0') */
@media (max-width: 600px) {{
  .fc-daygrid-dot-event {{ padding: 0 1px; }}
  .fc-daygrid-dot-event .fc-daygrid-event-dot {{ border-width: 2px; margin: 0 2px 0 0; }}
  .fc-daygrid-dot-event .fc-event-title {{ font-weight: 500; font-size: .7rem; }}
}}
"""


@dataclass(frozen=True)
class Open:
    """An event was clicked."""

    appointment_id: int


@dataclass(frozen=True)
class Book:
    """A free time was selected: book there."""

    start_at: datetime
    end_at: datetime
    provider_id: int | None


@dataclass(frozen=True)
class Move:
    """An event was dragged (to another time or provider)."""

    appointment_id: int
    start_at: datetime
    end_at: datetime
    provider_id: int | None
    old_start_at: datetime
    old_provider_id: int | None


DAY_HOURS = (7, 21)  # the time grid's default first and last hour (clinic wall time)


def hours_shown(events: list[dict[str, Any]]) -> tuple[int, int]:
    """The time grid's first and last hour: DAY_HOURS widened to the whole hours around every
    event (clinic wall time, as written in its string), so a booking at 03:30 made with the
    outside-hours override is not drawn above the grid's top. Background events (time off,
    buffers) do not widen it: a day's time off would open the whole night."""
    first, last = DAY_HOURS
    for event in events:
        if event.get("display") == "background":
            continue
        try:
            begins = datetime.fromisoformat(event["start"])
            ends = datetime.fromisoformat(event.get("end") or event["start"])
        except (KeyError, TypeError, ValueError):
            continue
        if ends.date() > begins.date():  # across midnight: the grid shows both ends
            first, last = (0 if ends.time() > time(0) else min(first, begins.hour)), 24
            continue
        first = min(first, begins.hour)
        last = max(last, ends.hour + (1 if (ends.minute, ends.second) > (0, 0) else 0))
    return first, last


def options(
    view: str,
    day: date,
    tz: str,
    *,
    resources: list[dict[str, Any]],
    business_hours: list[dict[str, Any]] | None,
    editable: bool,
    locale: str = "en-GB",
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """FullCalendar's options; `day` is the one chosen, FullCalendar drawing the week or month
    around it (the grid's first day, the Monday before the 1st, drew the month before);
    `events` (the ones drawn) widen the time grid past DAY_HOURS."""
    first_hour, last_hour = hours_shown(events or [])
    # the clinic's locale: its day and month order and 24- or 12-hour clock (en-GB: 24 h)
    hour12 = not hour_cycle(locale)
    clock = {"hour": "2-digit" if not hour12 else "numeric", "minute": "2-digit", "hour12": hour12}
    return {
        "locale": locale.lower(),
        "initialView": view,
        "initialDate": day.isoformat(),
        "timeZone": tz,
        "now": to_local(utcnow(), tz).replace(tzinfo=None).isoformat(timespec="seconds"),
        "headerToolbar": {"left": "", "center": "title", "right": ""},
        "firstDay": 1,
        "nowIndicator": True,
        "allDaySlot": False,
        "slotMinTime": f"{first_hour:02d}:00:00",
        "slotMaxTime": f"{last_hour:02d}:00:00",
        "slotDuration": "00:15:00",
        "slotLabelInterval": "01:00",
        "eventTimeFormat": clock,
        "slotLabelFormat": clock,
        "height": HEIGHT,
        "editable": editable,
        "selectable": editable,
        "selectMirror": True,
        # a visit's length follows its services (the life cycle sets its end): a resize could
        # only be refused, or kept as a move to where it is
        "eventDurationEditable": False,
        "resources": resources,
        # none (a patient's own calendar): no shading; [] (nobody works): every hour shaded
        "businessHours": False if business_hours is None else business_hours or {"daysOfWeek": []},
        "datesAboveResources": True,
        # the room views: one row per room or piece of equipment, grouped by kind
        "resourceGroupField": "kind",
        "resourceAreaHeaderContent": "Rooms and equipment",
        # a width of its own: 22% of the page's column at 1024 px cut 'Rooms and e…'
        "resourceAreaWidth": f"{ROOM_NAMES_PX}px",
        "views": {
            "resourceTimelineWeek": {"slotDuration": "01:00:00"},
            # a day's visits as far as its cell holds, then '+N more' (a popover of the rest):
            # every one listed grew a busy week past the frame, the later weeks out of sight
            "dayGridMonth": {"dayMaxEvents": True},
        },
    }


def ink(colour: str) -> str:
    """Black or white, whichever reads better on a status colour (WCAG relative luminance):
    white on amber or grey fails the 4.5:1 contrast a badge's small text needs."""
    if not (colour.startswith("#") and len(colour) == 7):
        return "white"

    def channel(hex_pair: str) -> float:
        v = int(hex_pair, 16) / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "white"


PROVIDER_COLUMN_PX = 90  # a provider's column at its narrowest in the views by provider
AXIS_PX = 56  # the hours' column


def wide_css(opts: dict[str, Any]) -> str:
    """A view by provider as wide as its columns need (PROVIDER_COLUMN_PX each), scrolling
    sideways inside the calendar's frame when the page is narrower: at 1024 px a week of 3
    providers was 21 columns of some 24 px, each visit a sliver. FullCalendar's own
    dayMinWidth needs its scrollgrid plugin, which streamlit-calendar does not register ('No
    ScrollGrid implementation')."""
    view = opts.get("initialView")
    if view not in ("resourceTimeGridWeek", "resourceTimeGridDay"):
        return ""
    columns = len(opts.get("resources") or []) * (7 if view.endswith("Week") else 1)
    return (
        f".fc-view-harness {{ overflow-x: auto; }}\n"
        f".fc-{view}-view {{ min-width: {AXIS_PX + columns * PROVIDER_COLUMN_PX}px; }}\n"
    )


def render(events: list[dict[str, Any]], opts: dict[str, Any], key: str) -> dict[str, Any]:
    """Draw the calendar; returns the component's current value ({} before any callback).
    Each coloured event gets the text colour that reads on it."""
    events = [
        {"textColor": ink(e["color"]), **e} if isinstance(e.get("color"), str) else e
        for e in events
    ]
    # the component's own function: its wrapper has no `height` (see the module's docstring;
    # the second drawing took about 110 ms of the browser's main thread on every visit)
    return (
        streamlit_calendar._component_func(  # noqa: SLF001
            events=events,
            options=opts,
            custom_css=CSS + wide_css(opts),
            callbacks=CALLBACKS,
            license_key=LICENSE_KEY,
            height=HEIGHT,
            key=key,
            default={},
        )
        or {}
    )


def take(value: dict[str, Any] | None, seen_key: str, component_key: str) -> dict[str, Any] | None:
    """The component's value if it is new since the last call (None otherwise). A redrawn
    component (new key) starts afresh, so the same gesture after a redraw counts again."""
    if not value or "callback" not in value:
        return None
    fingerprint = component_key + json.dumps(value, sort_keys=True, default=str)
    if st.session_state.get(seen_key) == fingerprint:
        return None
    st.session_state[seen_key] = fingerprint
    return value


def _resource(value: dict[str, Any] | None) -> int | None:
    ident = (value or {}).get("id") if isinstance(value, dict) else value
    return int(ident) if ident not in (None, "") else None


def interpret(value: dict[str, Any], tz: str) -> Open | Book | Move | None:
    """What a callback value asks for, with times in UTC."""
    kind = value.get("callback")
    if kind == "eventClick":
        return Open(appointment_of(value["eventClick"]["event"]["id"]))  # held: its appointment
    if kind == "select":
        data = value["select"]
        return Book(
            callback_time(data["start"], tz),
            callback_time(data["end"], tz),
            _resource(data.get("resource")),
        )
    if kind == "dateClick":
        data = value["dateClick"]
        start = callback_time(data["date"], tz)
        return Book(start, start, _resource(data.get("resource")))
    if kind == "eventChange":
        data = value["eventChange"]
        new, old = data["event"], data["oldEvent"]
        return Move(
            appointment_id=int(new["id"]),
            start_at=callback_time(new["start"], tz),
            end_at=callback_time(new.get("end") or new["start"], tz),
            provider_id=_resource(new.get("resourceId")),
            old_start_at=callback_time(old["start"], tz),
            old_provider_id=_resource(old.get("resourceId")),
        )
    return None


def legend(items: list[tuple[str, str]]) -> None:
    """The colour legend as coloured badges (fixed labels, no user text)."""
    st.markdown(
        " ".join(
            f'<span style="background:{colour};color:{ink(colour)};border-radius:4px;'
            f'padding:2px 8px;margin-right:4px;font-size:0.8rem;white-space:nowrap">{label}</span>'
            for label, colour in items
        ),
        unsafe_allow_html=True,
    )


# ---------------------------------------------------------------- navigation (no datesSet)

DAY_KEY, VIEW_KEY = "calendar_day", "calendar_view"


def _step(direction: int, today: date) -> None:
    """A view's width back or on from the day shown (the clinic's today when the box is empty,
    never the server's)."""
    view = VIEWS[st.session_state.get(VIEW_KEY, "Week by provider")]
    day = st.session_state.get(DAY_KEY) or today
    if view == "dayGridMonth":
        month = day.month - 1 + direction
        st.session_state[DAY_KEY] = date(day.year + month // 12, month % 12 + 1, 1)
    else:
        days = 1 if view.endswith("Day") else 7
        st.session_state[DAY_KEY] = day + timedelta(days=days * direction)


def _today(today: date) -> None:
    st.session_state[DAY_KEY] = today


WEEK_COLUMNS_LIMIT = 8  # providers: above this a week by provider is too wide to read


def default_view(providers: int) -> str:
    """Week by provider for a small team; a day by provider when a week would need more than
    WEEK_COLUMNS_LIMIT × 7 columns (and thousands of events for the page to draw)."""
    return "Week by provider" if providers <= WEEK_COLUMNS_LIMIT else "Day by provider"


DATE_WIDTH = 170  # px: a date in any clinic's order (12/31/2026, 2026-12-31) and its icon


def navigation(today: date, default: str, date_format: str) -> tuple[str, date]:
    """View and date pickers (the day in `date_format`, st.date_input's) with previous / today /
    next; returns (FullCalendar view, day)."""
    st.session_state.setdefault(DAY_KEY, today)
    # the eight views need about 800 px: a row of their own, not cut to "Wee…" at 1400 px
    label = st.segmented_control("View", list(VIEWS), key=VIEW_KEY, default=default)
    # one row, each part as wide as it needs: columns (a share of the page each) left the
    # arrows empty boxes and 'T…' for Today, and the date cut, at 1024 px
    row = st.container(horizontal=True, vertical_alignment="bottom", key="calendar_nav")
    day = row.date_input("Date", key=DAY_KEY, format=date_format, width=DATE_WIDTH)
    row.button("◀", key="calendar_prev", on_click=_step, args=(-1, today), help="Previous")
    row.button("Today", key="calendar_today", on_click=_today, args=(today,))
    row.button("▶", key="calendar_next", on_click=_step, args=(1, today), help="Next")
    return VIEWS[label or default], day


# ---------------------------------------------------------------- drag

MOVE_KEY, SUFFIX_KEY = "calendar_move", "calendar_suffix"


def redraw() -> None:
    """Mount the calendar afresh from the stored events (undoes a drag on screen)."""
    st.session_state[SUFFIX_KEY] = st.session_state.get(SUFFIX_KEY, 0) + 1


def confirm_move(tz: str, locale: str, provider_names: dict[int, str]) -> None:
    """Ask before moving: notify or not, a message, the overrides. A refused move is redrawn
    where it was, with the reason shown; a done one reruns with fresh data."""
    move = st.session_state[MOVE_KEY]
    who = provider_names.get(move["provider"], "another provider") if move["provider"] else ""
    st.warning(
        f"Move appointment #{move['id']} to {format_moment(move['start'], tz, locale, zone=True)}"
        + (f" with {escape(who)}" if who else "")
        + "?",
        icon=":material/open_with:",
    )
    tell = st.checkbox("Notify the patient", value=True, key="calendar_move_notify")
    note = st.text_input("Message to the patient (optional)", key="calendar_move_message")
    double = st.checkbox("Allow double booking", key="calendar_move_double")
    outside = st.checkbox("Outside working hours (override)", key="calendar_move_outside")
    go, undo = st.columns(2)
    if go.button("Move", key="calendar_move_go", type="primary"):
        done = run_action(
            moves.reschedule,
            move["id"],
            start_at=move["start"],
            provider_id=move["provider"],
            notify=tell,
            message=note,
            allow_double_booking=double,
            outside_hours_override=outside,
            moved_from=move.get("from"),  # moved or cancelled since it was drawn: refused
        )
        st.session_state.pop(MOVE_KEY)
        if done:
            st.session_state[FLASH_KEY] = f"Moved. {done.value.summary}"
            refresh()
        redraw()
        st.caption("The appointment stays where it was.")
    elif undo.button("Undo", key="calendar_move_undo"):
        st.session_state.pop(MOVE_KEY)
        redraw()
        st.rerun()
