"""Portal invitations: life cycle, consent, expiry, enrolment, funnel and bulk preview."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import delete, insert, select

from core.interchange import patient_export
from core.kernel import tokens
from core.kernel.authz import patient_actor
from core.kernel.errors import Conflict, LinkInvalid, PermissionDenied, ValidationError
from core.messaging import sms_parts
from core.patients import enrolment, invitations
from core.patients.invitations import PortalStatus
from core.portal import patient_links
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Channel,
    Clinic,
    InvitationStatus,
    LedgerEntry,
    LinkToken,
    Notification,
    Patient,
    PatientPortalTally,
    PortalInvitation,
)
from db.triggers import bucket
from db.types import utcnow
from tests.factories import invitations_sent_a_while_ago, make_patient

BASE = "https://desk.example"


def _raw(link: str) -> str:
    query = parse_qs(urlparse(link).query)
    assert query["p"] == ["enroll"]
    return query["t"][0]


def _send(db, world, patient_id=None, **kw):
    with db.write() as s:
        return invitations.send_invitation(
            s, world.staff, patient_id or world.patient_id, base_url=BASE, **kw
        )


def _a_while_later(db, patient_id):
    with db.write() as s:
        invitations_sent_a_while_ago(s, patient_id)


def _state(db, patient_id):
    with db.read() as s:
        return invitations.state_of(s, s.get(Patient, patient_id))


def _actions(db, patient_id):
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.patient_id == patient_id)
                .order_by(AuditEvent.id)
            )
        )


def test_send_queues_the_email_with_a_working_link_and_audits(db, world):
    sent = _send(db, world)
    assert sent.link.startswith(f"{BASE}/patient?p=enroll&t=") and sent.queued
    with db.read() as s:
        mail = s.scalars(select(Notification)).one()
        assert mail.to_address == "alex@example.org" and mail.template == "portal_invitation"
        assert sent.link in mail.body
        assert tokens.verify(s, _raw(sent.link), "enroll").subject_id == world.patient_id
    state = _state(db, world.patient_id)
    assert state.status == PortalStatus.INVITED
    assert state.expires_at.date() == (utcnow() + timedelta(days=14)).date()
    assert state.label.startswith("Invited (expires ")
    assert _actions(db, world.patient_id) == ["invitation_sent"]


NO_CONSENT = {"consent_email": False, "consent_sms": False}


@pytest.mark.parametrize(
    ("fields", "missing", "status"),
    [
        (
            {"email": None, "phone": None, **NO_CONSENT},
            "no email address; no mobile number",
            PortalStatus.NO_CONTACT,
        ),
        (NO_CONSENT, "no consent to email; no consent to text messages", PortalStatus.OPTED_OUT),
        (
            {"email": None, **NO_CONSENT},
            "no email address; no consent to text messages",
            PortalStatus.OPTED_OUT,
        ),
    ],
)
def test_send_refuses_without_an_email_or_mobile_agreed_to_and_says_what(
    db, world, fields, missing, status
):
    with db.write() as s:
        pid = make_patient(s, first_name="Nia", **fields).id
    with pytest.raises(ValidationError) as refused:
        _send(db, world, pid)
    assert str(refused.value) == (
        f"Nia Morgan has no email or mobile they agreed to be contacted on ({missing}): add one "
        "on the patient's record, or record their consent there, then invite them."
    )
    with db.read() as s:
        assert s.scalar(select(PortalInvitation.id)) is None
        assert s.scalar(select(Notification.id)) is None
    assert _state(db, pid).status == status


def test_a_patient_with_only_a_mobile_is_invited_by_text_with_the_whole_link(db, world):
    """Many patients give only a mobile number and agree to texts: the invitation goes by text
    message with the enrolment link whole (here longer than a text may be), the list says
    where it went, and the link enrols as an emailed one does."""
    with db.write() as s:
        pid = make_patient(
            s, first_name="Tam", email=None, consent_email=False, phone="07700 900456"
        ).id
    base = "https://desk.example/" + "clinic-" * 70
    with db.write() as s:
        sent = invitations.send_invitation(s, world.staff, pid, base_url=base)
    assert sent.queued and sent.channel == Channel.SMS and sent.address == "07700 900456"
    assert sms_parts.parts(sent.link).count > sms_parts.MAX_PARTS
    with db.read() as s:
        text = s.scalars(select(Notification)).one()
        stored = s.get(PortalInvitation, sent.invitation_id).email
        listed = enrolment.list_invitations(s, world.staff, status="invited")
        history = enrolment.invitation_history(s, world.staff, pid)
    assert (text.channel, text.to_address, text.template) == (
        Channel.SMS,
        "07700 900456",
        "portal_invitation",
    )
    assert re.search(r"https?://\S+", text.body).group() == sent.link  # whole, not cut
    assert stored == "07700 900456"
    assert [(r.patient_id, r.channel, r.sent_to) for r in listed] == [
        (pid, "Text message", "07700 900456")
    ]
    assert [(h.channel, h.email) for h in history] == [("Text message", "07700 900456")]
    with db.write() as s:
        done = patient_links.enroll(
            s, _raw(sent.link), date_of_birth=date(1985, 4, 12), accept_terms=True
        )
    assert done.enrolled and _state(db, pid).status == PortalStatus.ENROLLED


def test_two_patients_on_one_family_phone_get_texts_naming_each(db, world):
    """A family shares a phone: each invitation text names its patient by first name (their one
    name when they have only one), so neither is opened by the other. With a GSM name the text
    stays in two parts; a name outside the GSM alphabet keeps its letters, and the text goes in
    UCS-2 within the parts a text may take, its link whole."""
    family = {"email": None, "consent_email": False, "phone": "07700 900456"}
    with db.write() as s:
        ids = [
            make_patient(s, first_name="Alex", **family).id,
            make_patient(s, first_name="Sam", **family).id,
            make_patient(s, first_name="", last_name="Madonna", **family).id,
            make_patient(s, first_name="Łucja", **family).id,
        ]
        links = [
            invitations.send_invitation(
                s, world.staff, pid, base_url="https://clinicdesk.example.org"
            ).link
            for pid in ids
        ]
    with db.read() as s:
        texts = [
            s.scalars(select(Notification).where(Notification.patient_id == pid)).one().body
            for pid in ids
        ]
    for name, text, link in zip(("Alex", "Sam", "Madonna", "Łucja"), texts, links, strict=True):
        assert text.startswith(f"Test Clinic: {name}, ") and text.endswith(link)
    assert [sms_parts.parts(t).count for t in texts[:3]] == [2, 2, 2]
    assert not sms_parts.parts(texts[3]).gsm
    assert sms_parts.parts(texts[3]).count <= sms_parts.MAX_PARTS


def test_patient_and_signed_out_actors_cannot_send(db, world):
    with db.write() as s, pytest.raises(PermissionDenied):
        invitations.send_invitation(s, patient_actor("Alex"), world.patient_id, base_url=BASE)


def test_resend_issues_a_new_link_and_revokes_the_old(db, world):
    first = _send(db, world)
    _a_while_later(db, world.patient_id)
    second = _send(db, world)
    assert second.replaced == 1 and second.link != first.link
    with db.read() as s:
        with pytest.raises(LinkInvalid):
            tokens.verify(s, _raw(first.link), "enroll")
        tokens.verify(s, _raw(second.link), "enroll")
        history = enrolment.invitation_history(s, world.staff, world.patient_id)
    assert [h.status for h in history] == ["pending", "revoked"]
    # in words on the record's history, not the stored 'pending'
    assert [h.said for h in history] == ["Sent, not used yet", "Revoked"]
    assert history[1].revoked_reason == "Replaced by a new invitation"
    assert history[0].sent_by == "Staff"
    assert _actions(db, world.patient_id) == [
        "invitation_sent",
        "invitation_revoked",
        "invitation_resent",
    ]


def test_a_second_press_does_not_text_the_family_phone_again_and_kill_the_first_link(db, world):
    """Two presses of Send (a double click, two desks, a bulk list read before one was invited
    by hand) texted the mobile twice within seconds, and the first text's link, the one the
    patient opens, said it was replaced. A resend to the same number within RESEND_GAP is
    refused saying so, the first link still works, and a bulk row is skipped with that reason;
    a QR printed at the desk (no message) and a resend after the gap still go."""
    with db.write() as s:
        s.get(Patient, world.patient_id).consent_email = False  # the family mobile: texts only
        twin = make_patient(s, first_name="Sam", email=None, consent_email=False).id
    first = _send(db, world)
    _send(db, world, twin)  # the same mobile, another patient: a link of their own
    with pytest.raises(Conflict, match=r"An invitation was texted to 07700 900123 \d+ s ago"):
        _send(db, world)
    with db.write() as s:
        (row,) = invitations.send_many(s, world.staff, [world.patient_id], base_url=BASE)
    assert not row.done and "this press sent no second one" in row.detail
    with db.read() as s:
        tokens.verify(s, _raw(first.link), "enroll")  # still live
        texts = s.scalars(select(Notification.patient_id).order_by(Notification.id)).all()
    assert texts == [world.patient_id, twin]
    qr = _send(db, world, email=False)  # the desk prints it: nothing is texted
    assert not qr.queued and qr.replaced == 1
    texted = _send(db, world)  # the text's link was replaced by the QR's: a new one goes
    assert texted.queued and texted.replaced == 1
    with pytest.raises(Conflict, match="this press sent no second one"):
        _send(db, world)
    _a_while_later(db, world.patient_id)
    again = _send(db, world)
    assert again.queued and again.replaced == 1


def test_expiry_is_configurable_and_validated(db, world):
    with db.write() as s:
        assert invitations.get_expiry_days(s) == 14
        invitations.set_expiry_days(s, world.manager, 3)
    sent = _send(db, world)
    assert timedelta(days=2, hours=23) < sent.expires_at - utcnow() <= timedelta(days=3)
    _a_while_later(db, world.patient_id)
    explicit = _send(db, world, expiry_days=30)
    assert explicit.expires_at - utcnow() > timedelta(days=29)
    with db.write() as s:
        with pytest.raises(ValidationError, match="1 to 90 days"):
            invitations.set_expiry_days(s, world.manager, 0)
        with pytest.raises(PermissionDenied):
            invitations.set_expiry_days(s, world.staff, 7)


def _expire(db, invitation_id):
    with db.write() as s:
        s.get(PortalInvitation, invitation_id).expires_at = utcnow() - timedelta(minutes=1)


def test_expired_invitations_show_as_expired_at_once_and_can_be_renewed(db, world):
    sent = _send(db, world)
    _expire(db, sent.invitation_id)
    assert _state(db, world.patient_id).status == PortalStatus.EXPIRED  # lazily, no job yet
    with db.read() as s:
        rows = enrolment.list_invitations(s, world.staff, status="expired")
        assert [r.patient_id for r in rows] == [world.patient_id]
        assert enrolment.status_counts(s, world.staff)[PortalStatus.EXPIRED] == 1
        with pytest.raises(LinkInvalid):
            patient_links.enrollment_view(s, _raw(sent.link))
    with db.write() as s:
        assert invitations.expire_due(s) == 1
        assert invitations.expire_due(s) == 0
    with db.read() as s:
        assert s.get(PortalInvitation, sent.invitation_id).status == InvitationStatus.EXPIRED
    renewed = _send(db, world)
    assert _state(db, world.patient_id).status == PortalStatus.INVITED
    assert renewed.replaced == 0
    assert _actions(db, world.patient_id)[-2:] == ["invitation_expired", "invitation_renewed"]


def test_expire_job_runs_in_its_own_transaction(db, world):
    sent = _send(db, world)
    _expire(db, sent.invitation_id)
    invitations.expire_job(db, None)
    with db.read() as s:
        assert s.get(PortalInvitation, sent.invitation_id).status == InvitationStatus.EXPIRED


def test_enrolment_needs_date_of_birth_and_terms_and_works_once(db, world):
    raw = _raw(_send(db, world).link)
    with db.read() as s:
        view = patient_links.enrollment_view(s, raw)
        assert view.first_name == "Alex" and view.clinic_name == "Test Clinic"
    with db.write() as s, pytest.raises(ValidationError, match="accept the terms"):
        patient_links.enroll(s, raw, date_of_birth=date(1985, 4, 12), accept_terms=False)
    with db.write() as s:
        wrong = patient_links.enroll(s, raw, date_of_birth=date(1985, 4, 13), accept_terms=True)
    assert not wrong.enrolled and "does not match" in wrong.message
    with db.write() as s:
        done = patient_links.enroll(s, raw, date_of_birth=date(1985, 4, 12), accept_terms=True)
    assert done.enrolled
    state = _state(db, world.patient_id)
    assert state.status == PortalStatus.ENROLLED and state.enrolled_at is not None
    with db.read() as s:
        assert s.get(Patient, world.patient_id).portal_enrolled_at is not None
        with pytest.raises(patient_links.EnrolledAlready):  # opened again: says so
            patient_links.enrollment_view(s, raw)
    with db.write() as s, pytest.raises(patient_links.EnrolledAlready):
        patient_links.enroll(s, raw, date_of_birth=date(1985, 4, 12), accept_terms=True)
    assert _actions(db, world.patient_id)[-2:] == [
        "enrollment_identity_failed",
        "invitation_enrolled",
    ]
    with pytest.raises(ValidationError, match="already enrolled"):
        _send(db, world)


def test_a_dead_enrolment_link_says_why_to_its_holder_only_when_it_is_theirs_to_know(db, world):
    """Opened again after enrolling (the email's link, another device), a link said 'contact
    the practice for a new one', which the practice could not give: it now says the patient
    enrolled on that day and to sign in. One replaced by a resend says to use the newest email.
    Revoked for any other reason (the address changed: it may be a stranger's; by the desk;
    too many wrong dates of birth) or expired, it stays the neutral invalid link."""
    first = _raw(_send(db, world).link)
    _a_while_later(db, world.patient_id)
    second = _raw(_send(db, world).link)
    with db.read() as s, pytest.raises(patient_links.InvitationReplaced, match="newer one"):
        patient_links.enrollment_view(s, first)
    with db.write() as s:
        patient_links.enroll(s, second, date_of_birth=date(1985, 4, 12), accept_terms=True)
    with db.read() as s:
        day = invitations.clinic_day(s, world.patient_id, utcnow())
        with pytest.raises(patient_links.EnrolledAlready) as enrolled:
            patient_links.enrollment_view(s, second)
    assert f"You enrolled in the patient portal on {day}" in str(enrolled.value)
    assert "sign in" in str(enrolled.value) and enrolled.value.portal
    with db.write() as s:
        others = {
            "address changed": make_patient(s, first_name="Ada").id,
            "revoked by the desk": make_patient(s, first_name="Bo").id,
            "expired": make_patient(s, first_name="Cy").id,
        }
    links = {why: _send(db, world, pid) for why, pid in others.items()}
    with db.write() as s:
        s.get(Patient, others["address changed"]).email = "ada.new@example.org"
        invitations.revoke_pending_for_patient(
            s, world.staff, others["address changed"], "Email address changed"
        )
        invitations.revoke_invitation(s, world.staff, links["revoked by the desk"].invitation_id)
    _expire(db, links["expired"].invitation_id)
    for sent in links.values():
        with db.read() as s, pytest.raises(LinkInvalid):
            patient_links.enrollment_view(s, _raw(sent.link))
    with db.read() as s, pytest.raises(LinkInvalid):
        patient_links.enrollment_view(s, "made-up-token")


def test_too_many_wrong_dates_of_birth_revoke_the_link(db, world):
    raw = _raw(_send(db, world).link)
    for attempt in range(patient_links.MAX_IDENTITY_ATTEMPTS):
        with db.write() as s:
            result = patient_links.enroll(
                s, raw, date_of_birth=date(2000, 1, attempt + 1), accept_terms=True
            )
        assert not result.enrolled
    assert "not valid any more" in result.message
    assert _state(db, world.patient_id).status == PortalStatus.REVOKED
    with db.read() as s, pytest.raises(LinkInvalid):
        patient_links.enrollment_view(s, raw)


def test_a_patient_without_a_date_of_birth_is_not_invited_and_the_desk_hears_why(db, world):
    """Enrolling asks for the date of birth: a record without one (a patient who asked for a
    visit through the public booking link, an import, the new-patient form left blank) could
    never enrol, and five tries would revoke the link. The desk is told before sending, the
    bulk preview skips them saying why, and the record says what to add."""
    with db.write() as s:
        pid = make_patient(s, first_name="Noor", date_of_birth=None).id
        s.add(
            Appointment(
                clinic_id=world.clinic_id,
                patient_id=pid,
                requested_day=date.today() + timedelta(days=2),
                status=AppointmentStatus.REQUESTED,
            )
        )
    with pytest.raises(ValidationError, match="no date of birth on file.*add it to the patient"):
        _send(db, world, pid)
    with pytest.raises(ValidationError, match="no date of birth"):  # nor a desk QR code
        _send(db, world, pid, email=False)
    with db.read() as s:
        assert s.scalar(select(PortalInvitation.id)) is None
        assert s.scalar(select(Notification.id)) is None
    state = _state(db, pid)
    assert state.status == PortalStatus.NOT_INVITED and not state.can_send
    assert "no date of birth on file" in state.advice
    with db.read() as s:
        upcoming = enrolment.bulk_preview(s, world.staff)
        everyone = enrolment.bulk_preview(s, world.staff, upcoming_only=False)
    assert upcoming.patient_ids == [] and upcoming.skipped == {enrolment.NO_BIRTH_SKIPPED: 1}
    assert everyone.patient_ids == [world.patient_id]
    assert everyone.skipped == {enrolment.NO_BIRTH_SKIPPED: 1}  # not "over the limit"
    with db.write() as s:
        s.get(Patient, pid).date_of_birth = date(1990, 2, 3)
    assert _state(db, pid).can_send
    assert _send(db, world, pid).queued


def test_an_invitation_whose_patient_has_no_date_of_birth_says_to_call_and_is_not_spent(db, world):
    """An invitation sent before the date of birth was cleared (or before invitations asked
    for one): the enrolment page says to call the practice, however often it is tried, and the
    link works once the practice has added it."""
    raw = _raw(_send(db, world).link)
    with db.write() as s:
        s.get(Patient, world.patient_id).date_of_birth = None
    with db.read() as s:
        view = patient_links.enrollment_view(s, raw)
    assert "no date of birth on file for you" in view.held and "call them" in view.held
    for attempt in range(patient_links.MAX_IDENTITY_ATTEMPTS + 1):
        with db.write() as s:
            result = patient_links.enroll(
                s, raw, date_of_birth=date(1985, 4, 12 + attempt), accept_terms=True
            )
        assert not result.enrolled and result.message == view.held
    assert _state(db, world.patient_id).status == PortalStatus.INVITED
    assert "enrollment_identity_failed" not in _actions(db, world.patient_id)
    with db.write() as s:
        s.get(Patient, world.patient_id).date_of_birth = date(1985, 4, 12)
    with db.read() as s:
        assert patient_links.enrollment_view(s, raw).held == ""
    with db.write() as s:
        done = patient_links.enroll(s, raw, date_of_birth=date(1985, 4, 12), accept_terms=True)
    assert done.enrolled


def test_status_in_sql_agrees_with_the_python_status_for_every_case(db, world):
    now = utcnow()
    with db.write() as s:
        cases = {
            "no_contact": make_patient(s, email=None, phone=None, **NO_CONSENT),
            "opted_out": make_patient(s, **NO_CONSENT),
            "not_invited": make_patient(s),
            "enrolled": make_patient(s, portal_enrolled_at=now),
        }
        ids = {k: p.id for k, p in cases.items()}
    for key in ("invited", "expired", "revoked"):
        with db.write() as s:
            ids[key] = make_patient(s, first_name=key).id
        sent = _send(db, world, ids[key])
        if key == "expired":
            _expire(db, sent.invitation_id)
        if key == "revoked":
            with db.write() as s:
                invitations.revoke_invitation(s, world.staff, sent.invitation_id, "Wrong person")
    with db.read() as s:
        listed = {r.patient_id: r.status for r in enrolment.list_invitations(s, world.staff)}
        for key, pid in ids.items():
            assert (
                listed[pid]
                == PortalStatus(key)
                == invitations.state_of(s, s.get(Patient, pid)).status
            )
        counts = enrolment.status_counts(s, world.staff)
    assert sum(counts.values()) == len(ids) + 1  # and the world's own patient
    assert counts[PortalStatus.NOT_INVITED] == 2


def test_a_landline_on_file_is_not_invited_by_a_text_that_cannot_arrive(db, world):
    """An old or imported record with text consent on a landline (phonenumbers: a fixed
    line): the invitation would go by a text no phone gets. Refused, alone or in bulk, naming
    the number and what to add; the record says so before anyone presses Send. With an email
    address it goes by email as ever."""
    with db.write() as s:
        pid = make_patient(
            s, first_name="Lin", email=None, consent_email=False, phone="020 7946 0123"
        ).id
    landline = (
        r"Lin Morgan's number '020 7946 0123' is a landline: texts cannot reach it; add a "
        r"mobile number or an email address"
    )
    with db.write() as s, pytest.raises(ValidationError, match=landline):
        invitations.send_invitation(s, world.staff, pid, base_url=BASE)
    with db.write() as s:
        [row] = invitations.send_many(s, world.staff, [pid], base_url=BASE)
        state = invitations.get_portal_state(s, world.staff, pid)
    assert not row.done and re.search(landline, row.detail)
    assert not state.can_send and re.search(landline, state.advice)
    with db.write() as s:
        s.get(Patient, pid).email = "lin@example.org"
        s.get(Patient, pid).consent_email = True
    with db.write() as s:
        sent = invitations.send_invitation(s, world.staff, pid, base_url=BASE)
    assert sent.address == "lin@example.org"


LANDLINE = "020 7946 0123"  # a London line: no text reaches it


def _listed(db, world, pid):
    """The patient's status as the list, the counts (the tally's, and a search's grouped
    query), the bulk preview and state_of say it."""
    with db.read() as s:
        rows = enrolment.list_invitations(s, world.staff, page_size=500)
        [status] = [r.status for r in rows if r.patient_id == pid]
        counts = enrolment.status_counts(s, world.staff)
        searched = enrolment.status_counts(s, world.staff, search="Lin")
        preview = enrolment.bulk_preview(s, world.staff, upcoming_only=False)
        state = invitations.state_of(s, s.get(Patient, pid))
    return status, counts, searched, pid in preview.patient_ids, state


def test_a_landline_with_text_consent_lists_and_counts_as_no_mobile_not_as_one_to_invite(db, world):
    """An old or imported record with text consent on a landline and no email: before, the
    status in SQL counted it as not invited (one to invite by text), in the list, the counts
    and the bulk preview, until the send refused it. Now it is a record without a mobile there
    as in state_of, and its advice names the landline; with an email it never agreed to, it
    is opted out."""
    with db.write() as s:
        pid = make_patient(s, first_name="Lin", email=None, phone=LANDLINE).id
        other = make_patient(s, first_name="Lin", last_name="Ode", phone=LANDLINE)
        other.consent_email, other.date_of_birth = False, None
    status, counts, searched, previewed, state = _listed(db, world, pid)
    assert status == state.status == PortalStatus.NO_CONTACT
    assert not previewed and "is a landline: texts cannot reach it" in state.advice
    assert counts[PortalStatus.NOT_INVITED] == 1  # the world's own patient only
    assert counts[PortalStatus.NO_CONTACT] == 1 and counts[PortalStatus.OPTED_OUT] == 1
    assert (searched[PortalStatus.NO_CONTACT], searched[PortalStatus.OPTED_OUT]) == (1, 1)
    assert searched[PortalStatus.NOT_INVITED] == 0
    with db.read() as s:
        opted_out = invitations.state_of(s, s.get(Patient, other.id))
    assert opted_out.status == PortalStatus.OPTED_OUT and "landline" in opted_out.advice


def test_a_number_is_a_landline_in_the_countries_of_the_practices_clinics(db, world):
    """'020 7946 0123' is a London line in a British practice; a practice whose clinics are all
    in the United States reads it otherwise (no US number starts 0), so it may be a mobile
    and the record is one to invite by text. The mark follows the clinics' locale both ways,
    for every record on file, and so do the list and the counts."""
    with db.write() as s:
        pid = make_patient(s, first_name="Lin", email=None, phone=LANDLINE).id
    assert _listed(db, world, pid)[0] == PortalStatus.NO_CONTACT
    with db.write() as s:
        for clinic in s.scalars(select(Clinic)):
            clinic.locale = "en-US"
    status, counts, _, previewed, state = _listed(db, world, pid)
    assert status == state.status == PortalStatus.NOT_INVITED and previewed
    assert counts[PortalStatus.NOT_INVITED] == 2
    with db.write() as s:
        s.get(Clinic, world.clinic_id).locale = "en-GB"
    assert _listed(db, world, pid)[0] == PortalStatus.NO_CONTACT
    with db.read() as s:
        assert s.get(Patient, pid).phone_landline


def test_every_way_a_phone_is_written_keeps_its_landline_mark(db, world, tmp_path):
    """The desk's edit (to a landline and back to a mobile), an import's bulk insert and the
    status in SQL that reads the mark: a record the desk gives a landline without text
    consent is one without a mobile, not opted out."""
    from core.interchange import imports
    from core.patients import records

    with db.write() as s:
        pid = make_patient(s, first_name="Lin", email=None).id
    with db.write() as s:
        records.update_patient(s, world.staff, pid, phone=LANDLINE, consent_sms=False)
    with db.read() as s:
        assert s.get(Patient, pid).phone_landline
    assert _listed(db, world, pid)[0] == PortalStatus.NO_CONTACT
    with db.write() as s:
        records.update_patient(s, world.staff, pid, phone="07700 900456", consent_sms=True)
    with db.read() as s:
        assert not s.get(Patient, pid).phone_landline
    path = tmp_path / "old.csv"
    path.write_text(
        "ref,patient,date,state,tel\n"
        f"A1,P1,2025-03-30,attended,{LANDLINE}\nA2,P2,2025-03-30,attended,07700 900789\n"
    )
    columns = {"appointment_ref": "ref", "patient_ref": "patient", "day": "date"}
    mapping = imports.AppointmentMapping(
        columns=columns | {"status": "state", "phone": "tel"},
        source="old",
        provider=imports.WITHOUT_PROVIDER,
    )
    with db.read() as s:
        clinic = s.get(Clinic, world.clinic_id).name
    report = imports.import_appointments(
        db.write, world.owner, path, mapping, clinic_name=clinic, timezone="Europe/London"
    )
    assert report.created == 2, report.warnings
    with db.read() as s:
        marks = dict(s.execute(select(Patient.external_ref, Patient.phone_landline)).all())
    assert (marks["old:P1"], marks["old:P2"]) == (True, False)


def test_records_stored_before_migration_0027_are_marked_by_the_phone_they_hold(db, world):
    """0027 adds the landline mark: down to the revision before it and up again, each record
    is marked by the phone it holds then (a number changed while the mark was not kept), and
    the portal tally counts a landline as no mobile again (with the mark gone, as one)."""
    import sqlalchemy as sa
    from alembic import command

    from db import migrate

    with db.write() as s:
        was_line = make_patient(s, first_name="Lin", email=None, phone=LANDLINE).id
        was_mobile = make_patient(s, first_name="Mo", email=None).id
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0026")  # the revision before 0027 (not head: "-1")
    with_phone = bucket(False, False, True, True, True)  # no email; consent left as made
    with db.engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("patients")}
        assert "phone_landline" not in columns
        tally = dict(
            connection.execute(sa.text("SELECT bucket, patients FROM patient_portal_tally")).all()
        )
        assert tally[with_phone] == 2  # the landline counted as a mobile, as before 0027
        for pid, phone in ((was_line, "07700 900789"), (was_mobile, "0161 496 0000")):
            connection.execute(
                sa.text("UPDATE patients SET phone = :phone WHERE id = :id"),
                {"phone": phone, "id": pid},
            )
    migrate.upgrade(db.engine)
    with db.read() as s:
        marks = dict(s.execute(select(Patient.id, Patient.phone_landline)).all())
        tally = dict(
            s.execute(select(PatientPortalTally.bucket, PatientPortalTally.patients)).all()
        )
    assert (marks[was_line], marks[was_mobile], marks[world.patient_id]) == (False, True, False)
    assert tally[with_phone] == 1 and tally[bucket(False, False, True, False, True)] == 1
    assert _listed(db, world, was_mobile)[0] == PortalStatus.NO_CONTACT


def test_revoke_only_pending(db, world):
    sent = _send(db, world)
    with db.write() as s:
        invitations.revoke_invitation(s, world.staff, sent.invitation_id)
    with db.write() as s, pytest.raises(ValidationError, match="only a pending one"):
        invitations.revoke_invitation(s, world.staff, sent.invitation_id)


def test_search_and_clinic_filters(db, world):
    with db.write() as s:
        other = Clinic(name="Other", timezone="UTC")
        s.add(other)
        s.flush()
        zoe = make_patient(s, first_name="Zoë", last_name="Quinn", email="zq@example.org")
        s.add(
            Appointment(
                clinic_id=other.id,
                patient_id=zoe.id,
                status=AppointmentStatus.REQUESTED,
                requested_day=date.today() + timedelta(days=3),
            )
        )
        other_id, zoe_id = other.id, zoe.id
    with db.read() as s:
        assert [
            r.patient_id for r in enrolment.list_invitations(s, world.staff, search="quinn")
        ] == [zoe_id]
        assert [
            r.patient_id for r in enrolment.list_invitations(s, world.staff, clinic_id=other_id)
        ] == [zoe_id]
        assert enrolment.list_invitations(s, world.staff, search="nobody-like-this") == []


def test_funnel_counts_rate_and_median_days(db, world):
    now = utcnow()
    with db.write() as s:
        for days, enrolled in ((1, True), (3, True), (8, True), (None, False)):
            p = make_patient(s, first_name=f"F{days}")
            sent_at = now - timedelta(days=20)
            token = tokens.issue(s, "enroll", p.id, timedelta(days=14))
            s.add(
                PortalInvitation(
                    patient_id=p.id,
                    email=p.email,
                    token_id=token.row.id,
                    sent_at=sent_at,
                    expires_at=now + timedelta(days=1),
                    status=InvitationStatus.ENROLLED if enrolled else InvitationStatus.PENDING,
                    enrolled_at=sent_at + timedelta(days=days) if enrolled else None,
                )
            )
    with db.read() as s:
        funnel = enrolment.enrollment_funnel(s, world.staff)
    assert (funnel.invited, funnel.enrolled, funnel.pending) == (4, 3, 1)
    assert funnel.rate == pytest.approx(0.75)
    assert funnel.median_days == pytest.approx(3.0, abs=0.01)
    with db.write() as s:  # an even count takes the mean of the middle two
        p = make_patient(s, first_name="Even")
        s.add(
            PortalInvitation(
                patient_id=p.id,
                email=p.email,
                sent_at=now - timedelta(days=10),
                expires_at=now,
                status=InvitationStatus.ENROLLED,
                enrolled_at=now - timedelta(days=5),
            )
        )
    with db.read() as s:
        assert enrolment.enrollment_funnel(s, world.staff).median_days == pytest.approx(
            4.0, abs=0.01
        )


def test_empty_funnel(db, world):
    with db.read() as s:
        funnel = enrolment.enrollment_funnel(s, world.staff)
    assert (funnel.invited, funnel.rate, funnel.median_days) == (0, 0.0, None)


def test_bulk_preview_counts_who_is_sent_and_who_is_skipped_why(db, world):
    today = date.today()
    with db.write() as s:
        made = {
            "fresh": make_patient(s, first_name="Fresh"),
            "fresh2": make_patient(s, first_name="Fresh2"),
            "nocontact": make_patient(s, email=None, phone=None, **NO_CONSENT),
            "optout": make_patient(s, **NO_CONSENT),
            "bytext": make_patient(s, email=None, consent_email=False),
            "enrolled": make_patient(s, portal_enrolled_at=utcnow()),
            "past_only": make_patient(s, first_name="Past"),
        }
        for key, p in made.items():
            day = today - timedelta(days=5) if key == "past_only" else today + timedelta(days=2)
            s.add(
                Appointment(
                    clinic_id=world.clinic_id,
                    patient_id=p.id,
                    requested_day=day,
                    status=AppointmentStatus.REQUESTED,
                )
            )
        ids = {k: p.id for k, p in made.items()}
    _send(db, world, ids["fresh2"])  # pending: skipped
    with db.read() as s:
        preview = enrolment.bulk_preview(s, world.staff)
    assert preview.patient_ids == [ids["fresh"], ids["bytext"]]
    assert preview.skipped == {
        "invitation still pending": 1,
        "no email address or mobile number": 1,
        "no consent to email or text messages": 1,
        "already enrolled": 1,
    }
    with db.read() as s:
        everyone = enrolment.bulk_preview(s, world.staff, upcoming_only=False, limit=2)
    assert len(everyone.patient_ids) == 2
    # the world's patient, fresh, by text, past
    assert everyone.skipped["over the limit of 2 per run"] == 2
    for pid in preview.patient_ids:
        _send(db, world, pid)
    with db.read() as s:
        assert enrolment.bulk_preview(s, world.staff).patient_ids == []
        assert s.scalar(select(LinkToken).where(LinkToken.subject_id == ids["fresh"])) is not None


def test_the_bulk_preview_of_every_patient_leaves_out_merged_duplicates(db, world):
    """A duplicate merged into another record is invited as that record: the preview of every
    patient listed it to send (each then refused as 'merged into #…')."""
    with db.write() as s:
        duplicate = make_patient(s, first_name="Alexa")
        duplicate.merged_into_id, duplicate.merged_at = world.patient_id, utcnow()
        duplicate_id = duplicate.id
    with db.read() as s:
        everyone = enrolment.bulk_preview(s, world.staff, upcoming_only=False)
    assert duplicate_id not in everyone.patient_ids
    assert everyone.patient_ids == [world.patient_id] and everyone.skipped == {}


def _race(db, work, n=2):
    """Run `work(session)` in n threads at once, each in its own write transaction."""
    barrier, outcomes = threading.Barrier(n), []

    def one():
        barrier.wait()
        try:
            with db.write() as s:
                outcomes.append(work(s))
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_staff_sending_at_once_leave_exactly_one_live_invitation(db, world):
    """One sends; the other, weighed after it under the patient's lock, is told it was just
    sent (before, both sent: two emails, the first one's link dead)."""
    outcomes = _race(
        db,
        lambda s: (
            invitations.send_invitation(
                s, world.staff, world.patient_id, base_url=BASE
            ).invitation_id
        ),
    )
    sent = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(sent), len(refused)) == (1, 1), outcomes
    assert "this press sent no second one" in str(refused[0])
    with db.read() as s:
        statuses = sorted(
            i.status.value
            for i in s.scalars(
                select(PortalInvitation).where(PortalInvitation.patient_id == world.patient_id)
            )
        )
        emails = s.scalars(select(Notification.to_address)).all()
    assert statuses == ["pending"] and emails == ["alex@example.org"]


