"""What a click on a table's row means: the row that was shown there, not the row that sits at
that place when the page reads its data again.

st.dataframe keeps a selection as row positions, and keeps it when the rows change under it
(another desk handled one, a new one came in). A press made on the selected row would then act
on its new neighbour. `picked` remembers the rows each run showed; when the rows at the selected
places are no longer the ones shown there, nothing is taken and the person is told."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")
MOVED = (
    "The list changed while a row was selected here (someone else acted on one, or a new one "
    "came in), so nothing was done. Check which row is selected now, then act again."
)


def picked(
    rows: Sequence[T],
    ids: Sequence[Hashable],
    selected: Sequence[int],
    memory: str,
    scope: tuple = (),
) -> list[T]:
    """The selected rows (`selected`: st.dataframe's selection.rows; `ids`: each row's identity,
    in order). A change of the page's own filters (`scope`) is not a change under the selection:
    the table then shows what was asked for."""
    state = st.session_state.get(memory) or {}
    shown, ids = state.get("ids"), list(ids)
    chosen = [rows[i] for i in selected if i < len(rows)]
    if selected and shown is not None and shown != ids and state.get("scope") == list(scope):
        meant = [shown[i] for i in selected if i < len(shown)]
        if meant != [ids[i] for i in selected if i < len(ids)]:
            if not state.get("acted"):
                st.info(MOVED, icon=":material/sync_problem:")
            chosen = []
    st.session_state[memory] = {"ids": ids, "scope": list(scope)}
    return chosen


def acted(memory: str) -> None:
    """This page's own action may have changed the rows (a reply handled, an invitation
    revoked): a selection the next run's rows moved under is let go without a word."""
    if memory in st.session_state:
        st.session_state[memory] = {**st.session_state[memory], "acted": True}


def gone_choice(
    key: str, options: Sequence[Any], label: Callable[[Any], str], scope: tuple = ()
) -> str | None:
    """Before the selectbox keyed `key` is drawn: the label of the option chosen in the last
    run when it is no longer among `options` (handled at another desk, paid, removed), else
    None. The box then falls back to its first option, so a press in this run must not act:
    the caller says what became of the choice and acts on nothing. A change of the page's
    own filters (`scope`) is no such change; nor is the page's own action (`chosen_done`)."""
    was = st.session_state.get(key)
    same = st.session_state.get(f"{key}_scope", list(scope)) == list(scope)
    st.session_state[f"{key}_scope"] = list(scope)
    if was is None or not same:
        return None
    return None if label(was) in {label(option) for option in options} else label(was)


def chosen_done(key: str) -> None:
    """The page acted on the choice in the selectbox keyed `key` (it leaves the list): the
    next run starts that box afresh, saying nothing."""
    st.session_state.pop(key, None)
