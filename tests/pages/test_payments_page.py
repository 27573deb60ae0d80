"""AppTest: the payments and points page — the value of a point in each clinic's currency, and
the rules saved from it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.payments import rules
from core.startup import open_database
from db.models import Service
from tests.pages.conftest import told_to_show

PAGE = "app_pages/payments.py"


def test_the_value_of_a_point_is_shown_in_each_clinics_currency_and_saved(app_as, app_db):
    at = app_as("owner", PAGE)
    assert not at.exception
    caption = at.caption[0].value
    # escaped: with two clinics in dollars, '$0.10 at A, $0.10 at B' would typeset as LaTeX
    assert (
        r"\$0.10 at Lakeside Aesthetics" in caption and "£0.10 at Harbour Street Clinic" in caption
    )
    value = at.number_input(key="payments_point_value")
    assert "minor units" in value.help and "$0.10 at a USD clinic" in value.help
    value.set_value(25)
    at.button(key="FormSubmitter:payments_rules_form-Save rules").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert r"\$0.25 at Lakeside Aesthetics" in at.caption[0].value
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.read() as session:
        assert rules.get_settings(session).point_value_cents == 25
    database.dispose()


def _rules(app_db):
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.read() as session:
        saved = rules.get_settings(session)
    database.dispose()
    return saved


def test_the_owner_sets_a_deposit_in_the_rules_table_and_a_wrong_amount_is_explained(
    app_as, app_db
):
    at = app_as("owner", PAGE)
    table = at.data_editor(key="payments_service_rules").value
    assert list(table.columns) == ["Service", "Price", "Prepayment", "Deposit"]
    row = list(table["Service"]).index("Botox treatment")
    save = "FormSubmitter:payments_rules_form-Save rules"

    at.session_state["payments_service_rules"] = {
        "edited_rows": {row: {"Prepayment": "Deposit required", "Deposit": 0}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.button(key=save).click().run()
    assert "a deposit must be more than 0" in at.error[0].value
    before = _rules(app_db)
    assert all(rule.mode != "deposit" for rule in before.services.values())

    at.session_state["payments_service_rules"] = {
        "edited_rows": {row: {"Prepayment": "Deposit required", "Deposit": 49.995}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.button(key=save).click().run()
    # more decimals than the currency has are refused, not rounded (before: saved as £50.00)
    assert at.error[0].value == (
        "Botox treatment's deposit: GBP amounts have at most 2 decimals; 49.995 has 3. "
        "Type the amount without the extra decimals."
    )
    assert _rules(app_db) == before

    at.session_state["payments_service_rules"] = {
        "edited_rows": {row: {"Prepayment": "Deposit required", "Deposit": 49.99}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.button(key=save).click().run()
    assert not at.error, [e.value for e in at.error]
    deposits = [r for r in _rules(app_db).services.values() if r.mode == "deposit"]
    assert [r.deposit_cents for r in deposits] == [4999]
    assert at.data_editor(key="payments_service_rules").value.iloc[row]["Deposit"] == 49.99


def test_staff_see_the_rules_but_cannot_edit_them(app_as, app_db):
    database = open_database(load_settings({"DATABASE_URL": app_db}))
    with database.write() as session:  # a deposit of £50 on Botox, as the owner would set it
        current = rules.get_settings(session)
        botox = next(
            s for s in session.execute(select(Service)).scalars() if s.name == "Botox treatment"
        )
        services = dict(current.services) | {botox.id: rules.ServiceRule("deposit", 5000)}
        rules.save_settings(session, SYSTEM, replace(current, services=services))
    database.dispose()
    at = app_as("manager", PAGE)
    assert not at.exception
    assert not at.data_editor and "payments_rules_form" not in str(at.main)
    table = at.dataframe[0].value
    botox = table[table["Service"] == "Botox treatment"].iloc[0]
    assert botox["Deposit"] == "£50.00"  # in the clinic's money, not a bare '50'


def test_points_added_on_the_cancellations_page_are_in_the_patients_ledger(app_as, app_db):
    """Reports → Cancellations → fees: "Add points" writes a ledger entry with the reason, so
    the patient's points history still adds up to the balance (before, only the balance and
    the audit log changed)."""
    from core.kernel.authz import SYSTEM
    from core.payments import points
    from db.models import Patient

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.read() as session:
        patient_id = session.scalars(
            Patient.__table__.select().with_only_columns(Patient.id)
        ).first()
        before = session.get(Patient, patient_id).points_balance
    at = app_as("manager", "app_pages/cancellation_analytics.py")
    at.toggle(key="cancel_show_fees").set_value(True).run()
    at.number_input(key="cancel_points_patient").set_value(patient_id)
    at.number_input(key="cancel_points_value").set_value(25)
    at.text_input(key="cancel_points_reason").input("Goodwill after a late start")
    at.button(key="FormSubmitter:cancel_points_form-Add points").click().run()
    assert not at.error, at.error[0].value
    with database.read() as session:
        patient = session.get(Patient, patient_id)
        history = points.points_history(session, SYSTEM, patient_id)
    database.dispose()
    assert patient.points_balance == before + 25
    assert history[0].points == 25 and history[0].note == "Goodwill after a late start"
    assert sum(row.points for row in history) == patient.points_balance
    # whose points and the balance now ('Points added.' named neither: a mistyped number hid)
    assert [t.value for t in at.toast] == [
        f"25 points added to {patient.full_name} (#{patient_id}); "
        f"their balance is now {patient.points_balance}."
    ]


def test_the_rules_table_shows_each_price_in_the_clinics_currencies(app_as):
    """As the Services page does: '£60.00 · $60.00' for London and New York (before, a bare
    '60.00' with no currency, or '5000' in a yen practice)."""
    for role in ("owner", "manager"):
        at = app_as(role, PAGE)
        if role == "owner":
            table = at.data_editor(key="payments_service_rules").value
        else:
            table = at.dataframe[0].value
        assert all(p.count("£") == 1 and p.count("$") == 1 for p in table["Price"]), table


def test_a_deposit_is_typed_in_the_open_clinics_currency_not_a_closed_first_ones(app_as, app_db):
    """The practice's first clinic, closed for good, charged in yen; the open ones do not: a
    deposit of 49.99 is read in the open clinics' currency (as the Price column and the Services
    page) and saved. Before, the page read it in the first clinic's yen and refused it ('JPY
    amounts have no decimals; 49.99 has 2')."""
    from db.models import Clinic

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        first = session.scalars(select(Clinic).order_by(Clinic.id).limit(1)).one()
        first.currency, first.active = "JPY", False
        typing = sorted(
            {c.currency for c in session.scalars(select(Clinic).where(Clinic.active.is_(True)))}
        )
    database.dispose()
    at = app_as("owner", PAGE)
    table = at.data_editor(key="payments_service_rules").value
    row = list(table["Service"]).index("Botox treatment")
    at.session_state["payments_service_rules"] = {
        "edited_rows": {row: {"Prepayment": "Deposit required", "Deposit": 49.99}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.button(key="FormSubmitter:payments_rules_form-Save rules").click().run()
    assert not at.error, [e.value for e in at.error]
    deposits = [r for r in _rules(app_db).services.values() if r.mode == "deposit"]
    assert [r.deposit_cents for r in deposits] == [4999] and "JPY" not in typing


def test_the_cash_up_shows_each_clinics_money_today_per_method(app_as, app_db):
    """The day's cash-up on the page is the core's, per clinic and method: a £45 cash payment
    taken now counts in its clinic's Cash line (before, the page had no cash-up at all). Staff,
    who take the money, open it under Front desk (it was first on Payments, which is the
    managers')."""
    from core.kernel.clock import local_today
    from core.payments import cashup, desk
    from db.models import Appointment

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.patient_id.is_not(None)).limit(1)
        ).one()
        zone = visit.clinic.timezone
        desk.record_desk_payment(
            session, SYSTEM, visit.id, amount_cents=4500, method="cash", beyond=True
        )
    at = app_as("staff", "app_pages/cash_up.py")  # who takes the money closes the till
    assert not at.exception
    with database.read() as session:
        lines = cashup.cash_up(session, SYSTEM, local_today(zone), clinic_id=visit.clinic_id)
    database.dispose()
    at.selectbox(key="payments_cashup_clinic").set_value(visit.clinic_id)
    at.date_input(key="payments_cashup_day").set_value(local_today(zone)).run()
    table = at.dataframe[-1].value
    assert list(table.columns) == ["Clinic", "Method", "In", "Out", "Net", "Refunds due"]
    assert [tuple(r) for r in table.itertuples(index=False)] == [
        (x.clinic, x.method, x.money_in, x.money_out, x.net, x.refunds_due) for x in lines
    ]
    assert any(x.method == "Cash" and x.in_cents >= 4500 for x in lines)


