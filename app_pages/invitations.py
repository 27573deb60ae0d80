"""Portal invitations: status of every patient, per-row and bulk actions, the enrolment funnel."""

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.patients import enrolment, invitations
from core.patients.invitations import PortalStatus
from core.practice import choices
from ui import actor
from ui.caches import cached
from ui.context import read
from ui.locale import display_format
from ui.portal import (
    funnel_panel,
    history_table,
    results_table,
    revoke_many,
    send_many,
    settings_panel,
)
from ui.text import escape, plain


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


@cached("patients", "appointments", ttl=20, max_entries=20)
def _preview(current, clinic_id, upcoming_only, include_expired):
    return read(
        enrolment.bulk_preview,
        current,
        clinic_id=clinic_id,
        upcoming_only=upcoming_only,
        include_expired=include_expired,
    )


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
    search = c.text_input("Search", placeholder="Name or email", key="invitations_search")
    if st.form_submit_button("Apply"):
        st.session_state["invitations_page"] = 0
page = st.session_state.get("invitations_page", 0)
rows, counts = _overview(me, status, clinic_id, search, page)
when = display_format(clinic_id).moment  # the clinic's local time, never UTC

cols = st.columns(len(PortalStatus))
for col, s in zip(cols, PortalStatus, strict=True):
    col.metric(s.label, counts[s])
# the funnel reads every invitation: drawn when asked for, not on each page load
if st.toggle("Enrolment funnel", key="invitations_funnel_open"):
    funnel_panel(_funnel(me, clinic_id), "invitations")


table = pd.DataFrame(
    [
        {
            "Patient": plain(r.name),
            "Email": plain(r.email or ""),
            "Status": r.status.label,
            "Sent": when(r.sent_at),
            "Expires": when(r.expires_at),
            "Enrolled": when(r.enrolled_at),
        }
        for r in rows
    ]
)
picked = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="multi-row",
    key="invitations_table",
)
chosen = [rows[i] for i in picked.selection.rows if i < len(rows)]
prev, info, nxt = st.columns([1, 3, 1])
if prev.button("Previous", disabled=page == 0, key="invitations_prev"):
    st.session_state["invitations_page"] = page - 1
    st.rerun()
info.caption(f"Page {page + 1} · {len(rows)} patients shown")
if nxt.button("Next", disabled=len(rows) < invitations.PAGE_SIZE, key="invitations_next"):
    st.session_state["invitations_page"] = page + 1
    st.rerun()

if chosen:
    st.subheader(f"{len(chosen)} selected")
    a, b = st.columns(2)
    if a.button("Send / resend invitations", key="invitations_send_selected", type="primary"):
        send_many([r.patient_id for r in chosen], "invitations_selected")
        st.rerun()
    pending = [r for r in chosen if r.status == PortalStatus.INVITED]
    if b.button(f"Revoke {len(pending)} pending", disabled=not pending, key="invitations_revoke"):
        revoke_many([r.invitation_id for r in pending], "invitations_selected")
        st.rerun()
    results_table("invitations_selected")
    if len(chosen) == 1:
        st.caption(f"Invitation history of {escape(chosen[0].name)}")
        history_table(
            read(enrolment.invitation_history, me, chosen[0].patient_id),
            "invitations_history",
        )

with st.expander("Bulk invite eligible patients"):
    # the preview reads every eligible patient: only when asked for, not on each page load
    if st.toggle("Preview who would be invited", key="invitations_bulk_open"):
        a, b, c = st.columns(3)
        bulk_clinic = a.selectbox(
            "Clinic",
            [None, *clinics],
            format_func=lambda c: clinics.get(c, "All clinics"),
            key="invitations_bulk_clinic",
        )
        upcoming = b.checkbox(
            "Only patients with an upcoming appointment", True, key="invitations_bulk_upcoming"
        )
        renew = c.checkbox("Renew expired invitations too", True, key="invitations_bulk_renew")
        preview = _preview(me, bulk_clinic, upcoming, renew)
        st.markdown(
            f"**{preview.to_send} will be invited.** Skipped: "
            + ("; ".join(f"{n} {why}" for why, n in preview.skipped.items()) or "none")
        )
        if st.button(
            f"Send {preview.to_send} invitations",
            disabled=not preview.to_send,
            key="invitations_bulk_send",
        ):
            send_many(preview.patient_ids, "invitations_bulk")
            st.rerun()
    results_table("invitations_bulk")

if me.can(Permission.NOTIFICATIONS_MANAGE):
    settings_panel(clinics, "invitations")
