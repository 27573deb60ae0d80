"""AppTest: the practice set-up pages for each role — checklist, clinics, rooms and
equipment, providers, services with documents, packages; staff read, managers edit."""

from __future__ import annotations

import pytest
import streamlit as st
from sqlalchemy import select

from core.kernel.config import load_settings
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    Package,
    PackageService,
    Provider,
    ProviderClinic,
    ProviderService,
    Resource,
    Service,
    ServiceDocument,
    ServiceResource,
    User,
)
from db.types import utcnow
from tests.pages.conftest import told_to_show


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
    at.text_input(key="clinics_name_new").input("Riverside Clinic")
    at.selectbox(key="clinics_zone_new").select("Europe/Dublin")
    at.text_input(key="clinics_currency_new").input("EUR")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert not at.error, at.error[0].value
    clinic_id = _scalar(app_db, select(Clinic.id).where(Clinic.name == "Riverside Clinic"))
    assert _scalar(app_db, select(Clinic.currency).where(Clinic.id == clinic_id)) == "EUR"
    at.selectbox(key="clinics_resource_clinic_new").select(clinic_id)
    at.text_input(key="clinics_rname_new").input("Laser")
    assert at.selectbox(key="clinics_rkind_new").options == ["Room", "Equipment"]  # words
    at.selectbox(key="clinics_rkind_new").select("equipment")
    next(b for b in at.button if b.label == "Save room or equipment").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, select(Resource.quantity).where(Resource.clinic_id == clinic_id)) == 1
    assert _scalar(app_db, select(Resource.kind).where(Resource.clinic_id == clinic_id)) == (
        "equipment"
    )


def test_a_bad_clinic_says_what_to_fix(app_as):
    at = app_as("owner", "app_pages/clinics.py")
    at.text_input(key="clinics_name_new").input("Harbour Street Clinic")
    at.button[0].click().run()
    assert "already a clinic called" in at.error[0].value


def test_a_clinic_phone_that_is_no_number_says_what_to_fix(app_as):
    at = app_as("owner", "app_pages/clinics.py")
    at.text_input(key="clinics_name_new").input("Riverside Clinic")
    at.text_input(key="clinics_phone_new").input("0161 496 00")
    at.button[0].click().run()
    assert at.error[0].value.startswith(
        "'0161 496 00' is not a phone number in United Kingdom: check its digits"
    )


def test_manager_creates_a_service_with_a_questionnaire(app_as, app_db):
    at = app_as("manager", "app_pages/services.py")
    at.text_input(key="services_name_new").input("Tattoo removal")
    at.number_input(key="services_min_new").set_value(45)
    laser = _scalar(app_db, select(Resource.id).where(Resource.name == "Laser"))
    at.multiselect(key="services_needs_new").set_value([laser])
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
    at.text_input(key="providers_name_new").input("Dr Nova Quinn")
    at.multiselect(key="providers_clinics_new").set_value([1])
    next(b for b in at.button if b.label == "Save provider").click().run()
    assert not at.error, at.error[0].value
    pid = _scalar(app_db, select(Provider.id).where(Provider.name == "Dr Nova Quinn"))
    assert _scalar(
        app_db, select(ProviderClinic.clinic_id).where(ProviderClinic.provider_id == pid)
    )
    at = app_as("manager", "app_pages/packages.py")
    at.text_input(key="packages_name_new").input("Double consult")
    at.multiselect(key="packages_services_new").set_value([1, 2])
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


# ---------------------------------------------------------------- editing an existing row


def _pick(at, key: str, label: str):
    """Choose `label` in a set-up page's "Edit a … or add one" box and rerun."""
    box = at.selectbox(key=key)
    return box.select_index(box.options.index(label)).run()


def _clinic_row(url, name):
    database = _db(url)
    with database.read() as session:
        clinic = session.scalar(select(Clinic).where(Clinic.name == name))
        values = {
            c: getattr(clinic, c)
            for c in ("id", "name", "address", "phone", "email", "timezone", "locale", "currency")
        }
    database.dispose()
    return values


