"""Payments and points: the practice's prepayment rules per service, the value of a point and
the points a survey earns (owner); points adjusted with a reason (managers). The day's money
and its export are on Cash-up. Amounts are charged in the currency of the appointment's clinic;
the rules' numbers are minor units of that currency."""

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.kernel.money import minor_digits, to_major
from core.payments import points, rules
from ui import actor, refresh, run_action
from ui.booking_form import patient_picker
from ui.caches import cached
from ui.context import forget_if_saved, mark_saved, read
from ui.folds import fold
from ui.locale import date_picker, display_format, in_currency
from ui.setup_forms import overview, prices
from ui.text import escape, show_table


@cached("setup", "policy", ttl=60, max_entries=10)
def _lines(me):
    return read(rules.service_lines, me), read(rules.get_settings), read(rules.point_values, me)


@cached("setup", ttl=60, max_entries=5)
def _typing_currency() -> str:
    return read(rules.typing_currency)


POINT_HELP = (
    "In minor units (pence, cents) of the currency of the clinic where the point is spent: 10 "
    "is £0.10 at a GBP clinic and $0.10 at a USD clinic. Points are never converted at an "
    "exchange rate."
)
st.title("Payments and points")
me = actor()
lines, current, values = _lines(me)
worth = ", ".join(f"{escape(v.point)} at {escape(v.clinic)}" for v in values)
worth = f" ({worth})" if worth else ""
st.caption(
    f"One point is worth {current.point_value_cents} minor units of the paying clinic's currency"
    f"{worth}; an answered survey earns "
    f"{current.survey_points if current.survey_points_enabled else 0} points. Prices and "
    "deposits are charged in the currency of the appointment's clinic."
)
practice = display_format()  # no clinic chosen here: the practice's first clinic's format
currency = _typing_currency()  # a deposit is typed as a price is: the first active clinic's
typed_in = in_currency(practice, currency)
price = prices(overview(me))  # in each clinic's currency, as the Services page shows it
table = pd.DataFrame(
    [
        {
            "Service": s.name,
            "Price": price(s.price_cents),
            "Prepayment": rules.MODES[s.mode],
            "Deposit": typed_in.money(s.deposit_cents) if s.mode == "deposit" else "",
        }
        for s in lines
    ],
    columns=["Service", "Price", "Prepayment", "Deposit"],
)

if not me.can(Permission.PAYMENTS_MANAGE):
    show_table(table, hide_index=True, width="stretch", key="payments_rules_table")
else:
    with st.form("payments_rules_form"):
        # the rules table itself is edited: one grid, not a select and a number per service
        # (ten services drew twenty inputs, half of this page's time in the browser)
        label_mode = {label: mode for mode, label in rules.MODES.items()}
        table["Deposit"] = [float(to_major(s.deposit_cents, currency)) for s in lines]
        services = st.data_editor(
            table,
            hide_index=True,
            num_rows="fixed",
            width="stretch",
            key="payments_service_rules",
            column_config={
                "Service": st.column_config.TextColumn("Service", disabled=True),
                "Price": st.column_config.TextColumn(
                    "Price", disabled=True, help="Set on the Services page."
                ),
                "Prepayment": st.column_config.SelectboxColumn(
                    "Prepayment", options=list(rules.MODES.values()), required=True
                ),
                "Deposit": st.column_config.NumberColumn(
                    "Deposit",
                    min_value=0.0,
                    format=f"%.{minor_digits(currency)}f",
                    help=f"Typed in {currency}, as prices are, and charged in the currency of "
                    "the appointment's clinic; for a deposit only.",
                ),
            },
        )
        new_rules, typed = {}, {}
        for s, row in zip(lines, services.itertuples(index=False), strict=True):
            # read in core: more decimals than the currency has are refused, not rounded
            typed[s.service_id] = None if pd.isna(row.Deposit) else row.Deposit
            new_rules[s.service_id] = rules.ServiceRule(
                label_mode.get(row.Prepayment, s.mode), s.deposit_cents
            )
        a, b, c = st.columns(3, vertical_alignment="bottom")
        value = a.number_input(
            "Value of one point (minor units)",
            0,
            10_000,
            current.point_value_cents,
            help=POINT_HELP,
            key="payments_point_value",
        )
        survey = b.number_input(
            "Points per answered survey",
            0,
            10_000,
            current.survey_points,
            key="payments_survey_points",
        )
        enabled = c.checkbox(
            "Award points for surveys", current.survey_points_enabled, key="payments_survey_on"
        )
        saved = st.form_submit_button("Save rules", type="primary")
        if saved:
            wanted = rules.PaymentSettings(
                point_value_cents=int(value),
                survey_points=int(survey),
                survey_points_enabled=enabled,
                default_mode=current.default_mode,
                services=new_rules,
            )
            if run_action(rules.save_settings, wanted, typed, success="Rules saved."):
                refresh()

REASON = "payments_points_reason"
if box := fold("Adjust a patient's points", "payments_points_open"):
    # points adjusted, the reason leaves its box: a second press (the toast went unseen) asks
    # for a reason instead of adding the points again
    forget_if_saved("payments_points", {"reason": ""})
    with box:
        # the patient found by name, phone or email and chosen, as on the waitlist's add form
        # (a typed number gave another patient's points for a wrong digit)
        who, _, _, _ = patient_picker(
            me, "payments_points", date_picker(practice.locale), new=False
        )
        with st.form("payments_points_form"):
            change = st.number_input(
                "Points (negative to remove)", step=5, value=10, key="payments_pts"
            )
            why = st.text_input("Reason (the patient reads it on their Points tab)", key=REASON)
            if st.form_submit_button("Adjust points"):
                done = None
                if who is None:
                    st.error("Choose the patient first: search by name, phone or email above.")
                else:
                    done = run_action(points.adjust_points, int(who), int(change), why)
                if done:
                    st.toast(escape(points.adjusted_text(done.value, int(change))))
                    mark_saved("payments_points")
                    refresh()
