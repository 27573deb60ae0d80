"""The Cancellations page: figures for the demo practice, invalid values with their message,
the what-if next to the actual policy, the audited CSV export and a fee waiver."""

import json
import re
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st
from sqlalchemy import select

from core.analytics import cancellations as ca
from core.analytics import confirmations
from core.analytics.cancellation_parts import BOOKED, every_week
from core.kernel.accounts import actor_of
from core.kernel.clock import local_to_utc, local_today, to_local
from core.kernel.config import load_settings
from core.kernel.money import NO_VALUE, format_money
from core.patients import merge
from core.payments import desk
from core.payments.providers import DeskProvider
from core.policy import balance
from core.startup import open_database
from core.waitlist import offers
from db.models import (
    Appointment,
    AppointmentConfirmation,
    AppointmentKind,
    AuditEvent,
    Clinic,
    LedgerEntry,
    OpeningStatus,
    Patient,
    Payment,
    Provider,
    ReminderSent,
    Service,
    SlotOpening,
    User,
)
from tests.factories import make_patient
from tests.pages.conftest import chart_click, clear_skin, every_clinic_speaks

PAGE = "app_pages/cancellation_analytics.py"


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url}))


def _what_if(at):
    return next(d.value for d in at.dataframe if "Actual (policy in force)" in d.value.columns)


def _apply(at):
    return at.button(key="FormSubmitter:cancel_filters-Apply").click().run()


def _compare(at):
    return at.button(key="FormSubmitter:cancel_whatif-Compare").click().run()


def _show(at, section):
    return at.segmented_control(key="cancel_section").set_value(section).run()


def _charts(at):
    return {c.proto.id: c for c in at.get("echarts_chart")}


def _spec(at, key):
    charts = _charts(at)
    return json.loads(charts[next(k for k in charts if key in k)].proto.spec)


def _item(item):
    """A chart point's values: a point marked as over few is {"value": [...], its look}."""
    return item["value"] if isinstance(item, dict) else item


def test_manager_opens_on_key_figures_and_charts_with_their_n(app_as):
    at = app_as("manager", PAGE)
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert labels[:4] == ["Booked", "Cancellation rate", "Late-cancellation rate", "No-show rate"]
    booked = int(at.metric[0].value.replace(",", ""))
    assert booked > 100
    assert at.metric[3].value.endswith("%")
    # deltas are changes against the previous period: percentage points, not counts
    assert at.metric[1].proto.delta.endswith(" pp")
    assert "days before" in at.caption[0].value
    # the charts are there on arrival, no toggle first, each titled with its n
    titles = []
    for chart in at.get("echarts_chart"):
        spec = json.loads(chart.proto.spec)
        titles.append(spec["title"]["text"])
        # the title above the plot, the legend under it: they never overlap
        assert spec["title"]["top"] < spec["grid"]["top"]
        assert spec["legend"]["bottom"] == 0 and "top" not in spec["legend"]
    assert len(titles) == 7
    assert all(" · n = " in t for t in titles), titles
    assert f"n = {booked:,} booked" in titles[0] and titles[0].startswith("Rates by week")
    assert any(t.startswith("Rates by provider") for t in titles)
    assert any(t.startswith("Rates by service") for t in titles)
    assert any(t.startswith("Rates by lead time") for t in titles)
    assert any(t.startswith("Cancellation rate by weekday and hour") for t in titles)


def test_a_click_on_a_bar_lists_the_appointments_behind_it(app_as):
    at = app_as("owner", PAGE)
    # what Streamlit stores when a user clicks the first bar of the weekday chart (Monday)
    at.session_state["cancel_chart_weekday"] = chart_click(0, 0)  # Monday's first bar
    at.run()
    assert not at.exception, at.exception
    assert "Appointments behind Monday" in [h.value for h in at.subheader]
    table = next(d for d in at.dataframe if "Status" in d.value.columns)
    rows = table.value
    assert len(rows) > 0 and all(ts.weekday() == 0 for ts in rows["Start"])
    assert '"DD/MM/YYYY HH:mm"' in table.proto.columns  # a London clinic's day order and clock
    # a click on Tuesday's no-show bar: ECharts keeps Monday selected in the other series
    tuesday = chart_click(1, 1)["selection"]["selected"]
    monday = at.session_state["cancel_chart_weekday"]["selection"]["selected"]
    at.session_state["cancel_chart_weekday"] = {
        "selection": {"selected": monday + tuesday, "areas": []}
    }
    at.run()
    heads = [h.value for h in at.subheader]
    assert "Appointments behind Tuesday, no-show rate: the visits due" in heads


def test_labels_and_figures_follow_the_clinics_locale(app_as, app_db):
    every_clinic_speaks(app_db, "pt-BR")
    at = app_as("owner", PAGE)
    charts = _charts(at)
    weekday = json.loads(charts[next(k for k in charts if "cancel_chart_weekday" in k)].proto.spec)
    assert weekday["xAxis"]["data"] == ["seg.", "ter.", "qua.", "qui.", "sex.", "sáb.", "dom."]
    heatmap = json.loads(charts[next(k for k in charts if "cancel_chart_heatmap" in k)].proto.spec)
    assert heatmap["yAxis"]["data"][:2] == ["seg.", "ter."]
    # rates with a decimal comma in the charts and the key figures, as Babel writes pt-BR
    shown = [item[2] for one in weekday["series"] for item in one["data"] if item[1] is not None]
    assert shown and all(re.fullmatch(r"\d+,\d%", value) for value in shown), shown
    rate = next(m for m in at.metric if m.label == "Cancellation rate")
    assert re.fullmatch(r"\d+,\d%", rate.value), rate.value
    assert rate.delta is None or re.fullmatch(r"[+-]?\d+,\d pp", rate.delta), rate.delta