def test_editing_a_clinic_shows_its_values_and_keeps_them(app_as, app_db):
    before = _clinic_row(app_db, "Lakeside Aesthetics")
    at = app_as("owner", "app_pages/clinics.py")
    at.text_input(key="clinics_name_new").input("Half typed")  # the new form had some input
    _pick(at, "clinics_pick", "Lakeside Aesthetics")
    key = f"_{before['id']}"
    shown = {
        "name": at.text_input(key="clinics_name" + key).value,
        "address": at.text_input(key="clinics_address" + key).value,
        "phone": at.text_input(key="clinics_phone" + key).value,
        "email": at.text_input(key="clinics_email" + key).value,
        "timezone": at.selectbox(key="clinics_zone" + key).value,
        "locale": at.selectbox(key="clinics_locale" + key).value,
        "currency": at.text_input(key="clinics_currency" + key).value,
    }
    assert shown == {k: v for k, v in before.items() if k != "id"}
    at.text_input(key="clinics_phone" + key).input("(212) 555-0199")
    next(b for b in at.button if b.label == "Save clinic").click().run()
    assert not at.exception, at.exception
    assert not at.error, at.error[0].value
    assert _clinic_row(app_db, "Lakeside Aesthetics") == before | {"phone": "+1 212-555-0199"}


def test_editing_a_clinic_keeps_a_locale_the_list_did_not_offer(app_as, app_db):
    """A clinic saved with any Babel locale (here ja-JP, or one no list names) keeps it when
    only its phone is edited; before, the box showed en-GB and saving stored en-GB."""
    for locale in ("ja-JP", "ga-IE"):
        database = _db(app_db)
        with database.write() as session:
            clinic = session.scalar(select(Clinic).where(Clinic.name == "Lakeside Aesthetics"))
            clinic.locale = locale
        database.dispose()
        st.cache_data.clear()  # written behind the pages' back
        before = _clinic_row(app_db, "Lakeside Aesthetics")
        at = app_as("owner", "app_pages/clinics.py")
        _pick(at, "clinics_pick", "Lakeside Aesthetics")
        key = f"_{before['id']}"
        assert at.selectbox(key="clinics_locale" + key).value == locale
        at.text_input(key="clinics_phone" + key).input("+1 212 555 0123")  # read anywhere
        next(b for b in at.button if b.label == "Save clinic").click().run()
        assert not at.exception, at.exception
        assert not at.error, at.error[0].value
        assert _clinic_row(app_db, "Lakeside Aesthetics") == before | {"phone": "+1 212-555-0123"}


def test_the_clinic_form_offers_the_locales_a_practice_expects(app_as):
    at = app_as("owner", "app_pages/clinics.py")
    offered = at.selectbox(key="clinics_locale_new").options
    for locale in ("en-GB", "ja-JP", "it-IT", "nl-NL", "es-MX", "en-CA", "fr-CA", "de-CH"):
        assert locale in offered


