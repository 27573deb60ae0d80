"""The pieces every page uses: settings, the cached Database, the actor, actions and errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import streamlit as st
from sqlalchemy.exc import InterfaceError, OperationalError

from core.kernel.authz import Actor
from core.kernel.config import Settings, load_settings
from core.kernel.errors import DatabaseUnavailable, DomainError
from core.startup import open_database
from db.engine import Database
from ui import caches
from ui.text import escape

log = logging.getLogger("clinicdesk.ui")
T = TypeVar("T")
SESSION_KEY = "auth_session_id"
DOWN = (
    "The database cannot be reached; nothing was changed. This page tries again by itself "
    "every few seconds."
)


def settings() -> Settings:
    return load_settings()


def database() -> Database:
    """The process-wide Database for the configured URL (one pool per Streamlit process)."""
    return _open(settings().database_url)


def reachable_database() -> Database:
    """database(), checked to answer: app.py calls this once per run, so a database that went
    down shows one line (stop_with) instead of an error in the middle of a page."""
    current = database()
    if not current.reachable():
        raise DatabaseUnavailable(DOWN)
    return current


def stop_with(error: DomainError) -> None:
    """Show why the app cannot run (one line) and stop; with the database down, rerun the app
    by itself once it answers again."""
    st.error(escape(str(error)), icon=":material/error:")
    if isinstance(error, DatabaseUnavailable):
        _rerun_when_reachable()
    st.stop()


@st.fragment(run_every=5)
def _rerun_when_reachable() -> None:
    try:
        back = database().reachable()
    except DomainError:
        back = False
    if back:
        st.rerun(scope="app")


@contextmanager
def _unreachable_as_domain_error() -> Iterator[None]:
    """A driver error from a database that does not answer becomes DatabaseUnavailable(DOWN);
    any other database error (a lock, a bug) stays what it is."""
    try:
        yield
    except (OperationalError, InterfaceError):
        if database().reachable():
            raise
        raise DatabaseUnavailable(DOWN) from None


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
    """The one place that turns an error into what the user sees: a domain error's sentence as
    plain text (it may quote what someone typed), anything else as a short apology while the
    details go to the log."""
    if isinstance(error, DomainError):
        st.error(escape(str(error)), icon=":material/error:")
    else:
        log.exception("unexpected error", exc_info=error)
        st.error("Something went wrong and nothing was changed. The details are in the log.")


@dataclass(frozen=True)
class Done(Generic[T]):
    """A successful action's result (truthy even when the service returned None)."""

    value: T


def client_address() -> str:
    """The browser's address, recorded with a sign-in, an answer or a signature ("" when
    unknown)."""
    try:
        value = st.context.ip_address
    except Exception:  # no browser behind this run (tests)
        return ""
    return value if isinstance(value, str) else ""


def run_action(
    service: Callable[..., T],
    *args: Any,
    success: str | None = None,
    refused: Callable[[DomainError], None] | None = None,
    **kwargs: Any,
) -> Done[T] | None:
    """Run one service as one transaction with the current actor; show its error or success
    (and hand the error to `refused`, for a form that redraws from it). Afterwards the cached
    reads this service can have changed are cleared (ui.caches)."""
    try:
        with _unreachable_as_domain_error(), database().write() as session:
            result = service(session, require_actor(), *args, **kwargs)
    except DomainError as error:
        show_error(error)
        if refused:
            refused(error)
        return None
    finally:
        caches.clear_for(service)
    if success:
        st.toast(escape(success), icon=":material/check_circle:")
    return Done(result)


def run_in_steps(service: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run a service that commits in steps of its own (an import in chunks, a test message
    sent before its result is recorded): it is handed Database.write and the signed-in actor.
    Its domain error is shown; every cached read is cleared afterwards."""
    try:
        with _unreachable_as_domain_error():
            return service(database().write, require_actor(), *args, **kwargs)
    except DomainError as error:
        show_error(error)
        return None
    finally:
        caches.clear(*caches.DOMAINS)


def shown(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a read (or any core call that may refuse) for the page; a DomainError is shown
    through show_error and the page stops there."""
    try:
        return call(*args, **kwargs)
    except DomainError as error:
        show_error(error)
        st.stop()


def read(reader: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a core read in a read-only session (pages cache the functions that call this)."""
    try:
        with _unreachable_as_domain_error(), database().read() as session:
            return reader(session, *args, **kwargs)
    except DatabaseUnavailable as error:  # went down during this run: the next run's check
        st.error(escape(str(error)), icon=":material/error:")  # (app.py) waits for it to come back
        st.stop()
        raise


def forget(form: str, empty: Mapping[str, Any]) -> None:
    """Empty a form's fields (keyed f"{form}_{field}") for the next entry: each is set to its
    value in `empty` (a box's "", a tick's False, a choice the widget offers, or None where it
    is drawn with none chosen; a form drawn afresh from a record passes the record's values),
    before its widget is drawn in this run. Set, not dropped from
    the session: a widget whose value is set there is sent to the browser with it (set_value),
    one dropped is not, and the browser kept showing what it held (a saved password, a note)
    and sent it back with the next rerun, to be saved again. Its widget takes no default of
    its own (value=, index=; see start)."""
    st.session_state.update({f"{form}_{field}": value for field, value in empty.items()})


def start(form: str, values: Mapping[str, Any]) -> None:
    """Before a form is drawn: each of its fields (keyed f"{form}_{field}") that holds nothing
    yet (drawn for the first time, or again after it was off the page) starts at its value in
    `values`, set in the session state. Its widget is then drawn with no default of its own
    (value=, index=): Streamlit logs 'The widget with key … was created with a default value
    but also had its value set via the Session State API' for a widget given both, as one
    emptied by forget would be."""
    for field, value in values.items():
        st.session_state.setdefault(f"{form}_{field}", value)


def mark_saved(form: str) -> None:
    """The form was saved: `forget_if_saved` empties it on the next run (a widget's value
    cannot be changed once it is drawn in this run)."""
    st.session_state[f"{form}_saved"] = True


def forget_if_saved(form: str, empty: Mapping[str, Any]) -> None:
    """Before the form is drawn: empty it (forget) if it was saved, else keep what was typed to
    correct."""
    if st.session_state.pop(f"{form}_saved", False):
        forget(form, empty)


def refresh(*domains: str) -> None:
    """Rerun to show the new state. run_action has cleared what its service changed; a write
    made another way names the cached domains it changed."""
    caches.clear(*domains)
    st.rerun()
