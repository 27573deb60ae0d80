"""No-show risk badges (low / medium / high, the probability on hover) for any page; the
probability in the locale of the visit's own clinic."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import streamlit as st

from core.analytics import risk_scores
from core.kernel.money import ClinicFormat
from ui.caches import cached
from ui.context import read
from ui.locale import display_format

ICONS = {"low": "🟢", "medium": "🟠", "high": "🔴"}
COLOURS = {"low": "green", "medium": "orange", "high": "red"}
COLUMN_HELP = (
    "Predicted no-show risk from the practice's own history (the model page explains it): "
    "low under 15%, medium 15–30%, high 30% and over; 'not scored yet': booked or moved since "
    "the last scoring (within the hour)."
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
