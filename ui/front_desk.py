"""Shared guards of the front-desk pages (Today, Calendar, booking, check-in, schedules)."""

from __future__ import annotations

from collections.abc import Sized

import streamlit as st

EMPTY = (
    "There is no {what} yet. Load the demo data with `python -m core.cli seed-demo`, or bring "
    "in the practice's clinics and providers by import (README, Import and export)."
)


def require(items: Sized, what: str = "clinic") -> None:
    """Stop the page with a short explanation when there is nothing to show yet."""
    if not items:
        st.info(EMPTY.format(what=what), icon=":material/info:")
        st.stop()
