"""The Portal invitations page's pieces: the patients table with its selection, the actions on
the selected patients, and the bulk invitation of every eligible patient."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.patients import enrolment
from core.patients.invitations import PortalStatus
from ui.caches import cached
from ui.context import read
from ui.picks import acted, picked
from ui.portal import history_table, results_table, revoke_many, send_many
from ui.text import escape, plain, show_table


@cached("patients", "appointments", ttl=20, max_entries=20)
def _preview(current, clinic_id, upcoming_only, include_expired):
    return read(
        enrolment.bulk_preview,
        current,
        clinic_id=clinic_id,
        upcoming_only=upcoming_only,
        include_expired=include_expired,
    )


MOMENTS = ("Sent", "Expires", "Enrolled")
MEMORY = "invitations_shown"  # the rows the table showed (ui.picks)


def overview_table(
    rows: list[enrolment.InvitationRow], when, scope: tuple
) -> list[enrolment.InvitationRow]:
    """The page of patients with their portal status; returns the selected rows, those that
    were shown where the person clicked (`scope`: the page's filters, ui.picks)."""
    table = pd.DataFrame(
        [
            {
                "#": r.patient_id,  # two patients of one name told apart, as the search does
                "Patient": plain(r.name),
                "Status": r.status.label,
                "Channel": r.channel,
                "Sent to": plain(r.sent_to or ""),
                "Sent": when(r.sent_at),
                "Expires": when(r.expires_at),
                "Enrolled": when(r.enrolled_at),
            }
            for r in rows
        ]
    )
    shown = show_table(
        table,
        hide_index=True,
        width="stretch",
        # a clinic-local moment ("Wed, 18 Nov 2026, 10:00") whole, not cut to "… 202…"
        column_config={
            "Sent to": st.column_config.TextColumn(width=210),
            **{name: st.column_config.TextColumn(width=160) for name in MOMENTS},
        },
        on_select="rerun",
        selection_mode="multi-row",
        key="invitations_table",
    )
    return picked(rows, [r.patient_id for r in rows], shown.selection.rows, MEMORY, scope)


def selected_actions(me, chosen: list[enrolment.InvitationRow]) -> None:
    """Send or resend to the selected patients, revoke their pending invitations, and one
    patient's invitation history."""
    st.subheader(f"{len(chosen)} selected")
    a, b = st.columns(2)
    if a.button("Send / resend invitations", key="invitations_send_selected", type="primary"):
        send_many([r.patient_id for r in chosen], "invitations_selected")
        acted(MEMORY)
        st.rerun()
    pending = [r for r in chosen if r.status == PortalStatus.INVITED]
    if b.button(f"Revoke {len(pending)} pending", disabled=not pending, key="invitations_revoke"):
        revoke_many([r.invitation_id for r in pending], "invitations_selected")
        acted(MEMORY)
        st.rerun()
    results_table("invitations_selected")
    if len(chosen) == 1:
        st.caption(f"Invitation history of {escape(chosen[0].name)} (#{chosen[0].patient_id})")
        history_table(
            read(enrolment.invitation_history, me, chosen[0].patient_id),
            "invitations_history",
        )


def bulk_invite(me, clinics: dict[int, str]) -> None:
    """Preview who would be invited (on request: it reads every eligible patient), then send."""
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
