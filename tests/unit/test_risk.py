"""The no-show risk model: leak-free features, a known signal learnt on a time split, scores
written for the CLI and stored for the badges. Re-run on PostgreSQL by
tests/integration/test_risk_pg.py."""

from __future__ import annotations

import copy
import logging
import os
import random
import subprocess
import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from core import cli
from core.analytics import risk_features, risk_jobs, risk_model, risk_scores
from core.kernel.authz import SYSTEM
from core.kernel.config import Settings
from core.kernel.errors import Conflict, PermissionDenied, ValidationError
from db.models import (
    Appointment,
    AppointmentConfirmation,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    RiskModel,
    RiskScore,
    Setting,
    Source,
)
from tests.factories import make_patient

S = AppointmentStatus
START = date(2026, 1, 5)


def visit(session, world, patient_id, day, status, *, lead=3, hour=9, sms=False, flush=True):
    start = datetime.combine(day, time(hour), tzinfo=UTC)
    row = Appointment(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        patient_id=patient_id,
        service_id=world.service_id,
        status=status,
        start_at=start,
        end_at=start + timedelta(minutes=30),
        booked_at=start - timedelta(days=lead),
        sms_reminder=sms,
        source=Source.IMPORT,
        allow_double_booking=True,
    )
    session.add(row)
    if flush:  # a history's visits are flushed together: one round trip on PostgreSQL, not 1,280
        session.flush()
    return row.id


def features_of(session, appointment_id, day):
    rows = risk_features.iter_features(
        session, since=day, until=day + timedelta(days=1), statuses=tuple(S)
    )
    return next(r.values for r in rows if r.appointment_id == appointment_id)


# ---------------------------------------------------------------- leak-free


def test_features_count_only_earlier_days(db, world):
    with db.write() as session:
        p = world.patient_id
        visit(session, world, p, START, S.NO_SHOW)
        visit(session, world, p, START + timedelta(days=2), S.COMPLETED)
        same_day = visit(session, world, p, START + timedelta(days=5), S.NO_SHOW, hour=8)
        target = visit(session, world, p, START + timedelta(days=5), S.COMPLETED, lead=10)
        values = dict(
            zip(
                risk_features.FEATURES,
                features_of(session, target, START + timedelta(days=5)),
                strict=True,
            )
        )
    assert same_day
    assert values["prior_visits"] == 1 and values["prior_no_shows"] == 1  # not the same day
    assert values["prior_no_show_rate"] == 0.5
    assert values["days_since_last_visit"] == 3
    assert values["lead_days"] == 10
    assert values["age"] == (START + timedelta(days=5) - date(1985, 4, 12)).days // 365.25


OUTCOME = st.sampled_from([S.COMPLETED, S.NO_SHOW, S.CANCELLED, S.SCHEDULED, S.CHECKED_IN])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    earlier=st.lists(st.tuples(st.integers(1, 30), OUTCOME), max_size=5),
    own=OUTCOME,
    new_own=OUTCOME,
    later=st.lists(st.tuples(st.integers(0, 30), OUTCOME, OUTCOME), max_size=5),
)
def test_own_outcome_and_later_visits_never_change_the_features(
    db, world, earlier, own, new_own, later
):
    """Change the appointment's own outcome, and every later visit's outcome (and add more):
    its features stay exactly the same."""
    day = START + timedelta(days=40)
    with db.write() as session:
        patient = make_patient(session, email=None, phone=None)
        for back, status in earlier:
            visit(session, world, patient.id, day - timedelta(days=back), status)
        target = visit(session, world, patient.id, day, own, hour=12)
        later_ids = [
            (visit(session, world, patient.id, day + timedelta(days=ahead), first, hour=15), second)
            for ahead, first, second in later
        ]
        before = features_of(session, target, day)
    with db.write() as session:
        session.execute(update(Appointment).where(Appointment.id == target).values(status=new_own))
        for appointment_id, second in later_ids:
            session.execute(
                update(Appointment).where(Appointment.id == appointment_id).values(status=second)
            )
        visit(session, world, patient.id, day + timedelta(days=1), S.NO_SHOW)
        visit(session, world, patient.id, day, S.NO_SHOW, hour=17)  # later the same day
        after = features_of(session, target, day)
    assert repr(before) == repr(after)  # NaN-safe exact comparison