def _cash_owed_back(database, fees: int = 1) -> tuple[list[int], str, int]:
    """`fees` no-show fees of £30 of a patient with no appointment, paid in cash and waived:
    each a refund owed back in cash. Their ids, and the first clinic's zone and id."""
    from core.payments import desk
    from core.payments.providers import DeskProvider
    from db.models import Clinic, LedgerEntry, LedgerKind, Patient

    with database.write() as session:
        patient = Patient(first_name="Noor", last_name="Visitless", email="noor@example.org")
        session.add(patient)
        session.flush()
        refunds = []
        for _ in range(fees):
            fee = LedgerEntry(patient_id=patient.id, kind=LedgerKind.NO_SHOW_FEE, amount_cents=3000)
            session.add(fee)
            session.flush()
            desk.pay_fee(session, SYSTEM, fee.id, method="cash", provider=DeskProvider())
            (refund,) = desk.waive_fee(session, SYSTEM, fee.id, "Charged by mistake").refunds
            refunds.append(refund.id)
        first = session.scalars(select(Clinic).order_by(Clinic.id).limit(1)).one()
        return refunds, first.timezone, first.id


def test_a_refund_owed_back_on_no_visit_is_handed_back_from_the_cash_up(app_as, app_db):
    """A waived fee of a patient with no appointment leaves £30 cash owed back. Before, the
    cash-up listed it as owed for ever (only a visit's Payments panel could mark a refund
    handed back). Staff now select it in the cash-up's list, add a note and press Handed back:
    it leaves the list and is the day's money out."""
    from core.kernel.clock import local_today
    from core.payments import cashup
    from db.models import Payment

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    (refund_id,), zone, where = _cash_owed_back(database)

    def cash_out():  # what the core's cash-up says went out of the first clinic's till today
        with database.read() as session:
            lines = cashup.cash_up(session, SYSTEM, local_today(zone), clinic_id=where)
        return sum(x.out_cents for x in lines if x.method == "Cash"), lines

    before, _ = cash_out()
    at = app_as("staff", "app_pages/cash_up.py")
    at.date_input(key="payments_cashup_day").set_value(local_today(zone)).run()
    owed = at.dataframe(key="payments_owed_table").value
    row = list(owed["Refund"]).index(f"P-{refund_id}")
    assert (owed["Patient"][row], owed["Amount"][row], owed["Appointment"][row]) == (
        "Noor Visitless",
        "£30.00",
        "",
    )
    at.session_state["payments_owed_table"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    at.text_input(key="payments_owed_note").set_value("Cash from the till")
    at.button(key="payments_owed_done").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with database.read() as session:
        made = session.get(Payment, refund_id)
        assert (made.status, made.note) == ("refunded", "Cash from the till")
    after, lines = cash_out()
    database.dispose()
    assert after - before == 3000  # the day's money out, in the fee's clinic's till
    at.selectbox(key="payments_cashup_clinic").set_value(where).run()
    table = at.dataframe[0].value
    assert [tuple(r) for r in table.itertuples(index=False)] == [
        (x.clinic, x.method, x.money_in, x.money_out, x.net, x.refunds_due) for x in lines
    ]
    shown = [list(d.value.get("Refund", [])) for d in at.dataframe[1:]]
    assert all(f"P-{refund_id}" not in refs for refs in shown)  # owed no more


def test_the_cash_ups_note_is_empty_for_the_next_refund_handed_back(app_as, app_db, set_twice):
    """A note is for the refund it was typed for: handed back, the next refund chosen shows an
    empty note, in the browser too (told_to_show), not the last one's, to be saved with it."""
    from core.kernel.clock import local_today
    from db.models import Payment

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    (one, other), zone, _ = _cash_owed_back(database, fees=2)
    at = app_as("staff", "app_pages/cash_up.py")
    at.date_input(key="payments_cashup_day").set_value(local_today(zone)).run()

    def choose(refund_id):
        refs = list(at.dataframe(key="payments_owed_table").value["Refund"])
        rows = [refs.index(f"P-{refund_id}")]
        at.session_state["payments_owed_table"] = {"selection": {"rows": rows, "columns": []}}
        at.run()

    choose(one)
    at.text_input(key="payments_owed_note").set_value("Cash from the till, counted twice")
    at.button(key="payments_owed_done").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    choose(other)
    assert at.button(key="payments_owed_done").label == f"Handed back: P-{other}"
    told_to_show(at.text_input(key="payments_owed_note"), "")
    assert set_twice == []
    at.button(key="payments_owed_done").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with database.read() as session:
        notes = [session.get(Payment, i).note for i in (one, other)]
    database.dispose()
    assert notes[0] == "Cash from the till, counted twice"
    assert "counted twice" not in notes[1]  # the other's note is not saved with it


def test_a_card_refund_the_provider_refused_is_shown_and_handed_back_on_the_visit(
    app_as, app_db, monkeypatch, set_twice
):
    """Three refunds to the card on one visit: one sent, one waiting for the refund job, one
    the provider refused. Before, the Payments panel said nothing of their state and offered
    no way to hand the refused one back (only the cash-up did). Each now reads its state in
    words, the provider's refusal as typed (no markup), and the refused one is handed back at
    the desk with a note."""
    from core.kernel.clock import utcnow
    from db.models import Appointment, Payment

    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_clinicdesk")  # card payments on
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_clinicdesk")
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.patient_id.is_not(None)).limit(1)
        ).one()
        money = {"appointment_id": visit.id, "patient_id": visit.patient_id, "method": "stripe"}
        money |= {"currency": visit.clinic.currency, "amount_cents": 1000}
        paid = Payment(kind="prepayment", status="paid", paid_at=utcnow(), **money)
        session.add(paid)
        session.flush()
        refunds = [
            Payment(kind="refund", status="refunded", paid_at=utcnow(), **money),
            Payment(kind="refund", status="refund_due", **money),
            Payment(kind="refund", status="refund_due", last_error="Card *expired*", **money),
        ]
        session.add_all(refunds)
        session.flush()
        sent, waiting, refused = (r.id for r in refunds)
        visit_id = visit.id
    at = app_as("staff")
    at.query_params["id"] = str(visit_id)
    at.switch_page("app_pages/appointment.py")
    at.run()
    assert not at.exception
    said = {c.value.split()[2]: c.value for c in at.caption if "Card refund" in c.value}
    assert "sent to the card on " in said[f"P-{sent}"]
    assert said[f"P-{waiting}"].endswith(": waiting for the refund job")
    assert (
        'refused by the provider: "Card \\*expired\\*" — hand it back at the desk'
        in said[f"P-{refused}"]
    )
    assert [b.key for b in at.button if b.key.startswith("payments_card_refund_")] == [
        f"payments_card_refund_{refused}_done"
    ]
    at.text_input(key=f"payments_card_refund_{refused}_note").set_value("Cash from the till")
    at.button(key=f"payments_card_refund_{refused}_done").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with database.read() as session:
        made = session.get(Payment, refused)
        assert (made.status, made.note) == ("refunded", "Cash from the till")
    database.dispose()
    said = [c.value for c in at.caption if f"Card refund P-{refused} " in c.value]
    assert said and "handed back at the desk on " in said[0]
    # handed back, its note's box goes with it, and what was typed in it is not kept
    assert not [t for t in at.text_input if t.key.startswith("payments_card_refund_")]
    assert f"payments_card_refund_{refused}_note" not in at.session_state
    assert set_twice == []


