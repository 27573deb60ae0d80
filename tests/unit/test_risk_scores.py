"""No-show risk as staff meet it: the badges' figures, the call list and the overbooking
suggestion read from the stored scores (core.analytics.risk_scores). Re-run on PostgreSQL by
tests/integration/test_risk_scores_pg.py."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, select
from sqlalchemy import text as sa_text

from core.analytics import risk_jobs, risk_model, risk_scores
from core.analytics.risk_features import FEATURES
from core.kernel.authz import SYSTEM, patient_actor
from core.kernel.clock import local_to_utc, local_today, to_local
from core.kernel.config import Settings
from core.kernel.errors import PermissionDenied, ValidationError
from core.messaging import reminders
from core.scheduling import moves, visits
from db import migrate
from db.models import (
    Appointment,
    AppointmentConfirmation,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    RiskCall,
    RiskModel,
    RiskScore,
    Setting,
)
from db.types import utcnow
from tests.factories import make_visit
from tests.unit.test_risk import START as HISTORY
from tests.unit.test_risk import small_history_and_model

TZ = "Europe/London"


def book(db, world, start: datetime, *, outside_hours: bool = False) -> int:
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
                allow_double_booking=True,
                outside_hours_override=outside_hours,
            ),
        ).id


def score(db, appointment_id: int, probability: float) -> None:
    """Store a score as the daily run does (its row replaced, scored now)."""
    with db.write() as session:
        model_id = session.scalar(select(RiskModel.id).limit(1))
        if model_id is None:
            model = RiskModel(rows=0, features={}, metrics={}, payload=b"")
            session.add(model)
            session.flush()
            model_id = model.id
        session.execute(delete(RiskScore).where(RiskScore.appointment_id == appointment_id))
        visit = session.get(Appointment, appointment_id)
        session.add(
            RiskScore(
                appointment_id=appointment_id,
                model_id=model_id,
                probability=probability,
                start_at=visit.start_at,  # the visit as it was scored
                provider_id=visit.provider_id,
            )
        )


def in_days(days: int, hour: int) -> datetime:
    return local_to_utc(local_today(TZ) + timedelta(days=days), time(hour), TZ)


def test_a_moved_visit_shows_no_stale_score_until_it_is_scored_again(db, world):
    """A move changes the lead time (and may change the day and provider): the score of the
    old time is not the new visit's. Until the next daily run scores it, the badge says it is
    not scored yet, and the call list and the overbooking suggestion leave it out."""
    moved = book(db, world, in_days(2, 10))
    kept = book(db, world, in_days(2, 11))
    score(db, moved, 0.62)
    score(db, kept, 0.55)
    start, end = in_days(0, 0), in_days(14, 0)
    with db.read() as session:
        found = risk_scores.risk_of(session, world.staff, [moved, kept])
        assert {i: r.probability for i, r in found.items()} == {moved: 0.62, kept: 0.55}
        [day] = risk_scores.overbooking_suggestions(
            session, world.staff, clinic_id=world.clinic_id, start=start, end=end
        )
        assert (day.visits, round(day.expected_no_shows, 2)) == (2, 1.17)
    with db.write() as session:  # the afternoon of the same day
        moves.reschedule(session, world.staff, moved, start_at=in_days(2, 15), notify=False)
    with db.read() as session:
        found = risk_scores.risk_of(session, world.staff, [moved, kept])
        assert found[moved].probability is None  # not scored yet, not the old 62%
        assert found[kept].probability == 0.55
        calls = risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id, days=14)
        assert [c.appointment_id for c in calls] == [kept]
        suggested = risk_scores.overbooking_suggestions(
            session, world.staff, clinic_id=world.clinic_id, start=start, end=end
        )
        assert suggested == []  # 0.55 alone: the moved visit's old 0.62 does not count
    score(db, moved, 0.58)  # the next daily run
    with db.read() as session:
        found = risk_scores.risk_of(session, world.staff, [moved])
        assert found[moved].probability == 0.58
        calls = risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id, days=14)
        assert sorted(c.appointment_id for c in calls) == sorted([moved, kept])


def test_a_note_on_a_visit_keeps_its_score(db, world):
    """Only a move makes the score another visit's: a note (or a payment) changes neither its
    time nor its provider, so the badge, the call list and the extra reminder keep it (before,
    any change of the appointment hid it until the next daily run)."""
    visit = book(db, world, in_days(2, 10))
    score(db, visit, 0.62)
    with db.write() as session:
        moves.update_appointment(session, world.manager, visit, notes="Prefers the morning")
    with db.read() as session:
        assert risk_scores.risk_of(session, world.staff, [visit])[visit].probability == 0.62
        calls = risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id, days=14)
        assert [c.appointment_id for c in calls] == [visit]


def test_the_migration_keeps_scores_made_since_their_visit_last_changed(db, world):
    """Scores stored before 0013 take the start and provider of their visit where they were
    scored after its last change; one scored before the visit changed stays not current."""
    kept, moved = book(db, world, in_days(2, 10)), book(db, world, in_days(2, 11))
    score(db, kept, 0.3)
    score(db, moved, 0.6)
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0012")
        connection.execute(  # the visit changed after it was scored
            sa_text("UPDATE appointments SET updated_at = :later WHERE id = :id"),
            {"later": utcnow() + timedelta(hours=1), "id": moved},
        )
    migrate.upgrade(db.engine)
    with db.read() as session:
        found = risk_scores.risk_of(session, world.staff, [kept, moved])
    assert (found[kept].probability, found[moved].probability) == (0.3, None)


def test_a_visit_booked_since_the_scoring_is_not_scored_yet_and_others_say_nothing(db, world):
    """No model: nothing to say. With one, an upcoming visit without a score says so; a
    cancelled visit's old score is not shown."""
    fresh = book(db, world, in_days(3, 10))
    with db.read() as session:
        assert risk_scores.risk_of(session, world.staff, [fresh]) == {}
    other = book(db, world, in_days(3, 11))
    score(db, other, 0.4)
    cancelled = book(db, world, in_days(3, 12))
    score(db, cancelled, 0.7)
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, cancelled, reason="Provider ill")
    with db.read() as session:
        found = risk_scores.risk_of(session, world.staff, [fresh, other, cancelled])
    assert found[fresh].probability is None
    assert found[other].probability == 0.4
    assert cancelled not in found
    # beyond the two weeks the runs score, 'not scored yet (within the hour)' would be untrue
    far = book(db, world, in_days(20, 10))
    with db.read() as session:
        assert risk_scores.risk_of(session, world.staff, [far]) == {}