# ---------------------------------------------------------------- learning


def history(db, world, *, patients=160, days=60, seed=7):
    """Visits whose no-show chance rises with lead time and the patient's habit (known signal)."""
    rng = random.Random(seed)
    with db.write() as session:
        for n in range(patients):
            patient = make_patient(session, email=None, phone=None, first_name=f"P{n}")
            habit = rng.random() < 0.3
            for _ in range(8):
                day = START + timedelta(days=rng.randrange(days))
                lead = rng.choice([0, 1, 2, 7, 14, 30, 45])
                chance = 0.04 + 0.012 * lead + (0.35 if habit else 0)
                status = S.NO_SHOW if rng.random() < min(chance, 0.95) else S.COMPLETED
                hour = rng.choice([9, 14])
                visit(session, world, patient.id, day, status, lead=lead, hour=hour, flush=False)


_FITS: dict[tuple[str, date], dict] = {}  # a small history's fit, per database kind and day
MODEL_COLUMNS = ("data_from", "data_until", "rows", "features", "metrics", "payload")


def small_history_and_model(db, world, *, until: date = START + timedelta(days=41)) -> int:
    """history(patients=60, days=40) and a model of it up to `until`, stored as the weekly fit
    stores it (learn, then save); its id. Those visits fit the same model every time (seeded
    history, seeded trees), so it is fitted once per test process and database kind and stored
    again in each test's database: the tests that use this read a model, they do not test its
    fit (the tests of learning above and the fitting child do)."""
    history(db, world, patients=60, days=40)
    key = (db.dialect, until)
    with db.write() as session:
        if key not in _FITS:
            row = risk_model.learn(session, SYSTEM, until=until)
            _FITS[key] = {name: getattr(row, name) for name in MODEL_COLUMNS}
        model = RiskModel(**copy.deepcopy(_FITS[key]))
        return risk_model.save(session, SYSTEM, model).model_id


def test_a_known_signal_is_learnt_and_validated_on_later_days(db, world):
    history(db, world)
    with db.write() as session:
        trained = risk_model.train(session, world.manager, until=START + timedelta(days=45))
    m, b = trained.metrics["model"], trained.metrics["baseline"]
    assert m["roc_auc"] > 0.7  # well above chance on ~300 later visits
    assert b["roc_auc"] is not None and len(b["deciles"]) == 10  # the baseline sits beside it
    assert trained.metrics["validation_from"] > str(START + timedelta(days=30))
    assert len(m["deciles"]) == 10
    assert "ROC-AUC" in trained.summary
    with db.read() as session:
        info = risk_scores.get_model_info(session, world.manager)
        assert info.rows == trained.rows
        assert {"lead_days", "prior_no_shows", "weekday"} <= set(info.features)
        assert "area" not in info.features  # no imported patient attributes here: left out
        scored = risk_model.score(session, world.manager, since=START + timedelta(days=45))
    assert scored and all(0 <= p <= 1 for *_, p in scored)
    assert all(day >= START + timedelta(days=45) for _, _, day, _ in scored)
    csv_text = risk_model.scores_csv(scored).decode("utf-8-sig")
    assert csv_text.splitlines()[0] == "appointment,day,no_show_probability"
    assert len(csv_text.splitlines()) == len(scored) + 1


def test_scores_follow_the_no_show_rate_seen_since_the_fit():
    """Every visit was given 30% but a tenth came: each day's scores move towards a tenth by
    what the days before it showed, more as more visits are seen; the first day is unchanged."""
    rng = np.random.default_rng(3)
    days = [START + timedelta(days=d) for d in range(6) for _ in range(1000)]
    outcomes = (rng.random(len(days)) < 0.1).astype(float)
    p = np.full(len(days), 0.3)
    followed = risk_model.following_drift(p, days, outcomes)
    means = [followed[i * 1000 : (i + 1) * 1000].mean() for i in range(6)]
    assert means[0] == pytest.approx(0.3)
    assert 0.3 > means[1] > means[2] > means[5] > 0.1
    assert means[5] == pytest.approx(0.1 + 0.2 * 2000 / 7000, abs=0.02)  # shrunk: 5,000 seen
    # outcomes not yet known (NaN) count for nothing; with none known, nothing moves
    assert (risk_model.following_drift(p, days, np.full(len(days), np.nan)) == p).all()
    # the order of visits within and across days does not matter, only their days do
    order = rng.permutation(len(days))
    shuffled = risk_model.following_drift(p[order], [days[i] for i in order], outcomes[order])
    assert np.allclose(shuffled, followed[order])


