"""Housekeeping: once a day the rows nobody needs any more are deleted (old rate-limit hits,
sessions ended long ago, dead patient links nothing points at, old payment events, superseded
models' payloads), in batches, and what still answers a question is kept: a rate limit still
limits, a signed-out session stays signed out, a recent webhook event is still a duplicate."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from core import jobs
from core.kernel import accounts, rate_limits, tokens
from core.kernel.config import load_settings
from core.kernel.errors import ConfigurationError, LinkInvalid
from core.payments import webhooks
from core.portal import sign_in
from core.practice import housekeeping, job_health
from db.engine import Database
from db.models import (
    LinkToken,
    Patient,
    PaymentEvent,
    PortalSession,
    RateLimitHit,
    RiskModel,
    Setting,
    UserSession,
)
from db.types import utcnow
from tests.factories import PASSWORD

DAY = timedelta(days=1)


def sweep(db, now=None, batch=housekeeping.BATCH):
    with db.write() as session:
        return housekeeping.sweep(session, now or utcnow(), batch)


def count(db, model) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def hits(db, key: str, at, n: int = 1) -> None:
    with db.write() as session:
        rate_limits.hit(session, [key] * n, at)


def signed_in(db, username: str) -> tuple[int, str]:
    """A staff session: its id and the cookie's token."""
    with db.write() as session:
        signed = accounts.sign_in(session, username, PASSWORD)
    with db.write() as session:
        return signed.session_id, accounts.exchange_handoff(session, signed.handoff_code)


def last_seen(db, model, row_id: int, when) -> None:
    with db.write() as session:
        session.execute(update(model).where(model.id == row_id).values(last_seen_at=when))


# ---------------------------------------------------------------- what goes, what stays


def test_a_rate_limit_still_limits_after_the_old_hits_are_deleted(db, world):
    now = utcnow()
    hits(db, "k", now - 3 * DAY, 40)  # count for nothing
    hits(db, "k", now - DAY + timedelta(minutes=5))  # a day's hits are kept
    hits(db, "k", now - timedelta(minutes=30), 5)  # this hour's
    with db.read() as session:
        assert rate_limits.over_limit(session, {"k": 5}, now)
    done = sweep(db, now)
    assert done.changed["rate_limit_hits"] == 40 and done.finished
    assert count(db, RateLimitHit) == 6
    with db.read() as session:
        assert rate_limits.over_limit(session, {"k": 5}, now)  # still limited
        assert not rate_limits.over_limit(session, {"k": 6}, now)  # the day-old hit: uncounted


def test_a_signed_out_staff_session_stays_signed_out_and_a_live_one_stays_in(db, world):
    now = utcnow()
    old_id, old_cookie = signed_in(db, "owner")
    with db.write() as session:
        accounts.end_session(session, old_id)
    idle_id, idle_cookie = signed_in(db, "manager")  # never signed out, idle for a month
    recent_id, _ = signed_in(db, "manager")  # idle, but less than 30 days
    live_id, live_cookie = signed_in(db, "staff")
    last_seen(db, UserSession, old_id, now - 31 * DAY)
    last_seen(db, UserSession, idle_id, now - 31 * DAY)
    last_seen(db, UserSession, recent_id, now - 29 * DAY)

    assert sweep(db, now).changed["user_sessions"] == 2
    with db.write() as session:
        assert {s.id for s in session.scalars(select(UserSession))} == {recent_id, live_id}
        for cookie in (old_cookie, idle_cookie):
            assert accounts.resume_session(session, cookie, 480, now=now) is None
        for session_id in (old_id, idle_id):
            assert accounts.touch_session(session, session_id, 480, now=now) is None
            assert accounts.peek_session(session, session_id, 480, now=now) is None
        actor, _ = accounts.resume_session(session, live_cookie, 480, now=now)
        assert actor == world.staff


def test_a_deleted_sessions_id_never_opens_a_new_session(db, world):
    """A browser tab can hold its session's id for as long as it stays open: SQLite gives a new
    row the highest id plus one, so deleting the newest session would hand its id to the next
    sign-in, someone else's."""
    now = utcnow()
    old_id, _ = signed_in(db, "owner")
    with db.write() as session:
        accounts.end_session(session, old_id)
    last_seen(db, UserSession, old_id, now - 40 * DAY)
    sweep(db, now)
    new_id, _ = signed_in(db, "staff")
    assert new_id != old_id
    with db.write() as session:
        assert accounts.touch_session(session, old_id, 480) is None


