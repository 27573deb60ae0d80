"""AppTest: the reminder, reply and form screens — Reminders and notices, Text replies, Today's
confirmation and call list, the appointment's forms and messages, and the patient's confirm and
form links."""

from __future__ import annotations

import re
from datetime import time, timedelta

import pytest
import streamlit as st
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from core.forms import after_booking
from core.kernel import tokens
from core.kernel.accounts import actor_of
from core.kernel.authz import SYSTEM
from core.kernel.clock import local_to_utc, to_local
from core.kernel.config import load_settings
from core.kernel.money import clinic_time
from core.messaging import notify, preferences, reminders
from core.portal import replies
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    ChangeRequest,
    Channel,
    Clinic,
    DeliveryStatus,
    DocumentKind,
    FormRequest,
    Notification,
    Patient,
    ServiceDocument,
    SmsReply,
    User,
)
from db.types import utcnow
from tests.pages.conftest import ROOT, patient_page, sign_in_session, told_to_show


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _appointment(url, start, new_patient: bool = False) -> tuple[int, str]:
    """A scheduled appointment at clinic 1 of patient 1, or of a new patient with no other
    appointment (the demo's own bookings depend on the clock); returns (id, the phone)."""
    database = _db(url)
    with database.write() as session:
        patient = session.get(Patient, 1)
        if new_patient:
            patient = Patient(first_name="Texting", last_name="Patient", consent_sms=True)
            session.add(patient)
            session.flush()
            patient.phone = f"07700 9{patient.id:05d}"
        patient.phone = patient.phone or "07700 900555"
        row = Appointment(
            clinic_id=1,
            provider_id=1,
            patient_id=patient.id,
            service_id=1,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            kind=AppointmentKind.APPOINTMENT,
        )
        session.add(row)
        session.flush()
        result = row.id, patient.phone
    database.dispose()
    return result


def test_owner_sets_reminders_and_clinic_events(app_as, app_db):
    at = app_as("owner", "app_pages/messages.py")
    assert not at.exception, at.exception
    at.multiselect(key="messages_hours").set_value([48, 24])
    at.checkbox(key="messages_2h").check()
    at.multiselect(key="messages_events").set_value(["no_show", "survey_received"])
    at.toggle(key="messages_digest").set_value(True)
    at.button[0].click()  # the form's Save
    at.run()
    assert not at.exception and not at.error, at.error
    database = _db(app_db)
    with database.read() as session:
        saved = preferences.preferences(session, 1)
    database.dispose()
    assert saved.reminder_hours == (48, 24) and saved.sms_two_hours
    assert saved.clinic_events == ("no_show", "survey_received") and saved.clinic_digest


def test_staff_may_not_open_the_settings_but_see_text_replies(app_as, app_db):
    appointment_id, phone = _appointment(app_db, utcnow() + timedelta(days=2), new_patient=True)
    database = _db(app_db)
    with database.write() as session:
        replies.receive_sms(session, from_number=phone, body="**Can I bring my son?**")
    database.dispose()
    at = app_as("staff", "app_pages/text_replies.py")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert "**Can I bring my son?**" in list(table["Text (as typed)"])
    assert f"#{appointment_id}" in list(table["Appointment"])
    assert all("messages.py" not in str(p) for p in at.session_state)  # no settings state


def test_today_shows_confirmation_and_tomorrows_unconfirmed(app_as, app_db):
    database = _db(app_db)
    with database.read() as session:
        tz = session.get(Clinic, 1).timezone
    database.dispose()
    day = to_local(utcnow(), tz).date()
    today_id, _ = _appointment(app_db, local_to_utc(day, time(12), tz))
    tomorrow_id, _ = _appointment(app_db, local_to_utc(day + timedelta(days=1), time(12), tz))
    database = _db(app_db)
    with database.write() as session:
        appointment = session.get(Appointment, today_id)
        reminders.record_confirmation(session, SYSTEM, appointment, "phone")
    database.dispose()
    at = app_as("staff")
    assert not at.exception, at.exception
    at.session_state["today_calls_open"] = True  # tomorrow's unconfirmed are a fold: a click
    at.run()
    frames = [f.value for f in at.dataframe]
    board = next(f for f in frames if "Confirmed" in f.columns)
    assert "phone" in board.loc[today_id, "Confirmed"]
    calls = next(f for f in frames if "Phone" in f.columns)
    assert tomorrow_id in list(calls["#"])


