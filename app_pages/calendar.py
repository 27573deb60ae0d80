"""Calendar: one clinic's appointments in the visible window, per provider, per room or piece of
equipment, or together; click for details and actions, select a free time to book, drag to
reschedule (in the provider and plain views; a visit's length follows its services)."""

import streamlit as st

from core.kernel.authz import Permission
from core.kernel.clock import to_local, utcnow, zone_words
from core.kernel.money import format_moment
from core.practice import choices
from core.scheduling import calendar as cal
from ui import actor, shown
from ui import calendar_widget as cw
from ui.appointment_views import appointment_panel, load_detail, show_flash
from ui.caches import cached
from ui.checkin_views import qr_panel
from ui.context import read
from ui.front_desk import require
from ui.locale import date_picker, display_format
from ui.text import escape
from ui.waitlist_views import offer_freed_button, offer_slot_button, overbooking, with_risk


@cached("setup", ttl=300, max_entries=10)
def _clinics(me):
    return {c.id: c.name for c in read(choices.list_choices, me).clinics}


@cached("setup", ttl=60, max_entries=20)
def _frame(me, clinic_id, provider_ids):
    return read(cal.get_frame, me, clinic_id, list(provider_ids))


@cached("appointments", "patients", "setup", ttl=15, max_entries=50)
def _events(me, clinic_id, start, end, provider_ids, statuses):
    return read(
        cal.window_events,
        me,
        clinic_id=clinic_id,
        start=start,
        end=end,
        provider_ids=list(provider_ids),
        statuses=list(statuses),
    )


@cached("appointments", "setup", ttl=15, max_entries=50)
def _inactive(me, clinic_id, start, end):
    return read(cal.inactive_resources, me, clinic_id=clinic_id, start=start, end=end)


@cached("appointments", "patients", "setup", ttl=15, max_entries=50)
def _room_events(me, clinic_id, start, end, provider_ids, statuses):
    return read(
        cal.room_events,
        me,
        clinic_id=clinic_id,
        start=start,
        end=end,
        provider_ids=list(provider_ids),
        statuses=list(statuses),
    )


title, new = st.columns([2, 1], vertical_alignment="bottom")
title.title("Calendar")
me = actor()
show_flash()
clinics = _clinics(me)
require(clinics)
# one row that wraps, the clinic's name whole: columns cut it to 'Harbour St' at 1024 px
filters = st.container(horizontal=True, vertical_alignment="bottom", key="calendar_filters")
clinic_id = filters.selectbox(
    "Clinic", list(clinics), format_func=clinics.get, key="calendar_clinic", width=230
)
everyone = _frame(me, clinic_id, ())
names = {p.id: p.name for p in everyone.providers}
chosen = tuple(
    filters.multiselect(
        "Providers", list(names), format_func=names.get, key="calendar_providers", width=260
    )
)
statuses = tuple(
    filters.multiselect(
        "Statuses",
        list(cal.STATUS_COLOURS),
        default=cw.DEFAULT_STATUSES,
        format_func=cal.STATUS_LABELS.get,
        key="calendar_statuses",
    )
)
# beside the title, whole: the filters' row left it "+ N..." at 1280 px
if new.button("New appointment", key="calendar_new", icon=":material/add:"):
    st.session_state["book_prefill"] = {"clinic_id": clinic_id}
    st.switch_page("app_pages/book.py")
frame, tz = _frame(me, clinic_id, chosen) if chosen else everyone, everyone.timezone
locale = display_format(clinic_id).locale
view, day = cw.navigation(
    to_local(utcnow(), tz).date(), cw.default_view(len(names)), date_picker(locale)
)
first, last = cal.visible_window(view, day, tz)
start, end = cal.window_bounds(first, last, tz)
# on whose clock, for a desk in another zone (the grid's times carry no zone)
st.caption(f"All times are the clinic's: {zone_words(tz, start, end)}.")
by_room = view in cw.ROOM_VIEWS
if by_room:
    events = with_risk(me, _room_events(me, clinic_id, start, end, chosen, statuses))
    if not frame.rooms:
        st.info("This clinic has no rooms or equipment yet: add them on Clinics and rooms.")
else:
    events = with_risk(me, _events(me, clinic_id, start, end, chosen, statuses))
cw.legend(cal.legend())
overbooking(me, clinic_id, start, end)

if st.session_state.get(cw.MOVE_KEY):  # a drag waits for confirmation
    cw.confirm_move(tz, locale, names)

columns = everyone.rooms if by_room else frame.resources
if not by_room and not chosen:  # a deactivated provider's bookings keep their column
    columns = [*columns, *_inactive(me, clinic_id, start, end)]
key = f"calendar_fc_{view}_{first}_{st.session_state.get(cw.SUFFIX_KEY, 0)}"
options = cw.options(
    view,
    day,  # the month or week around it (not the grid's first day: the month before)
    tz,
    resources=columns,
    business_hours=frame.business_hours,
    editable=me.can(Permission.APPOINTMENTS_RESCHEDULE) and not by_room,
    locale=locale,
    events=events,
)
value = cw.take(cw.render(events, options, key), "calendar_seen", key)
intent = cw.interpret(value, tz) if value else None
if isinstance(intent, cw.Open):
    st.session_state["calendar_open"] = intent.appointment_id
elif isinstance(intent, cw.Book):
    st.session_state["calendar_slot"] = {
        "clinic_id": clinic_id,
        "start_at": intent.start_at,
        "provider_id": intent.provider_id,
        "end_at": intent.end_at,
    }
elif isinstance(intent, cw.Move):
    st.session_state[cw.MOVE_KEY] = {
        "id": intent.appointment_id,
        "start": intent.start_at,
        "provider": intent.provider_id,
        "from": (intent.old_start_at, intent.old_provider_id),  # where it was seen
    }
    st.rerun()

slot = st.session_state.get("calendar_slot")
if slot:
    st.info(
        f"Selected {format_moment(slot['start_at'], tz, locale, zone=True)}"
        + (f" with {escape(names.get(slot['provider_id'], ''))}" if slot["provider_id"] else "")
    )
    if st.button("Book this time", key="calendar_book_slot", type="primary"):
        st.session_state["book_prefill"] = st.session_state.pop("calendar_slot")
        st.switch_page("app_pages/book.py")
    offer_slot_button(me, clinic_id, slot, "calendar")
opened = st.session_state.get("calendar_open")
if opened:
    with st.container(border=True):
        if st.button("Close", key="calendar_close", icon=":material/close:"):
            st.session_state.pop("calendar_open")
            cw.redraw()
            st.rerun()
        detail = shown(load_detail, me, opened)
        appointment_panel(me, detail, "calendar")
        if detail.status == "scheduled":
            qr_panel(opened, "calendar")
        if detail.status == "cancelled":
            offer_freed_button(me, opened, "calendar")
