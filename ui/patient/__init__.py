"""The public patient pages behind signed links (app_pages/patient.py dispatches here).

One module per link purpose (`?p=PURPOSE&t=TOKEN`): enroll, proposal, change, booking, survey,
confirm (a reminder's confirm link, also to ask to move or cancel), form (a form after
booking), visit_forms (a visit's forms behind one link, a text message's), waitlist_offer (a
freed slot offered to a waitlisted patient).
Each exposes `render(token: str) -> None`. It may raise core.kernel.errors.LinkInvalid anywhere; the
dispatcher then shows the one neutral "link not valid" page, which reveals nothing about the
patient or whether the token ever existed. There is no signed-in actor here: the token is the
credential and core.portal.patient_links acts as the patient. Patient text is always shown escaped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from core.kernel.errors import DomainError, LinkInvalid
from core.portal.patient_links import time_of_day_labels
from ui import caches
from ui.context import client_address as client_address  # re-exported for the pages
from ui.context import database, show_error
from ui.text import escape

T = TypeVar("T")
PURPOSES = (
    "enroll",
    "proposal",
    "change",
    "booking",
    "survey",
    "confirm",
    "form",
    "visit_forms",
    "waitlist_offer",
)


def public_read(reader: Callable[..., T], token: str, *args: Any, **kwargs: Any) -> T:
    with database().read() as session:
        return reader(session, token, *args, **kwargs)


def public_write(
    service: Callable[..., T],
    token: str,
    *args: Any,
    closed_title: str | None = None,
    **kwargs: Any,
) -> T | None:
    """Run a public service in one transaction; show a domain error (LinkInvalid goes up to
    the dispatcher's neutral page) and return None. With `closed_title` the error is what
    became of the link (answered, signed, replaced, its visit cancelled): the page is closed()."""
    try:
        with database().write() as session:
            return service(session, token, *args, **kwargs)
    except LinkInvalid:
        raise
    except DomainError as error:
        if closed_title:
            closed(closed_title, error)
        else:
            show_error(error)
        return None
    finally:
        caches.clear_for(service)


def closed(title: str, error: DomainError) -> None:
    """A link whose business is over, opened again (a second tab, the email the next day): a
    heading and what became of it as news, not a red error alone on an empty page."""
    st.title(title)
    st.info(escape(str(error)), icon=":material/info:")


def _done_key(purpose: str, token: str) -> str:
    return f"patient_done_{purpose}_{hashlib.sha256(token.encode()).hexdigest()[:16]}"


def mark_done(purpose: str, token: str, message: str) -> None:
    """Remember the outcome for this browser session: a used link then shows the outcome
    instead of the invalid-link page when the patient reloads."""
    st.session_state[_done_key(purpose, token)] = message


def show_done(purpose: str, token: str, then: Callable[[], None] | None = None) -> bool:
    """The outcome remembered by mark_done, if any (True), and `then` drawn below it (a
    summary of what was sent) before the closing line."""
    message = st.session_state.get(_done_key(purpose, token))
    if message:
        st.success(escape(message), icon=":material/check_circle:")
        if then is not None:
            then()
        st.caption("You can close this page now.")
    return bool(message)


def invalid_link() -> None:
    """The one page for a wrong, expired, used or unknown link: it reveals nothing."""
    st.title("This link is not valid")
    st.info(
        "This link is not valid any more. Please contact the practice for a new one.",
        icon=":material/link_off:",
    )


ANY_TIME = "Any time of day"


def time_of_day_or_any(locale: str, key: str) -> str | None:
    """The time of day a move asks for, in the clinic's words: 'Any time of day' first, the
    choice the form starts on (a request with none asks for the whole day, so what a patient
    skimming the form sends is what it shows), then the times of day (None for any)."""
    labels = time_of_day_labels(locale)
    chosen = st.selectbox(
        "Time of day",
        ["", *labels],
        format_func=lambda moment: labels.get(moment, ANY_TIME),
        key=key,
    )
    return chosen or None
