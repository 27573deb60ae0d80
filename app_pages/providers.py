"""Providers: name, title, the clinics they work at, calendar colour, the services they
perform and an optional user account (a provider who signs in sees their own day first).
Weekly hours and time off stay on Provider schedules. Owners and managers edit; staff read."""

import pandas as pd
import streamlit as st

from core.practice import setup
from ui import actor
from ui.setup_forms import can_edit, keys_for, overview, pick, save, toggle_active
from ui.text import show_table

st.title("Providers")
me = actor()
current = overview(me)
clinics = {c.id: c.name for c in current.clinics}
services = {s.id: s.name for s in current.services}
users = {u.id: u.name for u in current.users}
show_table(
    pd.DataFrame(
        [
            {
                "Provider": p.name,
                "Title": p.data.title,
                "Clinics": ", ".join(clinics[c] for c in p.data.clinic_ids),
                "Services": len(p.data.service_ids),
                "User account": users.get(p.data.user_id, ""),
                "Active": p.data.active,
            }
            for p in current.providers
        ]
    ),
    hide_index=True,
    width="stretch",
)
if can_edit(me):
    row = pick(current.providers, "provider", "providers_pick")
    old = row.data if row else setup.ProviderData("")
    key = keys_for("providers", row)
    with st.form(f"providers_form_{row.id if row else 'new'}"):
        a, b, c = st.columns([3, 2, 1])
        name = a.text_input("Display name", old.name, key=key("name"))
        title = b.text_input("Title", old.title, key=key("title"))
        colour = c.color_picker("Calendar colour", old.colour, key=key("colour"))
        email = st.text_input("Email", old.email, key=key("email"))
        works = st.multiselect(
            "Clinics they work at",
            list(clinics),
            list(old.clinic_ids),
            format_func=clinics.get,
            key=key("clinics"),
        )
        performs = st.multiselect(
            "Services they perform",
            list(services),
            list(old.service_ids),
            format_func=services.get,
            key=key("services"),
            help="Booking offers them only for these. None chosen: any service.",
        )
        options = [None, *users]
        user = st.selectbox(
            "User account (optional)",
            options,
            options.index(old.user_id) if old.user_id in users else 0,
            format_func=lambda u: "None" if u is None else users[u],
            key=key("user"),
        )
        if st.form_submit_button("Save provider", type="primary"):
            data = setup.ProviderData(
                name, title, email, colour, tuple(works), tuple(performs), user, old.active
            )
            save(setup.save_provider, data, row, "Provider", "providers_pick")
    toggle_active("provider", row, "providers_toggle", "providers_pick")  # asks if booked ahead
    st.page_link("app_pages/schedules.py", label="Set weekly hours and time off", icon="⏰")
