"""The risk model's periodic work: retrain weekly, score upcoming visits daily. The last runs
are remembered in `settings`, so several app instances do each at most about once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from core.analytics import risk_scores
from core.analytics.risk_features import FEATURES
from core.kernel.authz import SYSTEM
from core.kernel.config import Settings
from core.kernel.errors import DomainError
from db.engine import Database
from db.models import RiskModel, Setting
from db.types import utcnow

log = logging.getLogger("clinicdesk.risk")
RETRAIN_EVERY = timedelta(days=7)
SCORE_EVERY = timedelta(days=1)


def _claim(session, key: str, every: timedelta, now: datetime) -> bool:
    """True (and the run recorded) when `key` last ran longer than `every` ago."""
    row = session.execute(select(Setting).where(Setting.key == key).with_for_update()).scalar()
    last = (row.value or {}).get("at") if row else None
    if last and now - datetime.fromisoformat(last) < every:
        return False
    row = row or Setting(key=key)
    row.value = {"at": now.isoformat()}
    session.add(row)
    return True


def _outdated(session) -> bool:
    """The newest model was trained on another feature list (an upgrade): retrain at once."""
    features = session.scalar(select(RiskModel.features).order_by(RiskModel.id.desc()).limit(1))
    return features is not None and features.get("all") != list(FEATURES)


def retrain_job(database: Database, settings: Settings) -> None:
    with database.write() as session:
        every = timedelta(hours=1) if _outdated(session) else RETRAIN_EVERY
        if not _claim(session, "risk_retrained", every, utcnow()):
            return
    from threadpoolctl import threadpool_limits  # scikit-learn loads only when there is work

    from core.analytics import risk_model

    try:
        # seconds of fitting, outside SQLite's write lock, on one core: OpenMP threads spinning
        # beside the sessions' page runs made a fit 70 times slower on a busy machine
        with database.read() as session, threadpool_limits(limits=1):
            model = risk_model.learn(session, SYSTEM)
        with database.write() as session:
            log.info(risk_model.save(session, SYSTEM, model).summary)
    except DomainError as exc:  # too little history yet: try again next week
        log.info("risk model not trained: %s", exc)


def score_job(database: Database, settings: Settings) -> None:
    with database.write() as session:
        if risk_scores.latest_model_id(session) is None:
            return
        if not _claim(session, "risk_scored", SCORE_EVERY, utcnow()):
            return
    from threadpoolctl import threadpool_limits

    from core.analytics import risk_model

    with database.write() as session, threadpool_limits(limits=1):
        risk_model.store_upcoming(session, SYSTEM)