def test_no_extra_booking_is_suggested_for_a_day_gone_by(db, world):
    """Yesterday's visits never marked (still scheduled) keep their scores; an extra booking
    cannot be made in the past, so the calendar's suggestion covers only what is to come."""
    yesterday = in_days(-1, 10)
    with db.write() as session:
        ids = []
        for hour in (0, 1):
            row = make_visit(
                session,
                world,
                status=AppointmentStatus.SCHEDULED,
                start_at=yesterday + timedelta(hours=hour),
                end_at=yesterday + timedelta(hours=hour, minutes=30),
                allow_double_booking=True,
            )
            ids.append(row.id)
    ahead = [book(db, world, in_days(4, hour)) for hour in (10, 11)]
    for ident in ids + ahead:
        score(db, ident, 0.6)
    with db.read() as session:
        suggested = risk_scores.overbooking_suggestions(
            session, world.staff, clinic_id=world.clinic_id, start=in_days(-3, 0), end=in_days(7, 0)
        )
    assert [s.day for s in suggested] == [local_today(TZ) + timedelta(days=4)]


def test_the_call_list_counts_days_ahead_as_the_clinics_days(db, world):
    """'1 day ahead' is the rest of today and all of tomorrow at the clinic: a front desk
    calling in the afternoon for tomorrow must not miss tomorrow's evening."""
    late_tomorrow = book(db, world, in_days(1, 23) + timedelta(minutes=45), outside_hours=True)
    after_that = book(db, world, in_days(2, 0) + timedelta(minutes=30), outside_hours=True)
    for ident in (late_tomorrow, after_that):
        score(db, ident, 0.5)
    with db.read() as session:
        calls = risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id, days=1)
    assert [c.appointment_id for c in calls] == [late_tomorrow]


def call_order(db, world, days: int = 14) -> list[tuple[int, bool]]:
    with db.read() as session:
        calls = risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id, days=days)
    return [(c.appointment_id, c.called) for c in calls]


