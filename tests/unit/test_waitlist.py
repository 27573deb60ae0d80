"""The waitlist: slot openings queued by transitions, matching and ranking, offers under the
practice's rules (mode, hold, quiet hours, minimum notice), accepting through the life cycle,
the others told, expiry, by-hand offers, refill figures, and the accept race.

Re-run on PostgreSQL by tests/integration/test_waitlist_pg.py."""

from __future__ import annotations

import contextlib
import re
import smtplib
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from core.kernel.authz import patient_actor
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import Conflict, LinkInvalid, PermissionDenied, ValidationError
from core.kernel.money import clinic_time, clinic_time_range, format_clock, format_day
from core.messaging import delivery
from core.requests import changes, decisions
from core.scheduling import moves, schedules
from core.waitlist import entries, offers
from core.waitlist.rules import Mode, Ranking, Rules, get_rules, set_rules
from db.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    Notification,
    OfferStatus,
    OpeningStatus,
    Package,
    PackageService,
    Patient,
    Provider,
    ProviderService,
    Service,
    Setting,
    SlotOpening,
    TimeOfDay,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from db.types import utcnow
from tests.factories import make_patient
from tests.support.locks import wait_until_a_writer_waits

TZ = "Europe/London"
BASE = "http://clinic.test"
NEVER_QUIET = dict(quiet_start=time(0), quiet_end=time(0))


def future_day(days: int = 3) -> date:
    return to_local(utcnow(), TZ).date() + timedelta(days=days)


def at(day: date, hour: int, minute: int = 0):
    return local_to_utc(day, time(hour, minute), TZ)


def rules(db, world, **changes) -> None:
    with db.write() as session:
        set_rules(session, world.owner, Rules(**(NEVER_QUIET | changes)))


def booked(db, world, day, hour=10) -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=at(day, hour),
            ),
        ).id


def waiting(db, world, day, *, name="Sam", latest=None, windows=(), provider=True) -> int:
    with db.write() as session:
        patient = make_patient(session, first_name=name, email=f"{name.lower()}@example.org")
        return entries.add_entry(
            session,
            world.staff,
            entries.Wish(
                patient_id=patient.id,
                clinic_id=world.clinic_id,
                service_id=world.service_id,
                provider_id=world.provider_id if provider else None,
                earliest=day - timedelta(days=1),
                latest=latest or day + timedelta(days=7),
                weekdays=tuple(range(7)),
                windows=windows,
                note="Any morning *please*",
            ),
        ).id


def cancel(db, world, appointment_id) -> None:
    with db.write() as session:
        moves.cancel_appointment(session, world.staff, appointment_id, reason="Feeling better")


def process(db, **kw) -> None:
    with db.write() as session:
        offers.process_openings(session, base_url=BASE, **kw)


def offer_links(db, template="waitlist_offer") -> dict[str, str]:
    """The accept links sent so far, by recipient address (read from the outbox)."""
    with db.read() as session:
        rows = session.scalars(
            select(Notification).where(
                Notification.template == template, Notification.channel == "email"
            )
        ).all()
        return {
            n.to_address: re.search(r"t=([\w-]+)", n.body).group(1) for n in rows if "t=" in n.body
        }


def sent_to(db, template) -> list[str]:
    with db.read() as session:
        return sorted(
            session.scalars(
                select(Notification.to_address).where(
                    Notification.template == template, Notification.channel == "email"
                )
            )
        )


def accept(db, token):
    with db.write() as session:
        return offers.accept_offer(session, token).id


class _Refusing:
    """An email transport that delivers, except to `busy` addresses (a 451, retried later)."""

    def __init__(self, *busy: str) -> None:
        self.busy, self.sent = set(busy), []

    def send(self, notification: Notification) -> None:
        if notification.to_address in self.busy:
            raise smtplib.SMTPDataError(451, b"Try again later")
        self.sent.append(notification.to_address)


def deliver(db, *busy: str) -> None:
    """A sender's round: the messages due go out, by email except to `busy` addresses."""
    sms = delivery.LoggingSmsTransport()
    delivery.send_due(db.write, {Channel.EMAIL: _Refusing(*busy), Channel.SMS: sms})


# ---------------------------------------------------------------- openings


def test_a_cancellation_queues_the_freed_slot_in_the_same_transaction(db, world):
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    with db.read() as session:
        [opening] = session.scalars(select(SlotOpening)).all()
        assert (opening.reason, opening.status) == ("cancelled", OpeningStatus.PENDING)
        assert (opening.start_at, opening.appointment_id) == (at(day, 10), appointment_id)


def test_a_move_frees_the_old_time_and_a_declined_proposal_its_proposed_time(db, world):
    day = future_day()
    appointment_id = booked(db, world, day)
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=at(day, 14))
    with db.write() as session:
        request = decisions.request_appointment(
            session,
            world.manager,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day="morning",
        )
        decisions.propose_time(
            session, world.manager, request.id, provider_id=world.provider_id, start_at=at(day, 11)
        )
        decisions.respond_to_proposal(session, world.manager, request.id, accept=False)
    with db.read() as session:
        rows = session.execute(select(SlotOpening.reason, SlotOpening.start_at)).all()
    assert sorted(rows) == [("declined", at(day, 11)), ("moved", at(day, 10))]


def test_added_hours_and_removed_time_off_open_time(db, world):
    day = future_day(2)
    with db.write() as session:
        off = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=at(day, 9),
            ends_at=at(day, 12),
        )
    with db.write() as session:
        schedules.remove_time_off(session, world.manager, off.id)
    with db.write() as session:
        hours = schedules.get_hours(session, world.manager, world.provider_id, world.clinic_id)
        hours.append(schedules.HoursRow(day.weekday(), time(17), time(19)))
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=hours,
        )
    with db.read() as session:
        rows = session.execute(select(SlotOpening.reason, SlotOpening.start_at)).all()
    assert ("time_off", at(day, 9)) in rows
    assert ("hours", at(day, 17)) in rows
    assert {r for r, _ in rows} == {"time_off", "hours"}


# ---------------------------------------------------------------- offers


def test_one_at_a_time_offers_the_longest_waiting_then_the_next_after_the_hold(db, world):
    rules(db, world, hold_minutes=30)
    day = future_day()
    appointment_id = booked(db, world, day)
    first, second = waiting(db, world, day, name="Ann"), waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.write() as session:
        assert offers.expire_offers(session, base_url=BASE, now=utcnow() + timedelta(minutes=31))
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]
    with pytest.raises(Conflict, match="This offer has expired"):  # lapsed with her hold
        accept(db, offer_links(db)["ann@example.org"])
    appointment = accept(db, offer_links(db)["ben@example.org"])
    with db.read() as session:
        row = session.get(Appointment, appointment)
        assert (row.status, row.start_at) == (AppointmentStatus.SCHEDULED, at(day, 10))
        assert session.get(WaitlistEntry, second).status == WaitlistStatus.BOOKED
        assert session.get(WaitlistEntry, first).status == WaitlistStatus.WAITING
        opening = session.scalar(select(SlotOpening))
        assert (opening.status, opening.filled_appointment_id) == (OpeningStatus.FILLED, row.id)
    assert "ben@example.org" in sent_to(db, "appointment_scheduled")


def test_first_to_accept_wins_and_the_others_are_told(db, world):
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    day = future_day()
    appointment_id = booked(db, world, day)
    for name in ("Ann", "Ben"):
        waiting(db, world, day, name=name)
    cancel(db, world, appointment_id)
    process(db)
    links = offer_links(db)
    assert sorted(links) == ["ann@example.org", "ben@example.org"]
    deliver(db)
    accept(db, links["ben@example.org"])
    assert sent_to(db, "waitlist_taken") == ["ann@example.org"]
    with pytest.raises(Conflict, match="just been taken"):  # revoked when Ben took the slot
        accept(db, links["ann@example.org"])
    with db.read() as session:  # her link's page says so too, not "not valid any more"
        assert offers.offer_view(session, links["ann@example.org"]).closed == offers.TAKEN
    with db.read() as session:
        states = dict(session.execute(select(WaitlistOffer.rank, WaitlistOffer.status)).all())
    assert states == {1: OfferStatus.TAKEN, 2: OfferStatus.ACCEPTED}


def test_a_time_held_for_one_patient_stays_theirs_alone_when_the_practice_moves_to_first_come(
    db, world
):
    """Ann is offered the time one at a time ("held for you alone"); the practice then moves
    to several at once. Before, the jobs loop's next round sent it to Ben and Cy too while her
    hold ran, and her link's page worded it in the new mode; now nobody else is offered it
    until she answers, and her offer keeps its words. Her pass sends it on in the new mode."""
    rules(db, world)  # offered at any hour the suite runs
    day = future_day()
    appointment_id = booked(db, world, day)
    for name in ("Ann", "Ben", "Cy"):
        waiting(db, world, day, name=name)
    cancel(db, world, appointment_id)
    process(db)
    ann = offer_links(db)["ann@example.org"]
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        view = offers.offer_view(session, ann)
    assert (view.closed, view.terms) == (None, offers.TERMS[Mode.ONE_AT_A_TIME])
    with db.write() as session:
        offers.decline_offer(session, ann, base_url=BASE)
    links = offer_links(db)
    assert sorted(links) == ["ann@example.org", "ben@example.org", "cy@example.org"]
    with db.read() as session:
        ben = offers.offer_view(session, links["ben@example.org"])
        modes = dict(session.execute(select(WaitlistOffer.rank, WaitlistOffer.mode)).all())
    assert ben.terms == offers.TERMS[Mode.FIRST_TO_ACCEPT]
    assert modes == {1: Mode.ONE_AT_A_TIME, 2: Mode.FIRST_TO_ACCEPT, 3: Mode.FIRST_TO_ACCEPT}


def test_offers_sent_before_migration_0026_take_the_mode_their_message_named(db, world):
    """0026 stores the mode an offer went out in. Offers sent before take the mode their
    message's terms named; with no message, first to accept when another offer of the time was
    out beside them (not one answered before it went out), else the practice's mode now; a
    queued offer has none. Down to 0025 and up again."""
    import sqlalchemy as sa
    from alembic import command

    from db import migrate

    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=2)
    day = future_day()
    ten, two = booked(db, world, day), booked(db, world, day, hour=14)
    for name in ("Ann", "Ben", "Cy"):
        waiting(db, world, day, name=name)
    cancel(db, world, ten)
    process(db)  # 10:00: Ann and Ben offered at once, Cy in line
    rules(db, world, mode=Mode.ONE_AT_A_TIME)
    cancel(db, world, two)
    process(db)  # 14:00: held for Ann alone
    with db.write() as session:
        session.execute(  # her hold lapses: Ben is offered 14:00 alone
            sa.update(WaitlistOffer)
            .where(WaitlistOffer.status == OfferStatus.SENT, WaitlistOffer.rank == 1)
            .where(WaitlistOffer.opening_id == select(func.max(SlotOpening.id)).scalar_subquery())
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE)
    with db.write() as session:
        rows = session.execute(
            select(WaitlistOffer.opening_id, WaitlistOffer.rank, WaitlistOffer.id)
        ).all()
        ids = {(opening, rank): offer for opening, rank, offer in rows}
        first, second = sorted({opening for opening, _ in ids})
        unsaid = [ids[first, 2], ids[second, 2]]  # Ben's messages lost (the outbox purged)
        session.execute(sa.delete(Notification).where(Notification.waitlist_offer_id.in_(unsaid)))
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0025")
    with db.engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("waitlist_offers")}
        assert "mode" not in columns
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT)  # the practice's mode when it upgrades
    migrate.upgrade(db.engine)
    with db.read() as session:
        modes = select(WaitlistOffer.opening_id, WaitlistOffer.rank, WaitlistOffer.mode)
        got = {(opening, rank): mode for opening, rank, mode in session.execute(modes)}
    assert got == {
        (first, 1): Mode.FIRST_TO_ACCEPT,  # Ann's message said so
        (first, 2): Mode.FIRST_TO_ACCEPT,  # no message; Ann's offer of the time was out beside
        (first, 3): None,  # Cy's, queued, never sent
        (second, 1): Mode.ONE_AT_A_TIME,  # Ann's message said so, whatever the mode now
        (second, 2): Mode.FIRST_TO_ACCEPT,  # no message, alone: the practice's mode now
        (second, 3): None,
    }
    with db.engine.begin() as connection, pytest.raises(sa.exc.IntegrityError):
        connection.execute(sa.text("UPDATE waitlist_offers SET mode = 'nonsense'"))