# a card refund's last error as the refund job leaves it with unanswered_at, and how the
# panel then says why it waits: Stripe did not answer; Stripe refused to look it up
TIMED_OUT = "Stripe did not answer the refund: Request to Stripe timed out."
LOOKUP = (
    "Stripe refused to look up the payment's refunds: The provided key does not have the "
    "required permissions. Give the Stripe key permission to read refunds (a restricted key's "
    "Refunds: Read)."
)
WAITS = {
    TIMED_OUT: "the card provider did not answer its last attempt (Stripe did not answer the "
    "refund: Request to Stripe timed out) and may have made it; the refund job's next run asks "
    "the provider, then records the refund it made or sends it again, never twice (only if the "
    "provider then refuses it is it handed back at the desk)",
    LOOKUP: "the card provider refused to let us look the refund up, so it may have been made "
    "(the provider's dashboard shows whether it was; do not refund it there: the refund job "
    "does). Stripe refused to look up the payment's refunds: The provided key does not have "
    "the required permissions. Give the Stripe key permission to read refunds (a restricted "
    "key's Refunds: Read). The refund job's next run looks again, then records the refund it "
    "made or sends it again, never twice (only if the provider then refuses it is it handed "
    "back at the desk)",
}


@pytest.mark.parametrize("said", [TIMED_OUT, LOOKUP], ids=["unanswered", "look-up refused"])
def test_a_card_refund_the_provider_may_have_made_waits_and_is_not_handed_back(
    app_as, app_db, monkeypatch, said
):
    """A card refund whose last attempt Stripe did not answer (a timeout), or whose look-up
    Stripe then refused (a key that may not read refunds): Stripe may have made it. Before, the
    panel read it as refused and offered to hand it back at the desk (the patient refunded
    twice). It now says why it waits and when it is looked at again, and offers no button; the
    cash-up's list says so too. A refused look-up is said as one (before, it read 'the card
    provider did not answer its last attempt')."""
    from core.kernel.clock import local_today, utcnow
    from db.models import Appointment, Payment

    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_clinicdesk")  # card payments on
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_clinicdesk")
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.patient_id.is_not(None)).limit(1)
        ).one()
        money = {"appointment_id": visit.id, "patient_id": visit.patient_id, "method": "stripe"}
        money |= {"currency": visit.clinic.currency, "amount_cents": 1000}
        paid = Payment(kind="prepayment", status="paid", paid_at=utcnow(), **money)
        session.add(paid)
        session.flush()
        waits = {"last_error": said, "unanswered_at": utcnow()}  # as the refund job leaves it
        refund = Payment(kind="refund", status="refund_due", **waits, **money)
        session.add(refund)
        session.flush()
        visit_id, due, zone = visit.id, refund.id, visit.clinic.timezone
    database.dispose()
    at = app_as("staff")
    at.query_params["id"] = str(visit_id)
    at.switch_page("app_pages/appointment.py")
    at.run()
    assert not at.exception
    (caption,) = [c.value for c in at.caption if f"Card refund P-{due} " in c.value]
    assert caption.endswith(f": waiting: {WAITS[said]}")
    assert not [b for b in at.button if b.key.startswith(f"payments_card_refund_{due}")]
    cash = app_as("staff", "app_pages/cash_up.py")
    cash.date_input(key="payments_cashup_day").set_value(local_today(zone)).run()
    owed = cash.dataframe(key="payments_owed_table").value
    row = list(owed["Refund"]).index(f"P-{due}")
    assert owed["How"][row] == f"refund job, to the card: {WAITS[said]}"