def test_a_scored_visit_never_moves_with_its_own_or_later_outcomes(db, world):
    """The drift a visit's score follows is read from earlier days only: changing the outcome
    of every visit on its day and after leaves its score exactly as it was, while changing the
    earlier days' moves it."""
    history(db, world)
    cut = START + timedelta(days=45)
    with db.write() as session:
        risk_model.train(session, world.manager, until=cut)
    day = START + timedelta(days=52)

    def scores():
        with db.read() as session:
            scored = risk_model.score(session, world.manager, since=day, until=day + timedelta(1))
        return {appointment_id: p for appointment_id, _, _, p in scored}

    def flip(since, until):
        with db.write() as session:
            ids = [
                r.appointment_id
                for r in risk_features.iter_features(session, since=since, until=until)
            ]
            for status, chosen in ((S.NO_SHOW, ids[::2]), (S.COMPLETED, ids[1::2])):
                query = update(Appointment).where(Appointment.id.in_(chosen))
                session.execute(query.values(status=status))

    before = scores()
    assert before
    flip(day, START + timedelta(days=60))
    assert scores() == before
    flip(cut, day)
    assert scores() != before


def test_score_risk_writes_a_private_audited_spreadsheet_safe_file(
    db, world, tmp_path, monkeypatch
):
    """The file's rights, its audit and its cells are what is checked, not the model: a small
    history (480 visits, not 1,280) trains one that scores the last fortnight."""
    history(db, world, patients=60)
    with db.write() as session:
        risk_model.train(session, world.manager, until=START + timedelta(days=45))
    for name, value in (
        ("DATABASE_URL", db.url),
        ("CLINICDESK_DATA_DIR", str(tmp_path)),
        ("CLINICDESK_SECRET_KEY", "k" * 40),
    ):
        monkeypatch.setenv(name, value)
    out = tmp_path / "scores.csv"
    out.write_text("an older file anyone could read")
    out.chmod(0o644)
    since = (START + timedelta(days=45)).isoformat()
    assert cli.main(["score-risk", "--from", since, "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600  # patient data: its owner's only
    lines = out.read_bytes().decode("utf-8-sig").splitlines()
    with db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.entity == "risk_scores"))
    assert event.action == "export" and event.details["rows"] == len(lines) - 1 > 0
    assert event.details["filters"]["since"] == since
    # an imported reference that a spreadsheet would run as a formula stays text
    assert b"'=HYPERLINK" in risk_model.scores_csv([(1, '=HYPERLINK("x")', START, 0.5)])


def test_risk_commands_say_what_to_fix_and_audit_only_a_written_file(
    db, world, tmp_path, monkeypatch, capsys
):
    """A date that is not one, --until not after --from, a folder that does not exist, a
    folder given as the file and training up to a future day are each refused with one line
    saying what to fix; no export is audited for a file that was not written."""
    small_history_and_model(db, world)
    for name, value in (
        ("DATABASE_URL", db.url),
        ("CLINICDESK_DATA_DIR", str(tmp_path)),
        ("CLINICDESK_SECRET_KEY", "k" * 40),
    ):
        monkeypatch.setenv(name, value)
    since = START.isoformat()
    with pytest.raises(SystemExit) as bad_date:
        cli.main(["score-risk", "--from", "2026-13-01", "--out", str(tmp_path / "s.csv")])
    assert bad_date.value.code == 2
    assert "'2026-13-01' is not a date: write it as YYYY-MM-DD" in capsys.readouterr().err
    refusals = {
        ("--until", since, "--out", str(tmp_path / "s.csv")): "must be after --from",
        ("--out", str(tmp_path / "missing" / "s.csv")): "missing does not exist",
        ("--out", str(tmp_path)): "is a folder: give a file name",
    }
    for extra, reason in refusals.items():
        assert cli.main(["score-risk", "--from", since, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and reason in err and "Traceback" not in err
    future = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    assert cli.main(["train-risk", "--until", future]) == 2
    assert f"--until {future} is after today" in capsys.readouterr().err
    with db.read() as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.entity == "risk_scores")) is None
        assert len(session.scalars(select(RiskModel.id)).all()) == 1