def _taken_and_offers(db) -> tuple[list[tuple[str, str]], dict[tuple[str, str], str]]:
    with db.read() as session:
        taken = session.execute(
            select(Notification.to_address, Notification.channel)
            .where(Notification.template == "waitlist_taken")
            .order_by(Notification.id)
        ).all()
        offered = session.execute(
            select(Notification.to_address, Notification.channel, Notification.last_error).where(
                Notification.template == "waitlist_offer"
            )
        ).all()
    return (
        [(a, c.value) for a, c in taken],
        {(a, c.value): e or "" for a, c, e in offered},
    )


def test_only_a_patient_the_offer_reached_is_told_it_was_taken_and_only_where(db, world):
    """Ben takes the time while the mail server still refuses Ann's offer email (her text went
    out) and Cy's (he takes no texts). Before, Ann and Cy were both told by email, and Ann by
    text too, that a time they were never emailed was taken; Cy heard of a time nobody offered
    him. Now the waiting offer emails are stopped, saying why; Ann hears it was taken by text
    only, where the offer reached her, and Cy hears nothing."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    day = future_day()
    appointment_id = booked(db, world, day)
    for name in ("Ann", "Ben", "Cy"):
        waiting(db, world, day, name=name)
    with db.write() as session:
        cy = session.scalar(select(Patient).where(Patient.first_name == "Cy"))
        cy.consent_sms = False
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["ben@example.org"]
    deliver(db, "ann@example.org", "cy@example.org")
    accept(db, link)
    taken, offered = _taken_and_offers(db)
    assert taken == [("07700 900123", "sms")]
    stopped = offers.NOT_SENT_TAKEN
    assert offered[("ann@example.org", "email")] == stopped
    assert offered[("cy@example.org", "email")] == stopped
    assert offered[("ben@example.org", "email")] == ""
    back = _Refusing()  # the mail server is back: neither stopped offer goes out
    delivery.send_due(db.write, {Channel.EMAIL: back, Channel.SMS: delivery.LoggingSmsTransport()})
    assert back.sent == ["ben@example.org"]  # his booking's confirmation


def _offer_emails(db) -> dict[int, tuple[str, str]]:
    """Each offer's email: its accept link and its error (why it is not sent), by offer id."""
    with db.read() as session:
        rows = session.execute(
            select(Notification.waitlist_offer_id, Notification.body, Notification.last_error)
            .where(Notification.template == "waitlist_offer", Notification.channel == "email")
            .order_by(Notification.waitlist_offer_id)
        ).all()
    return {o: (re.search(r"t=([\w-]+)", body).group(1), error or "") for o, body, error in rows}


def test_an_offer_email_still_waiting_is_not_sent_once_its_entry_is_withdrawn(db, world):
    """The mail server refuses Ann's offer email for a while (her text went out); she leaves
    the waitlist meanwhile. Before, the email still went out when the server came back, offering
    a time its link then said no longer stood; now it is stopped, saying why."""
    rules(db, world)  # offered at any hour the suite runs
    day = future_day()
    appointment_id = booked(db, world, day)
    entry = waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    deliver(db, "ann@example.org")
    with db.write() as session:
        entries.withdraw(session, world.staff, entry)
    ((_, error),) = _offer_emails(db).values()
    assert error == entries.NOT_SENT_LEFT
    back = _Refusing()
    delivery.send_due(db.write, {Channel.EMAIL: back, Channel.SMS: delivery.LoggingSmsTransport()})
    assert back.sent == []


def test_an_offer_email_still_waiting_is_not_sent_once_its_patient_books_another_offer(db, world):
    """Ann is offered 10:00 and 14:00 (one entry, two freed times) while the mail server
    refuses her emails; she books 10:00 by the link in her text. Before, the 14:00 offer email
    still went out when the server came back; now it is stopped, saying why."""
    rules(db, world)  # offered at any hour the suite runs
    day = future_day()
    ten, two = booked(db, world, day), booked(db, world, day, hour=14)
    waiting(db, world, day, name="Ann")
    cancel(db, world, ten)
    cancel(db, world, two)
    process(db)
    deliver(db, "ann@example.org")
    (first, (link, _)), (second, _) = sorted(_offer_emails(db).items())
    accept(db, link)
    assert _offer_emails(db)[second][1] == offers.NOT_SENT_BOOKED
    back = _Refusing()
    delivery.send_due(db.write, {Channel.EMAIL: back, Channel.SMS: delivery.LoggingSmsTransport()})
    with db.read() as session:
        sent = session.scalars(
            select(Notification.template).where(
                Notification.to_address == "ann@example.org", Notification.status == "sent"
            )
        ).all()
    assert "waitlist_offer" not in sent and "appointment_scheduled" in sent


def test_a_link_whose_offer_closed_says_what_became_of_it_and_nothing_else(db, world):
    rules(db, world, hold_minutes=30)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["ann@example.org"]
    later = utcnow() + timedelta(minutes=31)
    with db.read() as session:  # the hold has passed, the jobs loop has not run yet
        view = offers.offer_view(session, link, now=later)
        assert (view.closed, view.status) == (offers.EXPIRED, "sent")
        assert offers.offer_view(session, link).closed is None  # still open now
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE, now=later)
    with db.read() as session:
        assert offers.offer_view(session, link).closed == offers.EXPIRED
    with pytest.raises(Conflict, match="has expired"):
        accept(db, link)
    with db.write() as session, pytest.raises(Conflict, match="has expired"):
        offers.decline_offer(session, link, base_url=BASE)
    for wrong in ("", link[:-1] + ("A" if link[-1] != "A" else "B"), "x" * 200):
        with db.read() as session, pytest.raises(LinkInvalid):
            offers.offer_view(session, wrong)


@pytest.mark.parametrize(
    ("mode", "says", "not_said"),
    [
        (Mode.ONE_AT_A_TIME, "holding this time for you alone", "first to accept"),
        (Mode.FIRST_TO_ACCEPT, "the first to accept gets it", "for you alone"),
    ],
)
def test_the_offer_message_says_whether_the_time_is_held_or_first_come(
    db, world, mode, says, not_said
):
    rules(db, world, mode=mode)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    with db.read() as session:
        bodies = dict(
            session.execute(
                select(Notification.channel, Notification.body).where(
                    Notification.template == "waitlist_offer"
                )
            ).all()
        )
    assert set(bodies) >= {"email", "sms"}  # the text message says the same
    for body in bodies.values():
        assert says in body and not_said not in body


def test_the_offer_says_a_deadline_on_the_day_it_is_sent_by_its_clock_time_alone(db, world):
    """A hold of half an hour ends the day it is sent: the offer's text says "Accept by 14:30"
    (the email "before 14:30"), not the day, year and zone again after the visit's, which kept
    a Greek or Polish name's text in four UCS-2 parts under a real clinic's address. A deadline
    on a later day (sent just before midnight) keeps its day."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    with db.read() as session:
        offer = session.scalars(select(WaitlistOffer)).one()
        clinic = session.get(Clinic, world.clinic_id)
        bodies = session.scalars(
            select(Notification.body).where(Notification.template == "waitlist_offer")
        ).all()
    deadline, full = (
        to_local(offer.expires_at, clinic.timezone),
        clinic_time(clinic, offer.expires_at, zone=True),
    )
    today = deadline.date() == to_local(offer.sent_at, clinic.timezone).date()
    assert len(bodies) == 2
    for body in bodies:
        if today:
            assert f"{format_clock(deadline, clinic.locale)}:" in body and full not in body
        else:
            assert full in body


def test_soonest_need_ranks_by_the_end_of_the_date_range(db, world):
    rules(db, world, ranking=Ranking.SOONEST_NEED)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann", latest=day + timedelta(days=20))
    waiting(db, world, day, name="Ben", latest=day + timedelta(days=1))
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ben@example.org"]


def test_time_of_day_windows_and_service_length_are_respected(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day, hour=10)
    waiting(db, world, day, name="Eve", windows=("afternoon",))
    waiting(db, world, day, name="Mo", windows=("morning",))
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["mo@example.org"]


def test_nothing_is_sent_in_quiet_hours_or_closer_than_the_minimum_notice(db, world):
    # quiet from an hour before now to an hour after (a fixed 00:00–23:59 left the minute
    # 23:59 loud, and a run in that minute sent the offer)
    local = to_local(utcnow(), TZ)
    quiet = Rules(
        quiet_start=(local - timedelta(hours=1)).time(),
        quiet_end=(local + timedelta(hours=1)).time(),
    )
    with db.write() as session:
        set_rules(session, world.owner, quiet)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == []
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.PENDING
    rules(db, world, min_notice_minutes=7 * 24 * 60)  # quiet hours over, but too close now
    process(db)
    assert sent_to(db, "waitlist_offer") == []
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.CLOSED


def test_a_slot_booked_meanwhile_withdraws_the_queued_offers(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    booked(db, world, day)  # the desk books the time by phone
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE, now=utcnow() + timedelta(hours=1))
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.UNFILLED
        statuses = sorted(session.scalars(select(WaitlistOffer.status)))
    assert statuses == sorted([OfferStatus.EXPIRED, OfferStatus.WITHDRAWN])
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]


def test_declining_passes_the_slot_on(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    with db.write() as session:
        offers.decline_offer(session, offer_links(db)["ann@example.org"], base_url=BASE)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]


def test_a_manager_offers_a_cancelled_slot_by_hand_staff_may_not(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    with db.write() as session, pytest.raises(ValidationError, match="No waitlisted patient"):
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    waiting(db, world, day, name="Ann")
    with db.write() as session, pytest.raises(PermissionDenied):
        offers.offer_freed(session, world.staff, appointment_id, base_url=BASE)
    with db.write() as session:
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        [row] = [r for r in offers.list_offers(session, world.manager, clinic_id=world.clinic_id)]
    # the cancellation's own opening, matched to nobody at first, offered by hand (counted once)
    assert (row.patient, row.status, row.reason) == ("Ann Morgan", "sent", "cancelled")


def test_a_time_already_offered_is_not_offered_again_by_hand(db, world):
    """The jobs loop offered the freed time; a manager's Offer from the cancellation made a
    second opening and sent the same patients a second offer. Now it is refused."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.write() as session, pytest.raises(Conflict, match="already offered to the waitlist"):
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(SlotOpening)) == 1


