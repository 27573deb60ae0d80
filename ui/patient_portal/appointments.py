"""The portal's appointment cards and their actions: pay, ask to cancel or reschedule (the
seed's two-button confirmation), accept or decline a proposed time, and the forms sent after
booking (answer the questionnaire, sign the consent, read the instructions), and "Add to my
calendar" for a visit whose time is agreed."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from core.forms.after_booking import Answer
from core.messaging.visit_calendar import MIME as MIME_CALENDAR
from core.payments.providers import provider_for
from core.portal import home
from ui.context import database, settings
from ui.locale import date_picker
from ui.patient import client_address, escape, time_of_day_or_any
from ui.patient.form import FORM_ACTIONS, FORM_STATES, fields, show_document
from ui.patient_portal import act, flash

CHANGE_KEY, PAY_KEY, FORM_KEY = "portal_change", "portal_pay", "portal_form"
WITHDRAW_KEY = "portal_withdraw"  # the request whose withdrawal is being confirmed


def card(item: home.PortalAppointment, *, actions: bool = True) -> None:
    with st.container(border=True, key=f"portal_appt_{item.id}"):
        left, right = st.columns([3, 1])
        service, provider = item.service or "Appointment", item.provider or "our team"
        left.markdown(
            f"**{escape(service)}** with {escape(provider)}"
            f"  \n{escape(item.when)} · {escape(item.clinic)}"
        )
        right.markdown(f":blue-badge[{item.status_label}]")
        if item.payment:
            colour = "green" if item.payment in ("Paid", "Deposit paid") else "orange"
            right.markdown(f":{colour}-badge[{item.payment}]")
        if item.outstanding:
            right.caption(f"To pay: {escape(item.outstanding)}")
        if item.change_pending:
            left.markdown(f":orange-badge[{item.change_pending}]")
        if not actions:
            return
        online = item.pay_online(_card_online())
        if item.payable and not online:  # no points to spend and no card provider
            left.caption(f"Please pay the {escape(item.outstanding)} at the desk when you come.")
        buttons = st.columns(4)
        if online and buttons[0].button("Pay", key=f"portal_pay_{item.id}"):
            st.session_state[PAY_KEY], st.session_state[CHANGE_KEY] = item.id, None
        if item.can_ask_change and buttons[1].button(
            "Cancel or reschedule", key=f"portal_change_{item.id}"
        ):
            st.session_state[CHANGE_KEY], st.session_state[PAY_KEY] = item.id, None
        if item.calendar_file:
            name, content = item.calendar_file
            buttons[2].download_button(
                "Add to my calendar",
                content,
                file_name=name,
                mime=MIME_CALENDAR,
                key=f"portal_ics_{item.id}",
                icon=":material/event:",
                on_click="ignore",
            )
        if item.change_by_phone:
            left.caption(escape(item.change_by_phone))
        if item.status == "requested" and buttons[1].button(
            "Withdraw request", key=f"portal_withdraw_{item.id}"
        ):
            st.session_state[WITHDRAW_KEY] = item.id
        if item.status == "requested" and st.session_state.get(WITHDRAW_KEY) == item.id:
            _withdraw(item.id)
        if item.status == "tentative":
            if buttons[2].button("Accept this time", key=f"portal_accept_{item.id}"):
                if done := act(home.answer_proposal, _me(), item.id, accept=True):
                    flash(done)
            if buttons[3].button("Decline", key=f"portal_decline_{item.id}"):
                if done := act(home.answer_proposal, _me(), item.id, accept=False):
                    flash(done)
        if online and st.session_state.get(PAY_KEY) == item.id:
            _pay(item.id)
        if item.can_ask_change and st.session_state.get(CHANGE_KEY) == item.id:
            _change(item.id)
        if item.forms:
            _forms(item)


def _withdraw(appointment_id: int) -> None:
    st.warning("Withdraw this request? The practice will not book it.", icon=":material/help:")
    no, yes = st.columns(2)
    if no.button("No, keep it", key="portal_withdraw_no"):
        st.session_state[WITHDRAW_KEY] = None
        st.rerun()
    if yes.button("Yes, withdraw it", key="portal_withdraw_yes", type="primary"):
        st.session_state[WITHDRAW_KEY] = None
        if done := act(home.withdraw_request, _me(), appointment_id):
            flash(done)


def _card_online() -> bool:
    """Whether a card can be paid online (Stripe configured), or only at the desk."""
    return provider_for(settings().stripe).online


def _me() -> int:
    return st.session_state["portal_patient_id"]


def _forms(item: home.PortalAppointment) -> None:
    """The appointment's documents with their state; an outstanding one opens in place (and
    instructions stay readable once read)."""
    todo = item.forms_outstanding
    st.markdown("**Forms**" + (f" · {todo} to complete before your visit" if todo else ""))
    for form in item.forms:
        left, right = st.columns([3, 1], vertical_alignment="center")
        colour, state = FORM_STATES[form.state]
        left.markdown(f"{form.kind_word}: {escape(form.title)} :{colour}-badge[{state}]")
        openable = form.state == "outstanding" or form.kind == "instructions"
        label = FORM_ACTIONS[form.kind] if form.state == "outstanding" else "Read again"
        if openable and right.button(label, key=f"portal_form_open_{form.id}"):
            st.session_state[FORM_KEY] = form.id
        if st.session_state.get(FORM_KEY) == form.id:
            _form(form)


def _form_view(form_id: int):
    """Opened (and audited) once per browser session, not on every rerun."""
    key = f"portal_form_view_{form_id}"
    if key not in st.session_state:
        view = act(home.open_form, _me(), form_id, client_address=client_address())
        if view is None:
            return None
        st.session_state[key] = view
    return st.session_state[key]


def _form(form) -> None:
    view = _form_view(form.id)
    if view is None:
        st.session_state[FORM_KEY] = None
        return
    show_document(view)
    if form.state != "outstanding":  # instructions read already: nothing to send
        if st.button("Close", key=f"portal_form_close_{form.id}"):
            st.session_state[FORM_KEY] = None
            st.rerun()
        return
    with st.form(f"portal_form_{form.id}"):
        answer, label = fields(view, f"portal_form_{form.id}")
        sent = st.form_submit_button(label, type="primary")
    if sent:
        done = act(
            home.answer_form, _me(), form.id, Answer(client_address=client_address(), **answer)
        )
        if done:
            st.session_state[FORM_KEY] = None
            st.session_state.pop(f"portal_form_view_{form.id}", None)
            flash(done)


def _pay(appointment_id: int) -> None:
    started = f"portal_pay_checkout_{appointment_id}"  # the card payment begun on this page
    if url := st.session_state.get(started):
        # no second Pay now: it would spend the points again and open a second card payment
        st.info(
            "Your card payment has been started. Finish it on the secure payment page; it "
            "shows here as paid within a minute.",
            icon=":material/credit_card:",
        )
        st.link_button("Continue to the secure card payment", url, type="primary")
        return
    provider = provider_for(settings().stripe)
    with database().read() as session:
        view = home.pay_view(session, _me(), appointment_id, card_online=provider.online)
    what = "deposit" if view.deposit else "amount"
    st.markdown(
        f"**Pay in advance** — {what} due: **{escape(view.outstanding)}**. You have "
        f"{escape(view.balance_text)} points; one point is worth {escape(view.point_value)}."
    )
    with st.form(f"portal_pay_form_{appointment_id}"):
        points = st.number_input(
            "Points to use",
            0,
            max(view.max_points, 0),
            view.suggested_points,
            key="portal_pay_points",
        )
        card = (
            st.checkbox("Pay the rest by card", True, key="portal_pay_card")
            if view.card_online
            else False
        )
        if not view.card_online:
            st.caption("Anything points do not cover is paid at the desk.")
        if view.max_points and view.max_points >= view.balance:
            every = "your last point" if view.balance == 1 else f"all {view.balance_text} points"
            st.caption(
                f"We have left one point in your balance: using {every} leaves it at zero, "
                "which pauses online requests until the practice adds points."
            )
        go = st.form_submit_button("Pay now", type="primary")
    if go:
        result = act(
            home.pay,
            _me(),
            appointment_id,
            points=int(points),
            card=card,
            provider=provider,
            return_url=f"{settings().base_url}/portal",
        )
        if result and result.checkout_url:
            st.session_state[started] = result.checkout_url
            st.rerun()
        elif result:
            st.session_state[PAY_KEY] = None
            flash(result.message)


def _change(appointment_id: int) -> None:
    with database().read() as session:
        view = home.change_preview(session, _me(), appointment_id)
    if not view.changeable:
        st.info(escape(view.reason_not))
        return
    kinds = {"cancel": "Cancel it", "reschedule": "Move it to another day"}
    if not view.cancel_online:
        kinds.pop("cancel")
    if view.reschedules_left <= 0:
        kinds.pop("reschedule")
    kind = st.radio(
        "What would you like to do?", list(kinds), format_func=kinds.get, key="portal_change_kind"
    )
    day = moment = None
    if kind == "reschedule":
        soon = view.today + timedelta(days=7)
        day = st.date_input(
            "Preferred day",
            soon,
            view.today,
            key="portal_change_day",
            format=date_picker(view.locale),
        )
        moment = time_of_day_or_any(view.locale, "portal_change_time")
    else:
        _cancel_warning(view)
    reason = st.text_input("Reason (optional)", key="portal_change_reason")
    no, yes = st.columns(2)
    if no.button("No, I'm having second thoughts", key="portal_change_no"):
        st.session_state[CHANGE_KEY] = None
        st.rerun()
    seen = f"portal_change_terms_{appointment_id}"
    shown = st.session_state.get(seen)  # the terms of the page the patient pressed on
    st.session_state[seen] = view.terms
    sure = "Ask to move it" if kind == "reschedule" else "Yes, pretty sure"
    if yes.button(sure, key="portal_change_yes", type="primary"):
        change = {"kind": kind, "requested_day": day, "time_of_day": moment, "reason": reason}
        done = act(home.ask_change, _me(), appointment_id, **change, shown=shown)
        if done:
            st.session_state[CHANGE_KEY] = None
            flash(done)


def _cancel_warning(view: home.ChangePreview) -> None:
    general = (
        f"Points may be deducted when you cancel less than {view.window_hours} hours before "
        "the appointment, and a zero points balance locks online requests."
    )
    if view.inside_window:
        costs = [f"a fee of {escape(view.fee)}" if view.fee else "", f"{view.points} points"]
        cost = " and ".join(c for c in costs if c and c != "0 points") or "nothing"
        text = (
            f"**Are you sure?** Your appointment is less than {view.window_hours} hours away: "
            f"cancelling now costs {cost}."
        )
        if view.locks:
            text += " Your balance would be zero, which locks online requests."
        st.warning(f"{text} {general}", icon=":material/warning:")
    else:
        st.info(f"Are you sure? {general}", icon=":material/info:")
    if view.prepayment:
        st.caption(escape(view.prepayment))