def test_training_needs_enough_history_and_the_permission(db, world):
    with db.write() as session, pytest.raises(ValidationError, match="past visits"):
        risk_model.train(session, world.manager, until=START)
    with db.write() as session:  # plenty of visits, hardly any missed
        patient = make_patient(session, email=None, phone=None, first_name="Reliable")
        for n in range(260):
            status = S.NO_SHOW if n % 100 == 0 else S.COMPLETED
            visit(session, world, patient.id, START + timedelta(days=n % 60), status, flush=False)
    # before: 'Only 260 past visits … (at least 200 … are needed)', as if too few visits
    refusal = "The 260 past visits with a known outcome before .* hold only 3 no-shows: "
    with db.write() as session, pytest.raises(ValidationError, match=refusal):
        risk_model.train(session, world.manager, until=START + timedelta(days=61))
    with db.write() as session, pytest.raises(PermissionDenied):
        risk_model.train(session, world.staff, until=START)


@pytest.mark.parametrize(
    ("no_shows", "refusal"),
    [
        ("late", "the earliest days .* have no no-show"),  # was an IndexError in the fit
        ("early", "the validation days .* have no no-show"),  # was a TypeError in the summary
    ],
)
def test_a_history_without_both_outcomes_early_and_late_is_refused_clearly(
    db, world, no_shows, refusal
):
    """300 visits over 50 days, 24 no-shows: only in the latest days, or only in the first
    ones. Neither can train a model that is checked on later days: each is refused with what
    is missing, and nothing is stored."""
    with db.write() as session:
        for n in range(60):
            patient = make_patient(session, email=None, phone=None, first_name=f"P{n}")
            for k in range(5):
                day = START + timedelta(days=(n * 5 + k) % 50)
                missed = k < 2 and (
                    day >= START + timedelta(days=42)
                    if no_shows == "late"
                    else day < START + timedelta(days=20)
                )
                visit(session, world, patient.id, day, S.NO_SHOW if missed else S.COMPLETED)
    with db.write() as session, pytest.raises(ValidationError, match=refusal):
        risk_model.train(session, world.manager, until=START + timedelta(days=50))
    with db.read() as session:
        assert session.scalar(select(RiskModel.id)) is None


def test_upcoming_visits_are_scored_for_the_badges(db, world):
    small_history_and_model(db, world)
    with db.write() as session:
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        upcoming = visit(session, world, world.patient_id, tomorrow, S.SCHEDULED, lead=20)
        assert risk_model.store_upcoming(session, SYSTEM) == 1
    with db.read() as session:
        [row] = session.scalars(select(RiskScore)).all()
        assert row.appointment_id == upcoming
        assert row.model_id == session.scalar(select(RiskModel.id))
        assert risk_scores.probabilities(session, [upcoming]) == {upcoming: row.probability}
    with db.write() as session:  # the jobs loop's daily run: scored in a read, stored after
        session.execute(delete(RiskScore))
    risk_jobs.score_job(db, Settings(database_url=db.url, secret_key="k" * 40, data_dir=Path()))
    with db.read() as session:
        assert session.scalars(select(RiskScore.appointment_id)).all() == [upcoming]
    assert risk_scores.level(0.05) == "low"
    assert risk_scores.level(0.2) == "medium"
    assert risk_scores.level(0.5) == "high"


