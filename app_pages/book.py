"""New appointment (in office), or an out-of-office block: clinic, time, services, a free
provider, the patient (found or new), options, and the confirmation to send."""

from datetime import time, timedelta

import streamlit as st

from core.kernel.clock import local_to_utc, to_local, utcnow, zone_words
from core.kernel.errors import Conflict
from core.kernel.money import format_clock
from core.practice import choices as practice_choices
from core.practice.timing import timing_of
from core.scheduling import booking, schedules
from ui import actor, refresh, run_action
from ui.booking_form import (
    apply_prefill,
    clear_booked,
    clock_change_notice,
    confirmation_editor,
    empty_booked,
    free_times_after_refusal,
    keep_length,
    patient_picker,
    provider_moved,
    provider_picker,
    resource_notice,
    resources_taken,
    services_picker,
)
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.locale import clinic_pickers, display_format
from ui.text import escape


@cached("setup", ttl=300, max_entries=10)
def _setup(me):
    found = read(practice_choices.list_choices, me)
    return found.clinics, found.services, found.packages


st.title("New appointment")
me = actor()
clinics, services, packages = _setup(me)
require(clinics)
zones = {c.id: c.timezone for c in clinics}
empty_booked("book")  # after a booking: a fresh form, in the browser too
apply_prefill("book", zones)  # a slot selected on the calendar

kind = st.segmented_control(
    "What", ["Appointment", "Out of office"], key="book_kind", default="Appointment"
)
out_of_office = kind == "Out of office"
c1, c2, c3 = st.columns(3)
clinic_id = c1.selectbox(
    "Clinic", list(zones), format_func={c.id: c.name for c in clinics}.get, key="book_clinic"
)
tz = zones[clinic_id]
if "book_day" not in st.session_state:  # the clinic's next working day from tomorrow
    tomorrow = to_local(utcnow(), tz).date() + timedelta(days=1)
    st.session_state["book_day"] = read(schedules.first_working_day, me, clinic_id, tomorrow)
st.session_state.setdefault("book_time", time(9))
pick = clinic_pickers(clinic_id)  # the clinic's day order and clock
day = c2.date_input("Date", key="book_day", format=pick.date)
at = c3.time_input(
    f"Start ({zone_words(tz)})",  # the clinic's clock, named: a desk may be in another zone
    step=900,
    key="book_time",
    format=pick.clock,
    on_change=keep_length,
)
st.session_state["book_time_was"] = at  # what keep_length moves Until from
start_at = local_to_utc(day, at, tz)
clock_change_notice(day, at, tz, display_format(clinic_id).locale)
if out_of_office:
    st.session_state.setdefault("book_until", time(min(at.hour + 1, 23), at.minute))
    until = c3.time_input("Until", step=900, key="book_until", format=pick.clock)
    if until <= at:  # said here, by the box to change, not only as a refusal on Book
        locale = display_format(clinic_id).locale
        st.warning(
            f"Until ({format_clock(until, locale)}) is not after the start "
            f"({format_clock(at, locale)}): set it later than the start.",
            icon=":material/schedule:",
        )
    end_at, chosen, package, timing = local_to_utc(day, until, tz), [], None, None
    minutes = max(int((end_at - start_at) / timedelta(minutes=1)), 1)
    taken = []
else:
    clinic = next(c for c in clinics if c.id == clinic_id)
    chosen, package, mode = services_picker(services, "book", packages, clinic)
    timing = timing_of(chosen)  # the visit's length and the buffers kept free around it
    minutes, end_at = timing.minutes, None
    taken = resources_taken(me, clinic_id, chosen, start_at)  # rooms and equipment
notice = st.container()  # filled once the double-booking choice is known

provider = provider_picker(me, "book", clinic_id, start_at, minutes or 15, timing, chosen)

if not out_of_office:
    patient_id, new_patient, invite, patient_name = patient_picker(me, "book", pick.date)
notes = st.text_area("Notes", key="book_notes", height=80)
# one row that wraps, each box as wide as its words: three columns cut them at 1024 px
overrides = st.container(horizontal=True, key="book_overrides")
double = overrides.checkbox("Allow double booking", key="book_double")
outside = overrides.checkbox("Outside working hours (override)", key="book_outside")
card = overrides.checkbox(
    "Card on file (late-cancel and no-show fees)", key="book_card", disabled=out_of_office
)
with notice:
    resource_notice(taken, double)
channels, subject, body = [], None, None
if not out_of_office and provider:
    names = tuple(s.name for s in chosen)
    channels, subject, body = confirmation_editor(
        me, "book", clinic_id, provider.name, names, start_at, patient_name, package, mode
    )

if st.button(
    "Book",
    key="book_submit",
    type="primary",
    disabled=provider is None or (bool(taken) and not double) or (out_of_office and until <= at),
) and not provider_moved("book"):
    kwargs = dict(
        clinic_id=clinic_id,
        provider_id=provider.id,
        start_at=start_at,
        notes=notes,
        allow_double_booking=double,
        outside_hours_override=outside,
    )
    if out_of_office:
        kwargs |= dict(kind="out_of_office", end_at=end_at, service_ids=[])
    else:
        kwargs |= dict(
            service_ids=[s.id for s in chosen],
            package_id=package.id if package else None,
            patient_id=patient_id,
            new_patient=new_patient,
            mode=mode,
            card_on_file=card,
            invite_to_portal=invite,
            notify_channels=channels,
            subject=subject,
            body=body,
        )
    refused = []
    result = run_action(booking.book, booking.InOffice(**kwargs), refused=refused.append)
    if result:  # a fresh form: the same patient is not booked again by a second press
        st.session_state["book_done"] = result.value
        clear_booked("book")
        refresh()
    elif refused and isinstance(refused[0], Conflict) and not out_of_office:
        free_times_after_refusal(me, "book", clinic_id, start_at, [s.id for s in chosen])
done = st.session_state.pop("book_done", None)
if done:  # where the button was pressed, not at the top out of view
    st.success(
        escape(" ".join([f"Booked #{done.appointment_id}: {done.summary}.", *done.notes])),
        icon=":material/check_circle:",
    )
