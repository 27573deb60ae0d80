"""Shared pieces of the practice set-up pages: the cached set-up read, "edit which one",
activate / deactivate, and money as the clinic's currency.

An edit form's widgets are keyed by the row they show (`keys_for`): Streamlit keeps a keyed
widget's value across reruns and ignores a new `value=`, so one fixed key would show the
previous row's values for the next one picked (and save them over it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from babel.numbers import format_currency

from core.kernel.authz import Actor, Permission
from core.practice import reads, setup
from ui.caches import cached
from ui.context import read, refresh, run_action
from ui.text import escape

NEW = None


@cached("setup", ttl=60, max_entries=20)
def overview(me: Actor) -> reads.Setup:
    return read(reads.overview, me)


def can_edit(me: Actor) -> bool:
    return me.can(Permission.PRACTICE_MANAGE)


def keys_for(prefix: str, row: reads.Row | None) -> Callable[[str], str]:
    """The keys of an edit form's widgets for this row: `keys_for("clinics", row)("name")` is
    "clinics_name_3" (or "clinics_name_new")."""
    suffix = "new" if row is None else row.id
    return lambda field: f"{prefix}_{field}_{suffix}"


def pick(
    rows: list[reads.Row], what: str, key: str, name: Callable[[reads.Row], str] | None = None
) -> reads.Row | None:
    """A select box of the rows plus "New …"; None means a new one. `name` tells rows apart
    where names repeat (the box knows its choice by its label: two "Laser" rows would both pick
    the first)."""
    return st.selectbox(
        f"Edit a {what} or add one",
        [NEW, *rows],
        format_func=lambda r: f"New {what}" if r is None else _label(r, name),
        key=key,
    )


def _label(row: reads.Row, name: Callable[[reads.Row], str] | None) -> str:
    return (name or (lambda r: r.name))(row) + ("" if row.data.active else " (inactive)")


def toggle_active(entity: str, row: reads.Row | None, key: str) -> None:
    """Deactivate (or activate again) the chosen row; history stays."""
    if row is None:
        return
    word = "Deactivate" if row.data.active else "Activate again"
    if st.button(f"{word} {escape(row.name)}", key=key):
        if run_action(setup.set_active, entity, row.id, not row.data.active, success="Saved."):
            refresh()


def save(service: Any, data: Any, row: reads.Row | None, what: str) -> None:
    if run_action(service, data, None if row is None else row.id, success=f"{what} saved."):
        refresh()


def money(cents: int, currency: str = "GBP", locale: str = "en-GB") -> str:
    return format_currency(cents / 100, currency, locale=locale.replace("-", "_"))