def test_a_daily_scoring_run_that_stopped_is_taken_up_once_its_lease_ends(
    db, world, tmp_path, monkeypatch
):
    """The scoring stops after its claim (the process killed, the read failing): the next round
    after the lease scores the visits, rather than the next day; once stored, the day is done."""
    small_history_and_model(db, world)
    with db.write() as session:
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        upcoming = visit(session, world, world.patient_id, tomorrow, S.SCHEDULED, lead=20)
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path)
    real = risk_model.upcoming

    def stopped(*args, **kwargs):
        raise RuntimeError("killed mid-scoring")

    monkeypatch.setattr(risk_model, "upcoming", stopped)
    with pytest.raises(RuntimeError):
        risk_jobs.score_job(db, settings)
    monkeypatch.setattr(risk_model, "upcoming", real)
    risk_jobs.score_job(db, settings)  # another process meanwhile: the lease holds it off
    with db.write() as session:
        assert session.scalars(select(RiskScore.appointment_id)).all() == []
        lease = session.get(Setting, "risk_scoring")  # as if half an hour had passed
        if lease is not None:
            at = datetime.fromisoformat(lease.value["at"]) - timedelta(minutes=31)
            lease.value = {"at": at.isoformat()}
    risk_jobs.score_job(db, settings)
    with db.read() as session:
        assert session.scalars(select(RiskScore.appointment_id)).all() == [upcoming]
    with db.write() as session:
        session.execute(delete(RiskScore))
        session.execute(delete(Setting).where(Setting.key == "risk_scoring"))
    risk_jobs.score_job(db, settings)  # done for the day
    with db.read() as session:
        assert session.scalars(select(RiskScore.appointment_id)).all() == []


@pytest.fixture
def fits_beside_us(monkeypatch):
    """The fitting child at this test process's own priority, for a test that waits for its
    end: at the desks' lower priority beside the suite's other workers it got a few percent of
    a core (4 s of work took 60-80 s). The priority itself is proven on its own
    (test_the_fit_runs_below_the_desks_priority)."""
    monkeypatch.setattr(risk_jobs, "FIT_NICENESS", os.getpriority(os.PRIO_PROCESS, 0))


def test_the_fit_runs_below_the_desks_priority(tmp_path, own_fits):
    """The fitting child is started at a lower priority than the server (nice 10), so a busy
    machine's desks are served first; it is stopped here as soon as it is seen."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'none.db'}", secret_key="k" * 40, data_dir=tmp_path
    )
    risk_jobs._start_training(settings, datetime.now(UTC))  # noqa: SLF001
    child = risk_jobs._training.pid  # noqa: SLF001
    assert os.getpriority(os.PRIO_PROCESS, child) == risk_jobs.FIT_NICENESS == 10


def test_the_jobs_loop_fits_in_a_child_process_and_goes_on(
    db, world, tmp_path, caplog, fits_beside_us
):
    """The weekly fit takes minutes of one core on a large practice: the jobs loop starts it in
    a child process (`core.cli train-risk`) and returns, so the server's sessions and the other
    jobs are not held up; the child stores the model."""
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path)
    caplog.set_level(logging.INFO, "clinicdesk.risk")
    started = risk_jobs._training  # noqa: SLF001
    risk_jobs.retrain_job(db, settings)  # too little history: nothing is started
    assert risk_jobs._training is started and "too little history" in caplog.text  # noqa: SLF001
    with db.write() as session:  # as if a day had passed
        session.execute(delete(Setting).where(Setting.key == "risk_retrained"))
    history(db, world, patients=60, days=40)
    risk_jobs.retrain_job(db, settings)
    [child] = [int(m.split()[-1]) for m in caplog.messages if "training in process" in m]
    assert child != os.getpid()
    risk_jobs.retrain_job(db, settings)  # claimed for the week: not started again
    assert risk_jobs.wait_for_training(timeout=300) == 0
    assert len([m for m in caplog.messages if "training in process" in m]) == 1
    assert (tmp_path / "risk-fit.log").stat().st_mode & 0o077 == 0  # its messages: owner's only
    with db.read() as session:
        [model] = session.scalars(select(RiskModel)).all()
    assert model.rows > 200 and model.metrics["model"]["roc_auc"] > 0.5


@pytest.fixture
def own_fits(monkeypatch):
    """This process's fit as the module keeps it, restored afterwards (and a child still
    running stopped), so no other test sees this one's fit as un-told or running."""
    for name in ("_training", "_ended", "_untold", "_fit_log", "_running_since"):
        monkeypatch.setattr(risk_jobs, name, None)
    yield
    if risk_jobs.training():
        risk_jobs._training.kill()  # noqa: SLF001
        risk_jobs._training.wait()  # noqa: SLF001


