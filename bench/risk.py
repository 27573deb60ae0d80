"""Bench: train the no-show risk model on the whole benchmark history.

`risk_training(url)` times core.analytics.risk_model.train (features streamed from SQL, the
time-split validation fit and the final fit) and its tracemalloc peak, and keeps the model in
place of any earlier one: the browser runs after it meet the practice as the jobs loop keeps it,
with this week's model and no fit running. Target: fits the 2-CPU, 24 GiB machine.

`python -m bench.risk --url sqlite:///FILE [--split DAY] [--validate-from DAY]` scores the model
on a time split of a database holding the Kaggle no-show file (`import-appointments`): fitted
on the visits before `--split` (default 2016-05-20), scored on those from then on. With
`--validate-from` it fits on the days before that day and scores the days up to `--split`
instead: a validation inside the training period, where choices are made before the test
figures are read once (bench/README.md). Each day's scores follow the drift the scored days
before it showed, as `score-risk` does after a fit.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session


def risk_training(url: str) -> dict[str, Any]:
    from core.analytics import risk_model
    from core.kernel.authz import SYSTEM
    from db.engine import Database
    from db.models import RiskModel, RiskScore

    database = Database(url)
    RiskModel.__table__.create(database.engine, checkfirst=True)
    with Session(database.engine) as session:
        tracemalloc.start()
        started = time.perf_counter()
        trained = risk_model.train(session, SYSTEM)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        session.execute(delete(RiskScore).where(RiskScore.model_id != trained.model_id))
        session.execute(delete(RiskModel).where(RiskModel.id != trained.model_id))
        session.commit()
    database.dispose()
    model = trained.metrics["model"]
    return {
        "rows": trained.rows,
        "seconds": round(seconds, 1),
        "peak_mib": round(peak / 2**20, 1),
        "roc_auc": model["roc_auc"],
        "baseline_roc_auc": trained.metrics["baseline"]["roc_auc"],
    }


def time_split(url: str, split: date, validate_from: date | None = None) -> dict[str, Any]:
    """Fit on the days before `split` and score the days from it on (with `validate_from`:
    fit before that day, score from it to `split`)."""
    from core.analytics import risk_model
    from db.engine import Database

    database = Database(url)
    with Session(database.engine) as session:
        x, y, days = risk_model.matrix(session)
    database.dispose()
    day = np.array(days, dtype="datetime64[D]")
    start, end = (validate_from, split) if validate_from else (split, None)
    train = day < np.datetime64(start)
    scored = (day >= np.datetime64(start)) & (day < np.datetime64(end) if end else True)
    started = time.perf_counter()
    fitted = risk_model.fit(x[train], y[train])
    seconds = time.perf_counter() - started
    scored_days = [d for d, keep in zip(days, scored, strict=True) if keep]
    p = risk_model.following_drift(fitted.predict(x[scored]), scored_days, y[scored])
    figures = risk_model.evaluate(p, y[scored])
    return {
        "trained": int(train.sum()),
        "scored": int(scored.sum()),
        "fit_seconds": round(seconds, 1),
        **{k: figures[k] for k in ("roc_auc", "pr_auc", "brier", "base_rate", "max_decile_gap")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a database with the Kaggle file imported")
    parser.add_argument("--split", type=date.fromisoformat, default=date(2016, 5, 20))
    parser.add_argument("--validate-from", type=date.fromisoformat)
    args = parser.parse_args()
    result = time_split(args.url, args.split, args.validate_from)
    print(
        f"fitted on {result['trained']:,} visits in {result['fit_seconds']} s, scored "
        f"{result['scored']:,}: ROC-AUC {result['roc_auc']:.5f}, PR-AUC {result['pr_auc']:.4f}, "
        f"Brier {result['brier']:.4f}, base rate {result['base_rate']:.3f}, largest decile gap "
        f"{result['max_decile_gap'] * 100:.2f} points"
    )


if __name__ == "__main__":
    main()
