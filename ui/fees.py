"""Fee waivers and points top-ups (managers and owners): a panel any page can place."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.payments import desk
from core.payments import points as ledger
from core.policy import cancellation as policy
from ui.caches import cached
from ui.context import read, refresh, run_action
from ui.locale import display_format
from ui.picks import chosen_done, gone_choice
from ui.text import escape, show_table


@cached("policy", "appointments", "patients", ttl=30, max_entries=20)
def _open_fees(current, patient_id):
    return read(policy.list_fees, current, patient_id=patient_id, open_only=True)


def _waived_text(fee_id: int, waived: desk.Waived) -> str:
    """What the waiver did: what is due back, where, whether the patient is emailed it, and
    where points given back on a record merged into another went (`Waived.points_words`)."""
    points = f" {waived.points_words}" if waived.points_words else ""
    if not waived.refunds:
        return f"Fee #{fee_id} waived.{points}"
    n = len(waived.refunds)
    where = "on the appointment's Payments" if waived.entry.appointment_id else "in the cash-up"
    told = (
        "the patient is emailed what is given back and how."
        if waived.emailed
        else f"the patient is not emailed ({waived.not_emailed}): tell them."
    )
    return (
        f"Fee #{fee_id} waived. What was paid of it is due back to the patient ({n} refund"
        f"{'s' if n > 1 else ''} {where}); {told}{points}"
    )


def waiver_panel(current, prefix: str) -> None:
    """Open fees (optionally of one patient), waive one with a reason, or add points."""
    patient = st.number_input(
        "Patient # (0 = everyone)", min_value=0, step=1, value=0, key=f"{prefix}_fee_patient"
    )
    fees = _open_fees(current, int(patient) or None)
    show_table(
        pd.DataFrame(
            [
                {  # each fee in its own clinic's currency, locale and zone
                    "Fee #": f.id,
                    "Patient #": f.patient_id,
                    "Patient": f.patient_name,
                    "Appointment #": f.appointment_id,
                    "Kind": f.what,
                    "Amount": display_format(f.clinic_id).money(f.amount_cents)
                    if f.amount_cents
                    else "",
                    "Points": f.points,
                    "Assessed": display_format(f.clinic_id).moment(f.created_at),
                }
                for f in fees
            ]
        ),
        hide_index=True,
        width="stretch",
        key=f"{prefix}_fee_table",
    )
    # the fee chosen, paid or waived at another desk meanwhile, leaves this list of open fees:
    # the box would fall back to the first fee and the press waive that one
    gone = gone_choice(f"{prefix}_fee_id", [f.id for f in fees], lambda i: f"#{i}", (patient,))
    if gone:
        st.warning(
            f"Fee {gone} is no longer open (paid or waived meanwhile), so nothing was waived. "
            "Choose the fee again; the reason typed is kept.",
            icon=":material/sync_problem:",
        )
    with st.form(f"{prefix}_waive_form"):
        fee_id = st.selectbox(
            "Fee to waive",
            [f.id for f in fees],
            key=f"{prefix}_fee_id",
            format_func=lambda i: f"#{i}",
        )
        reason = st.text_input("Reason (kept in the audit log)", key=f"{prefix}_fee_reason")
        waive = st.form_submit_button("Waive fee") and not gone
    if waive and fee_id is not None and (done := run_action(desk.waive_fee, fee_id, reason)):
        st.toast(escape(_waived_text(fee_id, done.value)), icon=":material/check_circle:")
        chosen_done(f"{prefix}_fee_id")
        refresh()
    with st.form(f"{prefix}_points_form"):
        c1, c2 = st.columns(2)
        who = c1.number_input("Patient #", min_value=0, step=1, key=f"{prefix}_points_patient")
        points = c2.number_input(
            "Points to add", min_value=1, step=5, value=20, key=f"{prefix}_points_value"
        )
        why = st.text_input(
            "Reason (the patient reads it on their Points tab)", key=f"{prefix}_points_reason"
        )
        add = st.form_submit_button("Add points")
    added = add and run_action(ledger.adjust_points, int(who), int(points), why)
    if added:
        st.toast(escape(ledger.adjusted_text(added.value, int(points))))
        refresh()