def test_editing_a_service_shows_its_values_and_keeps_them(app_as, app_db):
    at = app_as("manager", "app_pages/services.py")
    _pick(at, "services_pick", "Consultation")  # another service first, as the reviewer did
    _pick(at, "services_pick", "Laser hair removal")
    database = _db(app_db)
    with database.read() as session:
        laser = session.scalar(select(Service).where(Service.name == "Laser hair removal"))
        sid = laser.id
        stored = (
            laser.category,
            laser.duration_minutes,
            laser.buffer_before_minutes,
            laser.buffer_after_minutes,
            laser.price_cents,
            laser.virtual_allowed,
            laser.online_allowed,
        )
        performers = sorted(
            session.scalars(
                select(ProviderService.provider_id).where(ProviderService.service_id == sid)
            )
        )
        needs = sorted(
            session.scalars(
                select(ServiceResource.resource_id).where(ServiceResource.service_id == sid)
            )
        )
    database.dispose()
    assert performers and needs
    key = f"_{sid}"
    assert at.text_input(key="services_name" + key).value == "Laser hair removal"
    shown = (
        at.text_input(key="services_category" + key).value,
        at.number_input(key="services_min" + key).value,
        at.number_input(key="services_before" + key).value,
        at.number_input(key="services_after" + key).value,
        round(at.number_input(key="services_price" + key).value * 100),
        at.checkbox(key="services_virtual" + key).value,
        at.checkbox(key="services_online" + key).value,
    )
    assert shown == stored
    assert sorted(at.multiselect(key="services_providers" + key).value) == performers
    assert sorted(at.multiselect(key="services_needs" + key).value) == needs
    at.number_input(key="services_min" + key).set_value(40)
    next(b for b in at.button if b.label == "Save service").click().run()
    # the demo's laser visits ahead keep their length: asked first, then saved
    next(b for b in at.button if b.label == "Save the service anyway").click().run()
    assert not at.error, at.error[0].value
    database = _db(app_db)
    with database.read() as session:
        laser = session.get(Service, sid)
        assert laser.duration_minutes == 40
        assert (laser.category, laser.price_cents, laser.buffer_after_minutes) == (
            stored[0],
            stored[4],
            stored[3],
        )
        assert (
            sorted(
                session.scalars(
                    select(ProviderService.provider_id).where(ProviderService.service_id == sid)
                )
            )
            == performers
        )
        assert (
            sorted(
                session.scalars(
                    select(ServiceResource.resource_id).where(ServiceResource.service_id == sid)
                )
            )
            == needs
        )
    database.dispose()


def _provider_row(url, name):
    database = _db(url)
    with database.read() as session:
        p = session.scalar(select(Provider).where(Provider.name == name))
        values = {
            "id": p.id,
            "title": p.title,
            "email": p.email,
            "colour": p.colour,
            "clinics": sorted(
                session.scalars(
                    select(ProviderClinic.clinic_id).where(ProviderClinic.provider_id == p.id)
                )
            ),
            "services": sorted(
                session.scalars(
                    select(ProviderService.service_id).where(ProviderService.provider_id == p.id)
                )
            ),
        }
    database.dispose()
    return values


def test_editing_a_provider_shows_their_values_and_keeps_their_links(app_as, app_db):
    before = _provider_row(app_db, "Dr Tom Becker")
    assert before["clinics"] and before["services"]
    at = app_as("manager", "app_pages/providers.py")
    _pick(at, "providers_pick", "Dr Aisha Rahman")
    _pick(at, "providers_pick", "Dr Tom Becker")
    key = f"_{before['id']}"
    assert at.text_input(key="providers_name" + key).value == "Dr Tom Becker"
    assert at.text_input(key="providers_title" + key).value == before["title"]
    assert at.text_input(key="providers_email" + key).value == before["email"]
    assert at.color_picker(key="providers_colour" + key).value == before["colour"]
    assert sorted(at.multiselect(key="providers_clinics" + key).value) == before["clinics"]
    assert sorted(at.multiselect(key="providers_services" + key).value) == before["services"]
    at.text_input(key="providers_title" + key).input("Consultant")
    next(b for b in at.button if b.label == "Save provider").click().run()
    assert not at.error, at.error[0].value
    assert _provider_row(app_db, "Dr Tom Becker") == before | {"title": "Consultant"}


def test_editing_a_room_shows_its_values_and_keeps_them(app_as, app_db):
    database = _db(app_db)
    with database.read() as session:
        lakeside = session.scalar(select(Clinic.id).where(Clinic.name == "Lakeside Aesthetics"))
        room = session.scalar(
            select(Resource).where(Resource.clinic_id == lakeside, Resource.kind == "room")
        )
        rid, name, quantity = room.id, room.name, room.quantity
    database.dispose()
    at = app_as("manager", "app_pages/clinics.py")
    _pick(at, "clinics_resource_pick", f"{name} (Lakeside Aesthetics)")  # Harbour has one too
    key = f"_{rid}"
    assert at.selectbox(key="clinics_resource_clinic" + key).value == lakeside
    assert at.text_input(key="clinics_rname" + key).value == name
    assert at.selectbox(key="clinics_rkind" + key).value == "room"
    assert at.number_input(key="clinics_rquantity" + key).value == quantity
    at.number_input(key="clinics_rquantity" + key).set_value(quantity + 1)
    next(b for b in at.button if b.label == "Save room or equipment").click().run()
    assert not at.error, at.error[0].value
    database = _db(app_db)
    with database.read() as session:
        room = session.get(Resource, rid)
        assert (room.clinic_id, room.name, room.kind, room.quantity) == (
            lakeside,
            name,
            "room",
            quantity + 1,
        )
    database.dispose()