def test_offering_a_time_the_cancellation_queued_offers_that_opening_now(db, world):
    """A manager's Offer right after the cancellation, before the jobs loop's round: the queued
    opening is offered now and once (before: a second opening, and two offers to each)."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    with db.write() as session:
        done = offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert done.matched == 1
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        [opening] = session.scalars(select(SlotOpening)).all()
    assert (opening.reason, opening.by_hand) == ("cancelled", True)  # the freed slot's refill


def test_offering_a_time_no_longer_free_says_so(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    process(db)  # nobody waits: the opening is left unfilled
    booked(db, world, day)  # the time is booked again at the desk
    waiting(db, world, day, name="Ann")
    with db.write() as session, pytest.raises(ValidationError, match="no longer free"):
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)


def quiet_now(db, world) -> None:
    """Quiet from an hour before now to an hour after (clinic time)."""
    local = to_local(utcnow(), TZ)
    quiet = Rules(
        quiet_start=(local - timedelta(hours=1)).time(),
        quiet_end=(local + timedelta(hours=1)).time(),
    )
    with db.write() as session:
        set_rules(session, world.owner, quiet)


def statuses(db) -> dict[str, OfferStatus]:
    with db.read() as session:
        rows = session.execute(
            select(WaitlistOffer.opening_id, WaitlistOffer.rank, WaitlistOffer.status)
        ).all()
    return {f"{opening}/{rank}": status for opening, rank, status in rows}


def test_an_offer_by_hand_in_quiet_hours_is_sent_when_they_end_and_the_manager_is_told(db, world):
    quiet_now(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    with db.write() as session:
        done = offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert (done.matched, done.sent) == (2, 0)
    assert done.message().startswith("Quiet hours: the offer to 2 matching patients will be sent")
    assert sent_to(db, "waitlist_offer") == []
    process(db)  # still quiet: nothing goes, nothing is closed
    assert sent_to(db, "waitlist_offer") == []
    rules(db, world)  # quiet hours over
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        by_hand = session.scalar(select(SlotOpening).where(SlotOpening.by_hand.is_(True)))
        assert by_hand.status == OpeningStatus.OFFERING
        mine = session.scalars(
            select(WaitlistOffer.status).where(WaitlistOffer.opening_id == by_hand.id)
        )
        assert sorted(mine) == [OfferStatus.QUEUED, OfferStatus.SENT]
    with db.write() as session:  # out of quiet hours the manager is told who got it
        done = offer_by_hand(session, world, at(day, 15), at(day, 16))
    assert (
        done.message()
        == "Offer sent to 1 patient; 1 more in line after them (see the Waitlist page)."
    )


def offer_by_hand(session, world, start, end):
    """The manager offers the world's provider's time `start`..`end` by hand."""
    return offers.offer_slot(
        session,
        world.manager,
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        start_at=start,
        end_at=end,
        base_url=BASE,
    )


def _hours_added(db, world, day, start: int, end: int) -> None:
    with db.write() as session:
        hours = schedules.get_hours(session, world.manager, world.provider_id, world.clinic_id)
        hours.append(schedules.HoursRow(day.weekday(), time(start), time(end)))
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=hours,
        )


def test_offering_by_hand_a_time_whose_offer_waits_for_quiet_hours_says_so(db, world):
    """A manager's walk in quiet hours: the time added to the provider's hours (18:00-20:00)
    was offered by hand, Ann's offer queued until they end; a visit in it cancelled and
    offered by hand then read 'No waitlisted patient matches this slot', though an offer for
    that time waited. The desk is told it is queued, for what time, and when it goes."""
    quiet_now(db, world)
    day = future_day()
    _hours_added(db, world, day, 18, 20)
    waiting(db, world, day, name="Ann", latest=day)  # not the next weeks' added hours
    with db.write() as session:
        first = offer_by_hand(session, world, at(day, 18), at(day, 20))
    assert (first.matched, first.sent) == (1, 0)
    appointment_id = booked(db, world, day, 19)
    cancel(db, world, appointment_id)
    with db.write() as session:
        done = offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
        clinic = session.get(Clinic, world.clinic_id)
        span = clinic_time_range(clinic, at(day, 18), at(day, 20))
        end = format_clock(get_rules(session).quiet_end, clinic.locale)
    assert (done.matched, done.sent, done.quiet_end) == (1, 0, end)
    assert done.message() == (
        f"Quiet hours: an offer for this time ({span}, hours added) is already queued for 1 "
        f"patient and will be sent at {end}, when quiet hours end; nothing more was queued "
        "(see the Waitlist page)."
    )
    assert sent_to(db, "waitlist_offer") == []
    rules(db, world)  # quiet hours over
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]


def test_offering_by_hand_a_time_whose_queued_offer_quiet_hours_held_sends_it(db, world):
    """Quiet hours over, before the jobs loop's round: offering by hand the time whose offer
    they held sent it, then refused with 'No waitlisted patient matches this slot' (no new
    match), which rolled the sending back. Now it is sent and the desk told so."""
    quiet_now(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    waiting(db, world, day, name="Ann")
    with db.write() as session:
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    rules(db, world)  # quiet hours over
    with db.write() as session:
        done = offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert (done.matched, done.sent) == (1, 1)
    assert done.message() == "Offer sent to 1 patient (see the Waitlist page)."
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]


def test_a_patient_offered_one_time_is_offered_another_too(db, world):
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    day = future_day()
    early, late = booked(db, world, day, 10), booked(db, world, day, 14)
    for name in ("Ann", "Ben", "Cy"):
        waiting(db, world, day, name=name)
    cancel(db, world, early)
    process(db)  # each patient holds an offer for 10:00 ...
    cancel(db, world, late)
    process(db)  # ... and is offered 14:00 as well
    with db.read() as session:
        counts = dict(
            session.execute(
                select(WaitlistOffer.opening_id, func.count()).group_by(WaitlistOffer.opening_id)
            ).all()
        )
        assert sorted(session.scalars(select(SlotOpening.status))) == [OpeningStatus.OFFERING] * 2
    assert list(counts.values()) == [3, 3]
    with db.read() as session:
        first = session.scalars(select(WaitlistOffer).order_by(WaitlistOffer.id)).first()
        ann_entry, early_opening = first.entry_id, first.opening_id  # Ann's offer of 10:00
    accept(db, offer_links(db)["ann@example.org"])  # her latest link: 14:00
    with db.read() as session:
        mine = {
            o.opening_id: o.status
            for o in session.scalars(
                select(WaitlistOffer).where(WaitlistOffer.entry_id == ann_entry)
            )
        }
    assert sorted(mine.items()) == [
        (early_opening, OfferStatus.WITHDRAWN),  # booked at 14:00: her 10:00 offer is withdrawn
        (early_opening + 1, OfferStatus.ACCEPTED),
    ]


def test_an_unfilled_time_is_offered_to_a_patient_who_joins_later(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    process(db)
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.UNFILLED
    waiting(db, world, day, name="Ann")
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.OFFERING


def test_a_lapsed_hold_goes_to_patients_who_joined_meanwhile(db, world):
    rules(db, world, hold_minutes=30)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    waiting(db, world, day, name="Ben")
    waiting(db, world, day, name="Cy")
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE, now=utcnow() + timedelta(minutes=31))
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.OFFERING


def test_an_unfilled_time_within_the_minimum_notice_is_not_offered_again(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    process(db)
    waiting(db, world, day, name="Ann")
    process(db, now=at(day, 9))  # an hour before: inside the two hours' notice
    assert sent_to(db, "waitlist_offer") == []
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.UNFILLED


def test_refill_figures_count_filled_freed_slots(db, world):
    rules(db, world)
    day = future_day()
    first, second = booked(db, world, day, 10), booked(db, world, day, 14)
    waiting(db, world, day, name="Ann", windows=("morning",))
    cancel(db, world, first)
    cancel(db, world, second)
    process(db)
    accept(db, offer_links(db)["ann@example.org"])
    with db.read() as session:
        figures = offers.refill_figures(
            session,
            world.manager,
            clinic_id=world.clinic_id,
            first=future_day(-1),
            last=future_day(1),
        )
    assert (figures.opened, figures.filled, figures.refill_rate) == (2, 1, 0.5)
    assert figures.offered == 1  # 14:00 matched nobody (Ann waits for mornings): not offered
    assert figures.median_minutes_to_fill is not None


def test_the_median_time_to_fill_of_an_even_number_is_the_mean_of_the_middle_two(db, world):
    """Fills after 10 and 30 minutes: a median of 20 (before: 30, the upper of the two)."""
    with db.write() as session:
        freed = local_to_utc(date(2027, 1, 5), time(9), TZ)
        for minutes in (10, 30):
            session.add(
                SlotOpening(
                    clinic_id=world.clinic_id,
                    provider_id=world.provider_id,
                    start_at=freed + timedelta(days=1),
                    end_at=freed + timedelta(days=1, minutes=30),
                    reason="cancelled",
                    status=OpeningStatus.FILLED,
                    created_at=freed,
                    filled_at=freed + timedelta(minutes=minutes),
                )
            )
    with db.read() as session:
        figures = offers.refill_figures(
            session,
            world.owner,
            clinic_id=world.clinic_id,
            first=date(2027, 1, 5),
            last=date(2027, 1, 5),
        )
    assert (figures.filled, figures.median_minutes_to_fill) == (2, 20)


def test_refill_figures_count_each_clinics_freed_slots_on_its_own_days(db, world):
    """A slot freed (and refilled) in New York at 23:30 on 5 Jan (04:30 on 6 Jan in UTC and
    London) is one of 5 Jan's, for New York and for all clinics alike; one freed there at 20:30
    on 4 Jan (01:30 on 5 Jan in London) is not. The provider filter keeps only that
    provider's."""
    ny_zone = "America/New_York"
    with db.write() as session:
        ny = Clinic(name="New York", timezone=ny_zone, locale="en-US", currency="USD")
        session.add(ny)
        session.flush()
        ny_id = ny.id

        def freed(clinic_id, tz, day, clock, provider_id=world.provider_id, **more):
            moment = local_to_utc(day, clock, tz)
            session.add(
                SlotOpening(
                    clinic_id=clinic_id,
                    provider_id=provider_id,
                    start_at=moment + timedelta(days=2),
                    end_at=moment + timedelta(days=2, minutes=30),
                    reason="cancelled",
                    created_at=moment,
                    **more,
                )
            )

        day = date(2027, 1, 5)
        late = local_to_utc(day + timedelta(days=1), time(1), ny_zone)
        freed(ny_id, ny_zone, day, time(23, 30), status=OpeningStatus.FILLED, filled_at=late)
        freed(ny_id, ny_zone, day - timedelta(days=1), time(20, 30))  # 01:30 UTC on the 5th
        freed(world.clinic_id, TZ, day, time(9))
        filled = local_to_utc(day, time(10), TZ)
        freed(world.clinic_id, TZ, day, time(9), status=OpeningStatus.FILLED, filled_at=filled)
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        freed(world.clinic_id, TZ, day, time(11), provider_id=other.id)

    def figures(clinic_id, provider_id=None):
        with db.read() as session:
            found = offers.refill_figures(
                session,
                world.owner,
                clinic_id=clinic_id,
                first=day,
                last=day,
                provider_id=provider_id,
            )
        return found.opened, found.filled

    assert figures(ny_id) == (1, 1)
    assert figures(world.clinic_id) == (3, 1)
    # the sum of the clinics (before: London's day for all, (4, 1) with New York's 4 Jan)
    assert figures(None) == (4, 2)
    assert figures(None, world.provider_id) == (3, 2)
    with db.read() as session:
        london = offers.refill_figures(
            session, world.owner, clinic_id=world.clinic_id, first=day, last=day
        )
    assert london.median_minutes_to_fill == 60  # the one fill, an hour after it was freed
    with db.read() as session, pytest.raises(ValidationError, match="swap them"):
        offers.refill_figures(
            session, world.owner, clinic_id=None, first=day, last=day - timedelta(days=1)
        )


def test_a_request_that_cannot_be_placed_goes_on_the_waitlist(db, world):
    day = future_day()
    with db.write() as session:
        request = decisions.request_appointment(
            session,
            world.manager,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day="afternoon",
        )
        entry = entries.add_from_request(session, world.manager, request.id).entry
        assert request.status == AppointmentStatus.DECLINED
        assert (entry.source, entry.windows, entry.earliest) == ("request", "afternoon", day)
    with db.read() as session:
        [row] = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
    assert row.matches and row.next_match
    assert sent_to(db, "appointment_declined") == ["alex@example.org"]


def test_the_lists_times_of_day_are_the_clinics_labels_with_their_hours(db, world):
    """The table's Times of day read 'early morning, evening' where the add form, the portal
    and the messages say 'Early morning (before 9:00)': one label, in the clinic's locale (a
    New York clinic's hours on a 12-hour clock)."""
    day = future_day()
    waiting(db, world, day, name="Eve", windows=(TimeOfDay.EARLY_MORNING, TimeOfDay.EVENING))
    waiting(db, world, day, name="Any")
    with db.read() as session:
        rows = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
    assert {r.patient.split()[0]: r.windows for r in rows} == {
        "Eve": "Early morning (before 9:00), Evening (after 17:00)",
        "Any": "any time",
    }
    with db.write() as session:
        session.get(Clinic, world.clinic_id).locale = "en-US"
    with db.read() as session:
        rows = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
    assert rows[0].windows == "Early morning (before 9:00\u202fAM), Evening (after 5:00\u202fPM)"


def test_portal_join_and_duplicate_entries(db, world):
    day = future_day()
    wish = entries.Wish(
        patient_id=world.patient_id,
        clinic_id=world.clinic_id,
        service_id=world.service_id,
        earliest=day,
        latest=day + timedelta(days=5),
    )
    with db.write() as session:
        entry = entries.add_for_patient(session, wish)
        assert entry.source == "portal"
    with db.write() as session, pytest.raises(ValidationError, match="already waits"):
        entries.add_entry(session, world.staff, wish)
    with db.write() as session:
        entries.withdraw(session, world.staff, entry.id, "Found another practice")
        assert session.get(WaitlistEntry, entry.id).status == WaitlistStatus.WITHDRAWN


def test_the_same_wish_sent_twice_at_once_waits_once(db, world):
    """Two presses of Join (two tabs, two servers) at once: one entry, the other told it is
    there already (on PostgreSQL both checks ran before either insert was committed)."""
    day = future_day()
    wish = entries.Wish(
        world.patient_id, world.clinic_id, world.service_id, day, day + timedelta(days=5)
    )
    inserted = threading.Barrier(2, timeout=2)  # each waits here before committing
    results: list[str] = []

    def join():
        try:
            with db.write() as session:
                entries.add_for_patient(session, wish)
                # the other waits for this one (the barrier breaks): commit
                with contextlib.suppress(threading.BrokenBarrierError):
                    inserted.wait()
            results.append("joined")
        except ValidationError as error:
            results.append(str(error))

    threads = [threading.Thread(target=join) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [entries.ALREADY_PATIENT.format(what="service"), "joined"]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(WaitlistEntry)) == 1