def test_a_portal_session_ended_long_ago_is_deleted_and_its_cookie_opens_nothing(db, world):
    now = utcnow()
    with db.write() as session:
        session.get(Patient, world.patient_id).portal_enrolled_at = now - 90 * DAY
        old = sign_in.start_session(session, sign_in.issue_sign_in(session, world.patient_id))
        recent = sign_in.start_session(session, sign_in.issue_sign_in(session, world.patient_id))
        live = sign_in.start_session(session, sign_in.issue_sign_in(session, world.patient_id))
    with db.write() as session:
        old_id = sign_in.session_id_for(session, old)
        recent_id = sign_in.session_id_for(session, recent)
        sign_in.end_session(session, old_id)
    last_seen(db, PortalSession, old_id, now - 31 * DAY)
    last_seen(db, PortalSession, recent_id, now - 29 * DAY)

    assert sweep(db, now).changed["portal_sessions"] == 1
    with db.write() as session:
        assert sign_in.session_id_for(session, old) is None
        assert sign_in.resume(session, old, 30, now=now) is None
        assert sign_in.touch(session, old_id, 30, now=now) is None
        assert sign_in.resume(session, recent, 30, now=now) is None  # kept, and ended
        assert sign_in.resume(session, live, 30, now=now) == world.patient_id
    assert count(db, PortalSession) == 2


def test_dead_links_nothing_points_at_go_a_month_after_expiry(db, world):
    now = utcnow()
    with db.write() as session:
        gone = tokens.issue(session, "confirm", 1, DAY, single_use=False)
        used = tokens.issue(session, "check_in", 1, DAY)
        tokens.consume(session, used.row)
        recent = tokens.issue(session, "proposal", 1, DAY)
        survey = tokens.issue(session, "survey", 1, DAY)  # a survey request points at these
        live = tokens.issue(session, "portal", 1, timedelta(minutes=15))
        expiry = {
            gone.row.id: now - 31 * DAY,
            used.row.id: now - 40 * DAY,
            recent.row.id: now - 29 * DAY,
            survey.row.id: now - 400 * DAY,
        }
    with db.write() as session:
        for token_id, when in expiry.items():
            session.execute(
                update(LinkToken).where(LinkToken.id == token_id).values(expires_at=when)
            )

    assert sweep(db, now).changed["link_tokens"] == 2
    with db.read() as session:
        kept = set(session.scalars(select(LinkToken.id)))
        assert kept == {recent.row.id, survey.row.id, live.row.id}
        for issued, purpose in ((gone, "confirm"), (used, "check_in"), (recent, "proposal")):
            with pytest.raises(LinkInvalid):
                tokens.verify(session, issued.raw, purpose, now=now)
        assert tokens.verify(session, live.raw, "portal", now=now).id == live.row.id


def test_old_payment_events_go_and_a_recent_one_is_still_a_duplicate(db, world):
    now = utcnow()
    with db.write() as session:
        for name in ("evt_old", "evt_recent", "evt_new"):
            assert webhooks.apply_event(session, "stripe", {"id": name, "type": "x"}) == "ignored"
        for name, age in (("evt_old", 401), ("evt_recent", 399)):
            session.execute(
                update(PaymentEvent)
                .where(PaymentEvent.event_id == name)
                .values(received_at=now - age * DAY)
            )
    assert sweep(db, now).changed["payment_events"] == 1
    with db.write() as session:
        names = set(session.scalars(select(PaymentEvent.event_id)))
        assert names == {"evt_recent", "evt_new"}
        assert webhooks.apply_event(session, "stripe", {"id": "evt_recent", "type": "x"}) == (
            "duplicate"
        )


def test_a_model_replaced_a_month_ago_loses_its_payload_and_keeps_its_figures(db, world):
    now = utcnow()
    with db.write() as session:
        models = [
            RiskModel(trained_at=now - days * DAY, metrics={"auc": days}, payload=b"model" * 100)
            for days in (90, 60, 20)
        ]
        session.add_all(models)
        session.flush()
        ids = [m.id for m in models]
    assert sweep(db, now).changed["risk_models"] == 1
    assert sweep(db, now + 2 * DAY).changed["risk_models"] == 0  # done once
    with db.read() as session:
        rows = session.execute(
            select(RiskModel.id, func.length(RiskModel.payload), RiskModel.metrics).order_by(
                RiskModel.id
            )
        ).all()
    # the first was replaced 60 days ago; the second only 20 days ago; the third is in use
    assert rows == [
        (ids[0], 0, {"auc": 90}),
        (ids[1], 500, {"auc": 60}),
        (ids[2], 500, {"auc": 20}),
    ]


