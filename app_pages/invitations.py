"""Portal invitations: status of every patient, per-row and bulk actions, the enrolment funnel."""

import streamlit as st

from core.kernel.authz import Permission
from core.patients import enrolment, invitations
from core.patients.invitations import PortalStatus
from core.practice import choices
from ui import actor
from ui.caches import cached
from ui.context import read
from ui.invitations_view import bulk_invite, overview_table, selected_actions
from ui.locale import display_format
from ui.paging import pager
from ui.portal import funnel_panel, results_table, settings_panel


@cached("patients", "appointments", ttl=20, max_entries=50)
def _overview(current, status, clinic_id, search, page):
    board = read(
        enrolment.get_overview,
        current,
        status=status,
        clinic_id=clinic_id,
        search=search,
        page=page,
    )
    return board.rows, board.counts


@cached("patients", ttl=20, max_entries=20)
def _funnel(current, clinic_id):
    return read(enrolment.enrollment_funnel, current, clinic_id=clinic_id)


@cached("setup", ttl=300, max_entries=10)
def _clinics(current):
    found = read(
        choices.list_choices, current, include_inactive=True, permission=Permission.PATIENTS_READ
    )
    return {c.id: c.name for c in found.clinics}


st.title("Portal invitations")
me = actor()
clinics = _clinics(me)
with st.form("invitations_filters"):
    a, b, c = st.columns([1, 1, 2])
    status = a.selectbox(
        "Status",
        [None, *PortalStatus],
        key="invitations_status",
        format_func=lambda s: s.label if s else "All",
    )
    clinic_id = b.selectbox(
        "Clinic",
        [None, *clinics],
        format_func=lambda c: clinics.get(c, "All clinics"),
        key="invitations_clinic",
    )
    search = c.text_input("Search", placeholder="Name, email or mobile", key="invitations_search")
    if st.form_submit_button("Apply"):
        st.session_state["invitations_page"] = 0
page = st.session_state.get("invitations_page", 0)
rows, counts = _overview(me, status, clinic_id, search, page)
fmt = display_format(clinic_id)
when = fmt.moment  # the clinic's local time, never UTC

# a row that wraps, each count as wide as its status's name: seven columns cut 'No email or
# mobile' to 'No email or mo…' at 1280 px
tally = st.container(horizontal=True, key="invitations_counts")
for s in PortalStatus:
    tally.metric(s.label, fmt.number(counts[s]), width="content")
# the funnel reads every invitation: drawn when asked for, not on each page load
if st.toggle("Enrolment funnel", key="invitations_funnel_open"):
    funnel_panel(_funnel(me, clinic_id), "invitations", fmt)

chosen = overview_table(rows, when, (status, clinic_id, search, page))
# the whole list under the filters: the one status chosen, else every status's count
total = counts[status] if status else sum(counts.values())
pager("invitations", len(rows), total, invitations.PAGE_SIZE, "patients", fmt.number)

if chosen:
    selected_actions(me, chosen)
else:  # what was just sent or revoked, once its rows have left the selection
    results_table("invitations_selected")
bulk_invite(me, clinics)
if me.can(Permission.NOTIFICATIONS_MANAGE):
    settings_panel(clinics, "invitations")