def test_a_room_lowered_below_the_visits_booked_at_once_says_so_first(app_as, app_db):
    """Before, a lower quantity saved at once, though two visits booked ahead held the room at
    the same time."""
    database = _db(app_db)
    with database.write() as session:  # a visit ahead holding a room, and a twin at its time
        held = session.execute(
            select(Appointment, Resource)
            .join(ServiceResource, ServiceResource.service_id == Appointment.service_id)
            .join(Resource, Resource.id == ServiceResource.resource_id)
            .where(
                Appointment.start_at > utcnow(),
                Appointment.status == AppointmentStatus.SCHEDULED,
                Resource.clinic_id == Appointment.clinic_id,
            )
            .order_by(Appointment.start_at)
            .limit(1)
        ).one()
        visit, room = held
        room.quantity = 2
        session.add(
            Appointment(
                clinic_id=visit.clinic_id,
                provider_id=visit.provider_id,
                patient_id=visit.patient_id,
                service_id=visit.service_id,
                status=AppointmentStatus.SCHEDULED,
                start_at=visit.start_at,
                end_at=visit.end_at,
            )
        )
        rid, label = room.id, f"{room.name} ({session.get(Clinic, room.clinic_id).name})"
    database.dispose()
    at = app_as("manager", "app_pages/clinics.py")
    _pick(at, "clinics_resource_pick", label)
    field = f"clinics_rquantity_{rid}"
    at.number_input(key=field).set_value(1)
    next(b for b in at.button if b.label == "Save room or equipment").click().run()
    assert not at.exception, at.exception
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith("Visits booked ahead hold more than 1 ") and "at once" in said
    quantity = select(Resource.quantity).where(Resource.id == rid)
    assert _scalar(app_db, quantity) == 2  # nothing saved yet
    next(b for b in at.button if b.label.startswith("Keep ")).click().run()
    assert not at.warning and at.number_input(key=field).value == 2
    at.number_input(key=field).set_value(1)
    next(b for b in at.button if b.label == "Save room or equipment").click().run()
    next(b for b in at.button if b.label == "Save the room or equipment anyway").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, quantity) == 1


def test_editing_a_package_shows_its_values_and_keeps_them(app_as, app_db):
    database = _db(app_db)
    with database.read() as session:
        pid, price = session.execute(
            select(Package.id, Package.price_cents).where(Package.name == "Skin renewal")
        ).one()
        members = list(
            session.scalars(
                select(PackageService.service_id)
                .where(PackageService.package_id == pid)
                .order_by(PackageService.position)
            )
        )
    database.dispose()
    at = app_as("manager", "app_pages/packages.py")
    _pick(at, "packages_pick", "Consultation and blood test")
    _pick(at, "packages_pick", "Skin renewal")
    key = f"_{pid}"
    assert at.text_input(key="packages_name" + key).value == "Skin renewal"
    assert round(at.number_input(key="packages_price" + key).value * 100) == price
    assert at.multiselect(key="packages_services" + key).value == members
    at.number_input(key="packages_price" + key).set_value(180.0)
    next(b for b in at.button if b.label == "Save package").click().run()
    assert not at.error, at.error[0].value
    # the demo books some visits as Skin renewal: a new price for them is confirmed first
    for anyway in [b for b in at.button if b.label == "Save the package anyway"]:
        assert "Its new price applies to them" in at.warning[0].value
        anyway.click().run()
        assert not at.error, at.error[0].value
    database = _db(app_db)
    with database.read() as session:
        assert session.get(Package, pid).price_cents == 18000
        assert session.get(Package, pid).name == "Skin renewal"
        assert (
            list(
                session.scalars(
                    select(PackageService.service_id)
                    .where(PackageService.package_id == pid)
                    .order_by(PackageService.position)
                )
            )
            == members
        )
    database.dispose()


