"""The risk model's periodic work: retrain weekly (at night at the clinic, see
`retrain_every`), score upcoming visits daily and, within the hour, those booked or moved
since (`score_job`). The last runs are remembered in `settings`, so
several app instances do each at most about once.

The weekly fit runs in a child process (`python -m core.cli train-risk`, at low priority, on
one core): on a large practice it takes minutes of one core, which inside the server would hold
Python's interpreter lock from every session's page runs and hold up every other job (reminders,
deliveries, the roll-ups) until it was done. "Retrain now" on the model page (`train_now`) starts
the same child process and returns at once. One fit runs at a time across processes: the claim
`risk_retrained` in `settings` marks the fit's start (`running_since`), and the child renews it
while it fits and clears it when it ends (`holding_claim`), whether or not the process that
started it runs a jobs loop (`fit_running` reads it for the page).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.analytics import risk_scores
from core.analytics.risk_features import FEATURES, MIN_NO_SHOWS, MIN_ROWS, OUTCOMES
from core.kernel.authz import SYSTEM, Actor, Permission, ensure
from core.kernel.clock import to_local
from core.kernel.config import Settings
from core.kernel.errors import Conflict, ValidationError
from core.kernel.locks import setting_row
from core.kernel.money import clinic_format
from core.scheduling.states import Action
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    RiskModel,
    RiskScore,
    Setting,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.risk")
RETRAIN_EVERY = timedelta(days=7)
SCORE_EVERY = timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]  # where `python -m core.cli` runs
QUIET = range(1, 5)  # clinic-local hours in which the weekly fit runs
LATE = RETRAIN_EVERY + timedelta(days=2)  # a fit this old runs whatever the hour
RETRY = timedelta(hours=6)  # a weekly fit that stopped (killed, failed) is tried again after this
SCORE_LEASE = timedelta(minutes=30)  # a scoring run not done after this may be taken up
TOPUP = timedelta(hours=1)  # between daily runs, visits booked or moved are scored this often
SCORED_AHEAD = risk_scores.SCORED_AHEAD  # the days the runs score (risk_model.upcoming)
SKEW = timedelta(minutes=10)  # a time further ahead than this was written by a clock set wrong
FIT = "risk_retrained"  # the fit's claim: {"at": claimed or renewed, "running_since": its start}
FIT_LEASE = timedelta(minutes=10)  # a running fit's claim not renewed for this long has stopped
RENEW_EVERY = timedelta(minutes=1)  # how often a fitting child renews its claim
FIT_SINCE = "CLINICDESK_FIT_SINCE"  # the claim's start, handed to the child that holds it
TRAIN = ("-m", "core.cli", "train-risk")  # the child's command after the interpreter
FIT_NICENESS = 10  # the fitting child's priority (nice): the desks' work comes first
_training: subprocess.Popen | None = None  # this process's fit, while it runs
_ended: subprocess.Popen | None = None  # the fit whose end ended_fit has told
_untold: tuple[int, str] | None = None  # a fit that ended before another started, not yet told
_fit_log: Path | None = None  # where this process's fit writes its messages (its stderr)
_running_since: str | None = None  # the start its claim carries, until the claim says it ended


def _claim(session, key: str, every: timedelta, now: datetime) -> bool:
    """True (and the run recorded) when `key` last ran longer than `every` ago. A run recorded
    in the future (the clock was set ahead, then put right) does not hold the next one off."""
    row = setting_row(session, key)
    last = (row.value or {}).get("at")
    if last and -SKEW <= now - datetime.fromisoformat(last) < every:
        return False
    row.value = {"at": now.isoformat()}
    return True


def retrain_every(session, now: datetime) -> timedelta | None:
    """How long after the last claimed fit another may start, or None while none is due. An
    upgraded feature list retrains within the hour; the first model is fitted at once (again a
    day later if none was stored: too little history, or the server stopped during the fit); a
    model a week old is refitted in QUIET hours at the first clinic, when nobody is at the
    desks, or at any hour once it is LATE (a practice whose server sleeps at night); one that
    stopped is tried again after RETRY (while a fit runs, its process renews the claim). A model
    stamped in the future (a clock set ahead) counts as LATE."""
    newest = session.execute(
        select(RiskModel.features, RiskModel.trained_at).order_by(RiskModel.id.desc()).limit(1)
    ).first()
    if newest is None:
        return timedelta(days=1)
    features, trained_at = newest
    if (features or {}).get("all") != list(FEATURES):  # trained before an upgrade
        return timedelta(hours=1)
    age = now - trained_at if trained_at <= now + SKEW else LATE
    if age < RETRAIN_EVERY:
        return None
    tz = session.scalar(select(Clinic.timezone).order_by(Clinic.id).limit(1)) or "UTC"
    return RETRY if to_local(now, tz).hour in QUIET or age >= LATE else None


def retrain_job(database: Database, settings: Settings) -> None:
    global _running_since
    if training():  # this process's fit still runs (its child holds the claim)
        return
    if _running_since is not None:  # this process's fit has ended, killed perhaps: say so
        _renew(database, _running_since, running=False)
        _running_since = None
    with database.write() as session:
        now = utcnow()
        every = retrain_every(session, now)
        if every is None or not _claim(session, FIT, every, now):
            return
        if _outcomes_before(session, now) < MIN_ROWS or _no_shows_before(session, now) < (
            MIN_NO_SHOWS
        ):  # an expected state of a young practice, not a failing job: tried again a day on
            log.info("risk model not trained: too little history yet; trying again later")
            return
        _fit_claim(session).value = {"at": now.isoformat(), "running_since": now.isoformat()}
    _start_training(settings, now)


def train_now(write, actor: Actor, settings: Settings) -> datetime:
    """Retrain now (the model page): start the fit in a child process as the weekly job does
    and return at once with its start; the child stores the model, and a failure shows in the
    jobs' health as the weekly fit's does (this process's jobs loop sees it end). Refused while
    a fit runs here or in another process (the claim `risk_retrained`), and with too little
    history, which the fit would refuse only minutes later."""
    ensure(actor, Permission.RISK_MANAGE)
    with write() as session:
        now = utcnow()
        row = _fit_claim(session)
        since = _running(session, row, now)
        if since is not None:
            raise Conflict(
                f"A fit is already running (started at {clinic_format(session).moment(since)}); "
                "the new model appears here when it is done."
            )
        if (found := _outcomes_before(session, now)) < MIN_ROWS:
            raise ValidationError(
                f"Only {found} past visits with a known outcome (attended or missed) so far: "
                f"the model needs at least {MIN_ROWS}, with some no-shows. Import history or "
                "train later."
            )
        if (missed := _no_shows_before(session, now)) < MIN_NO_SHOWS:
            raise ValidationError(
                f"Only {missed} past visit{'s were' if missed != 1 else ' was'} missed (no-show) "
                f"so far: the model needs at least {MIN_NO_SHOWS} to learn what sets them apart. "
                "Train later."
            )
        row.value = {"at": now.isoformat(), "running_since": now.isoformat()}
    try:
        _start_training(settings, now)
    except OSError:  # no process could be started: the claim must not say one runs
        with write() as session:
            _fit_claim(session).value = {"at": now.isoformat()}
        raise
    return now


def fit_running(session: Session, actor: Actor) -> datetime | None:
    """When the fit now running (here or in another process) started; None when none runs."""
    ensure(actor, Permission.ANALYTICS_READ)
    return _running(session, session.get(Setting, FIT), utcnow())


def _running(session: Session, row: Setting | None, now: datetime) -> datetime | None:
    """The start of the fit the claim says is running: marked started, renewed within
    FIT_LEASE (a fit whose process stopped renewing it has stopped) and no model stored since
    it started (the fit has just stored it, before its process's next round saw it end)."""
    value = (row.value or {}) if row is not None else {}
    if not value.get("running_since") or not value.get("at"):
        return None
    since = datetime.fromisoformat(value["running_since"])
    if not -SKEW <= now - datetime.fromisoformat(value["at"]) < FIT_LEASE:
        return None
    stored = session.scalar(select(func.max(RiskModel.trained_at)))
    return None if stored is not None and stored >= since else since


@contextlib.contextmanager
def holding_claim(database: Database, since: str | None, every: float | None = None):
    """Around the fit in the child (`core.cli train-risk` started by `_start_training`, which
    hands it the claim's start): renew the claim every RENEW_EVERY while the fit runs, and clear
    it when the fit ends, however it ends. A claim another fit has taken since is left alone. A
    fit run by hand (no claim handed over) claims nothing."""
    if not since:
        yield
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(every or RENEW_EVERY.total_seconds()):
            try:
                _renew(database, since, running=True)
            except SQLAlchemyError as error:  # the database away a moment: try next time
                log.warning("risk model: the fit's claim was not renewed: %s", error)

    renewer = threading.Thread(target=renew, name="fit-claim", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        _renew(database, since, running=False)


def _renew(database: Database, since: str, *, running: bool) -> None:
    """Renew the claim of the fit that started at `since` (running) or say it ended."""
    with database.write() as session:
        row = _fit_claim(session)
        value = row.value or {}
        if value.get("running_since") != since:
            return
        at = utcnow().isoformat() if running else value.get("at")
        row.value = {"at": at, "running_since": since} if running else {"at": at}


def _fit_claim(session: Session) -> Setting:
    """The fit's claim row, locked (one writer at a time across processes)."""
    return setting_row(session, FIT)


def _outcomes_before(session: Session, now: datetime) -> int:
    """Past visits with an outcome, counted up to MIN_ROWS (enough to try a fit)."""
    outcomes = select(Appointment.id).where(
        Appointment.status.in_(tuple(OUTCOMES)), Appointment.start_at < now
    )
    return session.scalar(select(func.count()).select_from(outcomes.limit(MIN_ROWS).subquery()))


def _no_shows_before(session: Session, now: datetime) -> int:
    """Past no-shows, counted up to MIN_NO_SHOWS (enough for the fit to learn from)."""
    missed = select(Appointment.id).where(
        Appointment.status == AppointmentStatus.NO_SHOW, Appointment.start_at < now
    )
    return session.scalar(select(func.count()).select_from(missed.limit(MIN_NO_SHOWS).subquery()))


def _start_training(settings: Settings, since: datetime) -> None:
    global _training, _fit_log, _running_since, _untold
    if _untold is None:  # a fit of this process that ended since the jobs loop last looked
        _untold = ended_fit()
    env = os.environ | {
        "DATABASE_URL": settings.database_url,
        "CLINICDESK_SECRET_KEY": settings.secret_key,
        "CLINICDESK_DATA_DIR": str(settings.data_dir),
        "OMP_NUM_THREADS": "1",  # one core: OpenMP threads spinning beside page runs slow both
        FIT_SINCE: since.isoformat(),  # the child holds the claim while it fits
    }
    command = [sys.executable, *TRAIN]
    _fit_log = Path(settings.data_dir) / "risk-fit.log"  # its owner's only, as the data folder
    with os.fdopen(os.open(_fit_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as err:
        _training = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stderr=err
        )
    with contextlib.suppress(OSError):  # it has finished already, or no priorities here
        os.setpriority(os.PRIO_PROCESS, _training.pid, FIT_NICENESS)
    _running_since = since.isoformat()
    log.info("risk model: training in process %s", _training.pid)


def training() -> bool:
    """Whether this process's fit is still running."""
    return _training is not None and _training.poll() is None


def ended_fit() -> tuple[int, str] | None:
    """This process's fit once it has ended, told once (core.jobs records a failed fit for the
    practice to see): its exit code and, when it failed, the last line it wrote (why it
    stopped), its messages also logged here; None while it runs, or when none ended since."""
    global _ended, _untold
    if _untold is not None:
        told, _untold = _untold, None
        return told
    if _training is None or _training is _ended or _training.poll() is None:
        return None
    _ended = _training
    if not _training.returncode:
        return 0, ""
    said = ""
    with contextlib.suppress(OSError, TypeError):  # no log kept (a fit started elsewhere)
        said = _fit_log.read_text(encoding="utf-8", errors="replace")
    log.warning("risk model: the fit stopped (exit code %s)\n%s", _training.returncode, said)
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    return _training.returncode, lines[-1] if lines else ""


def wait_for_training(timeout: float | None = None) -> int | None:
    """Wait for this process's fit (set-up scripts, tests); its exit code, None if none ran."""
    return None if _training is None else _training.wait(timeout)


def score_job(database: Database, settings: Settings) -> None:
    """Once a day, and between the daily runs at most every TOPUP while a scheduled visit to
    come has no score of its present time (booked or moved since the last run): without it a
    visit booked in the afternoon for the next morning had no badge, no place on the call list
    and no extra reminder until after it had passed. A run is recorded when its scores are
    stored; while it scores, a lease (SCORE_LEASE) keeps other processes off, and a run that
    stopped (killed, failed) is taken up by the next round once the lease has run out."""
    with database.write() as session:
        newest = session.scalar(select(RiskModel.features).order_by(RiskModel.id.desc()).limit(1))
        if (newest or {}).get("all") != list(FEATURES):
            return  # no model, or one from an older feature set: it scores nothing (retrain_job)
        now = utcnow()
        row = session.get(Setting, "risk_scored")
        last = (row.value or {}).get("at") if row else None
        if last and -SKEW <= now - datetime.fromisoformat(last) < SCORE_EVERY:
            checked = (row.value or {}).get("checked") or last
            if -SKEW <= now - datetime.fromisoformat(checked) < TOPUP:
                return
            read = (row.value or {}).get("read") or last
            row.value = {"at": last, "checked": now.isoformat(), "read": read}
            if not _to_score(session, now, datetime.fromisoformat(read)):
                return
        if not _claim(session, "risk_scoring", SCORE_LEASE, now):
            return
    from threadpoolctl import threadpool_limits

    from core.analytics import risk_model

    with database.read() as session, threadpool_limits(limits=1):
        model_id, scored = risk_model.upcoming(session, SYSTEM)  # seconds on 1M appointments
    with database.write() as session:
        risk_model.store_scores(session, SYSTEM, model_id, scored)
        # a top-up keeps the day's run's time: the next daily run comes a day after that one
        done = utcnow().isoformat()
        day_run = (
            last if last and -SKEW <= now - datetime.fromisoformat(last) < SCORE_EVERY else None
        )
        setting_row(session, "risk_scored").value = {
            "at": day_run or done,
            "checked": done,
            "read": now.isoformat(),  # what the run read: changes after this are not in it
        }
        lease = setting_row(session, "risk_scoring")
        if (lease.value or {}).get("at") == now.isoformat():  # ours: not one taken over since
            lease.value = {}  # the lease ends with the run


def _to_score(session: Session, now: datetime, read: datetime) -> bool:
    """Whether the scores should be made again before the next daily run: a no-show was undone
    since the last run read the visits (the patient's later visits were scored with it in
    their history: their badge, the call list and the extra reminder would go on it for a
    day), or a scheduled visit in the coming scoring window has no score of its present start
    and provider (booked or moved since) by the newest model (retrained since: its scores
    replace the old model's within the hour, not the next day). A model from an older
    feature set scores nothing (it is retrained within the hour): only the visits' own
    changes count then."""
    undone = select(AuditEvent.id).where(
        AuditEvent.action == Action.UNDO_NO_SHOW.value, AuditEvent.at >= read
    )
    if session.scalar(undone.limit(1)) is not None:
        return True
    newest = session.execute(
        select(RiskModel.id, RiskModel.features).order_by(RiskModel.id.desc()).limit(1)
    ).one()
    current = RiskScore.describes_visit()
    if (newest.features or {}).get("all") == list(FEATURES):
        current = and_(current, RiskScore.model_id == newest.id)
    scored = select(RiskScore.appointment_id).where(
        RiskScore.appointment_id == Appointment.id, current
    )
    return (
        session.scalar(
            select(Appointment.id)
            .where(
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
                Appointment.start_at >= now,
                Appointment.start_at < now + SCORED_AHEAD,
                ~scored.exists(),
            )
            .limit(1)
        )
        is not None
    )