def test_the_pages_matches_look_past_the_first_free_slots_of_the_fortnight(db, world):
    """An entry for one weekday's mornings: its matches on that weekday a week later count too
    (the first 200 free slots of any kind filled the first week, so they were never seen)."""
    today = future_day(0)
    wanted = today + timedelta(days=4)
    with db.write() as session:
        patient = make_patient(session, first_name="Wes", email="wes@example.org")
        entry = entries.add_entry(
            session,
            world.staff,
            entries.Wish(
                patient_id=patient.id,
                clinic_id=world.clinic_id,
                service_id=world.service_id,
                earliest=today,
                latest=today + timedelta(days=13),
                weekdays=(wanted.weekday(),),
                windows=(TimeOfDay.EARLY_MORNING, TimeOfDay.MORNING),  # before 9: no hours
            ),
        )
        found = entries.current_matches(session, entry, TZ, today, utcnow())
    days = [to_local(s.start_at, TZ).date() for s in found]
    assert len(found) == 20 and days.count(wanted) == 11  # 09:00 to 11:30, each quarter
    assert days.count(wanted + timedelta(days=7)) == 9


def test_filtering_the_waitlist_by_a_service_finds_the_packages_holding_it(db, world):
    """A package waits for each of its services: filtered by its second, it is listed and
    counted (only its first found it)."""
    package_id = _package(db, world)
    day = future_day()
    with db.write() as session:
        peel = session.scalar(select(Service.id).where(Service.name == "Peel"))
        entry_id = entries.add_entry(
            session,
            world.staff,
            entries.Wish(world.patient_id, world.clinic_id, None, day, day, package_id=package_id),
        ).id
    with db.read() as session:
        shown = {
            service_id: (
                [
                    r.id
                    for r in entries.list_entries(
                        session,
                        world.staff,
                        clinic_id=world.clinic_id,
                        service_id=service_id,
                        with_matches=False,
                    )
                ],
                entries.count_entries(
                    session, world.staff, clinic_id=world.clinic_id, service_id=service_id
                ),
            )
            for service_id in (world.service_id, peel)
        }
    assert shown == {world.service_id: ([entry_id], 1), peel: ([entry_id], 1)}


def test_an_entry_no_longer_waiting_counts_the_days_it_waited_not_the_days_since(db, world):
    """Withdrawn after two days and listed ten days later: it waited 2 days, not 12."""
    entry_id = waiting(db, world, future_day())
    with db.write() as session:
        entry = session.get(WaitlistEntry, entry_id)
        entry.created_at -= timedelta(days=2)
        entries.withdraw(session, world.staff, entry_id, "Found another practice")
    with db.read() as session:
        [row] = entries.list_entries(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            status=WaitlistStatus.WITHDRAWN,
            now=utcnow() + timedelta(days=10),
        )
    assert row.waiting_days == 2


@pytest.mark.parametrize(("locale", "letters"), [("en-GB", "M·W·F··"), ("pt-BR", "S·Q·S··")])
def test_the_weekdays_an_entry_waits_for_are_lettered_in_the_clinics_locale(
    db, world, locale, letters
):
    day = future_day()
    wish = entries.Wish(
        patient_id=world.patient_id,
        clinic_id=world.clinic_id,
        service_id=world.service_id,
        earliest=day,
        latest=day + timedelta(days=14),
        weekdays=(0, 2, 4),
    )
    with db.write() as session:
        session.get(Clinic, world.clinic_id).locale = locale
        entries.add_entry(session, world.staff, wish)
    with db.read() as session:
        [row] = entries.list_entries(
            session, world.staff, clinic_id=world.clinic_id, with_matches=False
        )
    assert row.weekdays == letters


def test_entries_beyond_one_page_are_reached_by_paging_and_counted(db, world):
    """55 waiting: the first page holds the 50 longest waiting, the second the other 5, and
    the count says 55 (the list stopped at 50, so entries 51+ could not be seen)."""
    day = future_day()
    with db.write() as session:
        for n in range(55):
            patient = make_patient(session, first_name=f"P{n:02d}", email=f"p{n}@example.org")
            wish = entries.Wish(patient.id, world.clinic_id, world.service_id, day, day)
            entries.add_entry(session, world.staff, wish)
    with db.read() as session:
        pages = [
            entries.list_entries(
                session, world.staff, clinic_id=world.clinic_id, with_matches=False, page=page
            )
            for page in (0, 1, 2)
        ]
        total = entries.count_entries(session, world.staff, clinic_id=world.clinic_id)
        others = entries.count_entries(
            session, world.staff, clinic_id=world.clinic_id, status=WaitlistStatus.WITHDRAWN
        )
    assert [len(p) for p in pages] == [entries.PAGE_SIZE, 5, 0] and (total, others) == (55, 0)
    names = [r.patient for r in pages[0] + pages[1]]
    assert names == [f"P{n:02d} Morgan" for n in range(55)]  # oldest first, none twice
    with db.write() as session:  # the 55th can be withdrawn like the first
        entries.withdraw(session, world.staff, pages[1][-1].id)
    with db.read() as session:
        assert entries.count_entries(session, world.staff, clinic_id=world.clinic_id) == 54


# ---------------------------------------------------------------- the race


def test_two_patients_accepting_one_offer_at_once_one_wins_one_is_told(db, world):
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=2)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    links = offer_links(db)
    deliver(db)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def take(address):
        try:
            with db.write() as session:
                barrier.wait(timeout=10)
                results[address] = offers.accept_offer(session, links[address]).id
        except (Conflict, LinkInvalid) as error:
            results[address] = error
        except threading.BrokenBarrierError:  # SQLite: the second writer waits at BEGIN
            results[address] = "waited"

    threads = [threading.Thread(target=take, args=(a,)) for a in links]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for address, value in list(results.items()):
        if value == "waited":  # SQLite serialised the writers: replay the loser now
            take(address)
    won = [a for a, v in results.items() if isinstance(v, int)]
    lost = [a for a, v in results.items() if not isinstance(v, int)]
    assert len(won) == 1 and len(lost) == 1
    assert sent_to(db, "waitlist_taken") == lost
    with db.read() as session:
        booked_rows = session.scalars(
            select(Appointment).where(
                Appointment.start_at == at(day, 10),
                Appointment.status == AppointmentStatus.SCHEDULED,
            )
        ).all()
    assert len(booked_rows) == 1


@pytest.mark.parametrize("first", ["accept", "withdraw"])
def test_an_entry_withdrawn_while_its_offer_is_accepted_is_booked_or_withdrawn_not_both(
    db, world, first
):
    """The desk withdraws the entry while the patient accepts its offer: whichever came first
    stands, and the other is refused (on PostgreSQL the later one read the entry and offer
    before the first committed and overwrote them: a visit booked for an entry and offer
    marked withdrawn, or a withdrawn entry booked)."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    entry_id = waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    [link] = offer_links(db).values()
    done = threading.Event()  # the first has written, not yet committed
    results: dict[str, object] = {}

    def act(name):
        if name != first:
            done.wait(10)
        try:
            with db.write() as session:
                if name == "accept":
                    offers.accept_offer(session, link)
                else:
                    entries.withdraw(session, world.staff, entry_id, "Found another practice")
                session.flush()
                if name == first:
                    done.set()
                    wait_until_a_writer_waits(db)  # the other reads and writes meanwhile
            results[name] = "done"
        except (Conflict, ValidationError) as error:
            results[name] = str(error)

    second = "withdraw" if first == "accept" else "accept"
    threads = [threading.Thread(target=act, args=(name,)) for name in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with db.read() as session:
        entry = session.get(WaitlistEntry, entry_id)
        offer = session.scalar(select(WaitlistOffer))
        visits = session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.start_at == at(day, 10),
                Appointment.status == AppointmentStatus.SCHEDULED,
            )
        )
    if first == "accept":
        assert (entry.status, offer.status, visits) == (
            WaitlistStatus.BOOKED,
            OfferStatus.ACCEPTED,
            1,
        )
        assert results["withdraw"] == f"Entry #{entry_id} is booked already."
    else:
        assert (entry.status, offer.status, visits) == (
            WaitlistStatus.WITHDRAWN,
            OfferStatus.WITHDRAWN,
            0,
        )
        assert results["accept"].startswith("This offer no longer stands")


# ---------------------------------------------------------------- packages


def _package(db, world) -> int:
    with db.write() as session:
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        package = Package(name="Skin renewal", price_cents=12000)
        session.add_all([peel, package])
        session.flush()
        session.add_all(
            [
                PackageService(package_id=package.id, service_id=world.service_id, position=0),
                PackageService(package_id=package.id, service_id=peel.id, position=1),
            ]
        )
        return package.id


def test_a_package_waits_for_a_slot_long_enough_and_is_booked_as_one(db, world):
    rules(db, world)
    package_id = _package(db, world)
    day = future_day()
    with db.write() as session:
        patient = make_patient(session, first_name="Pat", email="pat@example.org")
        wish = entries.Wish(
            patient_id=patient.id,
            clinic_id=world.clinic_id,
            service_id=None,
            package_id=package_id,
            provider_id=world.provider_id,
            earliest=day - timedelta(days=1),
            latest=day + timedelta(days=7),
            weekdays=tuple(range(7)),
        )
        entry_id = entries.add_entry(session, world.staff, wish).id
    with db.write() as session, pytest.raises(ValidationError, match="already waits for this pac"):
        entries.add_entry(session, world.staff, wish)
    with db.read() as session:
        (row,) = entries.list_entries(
            session, world.staff, clinic_id=world.clinic_id, with_matches=False
        )
        assert row.service == "Skin renewal (Consultation + Peel)"
        assert session.get(WaitlistEntry, entry_id).service_id == world.service_id
    short = booked(db, world, day, hour=10)  # 30 minutes free: too short for the package
    long = booked(db, world, day, hour=14)
    with db.write() as session:
        moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=at(day, 14, 30),
            ),
        )
    cancel(db, world, short)
    process(db)
    assert sent_to(db, "waitlist_offer") == []
    cancel(db, world, long)  # 14:00–14:30 freed, but 14:30 is still booked
    process(db)
    assert sent_to(db, "waitlist_offer") == []
    with db.write() as session:  # the next hour is freed: the package fits
        later = moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                package_id=package_id,
                start_at=at(day, 16),
            ),
        ).id
    cancel(db, world, later)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["pat@example.org"]
    with db.read() as session:
        body = session.scalar(
            select(Notification.body).where(Notification.template == "waitlist_offer")
        )
    assert "Skin renewal (Consultation + Peel)" in body
    appointment_id = accept(db, offer_links(db)["pat@example.org"])
    with db.read() as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment.package_id == package_id
        assert [s.service.name for s in appointment.services] == ["Consultation", "Peel"]
        assert (appointment.start_at, appointment.end_at) == (at(day, 16), at(day, 17))
        assert session.get(WaitlistEntry, entry_id).status == WaitlistStatus.BOOKED


def _lists_only(db, world, service_name: str) -> None:
    """The provider lists one service on the Providers page: they perform only that."""
    with db.write() as session:
        service_id = session.scalar(select(Service.id).where(Service.name == service_name))
        session.add(ProviderService(provider_id=world.provider_id, service_id=service_id))


def test_a_time_is_offered_only_for_what_its_provider_performs(db, world):
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=5)
    package_id = _package(db, world)
    day = future_day()
    _lists_only(db, world, "Peel")  # not "Consultation"
    waiting(db, world, day, name="Sam", provider=False)  # Consultation, any provider
    with db.write() as session:
        peel = session.scalar(select(Service.id).where(Service.name == "Peel"))
        for name, service_id, package in (("Pat", None, package_id), ("Ann", peel, None)):
            patient = make_patient(session, first_name=name, email=f"{name.lower()}@example.org")
            entries.add_entry(
                session,
                world.staff,
                entries.Wish(
                    patient_id=patient.id,
                    clinic_id=world.clinic_id,
                    service_id=service_id,
                    package_id=package,
                    provider_id=None,
                    earliest=day - timedelta(days=1),
                    latest=day + timedelta(days=7),
                    weekdays=tuple(range(7)),
                ),
            )
    with db.write() as session:  # an hour: long enough for the package too
        offer_by_hand(session, world, at(day, 10), at(day, 11))
    # Consultation alone, or with a Peel in the package: not this provider's; the Peel is
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(WaitlistOffer)) == 1


def test_accepting_a_time_its_provider_no_longer_performs_says_so_not_taken(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    entry_id = waiting(db, world, day, name="Sam")
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["sam@example.org"]
    _package(db, world)  # adds the service "Peel"
    _lists_only(db, world, "Peel")  # since the offer went out: no longer "Consultation"
    with db.write() as session:
        with pytest.raises(Conflict) as refused:
            offers.accept_offer(session, link)
        message = str(refused.value)
        assert "Dr Test does not perform Consultation" in message
        assert "waitlist" in message and "taken" not in message
        offer = session.scalar(select(WaitlistOffer))
        assert offer.status != OfferStatus.TAKEN  # nobody took the time
        assert session.get(WaitlistEntry, entry_id).status == WaitlistStatus.WAITING
    with db.read() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Appointment)
                .where(Appointment.status == AppointmentStatus.SCHEDULED)
            )
            == 0
        )


def test_accepting_a_time_no_longer_bookable_for_another_reason_does_not_say_taken(db, world):
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Sam")
    cancel(db, world, appointment_id)
    process(db)
    with db.write() as session:  # the practice stops offering the service meanwhile
        session.get(Service, world.service_id).active = False
    with db.write() as session:
        with pytest.raises(Conflict, match="Consultation is no longer offered") as refused:
            offers.accept_offer(session, offer_links(db)["sam@example.org"])
        assert "taken" not in str(refused.value)
        assert session.scalar(select(WaitlistOffer.status)) != OfferStatus.TAKEN


def _visit_elsewhere(db, world, entry_id: int, start_at: datetime) -> int:
    """Book the waiting entry's patient with another provider (working all day) at start_at."""
    from db.models import Provider, WorkingHours

    with db.write() as session:
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        session.add(
            WorkingHours(
                clinic_id=world.clinic_id,
                provider_id=other.id,
                weekday=to_local(start_at, TZ).weekday(),
                starts=time(8),
                ends=time(18),
            )
        )
        patient = session.scalar(
            select(WaitlistEntry.patient_id).where(WaitlistEntry.id == entry_id)
        )
        return moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                patient_id=patient,
                clinic_id=world.clinic_id,
                provider_id=other.id,
                service_ids=[world.service_id],
                start_at=start_at,
            ),
        ).id