# ---------------------------------------------------------------- after saving a new row


def test_a_saved_clinic_is_shown_with_a_confirmation_and_saves_again(app_as, app_db):
    at = app_as("owner", "app_pages/clinics.py")
    at.text_input(key="clinics_name_new").input("Riverside Clinic")
    at.text_input(key="clinics_currency_new").input("EUR")
    next(b for b in at.button if b.label == "Save clinic").click().run()
    assert not at.error, at.error[0].value
    assert [s.value for s in at.success] == ["Clinic saved."]  # still there after the rerun
    clinic_id = _scalar(app_db, select(Clinic.id).where(Clinic.name == "Riverside Clinic"))
    assert at.selectbox(key="clinics_pick").value.id == clinic_id
    assert at.text_input(key=f"clinics_name_{clinic_id}").value == "Riverside Clinic"
    at.text_input(key=f"clinics_phone_{clinic_id}").input("0161 496 0100")
    next(b for b in at.button if b.label == "Save clinic").click().run()
    assert not at.error, at.error[0].value  # not "There is already a clinic called …"
    assert _scalar(app_db, select(Clinic.phone).where(Clinic.id == clinic_id)) == "+44 161 496 0100"
    assert _scalar(app_db, select(Clinic.currency).where(Clinic.id == clinic_id)) == "EUR"


def test_a_new_service_does_not_inherit_the_last_ones_values(app_as, app_db):
    room = _scalar(app_db, select(Resource.id).where(Resource.name == "Treatment room"))
    at = app_as("manager", "app_pages/services.py")
    at.text_input(key="services_name_new").input("Microneedling")
    at.multiselect(key="services_needs_new").set_value([room])
    next(b for b in at.button if b.label == "Save service").click().run()
    assert not at.error, at.error[0].value
    assert [s.value for s in at.success] == ["Service saved."]
    at.selectbox(key="services_pick").select_index(0).run()  # New service
    assert at.text_input(key="services_name_new").value == ""
    assert at.multiselect(key="services_needs_new").value == []


def test_a_refused_document_keeps_its_title_and_questions(app_as, app_db, set_twice):
    at = app_as("manager", "app_pages/services.py")
    _pick(at, "services_pick", "Consultation")
    at.selectbox(key="services_doc_kind").set_value("questionnaire")
    at.text_input(key="services_doc_title").input("Before your consultation")
    at.text_area(key="services_doc_questions").input("meds | Medicines you take? | colour")
    next(b for b in at.button if b.label == "Save a new version").click().run()
    assert "the type must be one of" in at.error[0].value
    assert at.text_input(key="services_doc_title").value == "Before your consultation"
    assert at.selectbox(key="services_doc_kind").value == "questionnaire"
    at.text_area(key="services_doc_questions").input("meds | Medicines you take? | text")
    next(b for b in at.button if b.label == "Save a new version").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(
        app_db,
        select(ServiceDocument.title).where(ServiceDocument.title == "Before your consultation"),
    )
    told_to_show(at.text_input(key="services_doc_title"), "")  # ready for the next one
    told_to_show(at.text_area(key="services_doc_questions"), "")
    told_to_show(at.text_area(key="services_doc_body"), "")
    told_to_show(at.selectbox(key="services_doc_kind"), "questionnaire")
    assert set_twice == []  # no widget emptied through the state has a default of its own


def test_deactivating_a_provider_with_bookings_warns_and_waits_for_a_confirmation(app_as, app_db):
    at = app_as("manager", "app_pages/providers.py")
    _pick(at, "providers_pick", "Dr Tom Becker")
    next(b for b in at.button if b.label.startswith("Deactivate")).click().run()
    assert not at.exception, at.exception
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith("Dr Tom Becker has ") and "upcoming appointments" in said
    query = select(Provider.active).where(Provider.name == "Dr Tom Becker")
    assert _scalar(app_db, query) is True  # nothing changed yet
    next(b for b in at.button if b.label == "Deactivate anyway").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, query) is False
    assert [s.value for s in at.success] == ["Deactivated."]
    assert at.selectbox(key="providers_pick").value.name == "Dr Tom Becker"


