"""Streamlit glue shared by pages: database, signed-in actor, cached reads, actions, errors."""

from ui.context import (
    actor,
    database,
    refresh,
    require_actor,
    run_action,
    settings,
    show_error,
    shown,
)

__all__ = [
    "actor",
    "database",
    "refresh",
    "require_actor",
    "run_action",
    "settings",
    "show_error",
    "shown",
]