def test_a_cancelled_visit_offers_its_fee_not_the_desk_payment_form(app_as, app_db):
    """A visit the patient cancelled late, its £20 fee unpaid. The core refuses a desk payment
    of a cancelled visit; before, the Payments panel still offered the form, which could only
    fail. It now says nothing is owed for the visit itself and offers the fee, recorded as
    the fee. With the fee paid, it says nothing is left to take."""
    from core.payments import desk
    from db.models import Appointment, AppointmentStatus, LedgerEntry, LedgerKind

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.patient_id.is_not(None)).limit(1)
        ).one()
        visit.status = AppointmentStatus.CANCELLED
        fee = LedgerEntry(
            patient_id=visit.patient_id,
            appointment_id=visit.id,
            kind=LedgerKind.LATE_CANCEL_FEE,
            amount_cents=2000,
        )
        session.add(fee)
        session.flush()
        visit_id, fee_id = visit.id, fee.id
    at = app_as("staff")
    at.query_params["id"] = str(visit_id)
    at.switch_page("app_pages/appointment.py")
    at.run()
    assert not at.exception
    assert not [e for e in at.expander if e.label == "Record a payment taken at the desk"]
    said = [c.value for c in at.caption if "nothing is owed for the visit itself" in c.value]
    assert said == [
        "This visit was cancelled: nothing is owed for the visit itself. Its fee is "
        "taken below ('Record fee paid')."
    ]
    at.button(key=f"payments_fee_{fee_id}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with database.read() as session:
        assert desk.unpaid_fees(session, SYSTEM, visit_id) == []
    database.dispose()
    said = [c.value for c in at.caption if "nothing is owed for the visit itself" in c.value]
    assert said == ["This visit was cancelled: nothing is owed for the visit itself, nor is a fee."]


def test_a_card_refund_due_while_card_payments_are_off_is_handed_back_saying_how(app_as, app_db):
    """Stripe switched off with a card refund due on the visit: the refund job does not run.
    Before, the panel said 'waiting for the refund job' and offered nothing: it waited for
    ever. It now says why it waits and is handed back at the desk, with how (required)."""
    from core.kernel.clock import utcnow
    from db.models import Appointment, Payment

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.patient_id.is_not(None)).limit(1)
        ).one()
        money = {"appointment_id": visit.id, "patient_id": visit.patient_id, "method": "stripe"}
        money |= {"currency": visit.clinic.currency, "amount_cents": 1000}
        paid = Payment(kind="prepayment", status="paid", paid_at=utcnow(), **money)
        session.add(paid)
        session.flush()
        refund = Payment(kind="refund", status="refund_due", refund_of_id=paid.id, **money)
        session.add(refund)
        session.flush()
        visit_id, due = visit.id, refund.id
    at = app_as("staff")
    at.query_params["id"] = str(visit_id)
    at.switch_page("app_pages/appointment.py")
    at.run()
    assert not at.exception
    (said,) = [c.value for c in at.caption if f"Card refund P-{due} " in c.value]
    assert said.endswith(
        ": waiting: card payments are switched off, so the refund job cannot send it to the "
        "card — hand it back at the desk, saying how"
    )
    at.button(key=f"payments_card_refund_{due}_done").click().run()
    assert "Say how refund" in at.error[0].value
    at.text_input(key=f"payments_card_refund_{due}_note").set_value("Cash from the till")
    at.button(key=f"payments_card_refund_{due}_done").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with database.read() as session:
        made = session.get(Payment, due)
        assert (made.status, made.note) == ("refunded", "Cash from the till")
    database.dispose()