@pytest.mark.parametrize("page", ["services.py", "packages.py"])
def test_prices_show_in_the_clinics_currency(app_as, app_db, page):
    at = app_as("owner", f"app_pages/{page}")  # the demo: London in GBP, New York in USD
    prices = at.dataframe[0].value["Price"].tolist()
    assert all(p.count("£") == 1 and p.count("$") == 1 for p in prices), prices
    assert any("each clinic's own currency" in c.value for c in at.caption)
    database = _db(app_db)
    with database.write() as session:
        for clinic in session.scalars(select(Clinic)):
            clinic.currency, clinic.locale = "USD", "en-US"
    database.dispose()
    st.cache_data.clear()
    at = app_as("owner", f"app_pages/{page}")
    prices = at.dataframe[0].value["Price"].tolist()
    assert prices and all(p.startswith("$") and "£" not in p for p in prices), prices
    assert at.number_input(key=f"{page[:-3]}_price_new").label == "Price (USD)"


def _new_priced(app_as, app_db, page, currency, locale, name, price):
    """The owner, in a practice whose clinics all use `currency`, saves a new service or
    package `name` at `price` as typed; the page after the press."""
    database = _db(app_db)
    with database.write() as session:
        for clinic in session.scalars(select(Clinic)):
            clinic.currency, clinic.locale = currency, locale
    database.dispose()
    st.cache_data.clear()
    at = app_as("owner", f"app_pages/{page}")
    form = page[:-3]
    at.text_input(key=f"{form}_name_new").input(name)
    if page == "packages.py":
        chooser = at.multiselect(key="packages_services_new")
        chooser.select(chooser.options[0]).select(chooser.options[1])
    at.number_input(key=f"{form}_price_new").set_value(price)
    return at.button(key=next(b.key for b in at.button if b.key and "Save" in b.key)).click().run()


@pytest.mark.parametrize("page", ["services.py", "packages.py"])
def test_a_yen_price_is_typed_and_kept_in_whole_yen(app_as, app_db, page):
    """JPY has no minor unit: ¥12,000 typed is stored as 12000 and shown as ¥12,000 (before,
    the form multiplied by 100 and showed ¥1,200,000, and read a stored ¥12,000 as 120)."""
    at = _new_priced(app_as, app_db, page, "JPY", "ja-JP", "Yen check", 12000.0)
    assert not at.error, at.error[0].value
    model = Service if page == "services.py" else Package
    assert _scalar(app_db, select(model.price_cents).where(model.name == "Yen check")) == 12000
    shown = at.dataframe[0].value
    assert "￥12,000" in shown.loc[shown.iloc[:, 0] == "Yen check", "Price"].tolist()[0]


@pytest.mark.parametrize("page", ["services.py", "packages.py"])
def test_a_price_with_more_decimals_than_the_currency_is_refused(app_as, app_db, page):
    """49.999 EUR is refused with a message saying euros have 2 decimals (before, it was
    saved as €50.00); nothing is saved."""
    at = _new_priced(app_as, app_db, page, "EUR", "de-DE", "Euro check", 49.999)
    assert not at.exception
    assert "EUR amounts have at most 2 decimals; 49.999 has 3" in at.error[0].value
    model = Service if page == "services.py" else Package
    assert _scalar(app_db, select(model.id).where(model.name == "Euro check")) is None


def test_the_checklist_is_current_after_the_policy_is_saved(app_as, app_db):
    from sqlalchemy import delete, update

    from db.models import Appointment, CancellationPolicy, LedgerEntry

    database = _db(app_db)
    with database.write() as session:  # a practice that has not set its policy yet
        session.execute(update(Appointment).values(policy_id=None))
        session.execute(update(LedgerEntry).values(policy_id=None))
        session.execute(delete(CancellationPolicy))
    database.dispose()
    at = app_as("owner", "app_pages/practice.py")
    assert "5 of 6 done" in at.subheader[0].value
    at.switch_page("app_pages/policy.py").run()
    at.text_area(key="policy_text").input("Please give us 24 hours' notice.")
    at.button(key="FormSubmitter:policy_form-Save as a new version").click().run()
    # a demo visit in the next 24 hours (at some hours of the day) asks for a confirmation first
    anyway = [b for b in at.button if b.label == "Save the new version anyway"]
    if anyway:
        anyway[0].click().run()
    assert not at.error, at.error[0].value
    at.switch_page("app_pages/practice.py").run()  # within the read's minute
    assert "Every set-up step is done" in at.success[0].value


