"""Packages: services booked together (their durations add up) for one price. Owners and
managers edit; staff read."""

import pandas as pd
import streamlit as st

from core.practice import setup
from ui import actor
from ui.setup_forms import (
    can_edit,
    confirm_change,
    keys_for,
    overview,
    pick,
    price_input,
    price_note,
    prices,
    save_asking,
    toggle_active,
)
from ui.text import show_table

st.title("Packages")
me = actor()
current = overview(me)
services = {s.id: s for s in current.services}
price = prices(current)  # in the clinics' currency
show_table(
    pd.DataFrame(
        [
            {
                "Package": p.name,
                "Services": " + ".join(services[s].name for s in p.data.service_ids),
                "Minutes": sum(services[s].data.duration_minutes for s in p.data.service_ids),
                "Price": price(p.data.price_cents),
                "Active": p.data.active,
            }
            for p in current.packages
        ]
    ),
    hide_index=True,
    width="stretch",
)
price_note(current)
if can_edit(me):
    row = pick(current.packages, "package", "packages_pick")
    old = row.data if row else setup.PackageData("")
    key = keys_for("packages", row)
    with st.form(f"packages_form_{row.id if row else 'new'}"):
        a, b = st.columns([3, 1])
        name = a.text_input("Name", old.name, key=key("name"))
        cost = price_input(b, current, old.price_cents, key("price"))
        chosen = st.multiselect(
            "Services, in the order they are done",
            list(services),
            list(old.service_ids),
            format_func=lambda s: services[s].name,
            key=key("services"),
        )
        if st.form_submit_button("Save package", type="primary") and cost is not None:
            data = setup.PackageData(name, tuple(chosen), cost, old.active)
            save_asking("packages", data, row)  # a new price with visits booked asks first
    confirm_change("packages", row, [key(f) for f in ("name", "price", "services")])
    toggle_active("package", row, "packages_toggle", "packages_pick")