def test_appointment_page_shows_forms_messages_and_confirmation(app_as, app_db):
    appointment_id, _ = _appointment(app_db, utcnow() + timedelta(days=3))
    database = _db(app_db)
    with database.write() as session:
        session.add(
            ServiceDocument(
                service_id=1, kind=DocumentKind.CONSENT, title="Consent to treatment", body="OK"
            )
        )
        session.flush()
        after_booking.send_forms(
            session, session.get(Appointment, appointment_id), base_url="http://x"
        )
        issued = tokens.issue(session, "confirm", appointment_id, timedelta(days=1))
        replies.confirm_by_link(session, issued.raw)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["auth_session_id"] = sign_in_session(app_db, "manager")
    at.run()
    at.switch_page("app_pages/appointment.py")
    at.query_params["id"] = str(appointment_id)  # after the landing page moved on to Today
    at.run()
    assert not at.exception, at.exception
    frames = [f.value for f in at.dataframe]
    facts = frames[0]
    assert any(str(v).startswith("Confirmed by the patient") for v in facts["Value"])
    forms = next(f for f in frames if "Form" in f.columns)
    assert "outstanding" in forms["State"].iloc[0]
    messages = next(f for f in frames if "Channel" in f.columns)
    # each message named as the Notifications page names its template, not its key's words
    assert "Forms to complete" in list(messages["Message"])
    assert "appointment scheduled" not in list(messages["Message"])
    with database.read() as session:  # in the clinic's zone and locale, as every other time
        clinic = session.get(Clinic, 1)
        queued = session.scalar(select(Notification.created_at).order_by(Notification.id.desc()))
        assert messages["When"].iloc[0] == clinic_time(clinic, queued)
    database.dispose()
    at.button(key=f"appointment_form_resend_{forms.index[0] + 1}").click().run()
    assert not at.exception, at.exception
    (toast,) = [t.value for t in at.toast]
    assert toast.startswith("Sent again by ") and "the earlier link no longer works" in toast
    # the patient has since withdrawn consent to every channel: nothing is sent, and it says so
    database = _db(app_db)
    with database.write() as session:
        patient = session.get(Appointment, appointment_id).patient
        patient.consent_email = patient.consent_sms = False
    database.dispose()
    at.button(key=f"appointment_form_resend_{forms.index[0] + 1}").click().run()
    assert not at.exception, at.exception
    assert not at.toast
    assert "cannot be sent to" in at.error[0].value and "still works" in at.error[0].value


def test_a_form_that_reached_no_channel_says_so_on_the_appointment(app_db):
    appointment_id, _ = _appointment(app_db, utcnow() + timedelta(days=3), new_patient=True)
    database = _db(app_db)
    with database.write() as session:
        appointment = session.get(Appointment, appointment_id)
        appointment.patient.consent_sms = False  # and no email address
        session.add(
            ServiceDocument(
                service_id=1, kind=DocumentKind.CONSENT, title="Consent to treatment", body="OK"
            )
        )
        session.flush()
        after_booking.send_forms(session, appointment, base_url="http://x")
    database.dispose()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["auth_session_id"] = sign_in_session(app_db, "manager")
    at.run()
    at.switch_page("app_pages/appointment.py")
    at.query_params["id"] = str(appointment_id)
    at.run()
    assert not at.exception, at.exception
    forms = next(f.value for f in at.dataframe if "Form" in f.value.columns)
    assert list(forms["Sent"]) == ["not sent: no email address; no consent to text messages"]