def test_two_desks_revoking_one_invitation_at_once_revoke_it_once(db, world):
    """One revokes it; the other is told it is revoked already, and the audit log holds one
    revocation with the first desk's reason (before, on PostgreSQL both read it pending and
    both wrote: two revocations, the second reason over the first)."""
    sent = _send(db, world)
    reasons = iter(("Wrong patient", "Patient asked"))
    outcomes = _race(
        db,
        lambda s: invitations.revoke_invitation(s, world.staff, sent.invitation_id, next(reasons)),
    )
    refused = [o for o in outcomes if isinstance(o, ValidationError)]
    assert len(refused) == 1 and "revoked already" in str(refused[0]), outcomes
    assert _actions(db, world.patient_id).count("invitation_revoked") == 1
    with db.read() as s:
        reason = s.get(PortalInvitation, sent.invitation_id).revoked_reason
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "invitation_revoked")).one()
    assert reason == event.reason


def test_an_enrolment_link_used_twice_at_once_enrols_once(db, world):
    raw = _raw(_send(db, world).link)
    outcomes = _race(
        db,
        lambda s: patient_links.enroll(s, raw, date_of_birth=date(1985, 4, 12), accept_terms=True),
    )
    assert sum(getattr(o, "enrolled", False) for o in outcomes) == 1
    assert sum(isinstance(o, patient_links.EnrolledAlready) for o in outcomes) == 1, outcomes
    assert _actions(db, world.patient_id).count("invitation_enrolled") == 1