def test_the_what_if_next_to_the_policy_in_force(app_as):
    at = app_as("manager", PAGE)
    for section, charts in (
        ("Turnaround and notice", 9),
        ("Reasons and fees", 10),  # the fees: one chart per currency (pounds and dollars)
        ("Repeat patients", 7),
    ):
        at = _show(at, section)
        assert not at.exception and len(at.get("echarts_chart")) == charts, section
    repeat = next(d.value for d in at.dataframe if "Late cancellations" in d.value.columns)
    assert len(repeat) > 0 and (repeat["Late cancellations"] + repeat["No-shows"] >= 2).all()
    at = _show(at, "What-if on the policy")
    table = _what_if(at)
    assert list(table.columns) == ["", "Actual (policy in force)", "What-if (12 h window)"]
    assert table.iloc[1, 1].startswith("£")  # the clinic's currency, by Babel
    at.number_input(key="cancel_whatif_window").set_value(48)
    at = _compare(at)
    widened = _what_if(at)
    assert list(widened.columns)[2] == "What-if (48 h window)"
    assert int(widened.iloc[0, 2].replace(",", "")) > int(table.iloc[0, 2].replace(",", ""))
    assert "refill rate" in at.expander[0].markdown[0].value


def test_invalid_what_if_values_show_their_message(app_as):
    at = _show(app_as("owner", PAGE), "What-if on the policy")
    at.number_input(key="cancel_whatif_window").set_value(-5)
    at = _compare(at)
    assert not at.exception
    assert "what-if window must be between 0 and 336 hours" in at.error[0].value
    at.number_input(key="cancel_whatif_window").set_value(12)
    at.number_input(key="cancel_whatif_fee").set_value(-1.0)
    at = _compare(at)
    assert "cannot be negative" in at.error[0].value


def test_filters_narrow_the_figures(app_as):
    at = app_as("owner", PAGE)
    everyone = int(at.metric[0].value.replace(",", ""))
    at.selectbox(key="cancel_clinic").select_index(1)
    at = _apply(at)
    one_clinic = int(at.metric[0].value.replace(",", ""))
    assert 0 < one_clinic < everyone
    later = date.today() + timedelta(days=400)  # after the demo data
    at.date_input(key="cancel_days").set_value((later, later + timedelta(days=1)))
    at = _apply(at)
    assert at.metric[0].value == "0" and at.metric[3].value == NO_VALUE


def test_imported_2016_history_can_be_chosen(app_as):
    at = app_as("owner", PAGE)
    picker = at.date_input(key="cancel_days")
    assert picker.min <= date(2016, 1, 1)  # Streamlit's default would stop ten years back
    picker.set_value((date(2016, 1, 4), date(2016, 12, 30)))
    at = _apply(at)
    assert not at.exception and not at.error
    assert at.date_input(key="cancel_days").value == (date(2016, 1, 4), date(2016, 12, 30))
    assert at.metric[0].value == "0"  # the demo data starts later


def test_export_is_audited(app_as, app_db):
    at = app_as("manager", PAGE)
    at = at.button(key="cancel_export").click().run()
    assert not at.error
    assert at.get("download_button")
    database = _db(app_db)
    with database.read() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).one()
    database.dispose()
    assert event.entity == "cancellation_analytics" and event.details["rows"] > 20


def test_a_manager_waives_a_fee_with_a_reason(app_as, app_db):
    at = app_as("manager", PAGE)
    at.toggle(key="cancel_show_fees").set_value(True).run()
    fee_id = at.selectbox(key="cancel_fee_id").value
    at = at.button(key="FormSubmitter:cancel_waive_form-Waive fee").click().run()
    assert "Say why the fee is waived" in at.error[0].value
    at.text_input(key="cancel_fee_reason").input("Family emergency")
    at = at.button(key="FormSubmitter:cancel_waive_form-Waive fee").click().run()
    assert not at.error
    database = _db(app_db)
    with database.read() as session:
        entry = session.get(LedgerEntry, fee_id)
    database.dispose()
    assert entry.waived_at is not None and entry.waive_reason == "Family emergency"
    assert f"#{fee_id}" not in at.selectbox(key="cancel_fee_id").options  # its label


def test_waiving_a_paid_fee_says_its_money_is_due_back_and_the_patient_emailed(app_as, app_db):
    at = app_as("manager", PAGE)
    at.toggle(key="cancel_show_fees").set_value(True).run()
    database = _db(app_db)
    with database.write() as session:
        fee_id = session.scalar(  # a fee in money (points deductions are listed too)
            select(LedgerEntry.id)
            .where(
                LedgerEntry.id.in_(int(o[1:]) for o in at.selectbox(key="cancel_fee_id").options),
                LedgerEntry.amount_cents > 0,
            )
            .order_by(LedgerEntry.id)
            .limit(1)
        )
        at.selectbox(key="cancel_fee_id").select(fee_id)
        staff = actor_of(session.scalar(select(User).where(User.username == "staff")))
        desk.pay_fee(session, staff, fee_id, method="cash", provider=DeskProvider())
        patient = session.get(Patient, session.get(LedgerEntry, fee_id).patient_id)
        patient.email, patient.consent_email = "fee.patient@example.org", True
    at.text_input(key="cancel_fee_reason").input("Billing error")
    at = at.button(key="FormSubmitter:cancel_waive_form-Waive fee").click().run()
    assert not at.error
    [told] = at.toast  # before, it did not say the patient is emailed what goes back
    assert told.value.replace("\\", "") == (
        f"Fee #{fee_id} waived. What was paid of it is due back to the patient "
        "(1 refund on the appointment's Payments); the patient is emailed what is given back "
        "and how."
    )
    with database.read() as session:
        refund = session.scalars(select(Payment).where(Payment.kind == "fee_refund")).one()
    database.dispose()
    assert (refund.status, refund.note) == ("refund_due", f"Fee #{fee_id} waived: Billing error")


