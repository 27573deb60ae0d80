"""No-show risk model: what it was trained on, its honest validation on a time split (ROC-AUC,
PR-AUC, Brier score, calibration by decile) beside the lead-time-alone baseline; retrain."""

from datetime import date

import pandas as pd
import streamlit as st

from core.analytics import risk_jobs, risk_scores
from core.kernel.authz import Permission
from core.kernel.money import NO_VALUE
from ui import actor, charts, refresh, settings
from ui.auth import signed_fragment
from ui.caches import cached
from ui.context import read, run_in_steps
from ui.locale import display_format
from ui.risk import no_model, small_validation
from ui.text import show_table

STARTED = (
    "Training started; the new model appears here when it is done (a few minutes on a large "
    "practice)."
)


@cached("analytics", ttl=60, max_entries=5)
def _info(me):
    return read(risk_scores.get_model_info, me)


def _figure(value, fmt) -> str:
    return NO_VALUE if value is None else fmt.number(value, 3)


@signed_fragment(run_every=15)
def _fitting(me, started: str) -> None:
    """While a fit runs (in this server or another): says so; once it has ended, the page is
    drawn again with the model it stored."""
    if read(risk_jobs.fit_running, me) is None:
        refresh("analytics")
    st.info(f"A fit is running (started at {started}); the new model appears here when it is done.")


st.title("No-show risk model")
me = actor()
info = _info(me)
practice = display_format()  # the practice's local time and locale, never UTC
running = read(risk_jobs.fit_running, me)  # one row: a fit started here or by another server
if me.can(Permission.RISK_MANAGE) and st.button("Retrain now", key="risk_train"):
    # the fit runs in a child process (core.cli train-risk), never in this server's process
    started = run_in_steps(risk_jobs.train_now, settings())
    if started:
        st.success(STARTED)
        running = started
if running is not None:
    _fitting(me, practice.moment(running))
if info is None:
    st.info(no_model(read(risk_scores.readiness, me), me, practice))
    st.stop()
if not info.current:
    st.warning(
        "This model was trained on an older set of features, so it scores nothing: visits "
        "show no risk, the call list stays empty and no extra reminder goes until it is "
        "trained again. The background jobs retrain it within the hour"
        + (", or use Retrain now above." if me.can(Permission.RISK_MANAGE) else ".")
        + " Its figures below are those of its own validation."
    )
m, b = info.metrics.get("model", {}), info.metrics.get("baseline", {})
validated = info.metrics.get("validation_from")
validated = practice.day(date.fromisoformat(validated), weekday=False) if validated else ""
st.caption(
    f"Model #{info.id}, trained {practice.moment(info.trained_at)} on "
    f"{practice.number(info.rows)} visits from {practice.day(info.data_from, weekday=False)} "
    f"to before {practice.day(info.data_until, weekday=False)}. Validated on "
    f"{practice.number(m.get('rows', 0))} visits from {validated} on, with a model fitted only "
    "on earlier days. As after every fit, each day's scores follow the no-show rate of the "
    "days since the fit before it."
)
if rough := small_validation(m, practice):
    st.caption(rough)
c = st.columns(4)
c[0].metric("ROC-AUC", _figure(m.get("roc_auc"), practice), help="Ranking quality; 0.5 is chance.")
c[1].metric(
    "PR-AUC",
    _figure(m.get("pr_auc"), practice),
    help=f"Base rate {practice.percent(m.get('base_rate'))}.",  # none recorded: —, not 0%
)
c[2].metric(
    "Brier score", _figure(m.get("brier"), practice), help="Mean squared error; lower is better."
)
gap = m.get("max_decile_gap")
c[3].metric(
    "Largest decile gap", NO_VALUE if gap is None else f"{practice.number(gap * 100, 1)} pts"
)
show_table(
    pd.DataFrame(
        {
            "": ["This model", "Lead time alone"],
            "ROC-AUC": [m.get("roc_auc"), b.get("roc_auc")],
            "PR-AUC": [m.get("pr_auc"), b.get("pr_auc")],
            "Brier": [m.get("brier"), b.get("brier")],
        }
    ),
    hide_index=True,
    key="risk_compare",
)
bins = m.get("deciles", [])
if bins:
    labels = [f"{i + 1}" for i in range(len(bins))]
    # each decile's n: the validation visits in it (the baseline's own, 0 where it has none)
    ns = [int(d.get("n", 0)) for d in bins]
    baseline = b.get("deciles", [])[: len(bins)]
    base_ns = [int(d.get("n", 0)) for d in baseline] + [0] * (len(bins) - len(baseline))
    charts.show(
        charts.lines(
            labels,
            {
                "Predicted": [d["predicted"] for d in bins],
                "Observed": [d["observed"] for d in bins],
                "Lead time alone (observed)": [d["observed"] for d in baseline],
            },
            title=charts.with_n(
                "Calibration: no-show rate by decile of predicted risk",
                sum(ns),
                practice,
                "visits",
            ),
            fmt=practice,
            y_title="No-show rate",
            percent=True,
            n={"Predicted": ns, "Observed": ns, "Lead time alone (observed)": base_ns},
        ),
        key="risk_calibration",
    )
st.caption("Features (all known the day before the visit): " + ", ".join(info.features) + ".")
st.caption("Nothing leaves the practice: the model is trained and kept in this database.")