def test_a_text_reply_and_its_answer_are_messages_of_the_appointment_shown_as_text(app_db):
    """The patient's reply and ClinicDesk's answer are listed among the appointment's messages
    in the clinic's zone and locale; markup in the reply is shown as typed, never rendered."""
    appointment_id, phone = _appointment(app_db, utcnow() + timedelta(days=2), new_patient=True)
    hostile = "**URGENT** <img src=x onerror=alert(1)> [call](https://evil.example) # now"
    database = _db(app_db)
    with database.write() as session:
        other = replies.receive_sms(session, from_number=phone, body=hostile)
        confirmed = replies.receive_sms(session, from_number=phone, body="C")
        received = session.get(SmsReply, confirmed.reply_id).received_at
        clinic = session.get(Clinic, 1)
        when = clinic_time(clinic, received)
    database.dispose()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["auth_session_id"] = sign_in_session(app_db, "manager")
    at.run()
    at.switch_page("app_pages/appointment.py")
    at.query_params["id"] = str(appointment_id)
    at.run()
    assert not at.exception, at.exception
    messages = next(f for f in (d.value for d in at.dataframe) if "Channel" in f.columns)
    texts = messages[messages["Channel"] == "text message"].head(3)  # newest first
    reply, answer = "Text reply from the patient", "Automatic answer"
    assert list(texts["Message"]) == [answer, reply, reply]
    assert list(texts["Text"]) == [confirmed.answer, "C", hostile]  # as typed, in a table
    assert list(texts["When"])[:2] == [when, when]
    assert list(texts["Status"]) == ["sent", "received", "received"]
    assert other.answer == ""  # left for staff: no answer row of its own
    shown = [e.value for e in (*at.markdown, *at.caption, *at.text)]
    assert not any("<img" in v or "**URGENT**" in v for v in shown)  # never as Markdown


def test_patient_confirms_through_the_link(app_db):
    appointment_id, _ = _appointment(app_db, utcnow() + timedelta(days=2))
    database = _db(app_db)
    with database.write() as session:
        raw = tokens.issue(session, "confirm", appointment_id, timedelta(days=2)).raw
    database.dispose()
    at = patient_page("confirm", raw)
    assert not at.exception, at.exception
    at.button(key="patient_confirm_yes").click().run()
    assert "is confirmed" in at.success[0].value
    database = _db(app_db)
    with database.read() as session:
        assert appointment_id in reminders.confirmations(session, [appointment_id])
    database.dispose()


@pytest.mark.parametrize("kind", ["cancel", "reschedule"])
def test_a_reminders_one_link_confirms_and_asks_to_cancel_or_move(app_db, kind):
    """A reminder's text carries its confirm link alone: its page shows the visit and offers
    to confirm, to ask to move it and to ask to cancel it (the change page, reached with the
    same link, the choice made); before, it only confirmed, pointing to the other links."""
    appointment_id, _ = _appointment(app_db, utcnow() + timedelta(days=2))
    database = _db(app_db)
    with database.write() as session:
        visit = session.get(Appointment, appointment_id)
        link = reminders.reminder_links(session, visit, "http://x")["confirm_link"]
    database.dispose()
    at = patient_page("confirm", link.split("t=")[1])
    assert not at.exception, at.exception
    at.button(key="patient_confirm_yes").click().run()
    assert "is confirmed" in at.success[0].value
    at.button(key=f"patient_confirm_{kind}").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Change your appointment"]
    assert at.radio(key="patient_change_kind").value == kind
    if kind == "reschedule":
        at.date_input(key="patient_change_day").set_value(utcnow().date() + timedelta(days=9))
    at.checkbox(key="patient_change_agree").check()
    at.button(key="FormSubmitter:patient_change_form-Send my request").click().run()
    assert not at.exception and not at.error, at.error
    assert "request has been sent" in at.success[0].value or "been cancelled" in at.success[0].value
    database = _db(app_db)
    with database.read() as session:
        asked = session.scalars(
            select(ChangeRequest).where(ChangeRequest.appointment_id == appointment_id)
        ).one()
    database.dispose()
    assert asked.kind.value == kind