def test_waiving_points_on_a_merged_record_says_where_they_went(app_as, app_db):
    """A no-show's 40 points taken from a fresh duplicate's opening, waived here after the
    merge: the toast says the record kept gets none of them and why (desk.Waived's
    points_words). Before, it said only 'Fee #N waived.'"""
    database = _db(app_db)
    with database.write() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        visit = session.scalars(select(Appointment).order_by(Appointment.id).limit(1)).one()
        kept = visit.patient_id
        duplicate = make_patient(session, email="copy.of.them@example.net", phone=None).id
        entry = balance.deduct(session, duplicate, 40, appointment_id=visit.id, policy_id=None)
        session.flush()
        fee_id = entry.id
    with database.write() as session:
        merge.merge_patients(session, manager, kept, duplicate, "Same person")
    database.dispose()
    at = app_as("manager", PAGE)
    at.toggle(key="cancel_show_fees").set_value(True).run()
    at.selectbox(key="cancel_fee_id").select(fee_id)
    at.text_input(key="cancel_fee_reason").input("Phoned ahead")
    at = at.button(key="FormSubmitter:cancel_waive_form-Waive fee").click().run()
    assert not at.error
    [told] = at.toast
    assert told.value.replace("\\", "") == (
        f"Fee #{fee_id} waived. #{duplicate} was merged into #{kept}: the 40 points came out "
        f"of #{duplicate}'s opening balance, which the merge did not carry (one person opens "
        f"one balance), so #{kept} gets none of them."
    )


def _core_figures(url, filters):
    """The figures core computes for the page's filters, as the owner."""
    database = _db(url)
    with database.read() as session:
        owner = actor_of(session.scalar(select(User).where(User.username == "owner")))
        found = ca.compute_figures(session, owner, filters)
    database.dispose()
    return found


def test_all_clinics_show_each_currencys_money_never_one_sum(app_as, app_db):
    """London charges in pounds, New York in dollars: with all clinics, revenue at risk and
    fees assessed are one figure per currency, each in its own (as the first clinic charging in
    it writes it: dollars as New York does), with its own change; the what-if's fees the same.
    Before, pounds and dollars were added up and shown as pounds."""
    at = app_as("owner", PAGE)
    assert not at.exception and not at.error
    f = _core_figures(app_db, at.session_state["cancel_filters_now"])
    risk = f.revenue_at_risk_cents
    assert list(risk) == ["GBP", "USD"] and risk["GBP"] > 0 and risk["USD"] > 0
    shown = {m.label: m for m in at.metric}
    assert shown["Revenue at risk (GBP)"].value == format_money(risk["GBP"], "GBP", "en-GB")
    assert shown["Revenue at risk (USD)"].value == format_money(risk["USD"], "USD", "en-US")
    assert shown["Revenue at risk (USD)"].value.startswith("$")
    fees = f.fees
    for code in ("GBP", "USD"):
        assessed = fees.late_assessed_cents[code] + fees.no_show_assessed_cents[code]
        locale = "en-US" if code == "USD" else "en-GB"
        assert shown[f"Fees assessed ({code})"].value == format_money(assessed, code, locale)
        change = shown[f"Fees assessed ({code})"].proto.delta
        assert change[1:].startswith("$" if code == "USD" else "£"), change
    assert "Revenue at risk" not in shown and "Fees assessed" not in shown
    total = sum(risk.values())
    assert format_money(total, "GBP", "en-GB") not in [m.value for m in at.metric]
    # the what-if: the fee is typed once, charged in each clinic's currency
    at = _show(at, "What-if on the policy")
    assert at.number_input(key="cancel_whatif_fee").label == "Late fee (GBP or USD)"
    fees_row = _what_if(at).iloc[1]
    assert fees_row.iloc[1].startswith("£") and " + $" in fees_row.iloc[1], fees_row
    assert fees_row.iloc[2].startswith("£") and " + $" in fees_row.iloc[2], fees_row
    # one clinic: one currency, the figures as they always were
    at.selectbox(key="cancel_clinic").select_index(1)
    at = _apply(at)
    labels = [m.label for m in at.metric]
    assert "Revenue at risk" in labels and "Fees assessed" in labels
    assert not [label for label in labels if "(GBP)" in label or "(USD)" in label]


def test_a_range_with_no_appointments_shows_one_message_not_empty_charts(app_as):
    at = app_as("owner", PAGE)
    later = date.today() + timedelta(days=400)  # after the demo data
    at.date_input(key="cancel_days").set_value((later, later + timedelta(days=6)))
    at = _apply(at)
    assert not at.exception and not at.error
    assert len(at.get("echarts_chart")) == 0
    assert len(at.info) == 1
    message = at.info[0].value
    assert message.startswith("No appointments start between") and "appear here once" in message
    assert at.metric[0].value == "0"  # the key figures stay, with their changes
    assert "Click a bar" not in [c.value for c in at.caption]
    # charts come back with data
    at.date_input(key="cancel_days").set_value((date.today() - timedelta(days=60), date.today()))
    at = _apply(at)
    assert len(at.get("echarts_chart")) == 7 and not at.info


def _yen_and_euro(url):
    """The demo's first clinic in Tokyo (ja-JP, JPY), its second in Berlin (de-DE, EUR)."""
    from db.models import Clinic

    database = _db(url)
    with database.write() as session:
        first, second = session.scalars(select(Clinic).order_by(Clinic.id)).all()[:2]
        first.currency, first.locale, first.timezone = "JPY", "ja-JP", "Asia/Tokyo"
        second.currency, second.locale, second.timezone = "EUR", "de-DE", "Europe/Berlin"
    database.dispose()


def test_each_fee_to_waive_is_shown_in_its_own_clinics_currency_and_zone(app_as, app_db):
    """With all clinics, Berlin's fees are in euros and Berlin time, Tokyo's in yen and Tokyo
    time (before, every fee was in the first clinic's currency: €40.00 as ￥4,000)."""
    from core.kernel.money import clinic_format
    from core.policy import cancellation as policy

    _yen_and_euro(app_db)
    at = app_as("manager", PAGE)
    at.toggle(key="cancel_show_fees").set_value(True).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "Fee #" in d.value.columns)
    database = _db(app_db)
    with database.read() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        fees = {f.id: f for f in policy.list_fees(session, manager, open_only=True)}
        formats = {f.clinic_id: clinic_format(session, f.clinic_id) for f in fees.values()}
    database.dispose()
    currencies = {formats[f.clinic_id].currency for f in fees.values() if f.amount_cents}
    assert "EUR" in currencies, currencies  # the newest open fees include Berlin's
    for _, row in table.iterrows():
        fee = fees[row["Fee #"]]
        fmt = formats[fee.clinic_id]
        assert row["Assessed"] == fmt.moment(fee.created_at)
        # in words, not the stored 'no_show_fee'
        assert row["Kind"] in {"Late-cancellation fee", "No-show fee", "Points deducted"}, row
        if fee.amount_cents:
            assert row["Amount"] == fmt.money(fee.amount_cents), (row, fmt)


