"""The day's money on the Payments page: the cash-up per clinic and method (what the till, the
card terminal and the card provider show), and the audited CSV export of payments and refunds."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.kernel.clock import local_today
from core.payments import cashup, desk
from core.practice import choices
from ui import run_action
from ui.caches import cached
from ui.context import read
from ui.locale import date_picker, display_format
from ui.text import show_table


@cached("setup", ttl=300, max_entries=10)
def _clinics(me):
    found = read(choices.list_choices, me, include_inactive=True)
    return {c.id: c.name for c in found.clinics}


@cached("appointments", "patients", ttl=30, max_entries=20)
def _cash_up(me, day, clinic_id):
    return read(cashup.cash_up, me, day, day, clinic_id)


def cash_up_panel(me, practice) -> None:
    """`practice`: the practice's format (the first clinic's), for All clinics."""
    clinics = _clinics(me)
    c1, c2 = st.columns(2)
    where = c1.selectbox(
        "Clinic",
        [None, *clinics],
        format_func=lambda c: clinics.get(c, "All clinics"),
        key="payments_cashup_clinic",
    )
    shown = date_picker(practice.locale)
    zone = display_format(where).timezone if where else practice.timezone
    day = c2.date_input("Day", local_today(zone), key="payments_cashup_day", format=shown)
    rows = _cash_up(me, day, where)
    st.caption(
        "Each clinic's own day and clock. Money in less money out (Net) is what the till, the card "
        "terminal and the card provider show for the day: a refund counts the day it is handed "
        "back; a fee kept from a prepayment, a checkout not paid and a refund not yet made move no "
        "money (refunds due at the day's end are owed back, apart, made since or not). Points "
        "are their value, never in a till."
    )
    show_table(
        pd.DataFrame(
            [
                {
                    "Clinic": x.clinic,
                    "Method": x.method,
                    "In": x.money_in,
                    "Out": x.money_out,
                    "Net": x.net,
                    "Refunds due": x.refunds_due,
                }
                for x in rows
            ],
            columns=["Clinic", "Method", "In", "Out", "Net", "Refunds due"],
        ),
        hide_index=True,
        width="stretch",
        key="payments_cashup_table",
    )
    if not rows:
        st.info("No money moved on that day.")

    if me.can(Permission.DATA_EXPORT):
        st.subheader("Export payments and refunds")
        c1, c2 = st.columns(2)
        today = local_today(zone)
        first = c1.date_input(
            "From", today - timedelta(days=30), key="payments_export_from", format=shown
        )
        last = c2.date_input("To", today, key="payments_export_to", format=shown)
        st.caption(
            "Days and times are each clinic's own (the clinic chosen above, or all). A row is "
            "money that moved, when it moved, signed (in +, out -) in the clinic's currency; "
            "then the refunds owed back at the end of the last day, in refund_due. Every "
            "status is as it stood at the end of the last day, not as it is today."
        )
        if st.button("Prepare CSV", key="payments_export"):
            made = run_action(desk.export_payments, first, last, where)
            if made:
                st.download_button(
                    "Download payments.csv",
                    made.value,
                    "payments.csv",
                    "text/csv",
                    key="payments_export_download",
                )
