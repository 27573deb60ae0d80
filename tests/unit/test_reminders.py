"""Reminders: the schedule (DST, quiet hours), the job's rules (moves, cancellations, consent,
reminders off, confirmations) and the confirm link. Re-run on PostgreSQL by
tests/integration/test_reminders_pg.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import delete, func, select

from core.analytics import confirmations, risk_scores
from core.kernel import tokens
from core.kernel.clock import local_to_utc
from core.kernel.config import SmtpSettings
from core.kernel.errors import LinkInvalid, PermissionDenied, ValidationError
from core.messaging import delivery, reminders
from core.messaging.history import messages_of
from core.messaging.preferences import MessagePreferences, PreferencesForm, save_preferences
from core.portal import patient_links, replies
from core.scheduling import moves, today
from db.models import (
    Appointment,
    AppointmentService,
    AuditEvent,
    ChangeRequest,
    Channel,
    Clinic,
    DeliveryStatus,
    LinkToken,
    Notification,
    Patient,
    Provider,
    ReminderSent,
    RiskModel,
    RiskScore,
    Service,
)
from db.types import utcnow
from tests.support.days import AUTUMN_MONDAY, PLAIN_THURSDAY, SPRING_SUNDAY
from tests.support.smtp import LoopbackSMTP

TZ = "Europe/London"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return local_to_utc(day, time(hour, minute), TZ)


def book(db, world, start: datetime, outside_hours: bool = False) -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=start,
                outside_hours_override=outside_hours,
            ),
        ).id


def run_job(db, now: datetime) -> list[tuple[int, int]]:
    with db.write() as session:
        rows = reminders.queue_due_reminders(session, base_url="https://desk.test", now=now)
        return [(r.appointment_id, r.offset_minutes) for r in rows]


def reminder_messages(db, appointment_id: int) -> list[Notification]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Notification)
                .where(
                    Notification.appointment_id == appointment_id,
                    Notification.template == "appointment_reminder",
                )
                .order_by(Notification.id)
            )
        )


def set_prefs(db, world, **fields) -> None:
    with db.write() as session:
        save_preferences(session, world.owner, world.clinic_id, PreferencesForm(**fields))


# ---------------------------------------------------------------- the schedule


def test_default_schedule_is_72_and_24_hours_before():
    start = local(PLAIN_THURSDAY, 10)
    planned = reminders.plan(start, TZ, MessagePreferences())
    assert [(p.offset_minutes, p.due_at) for p in planned] == [
        (72 * 60, local(PLAIN_THURSDAY - timedelta(days=3), 10)),
        (24 * 60, local(PLAIN_THURSDAY - timedelta(days=1), 10)),
    ]


def test_whole_days_keep_the_wall_clock_across_the_spring_dst_change():
    start = local(SPRING_SUNDAY, 9)  # 09:00 BST = 08:00 UTC
    day_before = reminders.plan(start, TZ, MessagePreferences())[-1]
    saturday, thursday = (SPRING_SUNDAY - timedelta(days=n) for n in (1, 3))
    assert day_before.due_at == datetime.combine(saturday, time(9), UTC)  # 09:00 GMT
    assert start - day_before.due_at == timedelta(hours=23)  # the night was an hour short
    three_days = reminders.plan(start, TZ, MessagePreferences())[0]
    assert three_days.due_at == datetime.combine(thursday, time(9), UTC)  # 09:00 GMT


def test_whole_days_keep_the_wall_clock_across_the_autumn_dst_change():
    start = local(AUTUMN_MONDAY, 9)  # 09:00 GMT
    planned = reminders.plan(start, TZ, MessagePreferences())
    friday = AUTUMN_MONDAY - timedelta(days=3)
    assert planned[0].due_at == datetime.combine(friday, time(8), UTC)  # 09:00 BST
    assert start - planned[0].due_at == timedelta(hours=73)


def test_quiet_hours_delay_a_reminder_to_their_end():
    start = local(PLAIN_THURSDAY, 7)  # the day-before reminder would be 07:00 Wednesday
    prefs = MessagePreferences(quiet_start=time(21), quiet_end=time(8))
    day_before = reminders.plan(start, TZ, prefs)[-1]
    assert day_before.due_at == local(PLAIN_THURSDAY - timedelta(days=1), 8)


def test_quiet_hours_bring_a_short_reminder_forward_when_waiting_leaves_too_little_notice():
    prefs = MessagePreferences(reminder_hours=(), sms_two_hours=True)
    early = reminders.plan(local(PLAIN_THURSDAY, 8, 30), TZ, prefs)[0]  # 06:30 is quiet
    assert early.sms_only and early.offset_minutes == 120
    assert early.due_at == local(PLAIN_THURSDAY - timedelta(days=1), 20, 59)
    later = reminders.plan(local(PLAIN_THURSDAY, 9, 30), TZ, prefs)[0]  # 07:30 is quiet
    assert later.due_at == local(PLAIN_THURSDAY, 8)  # 08:00 still leaves 90 minutes


def test_quiet_hours_use_clinic_local_time():
    prefs = MessagePreferences(reminder_hours=(24,), quiet_start=time(21), quiet_end=time(8))
    start = datetime.combine(PLAIN_THURSDAY, time(22, 30), UTC)  # 14:30 LA, 07:30 in Tokyo
    assert reminders.plan(start, "America/Los_Angeles", prefs)[0].due_at == start - timedelta(
        days=1
    )
    assert reminders.plan(start, "Asia/Tokyo", prefs)[0].due_at == local_to_utc(
        PLAIN_THURSDAY, time(8), "Asia/Tokyo"
    )  # 07:30 Tokyo is quiet: delayed to 08:00 the same day


def test_only_the_latest_due_reminder_counts_and_never_much_later():
    planned = reminders.plan(local(PLAIN_THURSDAY, 10), TZ, MessagePreferences())
    first, last = planned
    assert reminders.due_now(planned, first.due_at - timedelta(minutes=1), **unconfirmed) is None
    assert reminders.due_now(planned, first.due_at, **unconfirmed) == first
    assert reminders.due_now(planned, last.due_at + timedelta(hours=1), **unconfirmed) == last
    late = last.due_at + reminders.MAX_LATE + timedelta(minutes=1)
    assert reminders.due_now(planned, late, **unconfirmed) is None


unconfirmed = {
    "confirmed": False,
    "confirmed_get_last": True,
    "start_at": local(PLAIN_THURSDAY, 10),
    "tz": TZ,
    "prefs": MessagePreferences(),
}


def test_confirmed_appointments_get_only_the_last_reminder_and_only_if_the_practice_says():
    planned = reminders.plan(local(PLAIN_THURSDAY, 10), TZ, MessagePreferences())
    first, last = planned
    at = {"start_at": local(PLAIN_THURSDAY, 10), "tz": TZ, "prefs": MessagePreferences()}
    assert (
        reminders.due_now(planned, first.due_at, confirmed=True, confirmed_get_last=True, **at)
        is None
    )
    assert (
        reminders.due_now(planned, last.due_at, confirmed=True, confirmed_get_last=True, **at)
        == last
    )
    assert (
        reminders.due_now(planned, last.due_at, confirmed=True, confirmed_get_last=False, **at)
        is None
    )


def test_a_late_reminder_waits_out_the_quiet_hours_and_they_do_not_count_as_late():
    start = local(PLAIN_THURSDAY, 18)  # the day-before reminder is due at 18:00 Wednesday
    planned = reminders.plan(start, TZ, MessagePreferences())
    wednesday = PLAIN_THURSDAY - timedelta(days=1)
    at = {**unconfirmed, "start_at": start}
    assert reminders.due_now(planned, local(wednesday, 20, 59), **at) == planned[-1]
    assert reminders.due_now(planned, local(wednesday, 23), **at) is None  # quiet: it waits
    assert reminders.due_now(planned, local(PLAIN_THURSDAY, 7, 59), **at) is None
    # 14 hours after it was due, but only 3 of them outside the quiet hours
    assert reminders.due_now(planned, local(PLAIN_THURSDAY, 8), **at) == planned[-1]
    assert reminders.due_now(planned, local(PLAIN_THURSDAY, 11), **at) == planned[-1]
    assert reminders.due_now(planned, local(PLAIN_THURSDAY, 11, 1), **at) is None  # 6 h 1 min


def test_a_late_reminder_that_would_leave_too_little_notice_after_the_quiet_hours_is_dropped():
    prefs = MessagePreferences(reminder_hours=(), sms_two_hours=True)
    start = local(PLAIN_THURSDAY, 8, 30)  # the 2-hour text is planned at 20:59 the evening before
    planned = reminders.plan(start, TZ, prefs)
    at = {**unconfirmed, "start_at": start, "prefs": prefs}
    assert reminders.due_now(planned, local(PLAIN_THURSDAY, 8), **at) is None  # 30 min' notice


def test_the_job_sends_no_reminder_in_quiet_hours_and_the_late_one_when_they_end(db, world):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 18), outside_hours=True)
    wednesday = PLAIN_THURSDAY - timedelta(days=1)
    assert run_job(db, local(wednesday, 23)) == []  # due at 18:00; the job ran at 23:00
    assert reminder_messages(db, appointment_id) == []
    with db.read() as session:  # not given up either: it waits
        assert session.scalar(select(func.count()).select_from(ReminderSent)) == 0
    assert run_job(db, local(PLAIN_THURSDAY, 7, 59)) == []
    assert run_job(db, local(PLAIN_THURSDAY, 8)) == [(appointment_id, 24 * 60)]


def test_a_booking_late_in_a_new_york_evening_is_reminded_next_morning_not_at_once(db, world):
    ny = "America/New_York"
    with db.write() as session:
        session.get(Clinic, world.clinic_id).timezone = ny
    wednesday = PLAIN_THURSDAY - timedelta(days=1)
    booked_at = local_to_utc(wednesday, time(21, 22), ny)
    appointment_id = book(db, world, booked_at + timedelta(hours=20), True)  # 17:22 Thu
    assert run_job(db, booked_at) == []  # the day-before reminder was due at 17:22 Wednesday
    assert run_job(db, local_to_utc(PLAIN_THURSDAY, time(7, 59), ny)) == []
    assert run_job(db, local_to_utc(PLAIN_THURSDAY, time(8), ny)) == [(appointment_id, 24 * 60)]


# ---------------------------------------------------------------- the job


def test_job_queues_each_reminder_once_to_every_consented_channel_with_links(db, world):
    with db.write() as session:  # the reminder says where to come (it named the clinic only)
        session.get(Clinic, world.clinic_id).address = "12 Harbour Street, London"
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    due = local(PLAIN_THURSDAY - timedelta(days=1), 10)
    assert run_job(db, due - timedelta(minutes=1)) == []  # the 72 h one is >6 h late: skipped
    assert run_job(db, due) == [(appointment_id, 24 * 60)]
    assert run_job(db, due + timedelta(minutes=5)) == []  # once
    with db.read() as session:
        decided = dict(
            session.execute(
                select(ReminderSent.offset_minutes, ReminderSent.skipped).where(
                    ReminderSent.appointment_id == appointment_id
                )
            ).all()
        )
    assert decided == {24 * 60: ""}  # the 72-hour one was never due in time: not even looked at
    later = book(db, world, local(PLAIN_THURSDAY, 12))
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=3), 12) + timedelta(hours=7))  # 19:00
    with db.read() as session:
        skipped = session.scalar(
            select(ReminderSent.skipped).where(ReminderSent.appointment_id == later)
        )
    assert skipped == "not sent: missed by more than 6 hours"  # decided once, not retried
    sent = reminder_messages(db, appointment_id)
    assert sorted(n.channel for n in sent) == [Channel.EMAIL, Channel.SMS]
    email = next(n for n in sent if n.channel == Channel.EMAIL)
    assert "https://desk.test/patient?p=confirm&t=" in email.body
    assert " at Test Clinic, 12 Harbour Street, London." in email.body
    assert "p=change&t=" in email.body and "&k=cancel" in email.body
    assert "&k=reschedule" in email.body
    with db.read() as session:
        assert session.scalar(
            select(func.count()).where(
                AuditEvent.action == "reminder_queued", AuditEvent.entity_id == appointment_id
            )
        )


def test_two_reminders_when_booked_well_ahead(db, world):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=3), 10, 1)) == [
        (appointment_id, 72 * 60)
    ]
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10, 1)) == [
        (appointment_id, 24 * 60)
    ]


def test_job_follows_dst_for_the_day_before_reminder(db, world):
    appointment_id = book(db, world, local(SPRING_SUNDAY, 9))
    due = datetime.combine(SPRING_SUNDAY - timedelta(days=1), time(9), UTC)
    assert run_job(db, due - timedelta(minutes=1)) == []
    assert run_job(db, due) == [(appointment_id, 24 * 60)]


def test_no_reminder_for_a_cancelled_appointment(db, world):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, appointment_id, reason="Provider ill")
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10)) == []


def test_a_moved_appointment_is_reminded_for_its_new_time(db, world):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10)) == [(appointment_id, 24 * 60)]
    new_day = PLAIN_THURSDAY + timedelta(days=2)
    with db.write() as session:
        moves.reschedule(
            session, world.manager, appointment_id, start_at=local(new_day, 11), provider_id=None
        )
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10, 30)) == []
    assert run_job(db, local(new_day - timedelta(days=1), 11)) == [(appointment_id, 24 * 60)]
    latest = reminder_messages(db, appointment_id)[-1]
    assert f"{new_day:%d %b %Y}, 11:00" in latest.body


def test_a_reminder_waiting_to_go_names_the_provider_who_took_the_visit(db, world):
    """Dr Test calls in sick and Dr Other takes Alex's 10:00 at the same time. The reminder
    queued the day before and not gone yet (held for quiet hours, or to be retried) still said
    'with Dr Test': the sender stops a reminder only when the time changes. It is now stopped
    and written again to the same channels, naming Dr Other."""
    from tests.unit.test_lifecycle import _second_provider

    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10))
    first = reminder_messages(db, appointment_id)
    assert any(n.channel == Channel.EMAIL and "with Dr Test" in n.body for n in first)
    other = _second_provider(db, world)
    with db.write() as session:
        moves.reschedule(session, world.manager, appointment_id, start_at=None, provider_id=other)
    after = reminder_messages(db, appointment_id)
    old = [n for n in after if n.id in {m.id for m in first}]
    new = [n for n in after if n.id not in {m.id for m in first}]
    assert {(n.status, n.last_error) for n in old} == {
        (
            DeliveryStatus.FAILED,
            "Not sent: another provider took the appointment; a new reminder says who.",
        )
    }
    assert sorted(n.channel for n in new) == sorted(n.channel for n in first)
    assert all("Dr Test" not in n.body for n in new)
    assert any(n.channel == Channel.EMAIL and "with Dr Other" in n.body for n in new)
    assert all(n.status == DeliveryStatus.QUEUED for n in new)


def test_reminders_off_means_none_but_status_messages_still_go(db, world):
    with db.write() as session:
        session.get(Patient, world.patient_id).reminders_enabled = False
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10)) == []
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, appointment_id, reason="Provider ill")
    with db.read() as session:
        templates = set(
            session.scalars(
                select(Notification.template).where(Notification.appointment_id == appointment_id)
            )
        )
    assert {"appointment_scheduled", "appointment_cancelled"} <= templates


def test_reminders_follow_consent_and_the_two_hour_text_is_sms_only(db, world):
    with db.write() as session:
        session.get(Patient, world.patient_id).consent_sms = False
    set_prefs(db, world, reminder_hours=[24], sms_two_hours=True)
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 14))
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 14))
    assert [n.channel for n in reminder_messages(db, appointment_id)] == [Channel.EMAIL]
    assert run_job(db, local(PLAIN_THURSDAY, 12)) == [(appointment_id, 120)]
    assert [n.channel for n in reminder_messages(db, appointment_id)] == [Channel.EMAIL]
    with db.read() as session:
        row = session.scalar(select(ReminderSent).where(ReminderSent.offset_minutes == 120))
        assert row.channels == "" and "no consent to text messages" in row.skipped


def test_confirmed_appointment_skips_reminders_unless_the_practice_keeps_the_last(db, world):
    first = book(db, world, local(PLAIN_THURSDAY, 10))
    second = book(db, world, local(PLAIN_THURSDAY, 11))
    with db.write() as session:
        for ident in (first, second):
            link = reminders.reminder_links(session, session.get(Appointment, ident), "https://x")
            raw = link["confirm_link"].split("t=")[1]
            replies.confirm_by_link(session, raw)
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 11)) == [
        (first, 24 * 60),
        (second, 24 * 60),
    ]
    set_prefs(db, world, confirmed_get_last=False)
    third = book(db, world, local(PLAIN_THURSDAY, 12))
    with db.write() as session:
        reminders.record_confirmation(
            session, world.staff, session.get(Appointment, third), "phone"
        )
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 12)) == []


def test_a_reminders_confirm_link_also_asks_to_cancel_or_move_while_its_change_link_works(
    db, world
):
    """A reminder's text carries its confirm link alone, whose page offers to ask to cancel or
    move the visit too: the confirm token opens the change services its change token opens
    (issued with it, for the same visit and time), and expires with it. A change link still
    confirms nothing."""
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    with db.write() as session:
        links = reminders.reminder_links(
            session, session.get(Appointment, appointment_id), "https://x"
        )
    confirm = links["confirm_link"].split("t=")[1]
    change = links["cancel_link"].split("t=")[1].split("&")[0]
    with db.read() as session:
        view = patient_links.change_view(session, confirm)
        assert view.changeable and view.appointment.appointment_id == appointment_id
        with pytest.raises(LinkInvalid):
            replies.confirm_view(session, change)
    with db.write() as session:
        answer = patient_links.submit_change(
            session,
            confirm,
            kind="reschedule",
            requested_day=PLAIN_THURSDAY + timedelta(days=7),
            time_of_day="morning",
            reason="A meeting",
        )
    assert "sent to the practice" in answer
    with db.read() as session:
        asked = session.scalars(select(ChangeRequest)).one()
        assert (asked.appointment_id, asked.kind.value) == (appointment_id, "reschedule")
    with db.write() as session:  # both expire when the visit starts (reminder_links)
        for row in session.scalars(select(LinkToken)):
            row.expires_at = utcnow() - timedelta(minutes=1)
    with db.read() as session:
        for raw in (confirm, change):
            with pytest.raises(LinkInvalid):
                patient_links.change_view(session, raw)


# ---------------------------------------------------------------- high-risk visits


def set_risk(db, appointment_id: int, probability: float) -> None:
    """Store a no-show probability as the scoring job would."""
    with db.write() as session:
        model_id = session.scalar(select(RiskModel.id).limit(1))
        if model_id is None:
            model = RiskModel(rows=0, features={}, metrics={}, payload=b"")
            session.add(model)
            session.flush()
            model_id = model.id
        visit = session.get(Appointment, appointment_id)
        session.merge(
            RiskScore(
                appointment_id=appointment_id,
                model_id=model_id,
                probability=probability,
                start_at=visit.start_at,  # the visit as it was scored
                provider_id=visit.provider_id,
            )
        )


def test_a_high_risk_visit_gets_one_extra_reminder_by_text_48_hours_before(db, world):
    risky = book(db, world, local(PLAIN_THURSDAY, 10))
    edge = book(db, world, local(PLAIN_THURSDAY, 11))
    safe = book(db, world, local(PLAIN_THURSDAY, 12))
    set_risk(db, risky, 0.45)
    set_risk(db, edge, risk_scores.HIGH)  # at the threshold counts
    set_risk(db, safe, risk_scores.HIGH - 0.01)
    two_days = local(PLAIN_THURSDAY - timedelta(days=2), 10)
    assert run_job(db, two_days - timedelta(minutes=1)) == []
    assert run_job(db, two_days) == [(risky, 48 * 60)]
    assert run_job(db, two_days + timedelta(minutes=5)) == []  # once
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=2), 12)) == [(edge, 48 * 60)]
    [extra] = reminder_messages(db, risky)
    assert extra.channel == Channel.SMS  # the patient agreed to texts: one text, not both
    assert "p=confirm&t=" in extra.body
    assert reminder_messages(db, safe) == []
    # the usual day-before reminder still follows, to every channel
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10)) == [(risky, 24 * 60)]
    assert len(reminder_messages(db, risky)) == 3


def test_the_extra_reminder_goes_by_email_without_text_consent_and_follows_the_rules(db, world):
    with db.write() as session:
        session.get(Patient, world.patient_id).consent_sms = False
    set_prefs(db, world, high_risk_hours=30, quiet_start=time(21), quiet_end=time(8))
    by_email = book(db, world, local(PLAIN_THURSDAY, 9))  # 30 h before: 03:00, quiet
    cancelled = book(db, world, local(PLAIN_THURSDAY, 14))
    confirmed = book(db, world, local(PLAIN_THURSDAY, 15))
    for ident in (by_email, cancelled, confirmed):
        set_risk(db, ident, 0.6)
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, cancelled, reason="Provider ill")
        reminders.record_confirmation(
            session, world.staff, session.get(Appointment, confirmed), "phone"
        )
    day_before = PLAIN_THURSDAY - timedelta(days=1)
    assert run_job(db, local(day_before, 7, 59)) == []  # quiet hours hold it back
    assert run_job(db, local(day_before, 8)) == [(by_email, 30 * 60)]
    assert [n.channel for n in reminder_messages(db, by_email)] == [Channel.EMAIL]
    assert run_job(db, local(day_before, 9, 5)) == [(by_email, 24 * 60)]
    run_job(db, local(day_before, 15))
    assert reminder_messages(db, cancelled) == []
    with db.read() as session:
        skipped = session.scalar(
            select(ReminderSent.skipped).where(
                ReminderSent.appointment_id == confirmed, ReminderSent.offset_minutes == 30 * 60
            )
        )
    assert skipped == "not sent: confirmed by the patient"
    set_prefs(db, world, high_risk_hours=0)
    off = book(db, world, local(PLAIN_THURSDAY + timedelta(days=7), 10))
    set_risk(db, off, 0.9)
    assert run_job(db, local(PLAIN_THURSDAY + timedelta(days=5), 10)) == []  # none when off


def test_confirmed_high_risk_visits_get_it_where_the_practice_says_so(db, world):
    set_prefs(db, world, high_risk_confirmed=True)
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    set_risk(db, appointment_id, 0.5)
    with db.write() as session:
        reminders.record_confirmation(
            session, world.staff, session.get(Appointment, appointment_id), "phone"
        )
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=2), 10)) == [(appointment_id, 48 * 60)]


def test_the_extra_reminder_never_repeats_a_usual_one(db, world):
    set_prefs(db, world, reminder_hours=[48, 24])  # the extra one's default time is a usual one
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    set_risk(db, appointment_id, 0.5)
    assert run_job(db, local(PLAIN_THURSDAY - timedelta(days=2), 10)) == [(appointment_id, 48 * 60)]
    assert len(reminder_messages(db, appointment_id)) == 2  # the usual one, to both channels
    with db.write() as session, pytest.raises(ValidationError, match="or 0 for none"):
        save_preferences(session, world.owner, world.clinic_id, PreferencesForm(high_risk_hours=-1))


def test_a_visit_moved_since_its_scoring_waits_for_a_new_score_for_the_extra_reminder(db, world):
    """The score was of the old time (its lead time): a moved visit gets the extra reminder only
    once the daily run has scored it again and it is still high risk."""
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    set_risk(db, appointment_id, 0.6)
    friday = PLAIN_THURSDAY + timedelta(days=1)
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=local(friday, 10))
    two_days = local(friday - timedelta(days=2), 10)
    assert run_job(db, two_days) == []  # the old score does not count
    with db.write() as session:  # the daily run scores the moved visit: still high
        session.execute(delete(RiskScore).where(RiskScore.appointment_id == appointment_id))
    set_risk(db, appointment_id, 0.55)
    assert run_job(db, two_days + timedelta(minutes=15)) == [(appointment_id, 48 * 60)]


def test_high_risk_visits_are_on_the_call_list(db, world):
    in_two_days = utcnow().date() + timedelta(days=2)  # 10:00 then is 34 to 58 hours away
    risky = book(db, world, local(in_two_days, 10))
    low = book(db, world, local(in_two_days, 11))
    set_risk(db, risky, risk_scores.HIGH + 0.05)
    set_risk(db, low, 0.05)
    with db.read() as session:
        calls = risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id)
    assert [c.appointment_id for c in calls] == [risky]
    assert calls[0].phone == "07700 900123"


# ---------------------------------------------------------------- confirmation


def _confirm_token(db, appointment_id: int) -> str:
    with db.write() as session:
        issued = tokens.issue(
            session, "confirm", appointment_id, timedelta(days=30), single_use=False
        )
        return issued.raw


def test_confirm_link_shows_confirmed_on_today_and_is_idempotent(db, world):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    raw = _confirm_token(db, appointment_id)
    with db.write() as session:
        assert "is confirmed" in replies.confirm_by_link(session, raw)
    with db.write() as session:
        assert "confirmed already" in replies.confirm_by_link(session, raw)
    with db.read() as session:
        rows = today.list_today(session, world.staff, world.clinic_id, day=PLAIN_THURSDAY)
        view = replies.confirm_view(session, raw)
    assert rows[0].confirmed.startswith("Confirmed by the patient")
    assert "reminder link" in rows[0].confirmed
    assert view.confirmed.startswith("Confirmed by the patient")
    with db.read() as session:
        events = session.scalar(
            select(func.count()).where(AuditEvent.action == "confirmed_by_patient")
        )
    assert events == 1


def test_a_move_needs_a_new_confirmation_and_a_wrong_token_reveals_nothing(db, world):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    with db.write() as session:
        replies.confirm_by_link(session, _confirm_token(db, appointment_id))
    with db.write() as session:
        moves.reschedule(
            session,
            world.manager,
            appointment_id,
            start_at=local(PLAIN_THURSDAY, 15),
            provider_id=None,
        )
    with db.read() as session:
        assert reminders.confirmations(session, [appointment_id]) == {}
        with pytest.raises(LinkInvalid):
            replies.confirm_view(session, "not-a-token")
        change = tokens.issue(session, "change", appointment_id, timedelta(days=1))
        with pytest.raises(LinkInvalid):  # single purpose: a change link does not confirm
            replies.confirm_view(session, change.raw)


def test_a_cancelled_appointment_cannot_be_confirmed(db, world):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    raw = _confirm_token(db, appointment_id)
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, appointment_id, reason="Provider ill")
    with db.write() as session, pytest.raises(ValidationError, match="cancelled"):
        replies.confirm_by_link(session, raw)


def test_tomorrows_call_list_holds_the_unconfirmed(db, world):
    first = book(db, world, local(PLAIN_THURSDAY, 10))
    second = book(db, world, local(PLAIN_THURSDAY, 11))
    with db.write() as session:
        replies.confirm_by_link(session, _confirm_token(db, first))
    now = local(PLAIN_THURSDAY - timedelta(days=1), 12)
    with db.read() as session:
        calls = today.call_list(session, world.staff, world.clinic_id, now=now)
    assert [c.id for c in calls] == [second]
    assert calls[0].phone == "07700 900123"


def test_preferences_are_validated_and_need_the_permission(db, world):
    with db.write() as session, pytest.raises(PermissionDenied):
        save_preferences(session, world.staff, world.clinic_id, PreferencesForm())
    with db.write() as session, pytest.raises(ValidationError, match="from 1 to"):
        save_preferences(session, world.owner, world.clinic_id, PreferencesForm(reminder_hours=[0]))
    with db.write() as session, pytest.raises(ValidationError, match="same time"):
        save_preferences(
            session,
            world.owner,
            world.clinic_id,
            PreferencesForm(quiet_start=time(9), quiet_end=time(9)),
        )


def test_confirmation_rate_counts_reminded_appointments_confirmed(db, world):
    first = book(db, world, local(PLAIN_THURSDAY, 10))
    book(db, world, local(PLAIN_THURSDAY, 11))
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=3), 11))  # 72 h before
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 11))  # and 24 h before
    with db.write() as session:
        replies.confirm_by_link(session, _confirm_token(db, first))
    with db.read() as session:
        sent = session.scalar(select(func.count()).select_from(ReminderSent))
        assert sent == 4  # two reminders each: every appointment still counts once
        rate = confirmations.confirmation_rate(
            session, world.manager, PLAIN_THURSDAY, PLAIN_THURSDAY, world.clinic_id
        )
        with pytest.raises(PermissionDenied):
            confirmations.confirmation_rate(session, world.staff, PLAIN_THURSDAY, PLAIN_THURSDAY)
    assert (rate.reminded, rate.confirmed, rate.rate) == (2, 1, 0.5)


def test_a_visit_moved_after_its_confirmation_counts_as_confirmed_only_again(db, world):
    """Reminded of 10:00 and confirmed, then moved to 14:00: not a confirmed visit of 14:00
    until reminded of and confirmed for it (before: counted confirmed, by the old time's)."""
    visit = book(db, world, local(PLAIN_THURSDAY, 10))
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 10))
    with db.write() as session:
        replies.confirm_by_link(session, _confirm_token(db, visit))

    def rate():
        with db.read() as session:
            found = confirmations.confirmation_rate(
                session, world.owner, PLAIN_THURSDAY, PLAIN_THURSDAY, world.clinic_id
            )
        return found.reminded, found.confirmed

    assert rate() == (1, 1)
    with db.write() as session:
        moves.reschedule(
            session, world.manager, visit, start_at=local(PLAIN_THURSDAY, 14), provider_id=None
        )
    assert rate() == (0, 0)  # reminded of and confirmed for 10:00 only
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 14))
    assert rate() == (1, 0)
    with db.write() as session:
        replies.confirm_by_link(session, _confirm_token(db, visit))
    assert rate() == (1, 1)