def test_charging_the_card_on_file_from_the_panel_runs_the_charge_in_its_steps(
    app_as, app_db, monkeypatch
):
    """'Charge the card on file' goes through charge_fee_on_file (its attempt committed before
    the provider is asked): a patient with no card on file is told so, nothing is recorded."""
    from db.models import Appointment, AppointmentStatus, LedgerEntry, LedgerKind, Payment

    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_clinicdesk")  # card payments on
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_clinicdesk")
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.patient_id.is_not(None)).limit(1)
        ).one()
        visit.status = AppointmentStatus.CANCELLED
        session.execute(
            Payment.__table__.update()
            .where(Payment.patient_id == visit.patient_id)
            .values(provider_customer=None)
        )
        fee = LedgerEntry(
            patient_id=visit.patient_id,
            appointment_id=visit.id,
            kind=LedgerKind.LATE_CANCEL_FEE,
            amount_cents=2000,
        )
        session.add(fee)
        session.flush()
        visit_id, fee_id = visit.id, fee.id
    at = app_as("staff")
    at.query_params["id"] = str(visit_id)
    at.switch_page("app_pages/appointment.py")
    at.run()
    at.selectbox(key=f"payments_fee_{fee_id}_method").set_value("card_on_file")
    at.button(key=f"payments_fee_{fee_id}").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The patient has no card on file with the payment provider."
    ]
    with database.read() as session:
        query = select(Payment).where(Payment.ledger_entry_id == fee_id)
        assert session.scalars(query).all() == []
    database.dispose()


