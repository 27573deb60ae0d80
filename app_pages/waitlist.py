"""Waitlist: who waits for what (filters, age, current matches), adding a patient, the offers
made for freed slots and their state, and the practice's offer rules."""

import streamlit as st

from core.kernel.authz import Permission
from core.practice import choices
from core.waitlist import entries, offers, rules
from ui import actor, run_action
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.waitlist_views import (
    DONE,
    PAGE,
    add_entry_form,
    entries_pager,
    entries_table,
    offers_table,
    rules_form,
)


@cached("setup", ttl=300, max_entries=10)
def _choices(me):
    found = read(choices.list_choices, me)
    clinics = {c.id: c.name for c in found.clinics}
    services = {s.id: s.name for s in found.services}
    providers = {p.id: p.name for p in found.providers}
    packages = {p.id: p.name for p in found.packages}
    return clinics, services, providers, packages


@cached(
    "appointments", "patients", ttl=30, max_entries=20, show_spinner="Looking for matching slots…"
)
def _entries(me, clinic_id, status, service_id, provider_id, page):
    return read(
        entries.list_entries,
        me,
        clinic_id=clinic_id,
        status=status,
        service_id=service_id,
        provider_id=provider_id,
        page=page,
    )


@cached("appointments", "patients", ttl=30, max_entries=20)
def _count(me, clinic_id, status, service_id, provider_id):
    return read(
        entries.count_entries,
        me,
        clinic_id=clinic_id,
        status=status,
        service_id=service_id,
        provider_id=provider_id,
    )


def _first_page():
    st.session_state[PAGE] = 0  # other filters: start again with the longest waiting


st.title("Waitlist")
if done := st.session_state.pop(DONE, None):
    st.success(done, icon=":material/check_circle:")
me = actor()
clinics, services, providers, packages = _choices(me)
require(clinics)
c1, c2, c3, c4 = st.columns(4)
clinic_id = c1.selectbox(
    "Clinic", list(clinics), format_func=clinics.get, key="waitlist_clinic", on_change=_first_page
)
status = c2.selectbox(
    "Status",
    list(entries.WaitlistStatus),
    format_func=str.capitalize,
    key="waitlist_status",
    on_change=_first_page,
)
service_id = c3.selectbox(
    "Service",
    [None, *services],
    format_func=lambda s: services.get(s, "All"),
    key="waitlist_svc",
    on_change=_first_page,
)
provider_id = c4.selectbox(
    "Provider",
    [None, *providers],
    format_func=lambda p: providers.get(p, "All"),
    key="waitlist_pr",
    on_change=_first_page,
)
total = _count(me, clinic_id, status, service_id, provider_id)
pages = max(1, -(-total // entries.PAGE_SIZE))
page = min(st.session_state.setdefault(PAGE, 0), pages - 1)  # fewer since: the last
rows = _entries(me, clinic_id, status, service_id, provider_id, page)
if rows:
    entries_table(rows, clinic_id)
    entries_pager(clinic_id, page, pages, len(rows), total)  # every entry can be reached
    leaving = st.selectbox(
        "Withdraw an entry",
        [None, *[r.id for r in rows]],
        key="waitlist_withdraw_pick",
        format_func=lambda i: (
            "—" if i is None else f"#{i} {next(r.patient for r in rows if r.id == i)}"
        ),
    )
    if leaving and st.button("Withdraw", key="waitlist_withdraw"):
        if run_action(entries.withdraw, leaving):
            st.session_state[DONE] = "Withdrawn from the waitlist."
            st.rerun()  # the list without it (it stayed listed, to be withdrawn again)
else:
    st.info("Nobody matches these filters.")

add_entry_form(me, clinic_id, services, providers, packages, expanded=not rows)

if me.can(Permission.WAITLIST_OFFER):
    st.subheader("Offers")
    offers_table(read(offers.list_offers, me, clinic_id=clinic_id))
    rules_form(read(rules.get_rules))