def test_the_what_if_fee_is_converted_in_each_currency(app_as, app_db):
    """25 typed with clinics in yen and euros is ￥25 and €25.00 a late cancellation (before,
    it was converted once in yen and came out as ￥25 + €0.25)."""
    from dataclasses import replace

    from core.analytics.cancellation_parts import WhatIf

    _yen_and_euro(app_db)
    at = app_as("owner", PAGE)
    at = _show(at, "What-if on the policy")
    fee = at.number_input(key="cancel_whatif_fee")
    assert fee.label == "Late fee (JPY or EUR)" and fee.proto.format == "%.2f"
    at = _compare(at)
    assert not at.exception and not at.error
    filters = replace(at.session_state["cancel_filters_now"], what_if=WhatIf(12, 1, 20))
    late = _core_figures(app_db, filters).what_if.fee_cents  # late cancellations per currency
    assert late["JPY"] > 0 and late["EUR"] > 0
    expected = " + ".join(  # each as its own clinic writes it: euros as Berlin does
        format_money(n * cents, code, locale)
        for code, n, cents, locale in (
            ("JPY", late["JPY"], 25, "ja-JP"),
            ("EUR", late["EUR"], 2500, "de-DE"),
        )
    )
    assert _what_if(at).iloc[1].iloc[2] == expected
    # more decimals than yen have is refused, saying so
    at.number_input(key="cancel_whatif_fee").set_value(25.5)
    at = _compare(at)
    assert "JPY amounts have no decimals" in at.error[0].value


def test_a_fee_waived_elsewhere_meanwhile_does_not_move_the_waiver_onto_another(app_as, app_db):
    at = app_as("manager", PAGE)
    at.toggle(key="cancel_show_fees").set_value(True).run()
    options = at.selectbox(key="cancel_fee_id").options
    first, chosen = int(options[0][1:]), int(options[1][1:])
    at.selectbox(key="cancel_fee_id").select(chosen)
    database = _db(app_db)  # the owner waives that fee at another desk meanwhile
    with database.write() as session:
        owner = actor_of(session.scalar(select(User).where(User.username == "owner")))
        desk.waive_fee(session, owner, chosen, "Goodwill")
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.text_input(key="cancel_fee_reason").input("Family emergency")
    at = at.button(key="FormSubmitter:cancel_waive_form-Waive fee").click().run()
    said = " ".join(w.value for w in at.warning)
    assert f"Fee #{chosen} is no longer open (paid or waived meanwhile)" in said, said
    database = _db(app_db)
    with database.read() as session:
        assert session.get(LedgerEntry, first).waived_at is None  # not the one listed first
        assert session.get(LedgerEntry, chosen).waive_reason == "Goodwill"
    database.dispose()
    assert at.text_input(key="cancel_fee_reason").value == "Family emergency"  # kept


def _as_owner(url, read):
    database = _db(url)
    with database.read() as session:
        owner = actor_of(session.scalar(select(User).where(User.username == "owner")))
        found = read(session, owner)
    database.dispose()
    return found


def _reminded_and_freed(url) -> str:
    """Reminders for the last 40 visits before today, confirmed for the first provider's
    only; slots freed by that provider and another, one of them refilled, and one freed in New
    York at 20:30 the evening before the page's first day (01:30 on it in London). Returns the
    first provider's name."""
    database = _db(url)
    with database.write() as session:
        now = datetime.now(UTC)
        visits = session.execute(
            select(Appointment.id, Appointment.start_at, Appointment.provider_id)
            .where(Appointment.start_at < now, Appointment.kind == AppointmentKind.APPOINTMENT)
            .order_by(Appointment.start_at.desc())
            .limit(40)
        ).all()
        first = min(provider for _, _, provider in visits if provider)
        other = max(provider for _, _, provider in visits if provider)
        assert first != other
        for ident, start, provider in visits:
            session.add(
                ReminderSent(
                    appointment_id=ident, offset_minutes=1440, start_at=start, channels="email"
                )
            )
            if provider == first:
                session.add(
                    AppointmentConfirmation(
                        appointment_id=ident, start_at=start, channel="email link"
                    )
                )
        clinics = dict(session.execute(select(Clinic.timezone, Clinic.id)).all())
        london, new_york = clinics["Europe/London"], clinics["America/New_York"]
        today = local_today("Europe/London")

        def freed(clinic, provider, moment, **more):
            session.add(
                SlotOpening(
                    clinic_id=clinic,
                    provider_id=provider,
                    start_at=moment + timedelta(days=1),
                    end_at=moment + timedelta(days=1, minutes=30),
                    reason="cancelled",
                    status=more.pop("status", OpeningStatus.UNFILLED),
                    created_at=moment,
                    **more,
                )
            )

        week_ago = now - timedelta(days=7)
        hour = timedelta(hours=1)
        freed(london, first, week_ago, status=OpeningStatus.FILLED, filled_at=week_ago + hour)
        freed(london, first, week_ago)
        freed(london, other, week_ago)
        start = today - timedelta(days=90)  # the page's first day
        freed(
            new_york,
            first,
            local_to_utc(start - timedelta(days=1), time(20, 30), "America/New_York"),
        )
        name = session.get(Provider, first).name
    database.dispose()
    return name