def test_retrain_now_starts_the_fit_in_a_child_process_and_returns_at_once(
    db, world, tmp_path, caplog, own_fits, fits_beside_us
):
    """The model page's Retrain now: the fit runs in a child process as the weekly one does (it
    ran in the web process before, holding Python's lock from every desk for minutes); one at a
    time across processes; the stored model ends it."""
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path)
    caplog.set_level(logging.INFO, "clinicdesk.risk")
    with pytest.raises(ValidationError, match="Only 0 past visits with a known outcome"):
        risk_jobs.train_now(db.write, world.manager, settings)
    history(db, world, patients=60, days=40)
    with pytest.raises(PermissionDenied):
        risk_jobs.train_now(db.write, world.staff, settings)
    started = risk_jobs.train_now(db.write, world.manager, settings)
    assert risk_jobs.training()  # returned while the child fits
    [child] = [int(m.split()[-1]) for m in caplog.messages if "training in process" in m]
    assert child != os.getpid()
    with db.read() as session:
        assert session.scalar(select(RiskModel.id)) is None  # not fitted here
        assert risk_jobs.fit_running(session, world.manager) == started
    with pytest.raises(
        Conflict, match=r"A fit is already running \(started at .+\); the new model"
    ):
        risk_jobs.train_now(db.write, world.manager, settings)
    risk_jobs.retrain_job(db, settings)  # the jobs loop's round: starts nothing more
    assert len([m for m in caplog.messages if "training in process" in m]) == 1
    assert risk_jobs.wait_for_training(timeout=300) == 0
    with db.read() as session:
        [model] = session.scalars(select(RiskModel)).all()
        assert model.rows > 200
        assert risk_jobs.fit_running(session, world.manager) is None  # its model is stored
        # the child said it ended, with no jobs loop round in between
        assert "running_since" not in session.get(Setting, "risk_retrained").value
    risk_jobs.retrain_job(db, settings)  # the round after its end: the claim says it ended
    assert risk_jobs.ended_fit() == (0, "")
    with db.read() as session:
        assert "running_since" not in session.get(Setting, "risk_retrained").value


def test_the_fitting_child_holds_the_claim_whether_or_not_a_jobs_loop_runs(db, world):
    """The child renews its fit's claim while it fits (a server with its jobs loop off started
    it: nobody else would, and after FIT_LEASE a second fit could start beside a long one) and
    clears it when the fit ends, even by an error; a claim taken by another fit since is left
    alone, and a fit run by hand claims nothing."""
    since = (datetime.now(UTC) - timedelta(minutes=9)).isoformat()
    old = (datetime.now(UTC) - timedelta(minutes=9)).isoformat()

    def claim():
        with db.read() as session:
            row = session.get(Setting, "risk_retrained")
            return dict(row.value) if row else None

    with db.write() as session:
        session.add(Setting(key="risk_retrained", value={"at": old, "running_since": since}))
    with pytest.raises(RuntimeError), risk_jobs.holding_claim(db, since, every=0.05):
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while claim()["at"] == old and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
        renewed = claim()
        assert renewed["running_since"] == since and renewed["at"] > old
        with db.read() as session:
            assert risk_jobs.fit_running(session, world.manager) is not None
        raise RuntimeError("the fit failed")
    ended = claim()  # the fit's end is said: its last renewal kept, no longer running
    assert list(ended) == ["at"] and ended["at"] >= renewed["at"]
    other = {"at": old, "running_since": old}
    with db.write() as session:
        session.get(Setting, "risk_retrained").value = other
    with risk_jobs.holding_claim(db, since, every=0.05):
        threading.Event().wait(0.2)
    assert claim() == other  # another fit's claim: neither renewed nor cleared
    with db.write() as session:
        session.execute(delete(Setting).where(Setting.key == "risk_retrained"))
    with risk_jobs.holding_claim(db, None, every=0.05):
        threading.Event().wait(0.2)
    assert claim() is None


