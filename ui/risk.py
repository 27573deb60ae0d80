"""No-show risk badges (low / medium / high, the probability on hover) for any page; the
probability in the locale of the visit's own clinic."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import streamlit as st

from core.analytics import risk_scores
from core.kernel.authz import Permission
from core.kernel.money import ClinicFormat
from ui.caches import cached
from ui.context import read
from ui.locale import display_format

ICONS = {"low": "🟢", "medium": "🟠", "high": "🔴"}
COLOURS = {"low": "green", "medium": "orange", "high": "red"}
COLUMN_HELP = (
    "Predicted no-show risk from the practice's own history (the model page explains it): "
    "low under 15%, medium 15–30%, high 30% and over; 'not scored yet': booked or moved since "
    "the last scoring (within the hour). Visits are scored from 13 days ahead; empty until "
    "the practice's first model is trained (Reports → No-show risk)."
)


NOT_SCORED = "not scored yet"
NOT_SCORED_HELP = (
    "This visit was booked or moved since the last scoring (a moved visit's earlier score was "
    "of its old time). Visits booked or moved are scored within the hour."
)


def probabilities(me, appointment_ids: Sequence[int]) -> dict[int, risk_scores.Risk]:
    # packed as bytes, which the cache hashes at once; it hashed a tuple id by id in Python
    return _probabilities(me, array("q", appointment_ids).tobytes())


@cached("analytics", "appointments", ttl=300, max_entries=50)
def _probabilities(me, packed: bytes) -> dict[int, risk_scores.Risk]:
    appointment_ids = array("q")
    appointment_ids.frombytes(packed)
    return read(risk_scores.risk_of, me, appointment_ids.tolist())


def shown(probability: float, fmt: ClinicFormat) -> str:
    """A probability as a whole percentage: '23%' (de-DE '23 %')."""
    return fmt.percent(probability, 0)


def label(risk: risk_scores.Risk | None, fmt: ClinicFormat) -> str:
    """A table cell: icon, level and the probability (tables have no per-cell hover); 'not
    scored yet' for a visit booked or moved since the last scoring."""
    if risk is None:
        return ""
    if risk.probability is None:
        return f"⚪ {NOT_SCORED}"
    level = risk_scores.level(risk.probability)
    return f"{ICONS[level]} {level} {shown(risk.probability, fmt)}"


def formats(risks) -> dict[int, ClinicFormat]:
    """Each clinic's format, read once per clinic: a visit's risk is written as its clinic
    writes it (42% in London, 42 % in Berlin)."""
    return {c: display_format(c) for c in {r.clinic_id for r in risks}}


def column(me, appointment_ids: list[int]) -> list[str]:
    found = probabilities(me, appointment_ids)
    fmt = formats(found.values())
    return [label(r, fmt[r.clinic_id]) if (r := found.get(i)) else "" for i in appointment_ids]


def badge(me, appointment_id: int) -> None:
    risk = probabilities(me, (appointment_id,)).get(appointment_id)
    if risk is None:
        return
    if risk.probability is None:
        st.badge(f"No-show risk {NOT_SCORED}", color="gray", help=NOT_SCORED_HELP)
        return
    level = risk_scores.level(risk.probability)
    st.badge(
        f"{level.title()} no-show risk",
        icon=":material/person_alert:" if level == "high" else None,
        color=COLOURS[level],
        help="Predicted no-show probability "
        f"{shown(risk.probability, display_format(risk.clinic_id))}. "
        f"{COLUMN_HELP}",
    )


def call_list_empty(ready: risk_scores.Readiness, me, days: int, fmt: ClinicFormat, percent: int):
    """The empty call list in a sentence: why nothing is listed, honestly (no model yet and how
    much history there is, a model to retrain, or simply no visit at this risk) and, for those
    who may open it, where to read more (staff cannot open the model page)."""
    more = (
        " Reports → No-show risk says more."
        if me.can(Permission.ANALYTICS_READ)
        else " A manager can say more."
    )
    if ready.model == "none" and not ready.enough:
        return (
            "No visit can be listed yet: the no-show risk is learnt from this practice's own "
            f"past visits, and it has {history(ready, fmt)}. Until then, call from Today's "
            "Unconfirmed for tomorrow (tomorrow's visits not confirmed yet)."
        )
    if ready.model == "none":
        return (
            "No visit can be listed yet: there is enough history now, and the background jobs "
            "train the first no-show model from it; visits are scored once it is stored." + more
        )
    if ready.model == "outdated":
        return (
            "No visit can be listed: the no-show model was trained on an older set of features "
            "and scores nothing until it is trained again (the background jobs do so within "
            "the hour)." + more
        )
    ahead = "the rest of today and tomorrow" if days == 1 else f"the next {days} days"
    return (
        f"No scheduled visit in {ahead} has a no-show risk of "
        f"{fmt.percent(percent / 100, 0)} or more. Visits booked or moved in the last hour "
        "may not be scored yet."
    )


ROUGH = 100  # validation no-shows below which the model page says its figures are rough


def no_model(ready: risk_scores.Readiness, me, fmt: ClinicFormat) -> str:
    """The model page before the first model: how much history there is and what happens."""
    if not ready.enough:
        return (
            "No model yet: it learns from this practice's own past visits, and the practice "
            f"has {history(ready, fmt)}. Until then no visit shows a risk, the call list stays "
            "empty and no extra reminder goes; the background jobs train the first model once "
            "there are enough."
        )
    return (
        "No model yet: there is enough history, and the background jobs train the first model "
        "from it"
        + (" (or use Retrain now above)" if me.can(Permission.RISK_MANAGE) else "")
        + ". If it cannot be trained (too few no-shows early on or lately, say), Practice "
        "set-up says why."
    )


def small_validation(metrics: dict, fmt: ClinicFormat) -> str:
    """A caution beside figures measured on few no-shows (a young practice's): they vary by
    several points from one fit to the next, and a decile holds a handful of visits."""
    rows, rate = metrics.get("rows"), metrics.get("base_rate")
    if not rows or rate is None or rows * rate >= ROUGH:
        return ""
    return (
        f"Measured on {fmt.number(rows)} later visits with {fmt.number(round(rows * rate))} "
        f"no-shows: with under {fmt.number(ROUGH)} no-shows these figures are rough (they "
        "can move by several points from one fit to the next) and each decile holds few visits."
    )


def history(ready: risk_scores.Readiness, fmt: ClinicFormat) -> str:
    """What the practice's history lacks for a first model: '150 with a known outcome (attended
    or missed) of the 200 a first model needs, 3 of them no-shows (it needs 10)', or 'enough
    visits with a known outcome, but only 3 no-shows of the 10 a first model needs'."""
    short = ready.no_shows < ready.needed_no_shows
    if ready.outcomes >= ready.needed:
        return (
            f"enough visits with a known outcome, but only {fmt.number(ready.no_shows)} "
            f"no-shows of the {fmt.number(ready.needed_no_shows)} a first model needs"
        )
    said = (
        f"{fmt.number(ready.outcomes)} with a known outcome (attended or missed) of the "
        f"{fmt.number(ready.needed)} a first model needs"
    )
    if short:
        said += (
            f", {fmt.number(ready.no_shows)} of them no-shows "
            f"(it needs {fmt.number(ready.needed_no_shows)})"
        )
    return said
