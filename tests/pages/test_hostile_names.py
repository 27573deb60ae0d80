"""Names that staff typed (clinics, rooms, providers, services, packages, service documents,
users) are never markup either: every staff page, with every such name hostile, shows no
Markdown-rendering element (text, caption, alert, heading, toast, widget label or help, radio
and button-group option, expander, tab, metric) that carries the typed syntax unescaped.

The e2e walk (tests/e2e/test_hostile_text.py) checks patients' text in Chromium; this one reads
what each element would hand to Streamlit's Markdown renderer, page by page, as AppTest sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import create_engine, select, text
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import element_tree as et

from core.feedback import surveys
from core.forms import after_booking
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    DocumentKind,
    FeedbackStatus,
    Notification,
    Patient,
    ServiceDocument,
    Setting,
)
from db.types import utcnow
from tests.pages.conftest import patient_page
from ui.navigation import PAGES
from ui.text import escape

HOSTILE = (
    "![zqimg](http://evil.test/x.png) :red[zqred] **zqbold** <b>zqhtml</b> https://evil.test/z"
)
SHORT = ":red[zqred] **zqbold** <b>zqhtml</b>"  # for the narrower columns
# each only survives escaping when nothing escaped it: a backslash or a word joiner breaks it
RAW = ("[zqimg]", ":red[zqred", "**zqbold", "<b>zqhtml", "https://evil", "http://evil")


def hostile_names(url: str) -> None:
    """Every staff-typed name in the database made hostile, as an old or imported row would be
    (straight into the database, no cleaning on the way); unique ones keep their id."""
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in ("clinics", "services", "packages", "resources"):
            connection.execute(text(f"UPDATE {table} SET name = :h || ' ' || id"), {"h": HOSTILE})
        connection.execute(
            text("UPDATE providers SET name = :h, title = :s"), {"h": HOSTILE, "s": SHORT}
        )
        connection.execute(text("UPDATE service_documents SET title = :h"), {"h": HOSTILE})
        connection.execute(text("UPDATE users SET display_name = :h"), {"h": HOSTILE})
    engine.dispose()


def _markdown_texts(at: AppTest) -> Iterator[tuple[str, str]]:
    """(element type, text) for every text the page hands to Streamlit's Markdown renderer.
    Select box and multiselect options, tables and plain text are not Markdown: left out."""
    for node in at._tree:
        kind = type(node).__name__
        if isinstance(node, (et.Markdown, et.AlertBase, et.HeadingBase, et.Toast)):
            yield kind, str(node.value)
        label = getattr(node, "label", None)
        if isinstance(label, str):
            yield kind, label
        proto = getattr(node, "proto", None)
        help_text = getattr(proto, "help", None)
        if isinstance(help_text, str) and help_text:
            yield f"{kind} help", help_text
        if isinstance(node, et.Radio):
            yield from ((f"{kind} option", str(o)) for o in node.options)
        if isinstance(node, et.ButtonGroup):
            yield from ((f"{kind} option", o.content) for o in proto.options)


def unescaped(at: AppTest) -> list[tuple[str, str]]:
    """Every Markdown-rendered text on the page that still carries hostile syntax as typed."""
    return [(kind, t[:160]) for kind, t in _markdown_texts(at) if any(r in t for r in RAW)]


def test_the_check_sees_raw_names_and_lets_escaped_ones_pass():
    def page():
        import streamlit as st

        from tests.pages.test_hostile_names import HOSTILE
        from ui.text import escape

        st.caption(f"at {escape(HOSTILE)}")
        st.button(f"Deactivate {escape(HOSTILE)}")
        with st.expander(f"Consent: {HOSTILE}"):
            st.radio("Pick", [HOSTILE])

    at = AppTest.from_function(page, default_timeout=30).run()
    assert {kind for kind, _ in unescaped(at)} == {"Expander", "Radio option"}


OWNER_PAGES = [spec.file for spec in PAGES if spec.file != "appointment.py"]
# set-up pages: each edits an existing row (its Deactivate button; a service with documents)
PICKS = {
    "clinics.py": ["clinics_pick", "clinics_resource_pick"],
    "providers.py": ["providers_pick"],
    "services.py": ["services_pick"],
    "packages.py": ["packages_pick"],
}


def _documented_service(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT MIN(service_id) FROM service_documents WHERE active")
        ).scalar_one()
    engine.dispose()
    assert found is not None, "the demo has no service with a document"
    return found


@pytest.mark.parametrize("page", OWNER_PAGES)
def test_no_staff_typed_name_is_markup_on_any_page(app_db, app_as, page):
    hostile_names(app_db)
    documented = f" {_documented_service(app_db)}"  # unique names end with their id
    at = app_as("owner", f"app_pages/{page}", timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    seen = unescaped(at)
    for key in PICKS.get(page, []):
        options = at.selectbox(key=key).options
        wanted = documented if key == "services_pick" else None
        index = next((i for i, o in enumerate(options) if wanted and o.endswith(wanted)), 1)
        at.selectbox(key=key).select_index(index).run()  # a row, not "New …"
        assert not at.exception, [e.value for e in at.exception]
        seen += unescaped(at)
    if page == "services.py":
        assert at.expander, "the documented service shows its documents"
    assert not seen, seen


def _database(url: str):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def test_the_practices_survey_questions_reach_the_patient_as_text(app_db):
    """The owner's survey questions are radio labels on the patient's survey page."""
    database = _database(app_db)
    with database.write() as session:
        session.merge(
            Setting(key=surveys.SETTING_QUESTIONS, value=[{"key": "odd", "label": HOSTILE}])
        )
        appointment_id = session.scalar(
            select(Appointment.id)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(
                Appointment.status == AppointmentStatus.COMPLETED,
                Appointment.feedback_status == FeedbackStatus.NONE,
                Patient.consent_email.is_(True),
                Patient.email.is_not(None),
            )
            .limit(1)
        )
        sent = surveys.request_feedback(session, SYSTEM, appointment_id, base_url="http://x")
    database.dispose()
    at = patient_page("survey", parse_qs(urlparse(sent.link).query)["t"][0])
    assert not at.exception, at.exception
    assert at.radio(key="survey_q_odd").label == escape(HOSTILE)
    assert not unescaped(at), unescaped(at)


def test_a_questionnaires_labels_reach_the_patient_as_text(app_db):
    """Each kind of question a service's questionnaire asks, labelled with hostile text."""
    kinds = ["yes_no", "choice", "number", "text"]
    database = _database(app_db)
    with database.write() as session:
        appointment = session.scalar(
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.SCHEDULED, Appointment.start_at > utcnow()
            )
            .limit(1)
        )
        session.add(
            ServiceDocument(
                service_id=appointment.service_id,
                kind=DocumentKind.QUESTIONNAIRE,
                title=HOSTILE,
                questions=[
                    {"key": kind, "label": f"{kind} {HOSTILE}", "type": kind, "options": ["a"]}
                    for kind in kinds
                ],
            )
        )
        session.flush()
        after_booking.send_forms(session, appointment, base_url="http://x")
        body = session.scalar(
            select(Notification.body)
            .where(Notification.template == "forms_to_complete", Notification.channel == "email")
            .order_by(Notification.id.desc())
        )
    database.dispose()
    at = patient_page("form", re.search(r"p=form&t=(\S+)", body).group(1))
    assert not at.exception, at.exception
    assert not unescaped(at), unescaped(at)
    shown = [
        at.radio[0].label,
        at.selectbox[0].label,
        at.number_input[0].label,
        at.text_area[0].label,
    ]
    assert shown == [f"{k} {escape(HOSTILE)} (optional)" for k in kinds]
