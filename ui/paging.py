"""A long list's pages: Previous and Next around the words of which items of how many are shown
("Page 2 of 7 · messages 101–200 of 612"), the page kept in the session as `{name}_page`."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st


def pager(name: str, shown: int, total: int, size: int, noun: str, number: Callable) -> None:
    """Below a list: `shown` rows of the page in `st.session_state[f"{name}_page"]` (from 0),
    `total` under its filters, `size` a page; `noun` names them ("messages"), `number` writes
    a count in the practice's locale. Next is off on the last page."""
    key = f"{name}_page"
    page = st.session_state.get(key, 0)
    pages = max(1, -(-total // size))
    first = page * size
    which = f"{noun} {number(first + 1)}–{number(first + shown)}" if shown else "none"
    prev, info, nxt = st.columns([1, 3, 1])
    if prev.button("Previous", disabled=page == 0, key=f"{name}_prev"):
        st.session_state[key] = page - 1
        st.rerun()
    info.caption(f"Page {page + 1} of {number(pages)} · {which} of {number(total)}")
    if nxt.button("Next", disabled=page + 1 >= pages, key=f"{name}_next"):
        st.session_state[key] = page + 1
        st.rerun()
