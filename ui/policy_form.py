"""The cancellation policy form: window, fees, points, reschedules, approvals, online cancelling
and the text patients see; saving adds a new version."""

from __future__ import annotations

import streamlit as st

from core.kernel.errors import ValidationError
from core.kernel.money import ClinicFormat, currency_symbol, minor_digits, to_major, typed_minor
from core.policy import cancellation as policy
from ui.context import forget, refresh, run_action, show_error

FIELDS = (
    "window",
    "late_fee",
    "no_show_fee",
    "points",
    "reschedules",
    "approval",
    "auto",
    "online",
    "text",
)
SCOPE_KEY = "policy_form_scope"  # the (clinic, service) whose policy the fields were filled from


def policy_form(base, fmt: ClinicFormat, clinic_id: int, service_id: int | None) -> None:
    """The form filled from `base` (the version in force for the scope, or None), in the
    clinic's currency."""
    if st.session_state.get(SCOPE_KEY) != (clinic_id, service_id):
        # a keyed field keeps what it showed once drawn: another clinic or service starts from
        # its own version, not from what the last one's form held
        forget("policy", FIELDS)
        st.session_state[SCOPE_KEY] = (clinic_id, service_id)
    symbol = currency_symbol(fmt.currency, fmt.locale)
    digits = minor_digits(fmt.currency)
    with st.form("policy_form"):
        a, b, c = st.columns(3)
        window = a.number_input(
            "Late-cancellation window (hours)",
            value=base.window_hours if base else 24,
            step=1,
            key="policy_window",
            help="Cancelling fewer real hours than this before the start is late.",
        )

        def fee(column, label: str, cents: int | None, key: str) -> float:
            major = float(to_major(cents, fmt.currency)) if base else 0.0
            return column.number_input(
                f"{label} ({symbol})", value=major, step=5.0, format=f"%.{digits}f", key=key
            )

        late_fee = fee(
            b, "Late-cancellation fee", base and base.late_cancel_fee_cents, "policy_late_fee"
        )
        no_show_fee = fee(c, "No-show fee", base and base.no_show_fee_cents, "policy_no_show_fee")
        points = a.number_input(
            "Points deducted",
            value=base.points_deducted if base else 0,
            step=1,
            key="policy_points",
        )
        reschedules = b.number_input(
            "Most reschedules per appointment",
            value=base.max_reschedules if base else 2,
            step=1,
            key="policy_reschedules",
        )
        approval = c.checkbox(
            "Late requests need a manager's approval",
            key="policy_approval",
            value=base.inside_window_needs_approval if base else True,
        )
        auto = c.checkbox(
            "Accept requests outside the window automatically",
            key="policy_auto",
            value=base.outside_window_auto_accept if base else False,
        )
        online = c.checkbox(
            "Patients may cancel online",
            key="policy_online",
            value=base.online_cancel_allowed if base else True,
        )
        text = st.text_area(
            "Policy text shown to patients",
            value=base.policy_text if base else "",
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
        done = run_action(
            policy.save_policy,
            clinic_id=clinic_id,
            service_id=service_id,
            window_hours=int(window),
            late_cancel_fee_cents=late_cents,
            no_show_fee_cents=no_show_cents,
            points_deducted=int(points),
            inside_window_needs_approval=approval,
            outside_window_auto_accept=auto,
            online_cancel_allowed=online,
            max_reschedules=int(reschedules),
            policy_text=text,
            success="Policy saved; it applies from now on.",
        )
        if done:
            refresh()