def test_sql_status_equals_python_status_for_every_combination(db, world):
    """Exhaustive: email × consent × mobile (none, no consent, consent) × enrolled × latest
    invitation state (144 patients)."""
    import itertools

    now = utcnow()
    kinds = ["none", "live", "overdue", "expired", "revoked", "enrolled"]
    mobiles = {"none": (None, False), "no consent": ("07700 900001", False)}
    mobiles["consent"] = ("07700 900002", True)
    ids = []
    with db.write() as s:
        for n, (email, consent, mobile, enrolled, kind) in enumerate(
            itertools.product([True, False], [True, False], mobiles, [True, False], kinds)
        ):
            p = make_patient(
                s,
                first_name=f"C{n}",
                email=f"c{n}@example.org" if email else None,
                consent_email=consent,
                phone=mobiles[mobile][0],
                consent_sms=mobiles[mobile][1],
                portal_enrolled_at=now if enrolled else None,
            )
            if kind != "none":
                status = {"live": "pending", "overdue": "pending"}.get(kind, kind)
                expires = (
                    now - timedelta(hours=1)
                    if kind in ("overdue", "expired")
                    else now + timedelta(days=1)
                )
                s.add(
                    PortalInvitation(
                        patient_id=p.id,
                        email="old@example.org",
                        sent_at=now,
                        expires_at=expires,
                        status=InvitationStatus(status),
                    )
                )
            ids.append(p.id)
    with db.read() as s:
        listed = {
            r.patient_id: r.status
            for r in enrolment.list_invitations(s, world.staff, page_size=200)
        }
        for pid in ids:
            assert listed[pid] == invitations.state_of(s, s.get(Patient, pid)).status, pid
        counts = enrolment.status_counts(s, world.staff)
        expected = dict.fromkeys(PortalStatus, 0)
        for p in s.scalars(select(Patient)):
            expected[invitations.state_of(s, p).status] += 1
        # a clinic filter takes the one grouped query; unfiltered counts come from indexes
        clinic = enrolment.status_counts(s, world.staff, clinic_id=world.clinic_id)
    assert sum(counts.values()) == len(ids) + 1 and all(counts.values())
    assert counts == expected
    assert clinic[PortalStatus.NOT_INVITED] <= counts[PortalStatus.NOT_INVITED]


