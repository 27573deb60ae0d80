"""Payments on the appointment page: the paid or deposit badge, every payment,
refund and fee paid; record a desk payment, a desk refund, or a fee (at the desk or charged to
the card on file through the provider when one is configured). Amounts are in the currency of
the appointment's clinic."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.kernel.clock import to_local
from core.kernel.errors import DomainError, ValidationError
from core.kernel.money import ClinicFormat, currency_symbol, minor_digits, typed_minor
from core.payments import desk, prepay
from core.payments.providers import provider_for
from ui.caches import cached
from ui.context import (
    actor,
    forget_if_saved,
    mark_saved,
    read,
    refresh,
    run_action,
    run_in_steps,
    settings,
    show_error,
)
from ui.folds import fold
from ui.locale import display_format
from ui.picks import chosen_done, gone_choice
from ui.text import escape, show_table

FEE_METHODS = {
    "card": "Card at the desk",
    "cash": "Cash",
    "card_on_file": "Charge the card on file",
}


@cached("appointments", "patients", ttl=30, max_entries=50)
def _summary(me, appointment_id: int) -> desk.Summary:
    return read(desk.summary, me, appointment_id)


def _note(r: prepay.PaymentRow) -> str:
    """The note as written, then what the card provider said when it last refused a refund."""
    tried = f"Last attempt: {r.last_error}" if r.last_error else ""
    return " · ".join(filter(None, [r.note, tried]))


def _row(r: prepay.PaymentRow, when) -> dict[str, object]:
    """One row of the payments table: st.table renders Markdown in every cell, so each is
    escaped (a typed note is no markup; '$' is no LaTeX)."""
    return {
        "Ref": r.reference,
        "When": escape(when(r.at)),
        "Kind": escape(r.what),  # in words ('no-show fee given back'), not as stored
        "Method": escape(r.method),
        "Status": escape(r.state),
        "Amount": escape(r.amount),
        "Points": str(r.points) if r.points else "",
        "Note": escape(_note(r)),
    }


def payments_panel(appointment_id: int) -> None:
    me = actor()
    info = _summary(me, appointment_id)
    fmt = display_format(info.clinic_id)  # the clinic's local time and locale, never UTC
    st.subheader("Payments")
    if info.badge:
        colour = "orange" if info.badge == "Part paid" else "green"
        st.markdown(f":{colour}-badge[{info.badge}]")
    if info.due:
        still = escape(info.outstanding) or "nothing"  # money is no markup: $ is not LaTeX
        st.caption(f"Prepayment asked: {escape(info.due)} · still to pay: {still}")
    if info.rows:
        rows = [_row(r, fmt.moment) for r in info.rows]
        st.table(pd.DataFrame(rows).set_index("Ref"))  # a few rows
    else:
        st.caption("No payments recorded.")
    symbol = currency_symbol(info.currency, fmt.locale)
    if info.closed:  # core refuses a payment of the visit: what can be taken is its fee
        st.caption(
            f"This visit was {info.closed}: nothing is owed for the visit itself"
            + (". Its fee is taken below ('Record fee paid')." if info.fees else ", nor is a fee.")
        )
    elif box := fold("Record a payment taken at the desk", "payments_desk_open"):
        # a recorded payment empties the form: a second press (it did not seem to work) asks
        # for an amount instead of taking the same money twice
        forget_if_saved(
            "payments_desk", {"amount": 0.0, "note": "", "again": False, "beyond": False}
        )
        with box, st.form("payments_desk_form"):
            amount = st.number_input(
                f"Amount ({symbol})",
                min_value=0.0,
                step=5.0,
                format=f"%.{minor_digits(info.currency)}f",
                help=f"In the clinic's currency, {info.currency}.",
                key="payments_desk_amount",
            )
            method = st.radio(
                "Method",
                ["card", "cash"],
                horizontal=True,
                key="payments_desk_method",
                format_func={"card": "Card", "cash": "Cash"}.get,  # the words, not the keys
            )
            note = st.text_input("Note", key="payments_desk_note")
            again = st.checkbox(
                "The patient paid this again",
                key="payments_desk_again",
                help="Only when the same amount was really paid twice: the same payment "
                "recorded again within two minutes is otherwise taken for a second press.",
            )
            beyond = st.checkbox(
                "The patient paid more than is owed",
                key="payments_desk_beyond",
                help="Only when the patient really paid more than is left to pay of the "
                "visit's price; more is otherwise refused as a slip of the keyboard. The extra "
                "can be given back under 'Give money back'.",
            )
            if st.form_submit_button("Record payment"):
                try:  # more decimals than the currency has are refused, not rounded
                    cents = typed_minor(amount, info.currency, fmt.locale)
                except ValidationError as error:
                    show_error(error)
                else:
                    kwargs = {"amount_cents": cents, "method": method, "note": note}
                    kwargs |= {"again": again, "beyond": beyond}
                    saved = run_action(
                        desk.record_desk_payment, appointment_id, **kwargs, success="Saved."
                    )
                    if saved:
                        mark_saved("payments_desk")
                        refresh()
    if info.refundable and (
        box := fold(
            "Give money back (a refund, or a payment recorded by mistake)", "payments_back_open"
        )
    ):
        _give_back(box, info, appointment_id, symbol, fmt.locale)
    due_refunds = [r for r in info.rows if r.status == "refund due" and r.method != "Card"]
    for r in due_refunds:
        label = f"Mark {r.reference} ({escape(r.amount)}) refunded at the desk"
        if st.button(label, key=f"payments_refund_{r.id}"):
            if run_action(desk.mark_refunded, r.id, success="Refund recorded."):
                refresh()
    provider = provider_for(settings().stripe)
    _card_refunds(me, info.rows, fmt, online=provider.online)
    for fee in info.fees:
        methods = ["card", "cash"] + (["card_on_file"] if provider.online else [])
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        label = f"Fee #{fee.ledger_entry_id}: {fee.kind}, {escape(fee.amount)}"
        key = f"payments_fee_{fee.ledger_entry_id}"
        how = c1.selectbox(label, methods, format_func=FEE_METHODS.get, key=f"{key}_method")
        if not c2.button("Record fee paid", key=key):
            continue
        if how == "card_on_file":  # its attempt is committed before the provider is asked
            charged = run_in_steps(_charge_on_file, fee.ledger_entry_id, provider=provider)
            if isinstance(charged, desk.ChargePending):  # not paid yet, and nothing went wrong
                st.warning(escape(str(charged)), icon=":material/hourglass_top:")
            elif charged:
                st.toast("Paid.", icon=":material/check_circle:")
                refresh()
        elif run_action(
            desk.pay_fee, fee.ledger_entry_id, method=how, provider=provider, success="Paid."
        ):
            refresh()


def _charge_on_file(write, me, ledger_entry_id: int, *, provider) -> object:
    """desk.charge_fee_on_file, its ChargePending handed back rather than raised: the provider
    took the charge and has not finished it, which is no error (it is said as a warning)."""
    try:
        return desk.charge_fee_on_file(write, me, ledger_entry_id, provider=provider)
    except desk.ChargePending as pending:
        return pending


def card_refund_state(r: prepay.PaymentRow, fmt: ClinicFormat, online: bool = True) -> str:
    """A refund to the card through the provider, in words: sent, waiting for the refund job
    (after an attempt the provider did not answer, or a look-up it refused, too: it may have
    made it, so it is not handed back), refused, or waiting while card payments are switched
    off (`online` False: the job does not run); the last two are handed back at the desk
    (`desk.mark_refunded`)."""
    day = fmt.day(to_local(r.at, fmt.timezone).date())
    if r.status == "refunded":
        return (
            f"handed back at the desk on {day}" if r.handed_back else f"sent to the card on {day}"
        )
    if r.unsettled:
        return f"waiting: {prepay.refund_waits(r.last_error, online=online)}"
    if r.last_error:
        return f'refused by the provider: "{r.last_error}" — hand it back at the desk'
    if not online:
        return (
            "waiting: card payments are switched off, so the refund job cannot send it to "
            "the card — hand it back at the desk, saying how"
        )
    return "waiting for the refund job"


def _card_refunds(me, rows: list[prepay.PaymentRow], fmt: ClinicFormat, online: bool) -> None:
    """Each refund to the card with its state; one refused, or due while card payments are off,
    is handed back at the desk here, with a note (required when they are off: it says how), by
    who may record payments (as on the cash-up's list of refunds owed back)."""
    refunds = [r for r in rows if r.kind in prepay.REFUND_KINDS and r.method == "Card"]
    for r in refunds:
        state = escape(card_refund_state(r, fmt, online))  # the provider's words are no markup
        st.caption(f"Card refund {r.reference} ({escape(r.amount)}): {state}")
        due = r.status == "refund due" and not r.unsettled and (r.last_error or not online)
        if not due or not me.can(Permission.PAYMENTS_RECORD):
            continue
        key = f"payments_card_refund_{r.id}"
        forget_if_saved(key, {"note": ""})
        label = f"Note for {r.reference}" + (" (optional)" if r.last_error else " (how)")
        note = st.text_input(label, key=f"{key}_note", max_chars=500)
        if st.button("Handed back at the desk", key=f"{key}_done", type="primary"):
            done = run_action(
                desk.mark_refunded, r.id, note, provider_online=online, success="Refund recorded."
            )
            if done:
                mark_saved(key)
                refresh()


def _give_back(box, info: desk.Summary, appointment_id: int, symbol: str, locale: str) -> None:
    """Give back money of a payment (core.payments.desk.refund_payment): the payment stays, the
    refund is recorded with its reason; never more than is left of it."""
    labels = {r.payment_id: r.label for r in info.refundable}
    forget_if_saved("payments_back", {"amount": 0.0, "reason": ""})
    # the payment chosen, given back in full at another desk meanwhile, leaves the list: the
    # box would fall back to the first payment and the press give back that one
    gone = gone_choice("payments_back_payment", list(labels), lambda i: f"P-{i}")
    if gone:
        box.warning(
            f"{gone} has been given back in full meanwhile, so nothing was given back. Choose "
            "the payment again; the amount and reason typed are kept.",
            icon=":material/sync_problem:",
        )
    with box, st.form("payments_back_form"):
        chosen = st.selectbox(
            "Payment", list(labels), format_func=labels.get, key="payments_back_payment"
        )
        amount = st.number_input(
            f"Amount to give back ({symbol})",
            min_value=0.0,
            step=5.0,
            format=f"%.{minor_digits(info.currency)}f",
            key="payments_back_amount",
        )
        reason = st.text_input(
            "Reason (kept with the refund, e.g. 'recorded by mistake')", key="payments_back_reason"
        )
        pressed = st.form_submit_button("Give back") and not gone
    if not pressed or chosen is None:
        return
    try:  # more decimals than the currency has are refused, not rounded
        cents = typed_minor(amount, info.currency, locale)
    except ValidationError as error:
        show_error(error)
        return
    done = run_action(desk.refund_payment, int(chosen), amount_cents=cents, reason=reason)
    if done:
        made = done.value
        st.toast(
            f"Refund P-{made.id} recorded as given back."
            if made.status == "refunded"
            else f"Refund P-{made.id} is due: the refund job sends it to the card.",
            icon=":material/check_circle:",
        )
        mark_saved("payments_back")
        chosen_done("payments_back_payment")
        refresh()


@cached("appointments", "patients", "policy", ttl=30, max_entries=50)
def _patient_money(me, patient_id: int):
    from core.patients import records

    return read(records.patient_money, me, patient_id)


def patient_money_panel(me, patient_id: int) -> None:
    """On the patient's record: what they owe (fees, coming prepayments) and what they paid,
    newest first, of every appointment: 'what did I pay last time, and is anything owed?'."""
    st.subheader("Payments")
    try:
        money = _patient_money(me, patient_id)
    except DomainError as error:
        show_error(error)
        return
    (st.warning if money.owed else st.caption)(escape(money.owed_text))
    if not money.payments:
        st.caption("No payment was made or recorded for this patient.")
        return
    if money.more:
        st.caption(
            f"The newest {len(money.payments)} payments; each appointment's page has all of "
            "its own, and the patient's file every one."
        )
    show_table(
        pd.DataFrame(
            {
                "When": [p.when for p in money.payments],
                "Appointment": [
                    f"#{p.appointment_id}" if p.appointment_id else "" for p in money.payments
                ],
                "What": [p.kind for p in money.payments],
                "Method": [p.method for p in money.payments],
                "Amount": [p.amount for p in money.payments],
                "Status": [p.status for p in money.payments],
            }
        ),
        hide_index=True,
        width="stretch",
        key=f"patients_payments_{patient_id}",
    )