def test_a_freed_time_is_not_offered_to_a_patient_who_has_a_visit_then(db, world):
    """Sam waits longest but is booked at 10:15 with another provider: the freed 10:00 is
    offered to Ann, next in line; Sam is offered a time he is free at."""
    rules(db, world)
    day = future_day()
    morning, afternoon = booked(db, world, day), booked(db, world, day, hour=14)
    sam, ann = waiting(db, world, day, name="Sam"), waiting(db, world, day, name="Ann")
    _visit_elsewhere(db, world, sam, at(day, 10, 15))
    cancel(db, world, morning)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    cancel(db, world, afternoon)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "sam@example.org"]
    with db.read() as session:
        offered = session.execute(
            select(WaitlistOffer.entry_id, WaitlistOffer.start_at).order_by(WaitlistOffer.id)
        ).all()
    offered = [tuple(o) for o in offered]  # Ann queued behind Sam for 14:00
    assert offered[:2] == [(ann, at(day, 10)), (sam, at(day, 14))]
    assert (sam, at(day, 10)) not in offered


def test_the_waitlist_pages_matches_leave_out_times_the_patient_has_a_visit(db, world):
    day = future_day()
    sam = waiting(db, world, day, name="Sam")

    def first_match():
        with db.read() as session:
            [row] = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
            clinic = session.get(Clinic, world.clinic_id)
            entry = session.get(WaitlistEntry, sam)
            today = to_local(utcnow(), TZ).date()
            slot = entries.current_matches(session, entry, TZ, today, utcnow())[0]
            return row.next_match, clinic_time(clinic, slot.start_at), slot.start_at

    shown, first, start = first_match()
    assert shown == first  # no other visit: the first free time
    _visit_elsewhere(db, world, sam, start)
    shown_now, _, _ = first_match()
    assert shown_now != shown


def test_the_pages_matches_leave_out_the_patients_visits_beyond_the_next_fortnight(db, world):
    """An entry from three weeks on: its first match is not the time the patient has another
    visit then (the visits were read for the next 16 days only)."""
    day = future_day(21)
    sam = waiting(db, world, day + timedelta(days=1), name="Sam")  # from `day` on
    _visit_elsewhere(db, world, sam, at(day, 9))
    with db.read() as session:
        [row] = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
        clinic = session.get(Clinic, world.clinic_id)
        assert row.next_match == clinic_time(clinic, at(day, 9, 30))


def test_a_time_held_for_the_patients_own_waiting_proposal_is_neither_offered_nor_matched(
    db, world
):
    """Sam waits longest, and also asked to move a visit of his with Dr Other; the practice
    proposed him a later time. Until he answers, his original time stays his (a refusal puts
    the visit back there, and booking him then is refused), so Dr Test's time freed at that
    moment goes to Ann, next in line, and Sam's current matches on the Waitlist page leave it
    out. Before, both saw only the proposed time: Sam was offered a time he could not take."""
    rules(db, world)
    day = future_day()
    sam, ann = waiting(db, world, day, name="Sam"), waiting(db, world, day, name="Ann")

    def sams_first_match():
        with db.read() as session:
            rows = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
            return next(r.next_match for r in rows if r.id == sam)

    with db.read() as session:  # the first free time, before anyone is booked
        entry = session.get(WaitlistEntry, sam)
        today = to_local(utcnow(), TZ).date()
        start = entries.current_matches(session, entry, TZ, today, utcnow())[0].start_at
        clinic = session.get(Clinic, world.clinic_id)
        shown = clinic_time(clinic, start)
    assert sams_first_match() == shown
    with db.write() as session:  # Alex has Dr Test then
        alex = moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=start,
            ),
        ).id
    own = _visit_elsewhere(db, world, sam, start)
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("Sam"), own, kind="reschedule", requested_day=start.date()
        ).id
    with db.write() as session:
        changes.propose_for_change(
            session, world.manager, change_id, start_at=start + timedelta(hours=4)
        )
    cancel(db, world, alex)  # Dr Test's time is free; Sam's own original time is held
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        offered = session.execute(select(WaitlistOffer.entry_id, WaitlistOffer.start_at)).all()
    assert [tuple(o) for o in offered] == [(ann, start)]
    assert sams_first_match() not in ("", shown)


def test_accepting_a_time_the_patient_already_has_a_visit_at_names_it_not_taken(db, world):
    """Sam is offered 10:00 and has meanwhile been booked 10:15 with another provider: the
    refusal names his own visit's day and time (nothing else of it), not 'taken by another
    patient'; nothing changes, so the offer still holds for him (he may move that visit and
    book, or pass the time on) and he stays on the waitlist."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    entry_id = waiting(db, world, day, name="Sam")
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["sam@example.org"]
    own = _visit_elsewhere(db, world, entry_id, at(day, 10, 15))
    with pytest.raises(Conflict) as refused:
        accept(db, link)
    message = str(refused.value)
    with db.read() as session:
        clinic = session.get(Clinic, world.clinic_id)
        expires = clinic_time(clinic, session.scalar(select(WaitlistOffer.expires_at)), zone=True)
        when = clinic_time_range(clinic, at(day, 10, 15), at(day, 10, 45), zone=True)
    assert message == (
        f"Sorry, we cannot book this time for you: you already have a visit on {when}. To come "
        "at the offered time instead, cancel or move that visit first, then book this time "
        f"before {expires}. You stay on our waitlist."
    )
    assert f"{format_day(day, 'en-GB')}, 10:15–10:45" in message
    assert "taken" not in message and "Dr Other" not in message and f"#{own}" not in message
    assert "You stay on our waitlist." in message
    with db.read() as session:
        offer = session.scalar(select(WaitlistOffer))
        assert offer.status == OfferStatus.SENT and offers.offer_view(session, link).closed is None
        assert session.get(WaitlistEntry, entry_id).status == WaitlistStatus.WAITING
    # a refusal the caller commits (the portal's way, say) changes nothing either
    with db.write() as session, pytest.raises(Conflict, match="you already have a visit"):
        offers.accept_offer(session, link)
    with db.read() as session:
        assert offers.offer_view(session, link).closed is None
    with db.write() as session:  # he cancels his other visit: the time is his
        moves.cancel_appointment(session, world.staff, own, reason="Prefers the waitlist time")
    booked_id = accept(db, link)
    with db.read() as session:
        assert session.get(Appointment, booked_id).start_at == at(day, 10)


def test_a_package_request_that_cannot_be_placed_waits_for_the_package(db, world):
    package_id = _package(db, world)
    day = future_day()
    with db.write() as session:
        request = decisions.request_appointment(
            session,
            world.manager,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            package_id=package_id,
            requested_day=day,
            time_of_day="afternoon",
        )
        entry = entries.add_from_request(session, world.manager, request.id).entry
        assert (entry.package_id, entry.service_id) == (package_id, world.service_id)
    with db.read() as session:
        [row] = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
    assert row.service == "Skin renewal (Consultation + Peel)" and row.matches


def test_an_entry_waits_to_the_end_of_its_last_day_in_its_clinics_zone(db, world):
    """New York: at 03:00 UTC the 4th is still the 4th there; at 05:00 UTC it is over."""
    last = future_day(5)
    with db.write() as session:
        session.get(Clinic, world.clinic_id).timezone = "America/New_York"
    entry_id = waiting(db, world, future_day(2), latest=last)
    next_day = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)
    with db.write() as session:
        assert entries.expire_entries(session, next_day + timedelta(hours=3)) == 0
        assert session.get(WaitlistEntry, entry_id).status == WaitlistStatus.WAITING
    with db.write() as session:
        assert entries.expire_entries(session, next_day + timedelta(hours=5)) == 1
        assert session.get(WaitlistEntry, entry_id).status == WaitlistStatus.EXPIRED


class _Flaky:
    """An email transport that answers like a busy server until told to accept."""

    def __init__(self) -> None:
        self.accept, self.sent = False, []

    def send(self, notification: Notification) -> None:
        if not self.accept:
            raise smtplib.SMTPDataError(451, b"Try again later")
        self.sent.append(notification.to_address)


@pytest.mark.parametrize("hold_minutes", [30, 24 * 60])
def test_an_offer_the_sender_reaches_in_quiet_hours_waits_or_is_stopped_if_its_hold_ends(
    db, world, hold_minutes
):
    """Offered at 20:58 (quiet hours 21:00–08:00); the mail server answers 451 at 20:58 and
    20:59, so the back-off's next try is 21:04. Before, it went out then, inside quiet hours.
    Now an offer held until 08:00 (its hold runs to 09:00) goes at 08:00; one whose 30-minute
    hold ends at 21:28 is not sent (its link would say it has ended), and says why."""
    rules(db, world, quiet_start=time(21), quiet_end=time(8), hold_minutes=hold_minutes)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    evening = at(day - timedelta(days=1), 20, 58)
    keep = _Flaky()
    keep.accept = True
    delivery.send_due(db.write, {Channel.EMAIL: keep}, now=evening - timedelta(hours=1))
    keep = _Flaky()
    process(db, now=evening)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]  # queued in the outbox
    email = {Channel.EMAIL: keep}
    for minutes in (0, 1):
        assert delivery.send_due(db.write, email, now=evening + timedelta(minutes=minutes)).retrying
    keep.accept = True
    report = delivery.send_due(db.write, email, now=at(day - timedelta(days=1), 21, 4))
    assert keep.sent == []
    with db.read() as session:
        row = session.scalar(
            select(Notification).where(
                Notification.template == "waitlist_offer", Notification.channel == Channel.EMAIL
            )
        )
    if hold_minutes == 30:
        assert (report.held, report.failed) == (0, 1)
        assert (row.status.value, row.permanent_failure) == ("failed", True)
        assert row.last_error == (
            "Not sent: the waitlist's quiet hours began before it went out, and the offer's "
            "hold ends before they do."
        )
        delivery.send_due(db.write, email, now=at(day, 8))
        assert keep.sent == []
        return
    assert report.held == 1 and row.next_attempt_at == at(day, 8)
    assert delivery.send_due(db.write, email, now=at(day, 7, 59)).sent == 0
    assert delivery.send_due(db.write, email, now=at(day, 8)).sent == 1
    assert keep.sent == ["ann@example.org"]


def test_an_offer_that_ended_before_its_message_could_go_is_not_sent(db, world):
    """The mail server was down while Ann's offer ran out and the time went to Ben; when it is
    back, Ann is not sent a link that only says the offer has ended."""
    rules(db, world, hold_minutes=30)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    noon = at(day - timedelta(days=1), 12)
    delivery.send_due(db.write, {Channel.EMAIL: _Accept()}, now=noon - timedelta(hours=1))
    process(db, now=noon)
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE, now=noon + timedelta(minutes=31))
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]
    keep = _Accept()
    delivery.send_due(db.write, {Channel.EMAIL: keep}, now=noon + timedelta(minutes=32))
    assert keep.sent == ["ben@example.org"]
    with db.read() as session:
        ann = session.scalar(
            select(Notification).where(Notification.to_address == "ann@example.org")
        )
    assert ann.permanent_failure and ann.last_error.startswith("Not sent: the offer had ended")


class _Accept(_Flaky):
    def __init__(self) -> None:
        super().__init__()
        self.accept = True


@pytest.mark.parametrize(
    "stored",
    [
        None,  # never saved
        "saved",  # by set_rules
        {"mode": "bogus", "quiet_start": "22:30", "quiet_end": "06:15"},
        {"hold_minutes": 45, "quiet_start": "25:00", "quiet_end": "06:15"},
        ["not", "a", "mapping"],
    ],
)
def test_the_waitlist_and_the_sender_read_one_set_of_offer_quiet_hours(db, world, stored):
    """The rules that queue an offer and the sender that holds it (core.messaging.quiet, which
    may not import core.waitlist) read the same quiet hours from the settings row, malformed
    rows too. Before, a row with one bad field made the rules fall back to 21:00–08:00 (and
    lose its other fields) while the sender kept the stored 22:30–06:15, and a row that was no
    mapping raised AttributeError."""
    from core.messaging import quiet
    from core.waitlist.rules import KEY, get_rules

    assert quiet.WAITLIST_RULES == KEY
    if stored == "saved":
        rules(db, world, quiet_start=time(22, 30), quiet_end=time(6, 15))
    elif stored is not None:
        with db.write() as session:
            session.add(Setting(key=KEY, value=stored))
    with db.read() as session:
        row = session.get(Setting, KEY)
        read = get_rules(session)
    assert (read.quiet_start, read.quiet_end) == quiet.offer_quiet_hours(row and row.value)
    if isinstance(stored, dict):
        assert read.quiet_end == time(6, 15)
        assert read.hold_minutes == stored.get("hold_minutes", 30)


def _hour_freed(db, world, day, hour=16) -> None:
    """An hour-long visit (the package) at `hour`, cancelled: an hour freed."""
    package_id = _package(db, world)
    with db.write() as session:
        visit = moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                package_id=package_id,
                start_at=at(day, hour),
            ),
        ).id
    cancel(db, world, visit)


def test_the_rest_of_a_longer_freed_time_is_offered_again_and_counted_once(db, world):
    """An hour freed, a 30-minute visit booked from the waitlist at its start: the other half
    hour goes to the next in line (before: the opening was filled and the half hour was lost),
    and the refill figures still count one freed slot, filled once."""
    rules(db, world)
    day = future_day()
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    _hour_freed(db, world, day)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    accept(db, offer_links(db)["ann@example.org"])
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]
    with db.read() as session:
        body = session.scalar(
            select(Notification.body).where(
                Notification.template == "waitlist_offer",
                Notification.to_address == "ben@example.org",
            )
        )
        clinic = session.get(Clinic, world.clinic_id)
        assert clinic_time(clinic, at(day, 16, 30), zone=True) in body
    accept(db, offer_links(db)["ben@example.org"])
    with db.read() as session:
        starts = sorted(
            session.scalars(
                select(Appointment.start_at).where(
                    Appointment.status == AppointmentStatus.SCHEDULED
                )
            )
        )
        assert starts == [at(day, 16), at(day, 16, 30)]
        figures = offers.refill_figures(
            session,
            world.manager,
            clinic_id=world.clinic_id,
            first=future_day(-1),
            last=future_day(1),
        )
    assert (figures.opened, figures.offered, figures.filled) == (1, 1, 1)


def test_a_freed_time_nobody_matched_offered_by_hand_later_is_counted_once(db, world):
    """The jobs loop found nobody for a cancellation; a patient joins, and the manager offers the
    freed time from the appointment before the loop's next round: that opening is offered (before:
    a second, by-hand opening, and the refill figures counted two freed slots for one)."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    process(db)
    waiting(db, world, day, name="Ann")
    with db.write() as session:
        done = offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert (done.matched, done.sent) == (1, 1)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    accept(db, offer_links(db)["ann@example.org"])
    with db.read() as session:
        [opening] = session.scalars(select(SlotOpening)).all()
        assert (opening.reason, opening.by_hand, opening.status) == (
            "cancelled",
            True,
            OpeningStatus.FILLED,
        )
        figures = offers.refill_figures(
            session,
            world.manager,
            clinic_id=world.clinic_id,
            first=future_day(-1),
            last=future_day(1),
        )
    assert (figures.opened, figures.offered, figures.filled) == (1, 1, 1)