def test_patient_signs_a_consent_through_the_link(app_db):
    appointment_id, _ = _appointment(app_db, utcnow() + timedelta(days=2))
    database = _db(app_db)
    with database.write() as session:
        session.add(
            ServiceDocument(
                service_id=1, kind=DocumentKind.CONSENT, title="Consent to treatment", body="OK"
            )
        )
        session.flush()
        after_booking.send_forms(
            session, session.get(Appointment, appointment_id), base_url="http://x"
        )
        form_id = session.scalar(select(FormRequest.id))
        name = session.get(Patient, 1).full_name
        tz = session.get(Clinic, 1).timezone
        body = session.scalar(
            select(Notification.body).where(Notification.template == "forms_to_complete")
        )
    raw = re.search(r"p=form&t=(\S+)", body).group(1)
    database.dispose()
    at = patient_page("form", raw)
    assert not at.exception, at.exception
    at.text_input(key="patient_form_name").input(name)
    at.date_input(key="patient_form_date").set_value(to_local(utcnow(), tz).date())
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "consent is signed" in at.success[0].value
    database = _db(app_db)
    with database.read() as session:
        signed = session.get(FormRequest, form_id)
        assert signed.signed_name == name and signed.completed_at is not None
    database.dispose()
    # the link opened again (another tab, the email the next day): why, not a dead end
    again = patient_page("form", raw)
    assert not again.exception, again.exception
    # under a heading, as news: not a red error alone on an empty page
    assert [t.value for t in again.title] == ["This form is closed"]
    assert [i.value for i in again.info] == ["This consent was signed already. Thank you!"]
    assert not again.error and not again.button


def test_the_outbox_offers_a_retry_only_when_a_message_waits_for_one(app_as, app_db):
    """With every message sent there is no empty, greyed-out picker, but a line saying so."""
    database = _db(app_db)
    with database.write() as session:
        session.execute(update(Notification).values(status=DeliveryStatus.SENT))
    database.dispose()
    at = app_as("manager", "app_pages/notifications.py")
    assert not at.exception
    assert not [s for s in at.selectbox if s.key == "notifications_retry_pick"]
    assert "nothing to retry" in " ".join(c.value for c in at.caption)
    database = _db(app_db)
    with database.write() as session:
        last = session.scalar(select(func.max(Notification.id)))
        session.get(Notification, last).status = DeliveryStatus.FAILED
    database.dispose()
    st.cache_data.clear()
    at = app_as("manager", "app_pages/notifications.py")
    assert at.selectbox(key="notifications_retry_pick").value.id == last
    # a message ClinicDesk stopped on purpose (a no-show undone) is not offered: retry refuses it
    database = _db(app_db)
    with database.write() as session:
        row = session.get(Notification, last)
        for name, value in notify.stopped_on_purpose("Not sent: the no-show was undone.").items():
            setattr(row, name, value)  # as notify.withdraw_unsent stops one
    database.dispose()
    st.cache_data.clear()
    at = app_as("manager", "app_pages/notifications.py")
    assert not [s for s in at.selectbox if s.key == "notifications_retry_pick"]
    assert "stopped on purpose" in " ".join(c.value for c in at.caption)


def test_a_message_sent_meanwhile_does_not_move_the_retry_onto_another(app_as, app_db):
    database = _db(app_db)
    with database.write() as session:
        session.execute(update(Notification).values(status=DeliveryStatus.SENT))
        two = session.scalars(select(Notification.id).order_by(Notification.id.desc()).limit(2))
        newer, older = list(two)
        for ident in (newer, older):
            session.get(Notification, ident).status = DeliveryStatus.FAILED
    database.dispose()
    st.cache_data.clear()
    at = app_as("manager", "app_pages/notifications.py")
    pick = at.selectbox(key="notifications_retry_pick")
    place = next(i for i, o in enumerate(pick.options) if o.startswith(f"#{older} "))
    pick.select_index(place).run()
    first = at.selectbox(key="notifications_retry_pick").options[0]
    database = _db(app_db)  # the jobs loop sends it meanwhile
    with database.write() as session:
        session.get(Notification, older).status = DeliveryStatus.SENT
    database.dispose()
    st.cache_data.clear()
    at.button(key="notifications_retry").click().run()
    said = " ".join(w.value for w in at.warning)
    assert f"#{older} " in said and "is no longer waiting (sent meanwhile)" in said, said
    database = _db(app_db)
    with database.read() as session:
        others = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.status == DeliveryStatus.QUEUED)
        )
    database.dispose()
    assert others == 0, first  # no other message was queued again by that press