def _tally_matches_the_patients(session) -> None:
    kept = dict(
        session.execute(select(PatientPortalTally.bucket, PatientPortalTally.patients)).all()
    )
    counted = dict.fromkeys(kept, 0)
    for p in session.scalars(select(Patient)):
        key = bucket(
            p.portal_enrolled_at is not None,
            bool(p.email),
            p.consent_email,
            bool(p.phone),
            p.consent_sms,
        )
        counted[key] = counted.get(key, 0) + 1
    assert kept == counted


def test_the_database_keeps_the_portal_tally_whatever_writes_the_patients(db, world):
    """Inserts, every kind of change, deletes and a bulk insert past the ORM: the tally the
    status counts read stays equal to counting the patients."""
    with db.write() as s:
        people = [
            make_patient(s, email=email, consent_email=consent)
            for email in ("a@example.org", "", None)
            for consent in (True, False)
        ]
    with db.write() as s:
        _tally_matches_the_patients(s)
        first, second, third = (s.get(Patient, p.id) for p in people[:3])
        first.email = ""  # has email → no email
        second.consent_email = True  # opted out → invitable
        third.portal_enrolled_at = utcnow()  # enrolled
        third.email = "b@example.org"  # two watched columns in one update
        gone = people[3].id  # a patient with no visits, their opening points entry first
        s.execute(delete(LedgerEntry).where(LedgerEntry.patient_id == gone))
        s.delete(s.get(Patient, gone))
    with db.write() as s:
        _tally_matches_the_patients(s)
        s.execute(
            insert(Patient),
            [
                {
                    "first_name": "Bulk",
                    "last_name": str(i),
                    "email": f"bulk{i}@example.org",
                    "consent_email": i % 2 == 0,
                }
                for i in range(10)
            ],
        )
    with db.read() as s:
        _tally_matches_the_patients(s)
        counts = enrolment.status_counts(s, world.staff)
        expected = dict.fromkeys(PortalStatus, 0)
        for p in s.scalars(select(Patient)):
            expected[invitations.state_of(s, p).status] += 1
    assert counts == expected


