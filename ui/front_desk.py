"""Shared guards of the front-desk pages (Today, Calendar, booking, check-in, schedules)."""

from __future__ import annotations

from collections.abc import Sized

import streamlit as st

EMPTY = (
    "There is no {what} yet. Add it on the Practice set-up pages (Practice section), apply a "
    "practice file (`python -m core.cli import-practice FILE.toml`) or load the demo data."
)


def require(items: Sized, what: str = "clinic") -> None:
    """Stop the page with a short explanation when there is nothing to show yet."""
    if not items:
        st.info(EMPTY.format(what=what), icon=":material/info:")
        st.stop()
