"""The pieces every page uses: settings, the cached Database, the actor, actions and errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import streamlit as st

from core.kernel.authz import Actor
from core.kernel.config import Settings, load_settings
from core.kernel.errors import DomainError
from core.startup import open_database
from db.engine import Database
from ui import caches
from ui.text import escape

log = logging.getLogger("clinicdesk.ui")
T = TypeVar("T")
SESSION_KEY = "auth_session_id"


def settings() -> Settings:
    return load_settings()


def database() -> Database:
    """The process-wide Database for the configured URL (one pool per Streamlit process)."""
    return _open(settings().database_url)


@st.cache_resource(show_spinner=False)
def _open(url: str) -> Database:
    # keyed by URL: tests (and a changed setting) get their own pool
    return open_database(settings())


def actor() -> Actor | None:
    """The signed-in actor for this run (set by ui.auth at the top of app.py)."""
    return st.session_state.get("auth_actor")


def require_actor() -> Actor:
    current = actor()
    if current is None:
        st.warning("Please sign in.")
        st.stop()
    return current


def show_error(error: Exception) -> None:
    """One place that turns an error into what the user sees: domain errors as they are,
    anything else as a short apology while the details go to the log."""
    if isinstance(error, DomainError):
        st.error(escape(str(error)), icon=":material/error:")
    else:
        log.exception("unexpected error", exc_info=error)
        st.error("Something went wrong and nothing was changed. The details are in the log.")


@dataclass(frozen=True)
class Done(Generic[T]):
    """A successful action's result (truthy even when the service returned None)."""

    value: T


def run_action(
    service: Callable[..., T], *args: Any, success: str | None = None, **kwargs: Any
) -> Done[T] | None:
    """Run one service as one transaction with the current actor; show its error or success.
    Afterwards the cached reads this service can have changed are cleared (ui.caches)."""
    try:
        with database().write() as session:
            result = service(session, require_actor(), *args, **kwargs)
    except DomainError as error:
        show_error(error)
        return None
    finally:
        caches.clear_for(service)
    if success:
        st.toast(escape(success), icon=":material/check_circle:")
    return Done(result)


def read(reader: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a core read in a read-only session (pages cache the functions that call this)."""
    with database().read() as session:
        return reader(session, *args, **kwargs)


def refresh(*domains: str) -> None:
    """Rerun to show the new state. run_action has cleared what its service changed; a write
    made another way names the cached domains it changed."""
    caches.clear(*domains)
    st.rerun()