def test_the_call_list_puts_the_calls_to_make_first_by_band_then_start(db, world):
    """Within a risk band the soonest visit is called first (a call helps only before it): a
    45% visit in four days comes after a 35% one tomorrow, both high; a high one before a
    medium one sooner. Before, the list was by probability alone, with no tie-break."""
    later_high = book(db, world, in_days(4, 10))
    sooner_high = book(db, world, in_days(1, 10))
    soonest_medium = book(db, world, in_days(1, 9))
    same_time = book(db, world, in_days(1, 10))  # tie: the lower id first
    for ident, p in ((later_high, 0.45), (sooner_high, 0.35), (soonest_medium, 0.2)):
        score(db, ident, p)
    score(db, same_time, 0.35)
    with db.read() as session:
        calls = risk_scores.call_list(
            session, world.staff, clinic_id=world.clinic_id, days=14, threshold=0.15
        )
    assert [c.appointment_id for c in calls] == [
        sooner_high,
        same_time,
        later_high,
        soonest_medium,
    ]


def test_visits_the_patient_confirmed_come_after_the_unconfirmed_calls(db, world):
    """A patient who confirmed tomorrow's visit was called before an unconfirmed one in three
    days, the desk's time spent where the patient had already answered."""
    confirmed = book(db, world, in_days(1, 10))
    unconfirmed = book(db, world, in_days(3, 10))
    medium = book(db, world, in_days(2, 10))
    for ident, p in ((confirmed, 0.5), (unconfirmed, 0.4), (medium, 0.2)):
        score(db, ident, p)
    with db.write() as session:
        visit = session.get(Appointment, confirmed)
        session.add(
            AppointmentConfirmation(
                appointment_id=confirmed, start_at=visit.start_at, channel="reminder link"
            )
        )
    with db.read() as session:
        calls = risk_scores.call_list(
            session, world.staff, clinic_id=world.clinic_id, days=14, threshold=0.15
        )
    assert [c.appointment_id for c in calls] == [unconfirmed, medium, confirmed]
    assert calls[-1].confirmed.startswith("Confirmed by the patient") and not calls[-1].called


def test_a_call_is_recorded_with_its_outcome_who_and_when_and_goes_under_the_rest(db, world):
    """Called: its outcome, note, who and when (clinic time) stored and audited; the row stays
    on the list, under the calls still to make. A visit the patient confirmed says so."""
    first, second = book(db, world, in_days(1, 10)), book(db, world, in_days(2, 10))
    score(db, first, 0.5)
    score(db, second, 0.4)
    with db.write() as session:
        reminders.record_confirmation(
            session, world.staff, session.get(Appointment, second), "SMS reply"
        )
        risk_scores.record_call(session, world.staff, first, "message", "  Voicemail **full**  ")
    assert call_order(db, world) == [(second, False), (first, True)]
    with db.read() as session:
        by_id = {
            c.appointment_id: c
            for c in risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id, days=14)
        }
        [stored] = session.scalars(select(RiskCall)).all()
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "call_list_call")
        ).all()
    assert (stored.outcome, stored.note, stored.called_by_user_id) == (
        "message",
        "Voicemail **full**",
        world.staff.user_id,
    )
    when = to_local(stored.called_at, TZ).strftime("%H:%M")
    assert by_id[first].call.startswith("Left a message · Staff · ")
    assert by_id[first].call.endswith(when) and by_id[first].note == "Voicemail **full**"
    assert by_id[second].confirmed.startswith("Confirmed by the patient · ")
    assert by_id[second].confirmed.endswith("SMS reply") and by_id[first].confirmed == ""
    assert (event.entity_id, event.user_id, event.details["outcome"]) == (
        first,
        world.staff.user_id,
        "message",
    )


def test_no_answer_is_done_for_its_day_and_a_move_makes_a_visit_to_call_again(db, world):
    """No answer yesterday: to call again today (with the last outcome shown); reached stays
    done. A call was about the visit's start then: moved, it is to be called again."""
    unanswered, reached = book(db, world, in_days(2, 10)), book(db, world, in_days(2, 11))
    for ident in (unanswered, reached):
        score(db, ident, 0.5)
    with db.write() as session:
        risk_scores.record_call(session, world.staff, unanswered, "no_answer")
        risk_scores.record_call(session, world.manager, reached, "reached")
    assert call_order(db, world) == [(unanswered, True), (reached, True)]
    with db.write() as session:  # the no answer was yesterday
        row = session.scalar(select(RiskCall).where(RiskCall.appointment_id == unanswered))
        row.called_at -= timedelta(days=1)
    assert call_order(db, world) == [(unanswered, False), (reached, True)]
    with db.write() as session:
        moves.reschedule(session, world.staff, reached, start_at=in_days(2, 15), notify=False)
    score(db, reached, 0.5)  # scored again at its new time
    with db.read() as session:
        calls = risk_scores.call_list(session, world.staff, clinic_id=world.clinic_id, days=14)
    assert [(c.appointment_id, c.called, c.call) for c in calls][1] == (reached, False, "")
    assert calls[0].call.startswith("No answer · Staff · ")


