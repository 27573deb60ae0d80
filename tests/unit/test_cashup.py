"""The cash-up and the payments export: each clinic's money on its own days and clock, signed,
per method, adding up to the till and the card provider; refunds due apart; nothing counted
twice (a fee kept from a prepayment, a pending or failed checkout)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from datetime import time, timedelta

import pytest
from sqlalchemy import event, select

from core.kernel.clock import local_to_utc, local_today, to_local
from core.kernel.errors import Conflict, PermissionDenied, ValidationError
from core.kernel.money import clinic_time
from core.payments import cashup, desk
from core.payments.providers import DeskProvider
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Payment,
)
from db.types import utcnow

NY = "America/New_York"


def _visit(s, world, clinic_id):
    start = utcnow() - timedelta(days=3)
    visit = Appointment(
        clinic_id=clinic_id,
        provider_id=world.provider_id,
        patient_id=world.patient_id,
        service_id=world.service_id,
        status=AppointmentStatus.COMPLETED,
        start_at=start,
        end_at=start + timedelta(minutes=30),
    )
    s.add(visit)
    s.flush()
    return visit.id


def _pay(s, world, visit, kind, method, status, cents, created, paid=None, **more):
    p = Payment(
        appointment_id=visit,
        patient_id=world.patient_id,
        kind=kind,
        method=method,
        status=status,
        amount_cents=cents,
        currency=more.pop("currency", "USD"),
        created_at=created,
        paid_at=paid,
        **more,
    )
    s.add(p)
    s.flush()
    return p.id


@pytest.fixture
def day(db, world):
    """A New York day with its money, and the London clinic's beside it: a cash payment that
    morning; a card payment the day before, cancelled that evening keeping a fee and refunding
    the rest, handed back at 8 PM New York (1 AM the next day in London and UTC); a checkout
    still pending, one failed; a cash refund due, not yet made; £60 cash in London."""
    d = local_today(NY) - timedelta(days=2)

    def ny(when, at):
        return local_to_utc(when, at, NY)

    with db.write() as s:
        clinic = Clinic(name="Lakeside", timezone=NY, locale="en-US", currency="USD")
        s.add(clinic)
        s.flush()
        a, b = _visit(s, world, clinic.id), _visit(s, world, clinic.id)
        ids = {"cash": _pay(s, world, a, "prepayment", "cash", "paid", 4500, *[ny(d, time(9))] * 2)}
        yesterday = d - timedelta(days=1)
        card = _pay(s, world, b, "prepayment", "card", "paid", 4500, *[ny(yesterday, time(9))] * 2)
        kept = _pay(
            s,
            world,
            b,
            "fee",
            "card",
            "paid",
            1500,
            *[ny(yesterday, time(18))] * 2,
            refund_of_id=card,
        )
        back = _pay(
            s,
            world,
            b,
            "refund",
            "card",
            "refunded",
            3000,
            ny(yesterday, time(18)),
            ny(d, time(20)),
            refund_of_id=card,
        )
        _pay(s, world, a, "prepayment", "stripe", "pending", 4500, ny(d, time(10)))
        _pay(s, world, a, "prepayment", "stripe", "failed", 4500, ny(d, time(10)))
        due = _pay(
            s,
            world,
            a,
            "refund",
            "cash",
            "refund_due",
            1000,
            ny(d, time(11)),
            refund_of_id=ids["cash"],
        )
        london = _visit(s, world, world.clinic_id)
        at = local_to_utc(d, time(12), "Europe/London")
        pound = _pay(s, world, london, "prepayment", "cash", "paid", 6000, at, at, currency="GBP")
        ids |= {"card": card, "kept": kept, "back": back, "due": due, "pound": pound}
        return d, clinic.id, ids


def test_the_cash_up_is_per_clinic_and_method_and_adds_up_to_the_till(db, world, day):
    d, _, _ = day
    with db.read() as s:
        lines = cashup.cash_up(s, world.staff, d)
    assert [(x.clinic, x.method, x.money_in, x.money_out, x.net, x.refunds_due) for x in lines] == [
        ("Test Clinic", "Cash", "£60.00", "£0.00", "£60.00", ""),
        ("Lakeside", "Cash", "$45.00", "$0.00", "$45.00", "$10.00"),
        # the refund handed back tonight is tonight's, though it fell due yesterday
        ("Lakeside", "Card terminal", "$0.00", "$30.00", "-$30.00", ""),
    ]
    with db.read() as s:
        before = cashup.cash_up(s, world.staff, d - timedelta(days=1))
    # yesterday: the card payment once (the fee kept from it is not money in again)
    assert [(x.clinic, x.method, x.net) for x in before] == [
        ("Lakeside", "Card terminal", "$45.00")
    ]


def test_the_export_lists_when_money_moved_on_the_clinics_clock_signed(db, world, day):
    d, clinic_id, ids = day
    with db.write() as s, pytest.raises(PermissionDenied):
        desk.export_payments(s, world.staff, d, d)
    with db.write() as s, pytest.raises(ValidationError, match="after the last"):
        desk.export_payments(s, world.manager, d, d - timedelta(days=1))
    with db.write() as s:
        data = desk.export_payments(s, world.manager, d, d, clinic_id).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(data)))
    got = [
        (r["reference"], r["moved_at"][11:], r["method"], r["status"], r["amount"], r["refund_due"])
        for r in rows
    ]
    z = to_local(local_to_utc(d, time(9), NY), NY).isoformat()[-6:]  # -05:00 or -04:00
    assert got == [
        (f"P-{ids['cash']}", f"09:00:00{z}", "Cash", "received", "45.00", ""),
        (f"P-{ids['back']}", f"20:00:00{z}", "Card terminal", "refunded", "-30.00", ""),
        (f"P-{ids['due']}", f"11:00:00{z}", "Cash", "refund due", "0.00", "10.00"),
    ]
    assert {r["clinic"] for r in rows} == {"Lakeside"} and {r["currency"] for r in rows} == {"USD"}
    with db.write() as s:
        data = desk.export_payments(s, world.manager, d - timedelta(days=1), d)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    kept = next(r for r in rows if r["reference"] == f"P-{ids['kept']}")
    assert (kept["status"], kept["amount"]) == (f"kept for a fee from P-{ids['card']}", "0.00")
    # money in less money out per clinic is the clinic's net: the file adds up
    net = {c: sum(float(r["amount"]) for r in rows if r["clinic"] == c) for c in ("Lakeside",)}
    assert net == {"Lakeside": 45.0 + 45.0 - 30.0}
    assert [r["moved_at"][11:19] for r in rows if r["clinic"] == "Test Clinic"] == ["12:00:00"]


def test_a_past_days_export_says_what_was_owed_back_then_not_what_is_now(db, world, day):
    """The card refund fell due yesterday evening and was handed back today. Before, yesterday's
    export and cash-up read each refund's status as of now: the refund, made since, was neither
    owed back nor out on yesterday's, whose end owed it. Every status is now as at the end of
    the days: yesterday owed it back; today it moved out, and is owed no more."""
    d, clinic_id, ids = day
    yesterday = d - timedelta(days=1)
    with db.write() as s:
        data = desk.export_payments(s, world.manager, yesterday, yesterday, clinic_id)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    back = [r for r in rows if r["reference"] == f"P-{ids['back']}"]
    assert [(r["moved_at"][11:19], r["status"], r["amount"], r["refund_due"]) for r in back] == [
        ("18:00:00", "refund due", "0.00", "30.00")
    ]
    with db.read() as s:
        owed = {x.method: x.refunds_due for x in cashup.cash_up(s, world.staff, yesterday)}
        today = {x.method: x.refunds_due for x in cashup.cash_up(s, world.staff, d)}
    assert owed == {"Card terminal": "$30.00"}
    assert today["Card terminal"] == ""


def test_the_cash_up_reads_only_its_days_of_payments_through_an_index(db, world, day):
    """Money moved on the days is found by (status, paid_at): before, payments.paid_at had no
    index and the cash-up and export went through every paid payment ever taken."""
    d, clinic_id, _ = day
    seen = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "FROM payments JOIN patients" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        with db.read() as s:
            cashup.movements(s, d, d, clinic_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    ((statement, parameters),) = seen
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
            rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        else:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = "\n".join(str(r[-1]) for r in rows)
    assert "ix_payments_status_paid_at" in plan, plan


def _owed_on_no_visit(db, world) -> tuple[int, int]:
    """A £30 no-show fee on no visit, paid in cash, then waived: its fee and the refund due."""
    with db.write() as s:
        fee = LedgerEntry(
            patient_id=world.patient_id, kind=LedgerKind.NO_SHOW_FEE, amount_cents=3000
        )
        s.add(fee)
        s.flush()
        desk.pay_fee(s, world.staff, fee.id, method="cash", provider=DeskProvider())
        fee_id = fee.id
    with db.write() as s:
        (refund,) = desk.waive_fee(s, world.manager, fee_id, "Charged by mistake").refunds
        return fee_id, refund.id


def test_a_refund_owed_back_of_a_fee_on_no_visit_is_handed_back_from_the_cash_up(db, world):
    """A waived fee of a patient with no appointment leaves cash owed back. Before, only a
    visit's Payments panel could mark a refund handed back, so this one stayed owed on the
    cash-up for ever. The cash-up now lists it to hand back; once handed back it is the day's
    money out, audited, and a second press says who handed it back and when."""
    fee_id, refund_id = _owed_on_no_visit(db, world)
    today = local_today("Europe/London")
    with db.read() as s:
        (owed,) = cashup.owed_back(s, world.staff, today)
    assert (owed.payment_id, owed.appointment_id, owed.method, owed.amount, owed.at_desk) == (
        refund_id,
        None,
        "Cash",
        "£30.00",
        True,
    )
    assert (
        owed.patient == "Alex Morgan" and owed.note == f"Fee #{fee_id} waived: Charged by mistake"
    )
    with db.write() as s:
        desk.mark_refunded(s, world.staff, refund_id, "Cash handed back")
    with db.read() as s:
        assert cashup.owed_back(s, world.staff, today) == []
        (line,) = cashup.cash_up(s, world.staff, today)
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "refund_recorded")).all()
    # paid in and handed back the same day: £30 in, £30 out, nothing owed
    assert (line.method, line.money_in, line.money_out, line.refunds_due) == (
        "Cash",
        "£30.00",
        "£30.00",
        "",
    )
    assert (event.patient_id, event.details["payment_id"]) == (world.patient_id, refund_id)
    with db.read() as s:
        made = s.get(Payment, refund_id).paid_at
        when = clinic_time(s.get(Clinic, world.clinic_id), made, zone=True)
    with db.write() as s, pytest.raises(Conflict) as refused:
        desk.mark_refunded(s, world.manager, refund_id)
    assert str(refused.value) == f"Refund P-{refund_id} was already handed back by Staff at {when}."


def test_a_card_refund_through_the_provider_is_not_handed_back_at_the_desk(db, world):
    """A refund to the card through the provider is the refund job's to send. Before, it could
    be marked handed back at the desk: the books said it was made and the job never sent it.
    Once the provider refused it, the desk may hand the money back instead (as before)."""
    with db.write() as s:
        visit = _visit(s, world, world.clinic_id)
        paid = _pay(s, world, visit, "prepayment", "stripe", "paid", 4500, utcnow(), utcnow())
        more = {"refund_of_id": paid, "currency": "GBP"}
        due = _pay(s, world, visit, "refund", "stripe", "refund_due", 4500, utcnow(), **more)
    with db.write() as s, pytest.raises(ValidationError, match="the refund job sends it"):
        desk.mark_refunded(s, world.staff, due)
    today = local_today("Europe/London")
    with db.write() as s:
        (owed,) = cashup.owed_back(s, world.staff, today)
        assert (owed.payment_id, owed.method, owed.at_desk) == (due, "Card online", False)
        s.get(Payment, due).last_error = "card_declined"
    with db.write() as s:
        assert [o.at_desk for o in cashup.owed_back(s, world.staff, today)] == [True]
        desk.mark_refunded(s, world.staff, due, "Cash instead")
    with db.read() as s:
        assert s.get(Payment, due).status == "refunded"


def test_two_desks_handing_back_one_refund_at_once_record_it_once(db, world):
    """Before, the refund was read unlocked: on PostgreSQL both presses found it due and both
    were recorded (two audit events, the first desk's name overwritten). Now one is recorded;
    the other is told who handed it back and when."""
    import threading

    _, refund_id = _owed_on_no_visit(db, world)
    barrier, outcomes = threading.Barrier(2), []

    def press(who):
        barrier.wait()
        try:
            with db.write() as s:
                desk.mark_refunded(s, who, refund_id)
            outcomes.append("recorded")
        except Conflict as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=press, args=(a,)) for a in (world.staff, world.manager)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[1] == "recorded", outcomes
    assert "already handed back by" in sorted(outcomes)[0]
    with db.read() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "refund_recorded"))
        assert len(events.all()) == 1


def test_days_across_the_clocks_changing_hold_their_own_hours_and_refunds(db, world):
    """London's 25-hour day (26 October 2025) and 23-hour day (29 March 2026): each day's money
    is what was paid from its local midnight to the next, on either side of the change; a refund
    owed at the end of one day and handed back the next is owed on the first and out on the
    second; a range across both changes adds up to the rows it lists."""
    moments = [
        (2025, 10, 25, 22, 59),  # 23:59 BST on the 25th
        (2025, 10, 25, 23, 0),  # midnight BST: the 26th begins
        (2025, 10, 26, 0, 30),  # 01:30 BST, the first time
        (2025, 10, 26, 1, 30),  # 01:30 GMT, the second time
        (2025, 10, 26, 23, 59),  # 23:59 GMT on the 26th
        (2025, 10, 27, 0, 0),  # midnight GMT: the 27th
        (2026, 3, 29, 0, 30),  # 00:30 GMT on the 29th
        (2026, 3, 29, 22, 59),  # 23:59 BST on the 29th
        (2026, 3, 29, 23, 0),  # midnight BST: the 30th
    ]
    at = [dt.datetime(*m, tzinfo=dt.UTC) for m in moments]
    with db.write() as s:
        visit = _visit(s, world, world.clinic_id)
        paid = [
            _pay(s, world, visit, "prepayment", "cash", "paid", 100 * (i + 1), t, t, currency="GBP")
            for i, t in enumerate(at)
        ]
        _pay(
            s,
            world,
            visit,
            "refund",
            "cash",
            "refunded",
            50,
            at[2],
            at[5],
            currency="GBP",
            refund_of_id=paid[2],
        )
    with db.read() as s:

        def day(*when, last=None):
            (line,) = cashup.cash_up(s, world.owner, dt.date(*when), last and dt.date(*last))
            return line.in_cents, line.out_cents, line.due_cents

        assert day(2025, 10, 26) == (200 + 300 + 400 + 500, 0, 50)
        assert day(2025, 10, 27) == (600, 50, 0)
        assert day(2026, 3, 29) == (700 + 800, 0, 0)
        assert day(2025, 10, 1, last=(2026, 3, 29)) == (sum(range(100, 900, 100)), 50, 0)
        rows = cashup.movements(s, dt.date(2025, 10, 1), dt.date(2026, 3, 29))
        assert sum(m.cents for m in rows) == sum(range(100, 900, 100)) - 50


def test_a_card_refund_due_while_card_payments_are_off_is_handed_back_with_a_reason(db, world):
    """Stripe switched off with a card refund due: the refund job does not run, and before, the
    desk could not mark it handed back either (only a refused one): it was owed for ever. With
    the provider off it is listed to hand back at the desk, saying why, and is recorded only
    with how it was handed back (kept with it, in the audit log)."""
    with db.write() as s:
        visit = _visit(s, world, world.clinic_id)
        paid = _pay(s, world, visit, "prepayment", "stripe", "paid", 4500, utcnow(), utcnow())
        more = {"refund_of_id": paid, "currency": "GBP"}
        due = _pay(s, world, visit, "refund", "stripe", "refund_due", 4500, utcnow(), **more)
    today = local_today("Europe/London")
    with db.read() as s:
        (owed,) = cashup.owed_back(s, world.staff, today, provider_online=False)
        assert (owed.payment_id, owed.at_desk, owed.why) == (
            due,
            True,
            "card payments are switched off, so the refund job cannot send it to the card",
        )
        (online,) = cashup.owed_back(s, world.staff, today)
        assert (online.at_desk, online.why) == (False, "")
    with db.write() as s, pytest.raises(ValidationError) as refused:
        desk.mark_refunded(s, world.staff, due, "  ", provider_online=False)
    assert str(refused.value) == (
        f"Say how refund P-{due} was handed back (cash, the card terminal): card payments are "
        "switched off, so it is kept with the refund for when they are on again."
    )
    with db.write() as s:
        desk.mark_refunded(s, world.staff, due, "Cash from the till", provider_online=False)
    with db.read() as s:
        made = s.get(Payment, due)
        assert (made.status, made.note, made.recorded_by_user_id) == (
            "refunded",
            "Cash from the till",
            world.staff.user_id,
        )
        said = s.scalars(select(AuditEvent).where(AuditEvent.action == "refund_recorded")).one()
        assert said.details["reason"] == "Cash from the till"
        assert said.details["why_at_desk"] == "card payments off"
