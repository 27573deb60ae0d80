"""The no-show risk model: gradient-boosted trees with isotonic calibration (scikit-learn),
trained on the practice's own history and validated on a time split, never a random one.

The trees look at a tenth of the features at each split (`max_features`): with many related
history and booking counts this decorrelates the trees and ranked visits clearly better on the
Kaggle time split. The calibration is learnt forward in time: trees fitted on the earlier days
score each of the three latest fifths in turn, an isotonic map is fitted to those scores, and
that map is applied to the trees refitted on every day (a hair of the raw score is kept so that
the map's flat steps do not tie visits the trees told apart). Three slices rather than one
steady the map against one fortnight's drift in the no-show rate.

Between fits the model follows the practice's no-show rate (`following_drift`): each day's
scores are shifted by what the visits since the fit, on the days before that day, showed.

Training and scoring stay in the practice: the model is saved with joblib into `risk_models`
(our own database; a model is only ever loaded from there), and nothing is sent anywhere.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import TimeSeriesSplit
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.analytics.risk_features import (
    CATEGORICAL,
    FEATURES,
    MIN_NO_SHOWS,
    MIN_ROWS,
    SCORABLE,
    FeatureRow,
    iter_features,
)
from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import NotFound, ValidationError
from core.kernel.exports import to_csv
from core.kernel.locks import setting_row
from db.models import Appointment, RiskModel, RiskScore
from db.types import utcnow

SMALL = 20_000  # fewer visits than this train a smaller ensemble
VALIDATION_SHARE = 0.2  # the latest fifth of the training days is held out for the figures
MAX_CODES = 250  # category codes per column (HistGradientBoosting's bins); rarer ones share one
# the rows (in day order) whose forward scores calibrate: trees fitted before each slice
CALIBRATION_SLICES = ((0.4, 0.6), (0.6, 0.8), (0.8, 1.0))
TIE_BREAK = 1e-6
SCORES_LOCK = "risk_scored"  # the settings row whose lock makes one writer of the scores
DRIFT_PRIOR = 2000  # visits: a shift seen on n visits since the fit counts n / (n + this)
LEAD = FEATURES.index("lead_days")
BASIC = (
    "lead_days",
    "prior_visits",
    "prior_no_shows",
    "prior_no_show_rate",
    "prior_cancellations",
    "days_since_last_visit",
    "age",
    "weekday",
    "hour",
    "sms_reminder",
    "reminded",
    "confirmed",
    "service",
    "provider",
    "clinic",
    "gender",
    "area",
    "welfare",
    "conditions",
)


@dataclass
class Fitted:
    """What is saved: the trees, their calibration map, the category codes, the feature
    columns they were fitted with (a feature the practice has no data for, e.g. imported
    patient attributes, is left out) and the feature list of that time."""

    model: Any
    codes: dict[str, dict[float, int]]
    columns: list[int]
    calibration: IsotonicRegression | None = None
    names: tuple[str, ...] = ()

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = x.copy()
        for name, mapping in self.codes.items():
            col = FEATURES.index(name)
            x[:, col] = [mapping.get(v, MAX_CODES) if v == v else np.nan for v in x[:, col]]
        return x[:, self.columns]

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self.encode(x))[:, 1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        raw = self.raw(x)
        if self.calibration is None:
            return raw
        return np.clip(self.calibration.predict(raw) + TIE_BREAK * raw, 0, 1)


def _codes(x: np.ndarray) -> dict[str, dict[float, int]]:
    codes = {}
    for name in CATEGORICAL:
        values, counts = np.unique(x[:, FEATURES.index(name)], return_counts=True)
        keep = [v for _, v in sorted(zip(-counts, values, strict=True)) if v == v][:MAX_CODES]
        codes[name] = {float(v): i for i, v in enumerate(keep)}
    return codes


def _trees(x: np.ndarray, y: np.ndarray, seed: int) -> Fitted:
    codes = _codes(x)
    usable = FEATURES if len(y) >= SMALL else BASIC  # few visits: the finer counts overfit
    columns = [
        i for i, name in enumerate(FEATURES) if name in usable and not np.isnan(x[:, i]).all()
    ]
    boosted = HistGradientBoostingClassifier(
        categorical_features=[
            columns.index(FEATURES.index(c)) for c in CATEGORICAL if FEATURES.index(c) in columns
        ],
        learning_rate=0.03 if len(y) >= SMALL else 0.1,
        max_iter=600 if len(y) >= SMALL else 60,  # a small practice: fewer, bolder trees
        max_leaf_nodes=15 if len(y) >= SMALL else 31,
        min_samples_leaf=min(80, max(10, len(y) // 100)),
        l2_regularization=1.0,
        max_features=0.1 if len(y) >= SMALL else 1.0,
        early_stopping=False,
        random_state=seed,
    )
    fitted = Fitted(boosted, codes, columns, names=FEATURES)
    boosted.fit(fitted.encode(x), y)
    return fitted


def fit(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> Fitted:
    """Boosted trees on every row (rows in day order), calibrated on time-later slices; a
    small practice's trees are calibrated across forward-in-time folds instead (averaging
    three models steadies the ranking where a slice would be a few hundred visits)."""
    if len(y) < SMALL:
        fitted = _trees(x, y, seed)
        calibrated = CalibratedClassifierCV(fitted.model, method="isotonic", cv=TimeSeriesSplit(3))
        calibrated.fit(fitted.encode(x), y)
        fitted.model = calibrated
        return fitted
    scores, outcomes = [], []
    for start, end in CALIBRATION_SLICES:
        cut, stop = int(len(y) * start), int(len(y) * end)
        scores.append(_trees(x[:cut], y[:cut], seed).raw(x[cut:stop]))
        outcomes.append(y[cut:stop])
    calibration = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
    calibration.fit(np.concatenate(scores), np.concatenate(outcomes))
    final = _trees(x, y, seed)
    final.calibration = calibration
    return final


def following_drift(p: np.ndarray, days: list[date], outcomes: np.ndarray) -> np.ndarray:
    """The scores `p` of visits after the model's fit, each day's shifted on the logit scale so
    that the model's mean over the earlier days' visits with a known outcome (NaN: not yet
    known) matches their no-show rate, shrunk towards no shift while those visits are few.
    Only days before a visit's own day count: its own outcome and later ones never do."""
    day = np.array(days, dtype="datetime64[D]")
    logits = np.log(np.clip(p, 1e-4, 1 - 1e-4) / np.clip(1 - p, 1e-4, 1))
    known = ~np.isnan(outcomes)
    out = np.asarray(p, dtype=float).copy()
    for current in np.unique(day):
        seen = known & (day < current)
        if not seen.any():
            continue
        shift, target = 0.0, outcomes[seen].mean()
        for _ in range(4):  # Newton's method on mean(sigmoid(logit + shift)) = target
            q = 1 / (1 + np.exp(-(logits[seen] + shift)))
            shift -= (q.mean() - target) / max((q * (1 - q)).mean(), 1e-9)
        n = int(seen.sum())
        today = day == current
        out[today] = 1 / (1 + np.exp(-(logits[today] + shift * n / (n + DRIFT_PRIOR))))
    return out


