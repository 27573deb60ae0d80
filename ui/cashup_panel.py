"""The day's money on the Cash-up page: the cash-up per clinic and method (what the till, the
card terminal and the card provider show), the refunds owed back to mark handed back, and the
audited CSV export of payments and refunds."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.kernel.clock import local_today
from core.payments import cashup, desk
from core.payments.providers import provider_for
from core.practice import choices
from ui import refresh, run_action
from ui.caches import cached
from ui.context import forget_if_saved, mark_saved, read, settings
from ui.locale import date_picker, display_format
from ui.picks import acted, picked
from ui.text import show_table

OWED_MEMORY = "payments_owed_shown"


@cached("setup", ttl=300, max_entries=10)
def _clinics(me):
    found = read(choices.list_choices, me, include_inactive=True)
    return {c.id: c.name for c in found.clinics}


@cached("appointments", "patients", ttl=30, max_entries=20)
def _cash_up(me, day, clinic_id):
    return read(cashup.cash_up, me, day, day, clinic_id)


@cached("appointments", "patients", ttl=30, max_entries=20)
def _owed_back(me, day, clinic_id, online: bool):
    return read(cashup.owed_back, me, day, clinic_id, provider_online=online)


def _how(r: cashup.OwedBack) -> str:
    if not r.at_desk:  # a card refund that may have been made says why it waits
        return f"refund job, to the card: {r.why}" if r.why else "refund job, to the card"
    return f"at the desk: {r.why}" if r.why else "at the desk"


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
        "money (refunds due at the day's end are owed back, listed below, made since or not). "
        "Points are their value, never in a till."
    )
    if not rows:  # the words alone: an empty table of headings read 'empty' above them
        st.info("No money moved on that day.")
    else:
        _day_table(rows)
    _owed_back_list(me, day, where)

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


def _day_table(rows) -> None:
    """The day's money per clinic and method."""
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


def _owed_back_list(me, day, where) -> None:
    """The refunds owed back at the day's end, each to mark handed back at the desk (a fee on
    no visit's too, which no appointment's Payments panel shows); the card refunds the refund
    job sends are listed, not handed back."""
    online = provider_for(settings().stripe).online
    owed = _owed_back(me, day, where, online)
    if not owed:
        return
    st.subheader("Refunds owed back")
    table = show_table(
        pd.DataFrame(
            {
                "Refund": [f"P-{r.payment_id}" for r in owed],
                "Clinic": [r.clinic for r in owed],
                "Due since": [r.since for r in owed],
                "Patient": [r.patient for r in owed],
                "Appointment": [f"#{r.appointment_id}" if r.appointment_id else "" for r in owed],
                "Method": [r.method for r in owed],
                "Amount": [r.amount for r in owed],
                "Note": [r.note for r in owed],
                "How": [_how(r) for r in owed],
            }
        ),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="payments_owed_table",
    )
    chosen = picked(
        owed, [r.payment_id for r in owed], table.selection.rows, OWED_MEMORY, (day, where)
    )
    if not chosen:
        st.caption(
            "Select a refund to mark it handed back at the desk (cash, or the card terminal)."
        )
        return
    refund = chosen[0]
    forget_if_saved("payments_owed", {"note": ""})
    needed = refund.why == cashup.PROVIDER_OFF  # kept with it: how, with card payments off
    label = "Note (how it was handed back)" if needed else "Note (optional)"
    note = st.text_input(label, key="payments_owed_note", max_chars=500)
    if st.button(f"Handed back: P-{refund.payment_id}", type="primary", key="payments_owed_done"):
        done = run_action(
            desk.mark_refunded,
            refund.payment_id,
            note,
            provider_online=online,
            success="Refund recorded.",
        )
        if done:
            acted(OWED_MEMORY)
            mark_saved("payments_owed")
            refresh()
