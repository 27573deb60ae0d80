"""Waitlist: who waits for what (filters, age, current matches), adding a patient, the offers
made for freed slots and their state, and the practice's offer rules."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.kernel.clock import utcnow
from core.practice import choices
from core.waitlist import entries, offers, rules
from ui import actor, run_action
from ui.booking_form import patient_picker
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.waitlist_views import offers_table, rules_form

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@cached("setup", ttl=300, max_entries=10)
def _choices(me):
    found = read(choices.list_choices, me)
    clinics = {c.id: c.name for c in found.clinics}
    services = {s.id: s.name for s in found.services}
    providers = {p.id: p.name for p in found.providers}
    return clinics, services, providers


@cached(
    "appointments", "patients", ttl=30, max_entries=20, show_spinner="Looking for matching slots…"
)
def _entries(me, clinic_id, status, service_id, provider_id):
    return read(
        entries.list_entries,
        me,
        clinic_id=clinic_id,
        status=status,
        service_id=service_id,
        provider_id=provider_id,
    )


st.title("Waitlist")
me = actor()
clinics, services, providers = _choices(me)
require(clinics)
c1, c2, c3, c4 = st.columns(4)
clinic_id = c1.selectbox("Clinic", list(clinics), format_func=clinics.get, key="waitlist_clinic")
status = c2.selectbox("Status", list(entries.WaitlistStatus), key="waitlist_status")
service_id = c3.selectbox(
    "Service", [None, *services], format_func=lambda s: services.get(s, "All"), key="waitlist_svc"
)
provider_id = c4.selectbox(
    "Provider", [None, *providers], format_func=lambda p: providers.get(p, "All"), key="waitlist_pr"
)
rows = _entries(me, clinic_id, status, service_id, provider_id)
frame = pd.DataFrame([r.__dict__ for r in rows])
if rows:
    st.dataframe(
        frame.drop(columns=["id", "patient_id", "status"]).rename(columns=str.title),
        hide_index=True,
        width="stretch",
        key="waitlist_table",
    )  # a DataFrame shows typed notes as plain text
    leaving = st.selectbox(
        "Withdraw an entry",
        [None, *[r.id for r in rows]],
        key="waitlist_withdraw_pick",
        format_func=lambda i: (
            "—" if i is None else f"#{i} {next(r.patient for r in rows if r.id == i)}"
        ),
    )
    if leaving and st.button("Withdraw", key="waitlist_withdraw"):
        run_action(entries.withdraw, leaving, success="Withdrawn from the waitlist.")
else:
    st.info("Nobody matches these filters.")

with st.expander("Add a patient to the waitlist", expanded=not rows):
    patient_id, _, _, _ = patient_picker(me, "waitlist_add")
    with st.form("waitlist_add_form"):
        a1, a2 = st.columns(2)
        service = a1.selectbox(
            "Service", list(services), format_func=services.get, key="waitlist_add_svc"
        )
        provider = a2.selectbox(
            "Provider",
            [None, *providers],
            format_func=lambda p: providers.get(p, "Any provider"),
            key="waitlist_add_pr",
        )
        today = utcnow().date()
        days = a1.date_input("Days", (today, today + timedelta(days=28)), key="waitlist_add_days")
        weekdays = a2.multiselect(
            "Weekdays",
            range(7),
            default=list(range(5)),
            format_func=WEEKDAYS.__getitem__,
            key="waitlist_add_wd",
        )
        windows = st.multiselect(
            "Times of day (none: any)", list(entries.TimeOfDay), key="waitlist_add_tod"
        )
        note = st.text_input("Note", key="waitlist_add_note")
        if st.form_submit_button("Add to the waitlist", type="primary") and patient_id:
            wish = entries.Wish(
                patient_id,
                clinic_id,
                service,
                days[0],
                days[-1],
                provider,
                tuple(weekdays),
                tuple(windows),
                note,
            )
            run_action(entries.add_entry, wish, success="Added to the waitlist.")

if me.can(Permission.WAITLIST_OFFER):
    st.subheader("Offers")
    offers_table(read(offers.list_offers, me, clinic_id=clinic_id))
    rules_form(read(rules.get_rules))