def test_confirmations_and_refills_follow_the_provider_filtered_on(app_as, app_db):
    """With one provider chosen, the confirmed-by-the-patient and waitlist figures beside the
    provider's rates count that provider's visits and freed slots (before: everyone's, under
    the provider's rates); all clinics count each clinic's own days."""
    chosen = _reminded_and_freed(app_db)
    at = app_as("owner", PAGE)
    everyone = next(m for m in at.metric if m.label == "Confirmed by the patient").proto.help
    names = at.selectbox(key="cancel_provider").options
    at.selectbox(key="cancel_provider").select_index(names.index(chosen))
    at = _apply(at)
    assert not at.exception and not at.error
    f = at.session_state["cancel_filters_now"]
    assert f.provider_id is not None and f.clinic_id is None

    def rate(session, owner):
        return confirmations.confirmation_rate(
            session, owner, f.start, f.end, None, f.provider_id, None
        )

    def refills(session, owner):
        return offers.refill_figures(
            session, owner, clinic_id=None, first=f.start, last=f.end, provider_id=f.provider_id
        )

    mine, slots = _as_owner(app_db, rate), _as_owner(app_db, refills)
    shown = next(m for m in at.metric if m.label == "Confirmed by the patient").proto.help
    assert shown.startswith(f"{mine.confirmed:,} of {mine.reminded:,} reminded"), shown
    assert shown != everyone  # the demo's providers are not all reminded alike
    refill = next(m for m in at.metric if m.label == "Waitlist refill rate")
    assert refill.proto.delta == f"{slots.filled:,} of {slots.opened:,} freed"


def test_each_rate_shows_its_own_n(app_as, app_db):
    """A rate's tooltip n is its own denominator: bookings for the cancellation rate, visits
    due (no-shows + attended) for the no-show rate, by weekday and by week, and the weeks a
    year earlier theirs (before: the bookings for both, so a no-show rate over 80 visits due
    said n = 120, cancellations and visits still to come included)."""
    at = app_as("owner", PAGE)
    assert not at.exception and not at.error
    f = _core_figures(app_db, at.session_state["cancel_filters_now"])
    charts = _charts(at)

    def items(key):
        spec = json.loads(charts[next(k for k in charts if key in k)].proto.spec)
        return {
            s["name"]: [int(_item(i)[4].replace(",", "")) for i in s["data"]]
            for s in spec["series"]
        }

    weekday = items("cancel_chart_weekday")
    assert weekday["Cancellation rate"] == [c.booked for c in f.by_weekday]
    assert weekday["No-show rate"] == [c.no_shows + c.attended for c in f.by_weekday]
    assert weekday["No-show rate"] != weekday["Cancellation rate"]
    weekly, weeks = items("cancel_chart_weekly"), every_week(f)  # empty weeks too: n = 0
    assert weekly["No-show rate"] == [c.no_shows + c.attended for c in weeks]
    assert weekly["Cancellation rate"] == [c.booked for c in weeks]
    earlier = weekly.get("No-show rate a year earlier")
    assert earlier is None or len(earlier) == len(weeks)
    # the key figures' help says each rate's n too (before: the count above it only)
    t = f.totals
    help_of = {m.label: m.proto.help for m in at.metric}
    due = t.no_shows + t.attended
    assert help_of["No-show rate"].startswith(f"{t.no_shows:,} no-shows of {due:,} visits due")
    assert help_of["Cancellation rate"].startswith(
        f"{t.cancelled:,} cancelled of {t.booked:,} booked"
    )
    decided = sum(n for _, n in f.turnaround)
    assert help_of["Mean request turnaround"].startswith(
        f"over {decided:,} online requests decided"
    )
    assert help_of["Refill rate"].startswith(
        f"{f.refilled:,} of {t.cancelled:,} cancelled slots refilled"
    )


def test_the_list_behind_a_bar_goes_when_the_filters_change(app_as):
    """The list is of the bar clicked under the filters it was clicked under: after another
    range it no longer stands under a heading naming a week the charts no longer hold (before:
    'Appointments behind week of …', 0 booked, under the new range's charts)."""
    at = app_as("owner", PAGE)
    at.session_state["cancel_chart_weekly"] = chart_click(0, 0)  # the first week's point
    at.run()
    heads = [h.value for h in at.subheader if h.value.startswith("Appointments behind")]
    assert heads and heads[0].startswith("Appointments behind week of"), heads
    days = at.date_input(key="cancel_days").value
    at.date_input(key="cancel_days").set_value((days[0] + timedelta(days=28), days[1]))
    at = _apply(at)
    assert not at.exception and not at.error
    assert not [h.value for h in at.subheader if h.value.startswith("Appointments behind")]
    assert "Click a bar, a week or a heatmap cell to list the appointments behind it." in [
        c.value for c in at.caption
    ]
    # a click under the new filters lists its bar again
    at.session_state["cancel_chart_weekday"] = chart_click(0, 2)  # Wednesday
    at.run()
    assert "Appointments behind Wednesday" in [h.value for h in at.subheader]


def test_weeks_without_a_booking_stay_on_the_weekly_line(app_as, app_db):
    """A range running past the last booking: the weeks with none are on the line, empty (n =
    0), not left out so that the weeks either side are drawn as neighbours (before: one point
    for four weeks)."""
    database = _db(app_db)
    with database.read() as session:
        last = session.scalar(
            select(Appointment.start_at)
            .where(Appointment.kind == AppointmentKind.APPOINTMENT, Appointment.status.in_(BOOKED))
            .order_by(Appointment.start_at.desc())
            .limit(1)
        )
    database.dispose()
    last_day = last.date()
    first = last_day - timedelta(days=last_day.weekday())  # its Monday
    at = app_as("owner", PAGE)
    at.date_input(key="cancel_days").set_value((first, first + timedelta(days=27)))
    at = _apply(at)
    assert not at.exception and not at.error
    charts = _charts(at)
    spec = json.loads(charts[next(k for k in charts if "cancel_chart_weekly" in k)].proto.spec)
    assert len(spec["xAxis"]["data"]) == 4, spec["xAxis"]["data"]
    series = {s["name"]: s["data"] for s in spec["series"]}
    cancelled = series["Cancellation rate"]
    assert cancelled[0][1] is not None and cancelled[0][4] != "0"
    assert [item[1] for item in cancelled[1:]] == [None] * 3
    assert [item[4] for item in cancelled[1:]] == ["0"] * 3