def test_confirmation_rate_keeps_to_the_provider_and_service_filtered_on(db, world):
    """The Cancellations page shows it beside figures of one provider or service: it counts
    only their reminded appointments (before: every provider's and service's), a service's
    as the figures count them: every visit holding it, wherever it comes in the visit."""
    first = book(db, world, local(PLAIN_THURSDAY, 10))
    second = book(db, world, local(PLAIN_THURSDAY, 11))
    run_job(db, local(PLAIN_THURSDAY - timedelta(days=1), 11))
    with db.write() as session:
        replies.confirm_by_link(session, _confirm_token(db, first))
        other_provider, other_service = Provider(name="Dr Other"), Service(name="Peel")
        other_service.duration_minutes, other_service.price_cents = 30, 5000
        session.add_all([other_provider, other_service])
        session.flush()
        visit = session.get(Appointment, second)  # another's visit, of another service
        visit.provider_id, visit.service_id = other_provider.id, other_service.id
        visit.services.clear()  # its services listed as booking lists them: Peel alone
        session.flush()
        visit.services.append(AppointmentService(service_id=other_service.id))
        others = other_provider.id, other_service.id
        # the first visit booked with Peel after its service (as a package would be)
        booked = session.get(Appointment, first)
        booked.services.append(AppointmentService(service_id=other_service.id, position=1))

    def rate(provider_id=None, service_id=None):
        with db.read() as session:
            found = confirmations.confirmation_rate(
                session,
                world.owner,
                PLAIN_THURSDAY,
                PLAIN_THURSDAY,
                world.clinic_id,
                provider_id=provider_id,
                service_id=service_id,
            )
        return found.reminded, found.confirmed

    assert rate() == (2, 1)
    assert rate(provider_id=world.provider_id) == (1, 1)
    assert rate(provider_id=others[0]) == (1, 0)
    assert rate(service_id=world.service_id) == (1, 1)
    # Peel: both visits holding it, the first though Peel comes second in it (before: (1, 0))
    assert rate(service_id=others[1]) == (2, 1)
    assert rate(world.provider_id, others[1]) == (1, 1)