def test_a_patient_waiting_for_two_services_is_offered_a_freed_time_once(db, world):
    """Ann waits for a consultation and for a peel: a freed half hour suits both. She is sent
    one offer for it (her longest-waiting entry), and Ben the second place in the batch (before:
    Ann got the same time twice, two messages, and took two of the batch's places)."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=2)
    day = future_day()
    _package(db, world)  # adds the Peel service
    appointment_id = booked(db, world, day)
    ann = waiting(db, world, day, name="Ann")
    with db.write() as session:
        patient_id = session.get(WaitlistEntry, ann).patient_id
        peel = session.scalar(select(Service.id).where(Service.name == "Peel"))
        wish = entries.Wish(
            patient_id,
            world.clinic_id,
            peel,
            day - timedelta(days=1),
            day + timedelta(days=7),
            weekdays=tuple(range(7)),
        )
        entries.add_entry(session, world.staff, wish)
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]
    with db.read() as session:
        offered = session.execute(select(WaitlistOffer.entry_id, WaitlistOffer.status)).all()
    assert (ann, OfferStatus.SENT) in offered and len(offered) == 2


def test_a_patient_no_message_can_reach_is_not_offered_and_holds_nothing(db, world):
    """Ann withdrew her consent to email and texts: the freed time goes to Ben at once (before:
    an offer 'sent' to Ann reached nobody and held the time for her for the whole hold)."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    ann = waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    with db.write() as session:
        patient = session.get(Patient, session.get(WaitlistEntry, ann).patient_id)
        patient.consent_email = patient.consent_sms = False
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ben@example.org"]
    with db.read() as session:
        assert session.scalar(select(WaitlistOffer.entry_id)) != ann
        assert session.scalar(select(func.count()).select_from(WaitlistOffer)) == 1


def _without_consent(db, entry_id: int) -> None:
    with db.write() as session:
        patient = session.get(Patient, session.get(WaitlistEntry, entry_id).patient_id)
        patient.consent_email = patient.consent_sms = False


def test_a_patient_no_message_can_reach_is_listed_as_such_and_the_desk_warned(db, world):
    """A manager's walk: Sam, with consent to neither email nor text, was added with no word,
    and the table showed 20 matches for him though no offer can ever reach him. The desk is
    warned when choosing him (he may still be added: consent can be recorded later, or come
    back by a START), and the table says why he is offered nothing and what to fix, in the
    words of the messages' own rule (core.messaging.recipients)."""
    rules(db, world)
    day = future_day()
    sam = waiting(db, world, day, name="Sam")
    ann = waiting(db, world, day, name="Ann")
    _without_consent(db, sam)
    with db.read() as session:
        sam_id = session.get(WaitlistEntry, sam).patient_id
        ann_id = session.get(WaitlistEntry, ann).patient_id
        warned = entries.reach_warning(session, world.staff, sam_id)
        assert entries.reach_warning(session, world.staff, ann_id) == ""
        rows = {
            r.id: r for r in entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
        }
    assert warned == (
        "Sam Morgan cannot be reached (no consent to email; no consent to text messages): they "
        "can be added, but no time will be offered to them until their consent to email or "
        "text, with the address, is on their record."
    )
    assert (rows[sam].matches, rows[sam].next_match) == (
        0,
        "None: cannot be reached (no consent to email; no consent to text messages); record "
        "consent to email or text, with the address, on their record",
    )
    assert rows[ann].matches > 0


def test_offering_a_time_only_unreachable_patients_suit_names_them_not_matches(db, world):
    """Offering by hand a time only Sam suits, who has consent to neither email nor text, said
    'No waitlisted patient matches this slot'; it names him and what to fix."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    _without_consent(db, waiting(db, world, day, name="Sam"))
    cancel(db, world, appointment_id)
    with db.write() as session, pytest.raises(ValidationError) as refused:
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert str(refused.value) == (
        "No offer can reach the waitlisted patients this slot suits: Sam Morgan (no consent to "
        "email; no consent to text messages). Record their consent to email or text, with the "
        "address, on their record, then offer it again; nothing was sent."
    )


def test_a_queued_offer_whose_patient_withdrew_consent_meanwhile_passes_to_the_next(db, world):
    """One at a time: Ann holds the time, Carl is next in line, Ben after. Carl withdraws his
    consent while Ann holds it; when her hold ends the time goes to Ben (before: to Carl, whom
    no message reached)."""
    rules(db, world, hold_minutes=30)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    carl = waiting(db, world, day, name="Carl")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.write() as session:
        patient = session.get(Patient, session.get(WaitlistEntry, carl).patient_id)
        patient.consent_email = patient.consent_sms = False
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE, now=utcnow() + timedelta(minutes=31))
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]
    with db.read() as session:
        status = session.scalar(select(WaitlistOffer.status).where(WaitlistOffer.entry_id == carl))
    assert status == OfferStatus.WITHDRAWN


def test_a_time_the_desk_books_while_offers_are_out_closes_them_and_tells_each_once(db, world):
    """Several at once: Ann and Ben are offered 10:00; the desk books it by phone before either
    answers. At the jobs loop's next round both offers read 'taken' on the Offers list, each is
    told once, and their links say so (before: both stayed 'sent', the portal offered 'Book
    this time' until the hold ended, then the link said the time had gone to the next in line)."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3, hold_minutes=120)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    links = offer_links(db)  # read before delivery (sent bodies keep no live link)
    deliver(db)
    booked(db, world, day)  # the desk books the time by phone
    for _ in range(2):  # two rounds of the jobs loop: told once
        with db.write() as session:
            offers.expire_offers(session, base_url=BASE)
    assert sent_to(db, "waitlist_taken") == ["ann@example.org", "ben@example.org"]
    with db.read() as session:  # the words fit a time booked at the desk (or given back) too
        told = session.scalars(
            select(Notification.body).where(Notification.template == "waitlist_taken")
        ).all()
        assert all("is no longer free: it has been booked" in b for b in told), told
        assert not any("another patient" in b for b in told)
        rows = offers.list_offers(session, world.manager, clinic_id=world.clinic_id)
        assert [r.status for r in rows] == ["taken", "taken"]
        assert [r.why for r in rows] == ["the time was booked otherwise"] * 2
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.UNFILLED
        assert offers.offer_view(session, links["ann@example.org"]).closed == offers.TAKEN
    with pytest.raises(Conflict, match="taken by another patient"):
        accept(db, links["ben@example.org"])


def test_an_offered_time_the_provider_takes_off_closes_the_offer_and_tells_the_patient(db, world):
    """Ann is offered 10:00 (Ben next in line); before she answers, the provider takes the
    morning off. At the jobs loop's next round her offer is withdrawn and she is told once that
    the schedule changed; Ben is offered nothing (before: Ann's offer held the time until her
    hold ended, and she learnt of it only by pressing accept)."""
    rules(db, world, hold_minutes=120)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["ann@example.org"]
    deliver(db)
    with db.write() as session:
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=at(day, 9),
            ends_at=at(day, 12),
        )
    for _ in range(2):  # two rounds of the jobs loop: told once
        with db.write() as session:
            offers.expire_offers(session, base_url=BASE)
    assert sent_to(db, "waitlist_withdrawn") == ["ann@example.org"]
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    assert sent_to(db, "waitlist_taken") == []
    with db.read() as session:
        body = session.scalar(
            select(Notification.body).where(Notification.template == "waitlist_withdrawn")
        )
        assert "the clinic's schedule has changed" in body
        rows = offers.list_offers(session, world.manager, clinic_id=world.clinic_id)
        assert [r.status for r in rows] == ["withdrawn", "withdrawn"]
        assert "no longer stands" in offers.offer_view(session, link).closed
    with pytest.raises(Conflict, match="no longer stands"):
        accept(db, link)