def _texts(url, *bodies) -> list[int]:
    """Replies from numbers the practice does not know, waiting for staff, oldest first."""
    database = _db(url)
    ids = []
    for n, body in enumerate(bodies):
        with database.write() as session:
            number = f"+44 7700 90{n:04d}"
            ids.append(replies.receive_sms(session, from_number=number, body=body).reply_id)
    database.dispose()
    return ids


def _reply(url, reply_id) -> SmsReply:
    database = _db(url)
    with database.read() as session:
        found = session.get(SmsReply, reply_id)
        session.expunge(found)
    database.dispose()
    return found


def test_a_reply_handled_elsewhere_does_not_shift_the_press_onto_its_neighbour(app_as, app_db):
    first, middle, last = _texts(app_db, "first text", "middle text", "last text")
    at = app_as("staff", "app_pages/text_replies.py")
    shown = list(at.dataframe[0].value["Text (as typed)"])
    place = shown.index("middle text")
    at.session_state["text_replies_table"] = {"selection": {"rows": [place], "columns": []}}
    at.run()
    at.text_input(key="text_replies_note").input("Called: parking is on level 2").run()
    database = _db(app_db)  # another desk handles the reply shown above it meanwhile
    with database.write() as session:
        manager = session.scalar(select(User).where(User.username == "manager"))
        replies.mark_handled(session, actor_of(manager), last)
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.button(key="text_replies_done").click().run()
    assert any("The list changed while a row was selected" in i.value for i in at.info)
    assert _reply(app_db, first).handled_at is None  # not the row now at that place
    assert _reply(app_db, middle).handled_at is None
    assert "parking" not in _reply(app_db, first).note


def test_a_reply_marked_handled_elsewhere_is_refused_saying_by_whom(app_as, app_db):
    (only,) = _texts(app_db, "only text")
    at = app_as("staff", "app_pages/text_replies.py")
    at.toggle(key="text_replies_open").set_value(False).run()  # all replies: it stays listed
    place = list(at.dataframe[0].value["Text (as typed)"]).index("only text")
    at.session_state["text_replies_table"] = {"selection": {"rows": [place], "columns": []}}
    at.run()
    at.text_input(key="text_replies_note").input("Rang back").run()
    database = _db(app_db)
    with database.write() as session:
        manager = session.scalar(select(User).where(User.username == "manager"))
        replies.mark_handled(session, actor_of(manager), only)
    database.dispose()
    at.button(key="text_replies_done").click().run()
    said = " ".join(e.value for e in at.error)
    assert "already marked handled by Max Manager at" in said, said
    assert "Your note was not saved" in said
    assert at.text_input(key="text_replies_note").value == "Rang back"  # kept