def _deliver(db, smtp, now: datetime):
    from core.kernel.config import SmtpSettings
    from core.messaging import delivery

    settings = SmtpSettings(host=smtp.host, port=smtp.port)
    channels = {
        Channel.EMAIL: delivery.SmtpTransport(settings),
        Channel.SMS: delivery.LoggingSmsTransport(),
    }
    return delivery.send_due(db.write, channels, now=now)


@pytest.mark.parametrize("change", ["cancelled", "moved"])
def test_a_reminder_still_waiting_is_not_sent_once_the_visit_is_cancelled_or_moved(
    db, world, loopback_smtp, change
):
    """The mail server was down when the reminder was queued; meanwhile the visit was cancelled
    or moved. Before, once the server was back the patient was sent 'Reminder: your
    appointment on Thu … 10:00 … Please confirm you are coming' for a visit that no longer
    stood (and its confirm link confirmed the moved visit's new time)."""
    from core.messaging import history

    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    due = local(PLAIN_THURSDAY - timedelta(days=1), 10)
    assert run_job(db, due) == [(appointment_id, 24 * 60)]  # queued; the server is down
    with db.write() as session:
        if change == "cancelled":
            moves.cancel_appointment(session, world.manager, appointment_id, reason="Ill")
        else:
            moves.reschedule(
                session,
                world.manager,
                appointment_id,
                start_at=local(PLAIN_THURSDAY + timedelta(days=7), 11),
                provider_id=None,
            )
    loopback_smtp.clear()
    _deliver(db, loopback_smtp, due + timedelta(minutes=30))  # the server is back
    subjects = [m["Subject"] for m in loopback_smtp.messages]
    told = "is cancelled" if change == "cancelled" else "has moved to"
    assert any(told in s for s in subjects), subjects  # the patient hears of the change
    assert not any(s.startswith("Reminder") for s in subjects), subjects
    with db.read() as session:
        rows = history.messages_of(session, world.staff, appointment_id)
    stopped = {(r.channel, r.status, r.last_error) for r in rows if r.template.endswith("reminder")}
    why = "cancelled" if change == "cancelled" else "moved to another time"
    assert stopped == {
        (channel, "not sent (stopped)", f"Not sent: the appointment was {why}.")
        for channel in ("email", "text message")
    }


