"""Periodic jobs run by the app's background loop (serve.py) or `python -m core.cli run-jobs`.

Each job takes the Database and the Settings, does its own short transactions, and must be
safe to run from several instances at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import InterfaceError, OperationalError

from core.analytics import cancellation_rollups, risk_jobs
from core.feedback import surveys
from core.forms import after_booking
from core.kernel.config import Settings
from core.kernel.errors import DatabaseUnavailable
from core.messaging import clinic_events, delivery, reminders
from core.patients import invitations
from core.payments import prepay
from core.waitlist import jobs as waitlist_jobs
from db.engine import Database

log = logging.getLogger("clinicdesk.jobs")


def deliver_notifications(database: Database, settings: Settings) -> None:
    delivery.send_due(database.write, delivery.transports(settings))


JOBS: list[Callable[[Database, Settings], None]] = [
    surveys.feedback_job,  # before delivery, so a request goes out in the same run
    reminders.reminders_job,  # each due reminder once
    after_booking.forms_job,  # the service's forms after booking or approval
    clinic_events.digest_job,  # the clinics' daily digests when due
    waitlist_jobs.offer_job,  # freed slots → offers, lapsed offers → the next patient
    deliver_notifications,
    invitations.expire_job,  # pending portal invitations past expiry → expired
    cancellation_rollups.refresh_job,  # keeps the cancellation analytics' sums current
    prepay.refunds_job,  # card refunds due through the payment provider (when configured)
    risk_jobs.retrain_job,  # weekly: a fresh no-show model from the practice's history
    risk_jobs.score_job,  # daily: upcoming visits' no-show risk for the badges
]


def run_due(database: Database, settings: Settings) -> None:
    """Run every job once. An unreachable database stops the round with one
    DatabaseUnavailable (one line for the log) instead of a traceback per job."""
    for job in JOBS:
        try:
            job(database, settings)
        except (OperationalError, InterfaceError) as exc:
            if not database.reachable():
                raise DatabaseUnavailable(
                    f"The database cannot be reached ({_first_line(exc)}); "
                    "the jobs run again when it is back."
                ) from None
            log.exception("job %s failed", job.__name__)
        except Exception:  # one failing job must not stop the others
            log.exception("job %s failed", job.__name__)


def _first_line(exc: Exception) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__