def test_an_entry_for_a_service_withdrawn_meanwhile_is_offered_nothing_and_says_so(db, world):
    """The practice stops offering peels while Ann waits for one: a freed time goes to Ben
    (consultation) and not to Ann, whose entry on the staff list says why and what to do; an
    offer already out for a consultation the practice then withdraws says so when accepted
    (before: Ann was offered a time nobody could book, then told 'the schedule has changed',
    and her entry showed 20 matches)."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    day = future_day()
    _package(db, world)  # adds the Peel service
    appointment_id = booked(db, world, day)
    with db.write() as session:
        ann = make_patient(session, first_name="Ann", email="ann@example.org")
        peel = session.get(
            Service, session.scalar(select(Service.id).where(Service.name == "Peel"))
        )
        wish = entries.Wish(
            ann.id, world.clinic_id, peel.id, day - timedelta(days=1), day + timedelta(days=7)
        )
        entries.add_entry(session, world.staff, replace(wish, weekdays=tuple(range(7))))
        peel.active = False
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ben@example.org"]
    with db.read() as session:
        rows = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
        by_name = {r.patient: (r.matches, r.next_match) for r in rows}
    assert by_name["Ann Morgan"] == (0, "None: Peel no longer offered; withdraw it")
    with db.write() as session:
        session.get(Service, world.service_id).active = False
    with pytest.raises(Conflict, match="Consultation is no longer offered as it was when we"):
        accept(db, offer_links(db)["ben@example.org"])


def test_an_entry_for_a_provider_deactivated_meanwhile_says_what_to_do(db, world):
    day = future_day()
    waiting(db, world, day, name="Ann")
    with db.write() as session:
        session.get(Provider, world.provider_id).active = False
    with db.read() as session:
        [row] = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
    # the provider's name is beside it: the words alone fit the cell's four lines
    assert row.next_match == "None: provider inactive; withdraw, add for any provider"


def test_an_entry_for_a_package_withdrawn_meanwhile_says_so_within_its_cells_four_lines(db, world):
    """The package's name is beside the reason on the list (its Service): 'None: Consultation
    and blood test no longer offered; withdraw this entry' was cut at four lines, in Chromium
    at 1280 px. A service of the package withdrawn is still named, as the list does not show
    which one it was."""
    package_id = _package(db, world)
    day = future_day()
    with db.write() as session:
        pat = make_patient(session, first_name="Pat", email="pat@example.org")
        wish = entries.Wish(
            pat.id, world.clinic_id, None, day, day + timedelta(days=7), package_id=package_id
        )
        entries.add_entry(session, world.staff, replace(wish, weekdays=tuple(range(7))))
        session.get(Package, package_id).active = False
    with db.read() as session:
        [row] = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
    assert (row.matches, row.next_match) == (0, "None: package no longer offered; withdraw it")
    with db.write() as session:
        session.get(Package, package_id).active = True
        session.scalar(select(Service).where(Service.name == "Peel")).active = False
    with db.read() as session:
        [row] = entries.list_entries(session, world.staff, clinic_id=world.clinic_id)
    assert row.next_match == "None: Peel no longer offered; withdraw it"


def test_the_sql_condition_of_bookable_entries_agrees_with_the_reason_read_for_each(db, world):
    """entries.bookable (one condition for a query over many entries) against stopped_by (read
    for one entry), for every way an entry stops: its service, its package, one of its
    package's services, or its provider withdrawn; and for entries for any provider."""
    day = future_day()
    package_id = _package(db, world)
    ids = [waiting(db, world, day, name="Ann"), waiting(db, world, day, name="Ben", provider=False)]
    with db.write() as session:
        patient = make_patient(session, first_name="Cy", email="cy@example.org")
        wish = entries.Wish(
            patient.id, world.clinic_id, None, day - timedelta(days=1), day + timedelta(days=7)
        )
        ids.append(
            entries.add_entry(
                session,
                world.staff,
                replace(wish, package_id=package_id, provider_id=world.provider_id),
            ).id
        )
        peel_id = session.scalar(select(Service.id).where(Service.name == "Peel"))
    switches = [
        (Service, world.service_id),
        (Service, peel_id),
        (Package, package_id),
        (Provider, world.provider_id),
    ]
    for mask in range(1 << len(switches)):
        with db.write() as session:
            for bit, (model, key) in enumerate(switches):
                session.get(model, key).active = not mask & (1 << bit)
        with db.read() as session:
            by_sql = set(
                session.scalars(
                    select(WaitlistEntry.id).where(WaitlistEntry.id.in_(ids), entries.bookable())
                )
            )
            by_entry = {
                i for i in ids if entries.stopped_by(session, session.get(WaitlistEntry, i)) is None
            }
        assert by_sql == by_entry, (mask, by_sql, by_entry)
        if mask == 0:
            assert by_sql == set(ids)


def test_an_offer_that_lapsed_with_nobody_after_does_not_say_the_next_patient_took_it(db, world):
    """Ann alone was offered the time and let it lapse: her link said the time 'went to the next
    patient in line', when nobody else was waiting. It now says only what is true."""
    rules(db, world, hold_minutes=30)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["ann@example.org"]
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE, now=utcnow() + timedelta(minutes=31))
    with db.read() as session:
        closed = offers.offer_view(session, link).closed
    assert closed.startswith("This offer has expired") and "next patient" not in closed
    assert "You stay on our waitlist" in closed


def test_offering_by_hand_a_time_within_the_minimum_notice_says_so(db, world):
    """A cancellation for a visit in 90 minutes, the notice 2 hours: offering it by hand said
    that no waitlisted patient matched (service length, days, …) or that the time was not free,
    though Ann waits for exactly that. It now names the minimum notice and what to do."""
    rules(db, world, min_notice_minutes=120)
    now = utcnow()
    day = to_local(now, TZ).date()
    waiting(db, world, day + timedelta(days=1), name="Ann")
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=90)
    with db.write() as session, pytest.raises(ValidationError) as refused:
        offer_by_hand(session, world, start, start + timedelta(minutes=30))
    assert "within the minimum notice of 120 minutes" in str(refused.value)
    assert "Offer rules" in str(refused.value)


def test_the_offers_list_says_why_each_offer_stands_where_it_does(db, world):
    """Staff read each offer's state and why (before: the state alone, so 'withdrawn' or
    'taken' left them guessing)."""
    rules(db, world, hold_minutes=30)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)

    def why() -> dict[str, tuple[str, str]]:
        with db.read() as session:
            rows = offers.list_offers(session, world.manager, clinic_id=world.clinic_id)
        return {r.patient: (r.status, r.why) for r in rows}

    assert why() == {
        "Ann Morgan": ("sent", "waiting for the patient's answer"),
        "Ben Morgan": ("queued", "in line, number 2"),
    }
    with db.write() as session:
        offers.expire_offers(session, base_url=BASE, now=utcnow() + timedelta(minutes=31))
    accept(db, offer_links(db)["ben@example.org"])
    assert why() == {
        "Ann Morgan": ("expired", "no answer before the hold ended"),
        "Ben Morgan": ("accepted", "booked by the patient"),
    }


def _harbour_at_ten_past_eleven(db, world, day, *, travel_minutes: int) -> None:
    """Dr Test's 10:00 visit keeps 15 minutes free after it; a second clinic, Harbour, has them
    booked from 11:10, with `travel_minutes` between the clinics."""
    from core.practice import travel
    from tests.factories import make_visit

    with db.write() as session:
        harbour = Clinic(name="Harbour", timezone=TZ)
        session.add(harbour)
        session.flush()
        start = at(day, 11, 10)
        make_visit(
            session,
            replace(world, clinic_id=harbour.id),
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        travel.set_travel_minutes(session, world.owner, travel_minutes)


def test_a_freed_time_whose_buffer_reaches_into_the_travel_time_is_not_offered(db, world):
    """Dr Test is at Harbour from 11:10 and needs 30 minutes to get there; the freed 10:00
    visit keeps 15 minutes free after it, so it holds them until 11:15. Matching measured the
    travel time from the visit's end (11:00) and offered 10:00, which the booking rule
    (lifecycle.place) then refused when the patient accepted."""
    rules(db, world)
    day = future_day()
    with db.write() as session:
        session.get(Service, world.service_id).buffer_after_minutes = 15
    appointment_id = booked(db, world, day)
    _harbour_at_ten_past_eleven(db, world, day, travel_minutes=30)
    waiting(db, world, day, name="Sam")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == []
    with db.write() as session, pytest.raises(Conflict, match="30 minutes' travel"):
        moves.schedule_appointment(  # what accepting an offer of 10:00 would be told
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=at(day, 10),
            ),
        )


def test_an_offer_whose_buffer_now_reaches_into_the_travel_time_is_closed(db, world):
    """Sam holds an offer of 10:00 (15 minutes kept free after it); the owner then sets 30
    minutes' travel, and Dr Test is at Harbour from 11:10. The offer's time can no longer be
    booked, yet it stayed open (its check measured from 11:00, not 11:15): the jobs loop
    closes it now."""
    from core.practice import travel

    rules(db, world, hold_minutes=120)
    day = future_day()
    with db.write() as session:
        session.get(Service, world.service_id).buffer_after_minutes = 15
    appointment_id = booked(db, world, day)
    _harbour_at_ten_past_eleven(db, world, day, travel_minutes=0)
    waiting(db, world, day, name="Sam")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["sam@example.org"]
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 30)
        offers.expire_offers(session, base_url=BASE)
    with db.read() as session:
        assert session.scalars(select(WaitlistOffer.status)).all() == [OfferStatus.TAKEN]


def test_offering_by_hand_a_time_only_its_visits_buffers_no_longer_fit_says_it_is_taken(db, world):
    """The freed 10:00–10:30 visit keeps 15 minutes free before and after it; the desk has
    since booked 09:30–10:00 and 10:30–11:00. Its time can no longer be booked for such a
    visit, yet the manager was told nobody matched (the check ignored the buffers)."""
    from tests.factories import make_visit

    rules(db, world)
    day = future_day()
    with db.write() as session:
        service = session.get(Service, world.service_id)
        service.buffer_before_minutes = service.buffer_after_minutes = 15
    appointment_id = booked(db, world, day)
    cancel(db, world, appointment_id)
    with db.write() as session:
        for hour, minute in ((9, 30), (10, 30)):
            start = at(day, hour, minute)
            make_visit(
                session,
                world,
                status=AppointmentStatus.SCHEDULED,
                start_at=start,
                end_at=start + timedelta(minutes=30),
            )
    with db.write() as session, pytest.raises(ValidationError, match="no longer free"):
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)


def test_a_freed_time_whose_clean_up_runs_into_time_off_is_not_offered(db, world):
    """The freed 10:00 visit keeps 15 minutes free after it (to 10:45); Dr Test is away from
    10:40. Matching asked for the provider's hours and time off without the visit's buffers
    and offered 10:00, which the booking rule (availability.away_span) refuses on accept."""
    rules(db, world)
    day = future_day()
    with db.write() as session:
        session.get(Service, world.service_id).buffer_after_minutes = 15
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Sam")
    cancel(db, world, appointment_id)
    with db.write() as session:
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=at(day, 10, 40),
            ends_at=at(day, 12),
        )
    process(db)
    assert sent_to(db, "waitlist_offer") == []
    with db.write() as session, pytest.raises(ValidationError, match="time off"):
        moves.schedule_appointment(  # what accepting an offer of 10:00 would be told
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=at(day, 10),
            ),
        )


def test_an_accept_refused_as_taken_closes_the_offer_so_the_patient_is_told_once(db, world):
    """The desk books the offered time by phone; Ann then accepts and reads "just taken". The
    refusal was rolled back with her transaction, so her offer stayed open and the jobs loop
    then emailed her "taken" too. Now the refusal closes it as taken (her link says so) and
    the jobs loop has nothing more to tell her."""
    rules(db, world, hold_minutes=120)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["ann@example.org"]
    deliver(db)
    booked(db, world, day)  # the desk books the time by phone
    with pytest.raises(Conflict, match="just been taken"):
        accept(db, link)
    with db.read() as session:
        assert session.scalar(select(WaitlistOffer.status)) == OfferStatus.TAKEN
        assert offers.offer_view(session, link).closed == offers.TAKEN
    for _ in range(2):
        with db.write() as session:
            offers.expire_offers(session, base_url=BASE)
    assert sent_to(db, "waitlist_taken") == []
    with pytest.raises(Conflict, match="just been taken"):  # the link still says so
        accept(db, link)


