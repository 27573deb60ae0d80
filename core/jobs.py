"""Periodic jobs run by the app's background loop (serve.py) or `python -m core.cli run-jobs`.

Each job takes the Database and the Settings, does its own short transactions, and must be
safe to run from several instances at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.analytics import cancellation_rollups, risk_jobs
from core.feedback import surveys
from core.kernel.config import Settings
from core.messaging import notify
from core.patients import invitations
from core.waitlist import jobs as waitlist_jobs
from db.engine import Database

log = logging.getLogger("clinicdesk.jobs")


def deliver_notifications(database: Database, settings: Settings) -> None:
    notify.send_due(database.write, notify.transports(settings))


JOBS: list[Callable[[Database, Settings], None]] = [
    surveys.feedback_job,  # before delivery, so a request goes out in the same run
    waitlist_jobs.offer_job,  # freed slots → offers, lapsed offers → the next patient
    deliver_notifications,
    invitations.expire_job,  # pending portal invitations past expiry → expired
    cancellation_rollups.refresh_job,  # keeps the cancellation analytics' sums current
    risk_jobs.retrain_job,  # weekly: a fresh no-show model from the practice's history
    risk_jobs.score_job,  # daily: upcoming visits' no-show risk for the badges
]


def run_due(database: Database, settings: Settings) -> None:
    for job in JOBS:
        try:
            job(database, settings)
        except Exception:  # one failing job must not stop the others
            log.exception("job %s failed", job.__name__)