def test_recording_a_call_is_checked_in_core(db, world):
    """The roles that see the call list may work it; a patient may not. A wrong outcome, a
    long note, a visit no longer scheduled or one that has begun (the list was left open past
    it) is refused with what to do, nothing stored."""
    visit = book(db, world, in_days(1, 10))
    cancelled = book(db, world, in_days(1, 11))
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, cancelled, reason="Patient moved away")
        begun = utcnow() - timedelta(minutes=5)  # still scheduled: not marked yet
        past = make_visit(
            session,
            world,
            start_at=begun,
            end_at=begun + timedelta(minutes=30),
            status=AppointmentStatus.SCHEDULED,
        ).id
    with db.write() as session:
        for who in (world.owner, world.manager, world.staff):
            risk_scores.record_call(session, who, visit, "reached")
    refusals = [
        (patient_actor("Alex Morgan", "portal"), visit, "reached", "", PermissionDenied, "may not"),
        (world.staff, visit, "busy", "", ValidationError, "Choose how the call went"),
        (world.staff, visit, "reached", "x" * 501, ValidationError, "call note is too long"),
        (world.staff, cancelled, "reached", "", ValidationError, "is cancelled now"),
        (world.staff, past, "reached", "", ValidationError, "began at .*still to come"),
        (world.staff, 99999, "reached", "", Exception, "no appointment #99999"),
    ]
    for who, ident, outcome, note, error, said in refusals:
        with pytest.raises(error, match=said), db.write() as session:
            risk_scores.record_call(session, who, ident, outcome, note)
    with db.read() as session:
        assert len(session.scalars(select(RiskCall)).all()) == 3


def test_the_overbooking_suggestion_names_the_highest_risk_visits_start(db, world):
    """A time to book the extra visit: the start of that day's highest-risk visit (the earliest
    of equals), where a no-show is likeliest to leave the provider free."""
    day = [book(db, world, in_days(3, hour)) for hour in (9, 11, 14, 16)]
    for ident, p in zip(day, (0.3, 0.55, 0.2, 0.55), strict=True):
        score(db, ident, p)
    with db.read() as session:
        [suggestion] = risk_scores.overbooking_suggestions(
            session, world.staff, clinic_id=world.clinic_id, start=in_days(0, 0), end=in_days(7, 0)
        )
    assert (suggestion.start_at, suggestion.highest, suggestion.visits) == (in_days(3, 11), 0.55, 4)


def trained(db, world) -> Settings:
    """A model trained on a small history (as the weekly fit stores it); the jobs' settings."""
    small_history_and_model(db, world, until=HISTORY + timedelta(days=41))
    return Settings(database_url=db.url, secret_key="k" * 40, data_dir=Path())


def test_a_visit_moved_while_the_run_scored_keeps_no_score_of_its_old_time(db, world):
    """The daily run reads and scores in one transaction (seconds on a large practice) and
    stores in another: a visit moved in between kept the score of its old time as if it were
    of the new one (its badge, the call list, the extra reminder). The score keeps the start
    it was made for, so the moved visit is not scored yet until a run scores its new time."""
    trained(db, world)
    visit = book(db, world, in_days(3, 10))
    with db.read() as session:
        model_id, scored = risk_model.upcoming(session, SYSTEM)
    assert visit in [s[0] for s in scored]
    with db.write() as session:  # at the desk, while the run scores
        moves.reschedule(session, world.staff, visit, start_at=in_days(1, 15), notify=False)
    with db.write() as session:
        risk_model.store_scores(session, SYSTEM, model_id, scored)
    with db.read() as session:
        assert risk_scores.risk_of(session, world.staff, [visit])[visit].probability is None
    with db.write() as session:  # the next run scores the new time
        risk_model.store_upcoming(session, SYSTEM)
    with db.read() as session:
        assert risk_scores.risk_of(session, world.staff, [visit])[visit].probability is not None