def test_an_export_prepared_for_other_filters_is_not_offered_under_new_ones(app_as):
    """The download is named after the filters shown: after another range is applied the CSV
    of the earlier one is not offered under the new range's name (before: it was, so
    'cancellations-<new range>.csv' held the old range's figures)."""
    at = app_as("owner", PAGE)
    at = at.button(key="cancel_export").click().run()
    assert at.get("download_button")
    days = at.date_input(key="cancel_days").value
    at.date_input(key="cancel_days").set_value((days[0] + timedelta(days=7), days[1]))
    at = _apply(at)
    assert not at.exception and not at.error
    assert not at.get("download_button")
    assert "The filters changed since the export was prepared: prepare it again." in [
        c.value for c in at.caption
    ]
    at = at.button(key="cancel_export").click().run()
    assert at.get("download_button")


def test_a_click_on_others_says_how_to_see_those_groups(app_as, app_db):
    """Beyond the 15 providers with the most bookings the rest are one bar, "Others". A click
    on it said nothing and listed nothing; it now says what the bar sums and how to see one."""
    database = _db(app_db)
    with database.write() as session:
        clinic = session.scalars(select(Clinic).order_by(Clinic.id)).first()
        visit = session.scalars(
            select(Appointment).where(
                Appointment.clinic_id == clinic.id,
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.start_at < datetime.now(UTC),
                Appointment.start_at > datetime.now(UTC) - timedelta(days=30),
            )
        ).first()
        for i in range(16):  # each with one booking: more than fifteen providers in all
            provider = Provider(name=f"Dr Extra {i:02}")
            session.add(provider)
            session.flush()
            session.add(
                Appointment(
                    clinic_id=clinic.id,
                    provider_id=provider.id,
                    patient_id=visit.patient_id,
                    service_id=visit.service_id,
                    status=visit.status,
                    start_at=visit.start_at,
                    end_at=visit.end_at,
                    booked_at=visit.booked_at,
                )
            )
    database.dispose()
    at = app_as("owner", PAGE)
    spec = json.loads(_charts(at)[next(k for k in _charts(at) if "cancel_chart_provider" in k)]
                      .proto.spec)  # fmt: skip
    names = spec["yAxis"]["data"] if "data" in spec.get("yAxis", {}) else spec["xAxis"]["data"]
    assert names[-1] == "Others" and len(names) == 15
    at.session_state["cancel_chart_provider"] = chart_click(0, len(names) - 1)
    at.run()
    assert not at.exception, at.exception
    said = " ".join(i.value for i in at.info)
    assert "“Others” sums the providers beyond the 14 with the most bookings" in said, said
    assert "Provider filter" in said
    assert not any(h.value.startswith("Appointments behind") for h in at.subheader)


def test_a_click_lists_the_appointments_its_rate_is_over(app_as, app_db):
    """The list behind a no-show bar is its visits due, as many as its tooltip's n; a point of
    the dotted line lists that week a year earlier (before: both listed this year's bookings,
    cancellations and visits still to come included, under a tooltip saying fewer)."""
    database = _db(app_db)
    with database.write() as session:
        visit = session.scalars(
            select(Appointment)
            .where(
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.start_at < datetime.now(UTC) - timedelta(days=7),
            )
            .order_by(Appointment.start_at.desc())
        ).first()
        year = timedelta(days=364)  # the same weekday a year earlier: 2 attended, a no-show,
        for status in ("completed", "completed", "no_show", "cancelled"):  # a cancellation
            session.add(
                Appointment(
                    clinic_id=visit.clinic_id,
                    provider_id=visit.provider_id,
                    patient_id=visit.patient_id,
                    service_id=visit.service_id,
                    status=status,
                    start_at=visit.start_at - year,
                    end_at=visit.end_at - year,
                    booked_at=visit.booked_at - year,
                )
            )
        tz = session.get(Clinic, visit.clinic_id).timezone
    database.dispose()
    at = app_as("owner", PAGE)

    def n_of(key, series):
        charts = _charts(at)
        spec = json.loads(charts[next(k for k in charts if key in k)].proto.spec)
        return [int(_item(i)[4].replace(",", "")) for i in spec["series"][series]["data"]]

    def listed():
        table = next(d for d in at.dataframe if "Status" in d.value.columns).value
        heads = [h.value for h in at.subheader if h.value.startswith("Appointments behind")]
        counts = [c.value for c in at.caption if "visits due" in c.value or "booked" in c.value]
        return heads, counts[-1], table

    tuesday_due = n_of("cancel_chart_weekday", 1)[1]
    at.session_state["cancel_chart_weekday"] = chart_click(1, 1)  # Tuesday's no-show bar
    at.run()
    heads, count, table = listed()
    assert set(table["Status"]) <= {"no-show", "completed", "checked-in"}
    assert count.startswith(f"{tuesday_due:,} visits due") and len(table) == min(tuesday_due, 200)
    assert heads == ["Appointments behind Tuesday, no-show rate: the visits due"]
    # the dotted no-show line's one week a year earlier
    earlier = n_of("cancel_chart_weekly", 3)
    assert sorted(earlier)[-2:] == [0, 3], earlier
    at.session_state["cancel_chart_weekly"] = chart_click(3, earlier.index(3))
    at.run()
    heads, count, table = listed()
    then = to_local(visit.start_at - timedelta(days=364), tz).replace(tzinfo=None)
    assert list(table["Start"]) == [then] * 3
    assert sorted(table["Status"]) == ["completed", "completed", "no-show"]
    assert count.startswith("3 visits due")
    assert heads[0].endswith("(a year earlier), no-show rate: the visits due"), heads