def test_concurrent_moves_between_buckets_keep_the_tally(db, world):
    """Two writers moving patients between the same two buckets in opposite directions, at
    once: both succeed (no deadlock on PostgreSQL) and the tally still counts right."""
    with db.write() as s:
        ids = [
            make_patient(s, email=f"{n}@example.org", consent_email=consent).id
            for n, consent in (("a", True), ("b", False))
        ]
    start, errors = threading.Barrier(2), []

    def toggle(patient_id: int) -> None:
        try:
            start.wait(timeout=10)
            for _ in range(15):
                with db.write() as s:
                    patient = s.get(Patient, patient_id)
                    patient.consent_email = not patient.consent_email
        except Exception as error:  # collected: a thread's exception would not fail the test
            errors.append(error)

    writers = [threading.Thread(target=toggle, args=(i,)) for i in ids]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert not errors
    with db.read() as s:
        _tally_matches_the_patients(s)
        assert [s.get(Patient, i).consent_email for i in ids] == [False, True]


def test_bulk_invite_and_revoke_keep_each_rows_outcome(db, world):
    """One savepoint per patient, each by the channel they agreed to (email, else a text): a
    refused row keeps its reason and the others go through."""
    with db.write() as s:
        s.get(Patient, world.patient_id).consent_email = False  # texts only
        other_id = make_patient(
            s, first_name="Ada", email="ada.bulk@example.org", phone=None, consent_sms=False
        ).id
        nobody_id = make_patient(s, first_name="Bo", **NO_CONSENT).id
    seen = []
    with db.write() as s:
        rows = invitations.send_many(
            s,
            world.staff,
            [world.patient_id, other_id, nobody_id, 999_999],
            base_url="https://clinic.example",
            progress=lambda n, total: seen.append((n, total)),
        )
    assert [(r.patient_id, r.done) for r in rows] == [
        (world.patient_id, True),
        (other_id, True),
        (nobody_id, False),
        (999_999, False),
    ]
    assert rows[0].detail == "text message to 07700 900123"
    assert rows[1].detail == "email to ada.bulk@example.org"
    assert "(no consent to email; no consent to text messages)" in rows[2].detail
    assert seen[-1] == (4, 4)
    with db.read() as s:
        queued = {(n.patient_id, n.channel) for n in s.scalars(select(Notification))}
    assert queued == {(world.patient_id, Channel.SMS), (other_id, Channel.EMAIL)}
    with db.read() as s:
        pending = s.scalars(
            select(PortalInvitation).where(PortalInvitation.patient_id == other_id)
        ).all()
    assert [p.status for p in pending] == [InvitationStatus.PENDING]
    with db.write() as s:
        revoked = invitations.revoke_many(s, world.staff, [pending[0].id, pending[0].id], "Oops")
    assert [r.done for r in revoked] == [True, False] and "only a pending" in revoked[1].detail
    with pytest.raises(PermissionDenied), db.write() as s:
        invitations.send_many(s, patient_actor("Ada"), [other_id], base_url="https://x.example")