# ---------------------------------------------------------------- batches, once a day


def test_a_round_changes_at_most_a_batch_and_the_pass_carries_on_next_round(db, world):
    now = utcnow()
    hits(db, "k", now - 3 * DAY, 7)
    ids = [signed_in(db, "manager")[0] for _ in range(3)]
    for session_id in ids:
        last_seen(db, UserSession, session_id, now - 40 * DAY)
    hits(db, "k", now)  # the newest hit

    first = sweep(db, now, batch=5)
    assert first.changed == {"rate_limit_hits": 5} and not first.finished
    second = sweep(db, now, batch=5)
    # the rest of the hits and the sessions (the newest is kept), within the batch
    assert second.changed["rate_limit_hits"] == 2 and second.changed["user_sessions"] == 2
    assert sum(second.changed.values()) == 4 and second.finished
    assert sweep(db, now, batch=5) is None
    assert count(db, RateLimitHit) == 1 and count(db, UserSession) == 1


def test_the_pass_runs_once_a_day(db, world):
    now = utcnow()
    hits(db, "k", now - 3 * DAY, 2)
    hits(db, "k", now)
    assert sweep(db, now).finished
    hits(db, "k", now - 3 * DAY, 2)
    assert sweep(db, now + timedelta(hours=23)) is None
    assert count(db, RateLimitHit) == 3
    assert sweep(db, now + DAY + timedelta(minutes=1)).changed["rate_limit_hits"] == 2


def test_a_pass_recorded_in_the_future_does_not_hold_the_next_off(db, world):
    now = utcnow()
    with db.write() as session:
        session.add(Setting(key=housekeeping.CLAIM, value={"done": (now + 3 * DAY).isoformat()}))
    hits(db, "k", now - 3 * DAY, 2)
    hits(db, "k", now)
    assert sweep(db, now).changed["rate_limit_hits"] == 2


def test_two_servers_at_once_sweep_once(db, world, tmp_path):
    now = utcnow()
    hits(db, "k", now - 3 * DAY, 3)
    hits(db, "k", now)
    servers = [Database(db.url), Database(db.url)]  # their own pools, as two processes
    both = threading.Barrier(2, timeout=30)
    results: list = []
    errors: list[BaseException] = []

    def one_round(database):
        try:
            both.wait()
            with database.write() as session:
                results.append(housekeeping.sweep(session, now))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_round, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for server in servers:
        server.dispose()
    assert errors == []
    assert sorted(r is None for r in results) == [False, True]  # one swept, one found it done
    assert next(r for r in results if r).changed["rate_limit_hits"] == 3
    assert count(db, RateLimitHit) == 1


# ---------------------------------------------------------------- the job


def test_the_job_runs_in_the_loop_and_its_failures_show_in_the_jobs_health(
    db, world, tmp_path, monkeypatch
):
    settings = load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "x")
    assert housekeeping.housekeeping_job in jobs.JOBS
    now = utcnow()
    hits(db, "k", now - 3 * DAY, 2)
    hits(db, "k", now)
    monkeypatch.setattr(jobs, "JOBS", [housekeeping.housekeeping_job])
    jobs.run_due(db, settings)
    assert count(db, RateLimitHit) == 1

    def broken(session, now, batch=housekeeping.BATCH):
        raise RuntimeError("disk full")

    monkeypatch.setattr(housekeeping, "sweep", broken)
    jobs.run_due(db, settings)
    with db.read() as session:
        [failing] = job_health.failing_jobs(session, world.owner)
    assert (failing.label, failing.error) == ("Housekeeping", "RuntimeError: disk full")
    assert "not being deleted" in failing.effect


@pytest.mark.parametrize(
    "setting",
    [
        {"CLINICDESK_IDLE_MINUTES": str(int(accounts.SESSION_KEEP.total_seconds() // 60))},
        {"CLINICDESK_PORTAL_IDLE_MINUTES": str(housekeeping.PORTAL_SESSION_KEEP.days * 24 * 60)},
    ],
)
def test_no_idle_limit_outlives_what_housekeeping_keeps_of_a_session(tmp_path, setting):
    """A session is deleted only once it has ended by any idle limit the settings allow."""
    with pytest.raises(ConfigurationError):
        load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)} | setting, tmp_path / "x")