def test_a_reminder_for_the_visits_current_time_still_goes(db, world, loopback_smtp):
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 10))
    due = local(PLAIN_THURSDAY - timedelta(days=1), 10)
    run_job(db, due)
    loopback_smtp.clear()
    _deliver(db, loopback_smtp, due + timedelta(minutes=1))
    assert any(m["Subject"].startswith("Reminder") for m in loopback_smtp.messages)
    assert all(n.status.value == "sent" for n in reminder_messages(db, appointment_id))


# ---------------------------------------------------------------- quiet hours at the sender


class Keep:
    """A transport that keeps what it was given to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None]] = []

    def send(self, notification: Notification) -> None:
        self.sent.append((notification.template, notification.appointment_id))


def _drain(db, now: datetime) -> None:
    """Everything queued so far (the booking's confirmation, say) counts as sent."""
    delivery.send_due(db.write, {Channel.EMAIL: Keep(), Channel.SMS: Keep()}, now=now)


def _email_reminder(db, appointment_id: int) -> Notification:
    [row] = [n for n in reminder_messages(db, appointment_id) if n.channel == Channel.EMAIL]
    return row


def test_a_reminder_failing_just_before_quiet_hours_is_retried_when_they_end(db, world):
    """Queued at 20:55 for a 20:55 visit tomorrow; the mail server answers 451 twice. Before,
    the back-off's third try (21:01) went out inside the quiet hours; now it waits for 08:00
    and goes then, no attempt counted for the wait."""

    wednesday = PLAIN_THURSDAY - timedelta(days=1)
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 20, 55), outside_hours=True)
    due = local(wednesday, 20, 55)
    _drain(db, due - timedelta(hours=1))
    assert run_job(db, due) == [(appointment_id, 24 * 60)]
    with LoopbackSMTP("temporary") as server:
        email = {Channel.EMAIL: delivery.SmtpTransport(SmtpSettings(server.host, server.port))}
        assert delivery.send_due(db.write, email, now=due).retrying == 1
        assert delivery.send_due(db.write, email, now=due + timedelta(minutes=1)).retrying == 1
        assert _email_reminder(db, appointment_id).next_attempt_at == local(wednesday, 21, 1)
        server.behaviour = "accept"
        for night in (local(wednesday, 21, 1), local(wednesday, 23, 35), local(PLAIN_THURSDAY, 7)):
            report = delivery.send_due(db.write, email, now=night)
            assert (report.sent, report.held) == (0, int(night == local(wednesday, 21, 1)))
        assert server.messages == []
        row = _email_reminder(db, appointment_id)
        assert (row.status.value, row.attempts, row.next_attempt_at) == (
            "failed",
            2,
            local(PLAIN_THURSDAY, 8),
        )
        assert "451" in row.last_error  # the screen still says why it was retried
        assert delivery.send_due(db.write, email, now=local(PLAIN_THURSDAY, 8)).sent == 1
        assert [m["Subject"][:9] for m in server.messages] == ["Reminder:"]
    assert _email_reminder(db, appointment_id).status.value == "sent"


