"""Folds: expanders whose content is built only while they are open. A collapsed expander's
widgets are still drawn by the browser (each select about 12 ms, bench.browser), though nobody
sees them; a fold draws nothing until it is opened, which reruns the page with its content."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from streamlit.elements.lib.mutable_expander_container import ExpanderContainer


def fold(
    label: str, key: str, *, expanded: bool = False, icon: str | None = None
) -> ExpanderContainer | None:
    """The expander when it is open, else None (its content is not built):

    if box := fold("Offer rules", "waitlist_rules_open"):
        with box, st.form(...):
            ...
    """
    # `expanded` is part of the expander's identity (Streamlit's key_as_main_identity=False):
    # a page that asks for the fold open (a search found nobody) gets it open
    box = st.expander(label, expanded=expanded, key=key, icon=icon, on_change="rerun")
    return box if box.open else None