def test_changes_only_where_there_is_something_to_compare_with(app_as, app_db):
    """A rate over fewer than ten bookings (either period) shows no change, and nothing is
    compared with a period before the first booking (before: '+50.0 pp' for one cancellation
    of two bookings against none of two; '+27' booked and '+£…' at risk on a practice's first
    day, against the day before it opened)."""
    database = _db(app_db)
    with database.write() as session:
        visit = session.scalars(
            select(Appointment)
            .where(Appointment.kind == AppointmentKind.APPOINTMENT, Appointment.status.in_(BOOKED))
            .order_by(Appointment.start_at)
        ).first()
        first_day = to_local(visit.start_at, session.get(Clinic, visit.clinic_id).timezone)
        few = Provider(name="Dr Few")
        session.add(few)
        session.flush()
        now = datetime.now(UTC)
        for ago, status in (
            (2, "cancelled"),
            (3, "completed"),
            (95, "completed"),
            (96, "completed"),
        ):
            start = now - timedelta(days=ago)
            session.add(
                Appointment(
                    clinic_id=visit.clinic_id,
                    provider_id=few.id,
                    patient_id=visit.patient_id,
                    service_id=visit.service_id,
                    status=status,
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                    booked_at=start - timedelta(days=5),
                )
            )
    database.dispose()
    at = app_as("owner", PAGE)
    names = at.selectbox(key="cancel_provider").options
    at.selectbox(key="cancel_provider").select_index(names.index("Dr Few"))
    at = _apply(at)
    assert not at.exception and not at.error
    figure = {m.label: m for m in at.metric}
    assert figure["Cancellation rate"].value == "50.0%"  # 1 of 2, against 0 of 2
    assert figure["Booked"].proto.delta == "0"  # 2 against 2: counts still compare
    for label in ("Cancellation rate", "Late-cancellation rate", "No-show rate", "Refill rate"):
        assert not figure[label].proto.delta, (label, figure[label].proto.delta)
    assert figure["Cancellation rate"].proto.help.endswith("too few to compare")
    # a practice's first day: the day before it, nothing booked, nothing compared
    at.selectbox(key="cancel_provider").select_index(0)
    at.date_input(key="cancel_days").set_value((first_day.date(), first_day.date()))
    at = _apply(at)
    assert not at.exception and not at.error
    assert int(at.metric[0].value) > 0
    rates = ("Booked", "Cancellation rate", "Late-cancellation rate", "No-show rate")
    shown = {*rates, "Refill rate", "Mean request turnaround"}
    deltas = {
        m.label: m.proto.delta
        for m in at.metric
        if m.label in shown or m.label.startswith(("Revenue at risk", "Fees assessed"))
    }
    assert len(deltas) >= 8 and not any(deltas.values()), deltas
    assert "Nothing was booked in the day before" in " ".join(c.value for c in at.caption)


def _few_bookings(url) -> str:
    """A provider with two bookings on a Monday of the page's range (one cancelled), one
    visit due on a Tuesday; returns the provider's name."""
    database = _db(url)
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.status.in_(BOOKED),
            )
        ).first()
        few = Provider(name="Dr Few")
        session.add(few)
        session.flush()
        tz = session.get(Clinic, visit.clinic_id).timezone
        today = local_today(tz)
        monday = today - timedelta(days=today.weekday() + 14)
        for day, status in ((monday, "cancelled"), (monday, "completed"), (monday, "no_show")):
            start = local_to_utc(day + timedelta(days=status == "no_show"), time(10), tz)
            session.add(
                Appointment(
                    clinic_id=visit.clinic_id,
                    provider_id=few.id,
                    patient_id=visit.patient_id,
                    service_id=visit.service_id,
                    status=status,
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                    booked_at=start - timedelta(days=5),
                )
            )
    database.dispose()
    return "Dr Few"


def test_a_rate_over_few_bookings_is_marked_on_every_rate_chart(app_as, app_db):
    """A rate over fewer than 10 (bookings, or visits due for the no-show rate) is drawn
    lighter and hatched (a dashed ring on the weekly lines, a hatched cell in the heatmap), its
    tooltip says "(few bookings)", and a caption above the charts says what the mark means
    (before: 50% over 2 bookings looked like 50% over 400); a rate over more is unmarked."""
    name = _few_bookings(app_db)
    at = app_as("owner", PAGE)
    weekday = _spec(at, "cancel_chart_weekday")
    for series in weekday["series"]:
        for item in series["data"]:
            n = int(_item(item)[4].replace(",", ""))
            if _item(item)[1] is not None:
                assert isinstance(item, dict) == (n < 10), (series["name"], item)
    names = at.selectbox(key="cancel_provider").options
    at.selectbox(key="cancel_provider").select_index(names.index(name))
    at = _apply(at)
    assert not at.exception and not at.error
    said = [c.value for c in at.caption if c.value.startswith("Lighter, hatched bars")]
    assert said and "fewer than 10 (bookings; visits due for the no-show rate)" in said[0]
    rate_charts = ("weekly", "weekday", "heatmap", "provider", "service", "lead", "sms")
    for chart in rate_charts:
        spec = _spec(at, f"cancel_chart_{chart}")
        drawn = [i for s in spec["series"] for i in s["data"] if _item(i)[1] is not None]
        assert drawn and all(isinstance(i, dict) for i in drawn), chart
        assert all(i["itemStyle"].get("decal") or i.get("symbol") for i in drawn), chart
    monday = _spec(at, "cancel_chart_weekday")["series"]
    cancelled, missed = monday[0]["data"][0], monday[1]["data"][0]
    assert cancelled["value"][2:] == ["50.0%", "Mon", "2", " (few bookings)"]
    assert cancelled["itemStyle"]["color"] == "#a9c1dc"  # the lighter partner of its colour
    assert missed["value"][4:] == ["1", " (few visits due)"]
    assert monday[0]["tooltip"]["formatter"].endswith("n = {@[4]}{@[5]}")
    cell = _spec(at, "cancel_chart_heatmap")["series"][0]
    assert cell["data"][0]["value"][7] == " (few bookings)"
    assert cell["tooltip"]["formatter"].endswith("n = {@[4]}{@[7]}")