def test_a_fit_running_in_another_process_holds_retrain_now_off(
    db, world, tmp_path, own_fits, monkeypatch
):
    """Another server's fit is seen from its claim, renewed by that server's fitting child: Retrain
    now is refused while it runs; a claim no longer renewed (that server stopped) or a model
    stored since the fit started (it has ended) lets the next fit start."""
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path)
    history(db, world, patients=30, days=40)
    since = datetime.now(UTC) - timedelta(minutes=3)

    def claim(renewed):
        with db.write() as session:
            row = session.get(Setting, "risk_retrained") or Setting(key="risk_retrained")
            row.value = {"at": renewed.isoformat(), "running_since": since.isoformat()}
            session.add(row)

    claim(datetime.now(UTC) - timedelta(seconds=20))
    with db.read() as session:
        assert risk_jobs.fit_running(session, world.manager) == since  # the page says so
    with pytest.raises(Conflict, match="A fit is already running"):
        risk_jobs.train_now(db.write, world.manager, settings)
    assert risk_jobs._training is None  # noqa: SLF001
    claim(datetime.now(UTC) - risk_jobs.FIT_LEASE - timedelta(minutes=1))  # no longer renewed
    with db.read() as session:
        assert risk_jobs.fit_running(session, world.manager) is None
    claim(datetime.now(UTC) - timedelta(seconds=20))
    with db.write() as session:  # that fit stored its model
        session.add(RiskModel(features={"all": list(risk_features.FEATURES)}, payload=b""))
    with db.read() as session:
        assert risk_jobs.fit_running(session, world.manager) is None
    monkeypatch.setattr(risk_jobs, "TRAIN", ("-c", "pass"))  # a child that ends at once
    started = risk_jobs.train_now(db.write, world.manager, settings)
    assert risk_jobs.wait_for_training(timeout=60) == 0
    with db.read() as session:
        assert session.get(Setting, "risk_retrained").value["running_since"] == started.isoformat()


def test_a_weekly_refit_waits_for_the_night_unless_it_is_late(db, world):
    """The first model is fitted at once (and tried again daily until one is stored); a
    week-old one at night at the clinic (01:00-05:00),
    when nobody is at the desks, or at any hour once nine days old; a new feature list within
    the hour."""
    afternoon = datetime(2026, 7, 1, 13, tzinfo=UTC)  # 14:00 in London (summer time)
    night = datetime(2026, 7, 1, 1, tzinfo=UTC)  # 02:00 in London
    every = risk_jobs.RETRY  # a fit that stops is tried again after this
    with db.write() as session:
        assert session.get(Clinic, world.clinic_id).timezone == "Europe/London"
        assert risk_jobs.retrain_every(session, afternoon) == timedelta(days=1)  # no model yet
        model = RiskModel(features={"all": list(risk_features.FEATURES)}, payload=b"")
        session.add(model)
        for now, age, due in [
            (afternoon, timedelta(days=3), None),
            (night, timedelta(days=3), None),
            (afternoon, timedelta(days=8), None),
            (night, timedelta(days=8), every),
            (afternoon, timedelta(days=9), every),
        ]:
            model.trained_at = now - age
            session.flush()
            assert risk_jobs.retrain_every(session, now) == due, (now, age)
        model.features = {"all": ["lead_days"]}  # trained before an upgrade
        session.flush()
        assert risk_jobs.retrain_every(session, afternoon) == timedelta(hours=1)


