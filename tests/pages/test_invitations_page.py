"""The Portal invitations page: counts, funnel, filters, per-row and bulk actions."""

from __future__ import annotations

import json
from datetime import date

import pytest
import streamlit as st
from sqlalchemy import func, select

from core.kernel.accounts import actor_of
from core.kernel.config import load_settings
from core.patients import invitations, records
from core.startup import open_database
from db.models import InvitationStatus, Notification, Patient, PortalInvitation, User
from tests.pages.conftest import count_rows

PAGE = "app_pages/invitations.py"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Cached reads are keyed by actor and filters, not by database: each test has its own."""
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def test_counts_funnel_and_filters(app_as):
    at = app_as("staff", PAGE)
    assert not at.exception and not at.error
    labels = {m.label: m.value for m in at.metric}
    assert {
        "Invited",
        "Enrolled",
        "Expired",
        "Revoked",
        "No email or mobile",
        "Opted out",
        "Not invited",
    } <= set(labels)
    assert int(labels["Enrolled"]) > 0 and not at.get("echarts_chart")
    at.toggle(key="invitations_funnel_open").set_value(True).run()
    rate = next(m.value for m in at.metric if m.label == "Enrolment rate")
    assert rate.endswith("%") and rate != "0%" and len(at.get("echarts_chart")) == 1
    funnel = json.loads(at.get("echarts_chart")[0].proto.spec)["series"][0]
    invited, enrolled = (step["value"] for step in funnel["data"])
    assert 0 < enrolled < invited == funnel["max"]  # each step's width in proportion
    at.selectbox(key="invitations_status").select_index(
        list(at.selectbox(key="invitations_status").options).index("Enrolled")
    )
    at.button(key="FormSubmitter:invitations_filters-Apply").click().run()
    table = at.dataframe[0].value
    assert len(table) > 0 and set(table["Status"]) == {"Enrolled"}


def test_staff_do_not_see_the_settings_but_managers_do(app_as):
    staff = app_as("staff", PAGE)
    assert "invitations_settings_open" not in [t.key for t in staff.toggle]
    manager = app_as("manager", PAGE)
    manager.toggle(key="invitations_settings_open").set_value(True).run()
    manager.number_input(key="invitations_expiry").set_value(21)
    manager.button(key="FormSubmitter:invitations_settings-Save").click().run()
    assert not manager.error
    assert manager.number_input(key="invitations_expiry").value == 21


def test_bulk_invite_previews_then_sends_with_a_result_list(app_as, app_db):
    at = app_as("staff", PAGE)
    assert not any(b.key == "invitations_bulk_send" for b in at.button)  # not read on page load
    at.toggle(key="invitations_bulk_open").set_value(True).run()
    send = at.button(key="invitations_bulk_send")
    to_send = int(send.label.split()[1])
    assert to_send > 0 and any("will be invited.** Skipped: " in m.value for m in at.markdown)
    database = _db(app_db)
    with database.read() as s:
        before = s.scalar(select(func.count()).select_from(PortalInvitation))
    send.click().run()
    assert not at.exception
    assert any(f"Invitations sent: {to_send}; skipped: 0." == s.value for s in at.success)
    with database.read() as s:
        after = s.scalar(select(func.count()).select_from(PortalInvitation))
        queued = s.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.template == "portal_invitation")
        )
    database.dispose()
    assert after - before == to_send and queued == to_send
    assert at.button(key="invitations_bulk_send").label == "Send 0 invitations"


def test_selecting_rows_resends_and_shows_history(app_as, app_db):
    at = app_as("staff", PAGE)
    at.selectbox(key="invitations_status").select_index(
        list(at.selectbox(key="invitations_status").options).index("Invited")
    )
    at.button(key="FormSubmitter:invitations_filters-Apply").click().run()
    name, email = at.dataframe[0].value[["Patient", "Sent to"]].iloc[0]
    at.session_state["invitations_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert any(name in c.value for c in at.caption)
    at.button(key="invitations_send_selected").click().run()
    assert any(s.value == "Invitations sent: 1; skipped: 0." for s in at.success)
    database = _db(app_db)
    with database.read() as s:
        statuses = s.scalars(
            select(PortalInvitation.status)
            .where(PortalInvitation.email == email)
            .order_by(PortalInvitation.id.desc())
        ).all()
    database.dispose()
    assert statuses == [InvitationStatus.PENDING, InvitationStatus.REVOKED]


def test_a_patient_with_only_a_mobile_is_invited_by_text_and_the_list_says_so(app_as, app_db):
    database = _db(app_db)
    with database.write() as s:
        manager = actor_of(s.scalar(select(User).where(User.username == "manager")))
        records.create_patient(
            s,
            manager,
            first_name="Tamsin",
            last_name="Textonly",
            date_of_birth=date(1990, 5, 6),
            phone="+44 7700 900456",
            consent_sms=True,
        )
    database.dispose()
    at = app_as("staff", PAGE)
    at.text_input(key="invitations_search").input("Textonly")
    at.button(key="FormSubmitter:invitations_filters-Apply").click().run()
    at.session_state["invitations_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    at.button(key="invitations_send_selected").click().run()
    assert list(at.dataframe[1].value["Detail"]) == ["text message to +44 7700 900456"]
    row = at.dataframe[0].value.iloc[0]
    assert (row["Status"], row["Channel"], row["Sent to"]) == (
        "Invited",
        "Text message",
        "+44 7700 900456",
    )


def test_manager_creates_a_public_booking_link_that_opens_the_booking_form(app_as):
    at = app_as("manager", PAGE)
    at.toggle(key="invitations_settings_open").set_value(True).run()
    at.button(key="invitations_booking_link").click().run()
    assert not at.error
    link = at.code[0].value
    assert "/patient?p=booking&t=" in link
    public = app_as(None)
    public.query_params["p"], public.query_params["t"] = "booking", link.split("&t=")[1]
    public.switch_page("app_pages/patient.py")
    public.run()
    assert public.title[0].value.startswith("Request an appointment at ")


def test_a_row_revoked_elsewhere_does_not_shift_the_press_onto_other_patients(app_as, app_db):
    at = app_as("staff", PAGE)
    options = list(at.selectbox(key="invitations_status").options)
    at.selectbox(key="invitations_status").select_index(options.index("Invited"))
    at.button(key="FormSubmitter:invitations_filters-Apply").click().run()
    emails = list(at.dataframe[0].value["Sent to"])
    assert len(emails) >= 3
    at.session_state["invitations_table"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    database = _db(app_db)  # another desk revokes the invitation listed above it meanwhile
    with database.write() as session:
        manager = session.scalar(select(User).where(User.username == "manager"))
        first = session.scalar(
            select(PortalInvitation.id).where(
                PortalInvitation.email == emails[0],
                PortalInvitation.status == InvitationStatus.PENDING,
            )
        )
        invitations.revoke_invitation(session, actor_of(manager), first, "Wrong address")
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.button(key="invitations_revoke").click().run()
    assert any("The list changed while a row was selected" in i.value for i in at.info)
    database = _db(app_db)
    with database.read() as session:
        pending = set(
            session.scalars(
                select(PortalInvitation.email).where(
                    PortalInvitation.status == InvitationStatus.PENDING
                )
            )
        )
    database.dispose()
    assert {emails[1], emails[2]} <= pending  # neither the one selected nor its new neighbour


def test_the_list_says_which_patients_of_how_many_it_shows(app_as):
    """The caption counts the whole list under the filters (the status counts' sum, or the one
    status chosen), so the desk knows how far Next goes; the last page's Next is off."""
    at = app_as("staff", PAGE)
    counts = {m.label: int(m.value.replace(",", "")) for m in at.metric}
    total = sum(counts.values())
    pages = -(-total // invitations.PAGE_SIZE)
    assert pages > 1
    assert f"Page 1 of {pages} · patients 1–50 of {total:,}" in [c.value for c in at.caption]
    for _ in range(pages - 1):
        at.button(key="invitations_next").click().run()
    first = (pages - 1) * invitations.PAGE_SIZE + 1
    assert f"Page {pages} of {pages} · patients {first}–{total} of {total:,}" in [
        c.value for c in at.caption
    ]
    assert at.button(key="invitations_next").disabled
    at.selectbox(key="invitations_status").select_index(
        list(at.selectbox(key="invitations_status").options).index("Enrolled")
    )
    at.button(key="FormSubmitter:invitations_filters-Apply").click().run()
    enrolled = counts["Enrolled"]
    assert f"Page 1 of 2 · patients 1–50 of {enrolled}" in [c.value for c in at.caption]


def test_the_counts_keep_their_statuses_names_whole_at_1280_px(app_as):
    """Seven columns cut 'No email or mobile' to 'No email or mo…' at 1280 px (seen in
    Chromium): the counts are one row that wraps, each as wide as its name (checked in
    Chromium at 1024 and 1280 px: one line, every name whole)."""
    at = app_as("staff", PAGE)
    ((row, in_column),) = count_rows(at)
    assert not in_column
    assert row.proto.flex_container.direction == 2 and row.proto.flex_container.wrap
    assert at.metric[0].label == "No email or mobile"


def test_patients_of_the_same_name_are_told_apart_by_their_number(app_as, app_db):
    """The demo has two Arthur Browns, neither invited: the list showed two rows alike
    ('Arthur Brown · Not invited', every other cell empty), so the desk could not tell which
    it was inviting (seen in Chromium). Each row starts with the patient's number, as the
    patient search names them ('Arthur Brown (#12)'), and so does the history's caption."""
    database = _db(app_db)
    with database.read() as session:
        same = session.execute(
            select(Patient.first_name, Patient.last_name)
            .group_by(Patient.first_name, Patient.last_name)
            .having(func.count() > 1)
            .limit(1)
        ).one()
        ids = session.scalars(
            select(Patient.id).where(Patient.first_name == same[0], Patient.last_name == same[1])
        ).all()
    database.dispose()
    at = app_as("staff", PAGE)
    at.text_input(key="invitations_search").input(f"{same[0]} {same[1]}")
    at.button(key="FormSubmitter:invitations_filters-Apply").click().run()
    table = at.dataframe[0].value
    assert list(table.columns)[:2] == ["#", "Patient"]
    assert sorted(table["#"]) == sorted(ids) and len(set(table["Patient"])) == 1
    at.session_state["invitations_table"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    number = table["#"].iloc[1]
    assert any(
        c.value == f"Invitation history of {same[0]} {same[1]} (#{number})" for c in at.caption
    )
