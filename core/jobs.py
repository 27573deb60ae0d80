"""Periodic jobs run by the app's background loop (serve.py) or `python -m core.cli run-jobs`.

Each job takes the Database and the Settings, does its own short transactions, and must be
safe to run from several instances at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from weakref import WeakKeyDictionary

from sqlalchemy.exc import InterfaceError, OperationalError

from core.analytics import cancellation_rollups, risk_jobs
from core.feedback import surveys
from core.forms import after_booking
from core.kernel.config import Settings
from core.kernel.errors import DatabaseUnavailable
from core.messaging import clinic_events, delivery, reminders
from core.patients import invitations
from core.payments.desk import refunds_job
from core.practice import backups, job_health
from core.practice.housekeeping import housekeeping_job
from core.requests.lapses import lapse_job
from core.waitlist import jobs as waitlist_jobs
from db.engine import Database
from db.types import utcnow

log = logging.getLogger("clinicdesk.jobs")


def deliver_notifications(database: Database, settings: Settings) -> None:
    delivery.send_due(database.write, delivery.transports(settings))


JOBS: list[Callable[[Database, Settings], None]] = [
    surveys.feedback_job,  # before delivery, so a request goes out in the same run
    reminders.reminders_job,  # each due reminder once
    after_booking.forms_job,  # the service's forms after booking or approval
    clinic_events.digest_job,  # the clinics' daily digests when due
    lapse_job,  # proposals unanswered until their link lapsed → their time let go
    waitlist_jobs.offer_job,  # freed slots → offers, lapsed offers → the next patient
    deliver_notifications,
    invitations.expire_job,  # pending portal invitations past expiry → expired
    cancellation_rollups.refresh_job,  # keeps the cancellation analytics' sums current
    refunds_job,  # card refunds due, and card-on-file charges left unfinished (Stripe)
    risk_jobs.retrain_job,  # weekly: a fresh no-show model from the practice's history
    risk_jobs.score_job,  # daily: upcoming visits' no-show risk for the badges
    housekeeping_job,  # daily, in batches: expired sessions, links, counts
    backups.backup_job,  # nightly: a checked copy of the database into data/backups
]


def run_due(database: Database, settings: Settings) -> None:
    """Run every job once. An unreachable database stops the round with one
    DatabaseUnavailable (one line for the log) instead of a traceback per job. A job that
    raises is logged and recorded for the practice to see (core.practice.job_health: one read
    of the jobs' health a round, a write only when a job starts failing, keeps failing for
    EVERY, or works again)."""
    before = _health(database)
    outcomes: list[job_health.Outcome] = []
    for job in JOBS:
        started = utcnow()
        try:
            job(database, settings)
        except (OperationalError, InterfaceError) as exc:
            _stop_if_unreachable(database, exc)
            log.exception("job %s failed", job.__name__)
            outcomes.append(_outcome(job.__name__, started, exc))
        except Exception as exc:  # one failing job must not stop the others
            log.exception("job %s failed", job.__name__)
            outcomes.append(_outcome(job.__name__, started, exc))
        else:
            outcomes.append(_outcome(job.__name__, started))
    if before is None:  # the health could not be read: recorded next round
        return
    if (ended := risk_jobs.ended_fit()) is not None:  # the weekly fit's child process ended
        outcomes.append(_fit_outcome(*ended))
    _record(database, before, outcomes)


# what this process has seen of each database's jobs and not written yet
_TALLIES: WeakKeyDictionary[Database, job_health.Tally] = WeakKeyDictionary()


def _health(database: Database) -> dict[str, job_health.State] | None:
    """The round's one read of the jobs' health; None (nothing recorded this round) when it
    cannot be read, save an unreachable database, which stops the round."""
    try:
        with database.read() as session:
            return job_health.states(session)
    except (OperationalError, InterfaceError) as exc:
        _stop_if_unreachable(database, exc)
        log.exception("the jobs' health could not be read")
    except Exception:
        log.exception("the jobs' health could not be read")
    return None


def _record(database, before, outcomes: list[job_health.Outcome]) -> None:
    tally = _TALLIES.setdefault(database, job_health.Tally())
    found = job_health.changes(before, outcomes, tally, utcnow())
    if not found:  # a healthy round (or one failing as before): nothing to write
        return
    try:
        with database.write() as session:
            job_health.apply(session, found)
    except Exception:  # the jobs ran; their health is written next time
        log.exception("the jobs' health could not be recorded")
        return
    tally.written(found)


def _outcome(name: str, started, error: Exception | None = None) -> job_health.Outcome:
    line = None if error is None else job_health.error_line(getattr(error, "orig", None) or error)
    return job_health.Outcome(name, started, utcnow(), line)


def _fit_outcome(code: int, said: str) -> job_health.Outcome:
    now = utcnow()
    error = None
    if code:
        why = f": {said}" if said else "; run python -m core.cli train-risk to see why"
        error = f"The fit (python -m core.cli train-risk) stopped with exit code {code}{why}"
    return job_health.Outcome(job_health.RISK_FIT, now, now, error)


def _stop_if_unreachable(database: Database, exc: Exception) -> None:
    if not database.reachable():
        raise DatabaseUnavailable(
            f"The database cannot be reached ({_first_line(exc)}); "
            "the jobs run again when it is back."
        ) from None


def _first_line(exc: Exception) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__