class LeadTimeBaseline:
    """The honest yardstick: no-show rate as a monotone function of lead time alone; a visit
    whose lead time is not known (imported without its booking time) gets the overall rate."""

    def __init__(self, lead: np.ndarray, y: np.ndarray) -> None:
        known = ~np.isnan(lead)
        self.rate = float(y.mean()) if len(y) else 0.0
        self.curve = (
            IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(lead[known], y[known])
            if known.any()
            else None
        )

    def predict(self, lead: np.ndarray) -> np.ndarray:
        out = np.full(len(lead), self.rate)
        known = ~np.isnan(lead)
        if self.curve is not None and known.any():
            out[known] = self.curve.predict(lead[known])
        return out


def lead_time_baseline(x: np.ndarray, y: np.ndarray) -> LeadTimeBaseline:
    return LeadTimeBaseline(x[:, LEAD], y)


def deciles(p: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
    """Predicted against observed no-show rate in ten equal-count bins of predicted risk."""
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, 10):
        if len(part):
            out.append(
                {
                    "predicted": float(p[part].mean()),
                    "observed": float(y[part].mean()),
                    "n": int(len(part)),
                }
            )
    return out


def evaluate(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    bins = deciles(p, y)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None,
        "pr_auc": float(average_precision_score(y, p)) if y.sum() else None,
        "brier": float(brier_score_loss(y, p)),
        "base_rate": float(y.mean()),
        "rows": int(len(y)),
        "deciles": bins,
        "max_decile_gap": max(abs(b["predicted"] - b["observed"]) for b in bins),
    }