def test_a_stopped_fit_or_a_clock_put_right_holds_no_run_off_for_long(db, world, tmp_path):
    """A weekly fit killed at 02:00 is tried again the next night, not a week later; a run or
    a model stamped in the future by a clock set ahead and then put right holds nothing off
    (before, until that day came and a week more); while this process's fit runs, each round
    renews its claim so no other process starts a second one."""
    night = datetime(2026, 7, 1, 1, tzinfo=UTC)  # 02:00 in London

    def claimed(session, key, at, every, now):
        row = session.get(Setting, key) or Setting(key=key)
        row.value = {"at": at.isoformat()}
        session.add(row)
        session.flush()
        return risk_jobs._claim(session, key, every, now)  # noqa: SLF001

    with db.write() as session:
        model = RiskModel(features={"all": list(risk_features.FEATURES)}, payload=b"")
        session.add(model)
        model.trained_at = night - timedelta(days=8)
        session.flush()
        every = risk_jobs.retrain_every(session, night)
        assert every is not None
        key = "risk_retrained"
        assert not claimed(session, key, night - timedelta(hours=1), every, night)  # still runs
        next_night = night + timedelta(days=1)
        assert claimed(
            session, key, night, risk_jobs.retrain_every(session, next_night), next_night
        )
        ahead = night + timedelta(days=300)  # the clock was a year out for a while
        assert claimed(session, "risk_scored", ahead, risk_jobs.SCORE_EVERY, night)
        assert not claimed(
            session, "risk_scored", night + timedelta(minutes=2), timedelta(1), night
        )
        model.trained_at = ahead
        session.flush()
        assert risk_jobs.retrain_every(session, night + timedelta(hours=12)) is not None
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path)
    with db.read() as session:
        held = session.get(Setting, key).value
    running = subprocess.Popen(["sleep", "30"])  # this process's fit, holding its own claim
    before, risk_jobs._training = risk_jobs._training, running  # noqa: SLF001
    try:
        risk_jobs.retrain_job(db, settings)  # starts nothing, leaves the child's claim to it
        assert risk_jobs._training is running  # noqa: SLF001
    finally:
        running.kill()
        running.wait()
        risk_jobs._training = before  # noqa: SLF001
    with db.read() as session:
        assert session.get(Setting, key).value == held


def test_a_confirmation_counts_only_when_it_came_before_the_day(db, world):
    day = START + timedelta(days=10)
    with db.write() as session:
        target = visit(session, world, world.patient_id, day, S.COMPLETED)
        start = datetime.combine(day, time(9), tzinfo=UTC)
        session.add(
            AppointmentConfirmation(
                appointment_id=target,
                start_at=start,
                channel="SMS reply",
                confirmed_at=start - timedelta(hours=1),  # on the day itself
            )
        )
        session.flush()
        on_the_day = dict(
            zip(risk_features.FEATURES, features_of(session, target, day), strict=True)
        )
        session.add(
            AppointmentConfirmation(
                appointment_id=target,
                start_at=start,
                channel="email link",
                confirmed_at=start - timedelta(days=1),
            )
        )
        session.flush()
        before = dict(zip(risk_features.FEATURES, features_of(session, target, day), strict=True))
    assert on_the_day["confirmed"] == 0 and before["confirmed"] == 1


def test_imported_conditions_are_counted_and_each_kept_on_its_own(db, world):
    day = START + timedelta(days=3)
    with db.write() as session:
        imported = make_patient(
            session,
            email="imported@example.org",
            extra={"Hipertension": 1, "Diabetes": 0, "Alcoholism": 0, "Handcap": 2},
        ).id
        own = visit(session, world, imported, day, S.COMPLETED)
        plain = visit(session, world, world.patient_id, day, S.COMPLETED)
        values = dict(zip(risk_features.FEATURES, features_of(session, own, day), strict=True))
        none = dict(zip(risk_features.FEATURES, features_of(session, plain, day), strict=True))
    assert values["conditions"] == 2  # hypertension and a disability
    assert (values["hypertension"], values["diabetes"], values["alcohol_use"]) == (1, 0, 0)
    assert values["disability"] == 2  # the recorded level, not a flag
    assert all(none[k] != none[k] for k in ("conditions", "hypertension", "disability"))


def test_a_history_with_hardly_any_no_shows_starts_no_fit(db, world, tmp_path, caplog, own_fits):
    """A young practice with 260 visits and 3 no-shows: the fit would refuse in its child
    minutes later, and the weekly job's attempt was recorded as a failing job each day ('the
    no-show model is not being refreshed' on Practice set-up). Retrain now says why at once;
    the jobs wait quietly, as for too few visits."""
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path)
    caplog.set_level(logging.INFO, "clinicdesk.risk")
    with db.write() as session:
        patient = make_patient(session, email=None, phone=None, first_name="Reliable")
        for n in range(260):
            status = S.NO_SHOW if n % 100 == 0 else S.COMPLETED
            visit(session, world, patient.id, START + timedelta(days=n % 60), status, flush=False)
    with pytest.raises(ValidationError, match="Only 3 past visits were missed .* at least 10"):
        risk_jobs.train_now(db.write, world.manager, settings)
    risk_jobs.retrain_job(db, settings)
    assert not risk_jobs.training() and "too little history" in caplog.text
    assert "training in process" not in caplog.text
