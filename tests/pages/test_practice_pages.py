"""AppTest: the practice set-up pages for each role — checklist, clinics, rooms and
equipment, providers, services with documents, packages; staff read, managers edit."""

from __future__ import annotations

import pytest
import streamlit as st
from sqlalchemy import select

from core.kernel.config import load_settings
from core.startup import open_database
from db.models import (
    AuditEvent,
    Clinic,
    Package,
    Provider,
    ProviderClinic,
    Resource,
    Service,
    ServiceDocument,
    User,
)


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _scalar(url, query):
    database = _db(url)
    with database.read() as session:
        value = session.scalar(query)
    database.dispose()
    return value


def test_demo_checklist_is_complete(app_as):
    at = app_as("owner", "app_pages/practice.py")
    assert not at.exception, at.exception
    assert "Every set-up step is done" in at.success[0].value
    assert [m.value for m in at.metric][:3] == ["2", "6", "10"]


@pytest.mark.parametrize(
    "page", ["clinics.py", "providers.py", "services.py", "packages.py", "practice.py"]
)
def test_staff_read_the_set_up_without_forms(app_as, page):
    at = app_as("staff", f"app_pages/{page}")
    assert not at.exception, at.exception
    assert at.dataframe or at.metric
    assert not [b for b in at.button if b.label.startswith(("Save", "Deactivate", "Send"))]
    assert not at.text_input


def test_manager_adds_a_clinic_and_a_laser(app_as, app_db):
    at = app_as("manager", "app_pages/clinics.py")
    at.text_input(key="clinics_name").input("Riverside Clinic")
    at.selectbox(key="clinics_zone").select("Europe/Dublin")
    at.text_input(key="clinics_currency").input("EUR")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert not at.error, at.error[0].value
    clinic_id = _scalar(app_db, select(Clinic.id).where(Clinic.name == "Riverside Clinic"))
    assert _scalar(app_db, select(Clinic.currency).where(Clinic.id == clinic_id)) == "EUR"
    at.selectbox(key="clinics_resource_clinic").select(clinic_id)
    at.text_input(key="clinics_rname").input("Laser")
    assert at.selectbox(key="clinics_rkind").options == ["Room", "Equipment"]  # words
    at.selectbox(key="clinics_rkind").select("equipment")
    next(b for b in at.button if b.label == "Save room or equipment").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, select(Resource.quantity).where(Resource.clinic_id == clinic_id)) == 1
    assert _scalar(app_db, select(Resource.kind).where(Resource.clinic_id == clinic_id)) == (
        "equipment"
    )


def test_a_bad_clinic_says_what_to_fix(app_as):
    at = app_as("owner", "app_pages/clinics.py")
    at.text_input(key="clinics_name").input("Harbour Street Clinic")
    at.button[0].click().run()
    assert "already a clinic called" in at.error[0].value


def test_manager_creates_a_service_with_a_questionnaire(app_as, app_db):
    at = app_as("manager", "app_pages/services.py")
    at.text_input(key="services_name").input("Tattoo removal")
    at.number_input(key="services_min").set_value(45)
    laser = _scalar(app_db, select(Resource.id).where(Resource.name == "Laser"))
    at.multiselect(key="services_needs").set_value([laser])
    next(b for b in at.button if b.label == "Save service").click().run()
    assert not at.error, at.error[0].value
    service_id = _scalar(app_db, select(Service.id).where(Service.name == "Tattoo removal"))
    options = at.selectbox(key="services_pick").options
    at.selectbox(key="services_pick").select_index(options.index("Tattoo removal")).run()
    at.text_input(key="services_doc_title").input("Before your visit")
    at.text_area(key="services_doc_questions").input("tan | Recent sun tan? | yes_no | | required")
    next(b for b in at.button if b.label == "Save a new version").click().run()
    assert not at.error, at.error[0].value
    title = _scalar(
        app_db, select(ServiceDocument.title).where(ServiceDocument.service_id == service_id)
    )
    assert title == "Before your visit"
    assert any("Recent sun tan? (required)" in t.value for t in at.text)


def test_manager_adds_a_provider_and_a_package(app_as, app_db):
    at = app_as("manager", "app_pages/providers.py")
    at.text_input(key="providers_name").input("Dr Nova Quinn")
    at.multiselect(key="providers_clinics").set_value([1])
    next(b for b in at.button if b.label == "Save provider").click().run()
    assert not at.error, at.error[0].value
    pid = _scalar(app_db, select(Provider.id).where(Provider.name == "Dr Nova Quinn"))
    assert _scalar(
        app_db, select(ProviderClinic.clinic_id).where(ProviderClinic.provider_id == pid)
    )
    at = app_as("manager", "app_pages/packages.py")
    at.text_input(key="packages_name").input("Double consult")
    at.multiselect(key="packages_services").set_value([1, 2])
    next(b for b in at.button if b.label == "Save package").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, select(Package.id).where(Package.name == "Double consult"))
    assert _scalar(app_db, select(AuditEvent.id).where(AuditEvent.action == "package.created"))


def test_test_message_without_smtp_says_why(app_as):
    at = app_as("owner", "app_pages/practice.py")
    at.text_input(key="practice_to").input("owner@example.org")
    next(b for b in at.button if b.label == "Send a test message").click().run()
    assert not at.exception, at.exception
    assert "SMTP is not configured" in at.error[0].value


def test_a_provider_linked_to_a_user_sees_their_own_day_first(app_as, app_db):
    database = _db(app_db)
    with database.write() as session:
        staff = session.scalar(select(User.id).where(User.username == "staff"))
        provider = session.scalar(select(Provider).where(Provider.name == "Dr Elena Rossi"))
        provider.user_id = staff
        provider_id = provider.id
        home = session.scalar(
            select(ProviderClinic.clinic_id).where(ProviderClinic.provider_id == provider_id)
        )
    database.dispose()
    at = app_as("staff", "app_pages/today.py")
    assert not at.exception, at.exception
    assert at.selectbox(key="today_clinic").value == home
    assert at.selectbox(key="today_provider").value == provider_id