def test_a_click_on_a_heatmap_cell_lists_its_bookings(app_as):
    """The weekday × hour heatmap is clickable like every bar: a cell lists the bookings its
    cancellation rate is over, as many as its n, each on that weekday at that hour (before: a
    click did nothing)."""
    at = app_as("owner", PAGE)
    cells = _spec(at, "cancel_chart_heatmap")["series"][0]["data"]
    index, cell = max(enumerate(map(_item, cells)), key=lambda pair: int(pair[1][4]))
    at.session_state["cancel_chart_heatmap"] = chart_click(0, index)
    at.run()
    assert not at.exception, at.exception
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    weekday, hour = cell[1], int(cell[6][:2])
    heads = [h.value for h in at.subheader if h.value.startswith("Appointments behind")]
    shown = [h.replace("\\:", ":") for h in heads]  # markdown: a colon escaped
    assert shown == [f"Appointments behind {days[weekday]} {cell[6]}"], heads
    assert any(c.value.startswith(f"{int(cell[4]):,} booked") for c in at.caption)
    table = next(d for d in at.dataframe if "Status" in d.value.columns).value
    assert len(table) == min(int(cell[4]), 200)
    assert all(t.weekday() == weekday and t.hour == hour for t in table["Start"])


def test_the_notice_chart_says_how_many_cancellations_it_leaves_out(app_as, app_db):
    """Cancellations imported without when they were cancelled have no notice: the chart
    leaves them out and its caption says how many and why (before: they vanished silently,
    its n short of the cancellations counted above)."""
    database = _db(app_db)
    with database.write() as session:
        visit = session.scalars(
            select(Appointment)
            .where(Appointment.kind == AppointmentKind.APPOINTMENT, Appointment.status.in_(BOOKED))
            .order_by(Appointment.start_at.desc())
        ).first()
        start = datetime.now(UTC) - timedelta(days=3)
        for _ in range(3):
            session.add(
                Appointment(
                    clinic_id=visit.clinic_id,
                    provider_id=visit.provider_id,
                    patient_id=visit.patient_id,
                    service_id=visit.service_id,
                    status="cancelled",
                    source="import",
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                    booked_at=start - timedelta(days=9),
                )
            )
    database.dispose()
    at = _show(app_as("owner", PAGE), "Turnaround and notice")
    assert not at.exception and not at.error
    f = _core_figures(app_db, at.session_state["cancel_filters_now"])
    assert f.untimed_cancellations >= 3
    notice = _spec(at, "cancel_chart_notice")
    timed = f.totals.cancelled - f.untimed_cancellations
    assert notice["title"]["text"].endswith(f"n = {timed:,}")
    assert (
        f"{f.untimed_cancellations:,} of {f.totals.cancelled:,} cancellations left out: "
        "imported without when they were cancelled, so their notice is not known."
    ) in [c.value for c in at.caption]


def test_a_package_is_its_own_bar_by_service_and_lists_its_own_visits(app_as, app_db):
    """Three visits booked as a package (first service Skin check; one the demo books no
    visit of, as it does Skin renewal): the service chart has a bar "Package: Clear skin",
    said under the chart, and a click on it lists those three visits (before: they were Skin
    check's, and the bar's pick was read as a service's id)."""
    database = _db(app_db)
    with database.write() as session:
        package = clear_skin(session)
        skin_check = session.scalar(select(Service.id).where(Service.name == "Skin check"))
        since = datetime.now(UTC) - timedelta(days=40)
        visits = session.scalars(
            select(Appointment)
            .where(
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.status.in_(BOOKED),
                Appointment.start_at >= since,
                Appointment.start_at < since + timedelta(days=20),
            )
            .order_by(Appointment.id)
            .limit(3)
        ).all()
        for visit in visits:
            visit.package_id, visit.service_id = package.id, skin_check
        ids = {v.id for v in visits}
    database.dispose()
    assert len(ids) == 3
    at = app_as("owner", PAGE)
    assert not at.exception and not at.error
    spec = _spec(at, "cancel_chart_service")
    labels = spec["xAxis"]["data"]
    assert "Package: Clear skin" in labels, labels
    assert any(c.value.startswith("A package booked as one visit") for c in at.caption)
    at.session_state["cancel_chart_service"] = chart_click(0, labels.index("Package: Clear skin"))
    at.run()
    assert not at.exception, at.exception
    assert "Appointments behind Package: Clear skin" in [h.value for h in at.subheader]
    table = next(d for d in at.dataframe if "Status" in d.value.columns).value
    assert set(table["#"]) == ids
    assert set(table["Service"]) == {"Package: Clear skin"}


def test_nothing_booked_before_means_no_change_not_even_the_turnaround(app_as, app_db):
    """The caption says no changes are shown when nothing was booked in the period before;
    the mean request turnaround kept one (before: '+1.0 h' against twelve online requests
    the week before, all declined, none booked)."""
    first = date(2001, 1, 8)
    database = _db(app_db)
    with database.write() as session:
        clinic_id = session.scalar(select(Clinic.id).order_by(Clinic.id).limit(1))
        patient_id = session.scalar(select(Patient.id).limit(1))
        for day, hours in ((first - timedelta(days=4), 2), (first + timedelta(days=2), 3)):
            asked = datetime.combine(day - timedelta(days=2), time(9), UTC)
            session.add_all(
                Appointment(
                    clinic_id=clinic_id,
                    patient_id=patient_id,
                    status="declined",
                    source="online",
                    requested_day=day,
                    created_at=asked,
                    decided_at=asked + timedelta(hours=hours),
                )
                for _ in range(12)
            )
        start = local_to_utc(first + timedelta(days=2), time(10), "Europe/London")
        session.add(
            Appointment(
                clinic_id=clinic_id,
                patient_id=patient_id,
                status="completed",
                start_at=start,
                end_at=start + timedelta(minutes=30),
                booked_at=start - timedelta(days=3),
            )
        )
    database.dispose()
    at = app_as("owner", PAGE)
    at.date_input(key="cancel_days").set_value((first, first + timedelta(days=6)))
    at = _apply(at)
    assert not at.exception and not at.error
    assert any(c.value.startswith("Nothing was booked in the 7 days before") for c in at.caption)
    turnaround = next(m for m in at.metric if m.label == "Mean request turnaround")
    assert turnaround.value == "3.0 h"
    assert not turnaround.proto.delta, turnaround.proto.delta
