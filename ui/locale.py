"""The clinic's display format (zone, locale, currency) for pages, cached across sessions."""

from __future__ import annotations

import streamlit as st

from core.kernel.money import ClinicFormat, clinic_format
from ui.context import read


@st.cache_data(ttl=300, max_entries=50, show_spinner=False)
def display_format(clinic_id: int | None = None) -> ClinicFormat:
    """How money and times are shown for a clinic (or the practice's first clinic)."""
    return read(clinic_format, clinic_id)