def test_deactivating_a_booked_service_warns_and_waits_for_a_confirmation(app_as, app_db):
    """Before, the service was deactivated at the first press, its visits ahead unsaid."""
    at = app_as("manager", "app_pages/services.py")
    _pick(at, "services_pick", "Consultation")
    next(b for b in at.button if b.label == "Deactivate Consultation").click().run()
    assert not at.exception, at.exception
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith("Consultation is booked in ") and "upcoming visit" in said
    assert "Nobody can book Consultation after this." in said
    query = select(Service.active).where(Service.name == "Consultation")
    assert _scalar(app_db, query) is True  # nothing changed yet
    next(b for b in at.button if b.label == "Keep active").click().run()
    assert not at.warning and _scalar(app_db, query) is True
    next(b for b in at.button if b.label == "Deactivate Consultation").click().run()
    next(b for b in at.button if b.label == "Deactivate anyway").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, query) is False
    assert [s.value for s in at.success] == ["Deactivated."]


def test_a_new_currency_for_a_booked_clinic_says_what_happens_first(app_as, app_db):
    """Before, the currency changed at once: every price and fee booked there read as euros."""
    before = _clinic_row(app_db, "Harbour Street Clinic")
    at = app_as("owner", "app_pages/clinics.py")
    _pick(at, "clinics_pick", "Harbour Street Clinic")
    currency = f"clinics_currency_{before['id']}"
    at.text_input(key=currency).input("eur")
    next(b for b in at.button if b.label == "Save clinic").click().run()
    assert not at.exception, at.exception
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith("Harbour Street Clinic charges in GBP. Amounts are not converted")
    assert "upcoming visit" in said and "€" in said
    assert _clinic_row(app_db, "Harbour Street Clinic") == before  # nothing saved yet
    next(b for b in at.button if b.label == "Keep GBP").click().run()
    assert not at.warning and at.text_input(key=currency).value == "GBP"
    at.text_input(key=currency).input("EUR")
    next(b for b in at.button if b.label == "Save clinic").click().run()
    next(b for b in at.button if b.label == "Change the currency to EUR").click().run()
    assert not at.error, at.error[0].value
    assert _clinic_row(app_db, "Harbour Street Clinic") == before | {"currency": "EUR"}
    assert [s.value for s in at.success] == ["Clinic saved; it charges in EUR."]


def test_a_new_price_for_a_booked_service_says_what_happens_first(app_as, app_db):
    """Before, the price changed at once and every visit booked with it cost the new one."""
    query = select(Service.price_cents).where(Service.name == "Consultation")
    price = _scalar(app_db, query)
    at = app_as("manager", "app_pages/services.py")
    _pick(at, "services_pick", "Consultation")
    sid = _scalar(app_db, select(Service.id).where(Service.name == "Consultation"))
    field = f"services_price_{sid}"
    at.number_input(key=field).set_value(price / 100 + 20)
    next(b for b in at.button if b.label == "Save service").click().run()
    assert not at.exception, at.exception
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith("Consultation is booked in ") and "upcoming visit" in said
    assert f"costs £{price / 100 + 20:.2f} there instead of £{price / 100:.2f}" in said
    assert _scalar(app_db, query) == price  # nothing saved yet
    next(b for b in at.button if b.label == "Keep Consultation as it is").click().run()
    assert not at.warning and at.number_input(key=field).value == price / 100
    at.number_input(key=field).set_value(price / 100 + 20)
    next(b for b in at.button if b.label == "Save service").click().run()
    next(b for b in at.button if b.label == "Save the service anyway").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, query) == price + 2000
    assert [s.value for s in at.success] == ["Service saved."]