def test_a_charge_the_provider_has_not_finished_is_a_notice_not_an_error(
    app_as, app_db, monkeypatch
):
    """'Charge the card on file' answered 'processing' by Stripe (through the real stripe
    library, its HTTP layer answering as Stripe does): the fee is not paid yet and the desk has
    nothing to do, so it is said as a warning, not an error box (before, st.error), in the same
    words; the attempt is kept pending."""
    from stripe import _stripe_client

    from db.models import Appointment, AppointmentStatus, LedgerEntry, LedgerKind, Payment
    from tests.unit.test_payments import CardsOnFile

    http = CardsOnFile()
    http.status = "processing"
    monkeypatch.setattr(_stripe_client, "new_default_http_client", lambda **_: http)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_clinicdesk")  # card payments on
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_clinicdesk")
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.scalars(
            select(Appointment).where(Appointment.patient_id.is_not(None)).limit(1)
        ).one()
        visit.status = AppointmentStatus.CANCELLED
        money = {"appointment_id": visit.id, "patient_id": visit.patient_id, "method": "stripe"}
        money |= {"currency": visit.clinic.currency, "amount_cents": 1000}
        session.add(Payment(kind="prepayment", status="failed", provider_customer="cus_1", **money))
        fee = LedgerEntry(
            patient_id=visit.patient_id,
            appointment_id=visit.id,
            kind=LedgerKind.LATE_CANCEL_FEE,
            amount_cents=2000,
        )
        session.add(fee)
        session.flush()
        visit_id, fee_id = visit.id, fee.id
    at = app_as("staff")
    at.query_params["id"] = str(visit_id)
    at.switch_page("app_pages/appointment.py")
    at.run()
    at.selectbox(key=f"payments_fee_{fee_id}_method").set_value("card_on_file")
    at.button(key=f"payments_fee_{fee_id}").click().run()
    assert not at.exception
    assert http.made == ["pi_1"]
    assert [e.value for e in at.error] == []
    with database.read() as session:
        (attempt,) = session.scalars(select(Payment).where(Payment.ledger_entry_id == fee_id))
        assert (attempt.status, attempt.provider_ref) == ("pending", "pi_1")
        said = (
            f"The card provider has not finished the charge of fee #{fee_id} to the card on "
            f"file (P-{attempt.id}, processing): the fee is not paid yet. It is marked paid when "
            "the provider says the money came in, or shown as declined if it does not; nothing "
            "else to do now."
        )
    assert [w.value for w in at.warning] == [said]
    database.dispose()


