"""Every service a page or the command line calls to change data or to read patient data,
called as each actor that must NOT be allowed (the roles without the permission in the README's
table, and a patient), must refuse with PermissionDenied: a hidden page is not a guard.

A service added to a page later goes into SERVICES with the permission it needs; one without
its `ensure` then fails here. Arguments are the least each service takes: the check comes
first, so an unknown id or an empty form must not be reached (a NotFound or a TypeError here
means the service looks before it checks)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import core
from core.analytics import (
    breakdowns,
    cancellations,
    confirmations,
    risk_jobs,
    risk_model,
    risk_scores,
    stats,
    survey_export,
)
from core.analytics import surveys as survey_analytics
from core.analytics.cancellation_parts import AnalyticsFilters
from core.feedback import surveys
from core.forms import after_booking
from core.forms import records as form_records
from core.interchange import imports, patient_export, practice_file, standards
from core.kernel import accounts, audit, exports
from core.kernel.authz import MATRIX, Permission, patient_actor
from core.kernel.config import load_settings
from core.kernel.errors import PermissionDenied
from core.messaging import delivery, history, notify, preferences
from core.messaging.test_message import send_test_message
from core.patients import enrolment, invitations, merge
from core.patients import records as patients
from core.payments import cashup, desk, points, prepay, rules
from core.payments.providers import DeskProvider
from core.policy import cancellation
from core.portal import patient_links, replies
from core.practice import backups, checklist, choices, documents, job_health, reads, setup, travel
from core.requests import bulk, changes, decisions, flags, queue
from core.scheduling import (
    appointments,
    booking,
    calendar,
    checkin,
    cover,
    moves,
    notes,
    schedules,
    today,
    visits,
)
from core.waitlist import entries, offers
from core.waitlist import rules as waitlist_rules
from db.models import Patient, Role

P = Permission
NO = 10**6  # an id nothing has: the permission check comes before the look-up
AT = datetime(2030, 1, 7, 10, tzinfo=UTC)
BASE = "http://clinic.test"
MONTH = AnalyticsFilters(start=date(2030, 1, 1), end=date(2030, 1, 31))
Call = Callable[[Any, Any, Any], object]  # (session, actor, context) -> the service's answer

# (service, the permission it needs, how to call it); the page or command that calls it is in
# the service's own module. Grouped by package.
SERVICES: list[tuple[str, Permission, Call]] = [
    # requests: the queue and decisions
    ("queue.queue_view", P.QUEUE_WORK, lambda s, a, c: queue.queue_view(s, a, "requests")),
    ("queue.set_stale_hours", P.REQUESTS_DECIDE, lambda s, a, c: queue.set_stale_hours(s, a, 24)),
    ("queue.filter_options", P.APPOINTMENTS_READ, lambda s, a, c: queue.filter_options(s, a)),
    ("queue.suggest_for", P.APPOINTMENTS_READ, lambda s, a, c: queue.suggest_for(s, a, NO)),
    (
        "decisions.approve_request",
        P.REQUESTS_DECIDE,
        lambda s, a, c: decisions.approve_request(s, a, NO, provider_id=NO, start_at=AT),
    ),
    (
        "decisions.decline_request",
        P.REQUESTS_DECIDE,
        lambda s, a, c: decisions.decline_request(s, a, NO, reason="Full"),
    ),
    (
        "decisions.propose_time",
        P.REQUESTS_DECIDE,
        lambda s, a, c: decisions.propose_time(s, a, NO, provider_id=NO, start_at=AT),
    ),
    ("bulk.bulk_approve", P.REQUESTS_DECIDE, lambda s, a, c: bulk.bulk_approve(s, a, [NO])),
    (
        "bulk.bulk_decline",
        P.REQUESTS_DECIDE,
        lambda s, a, c: bulk.bulk_decline(s, a, [NO], "Full"),
    ),
    (
        "flags.handle_flag",
        P.REQUESTS_DECIDE,
        lambda s, a, c: flags.handle_flag(s, a, NO, "same_person"),
    ),
    ("flags.offered_on", P.APPOINTMENTS_READ, lambda s, a, c: flags.offered_on(s, a, NO)),
    ("changes.approve_change", P.REQUESTS_DECIDE, lambda s, a, c: changes.approve_change(s, a, NO)),
    (
        "changes.deny_change",
        P.REQUESTS_DECIDE,
        lambda s, a, c: changes.deny_change(s, a, NO, reason="No"),
    ),
    (
        "changes.propose_for_change",
        P.REQUESTS_DECIDE,
        lambda s, a, c: changes.propose_for_change(s, a, NO, start_at=AT),
    ),
    # scheduling
    ("booking.book", P.APPOINTMENTS_BOOK, lambda s, a, c: booking.book(s, a, None)),
    (
        "booking.preview_confirmation",
        P.APPOINTMENTS_BOOK,
        lambda s, a, c: booking.preview_confirmation(
            s,
            a,
            clinic_id=c.clinic_id,
            provider_name="Dr Test",
            service_names=["Consultation"],
            start_at=AT,
            patient_name="Alex Morgan",
        ),
    ),
    (
        "booking.provider_choices",
        P.APPOINTMENTS_READ,
        lambda s, a, c: booking.provider_choices(s, a, clinic_id=NO, start_at=AT, minutes=30),
    ),
    (
        "booking.next_free_times",
        P.APPOINTMENTS_READ,
        lambda s, a, c: booking.next_free_times(s, a, clinic_id=NO, start_at=AT, service_ids=[NO]),
    ),
    (
        "booking.taken_resources",
        P.APPOINTMENTS_READ,
        lambda s, a, c: booking.taken_resources(s, a, clinic_id=NO, service_ids=[NO], start_at=AT),
    ),
    (
        "moves.reschedule",
        P.APPOINTMENTS_RESCHEDULE,
        lambda s, a, c: moves.reschedule(s, a, NO, start_at=AT),
    ),
    (
        "moves.update_appointment",
        P.APPOINTMENTS_RESCHEDULE,
        lambda s, a, c: moves.update_appointment(s, a, NO, notes="x"),
    ),
    (
        "notes.add_note",
        P.APPOINTMENTS_RESCHEDULE,
        lambda s, a, c: notes.add_note(s, a, NO, "x"),
    ),
    (
        "moves.cancel_appointment",
        P.APPOINTMENTS_CANCEL,
        lambda s, a, c: moves.cancel_appointment(s, a, NO, reason="Ill"),
    ),
    ("visits.check_in", P.APPOINTMENTS_CHECK_IN, lambda s, a, c: visits.check_in(s, a, NO)),
    (
        "visits.undo_check_in",
        P.APPOINTMENTS_CHECK_IN,
        lambda s, a, c: visits.undo_check_in(s, a, NO),
    ),
    ("visits.complete", P.APPOINTMENTS_CHECK_IN, lambda s, a, c: visits.complete(s, a, NO)),
    (
        "visits.mark_no_show",
        P.APPOINTMENTS_CHECK_IN,
        lambda s, a, c: visits.mark_no_show(s, a, NO),
    ),
    (
        "visits.no_show_consequences",
        P.APPOINTMENTS_CHECK_IN,
        lambda s, a, c: visits.no_show_consequences(s, a, NO),
    ),
    ("visits.undo_no_show", P.APPOINTMENTS_CHECK_IN, lambda s, a, c: visits.undo_no_show(s, a, NO)),
    (
        "visits.undo_no_show_preview",
        P.APPOINTMENTS_CHECK_IN,
        lambda s, a, c: visits.undo_no_show_preview(s, a, NO),
    ),
    (
        "checkin.check_in_by_code",
        P.APPOINTMENTS_CHECK_IN,
        lambda s, a, c: checkin.check_in_by_code(s, a, "CDCHK:nothing"),
    ),
    ("checkin.arrival_text", P.APPOINTMENTS_READ, lambda s, a, c: checkin.arrival_text(s, a, NO)),
    (
        "checkin.issue_code_for",
        P.APPOINTMENTS_READ,
        lambda s, a, c: checkin.issue_code_for(s, a, NO),
    ),
    ("calendar.get_frame", P.APPOINTMENTS_READ, lambda s, a, c: calendar.get_frame(s, a, NO)),
    (
        "calendar.window_events",
        P.APPOINTMENTS_READ,
        lambda s, a, c: calendar.window_events(
            s, a, clinic_id=NO, start=AT, end=AT + timedelta(days=7)
        ),
    ),
    (
        "calendar.room_events",
        P.APPOINTMENTS_READ,
        lambda s, a, c: calendar.room_events(s, a, clinic_id=NO, start=AT, end=AT + timedelta(1)),
    ),
    (
        "calendar.inactive_resources",
        P.APPOINTMENTS_READ,
        lambda s, a, c: calendar.inactive_resources(
            s, a, clinic_id=NO, start=AT, end=AT + timedelta(days=1)
        ),
    ),
    ("today.list_today", P.APPOINTMENTS_READ, lambda s, a, c: today.list_today(s, a, NO)),
    ("today.call_list", P.APPOINTMENTS_READ, lambda s, a, c: today.call_list(s, a, NO)),
    ("today.own_day", P.APPOINTMENTS_READ, lambda s, a, c: today.own_day(s, a)),
    (
        "schedules.set_weekly_hours",
        P.SCHEDULES_MANAGE,
        lambda s, a, c: schedules.set_weekly_hours(s, a, provider_id=NO, clinic_id=NO, hours=[]),
    ),
    (
        "schedules.set_week",
        P.SCHEDULES_MANAGE,
        lambda s, a, c: schedules.set_week(s, a, provider_id=NO, clinic_id=NO, days=[]),
    ),
    (
        "schedules.add_time_off",
        P.SCHEDULES_MANAGE,
        lambda s, a, c: schedules.add_time_off(
            s, a, provider_id=NO, starts_at=AT, ends_at=AT + timedelta(days=1)
        ),
    ),
    (
        "schedules.remove_time_off",
        P.SCHEDULES_MANAGE,
        lambda s, a, c: schedules.remove_time_off(s, a, NO),
    ),
    (
        "cover.handle_time_off_visits",
        P.SCHEDULES_MANAGE,
        lambda s, a, c: cover.handle_time_off_visits(s, a, NO, [cover.Handling(NO, "cancel")]),
    ),
    (
        "cover.list_time_off_visits",
        P.APPOINTMENTS_READ,
        lambda s, a, c: cover.list_time_off_visits(s, a, NO),
    ),
    (
        "entries.add_after_cancellation",
        P.WAITLIST_EDIT,
        lambda s, a, c: entries.add_after_cancellation(s, a, NO),
    ),
    ("schedules.get_hours", P.APPOINTMENTS_READ, lambda s, a, c: schedules.get_hours(s, a, NO, NO)),
    (
        "schedules.list_time_off",
        P.APPOINTMENTS_READ,
        lambda s, a, c: schedules.list_time_off(s, a, since=AT),
    ),
    # patients
    (
        "patients.create_patient",
        P.PATIENTS_EDIT,
        lambda s, a, c: patients.create_patient(s, a, first_name="Ann", last_name="Lee"),
    ),
    (
        "patients.update_patient",
        P.PATIENTS_EDIT,
        lambda s, a, c: patients.update_patient(s, a, c.patient_id, first_name="Ann"),
    ),
    (
        "patients.get_patient_record",
        P.PATIENTS_READ,
        lambda s, a, c: patients.get_patient_record(s, a, c.patient_id),
    ),
    (
        "patients.list_patient_appointments",
        P.PATIENTS_READ,
        lambda s, a, c: patients.list_patient_appointments(s, a, c.patient_id),
    ),
    (
        "patients.patient_money",
        P.PATIENTS_READ,
        lambda s, a, c: patients.patient_money(s, a, c.patient_id),
    ),
    (
        "patients.search_patients",
        P.PATIENTS_READ,
        lambda s, a, c: patients.search_patients(s, a, "Morgan"),
    ),
    ("merge.preview_merge", P.PATIENTS_MERGE, lambda s, a, c: merge.preview_merge(s, a, NO, NO)),
    (
        "merge.merge_patients",
        P.PATIENTS_MERGE,
        lambda s, a, c: merge.merge_patients(s, a, NO, NO, "Same person"),
    ),
    (
        "invitations.send_invitation",
        P.INVITATIONS_SEND,
        lambda s, a, c: invitations.send_invitation(s, a, c.patient_id, base_url=BASE),
    ),
    (
        "invitations.send_many",
        P.INVITATIONS_SEND,
        lambda s, a, c: invitations.send_many(s, a, [c.patient_id], base_url=BASE),
    ),
    (
        "invitations.revoke_many",
        P.INVITATIONS_SEND,
        lambda s, a, c: invitations.revoke_many(s, a, [NO], "Wrong address"),
    ),
    (
        "invitations.set_expiry_days",
        P.NOTIFICATIONS_MANAGE,
        lambda s, a, c: invitations.set_expiry_days(s, a, 7),
    ),
    ("enrolment.bulk_preview", P.INVITATIONS_SEND, lambda s, a, c: enrolment.bulk_preview(s, a)),
    (
        "enrolment.enrollment_funnel",
        P.INVITATIONS_SEND,
        lambda s, a, c: enrolment.enrollment_funnel(s, a),
    ),
    ("enrolment.get_overview", P.INVITATIONS_SEND, lambda s, a, c: enrolment.get_overview(s, a)),
    (
        "enrolment.invitation_history",
        P.PATIENTS_READ,
        lambda s, a, c: enrolment.invitation_history(s, a, c.patient_id),
    ),
    # payments and points
    (
        "desk.record_desk_payment",
        P.PAYMENTS_RECORD,
        lambda s, a, c: desk.record_desk_payment(s, a, NO, amount_cents=100, method="cash"),
    ),
    (
        "desk.pay_fee",
        P.PAYMENTS_RECORD,
        lambda s, a, c: desk.pay_fee(s, a, NO, method="cash", provider=DeskProvider()),
    ),
    (
        "desk.charge_fee_on_file",
        P.PAYMENTS_RECORD,
        lambda s, a, c: desk.charge_fee_on_file(c.write, a, NO, provider=DeskProvider()),
    ),
    ("cashup.cash_up", P.PAYMENTS_RECORD, lambda s, a, c: cashup.cash_up(s, a, AT.date())),
    ("cashup.owed_back", P.PAYMENTS_RECORD, lambda s, a, c: cashup.owed_back(s, a, AT.date())),
    ("desk.mark_refunded", P.PAYMENTS_RECORD, lambda s, a, c: desk.mark_refunded(s, a, NO)),
    (
        "desk.refund_payment",
        P.PAYMENTS_RECORD,
        lambda s, a, c: desk.refund_payment(s, a, NO, amount_cents=100, reason="Mistake"),
    ),
    ("desk.summary", P.APPOINTMENTS_READ, lambda s, a, c: desk.summary(s, a, NO)),
    ("desk.waive_fee", P.FEES_WAIVE, lambda s, a, c: desk.waive_fee(s, a, NO, "Kind")),
    (
        "desk.export_payments",
        P.DATA_EXPORT,
        lambda s, a, c: desk.export_payments(s, a, AT.date() - timedelta(days=30), AT.date()),
    ),
    (
        "points.adjust_points",
        P.POINTS_ADJUST,
        lambda s, a, c: points.adjust_points(s, a, c.patient_id, 10, "Goodwill"),
    ),
    (
        "points.points_history",
        P.PATIENTS_READ,
        lambda s, a, c: points.points_history(s, a, c.patient_id),
    ),
    ("rules.save_settings", P.PAYMENTS_MANAGE, lambda s, a, c: rules.save_settings(s, a, None)),
    ("rules.point_values", P.POINTS_ADJUST, lambda s, a, c: rules.point_values(s, a)),
    ("rules.service_lines", P.POINTS_ADJUST, lambda s, a, c: rules.service_lines(s, a)),
    # waitlist
    ("entries.add_entry", P.WAITLIST_EDIT, lambda s, a, c: entries.add_entry(s, a, None)),
    (
        "entries.add_from_request",
        P.WAITLIST_EDIT,
        lambda s, a, c: entries.add_from_request(s, a, NO),
    ),
    ("entries.withdraw", P.WAITLIST_EDIT, lambda s, a, c: entries.withdraw(s, a, NO)),
    (
        "entries.list_entries",
        P.PATIENTS_READ,
        lambda s, a, c: entries.list_entries(s, a, clinic_id=c.clinic_id),
    ),
    (
        "entries.count_entries",
        P.PATIENTS_READ,
        lambda s, a, c: entries.count_entries(s, a, clinic_id=c.clinic_id),
    ),
    (
        "entries.reach_warning",
        P.PATIENTS_READ,
        lambda s, a, c: entries.reach_warning(s, a, NO),
    ),
    (
        "offers.list_offers",
        P.WAITLIST_OFFER,
        lambda s, a, c: offers.list_offers(s, a, clinic_id=c.clinic_id),
    ),
    (
        "offers.offer_freed",
        P.WAITLIST_OFFER,
        lambda s, a, c: offers.offer_freed(s, a, NO, base_url=BASE),
    ),
    (
        "offers.offer_slot",
        P.WAITLIST_OFFER,
        lambda s, a, c: offers.offer_slot(
            s,
            a,
            clinic_id=NO,
            provider_id=NO,
            start_at=AT,
            end_at=AT + timedelta(minutes=30),
            base_url=BASE,
        ),
    ),
    (
        "offers.refill_figures",
        P.ANALYTICS_READ,
        lambda s, a, c: offers.refill_figures(
            s, a, clinic_id=None, first=AT.date() - timedelta(days=30), last=AT.date()
        ),
    ),
    (
        "waitlist_rules.set_rules",
        P.WAITLIST_OFFER,
        lambda s, a, c: waitlist_rules.set_rules(s, a, waitlist_rules.Rules()),
    ),
    # practice set-up
    (
        "travel.get_travel_minutes",
        P.PRACTICE_READ,
        lambda s, a, c: travel.get_travel_minutes(s, a),
    ),
    (
        "travel.set_travel_minutes",
        P.TRAVEL_TIME_SET,
        lambda s, a, c: travel.set_travel_minutes(s, a, 15),
    ),
    ("setup.save_clinic", P.PRACTICE_MANAGE, lambda s, a, c: setup.save_clinic(s, a, None)),
    ("setup.save_provider", P.PRACTICE_MANAGE, lambda s, a, c: setup.save_provider(s, a, None)),
    ("setup.save_service", P.PRACTICE_MANAGE, lambda s, a, c: setup.save_service(s, a, None)),
    ("setup.save_package", P.PRACTICE_MANAGE, lambda s, a, c: setup.save_package(s, a, None)),
    ("setup.save_resource", P.PRACTICE_MANAGE, lambda s, a, c: setup.save_resource(s, a, None)),
    (
        "setup.set_active",
        P.PRACTICE_MANAGE,
        lambda s, a, c: setup.set_active(s, a, "provider", c.provider_id, False),
    ),
    (  # the background jobs failing now (the Practice set-up page, the banner)
        "job_health.failing_jobs",
        P.PRACTICE_MANAGE,
        lambda s, a, c: job_health.failing_jobs(s, a),
    ),
    (
        "setup.deactivation_warning",
        P.PRACTICE_READ,
        lambda s, a, c: setup.deactivation_warning(s, a, "provider", c.provider_id),
    ),
    (  # what a new time zone does to the clinic's visits (the clinic page asks with it)
        "setup.zone_change_warning",
        P.PRACTICE_READ,
        lambda s, a, c: setup.zone_change_warning(s, a, c.clinic_id, "America/New_York"),
    ),
    (  # what a new zone or currency does to the clinic's visits and fees (the clinic page)
        "setup.clinic_change_warning",
        P.PRACTICE_READ,
        lambda s, a, c: setup.clinic_change_warning(s, a, c.clinic_id, "UTC", "en-GB", "EUR"),
    ),
    (  # what a new price, length or room does to the visits booked (the services page)
        "setup.service_change_warning",
        P.PRACTICE_READ,
        lambda s, a, c: setup.service_change_warning(
            s, a, c.service_id, setup.ServiceData("Consultation", 45)
        ),
    ),
    (  # what a lower quantity does to the visits booked holding the room (the clinics page)
        "setup.resource_change_warning",
        P.PRACTICE_READ,
        lambda s, a, c: setup.resource_change_warning(
            s, a, 1, setup.ResourceData(c.clinic_id, "Laser")
        ),
    ),
    (  # what a new price does to the visits booked as the package (the packages page)
        "setup.package_change_warning",
        P.PRACTICE_READ,
        lambda s, a, c: setup.package_change_warning(s, a, 1, setup.PackageData("Glow")),
    ),
    (
        "documents.save_document",
        P.PRACTICE_MANAGE,
        lambda s, a, c: documents.save_document(s, a, c.service_id, "instructions", "Before"),
    ),
    (
        "documents.list_documents",
        P.PRACTICE_READ,
        lambda s, a, c: documents.list_documents(s, a, c.service_id),
    ),
    ("reads.overview", P.PRACTICE_READ, lambda s, a, c: reads.overview(s, a)),
    ("checklist.checklist", P.PRACTICE_READ, lambda s, a, c: checklist.checklist(s, a)),
    ("choices.list_choices", P.APPOINTMENTS_READ, lambda s, a, c: choices.list_choices(s, a)),
    # messaging and the patient-facing channels staff work
    (
        "notify.list_outbox",
        P.NOTIFICATIONS_READ,
        lambda s, a, c: notify.list_outbox(s, a),
    ),
    ("notify.outbox_counts", P.NOTIFICATIONS_READ, lambda s, a, c: notify.outbox_counts(s, a)),
    ("notify.retry", P.NOTIFICATIONS_MANAGE, lambda s, a, c: notify.retry(s, a, NO)),
    (
        "notify.save_template",
        P.NOTIFICATIONS_MANAGE,
        lambda s, a, c: notify.save_template(s, a, "request_received", "Hi", "Hello"),
    ),
    (
        "notify.reset_template",
        P.NOTIFICATIONS_MANAGE,
        lambda s, a, c: notify.reset_template(s, a, "request_received"),
    ),
    (
        "preferences.save_preferences",
        P.NOTIFICATIONS_MANAGE,
        lambda s, a, c: preferences.save_preferences(s, a, c.clinic_id, None),
    ),
    ("history.messages_of", P.NOTIFICATIONS_READ, lambda s, a, c: history.messages_of(s, a, NO)),
    (
        "history.messages_of_patient",
        P.NOTIFICATIONS_READ,
        lambda s, a, c: history.messages_of_patient(s, a, c.patient_id),
    ),
    (
        "delivery.deliver_now",
        P.NOTIFICATIONS_MANAGE,
        lambda s, a, c: delivery.deliver_now(c.write, a, c.settings),
    ),
    (
        "send_test_message",
        P.PRACTICE_MANAGE,
        lambda s, a, c: send_test_message(c.write, a, c.settings, "email", "ann@example.org"),
    ),
    (
        "patient_links.issue_booking_link",
        P.NOTIFICATIONS_MANAGE,
        lambda s, a, c: patient_links.issue_booking_link(s, a, c.clinic_id, base_url=BASE),
    ),
    ("replies.list_replies", P.NOTIFICATIONS_READ, lambda s, a, c: replies.list_replies(s, a)),
    ("replies.mark_handled", P.NOTIFICATIONS_READ, lambda s, a, c: replies.mark_handled(s, a, NO)),
    # accounts and the audit log
    (
        "accounts.create_user",
        P.USERS_MANAGE,
        lambda s, a, c: accounts.create_user(
            s, a, "newbie", "New Bie", Role.OWNER, "correct horse battery staple"
        ),
    ),
    ("accounts.list_users", P.USERS_MANAGE, lambda s, a, c: accounts.list_users(s, a)),
    (
        "accounts.set_active",
        P.USERS_MANAGE,
        lambda s, a, c: accounts.set_active(s, a, c.owner.user_id, False),
    ),
    (
        "accounts.change_role",
        P.USERS_MANAGE,
        lambda s, a, c: accounts.change_role(s, a, c.owner.user_id, Role.STAFF),
    ),
    ("accounts.unlock", P.USERS_MANAGE, lambda s, a, c: accounts.unlock(s, a, c.owner.user_id)),
    (
        "accounts.reset_password",
        P.USERS_MANAGE,
        lambda s, a, c: accounts.reset_password(s, a, c.owner.user_id, "a new long passphrase 42"),
    ),
    ("audit.list_events", P.AUDIT_READ, lambda s, a, c: audit.list_events(s, a)),
    ("audit.list_log", P.AUDIT_READ, lambda s, a, c: audit.list_log(s, a)),
    ("audit.list_actions", P.AUDIT_READ, lambda s, a, c: audit.list_actions(s, a)),
    # import and export
    (
        "imports.import_appointments",
        P.DATA_IMPORT,
        lambda s, a, c: imports.import_appointments(
            c.write, a, b"PatientId\n1\n", imports.AppointmentMapping({})
        ),
    ),
    (
        "imports.import_surveys",
        P.DATA_IMPORT,
        lambda s, a, c: imports.import_surveys(s, a, b"x\n1\n", imports.SurveyMapping({})),
    ),
    ("standards.import_fhir", P.DATA_IMPORT, lambda s, a, c: standards.import_fhir(s, a, [])),
    ("standards.export_fhir", P.DATA_EXPORT, lambda s, a, c: standards.export_fhir(s, a)),
    (
        "standards.export_ical",
        P.DATA_EXPORT,
        lambda s, a, c: standards.export_ical(s, a, c.provider_id),
    ),
    (
        "patient_export.export_patient",
        P.DATA_EXPORT,
        lambda s, a, c: patient_export.export_patient(s, a, c.patient_id),
    ),
    (
        "exports.record_export",
        P.DATA_EXPORT,
        lambda s, a, c: exports.record_export(s, a, "risk_scores", 1),
    ),
    (
        "practice_file.export_practice",
        P.PRACTICE_READ,
        lambda s, a, c: practice_file.export_practice(s, a),
    ),
    (
        "practice_file.import_practice",
        P.PRACTICE_MANAGE,
        lambda s, a, c: practice_file.import_practice(s, a, 'format = 1\n[[clinics]]\nname = "X"'),
    ),
    # feedback, forms, policy (their own packages' services, called from the pages)
    (
        "surveys.request_feedback",
        P.FEEDBACK_REQUEST,
        lambda s, a, c: surveys.request_feedback(s, a, NO, base_url=BASE),
    ),
    (
        "surveys.save_survey_settings",
        P.SURVEYS_MANAGE,
        lambda s, a, c: surveys.save_survey_settings(
            s, a, auto=True, delay_hours=2, questions=["How was it?"]
        ),
    ),
    ("surveys.get_feedback", P.APPOINTMENTS_READ, lambda s, a, c: surveys.get_feedback(s, a, NO)),
    ("after_booking.resend", P.APPOINTMENTS_BOOK, lambda s, a, c: after_booking.resend(s, a, NO)),
    ("form_records.forms_of", P.APPOINTMENTS_READ, lambda s, a, c: form_records.forms_of(s, a, NO)),
    (
        "form_records.form_summaries",
        P.APPOINTMENTS_READ,
        lambda s, a, c: form_records.form_summaries(s, a, [NO]),
    ),
    (
        "form_records.read_answers",
        P.PATIENTS_READ,
        lambda s, a, c: form_records.read_answers(s, a, NO),
    ),
    (
        "cancellation.save_policy",
        P.POLICY_MANAGE,
        lambda s, a, c: cancellation.save_policy(
            s,
            a,
            clinic_id=c.clinic_id,
            window_hours=24,
            late_cancel_fee_cents=0,
            no_show_fee_cents=0,
            points_deducted=0,
            inside_window_needs_approval=False,
            outside_window_auto_accept=True,
            online_cancel_allowed=True,
            max_reschedules=2,
            policy_text="",
        ),
    ),
    (  # what a new version does to the visits booked (the policy page asks with it)
        "cancellation.change_effects",
        P.POLICY_MANAGE,
        lambda s, a, c: cancellation.change_effects(
            s,
            a,
            clinic_id=c.clinic_id,
            window_hours=24,
            late_cancel_fee_cents=0,
            no_show_fee_cents=0,
            points_deducted=0,
            online_cancel_allowed=True,
            max_reschedules=2,
        ),
    ),
    (
        "cancellation.list_policy_versions",
        P.POLICY_MANAGE,
        lambda s, a, c: cancellation.list_policy_versions(s, a, c.clinic_id),
    ),
    ("cancellation.list_fees", P.FEES_WAIVE, lambda s, a, c: cancellation.list_fees(s, a)),
    # analytics and the risk model
    (
        "cancellations.compute_figures",
        P.ANALYTICS_READ,
        lambda s, a, c: cancellations.compute_figures(s, a, None),
    ),
    (
        "cancellations.export_csv",
        P.ANALYTICS_READ,
        lambda s, a, c: cancellations.export_csv(s, a, MONTH),
    ),
    (
        "survey_export.export_csv",
        P.ANALYTICS_READ,
        lambda s, a, c: survey_export.export_csv(s, a, None),
    ),
    (
        "survey_analytics.summary",
        P.ANALYTICS_READ,
        lambda s, a, c: survey_analytics.summary(s, a, None),
    ),
    (
        "survey_analytics.comments",
        P.ANALYTICS_READ,
        lambda s, a, c: survey_analytics.comments(s, a, None),
    ),
    (
        "survey_analytics.recent_detractors",
        P.ANALYTICS_READ,
        lambda s, a, c: survey_analytics.recent_detractors(s, a),
    ),
    (
        "breakdowns.rates_by",
        P.ANALYTICS_READ,
        lambda s, a, c: breakdowns.rates_by(s, a, None, "provider"),
    ),
    (
        "breakdowns.appointments_behind",
        P.ANALYTICS_READ,
        lambda s, a, c: breakdowns.appointments_behind(s, a, None, "provider", NO),
    ),
    (
        "confirmations.confirmation_rate",
        P.ANALYTICS_READ,
        lambda s, a, c: confirmations.confirmation_rate(s, a, date(2030, 1, 1), date(2030, 1, 31)),
    ),
    ("risk_model.learn", P.RISK_MANAGE, lambda s, a, c: risk_model.learn(s, a)),
    (
        "risk_model.score",
        P.ANALYTICS_READ,
        lambda s, a, c: risk_model.score(s, a, since=date(2030, 1, 1)),
    ),
    (
        "risk_scores.get_model_info",
        P.ANALYTICS_READ,
        lambda s, a, c: risk_scores.get_model_info(s, a),
    ),
    ("risk_scores.readiness", P.APPOINTMENTS_READ, lambda s, a, c: risk_scores.readiness(s, a)),
    (
        "risk_scores.call_list",
        P.APPOINTMENTS_READ,
        lambda s, a, c: risk_scores.call_list(s, a, clinic_id=c.clinic_id),
    ),
    (
        "stats.figures",
        P.ANALYTICS_READ,
        lambda s, a, c: stats.figures(s, a, since=MONTH.start, until=MONTH.end),
    ),
    (  # without dates it reads the appointments' range: only once allowed
        "stats.figures (its whole range)",
        P.ANALYTICS_READ,
        lambda s, a, c: stats.figures(s, a),
    ),
]


SURVEYS = P.ANALYTICS_READ
SERVICES += [
    # found by the walk below (test_every_service_that_takes_an_actor_is_in_the_table)
    ("queue.list_queue", P.QUEUE_WORK, lambda s, a, c: queue.list_queue(s, a, "requests")),
    ("queue.queue_counts", P.QUEUE_WORK, lambda s, a, c: queue.queue_counts(s, a)),
    (
        "decisions.respond_to_proposal",
        P.REQUESTS_DECIDE,
        lambda s, a, c: decisions.respond_to_proposal(s, a, NO, accept=True, expected_version=1),
    ),
    (
        "appointments.get_appointment_detail",
        P.APPOINTMENTS_READ,
        lambda s, a, c: appointments.get_appointment_detail(s, a, NO),
    ),
    (
        "schedules.bookings_during",
        P.APPOINTMENTS_READ,
        lambda s, a, c: schedules.bookings_during(s, a, NO, AT, AT + timedelta(days=1)),
    ),
    (
        "schedules.bookings_in_time_off",
        P.APPOINTMENTS_READ,
        lambda s, a, c: schedules.bookings_in_time_off(s, a, NO, AT, AT + timedelta(days=1)),
    ),
    (
        "schedules.bookings_outside_hours",
        P.APPOINTMENTS_READ,
        lambda s, a, c: schedules.bookings_outside_hours(s, a, NO, NO),
    ),
    (
        "schedules.first_working_day",
        P.APPOINTMENTS_READ,
        lambda s, a, c: schedules.first_working_day(s, a, NO, AT.date()),
    ),
    (
        "visits.undo_no_show_consequences",
        P.APPOINTMENTS_CHECK_IN,
        lambda s, a, c: visits.undo_no_show_consequences(s, a, NO),
    ),
    (
        "patients.portal_status",
        P.PATIENTS_READ,
        lambda s, a, c: patients.portal_status(s, a, c.patient_id),
    ),
    (
        "invitations.get_portal_state",
        P.PATIENTS_READ,
        lambda s, a, c: invitations.get_portal_state(s, a, c.patient_id),
    ),
    (
        "invitations.revoke_invitation",
        P.INVITATIONS_SEND,
        lambda s, a, c: invitations.revoke_invitation(s, a, NO),
    ),
    (
        "invitations.revoke_pending_for_patient",
        P.PATIENTS_EDIT,
        lambda s, a, c: invitations.revoke_pending_for_patient(s, a, c.patient_id, "Moved"),
    ),
    (
        "invitations.revoke_for_contact_change",
        P.PATIENTS_EDIT,
        lambda s, a, c: invitations.revoke_for_contact_change(
            s, a, s.get(Patient, c.patient_id), ["phone"]
        ),
    ),
    (
        "enrolment.list_invitations",
        P.INVITATIONS_SEND,
        lambda s, a, c: enrolment.list_invitations(s, a),
    ),
    ("enrolment.status_counts", P.INVITATIONS_SEND, lambda s, a, c: enrolment.status_counts(s, a)),
    ("desk.unpaid_fees", P.APPOINTMENTS_READ, lambda s, a, c: desk.unpaid_fees(s, a, NO)),
    ("prepay.list_payments", P.APPOINTMENTS_READ, lambda s, a, c: prepay.list_payments(s, a, NO)),
    (
        "cancellation.get_policy",
        P.POLICY_MANAGE,
        lambda s, a, c: cancellation.get_policy(s, a, c.clinic_id),
    ),
    ("backups.last_backup", P.USERS_MANAGE, lambda s, a, c: backups.last_backup(s, a)),
    ("backups.watched_since", P.USERS_MANAGE, lambda s, a, c: backups.watched_since(s, a)),
    ("backups.record_restore", P.USERS_MANAGE, lambda s, a, c: backups.record_restore(s, a, None)),
    (
        "backups.take_backup",
        P.USERS_MANAGE,
        lambda s, a, c: backups.take_backup(None, a, c.settings.data_dir / "b.db"),
    ),
    (
        "practice_file.practice_data",
        P.PRACTICE_READ,
        lambda s, a, c: practice_file.practice_data(s, a),
    ),
    (
        "imports.preview_appointments",
        P.DATA_IMPORT,
        lambda s, a, c: imports.preview_appointments(
            s, a, b"PatientId\n1\n", imports.AppointmentMapping({})
        ),
    ),
    (
        "survey_analytics.get_dashboard",
        SURVEYS,
        lambda s, a, c: survey_analytics.get_dashboard(s, a, None),
    ),
    (
        "survey_analytics.get_groups",
        SURVEYS,
        lambda s, a, c: survey_analytics.get_groups(s, a, None),
    ),
    (
        "survey_analytics.get_trends",
        SURVEYS,
        lambda s, a, c: survey_analytics.get_trends(s, a, None),
    ),
    ("survey_analytics.trend", SURVEYS, lambda s, a, c: survey_analytics.trend(s, a, None, "week")),
    (
        "survey_analytics.by_group",
        SURVEYS,
        lambda s, a, c: survey_analytics.by_group(s, a, None, "provider"),
    ),
    ("breakdowns.distribution", SURVEYS, lambda s, a, c: breakdowns.distribution(s, a, None)),
    (
        "breakdowns.responses_behind",
        SURVEYS,
        lambda s, a, c: breakdowns.responses_behind(s, a, None, "provider", NO),
    ),
    ("risk_jobs.fit_running", P.ANALYTICS_READ, lambda s, a, c: risk_jobs.fit_running(s, a)),
    (
        "risk_jobs.train_now",
        P.RISK_MANAGE,
        lambda s, a, c: risk_jobs.train_now(c.write, a, c.settings),
    ),
    ("survey_analytics.funnel", SURVEYS, lambda s, a, c: survey_analytics.funnel(s, a, None)),
    ("patients.get_patient", P.PATIENTS_READ, lambda s, a, c: patients.get_patient(s, a, NO)),
    (
        "cancellation.waive_fee",
        P.FEES_WAIVE,
        lambda s, a, c: cancellation.waive_fee(s, a, NO, "Kind"),
    ),
    (
        "cancellation.preview",
        P.POLICY_MANAGE,
        lambda s, a, c: cancellation.preview(s, a, c.clinic_id, None, 5),
    ),
    ("risk_model.save", P.RISK_MANAGE, lambda s, a, c: risk_model.save(s, a, None)),
    (
        "risk_scores.record_call",
        P.APPOINTMENTS_READ,
        lambda s, a, c: risk_scores.record_call(s, a, NO, "reached"),
    ),
    (
        "risk_scores.overbooking_suggestions",
        P.APPOINTMENTS_READ,
        lambda s, a, c: risk_scores.overbooking_suggestions(
            s, a, clinic_id=NO, start=AT, end=AT + timedelta(days=1)
        ),
    ),
    ("risk_model.upcoming", P.RISK_MANAGE, lambda s, a, c: risk_model.upcoming(s, a)),
    (
        "risk_model.store_scores",
        P.RISK_MANAGE,
        lambda s, a, c: risk_model.store_scores(s, a, NO, []),
    ),
    ("risk_scores.risk_of", P.APPOINTMENTS_READ, lambda s, a, c: risk_scores.risk_of(s, a, [NO])),
]

# Public functions of core that take an actor but are no service of their own: each is called
# only by a service that checked the permission first (or, for a patient, verified the link),
# with the reason. A new one that is neither here nor in SERVICES fails the walk below.
NOT_A_SERVICE = {
    "core.interchange.import_batches.batch": "imports.import_appointments checks DATA_IMPORT",
    "core.interchange.import_batches.finish": "imports.import_appointments checks DATA_IMPORT",
    "core.kernel.accounts.change_own_password": "the actor's own account, current password first",
    "core.kernel.accounts.insert_user": "the command line and the demo, never a page",
    "core.messaging.reminders.record_confirmation": "a verified reminder link or text reply",
    "core.patients.invitations.mark_enrolled": "the verified enrolment link",
    "core.payments.desk.refund_fees": "visits.undo_no_show checks APPOINTMENTS_CHECK_IN",
    "core.payments.prepay.settle_on_cancel": "the cancellation that called it checked",
    "core.policy.cancellation.reverse_no_show": "visits.undo_no_show checks APPOINTMENTS_CHECK_IN",
    "core.requests.changes.request_change": "a patient's verified link (every role may record one)",
    "core.requests.decisions.request_appointment": "a patient's verified link or portal session",
    "core.requests.decisions.withdraw_request": "the portal, which checked the request is theirs",
    "core.scheduling.lifecycle.withdraw_changes": "the life-cycle service that called it checked",
    "core.scheduling.moves.schedule_appointment": "booking.book checks APPOINTMENTS_BOOK",
    "core.scheduling.notes.append_note": "the booking, request or update that called it checked",
    "core.scheduling.states.allowed_actions": "which buttons to show: reveals nothing",
    "core.scheduling.states.ensure_allowed": "the check itself",
    "core.kernel.authz.ensure": "the check itself",
    "core.kernel.audit.record": "writes the audit event of the service that called it",
    "core.scheduling.lifecycle.record": "writes the audit event of the service that called it",
    "core.scheduling.moves.move": "moves.reschedule and the change decisions check first",
    "core.scheduling.moves.cancel": "moves.cancel_appointment and the decisions check first",
    "core.analytics.risk_model.store_upcoming": "risk_model.upcoming checks RISK_MANAGE",
    # checks nothing itself: only the command line's fit (risk_jobs.train_now checks RISK_MANAGE
    # before starting it) and the jobs call it, as the system
    "core.analytics.risk_model.train": "the fit in its child process, as the system",
}


def _takes_an_actor(function) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == "actor" or "Actor" in str(p.annotation) for p in parameters)


def public_functions_taking_an_actor() -> list[str]:
    """Every public function defined in a module of core with an `actor` parameter."""
    found = []
    for info in pkgutil.walk_packages(core.__path__, "core."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            if value.__module__ == module.__name__ and _takes_an_actor(value):
                found.append(f"{info.name}.{name}")
    return found


def _full_name(name: str) -> str:
    """'patients.create_patient' (this module's alias) → 'core.patients.records.create_patient'."""
    name = name.split(" ")[0]
    if "." not in name:  # imported on its own
        return f"{globals()[name].__module__}.{name}"
    alias, function = name.split(".")
    return f"{globals()[alias].__name__}.{function}"


def test_every_service_that_takes_an_actor_is_in_the_table():
    """A service a page may call is checked here as every wrong role; the walk finds them all,
    so a new one cannot be forgotten (it goes into SERVICES, or NOT_A_SERVICE with a reason)."""
    called = {_full_name(name) for name, _, _ in SERVICES}
    missing = [
        full
        for full in public_functions_taking_an_actor()
        if full not in NOT_A_SERVICE and full not in called
    ]
    assert missing == []


# a patient answers a proposal through its link, which the caller verified: only staff without
# the permission are refused
PATIENT_PATHS = {"decisions.respond_to_proposal"}


def denied(world, permission: Permission, name: str = "") -> list:
    """The actors that must be refused: each role without `permission`, and a patient."""
    by_role = {Role.OWNER: world.owner, Role.MANAGER: world.manager, Role.STAFF: world.staff}
    patient = [] if name in PATIENT_PATHS else [patient_actor("Alex Morgan", "portal")]
    return [by_role[r] for r in Role if permission not in MATRIX[r]] + patient


class Context:
    """The world's ids and users, plus what a service that opens its own transactions takes."""

    def __init__(self, db, world, tmp_path) -> None:
        self.__dict__.update(vars(world))
        self.write = db.write
        self.settings = load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "x")


def test_the_table_names_every_service_once():
    names = [name for name, _, _ in SERVICES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("name", "permission", "call"), SERVICES, ids=[name for name, _, _ in SERVICES]
)
def test_a_service_refuses_whoever_may_not_use_it(db, world, tmp_path, name, permission, call):
    context = Context(db, world, tmp_path)
    for actor in denied(world, permission, name):
        with pytest.raises(PermissionDenied), db.write() as session:
            call(session, actor, context)


def test_every_function_said_to_be_no_service_exists():
    """NOT_A_SERVICE names no function that is gone (a renamed one would go unchecked)."""
    assert sorted(set(NOT_A_SERVICE) - set(public_functions_taking_an_actor())) == []
