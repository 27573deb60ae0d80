"""A visit's forms behind one link (a text message's, when it carries two or more forms): each
form with its state; one still to do opens here as its own link opens it, through the same
services (core.forms.after_booking: the visit still open, the opening recorded, answered once).
A cancelled, declined or missed visit's link says its forms are closed."""

from __future__ import annotations

import hashlib

import streamlit as st

from core.forms import after_booking
from core.kernel.errors import DomainError, LinkInvalid
from ui.patient import client_address, closed, escape, public_read, public_write
from ui.patient.form import FORM_ACTIONS, FORM_STATES, fields, show_document


def _key(token: str, what: str) -> str:
    """This link's state key: which form is open, its view, the last thank-you."""
    return f"patient_visit_forms_{what}_{hashlib.sha256(token.encode()).hexdigest()[:16]}"


def _still_to_do(todo: int, forms: int) -> str:
    """The forms left, in words: 'these 3 forms' while none is done ('3 of these' read as a
    choice of three), 'the 1 form still to do' once some are."""
    if not todo:
        return "your forms are all done. Thank you!"
    forms_word = "form" if todo == 1 else "forms"
    if todo == forms:
        which = "this form" if todo == 1 else f"these {todo} forms"
        return f"please complete {which} before your visit."
    return f"please complete the {todo} {forms_word} still to do before your visit."


def render(token: str) -> None:
    try:
        listing = public_read(after_booking.visit_forms, token)
    except LinkInvalid:
        raise
    except DomainError as error:  # the visit was cancelled, declined or missed: say so
        closed("These forms are closed", error)
        return
    st.title("Your forms")
    st.caption(escape(f"{listing.clinic} · your appointment on {listing.when}"))
    if done := st.session_state.pop(_key(token, "done"), None):
        st.success(escape(done), icon=":material/check_circle:")
    todo = sum(f.state == "outstanding" for f in listing.forms)
    st.markdown(f"Hello {escape(listing.first_name)}, {_still_to_do(todo, len(listing.forms))}")
    opened = st.session_state.get(_key(token, "open"))
    for form in listing.forms:
        left, right = st.columns([3, 1], vertical_alignment="center")
        colour, state = FORM_STATES[form.state]
        left.markdown(f"{form.kind_word}: {escape(form.title)} :{colour}-badge[{state}]")
        if form.state != "outstanding":
            continue
        if right.button(FORM_ACTIONS[form.kind], key=f"patient_visit_forms_open_{form.id}"):
            st.session_state[_key(token, "open")] = opened = form.id
        if opened == form.id:
            _form(token, form.id)


def _view(token: str, form_id: int):
    """Opened (and recorded) once per browser session, not on every rerun."""
    key = _key(token, f"view_{form_id}")
    if key not in st.session_state:
        view = public_write(
            after_booking.open_listed_form, token, form_id, client_address=client_address()
        )
        if view is None:
            return None
        st.session_state[key] = view
    return st.session_state[key]


def _form(token: str, form_id: int) -> None:
    view = _view(token, form_id)
    if view is None:  # done meanwhile (another tab, its own link): the error says so
        st.session_state[_key(token, "open")] = None
        return
    with st.container(border=True):
        st.subheader(escape(view.title))
        show_document(view)
        prefix = f"patient_visit_forms_{form_id}"
        with st.form(prefix):
            answer, label = fields(view, prefix)
            sent = st.form_submit_button(label, type="primary")
    if sent:
        done = public_write(
            after_booking.submit_listed_form,
            token,
            form_id,
            after_booking.Answer(client_address=client_address(), **answer),
        )
        if done:
            st.session_state[_key(token, "open")] = None
            st.session_state.pop(_key(token, f"view_{form_id}"), None)
            st.session_state[_key(token, "done")] = done
            st.rerun()