def test_a_patient_barred_from_booking_online_is_offered_nothing_and_cannot_accept(db, world):
    """Ben has no points left, so the practice has barred his online booking; he still got
    waitlist offers and could book through them. Now matching skips him (the Waitlist page
    says why), and an offer already out to Ann when she is barred is refused on accept."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    day = future_day()
    appointment_id = booked(db, world, day)
    ann = waiting(db, world, day, name="Ann")
    ben = waiting(db, world, day, name="Ben")
    with db.write() as session:
        session.get(Patient, session.get(WaitlistEntry, ben).patient_id).points_balance = 0
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    with db.read() as session:
        rows = entries.list_entries(session, world.manager, clinic_id=world.clinic_id)
    row = {r.id: r for r in rows}[ben]
    assert row.matches == 0 and "online booking" in row.next_match
    assert {r.id: r for r in rows}[ann].matches is not None
    with db.write() as session:
        session.get(Patient, session.get(WaitlistEntry, ann).patient_id).points_balance = 0
    with pytest.raises(Conflict, match="online booking"):
        accept(db, offer_links(db)["ann@example.org"])
    with db.read() as session:
        assert session.scalar(select(WaitlistEntry.status).where(WaitlistEntry.id == ann)) == (
            WaitlistStatus.WAITING
        )
        assert session.scalar(select(func.count()).select_from(Appointment)) == 1


def test_offering_a_time_only_barred_patients_suit_names_them_and_what_to_do(db, world):
    """Offering by hand a time only Ben suits, whose online booking is barred (no points left),
    said 'No waitlisted patient matches this slot', as if nobody waited for it; it names him,
    why, and what the desk can do. A time an unreachable patient suits too names both."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    ben = waiting(db, world, day, name="Ben")
    with db.write() as session:
        session.get(Patient, session.get(WaitlistEntry, ben).patient_id).points_balance = 0
    cancel(db, world, appointment_id)
    with db.write() as session, pytest.raises(ValidationError) as refused:
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert str(refused.value) == (
        "The waitlisted patients this slot suits may not book online (no points left), and an "
        "offer books online: Ben Morgan. Add points on their record, then offer it again, or "
        "call them and book the time for them; nothing was sent."
    )
    _without_consent(db, waiting(db, world, day, name="Sam"))
    with db.write() as session, pytest.raises(ValidationError) as refused:
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert str(refused.value) == (
        "No offer can reach the waitlisted patients this slot suits: Sam Morgan (no consent to "
        "email; no consent to text messages). Record their consent to email or text, with the "
        "address, on their record, then offer it again. The others it suits may not book "
        "online (no points left), and an offer books online: Ben Morgan. Add points on their "
        "record, then offer it again, or call them and book the time for them; nothing was "
        "sent."
    )


def _request(db, world, patient_id: int, day: date) -> int:
    with db.write() as session:
        return decisions.request_appointment(
            session,
            world.manager,
            patient_id=patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day="afternoon",
        ).id


def test_a_request_put_on_the_waitlist_for_a_patient_no_offer_can_reach_says_so(db, world):
    """'No time free: put on the waitlist' for Sam, with consent to neither email nor text,
    said 'the patient is told the request is declined': he was told nothing, and no offer can
    ever reach him. The desk reads both, the warning in the add form's words."""
    rules(db, world)
    day = future_day()
    with db.write() as session:
        sam = make_patient(session, first_name="Sam", email="sam@example.org")
        sam.consent_email = sam.consent_sms = False
        sam = sam.id
    asked, quiet = _request(db, world, world.patient_id, day), _request(db, world, sam, day)
    with db.write() as session:
        told = entries.add_from_request(session, world.manager, asked)
        unreached = entries.add_from_request(session, world.manager, quiet)
        warned = entries.reach_warning(session, world.manager, sam)
    assert (told.said, told.warning) == (
        "Put on the waitlist: the patient is told the request is declined.",
        "",
    )
    assert unreached.said == (
        "Put on the waitlist and the request declined, but the patient was not told (no consent "
        "to email; no consent to text messages): call them to say so."
    )
    assert unreached.warning == (
        "Sam Morgan cannot be reached (no consent to email; no consent to text messages): no "
        "time will be offered to them until their consent to email or text, with the address, "
        "is on their record."
    )
    assert warned.endswith(unreached.warning.split(": ", 1)[1])  # one wording
    assert unreached.entry.status == WaitlistStatus.WAITING


def closed_with(db, link: str, words: str) -> None:
    """The offer's link reads as closed with `words`, and accepting it is refused with them."""
    with db.read() as session:
        assert offers.offer_view(session, link).closed == words
    with pytest.raises(Conflict) as refused:
        accept(db, link)
    assert str(refused.value) == words


def test_an_offers_link_says_what_became_of_it_once_its_entry_or_service_is_withdrawn(db, world):
    """Sam's entry is withdrawn by the practice while his offer is out: his link read 'you have
    booked another time from our waitlist or left it, or the time is no longer free', three
    guesses. Ann's service is withdrawn: her link still read as an open offer, whose Book this
    time was refused. Each now says what became of it, on the page and on accepting."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    day = future_day()
    appointment_id = booked(db, world, day)
    sam = waiting(db, world, day, name="Sam")
    waiting(db, world, day, name="Ann")
    cancel(db, world, appointment_id)
    process(db)
    links = offer_links(db)
    with db.write() as session:
        entries.withdraw(session, world.staff, sam, "Asked by phone")
    withdrawn = (
        "This offer no longer stands: your place on our waitlist for Consultation was "
        "withdrawn, so nothing was booked. If you did not ask for this, please call Test Clinic "
        "on 020 0000 0000."
    )
    closed_with(db, links["sam@example.org"], withdrawn)
    with db.write() as session:
        session.get(Service, world.service_id).active = False
    gone = (
        "Sorry, we cannot book this time for you: Consultation is no longer offered as it was "
        "when we wrote. Please call Test Clinic on 020 0000 0000 to choose another treatment or "
        "time."
    )
    closed_with(db, links["ann@example.org"], gone)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 1  # the cancelled


def _peel_wanted(db, world, day, name="Ann") -> int:
    """`name` waits for a Peel (any provider), joining before anyone else does."""
    _package(db, world)  # adds the Peel service
    with db.write() as session:
        patient = make_patient(session, first_name=name, email=f"{name.lower()}@example.org")
        peel = session.scalar(select(Service.id).where(Service.name == "Peel"))
        wish = entries.Wish(
            patient.id, world.clinic_id, peel, day - timedelta(days=1), day + timedelta(days=7)
        )
        return entries.add_entry(session, world.staff, replace(wish, weekdays=tuple(range(7)))).id


def _round(db) -> None:
    """Two rounds of the jobs loop's offer step (told once)."""
    for _ in range(2):
        with db.write() as session:
            offers.expire_offers(session, base_url=BASE)


def _body(db, template: str, to: str) -> str:
    with db.read() as session:
        return session.scalar(
            select(Notification.body).where(
                Notification.template == template, Notification.to_address == to
            )
        )


def test_a_treatment_withdrawn_while_its_offer_is_out_frees_the_time_for_the_next_at_once(
    db, world
):
    """Ann is offered 10:00 for a peel (one at a time, Ben next for a consultation, the hold
    two hours); the practice then stops offering peels. Her offer kept the time until the hold
    ended while Ben waited for nothing (accepting was refused anyway). Now the jobs loop's
    next round closes it, tells her once and truly (not 'you stay on our waitlist': no time
    will be offered for that entry), and offers the time to Ben."""
    rules(db, world, hold_minutes=120)
    day = future_day()
    appointment_id = booked(db, world, day)
    _peel_wanted(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    link = offer_links(db)["ann@example.org"]
    deliver(db)
    with db.write() as session:
        session.scalar(select(Service).where(Service.name == "Peel")).active = False
    _round(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org", "ben@example.org"]
    assert sent_to(db, "waitlist_stopped") == ["ann@example.org"]
    assert sent_to(db, "waitlist_withdrawn") == sent_to(db, "waitlist_taken") == []
    body = _body(db, "waitlist_stopped", "ann@example.org")
    assert "as the practice no longer offers Peel. Nothing was booked, and no time will be " in (
        " ".join(body.split())
    )
    assert "stay on our waitlist" not in body and "Ben" not in body
    gone = (
        "Sorry, we cannot book this time for you: Peel is no longer offered as it was when we "
        "wrote. Please call Test Clinic on 020 0000 0000 to choose another treatment or time."
    )
    with db.read() as session:
        assert offers.offer_view(session, link).closed == gone
        listed = offers.list_offers(session, world.manager, clinic_id=world.clinic_id)
        rows = {r.patient: r for r in listed}
        assert (rows["Ann Morgan"].status, rows["Ann Morgan"].why) == (
            "withdrawn",
            "Peel no longer offered",
        )
        assert rows["Ben Morgan"].status == "sent"
    with pytest.raises(Conflict) as refused:
        accept(db, link)
    assert str(refused.value) == gone
    accept(db, offer_links(db)["ben@example.org"])  # the time is Ben's to take


def test_a_provider_deactivated_while_offers_are_out_closes_them_and_offers_the_time_nobody(
    db, world
):
    """Dr Test stops working at the practice while Ann (who asked for them) holds an offer and
    Ben (any provider) is in line. Ann is told her entry will be offered nothing; the time
    leaves the waitlist (nobody can book Dr Test): Ben is offered nothing, the opening closed
    and not matched again (before: Ann's offer held the time until her hold ended, then Ben was
    offered a time nobody could book)."""
    rules(db, world, hold_minutes=120)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben", provider=False)
    cancel(db, world, appointment_id)
    process(db)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    link = offer_links(db)["ann@example.org"]
    deliver(db)
    with db.write() as session:
        session.get(Provider, world.provider_id).active = False
    _round(db)
    process(db, now=utcnow() + offers.RECHECK)
    assert sent_to(db, "waitlist_offer") == ["ann@example.org"]
    assert sent_to(db, "waitlist_stopped") == ["ann@example.org"]
    body = " ".join(_body(db, "waitlist_stopped", "ann@example.org").split())
    assert "as Dr Test no longer works at the practice. Nothing was booked" in body
    gone = (  # not 'Consultation is no longer offered', which it still is
        "Sorry, we cannot book this time for you: Dr Test no longer works at the practice. "
        "Please call Test Clinic on 020 0000 0000 to choose another provider or time."
    )
    with pytest.raises(Conflict) as refused:
        accept(db, link)
    assert str(refused.value) == gone
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.CLOSED
        assert set(session.scalars(select(WaitlistOffer.status))) == {OfferStatus.WITHDRAWN}


def test_a_provider_deactivated_tells_a_patient_waiting_for_any_provider_they_stay_waiting(
    db, world
):
    """Cy, waiting for any provider, holds an offer of Dr Test's time when Dr Test stops
    working at the practice: he is told the schedule changed and that he stays on the
    waitlist, which is true of him (his entry is matched with the other providers)."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3, hold_minutes=120)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Cy", provider=False)
    cancel(db, world, appointment_id)
    process(db)
    link = offer_links(db)["cy@example.org"]
    deliver(db)
    with db.write() as session:
        session.get(Provider, world.provider_id).active = False
    _round(db)
    assert sent_to(db, "waitlist_stopped") == []
    assert sent_to(db, "waitlist_withdrawn") == ["cy@example.org"]
    assert "You stay on our waitlist" in _body(db, "waitlist_withdrawn", "cy@example.org")
    with db.read() as session:
        assert "you stay on our waitlist" in offers.offer_view(session, link).closed
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.CLOSED
        [row] = offers.list_offers(session, world.manager, clinic_id=world.clinic_id)
        assert (row.status, row.why) == ("withdrawn", "the provider was deactivated")


def test_a_deactivated_providers_freed_time_is_not_offered_by_hand_nor_by_the_jobs_loop(db, world):
    """Dr Test stops working at the practice with a visit still booked; the desk cancels it
    and offers its time by hand: Ann (any provider) was sent an offer nobody could book
    (accepting refused 'the schedule has changed'). Now the manager reads why nothing was sent,
    and the jobs loop offers the time to nobody either."""
    rules(db, world)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann", provider=False)
    with db.write() as session:
        session.get(Provider, world.provider_id).active = False
    cancel(db, world, appointment_id)
    with db.write() as session, pytest.raises(ValidationError) as refused:
        offers.offer_freed(session, world.manager, appointment_id, base_url=BASE)
    assert str(refused.value) == (
        "Dr Test no longer works at the practice (inactive), so nobody can book their time: it "
        "is not offered to the waitlist. Nothing was sent."
    )
    process(db)
    assert sent_to(db, "waitlist_offer") == []
    with db.read() as session:
        assert session.scalar(select(SlotOpening.status)) == OpeningStatus.CLOSED