def test_a_new_price_for_a_booked_package_says_what_happens_first(app_as, app_db):
    """Before, a package's price changed at once and every visit booked as it cost the new one
    (the services page asked; the packages page did not)."""
    database = _db(app_db)
    with database.write() as s:  # a visit ahead booked as the first package
        package = s.scalars(select(Package).order_by(Package.id)).first()
        pid, name, price = package.id, package.name, package.price_cents
        s.scalars(
            select(Appointment)
            .where(
                Appointment.start_at > utcnow(), Appointment.status == AppointmentStatus.SCHEDULED
            )
            .order_by(Appointment.start_at)
        ).first().package_id = pid
    database.dispose()
    query = select(Package.price_cents).where(Package.id == pid)
    at = app_as("manager", "app_pages/packages.py")
    _pick(at, "packages_pick", name)
    field = f"packages_price_{pid}"
    at.number_input(key=field).set_value(price / 100 + 20)
    next(b for b in at.button if b.label == "Save package").click().run()
    assert not at.exception, at.exception
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith(f"{name} is booked in ") and "upcoming visit" in said
    assert f"costs £{price / 100 + 20:,.2f} there instead of £{price / 100:,.2f}" in said
    assert _scalar(app_db, query) == price  # nothing saved yet
    next(b for b in at.button if b.label == f"Keep {name} as it is").click().run()
    assert not at.warning and at.number_input(key=field).value == price / 100
    at.number_input(key=field).set_value(price / 100 + 20)
    next(b for b in at.button if b.label == "Save package").click().run()
    next(b for b in at.button if b.label == "Save the package anyway").click().run()
    assert not at.error, at.error[0].value
    assert _scalar(app_db, query) == price + 2000
    assert [s.value for s in at.success] == ["Package saved."]


def test_a_new_time_zone_for_a_booked_clinic_says_what_happens_first(app_as, app_db):
    """Before, the zone changed at once and every visit booked there read hours apart."""
    before = _clinic_row(app_db, "Harbour Street Clinic")
    at = app_as("owner", "app_pages/clinics.py")
    _pick(at, "clinics_pick", "Harbour Street Clinic")
    zone = f"clinics_zone_{before['id']}"
    at.selectbox(key=zone).select("America/New_York")
    next(b for b in at.button if b.label == "Save clinic").click().run()
    assert not at.exception, at.exception
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith("Harbour Street Clinic has ") and "upcoming visit" in said
    assert f"Moving it from {before['timezone']} to America/New_York" in said
    assert _clinic_row(app_db, "Harbour Street Clinic") == before  # nothing saved yet
    next(b for b in at.button if b.label == f"Keep {before['timezone']}").click().run()
    assert not at.warning and at.selectbox(key=zone).value == before["timezone"]
    at.selectbox(key=zone).select("America/New_York")
    next(b for b in at.button if b.label == "Save clinic").click().run()
    next(b for b in at.button if b.label == "Change the time zone to America/New_York").click()
    at.run()
    assert not at.error, at.error[0].value
    assert _clinic_row(app_db, "Harbour Street Clinic") == before | {"timezone": "America/New_York"}
    assert [s.value for s in at.success] == ["Clinic saved; its time zone is America/New_York."]


def test_the_owner_sets_the_travel_time_between_clinics_and_a_manager_reads_it(app_as, app_db):
    from core.practice.travel import TRAVEL_KEY
    from db.models import Setting

    at = app_as("owner", "app_pages/practice.py")
    at.number_input(key="practice_travel_minutes").set_value(30)
    at.button(key="FormSubmitter:practice_travel-Save the travel time").click().run()
    assert not at.exception and not at.error, at.error
    assert _scalar(app_db, select(Setting.value).where(Setting.key == TRAVEL_KEY)) == {
        "minutes": 30
    }
    manager = app_as("manager", "app_pages/practice.py")
    assert not manager.number_input
    assert any(m.value == "30 minutes. The practice owner sets it." for m in manager.markdown)
