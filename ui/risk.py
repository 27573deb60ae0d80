"""No-show risk badges (low / medium / high, the probability on hover) for any page; the
probability in the practice's locale (its first clinic's, as pages with no clinic chosen)."""

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
    "low under 15%, medium 15–30%, high 30% and over."
)


def probabilities(me, appointment_ids: Sequence[int]) -> dict[int, float]:
    # packed as bytes, which the cache hashes at once; it hashed a tuple id by id in Python
    return _probabilities(me, array("q", appointment_ids).tobytes())


@cached("analytics", "appointments", ttl=300, max_entries=50)
def _probabilities(me, packed: bytes) -> dict[int, float]:
    appointment_ids = array("q")
    appointment_ids.frombytes(packed)
    return read(risk_scores.risk_of, me, appointment_ids.tolist())


def shown(probability: float, fmt: ClinicFormat) -> str:
    """A probability as a whole percentage: '23%' (de-DE '23 %')."""
    return fmt.percent(probability, 0)


def label(probability: float | None, fmt: ClinicFormat) -> str:
    """A table cell: icon, level and the probability (tables have no per-cell hover)."""
    level = risk_scores.level(probability)
    return f"{ICONS[level]} {level} {shown(probability, fmt)}" if level else ""


def column(me, appointment_ids: list[int]) -> list[str]:
    found = probabilities(me, appointment_ids)
    fmt = display_format()  # once for the whole column
    return [label(found.get(i), fmt) for i in appointment_ids]


def badge(me, appointment_id: int) -> None:
    probability = probabilities(me, (appointment_id,)).get(appointment_id)
    level = risk_scores.level(probability)
    if level:
        st.badge(
            f"{level.title()} no-show risk",
            icon=":material/person_alert:" if level == "high" else None,
            color=COLOURS[level],
            help=f"Predicted no-show probability {shown(probability, display_format())}. "
            f"{COLUMN_HELP}",
        )