def matrix(session: Session, **window) -> tuple[np.ndarray, np.ndarray, list[date]]:
    values, outcomes, days = [], [], []
    for row in iter_features(session, **window):
        values.append(row.values)
        outcomes.append(row.outcome)
        days.append(row.day)
    x = np.array(values, dtype=float).reshape(-1, len(FEATURES))
    order = np.argsort(np.array(days, dtype="datetime64[D]"), kind="stable")
    return x[order], np.array(outcomes, dtype=float)[order], [days[i] for i in order]


@dataclass(frozen=True)
class Trained:
    model_id: int
    rows: int
    data_from: date
    data_until: date
    metrics: dict[str, Any]

    @property
    def summary(self) -> str:
        m, b = self.metrics["model"], self.metrics["baseline"]
        return (
            f"Risk model #{self.model_id}: {self.rows:,} visits from {self.data_from} to before "
            f"{self.data_until}. Time-split validation on {m['rows']:,} later visits: ROC-AUC "
            f"{m['roc_auc']:.3f} (lead time alone {b['roc_auc']:.3f}), PR-AUC {m['pr_auc']:.3f}, "
            f"Brier {m['brier']:.4f}, largest decile gap {m['max_decile_gap'] * 100:.1f} points."
        )


def learn(session: Session, actor: Actor, *, until: date | None = None) -> RiskModel:
    """Train on visits whose day is before `until` (default: today), validate on the latest
    fifth of those days with a model fitted on the days before, then refit on all of them.
    Reads only: the fitting takes seconds, so it runs outside any write transaction and the
    unsaved model is stored by `save`."""
    ensure(actor, Permission.RISK_MANAGE)
    today = utcnow().date()
    if until is not None and until > today + timedelta(days=1):  # a day for zones ahead of UTC
        raise ValidationError(
            f"The model learns from past visits: --until {until} is after today ({today}). "
            "Leave it out to train on every visit before today."
        )
    until = until or today
    x, y, days = matrix(session, until=until)
    if len(y) < MIN_ROWS:
        raise ValidationError(
            f"Only {len(y)} past visits with a known outcome before {until} (at least "
            f"{MIN_ROWS}, with some no-shows, are needed). Import history or train later."
        )
    if y.sum() < MIN_NO_SHOWS or y.sum() == len(y):
        missed = int(y.sum())
        raise ValidationError(
            f"The {len(y):,} past visits with a known outcome before {until} hold "
            + (
                f"only {missed} no-show{'s' if missed != 1 else ''}"
                if missed < MIN_NO_SHOWS
                else "no attended visit"
            )
            + f": the model needs at least {MIN_NO_SHOWS} no-shows and attended visits both to "
            "learn what sets them apart. Train later, once more visits were missed and attended."
        )
    distinct = sorted(set(days))
    cut = (
        distinct[max(1, int(len(distinct) * (1 - VALIDATION_SHARE)))] if len(distinct) > 1 else None
    )
    split = days.index(cut) if cut else int(len(y) * (1 - VALIDATION_SHARE))
    _check_outcomes(y, days, split, until)
    early = fit(x[:split], y[:split])
    baseline = lead_time_baseline(x[:split], y[:split])
    metrics = {
        "model": evaluate(
            following_drift(early.predict(x[split:]), days[split:], y[split:]), y[split:]
        ),
        "baseline": evaluate(baseline.predict(x[split:, LEAD]), y[split:]),
        "validation_from": str(days[split]),
        "trained_rows": int(split),
    }
    final = fit(x, y)
    return RiskModel(
        data_from=days[0],
        data_until=until,
        rows=len(y),
        features={
            "names": [FEATURES[i] for i in final.columns],
            "all": list(FEATURES),
            "categorical": [c for c in CATEGORICAL if FEATURES.index(c) in final.columns],
        },
        metrics=metrics,
        payload=_dumped(final),
    )