def test_the_outbox_pages_and_finds_a_patients_old_reminder_in_words(app_as, app_db):
    """'Did Mrs Evans get her reminder?': it is older than the latest 100 messages, so Next
    reaches it (the caption counts the whole list under the filters, Next off on the last
    page), the search finds it by her name and by the number it went to, the template filter
    lists it, and the table names the template, channel and status in words, her typed name
    and address as plain cells."""
    database = _db(app_db)
    with database.write() as session:
        evans = Patient(first_name="Margaret", last_name="*Evans*", phone="07700 900123")
        session.add(evans)
        session.flush()
        reminder = Notification(
            patient_id=evans.id,
            channel=Channel.SMS,
            template="appointment_reminder",
            to_address="07700 900123",
            subject="Your visit",
            body="Body",
            status=DeliveryStatus.SENT,
        )
        session.add(reminder)
        session.flush()
        session.add_all(
            Notification(
                channel=Channel.EMAIL,
                template="clinic_event",
                to_address="inbox@example.org",
                subject="Event",
                body="Body",
            )
            for _ in range(120)
        )
        session.flush()
        reminder_id = reminder.id
        total = session.scalar(select(func.count()).select_from(Notification))
    database.dispose()
    at = app_as("manager", "app_pages/notifications.py")
    assert not at.exception, at.exception
    pages = -(-total // notify.OUTBOX_PAGE)
    captions = [c.value for c in at.caption]
    assert f"Page 1 of {pages} · messages 1–100 of {total:,}" in captions, captions
    assert reminder_id not in set(at.dataframe[0].value["#"])
    for _ in range(pages - 1):
        at.button(key="notifications_next").click().run()
    assert at.button(key="notifications_next").disabled
    assert reminder_id in set(at.dataframe[0].value["#"])

    def listed() -> dict:
        table = at.dataframe[0].value
        return {row["#"]: row for _, row in table.iterrows()}

    for typed in ("margaret evans", "+44 7700 900123"):
        at.text_input(key="notifications_search").input(typed)
        at.button(key="FormSubmitter:notifications_filters-Apply").click().run()
        assert list(listed()) == [reminder_id], typed
        assert "Page 1 of 1 · messages 1–1 of 1" in [c.value for c in at.caption]
    row = listed()[reminder_id]
    assert (row["Template"], row["Channel"], row["Status"]) == (
        "Appointment reminder",
        "Text message",
        "Sent",
    )
    assert (row["Patient"], row["To"]) == ("Margaret *Evans*", "07700 900123")  # as typed
    assert "*Evans*" not in " ".join(m.value for m in at.markdown)  # a cell, not markdown
    at.text_input(key="notifications_search").input("")
    pick = at.selectbox(key="notifications_template_filter")
    assert "Appointment reminder — A reminder before the appointment" in " ".join(pick.options)
    pick.select("appointment_reminder")
    at.button(key="FormSubmitter:notifications_filters-Apply").click().run()
    assert reminder_id in listed() and {r["Template"] for r in listed().values()} == {
        "Appointment reminder"
    }
    templates = at.selectbox(key="notifications_template")
    assert (
        templates.options[0]
        == f"Request received — {notify.TEMPLATES['request_received'].description}"
    )


def test_the_reply_chosen_is_shown_whole_as_text(app_as, app_db):
    """The table cuts a long text short (and at 1280 px shows no outcome, answer or note): the
    reply chosen is shown whole below it, as text, with who sent it and what became of it."""
    long = "Can I come later? " + "I am stuck at work until six, " * 20 + "<b>x</b> 😊 end"
    reply_id = _texts(app_db, long, "other text")[0]
    # what became of it: the note the reply keeps (which depends on whether the demo's patient
    # with this number has a visit still ahead at this hour)
    note = _reply(app_db, reply_id).note
    assert note
    at = app_as("staff", "app_pages/text_replies.py")
    place = list(at.dataframe[0].value["Text (as typed)"]).index(long)
    at.session_state["text_replies_table"] = {"selection": {"rows": [place], "columns": []}}
    at.run()
    assert long in [t.value for t in at.text]
    said = " ".join(c.value for c in at.caption)
    assert "(+44 7700 900000) · inbox" in said, said
    assert f"Note: {note}" in said, said


def test_a_reply_handled_leaves_no_tick_on_the_reply_moved_into_its_place(
    app_as, app_db, set_twice
):
    """Handled, the reply leaves the list and the one below moves up into its place: the
    table is drawn afresh, so no tick stays on that row beside "Select a reply" (the old grid
    kept it, the page ignored it, and a click on the ticked row did nothing)."""
    _texts(app_db, "first text", "second text")
    at = app_as("staff", "app_pages/text_replies.py")
    at.session_state["text_replies_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    before = at.dataframe[0].proto.id
    at.text_input(key="text_replies_note").input("Rang back").run()
    at.button(key="text_replies_done").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) >= 1 and at.dataframe[0].proto.id != before
    assert "Select a reply to open its appointment or mark it handled." in [
        c.value for c in at.caption
    ]
    # the next reply chosen: its note box is empty, in the browser too (the note was for the
    # reply handled)
    at.session_state["text_replies_table_1"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    told_to_show(at.text_input(key="text_replies_note"), "")
    assert set_twice == []  # no widget emptied through the state has a default of its own