def test_a_reminder_held_for_smtp_set_up_at_night_waits_for_the_clinics_morning(db, world):
    """New York clinic: the reminder was queued at 10:00 while SMTP was not set up; it is set
    up at 23:00 New York time (04:00 UTC, daytime in London and for the server). Before, it
    went out at once; now at 08:00 New York time."""

    ny = "America/New_York"
    with db.write() as session:
        session.get(Clinic, world.clinic_id).timezone = ny
    wednesday = PLAIN_THURSDAY - timedelta(days=1)
    appointment_id = book(db, world, local_to_utc(PLAIN_THURSDAY, time(10), ny))
    due = local_to_utc(wednesday, time(10), ny)
    _drain(db, due - timedelta(hours=1))
    assert run_job(db, due) == [(appointment_id, 24 * 60)]
    sms_only = {Channel.SMS: delivery.LoggingSmsTransport()}
    assert delivery.send_due(db.write, sms_only, now=due).waiting == 1
    configured_at = local_to_utc(wednesday, time(23), ny)
    with LoopbackSMTP() as server:
        email = {Channel.EMAIL: delivery.SmtpTransport(SmtpSettings(server.host, server.port))}
        assert delivery.send_due(db.write, email, now=configured_at).held == 1
        assert server.messages == []
        row = _email_reminder(db, appointment_id)
        assert (row.status.value, row.attempts) == ("queued", 0)
        assert row.next_attempt_at == local_to_utc(PLAIN_THURSDAY, time(8), ny)
        with db.read() as session:
            [shown] = [
                r
                for r in messages_of(session, world.staff, appointment_id)
                if r.channel == "email" and r.template.endswith("reminder")
            ]
        assert (
            shown.last_error
            == "Held for the clinic's quiet hours: it goes out at 08:00 (clinic time)."
        )
        morning = local_to_utc(PLAIN_THURSDAY, time(8), ny)
        assert delivery.send_due(db.write, email, now=morning - timedelta(minutes=1)).sent == 0
        assert delivery.send_due(db.write, email, now=morning).sent == 1
    row = _email_reminder(db, appointment_id)
    assert (row.status.value, row.attempts, row.last_error) == ("sent", 1, None)


