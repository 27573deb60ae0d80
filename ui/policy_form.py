"""The cancellation policy form: window, fees, points, reschedules, approvals, online cancelling
and the text patients see; saving adds a new version."""

from __future__ import annotations

import streamlit as st

from core.kernel.errors import DomainError, ValidationError
from core.kernel.money import ClinicFormat, currency_symbol, minor_digits, to_major, typed_minor
from core.policy import cancellation as policy
from ui.context import actor, forget, read, refresh, run_action, show_error, start
from ui.text import escape

SCOPE_KEY = "policy_form_scope"  # the (clinic, service) whose policy the fields were filled from
BASES = {"fixed": "Fixed amount", "percent": "% of the visit's price"}
ASKED_KEY = "policy_change_asked"  # (clinic, service, the form's values, what core warned)
SAVED_KEY = "policy_saved_note"  # the confirmation shown after the rerun


def filled(base, fmt: ClinicFormat) -> dict:
    """The form's fields (keyed policy_*) as `base` has them (the version in force, or None:
    the defaults), in the clinic's currency."""
    values = {
        "window": base.window_hours if base else 24,
        "points": base.points_deducted if base else 0,
        "reschedules": base.max_reschedules if base else 2,
        "approval": base.inside_window_needs_approval if base else True,
        "auto": base.outside_window_auto_accept if base else False,
        "online": base.online_cancel_allowed if base else True,
        "text": base.policy_text if base else "",
    }
    for key, which in (("late", "late_cancel_fee"), ("no_show", "no_show_fee")):
        cents = getattr(base, f"{which}_cents") if base else 0
        values[f"{key}_basis"] = getattr(base, f"{which}_basis", "fixed") if base else "fixed"
        values[f"{key}_fee"] = float(to_major(cents, fmt.currency))
        values[f"{key}_percent"] = getattr(base, f"{which}_percent", 0) if base else 0
    return values


def policy_form(base, fmt: ClinicFormat, clinic_id: int, service_id: int | None) -> None:
    """The form filled from `base` (the version in force for the scope, or None), in the
    clinic's currency."""
    shown = filled(base, fmt)
    if st.session_state.get(SCOPE_KEY) != (clinic_id, service_id):
        # a keyed field keeps what it showed once drawn: another clinic or service starts from
        # its own version, not from what the last one's form held (set, so the browser too)
        forget("policy", shown)
        st.session_state[SCOPE_KEY] = (clinic_id, service_id)
    # a field gone from the session (another page was open) starts from it again; the widgets
    # take their values from the state alone, never also as their value= or index=
    start("policy", shown)
    saved_note()
    symbol = currency_symbol(fmt.currency, fmt.locale)
    digits = minor_digits(fmt.currency)
    with st.form("policy_form"):
        a, b, c = st.columns(3)
        window = a.number_input(
            "Late-cancellation window (hours)",
            step=1,
            key="policy_window",
            help="Cancelling fewer real hours than this before the start is late.",
        )

        def fee(column, label: str, which: str):
            """A fee's basis, fixed amount and percentage; the one the basis names applies."""
            chosen = column.radio(
                label,
                list(BASES),
                format_func=BASES.get,
                horizontal=True,
                key=f"policy_{which}_basis",
            )
            amount = column.number_input(
                f"{label}: fixed amount ({symbol})",
                step=5.0,
                format=f"%.{digits}f",
                key=f"policy_{which}_fee",
            )
            percent = column.number_input(
                f"{label}: % of the visit's price",
                step=5,
                key=f"policy_{which}_percent",
                help="A whole percentage from 0 to 100 of the visit's price (its services' "
                "prices, or a package's one price), worked out when it happens and rounded half "
                "up to the currency's smallest unit. A visit with no price costs no fee.",
            )
            return chosen, amount, percent

        late_basis, late_fee, late_percent = fee(b, "Late-cancellation fee", "late")
        no_show_basis, no_show_fee, no_show_percent = fee(c, "No-show fee", "no_show")
        points = a.number_input(
            "Points deducted",
            step=1,
            key="policy_points",
        )
        reschedules = b.number_input(
            "Most reschedules per appointment",
            step=1,
            key="policy_reschedules",
        )
        # across the form, under the columns: in the third beside the fees Chromium cut their
        # labels to one line ('Late requests need a manager's ap…') at 1280 px
        approval = st.checkbox(
            "Late requests need a manager's approval",
            key="policy_approval",
        )
        auto = st.checkbox(
            "Accept requests outside the window automatically",
            key="policy_auto",
        )
        online = st.checkbox(
            "Patients may cancel online",
            key="policy_online",
        )
        text = st.text_area(
            "Policy text shown to patients",
            key="policy_text",
        )
        saved = st.form_submit_button("Save as a new version", type="primary")
    if saved:
        try:  # more decimals than the currency has are refused, not rounded
            late_cents, no_show_cents = (
                typed_minor(f, fmt.currency) for f in (late_fee, no_show_fee)
            )
        except ValidationError as error:
            show_error(error)
            return
        values = dict(
            clinic_id=clinic_id,
            service_id=service_id,
            window_hours=int(window),
            late_cancel_fee_cents=late_cents,
            no_show_fee_cents=no_show_cents,
            late_cancel_fee_basis=late_basis,
            late_cancel_fee_percent=int(late_percent),
            no_show_fee_basis=no_show_basis,
            no_show_fee_percent=int(no_show_percent),
            points_deducted=int(points),
            inside_window_needs_approval=approval,
            outside_window_auto_accept=auto,
            online_cancel_allowed=online,
            max_reschedules=int(reschedules),
            policy_text=text,
        )
        try:  # what it does to the visits booked ahead, asked first when it makes any worse
            effects = read(policy.change_effects, actor(), **values)
        except DomainError:  # values save_policy refuses: it says what to fix, with the rest
            effects = policy.ChangeEffects()
        if effects.warning:
            st.session_state[ASKED_KEY] = (clinic_id, service_id, values, effects.warning)
            st.rerun()
        _save(values, effects)
    _confirm(clinic_id, service_id)


def _save(values: dict, effects, despite: bool = False) -> None:
    said = f"Policy saved; it applies from now on. {effects.summary}".strip()
    if run_action(policy.save_policy, **values, despite_effects=despite, success=said):
        st.session_state[SAVED_KEY] = said
        refresh()


def _confirm(clinic_id: int, service_id: int | None) -> None:
    """The question a save left: what the new version makes worse for visits booked ahead
    (core's words); save it anyway, or go back to the form as typed."""
    asked = st.session_state.get(ASKED_KEY)
    if not asked or asked[:2] != (clinic_id, service_id):
        return
    values, warning = asked[2], asked[3]
    st.warning(escape(warning), icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button("Save the new version anyway", key="policy_change_anyway", type="primary"):
        st.session_state.pop(ASKED_KEY, None)
        _save(values, read(policy.change_effects, actor(), **values), despite=True)
    if no.button("Back to the form", key="policy_change_back"):
        st.session_state.pop(ASKED_KEY, None)
        st.rerun()


def saved_note() -> None:
    """After a save, what the new version reaches (the toast goes with the rerun)."""
    if said := st.session_state.pop(SAVED_KEY, None):
        st.success(escape(said), icon=":material/check_circle:")
