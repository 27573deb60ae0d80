"""Bench: train the no-show risk model on the whole benchmark history.

`risk_training(url)` times core.analytics.risk_model.train (features streamed from SQL, the
time-split validation fit and the final fit) and its tracemalloc peak, then rolls the stored
model back so the benchmark database stays as generated. Target: fits the 2-CPU, 24 GiB machine.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from sqlalchemy.orm import Session


def risk_training(url: str) -> dict[str, Any]:
    from core.analytics import risk_model
    from core.kernel.authz import SYSTEM
    from db.engine import Database
    from db.models import RiskModel

    database = Database(url)
    RiskModel.__table__.create(database.engine, checkfirst=True)
    with Session(database.engine) as session:
        tracemalloc.start()
        started = time.perf_counter()
        trained = risk_model.train(session, SYSTEM)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        session.rollback()
    database.dispose()
    model = trained.metrics["model"]
    return {
        "rows": trained.rows,
        "seconds": round(seconds, 1),
        "peak_mib": round(peak / 2**20, 1),
        "roc_auc": model["roc_auc"],
        "baseline_roc_auc": trained.metrics["baseline"]["roc_auc"],
    }