@pytest.mark.parametrize("typed", ["07700 900456", "+44 7700 900456", "900 456"])
def test_the_invitations_list_finds_a_patient_by_the_mobile_however_typed(db, world, typed):
    """A patient invited by text is looked up by the number the desk reads out, spaced or with
    its country code, as the patient search finds them; a name still finds them too."""
    with db.write() as s:
        pid = make_patient(s, first_name="Tam", email=None, phone="07700-900-456").id
        make_patient(s, first_name="Other", email=None, phone="07700 111222")
    with db.read() as s:
        found = [r.patient_id for r in enrolment.list_invitations(s, world.staff, search=typed)]
        counted = enrolment.status_counts(s, world.staff, search=typed)
        by_name = [r.patient_id for r in enrolment.list_invitations(s, world.staff, search="tam")]
    assert found == [pid] and sum(counted.values()) == 1
    assert by_name == [pid]


def test_the_patients_file_says_by_which_channel_each_invitation_went(db, world):
    """The subject access file named a texted invitation's mobile number "email"."""
    with db.write() as s:
        pid = make_patient(s, first_name="Tam", email=None, phone="07700 900456").id
    with db.write() as s:
        invitations.send_invitation(s, world.staff, pid, base_url="https://desk.example")
    with db.write() as s:
        data = json.loads(patient_export.export_patient(s, world.manager, pid))
    assert [(i["channel"], i["sent_to"]) for i in data["portal_invitations"]] == [
        ("sms", "07700 900456")
    ]