def test_a_visit_booked_after_the_days_run_is_scored_within_the_hour(db, world):
    """A visit booked in the afternoon for the next morning waited for the next daily run, by
    then after the visit: no badge, no call, no extra reminder. Between daily runs, a round at
    most every TOPUP scores the visits booked or moved since (and nothing when there are none);
    the daily run keeps its time."""
    settings = trained(db, world)
    first = book(db, world, in_days(2, 10))
    risk_jobs.score_job(db, settings)  # the day's run
    with db.read() as session:
        assert risk_scores.risk_of(session, world.staff, [first])[first].probability is not None
        day_run = session.get(Setting, "risk_scored").value["at"]
    later = book(db, world, in_days(1, 9))  # booked after it, for tomorrow morning
    risk_jobs.score_job(db, settings)  # the next rounds, within the hour: nothing yet
    with db.read() as session:
        assert risk_scores.risk_of(session, world.staff, [later])[later].probability is None

    an_hour_on(db)
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        found = risk_scores.risk_of(session, world.staff, [first, later])
        assert found[later].probability is not None and found[first].probability is not None
        assert session.get(Setting, "risk_scored").value["at"] == day_run  # still the day's
        stamps = dict(session.execute(select(RiskScore.appointment_id, RiskScore.scored_at)).all())
    an_hour_on(db)  # nothing booked or moved since: no run
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert dict(
            session.execute(select(RiskScore.appointment_id, RiskScore.scored_at)).all()
        ) == (stamps)


def an_hour_on(db) -> None:
    """As if the scoring had last looked for visits to score an hour ago."""
    with db.write() as session:
        row = session.get(Setting, "risk_scored")
        checked = row.value.get("checked", row.value["at"])  # the last look
        checked = datetime.fromisoformat(checked) - timedelta(hours=1, minutes=1)
        row.value = {**row.value, "checked": checked.isoformat()}


def test_a_model_retrained_between_daily_runs_scores_the_visits_within_the_hour(db, world):
    """Retrain now (or the weekly fit) stores a new model: the model page shows it at once,
    while the badges, the call list and the extra reminder kept the old model's scores until
    the next daily run. Within the hour the new model's scores replace them."""
    settings = trained(db, world)
    visit = book(db, world, in_days(2, 10))
    risk_jobs.score_job(db, settings)  # the day's run
    with db.write() as session:
        newer = risk_model.train(session, SYSTEM, until=HISTORY + timedelta(days=40)).model_id
    an_hour_on(db)
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert session.get(RiskScore, visit).model_id == newer
        assert risk_scores.risk_of(session, world.staff, [visit])[visit].probability is not None


def test_a_no_show_undone_rescores_the_patients_visits_within_the_hour(db, world):
    """A no-show recorded by mistake was in the history the patient's later visits were scored
    with; undone, their badge, the call list and the extra reminder went on it until the next
    day's run. Within the hour after the undo they are scored again."""
    settings = trained(db, world)
    earlier = utcnow() - timedelta(hours=2)
    with db.write() as session:
        mistaken = make_visit(
            session,
            world,
            start_at=earlier,
            end_at=earlier + timedelta(minutes=30),
            status=AppointmentStatus.SCHEDULED,
        ).id
        visits.mark_no_show(session, world.staff, mistaken)
    later = book(db, world, in_days(3, 10))
    risk_jobs.score_job(db, settings)  # the day's run: the no-show in the later visit's history
    with db.read() as session:
        first = session.get(RiskScore, later).scored_at
    with db.write() as session:
        visits.undo_no_show(session, world.staff, mistaken)
    an_hour_on(db)
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert session.get(RiskScore, later).scored_at > first  # scored again without it
    with db.read() as session:
        rescored = session.get(RiskScore, later).scored_at
    an_hour_on(db)  # nothing undone, booked or moved since: no run
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert session.get(RiskScore, later).scored_at == rescored