def _first_fit(rows: int) -> int:
    """How many of `rows` (in day order) the earliest of `fit`'s models learns from: the
    first of three forward folds (a small practice) or the first calibration slice's trees."""
    return rows - 3 * (rows // 4) if rows < SMALL else int(rows * CALIBRATION_SLICES[0][0])


def _check_outcomes(y: np.ndarray, days: list[date], split: int, until: date) -> None:
    """Refuse a history whose earliest days or validation days hold only one outcome: the
    trees cannot learn from the one, the figures cannot be measured on the other."""
    parts = (
        (y[: _first_fit(split)], f"the earliest days ({days[0]} to {days[_first_fit(split) - 1]})"),
        (y[split:], f"the validation days ({days[split]} to {days[-1]})"),
    )
    for part, name in parts:
        if 0 < part.sum() < len(part):
            continue
        has = "no-shows only" if part.sum() else "no no-show"
        raise ValidationError(
            f"The visits before {until} cannot train a model: {name} have {has}, and the "
            "model needs visits attended and missed both early on (to learn from) and in the "
            "latest fifth of the days (to check it on). Import more history, or train later "
            "(or with another --until)."
        )


def save(session: Session, actor: Actor, row: RiskModel) -> Trained:
    """Store a model made by `learn` (a short write) and audit it."""
    ensure(actor, Permission.RISK_MANAGE)
    session.add(row)
    session.flush()
    audit.record(
        session, actor, "risk_model_trained", "risk_model", row.id, details={"rows": row.rows}
    )
    return Trained(row.id, row.rows, row.data_from, row.data_until, row.metrics)


def train(session: Session, actor: Actor, *, until: date | None = None) -> Trained:
    """`learn` and `save` in one session (the CLI, the bench and tests)."""
    return save(session, actor, learn(session, actor, until=until))


def _dumped(fitted: Fitted) -> bytes:
    """scikit-learn's own persistence (joblib), kept in the practice's database."""
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    return buffer.getvalue()


def latest_model(session: Session) -> RiskModel | None:
    return session.scalar(select(RiskModel).order_by(RiskModel.id.desc()).limit(1))


def _loaded(session: Session) -> tuple[RiskModel, Fitted]:
    row = latest_model(session)
    if row is None:
        raise NotFound("No risk model yet: train one (python -m core.cli train-risk).")
    if not is_current(row):
        raise NotFound(
            "The stored risk model was trained on an older set of features: train it again "
            "(python -m core.cli train-risk)."
        )
    return row, joblib.load(io.BytesIO(row.payload))  # written by `train` only


def is_current(row: RiskModel) -> bool:
    """Whether the model was trained on today's feature list (else it must be retrained)."""
    return (row.features or {}).get("all") == list(FEATURES)


def score(
    session: Session, actor: Actor, *, since: date, until: date | None = None
) -> list[tuple[int, str | None, date, float]]:
    """(appointment id, external_ref, day, probability) for each visit from `since` on; the
    visits since the model's fit are read as well, for the drift they show."""
    ensure(actor, Permission.ANALYTICS_READ)
    return [
        (r.appointment_id, r.external_ref, r.day, q)
        for r, q in _scored(session, since=since, until=until)[1]
    ]


def _scored(
    session: Session, *, since: date, until: date | None = None
) -> tuple[int, list[tuple[FeatureRow, float]]]:
    """The model's id and each visit's feature row (its start and provider as read) with its
    probability, for the visits from `since` on."""
    row, fitted = _loaded(session)
    start = min(since, row.data_until)
    rows = list(iter_features(session, since=start, until=until, statuses=SCORABLE))
    x = np.array([r.values for r in rows], dtype=float).reshape(-1, len(FEATURES))
    p = fitted.predict(x)
    after = np.array([r.day >= row.data_until for r in rows], dtype=bool)
    if after.any():
        outcomes = np.array([np.nan if r.outcome is None else r.outcome for r in rows])
        days = [r.day for r, a in zip(rows, after, strict=True) if a]
        p[after] = following_drift(p[after], days, outcomes[after])
    return row.id, [(r, float(q)) for r, q in zip(rows, p, strict=True) if r.day >= since]


def scores_csv(scored: list[tuple[int, str | None, date, float]]) -> bytes:
    """The scores as CSV, safe to open in a spreadsheet (an imported reference may start with
    '=')."""
    return to_csv(
        ["appointment", "day", "no_show_probability"],
        (
            [ref or appointment_id, day.isoformat(), f"{p:.4f}"]
            for appointment_id, ref, day, p in scored
        ),
    )


def upcoming(session: Session, actor: Actor, *, days: int = 14) -> tuple[int, list]:
    """The model's id and its scores of the visits from today to `days` ahead, each as
    (appointment id, start, provider, probability) with the start and provider it was scored
    for (reads only: seconds on a large practice, so the jobs loop runs it outside any write
    transaction)."""
    ensure(actor, Permission.RISK_MANAGE)
    today = utcnow().date() - timedelta(days=1)
    until = today + timedelta(days=days + 2)
    model_id, scored = _scored(session, since=today, until=until)
    return model_id, [(r.appointment_id, r.start_at, r.provider_id, p) for r, p in scored if p == p]


def store_scores(session: Session, actor: Actor, model_id: int, scored: list) -> int:
    """Keep the scores of the visits still scheduled, for the badges (a short write). Each
    keeps the start and provider it was scored for: a visit moved while the run read and
    scored (seconds on a large practice) keeps no score of its old time, it shows 'not scored
    yet' until the next run scores it."""
    ensure(actor, Permission.RISK_MANAGE)
    # one writer of the scores at a time: two servers' runs storing at once each deleted a
    # visit's row and inserted it again, and on PostgreSQL the second's insert then met the
    # first's committed row (a duplicate key: the run failed). The second now waits here and
    # then replaces the first's rows.
    setting_row(session, SCORES_LOCK)
    ids = [s[0] for s in scored]
    status = {}  # each visit's status now: a cancelled one keeps no score
    for start in range(0, len(ids), 500):
        query = select(Appointment.id, Appointment.status)
        for row in session.execute(query.where(Appointment.id.in_(ids[start : start + 500]))):
            status[row[0]] = row[1]
    keep = [s for s in scored if status.get(s[0]) in SCORABLE[:2]]
    for start in range(0, len(keep), 500):
        chunk = keep[start : start + 500]
        session.execute(
            delete(RiskScore).where(RiskScore.appointment_id.in_([c[0] for c in chunk]))
        )
        session.add_all(
            RiskScore(
                appointment_id=appointment_id,
                model_id=model_id,
                probability=probability,
                start_at=start_at,
                provider_id=provider_id,
            )
            for appointment_id, start_at, provider_id, probability in chunk
        )
    session.flush()
    return len(keep)


def store_upcoming(session: Session, actor: Actor, *, days: int = 14) -> int:
    """Score scheduled visits from today to `days` ahead and keep the figures for the badges."""
    return store_scores(session, actor, *upcoming(session, actor, days=days))
