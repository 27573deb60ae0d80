"""No-show risk model: what it was trained on, its honest validation on a time split (ROC-AUC,
PR-AUC, Brier score, calibration by decile) beside the lead-time-alone baseline; retrain."""

from datetime import date

import pandas as pd
import streamlit as st

from core.analytics import risk_scores
from core.kernel.authz import Permission
from core.kernel.errors import DomainError
from core.kernel.money import NO_VALUE
from ui import actor, charts, run_action, show_error
from ui.caches import cached
from ui.context import read
from ui.locale import display_format
from ui.text import show_table


@cached("analytics", ttl=60, max_entries=5)
def _info(me):
    return read(risk_scores.get_model_info, me)


def _figure(value, fmt) -> str:
    return NO_VALUE if value is None else fmt.number(value, 3)


st.title("No-show risk model")
me = actor()
info = _info(me)
if me.can(Permission.RISK_MANAGE) and st.button("Retrain now", key="risk_train"):
    from core.analytics import risk_model  # scikit-learn loads only when training

    try:  # seconds of fitting in a read; only the save is a (short) write
        model = read(risk_model.learn, me)
    except DomainError as error:
        show_error(error)
        model = None
    done = model and run_action(risk_model.save, model)
    if done:
        st.success(done.value.summary)
        st.rerun()
if info is None:
    st.info(
        "No model yet. It is trained weekly by the background jobs once there are enough past "
        "visits, or now with the button above (or `python -m core.cli train-risk`)."
    )
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
practice = display_format()  # the practice's local time and locale, never UTC
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
c = st.columns(4)
c[0].metric("ROC-AUC", _figure(m.get("roc_auc"), practice), help="Ranking quality; 0.5 is chance.")
c[1].metric(
    "PR-AUC",
    _figure(m.get("pr_auc"), practice),
    help=f"Base rate {practice.percent(m.get('base_rate', 0))}.",
)
c[2].metric(
    "Brier score", _figure(m.get("brier"), practice), help="Mean squared error; lower is better."
)
c[3].metric("Largest decile gap", f"{practice.number(m.get('max_decile_gap', 0) * 100, 1)} pts")
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
    charts.show(
        charts.lines(
            labels,
            {
                "Predicted": [d["predicted"] for d in bins],
                "Observed": [d["observed"] for d in bins],
                "Lead time alone (observed)": [d["observed"] for d in b.get("deciles", [])],
            },
            title="Calibration: no-show rate by decile of predicted risk",
            fmt=practice,
            y_title="No-show rate",
            percent=True,
        ),
        key="risk_calibration",
    )
st.caption("Features (all known the day before the visit): " + ", ".join(info.features) + ".")
st.caption("Nothing leaves the practice: the model is trained and kept in this database.")