def test_a_day_without_money_says_so_without_an_empty_table(app_as, app_db):
    """The demo takes no money: the day's cash-up says 'No money moved on that day.' alone,
    not under an empty table of headings that read 'empty'."""
    at = app_as("staff", "app_pages/cash_up.py")
    assert not at.exception
    assert [i.value for i in at.info] == ["No money moved on that day."]
    assert not [d for d in at.dataframe if "Refunds due" in d.value.columns]


def test_points_adjusted_here_empty_the_reason_so_a_second_press_adds_nothing(
    app_as, app_db, set_twice
):
    """Payments and points → Adjust a patient's points: once adjusted, the reason is emptied
    (and the browser told so), so a second press, as when the toast went unseen, asks for a
    reason instead of adding the points again (before, the form kept all three and a second
    press added them twice)."""
    from db.models import Patient

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.read() as session:
        patient = session.scalars(
            select(Patient).where(Patient.email.is_not(None)).order_by(Patient.id).limit(1)
        ).one()
        patient_id, email, before = patient.id, patient.email, patient.points_balance
    at = app_as("manager", "app_pages/payments.py")
    at.session_state["payments_points_open"] = True  # a click on the fold
    at.run()
    # the patient is found and chosen, not typed as a number (a wrong digit was another
    # patient's points)
    assert not any(n.key == "payments_points_patient" for n in at.number_input)
    at.number_input(key="payments_pts").set_value(25)
    at.text_input(key="payments_points_reason").input("Goodwill after a late start")
    at.button(key="FormSubmitter:payments_points_form-Adjust points").click().run()
    assert [e.value for e in at.error] == [
        "Choose the patient first: search by name, phone or email above."
    ]
    at.text_input(key="payments_points_search").input(email).run()
    at.selectbox(key="payments_points_patient").select_index(0).run()
    at.number_input(key="payments_pts").set_value(25)
    at.text_input(key="payments_points_reason").input("Goodwill after a late start")
    at.button(key="FormSubmitter:payments_points_form-Adjust points").click().run()
    assert not at.error, at.error[0].value
    reason = at.text_input(key="payments_points_reason")
    assert (reason.value, reason.proto.set_value) == ("", True)
    assert set_twice == []  # no widget emptied through the state has a default of its own
    at.button(key="FormSubmitter:payments_points_form-Adjust points").click().run()
    assert [e.value for e in at.error] == [
        "Say why the points change; the reason is kept in the ledger."
    ]
    with database.read() as session:
        assert session.get(Patient, patient_id).points_balance == before + 25
    database.dispose()