def test_readiness_says_whether_visits_can_be_scored(db, world):
    """The empty call list's reason: no model yet and how much history there is, a model from
    an older feature set, or a model in use."""
    past = in_days(-3, 10)
    with db.write() as session:
        for status in (AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW):
            make_visit(
                session, world, start_at=past, end_at=past + timedelta(minutes=30), status=status
            )
    with db.read() as session:
        found = risk_scores.readiness(session, world.staff)
    assert found == risk_scores.Readiness("none", 2, no_shows=1) and not found.enough
    visit = book(db, world, in_days(2, 10))
    score(db, visit, 0.4)  # a model with no feature list: an older one
    with db.read() as session:
        assert risk_scores.readiness(session, world.staff).model == "outdated"
    with db.write() as session:
        session.add(RiskModel(rows=1, features={"all": list(FEATURES)}, metrics={}, payload=b""))
    with db.read() as session:
        assert risk_scores.readiness(session, world.staff).model == "ready"
    with db.read() as session, pytest.raises(PermissionDenied):
        risk_scores.readiness(session, patient_actor(world.patient_id))


def test_the_overbooking_suggestion_says_how_many_visits_its_sum_stands_on(db, world):
    """The sum counts only the day's scored visits still to come: the calendar said 'of 2 visits
    that day' where the day had a third, booked since the scoring, left out unsaid."""
    first, second = book(db, world, in_days(2, 10)), book(db, world, in_days(2, 11))
    score(db, first, 0.6)
    score(db, second, 0.55)
    book(db, world, in_days(2, 12))  # booked since the scoring
    book(db, world, in_days(3, 12))  # not scored either, another day: not counted
    with db.read() as session:
        [day] = risk_scores.overbooking_suggestions(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            start=in_days(0, 0),
            end=in_days(14, 0),
        )
    assert (day.visits, day.not_scored, round(day.expected_no_shows, 2)) == (2, 1, 1.15)


def test_a_run_ends_only_its_own_lease(db, world, monkeypatch):
    """A run that outlived its lease, taken over meanwhile by another server, leaves that
    server's lease alone when it stores (clearing it would let a third run start beside it)."""
    settings = trained(db, world)
    book(db, world, in_days(2, 10))
    real = risk_model.upcoming
    taken = {"at": (utcnow() + timedelta(minutes=1)).isoformat()}

    def slow(session, actor):
        found = real(session, actor)
        with db.write() as other:  # another server, once this run's lease ran out
            other.get(Setting, "risk_scoring").value = taken
        return found

    monkeypatch.setattr(risk_model, "upcoming", slow)
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert session.get(Setting, "risk_scoring").value == taken
    monkeypatch.setattr(risk_model, "upcoming", real)


def test_a_visit_beyond_the_scored_days_sets_off_no_run_in_a_zone_ahead_of_utc(
    db, world, monkeypatch
):
    """The runs score the clinic-local days up to 14 days after today's UTC date: in a clinic
    14 hours ahead of UTC a visit 13 days and 23 hours from now falls on the day after them.
    Looking for visits to score up to 14 days ahead, it was never scored and set off a whole
    run every hour; the look stops at 13 days, inside the scored days in any zone."""
    settings = trained(db, world)
    scored = book(db, world, in_days(3, 10))
    with db.write() as session:
        session.get(Clinic, world.clinic_id).timezone = "Pacific/Kiritimati"
    # from 11:00 UTC on, 13 days 23 hours ahead is the day after the scored days there
    now = utcnow()
    now = max(now, now.replace(hour=12, minute=0))
    monkeypatch.setattr(risk_jobs, "utcnow", lambda: now)
    monkeypatch.setattr(risk_model, "utcnow", lambda: now)
    far = now + timedelta(days=13, hours=23)
    with db.write() as session:
        make_visit(
            session,
            world,
            start_at=far,
            end_at=far + timedelta(minutes=30),
            status=AppointmentStatus.SCHEDULED,
        )
    risk_jobs.score_job(db, settings)  # the day's run
    with db.read() as session:
        first = session.get(RiskScore, scored).scored_at
    an_hour_on(db)
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert session.get(RiskScore, scored).scored_at == first  # no run set off


def test_a_model_from_an_older_feature_set_sets_off_no_failing_run(db, world):
    """Such a model scores nothing until retrained (within the hour): the scoring job raised
    'trained on an older set of features' on every run, recorded as a failing job, and with
    visits booked since, every hour. It now waits for the new model quietly."""
    settings = trained(db, world)
    with db.write() as session:
        model = session.scalar(select(RiskModel))
        model.features = {"names": model.features["names"]}  # as before a feature upgrade
    book(db, world, in_days(2, 10))
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert session.scalars(select(RiskScore)).all() == []