def test_a_reminder_whose_wait_for_morning_would_leave_under_an_hour_is_stopped(db, world):
    """A 12-hour reminder for an 08:30 visit, queued at 20:30 and failing until 21:06: waiting
    for 08:00 would leave half an hour, which the reminder rules never send."""

    set_prefs(db, world, reminder_hours=[12])
    wednesday = PLAIN_THURSDAY - timedelta(days=1)
    appointment_id = book(db, world, local(PLAIN_THURSDAY, 8, 30), outside_hours=True)
    due = local(wednesday, 20, 30)
    _drain(db, due - timedelta(hours=1))
    assert run_job(db, due) == [(appointment_id, 12 * 60)]
    with LoopbackSMTP("temporary") as server:
        email = {Channel.EMAIL: delivery.SmtpTransport(SmtpSettings(server.host, server.port))}
        for minutes in (0, 1, 6):
            delivery.send_due(db.write, email, now=due + timedelta(minutes=minutes))
        server.behaviour = "accept"
        delivery.send_due(db.write, email, now=local(wednesday, 21, 6))
        delivery.send_due(db.write, email, now=local(PLAIN_THURSDAY, 8))
        assert server.messages == []
    with db.read() as session:
        [shown] = [
            r
            for r in messages_of(session, world.staff, appointment_id)
            if r.channel == "email" and r.template.endswith("reminder")
        ]
    assert shown.status == "not sent (stopped)"
    assert "less than an hour before the appointment" in shown.last_error


def test_what_a_person_just_caused_is_not_held_by_quiet_hours(db, world):
    """At 21:30 the desk cancels a visit and books another: the patient hears of both at once;
    tomorrow's reminder, queued before quiet hours and not sent yet, still waits for 08:00."""

    wednesday = PLAIN_THURSDAY - timedelta(days=1)
    reminded = book(db, world, local(PLAIN_THURSDAY, 10))
    assert run_job(db, local(wednesday, 10)) == [(reminded, 24 * 60)]
    cancelled = book(db, world, local(PLAIN_THURSDAY + timedelta(days=7), 10))
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, cancelled, reason="Ill")
    keep = Keep()
    report = delivery.send_due(db.write, {Channel.EMAIL: keep}, now=local(wednesday, 21, 30))
    assert report.held == 1
    recording = keep.sent
    assert {("appointment_scheduled", cancelled), ("appointment_cancelled", cancelled)} <= set(
        recording
    )
    assert all(template != "appointment_reminder" for template, _ in recording)
