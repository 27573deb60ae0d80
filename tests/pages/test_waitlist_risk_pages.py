"""AppTest: the waitlist page, the call list, the no-show risk model page and the risk badge on
Today — for each role that may see them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import streamlit as st
from sqlalchemy import select

from core.kernel.authz import SYSTEM, Actor
from core.kernel.config import load_settings
from core.startup import open_database
from core.waitlist import entries
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Package,
    Patient,
    RiskModel,
    RiskScore,
    Role,
    WaitlistEntry,
)
from db.types import utcnow
from tests.pages.conftest import every_clinic_speaks, today_in
from ui import risk

DECILES = [{"predicted": i / 10, "observed": i / 10, "n": 90} for i in range(10)]
MODEL = dict(roc_auc=0.771, pr_auc=0.412, brier=0.1321, base_rate=0.2, rows=900, deciles=DECILES)
METRICS = {
    "model": MODEL | {"max_decile_gap": 0.021},
    "baseline": {"roc_auc": 0.655, "pr_auc": 0.3, "brier": 0.15, "deciles": []},
    "validation_from": "2026-01-20",
}


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _upcoming_with_risk(url, probability: float, start=None) -> int:
    database = _db(url)
    with database.write() as session:
        model = RiskModel(rows=900, metrics=METRICS, features={"names": ["lead_days"]}, payload=b"")
        start = start or utcnow().replace(microsecond=0) + timedelta(hours=20)
        row = Appointment(
            clinic_id=1,
            provider_id=1,
            patient_id=1,
            service_id=1,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            kind=AppointmentKind.APPOINTMENT,
            allow_double_booking=True,
        )
        session.add_all([model, row])
        session.flush()
        session.add(RiskScore(appointment_id=row.id, model_id=model.id, probability=probability))
        ident = row.id
    database.dispose()
    return ident


def test_waitlist_page_lists_entries_and_shows_offers_to_managers(app_as, app_db):
    database = _db(app_db)
    with database.write() as session:
        today = utcnow().date()
        entries.add_entry(
            session,
            SYSTEM,
            entries.Wish(1, 1, 1, today, today + timedelta(days=10), note="**bold** <b>x</b>"),
        )
    database.dispose()
    staff = app_as("staff", "app_pages/waitlist.py", timeout=120)
    assert not staff.exception
    [table] = staff.dataframe
    assert "**bold** <b>x</b>" in table.value["Note"].tolist()  # typed text shown as text
    assert "Offers" not in [h.value for h in staff.subheader]
    statuses = staff.selectbox(key="waitlist_status").options
    assert statuses == ["Waiting", "Booked", "Withdrawn", "Expired"]  # words, not stored values
    manager = app_as("manager", "app_pages/waitlist.py", timeout=120)
    assert not manager.exception
    assert "Offers" in [h.value for h in manager.subheader]


def test_call_list_shows_high_risk_visits(app_as, app_db):
    ident = _upcoming_with_risk(app_db, 0.42)
    calls = app_as("staff", "app_pages/call_list.py", timeout=120)
    assert not calls.exception
    assert ident in calls.dataframe[0].value.index.tolist()


def test_model_page_shows_validation_beside_the_baseline(app_as, app_db):
    empty = app_as("manager", "app_pages/no_show_risk.py", timeout=120)
    assert not empty.exception
    assert "No model yet" in empty.info[0].value
    _upcoming_with_risk(app_db, 0.1)
    st.cache_data.clear()
    page = app_as("owner", "app_pages/no_show_risk.py", timeout=120)
    assert not page.exception
    values = {m.label: m.value for m in page.metric}
    assert values["ROC-AUC"] == "0.771" and values["Largest decile gap"] == "2.1 pts"
    compare = page.dataframe[0].value
    assert compare["ROC-AUC"].tolist() == [0.771, 0.655]


def test_risk_and_model_figures_follow_the_practices_locale(app_as, app_db):
    every_clinic_speaks(app_db, "de-DE")
    ident = _upcoming_with_risk(app_db, 0.42, today_in(30).replace(microsecond=0))
    today = app_as("staff", "app_pages/today.py", timeout=120)
    assert not today.exception
    board = next(d.value for d in today.dataframe if "No-show risk" in d.value.columns)
    assert board.loc[ident, "No-show risk"] == "🔴 high 42\xa0%"  # de-DE: a space before %
    page = app_as("owner", "app_pages/no_show_risk.py", timeout=120)
    values = {m.label: m.value for m in page.metric}
    assert values["ROC-AUC"] == "0,771" and values["Largest decile gap"] == "2,1 pts"


def test_a_manager_wait_lists_a_patient_for_a_package(app_as, app_db):
    database = _db(app_db)
    with database.read() as session:
        package = session.scalar(select(Package).where(Package.name == "Skin renewal"))
        patient = session.scalar(
            select(Patient).where(Patient.email.is_not(None)).order_by(Patient.id).limit(1)
        )
        package_id, email, patient_id = package.id, patient.email, patient.id
    database.dispose()
    at = app_as("manager", "app_pages/waitlist.py", timeout=120)
    at.text_input(key="waitlist_add_search").input(email).run()
    at.selectbox(key="waitlist_add_patient").select_index(0).run()
    at.selectbox(key="waitlist_add_svc").set_value(("package", package_id))
    at.multiselect(key="waitlist_add_wd").set_value(list(range(7)))
    at.button(key="FormSubmitter:waitlist_add_form-Add to the waitlist").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    database = _db(app_db)
    with database.read() as session:
        entry = session.scalar(select(WaitlistEntry).where(WaitlistEntry.patient_id == patient_id))
        assert entry.package_id == package_id
    database.dispose()
    [table] = at.run().dataframe  # the list above the form, read again
    assert any(s.startswith("Skin renewal (") for s in table.value["Service"])


def test_many_visits_risk_is_read_at_once_and_each_keeps_its_own(app_db):
    """ui.risk packs the ids for the cache key; each visit still gets its own probability."""
    first = _upcoming_with_risk(app_db, 0.42)
    second = _upcoming_with_risk(app_db, 0.07)
    st.cache_data.clear()
    owner = Actor(user_id=1, name="Olivia Owner", role=Role.OWNER)
    found = risk.probabilities(owner, [second, 2**40, first])
    assert found == {first: pytest.approx(0.42), second: pytest.approx(0.07)}
    assert risk.probabilities(owner, [first]) == {first: pytest.approx(0.42)}
