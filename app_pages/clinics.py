"""Clinics and their rooms and equipment: create, edit, deactivate (never delete). Owners and
managers edit; staff read. Every change is audited."""

import pandas as pd
import streamlit as st

from core.practice import setup
from core.practice.setup import RESOURCE_KINDS
from ui import actor
from ui.caches import cached
from ui.setup_forms import (
    can_edit,
    confirm_change,
    confirm_zone_change,
    keys_for,
    overview,
    pick,
    save_asking,
    save_clinic,
    toggle_active,
)
from ui.text import show_table


@cached("setup", ttl=3600, max_entries=1)
def _zones():
    return setup.time_zones()


st.title("Clinics, rooms and equipment")
me = actor()
current = overview(me)
editable = can_edit(me)
if current.clinics:
    show_table(
        pd.DataFrame(
            [
                {
                    "Clinic": c.name,
                    "Time zone": c.data.timezone,
                    "Locale": c.data.locale,
                    "Currency": c.data.currency,
                    "Email": c.data.email,
                    "Active": c.data.active,
                }
                for c in current.clinics
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.info("Add your first clinic below.", icon=":material/info:")

if editable:
    row = pick(current.clinics, "clinic", "clinics_pick")
    old = row.data if row else setup.ClinicData("", "Europe/London")
    key = keys_for("clinics", row)
    zones = _zones()
    with st.form(f"clinics_form_{row.id if row else 'new'}"):
        name = st.text_input("Name", old.name, key=key("name"))
        address = st.text_input("Address", old.address, key=key("address"))
        a, b = st.columns(2)
        phone = a.text_input("Phone", old.phone, key=key("phone"))
        email = b.text_input("Clinic inbox (email)", old.email, key=key("email"))
        a, b, c = st.columns(3)
        zone = a.selectbox("Time zone", zones, zones.index(old.timezone), key=key("zone"))
        locales = list(setup.LOCALES)
        if old.locale not in locales:  # saved with another Babel locale: offer it, keep it
            locales.insert(0, old.locale)
        locale = b.selectbox(
            "Locale (dates and money)",
            locales,
            locales.index(old.locale),
            key=key("locale"),
        )
        currency = c.text_input("Currency (ISO code)", old.currency, key=key("currency"))
        if st.form_submit_button("Save clinic", type="primary"):
            data = setup.ClinicData(name, zone, address, phone, email, locale, currency, old.active)
            # a new zone or currency with visits booked asks first
            save_clinic(data, row, key("zone"), key("currency"))
    confirm_zone_change(row)
    toggle_active("clinic", row, "clinics_toggle", "clinics_pick")

st.subheader("Rooms and equipment")
names = {c.id: c.name for c in current.clinics}
if current.resources:
    show_table(
        pd.DataFrame(
            [
                {
                    "Clinic": names.get(r.data.clinic_id, ""),
                    "Name": r.name,
                    "Kind": r.data.kind.value.capitalize(),
                    "Quantity": r.data.quantity,
                    "Active": r.data.active,
                }
                for r in current.resources
            ]
        ),
        hide_index=True,
        width="stretch",
    )
if editable and current.clinics:
    row = pick(
        current.resources,
        "room or equipment",
        "clinics_resource_pick",
        lambda r: f"{r.name} ({names.get(r.data.clinic_id, '')})",
    )
    old = row.data if row else setup.ResourceData(current.clinics[0].id, "")
    key = keys_for("clinics", row)
    with st.form(f"clinics_resource_form_{row.id if row else 'new'}"):
        a, b, c, d = st.columns([2, 2, 1, 1])
        clinic_id = a.selectbox(
            "Clinic",
            list(names),
            list(names).index(old.clinic_id),
            format_func=names.get,
            key=key("resource_clinic"),
        )
        name = b.text_input("Name (e.g. Treatment room, Laser)", old.name, key=key("rname"))
        kind = c.selectbox(
            "Kind",
            RESOURCE_KINDS,
            RESOURCE_KINDS.index(old.kind.value),
            format_func=str.capitalize,
            key=key("rkind"),
        )
        quantity = d.number_input("Quantity", 1, 100, old.quantity, key=key("rquantity"))
        if st.form_submit_button("Save room or equipment", type="primary"):
            data = setup.ResourceData(clinic_id, name, kind, int(quantity), old.active)
            save_asking("clinics_resource", data, row)  # fewer than booked at once: asks
    fields = ("resource_clinic", "rname", "rkind", "rquantity")
    confirm_change("clinics_resource", row, [key(f) for f in fields])
    toggle_active("resource", row, "clinics_resource_toggle", "clinics_resource_pick")
