"""Notifications: the outbox (written in the caller's transaction), templates, and the sender.

Consent is per patient and channel. Appointment messages go to every channel the patient has
an address and consent for, whether or not reminders are switched on; invitations and marketing
are never sent without consent, and the caller is told why.

A text message is never cut inside a link. A template that carries links has a short text form
of its own (`Template.sms`), used unless staff edited the template or replaced the message's
text; any other text is the subject and the flattened email, and the length guard (`fit_text`)
cuts only prose after the last link, so a link always arrives whole. Where what comes before the
link is too long (a long clinic name and address, a first name outside the GSM alphabet), the
names and places filled in are cut, the longest first, to one common length marked with "."
(`SHORTENED`, `shorten`): the longest that keeps the text within three parts, or, where the
wording and links alone need more, within the fewest they need. A link, a time and what staff
wrote are never cut there. So that every built-in text form fits three UCS-2 parts (201
characters) under a public address of up to 45 characters (a real clinic's is 30 to 45; the
default is 21), the text forms say less than the email around their link: the reminder's carries
its confirm link alone, whose page offers to ask to cancel or move the visit too (the email
carries all three), and the survey's line is short ("How was it? Tell us in two minutes:", in
the thank-you too). Measured with the names cut and times as long as "Tue 01 Dec 2026, 09:30".
Times as the callers write them, with their zone (en-GB "Tue, 1 Dec 2026, 09:30 (GMT)"), fit at
45 too (the longest by a shorter wording, below); the waitlist offer's deadline is its clock
time alone on the day it is sent (core.waitlist.offers), one a day later in full fits up to
about 34. A time written longer (el-GR 'Τετ 10 Ιουν 2026, 3:30 μ.μ. (EEST)', pt-BR 'sáb., 10 de
jan. de 2026 09:30 (-03)', 36 characters; en-GB's own September days in summer time, 30) left
the reminder, the thank-you and one form's text (in pt-BR the proposal too) no room at 45: their
wording, time and link alone went in four parts. Six text forms have a shorter one
(`Template.sms_short`: the provider left to the link's page; the reminder's link, whose page
confirms, cancels and moves, named for all three, a reply C or X read all the same), sent where
the first would cut the names below ROOMY characters or go past three parts; so each built-in
text fits three at 45 with these locales' longest time of a year, naming the clinic (its first
letters at least), the time and the link whole. Forms to complete with two or more forms go in a
text as one link to the visit's list of them (core.forms.after_booking fills {forms} so for the
text; the email has a link for each). What still goes past three parts in UCS-2: an edited
template's text, the flattened email with every link it keeps (the reminder's three).

A text costs what its parts cost (core.messaging.sms_parts): three parts are 459 characters in
the GSM alphabet but 201 in UCS-2, which one character outside it (ł, an emoji, a curly quote)
brings. The guard counts parts, not characters, and cuts with " ..." (GSM); the template's own
wording goes with its curly quotes, dashes, "…" and no-break spaces as their GSM equivalents,
the values filled in with plain spaces for no-break ones and hyphens for dashes (a time of day's
hours, a time's range: one en dash sent the whole text in UCS-2); letters, and what staff typed
in place of a message, are sent as they are (the template's and the values' letters composed: an
"e" and a separate accent go as "é", in the GSM alphabet, sms_parts.composed).
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import ARRAY, Integer, and_, any_, bindparam, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.config import DEFAULT_BASE_URL
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import ClinicFormat, clinic_format, clinic_time, format_money
from core.kernel.phones import bare_phone, dialled, practice_regions, stored_forms
from core.kernel.text import clean, plain_words
from core.messaging import attachments, delivery, recipients, sms_parts, visit_calendar
from core.messaging.delivery import MAX_ATTEMPTS
from core.messaging.recipients import channels_for
from db.models import (
    Appointment,
    Channel,
    DeliveryStatus,
    Notification,
    NotificationTemplate,
    Patient,
    StopKind,
    User,
    address_key,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.notify")


@dataclass(frozen=True)
class Template:
    subject: str
    body: str
    description: str
    sms: str = ""  # the short text-message form of a template with links ("" = the email's)
    # shorter still, for a time written long (el-GR, pt-BR) under a long address: saying less
    # around the clinic, the time and the link, it is sent where `sms` would leave the names too
    # little room (render_sms); "" = `sms` always
    sms_short: str = ""
    # its name on the screen where the key read as words reads badly ("" = the key's words)
    title: str = ""


_SIGN = "\n\n{clinic_name}\n{clinic_phone}"
CHANNEL_WORDS = {Channel.EMAIL: "email", Channel.SMS: "text message"}  # a channel, for the screen
# the messages that say when a visit is, or that it is off: their email carries the visit's
# calendar file (core.messaging.visit_calendar), so the patient's calendar follows the visit
CALENDAR_FILE = frozenset(
    {
        "appointment_scheduled",
        "appointment_rescheduled",
        "appointment_updated",
        "appointment_cancelled",
    }
)
TEMPLATES: dict[str, Template] = {
    "request_received": Template(
        "We received your appointment request",
        "Dear {patient_name},\n\nThank you for your request for {service_name} on {when}. "
        "We will confirm a time shortly.{message}" + _SIGN,
        "A booking request arrived (online or by phone).",
    ),
    "appointment_scheduled": Template(
        "Your appointment on {when} is confirmed",
        "Dear {patient_name},\n\nYour appointment for {service_name} with {provider_name} is "
        "confirmed for {when} at {where}.{message}\n\nShow the attached QR code at the "
        "desk to check in.\n\nTo cancel or reschedule: {link}" + _SIGN,
        "A request was approved or an appointment booked.",
        # short, as the text forms below: with names outside the GSM alphabet (UCS-2, 201
        # characters in three parts) and the link of a 45-character public address
        "{clinic_name}: {service_name} with {provider_name} on {when} is confirmed. To cancel "
        "or move it: {link}{message}",
        "{clinic_name}: {service_name} on {when} is confirmed. To cancel or move it: "
        "{link}{message}",
    ),
    "appointment_declined": Template(
        "About your appointment request",
        "Dear {patient_name},\n\nWe are sorry: we cannot offer the appointment you asked for "
        "({service_name}, {when}).\nReason: {reason}{message}" + _SIGN,
        "A request was declined.",
        # text forms: the email flattened ran past three parts with a time of day in the
        # clinic's words, and the reason typed by the practice was cut
        "{clinic_name}: sorry, we cannot offer {service_name} on {when}. Reason: {reason}{message}",
        "{clinic_name}: sorry, we cannot offer the time asked for ({when}). Reason: "
        "{reason}{message}",
    ),
    "appointment_proposed": Template(
        "We propose {when} for your appointment",
        "Dear {patient_name},\n\nWe can offer {service_name} with {provider_name} on {when} "
        "at {where}.{message}\n\nPlease accept or decline here: {link}" + _SIGN,
        "The practice proposed another time; the patient answers through the link.",
        "{clinic_name}: we can offer {service_name} with {provider_name} on {when}. Accept or "
        "decline here: {link}{message}",
        "{clinic_name} offers {service_name} on {when}. Accept or decline: {link}{message}",
    ),
    "appointment_rescheduled": Template(
        "Your appointment has moved to {when}",
        "Dear {patient_name},\n\nYour appointment for {service_name} with {provider_name} is "
        "now on {when} (was {previous_when}).{message}" + _SIGN,
        "An appointment was moved.",
    ),
    "appointment_updated": Template(
        "Your appointment has been updated",
        "Dear {patient_name},\n\nYour appointment for {service_name} is now on {when} with "
        "{provider_name}.{message}" + _SIGN,
        "An appointment was changed without the patient's approval.",
    ),
    "appointment_cancelled": Template(
        "Your appointment on {when} is cancelled",
        "Dear {patient_name},\n\nYour appointment for {service_name} on {when} is cancelled.\n"
        "Reason: {reason}{fee}{message}" + _SIGN,
        "An appointment was cancelled.",
    ),
    "appointment_no_show": Template(
        "We missed you on {when}",
        "Dear {patient_name},\n\nWe missed you at your appointment for {service_name} on "
        "{when}. Please contact us to book a new time.{fee}{message}" + _SIGN,
        "An appointment was recorded as a no-show.",
        title="Appointment no-show",
    ),
    "appointment_no_show_withdrawn": Template(
        "Please disregard our message: you were not a no-show on {when}",
        "Dear {patient_name},\n\nWe wrote that you missed your appointment for {service_name} "
        "on {when}. That was our mistake, and we are sorry: please disregard that message."
        "{fee}{message}" + _SIGN,
        "A no-show recorded by mistake was undone (only to a patient told of the no-show).",
        "{clinic_name}: sorry, our message that you missed {service_name} on {when} was a "
        "mistake; please disregard it.{fee}{message}",
        title="No-show withdrawn",
    ),
    "change_request_denied": Template(
        "About your request to change your appointment",
        "Dear {patient_name},\n\nWe could not make the change you asked for. Your appointment "
        "stays on {when}.\nReason: {reason}{message}" + _SIGN,
        "A reschedule or cancellation request was denied.",
    ),
    "proposal_lapsed": Template(
        "The time we proposed is no longer held",
        "Dear {patient_name},\n\nWe did not hear back about {proposed_when} for {service_name}, "
        "so that time is no longer held for you. Your request stays with us: we will be in "
        "touch with another time.{message}" + _SIGN,
        "A proposed time lapsed unanswered; the request went back to the queue.",
        "{clinic_name}: we did not hear back about {proposed_when}, so that time is no longer "
        "held. Your request stays with us: we will be in touch with another time.",
    ),
    "proposal_answered": Template(
        "Proposal {answer} by {patient_name}",
        "{patient_name} {answer} the proposed time {when}.\n\nOpen it: {link}",
        "Tells the clinic that a patient answered a proposal.",
    ),
    "portal_invitation": Template(
        "Your invitation to the {clinic_name} patient portal",
        "Dear {patient_name},\n\nYou are invited to the {clinic_name} patient portal. "
        "Enrol here (the link works once and expires on {expires}): {link}" + _SIGN,
        "A portal invitation.",
        # named: a family's phone gets one for each of them. Short, so a name outside the GSM
        # alphabet (its letters kept, the text in UCS-2) still goes in three parts
        "{clinic_name}: {first_name}, join our patient portal here (works once, until "
        "{expires}): {link}",
    ),
    "feedback_request": Template(
        "How was your visit to {clinic_name}?",
        "Dear {patient_name},\n\nThank you for your visit on {when}. Would you tell us how it "
        "went? It takes two minutes: {link}" + _SIGN,
        "A post-visit survey request.",
        "{clinic_name}: how was your visit on {when}? Tell us in two minutes: {link}",
    ),
    "survey_received": Template(
        "New survey response for {clinic_name}",
        "A patient answered the survey for the visit on {when}: recommend {nps}/10, rating "
        "{rating}/5.",
        "Tells the clinic that a survey arrived.",
    ),
    # ------------------------------------------------ reminders, visits, clinic notices, forms
    "appointment_reminder": Template(
        "Reminder: your appointment on {when}",
        "Dear {patient_name},\n\nA reminder of your appointment for {service_name} with "
        "{provider_name} on {when} at {where}.\n\nPlease confirm you are coming: "
        "{confirm_link}\nAsk to cancel (our cancellation policy and any fee are shown before "
        "you confirm): {cancel_link}\nAsk to move it: {reschedule_link}\n\nBy text message "
        "you can also reply C to confirm or X to cancel." + _SIGN,
        "A reminder before the appointment (offsets per clinic), with confirm, cancel and "
        "reschedule links (a text: the confirm link, whose page offers all three).",
        # one link: three are more than three parts in UCS-2 (a clinic's "ł"). The confirm
        # link's page offers to ask to cancel or move too (core.portal.patient_links)
        "{clinic_name}: {service_name} on {when}. Reply C to confirm or X to cancel, or move "
        "it here: {confirm_link}",
        # the link's page confirms too; a reply C or X is still read (core.messaging.sms_inbound)
        "{clinic_name}: {service_name}, {when}. Confirm, cancel or move it: {confirm_link}",
    ),
    "appointment_checked_in": Template(
        "You are checked in at {clinic_name}",
        "Dear {patient_name},\n\nYou are checked in for {service_name} with {provider_name}. "
        "Please take a seat; we will call you shortly." + _SIGN,
        "The patient was checked in (only where the clinic chose to send it).",
    ),
    "appointment_completed": Template(
        "Thank you for your visit to {clinic_name}",
        "Dear {patient_name},\n\nThank you for visiting us on {when} for {service_name} with "
        "{provider_name}.{survey}{message}" + _SIGN,
        "A visit was completed: a thank-you (with the survey link when the feedback rules "
        "allow it).",
        # short, as the survey line (core.feedback.surveys.SURVEY_LINE) under a long address
        "{clinic_name}: thank you for your visit on {when}.{survey}{message}",
        "{clinic_name}, {when}: thank you!{survey}{message}",
    ),
    "forms_to_complete": Template(
        "Before your appointment on {when}: {forms_titles}",
        "Dear {patient_name},\n\nBefore your appointment for {service_name} on {when}, "
        "please read or complete the following (each link works once):\n\n{forms}" + _SIGN,
        "The service's questionnaire, consent and instructions, sent after booking.",
        # short: one form's title and link with a name outside the GSM alphabet goes in three
        # UCS-2 parts; two or more are one line with one link, to the visit's list of them
        # ("Your 3 forms: …", core.forms.after_booking.text_listing)
        "{clinic_name}: before your visit on {when}, read or complete:\n{forms}",
        "{clinic_name}: before your visit {when}, see:\n{forms}",
    ),
    "clinic_event": Template(
        "{event}: {summary}",
        "{event} at {clinic_name}:\n\n{summary}\n\nOpen it: {link}",
        "Tells the clinic's inbox of an event it selected (one email per event).",
    ),
    "clinic_digest": Template(
        "{clinic_name}: {count} event(s) of {day}",
        "What happened at {clinic_name} ({day}):\n\n{items}",
        "The clinic's daily digest of the events it selected.",
    ),
    "portal_sign_in": Template(
        "Your sign-in link for the {clinic_name} patient portal",
        "Dear {patient_name},\n\nUse this link to sign in to your patient portal. It works "
        "once and expires in {minutes} minutes: {link}\n\nIf you did not ask for it, you can "
        "ignore this message." + _SIGN,
        "A one-time portal sign-in link the patient asked for.",
        "{clinic_name}: the patient portal sign-in link for {patient_name} (works once, "
        "expires in {minutes} minutes): {link}\nIf you did not ask for it, ignore this message.",
        title="Portal sign-in link",
    ),
    "payment_receipt": Template(
        "Your receipt from {clinic_name}",
        "Dear {patient_name},\n\nThank you for your payment for {service_name} on {when}.\n"
        "{lines}\nTotal paid: {total}\nReference: {reference}" + _SIGN,
        "The receipt after a prepayment (points and/or card).",
    ),
    "payment_refund": Template(
        "Your refund from {clinic_name}",
        "Dear {patient_name},\n\nYour appointment for {service_name} on {when} was "
        "cancelled.\n{lines}{message}" + _SIGN,
        "What a cancellation gives back of a prepayment.",
    ),
    "payment_given_back": Template(
        "Money given back by {clinic_name}",
        "Dear {patient_name},\n\nWe have given back {amount} of what you paid for "
        "{service_name} on {when} ({reference}): {how}" + _SIGN,
        "Money the desk gives back while the visit stands (a payment recorded by mistake, a "
        "cheaper service), or of a fee waived (one on no visit: the fee and the day charged).",
    ),
    "payment_not_matched": Template(
        "Your card payment to {clinic_name} was refunded",
        "Dear {patient_name},\n\nYour card payment of {amount} for {service_name} on {when} "
        "could not be matched to the {due} due, so it has not paid for your appointment. We "
        "have refunded all of it to your card ({reference}): it reaches your account within a "
        "few working days.\n\n{next_step}" + _SIGN,
        "A card payment the provider took for another amount (or currency) than was due: "
        "refunded in full, and what the patient does now.",
        # short: with a name outside the GSM alphabet and the portal's link in {next_step}, it
        # still goes in three UCS-2 parts (201 characters); the email names the visit
        "{clinic_name}: your {amount} card payment was not the {due} due: refunded to your "
        "card. {next_step}",
    ),
    "waitlist_offer": Template(
        "A time is free: {service_name} on {when}",
        "Dear {patient_name},\n\nYou are on our waitlist, and a time has just freed up: "
        "{service_name} with {provider_name} on {when}.\n\nTo take it, accept here before "
        "{expires}: {link}\n{terms}" + _SIGN,
        "A freed slot offered to a waitlisted patient (the terms: held for them alone, or the "
        "first of several to accept gets it, as the waitlist rules say).",
        "{clinic_name}: {service_name} with {provider_name} on {when} is free. Accept by "
        "{expires}: {link}\n{terms}",
        "{clinic_name}: {service_name} on {when} is free. Accept by {expires}: {link}\n{terms}",
    ),
    "waitlist_taken": Template(
        "The time on {when} is no longer free",
        "Dear {patient_name},\n\nThe time we offered you ({service_name} on {when}) is no "
        "longer free: it has been booked. You stay on our waitlist; we will write again when "
        "another time frees up." + _SIGN,
        "Tells a waitlisted patient that the time offered was booked (by another patient who "
        "accepted first, or at the desk).",
        title="Waitlist offer taken",
    ),
    "waitlist_withdrawn": Template(
        "The time on {when} is no longer available",
        "Dear {patient_name},\n\nThe time we offered you ({service_name} on {when}) is no "
        "longer available: the clinic's schedule has changed since we wrote. You stay on our "
        "waitlist; we will write again when another time frees up." + _SIGN,
        "Tells a waitlisted patient that the time offered left the schedule before they "
        "answered (time off or an out-of-office block added, working hours changed).",
        title="Waitlist offer withdrawn",
    ),
    "waitlist_stopped": Template(
        "The time on {when} can no longer be booked",
        "Dear {patient_name},\n\nSorry: we cannot book the time we offered you ({service_name} "
        "on {when}), as {stopped}. Nothing was booked, and no time will be offered for this "
        "waitlist entry. To choose another treatment or time, please call us." + _SIGN,
        "Tells a waitlisted patient that the time offered can no longer be booked: the practice "
        "withdrew the treatment they wait for, or the provider they asked for, before they "
        "answered (their entry is offered nothing more).",
        title="Waitlist offer no longer bookable",
    ),
}


# what the callers give a message beyond its built-in text's placeholders, so an edit may use it;
# decided for every template (() when they give nothing more; a test holds it): the appointment
# messages (core.scheduling.lifecycle.message_context), the survey request's visit, the
# waitlist's offer, and the clinic's own emails (core.messaging.clinic_events.tell_clinic's
# event and summary, on top of the visit its callers give; its link only where the built-in
# text has it, as a link in NEEDED is one an edit may not leave out)
_VISIT = ("clinic_name", "clinic_phone", "where", "when", "service_name", "provider_name")
_CLINIC_EVENT = ("event", "summary")
ALSO: dict[str, tuple[str, ...]] = {
    **{
        key: (*_VISIT, "message")
        for key in (
            "request_received",
            "appointment_scheduled",
            "appointment_declined",
            "appointment_proposed",
            "appointment_rescheduled",
            "appointment_updated",
            "appointment_cancelled",
            "appointment_no_show",
            "appointment_no_show_withdrawn",
            "change_request_denied",
            "proposal_lapsed",
            "appointment_checked_in",
            "appointment_completed",
            "forms_to_complete",
        )
    },
    "appointment_reminder": _VISIT,
    "feedback_request": ("service_name", "provider_name"),
    "waitlist_offer": (),
    "waitlist_taken": ("provider_name",),
    "waitlist_withdrawn": ("provider_name",),
    "waitlist_stopped": ("provider_name",),
    "proposal_answered": (*_VISIT, "message", *_CLINIC_EVENT),
    "survey_received": ("clinic_phone", "service_name", "provider_name", *_CLINIC_EVENT),
    "clinic_event": (),
    "clinic_digest": (),
    "portal_invitation": (),
    "portal_sign_in": (),
    "payment_receipt": (),
    "payment_refund": (),
    "payment_given_back": (),
    "payment_not_matched": (),
}


def visit_place(clinic, virtual: bool = False) -> str:
    """Where the patient goes, the messages' {where}: the clinic's name, and its address for a
    visit in person ("Lakeside Aesthetics, 40 Lakeside Avenue, New York"), so a patient of a
    practice's two clinics knows which."""
    address = (clinic.address or "").strip()
    return f"{clinic.name}, {address}" if address and not virtual else clinic.name


# a sample link as long as a real one (tokens.issue: 43 characters), so the preview's text
# message has the length, and the parts, a patient's will
_SAMPLE_T = "Q2xpbmljRGVzayBzYW1wbGUgbGluayB0b2tlbiAxMjM"
SAMPLE_CONTEXT = {
    "patient_name": "Alex Morgan",
    "first_name": "Alex",
    "clinic_name": "ClinicDesk Demo Clinic",
    "clinic_phone": "020 7946 0000",
    "where": "ClinicDesk Demo Clinic, 1 High Street, London",
    "when": "Tue 01 Dec 2026, 09:30",
    "previous_when": "Mon 30 Nov 2026, 14:00",
    "proposed_when": "Tue 01 Dec 2026, 09:30",
    "service_name": "Consultation",
    "provider_name": "Dr Rivera",
    "reason": "The provider is away that day.",
    "message": "\n\nMessage from the practice: see you soon.",
    "fee": f"\nA late-cancellation fee of {format_money(2500)} applies.",
    "link": f"https://example.org/patient?p=proposal&t={_SAMPLE_T}",
    "expires": "Tue 15 Dec 2026",
    "terms": "We are holding this time for you alone until then.",
    "answer": "accepted",
    "nps": "9",
    "rating": "5",
    "confirm_link": f"https://example.org/patient?p=confirm&t={_SAMPLE_T}",
    "cancel_link": f"https://example.org/patient?p=change&t={_SAMPLE_T}&k=cancel",
    "reschedule_link": f"https://example.org/patient?p=change&t={_SAMPLE_T}&k=reschedule",
    "survey": "\n\nHow was it? Tell us in two minutes: "
    f"https://example.org/patient?p=survey&t={_SAMPLE_T}",
    "forms": f"Consent to treatment: https://example.org/patient?p=form&t={_SAMPLE_T}",
    "forms_titles": "Consent to treatment",
    "event": "Late cancellation",
    "summary": "Alex Morgan cancelled Consultation on Tue 01 Dec 2026, 09:30.",
    "day": "Tue 01 Dec 2026",
    "count": "3",
    "items": "- 08:10 · No-show: Alex Morgan, Consultation",
    "minutes": "15",
    "lines": "Points: 200 (£20.00)\nCard: £40.00",
    "total": "£60.00",
    "reference": "P-42",
    "amount": "£1.00",
    "due": "£60.00",
    "next_step": "Please pay again at the desk when you come, or in your patient portal: "
    "https://example.org/portal",
    "stopped": "the practice no longer offers Consultation",
}


MEANINGS = {  # what each placeholder is filled with, in words for the editor
    "patient_name": "the patient's full name",
    "first_name": "the patient's first name (their one name when they have only one)",
    "clinic_name": "the clinic's name",
    "clinic_phone": "the clinic's phone number",
    "where": "where to come: the clinic's name and, for a visit in person, its address",
    "when": "the appointment's date and time, in the clinic's time zone",
    "previous_when": "the time the appointment had before it moved",
    "proposed_when": "the time the practice proposed",
    "service_name": "the service or package booked",
    "provider_name": "the provider's name",
    "reason": "the reason the practice gave",
    "message": "what staff typed for the patient, if anything, on its own paragraph",
    "fee": "the fee charged, on its own line, or nothing when there is none",
    "link": "the patient's link to act on this message",
    "expires": "when the link or the offer expires",
    "terms": "whether the time is held for the patient alone or goes to the first to accept",
    "answer": "accepted or declined",
    "nps": "how likely the patient is to recommend the practice, 0 to 10",
    "rating": "the patient's rating, 1 to 5",
    "confirm_link": "the link that confirms the patient is coming",
    "cancel_link": "the link to ask to cancel",
    "reschedule_link": "the link to ask to move the appointment",
    "survey": "the survey link with its sentence, when the feedback settings ask at once",
    "forms": "each form to complete with its link, one a line (in a text message, two or "
    "more as one link to the list of them)",
    "forms_titles": "the forms' titles",
    "event": "what happened (a late cancellation, a no-show…)",
    "summary": "one line on who, what and when",
    "day": "the day the digest covers",
    "count": "how many events the digest holds",
    "items": "the digest's events, one a line",
    "minutes": "how many minutes the sign-in link works",
    "lines": "what was paid, one payment a line",
    "total": "the total paid",
    "reference": "the payment's reference",
    "amount": "the amount given back",
    "due": "the amount that was due",
    "next_step": "what the patient does now: pay again in the patient portal (its link) or at "
    "the desk, or that nothing is owed any more",
    "stopped": "what the practice withdrew: the treatment no longer offered, or the provider "
    "who no longer works at the practice",
    "how": "how the money comes back: at the desk, or to the card within a few working days",
}


def sample_context(fmt: ClinicFormat) -> dict[str, str]:
    """SAMPLE_CONTEXT with its times, days and amounts in a clinic's zone, locale and currency,
    for previews a practice reads as its patients will (a yen clinic sees ￥, not £)."""
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    earlier = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    return SAMPLE_CONTEXT | {
        "when": fmt.moment(when),
        "previous_when": fmt.moment(earlier),
        "proposed_when": fmt.moment(when),
        "fee": f"\nA late-cancellation fee of {fmt.money(2500)} applies.",
        "expires": fmt.day(date(2026, 12, 15)),
        "summary": f"Alex Morgan cancelled Consultation on {fmt.moment(when)}.",
        "day": fmt.day(date(2026, 12, 1)),
        "items": f"- {fmt.clock(time(8, 10))} · No-show: Alex Morgan, Consultation",
        "lines": f"Points: 200 ({fmt.money(2000)})\nCard: {fmt.money(4000)}",
        "total": fmt.money(6000),
        "amount": fmt.money(100),
        "due": fmt.money(6000),
    }


SUBJECT_MAX = 250  # Notification.subject


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _values(context: dict[str, object]) -> _Blank:
    return _Blank(
        {k: clean("" if v is None else str(v), field=k, multiline=True) for k, v in context.items()}
    )


def render(template: Template, context: dict[str, object]) -> tuple[str, str]:
    """Plain text only (emails carry no HTML part): typed values lose control characters, and
    the subject is one line (a typed line break must never reach a mail header)."""
    values = _values(context)
    subject = clean(template.subject.format_map(values), field="subject")
    return subject[:SUBJECT_MAX], template.body.format_map(values)


def render_sms(
    template: Template,
    context: dict[str, object],
    *,
    subject: str | None = None,
    body: str | None = None,
) -> str:
    """The text message of `template` filled with `context`, within three parts (fit_text):
    its own text form, one item a line, or else its subject and email flattened, in either
    case its wording in the GSM alphabet where it has an equivalent. `body` (and `subject`):
    what staff typed in place of the email; the text is then theirs, flattened, as typed."""
    if body:
        return _sms_text(subject or render(template, context)[0], body)
    gsm = Template(*(sms_parts.gsm_wording(t) for t in (template.subject, template.body)), "")
    values = {k: sms_parts.gsm_value(v) if isinstance(v, str) else v for k, v in context.items()}

    def compose(values: dict[str, object], form: str = template.sms) -> str:
        if not form:
            own_subject, own_body = render(gsm, values)
            return _sms_text(subject or own_subject, own_body)
        text = sms_parts.gsm_wording(form).format_map(_values(values))
        return fit_text("\n".join(line.strip() for line in text.splitlines() if line.strip()))

    text, cut = _names_shortened(compose, values)
    if template.sms_short and (
        sms_parts.parts(text).count > sms_parts.MAX_PARTS or (cut is not None and cut < ROOMY)
    ):
        text = _names_shortened(lambda values: compose(values, template.sms_short), values)[0]
    return text


def template_for(session: Session, key: str, *, as_saved: bool = False) -> Template:
    """The template messages are made from; `as_saved`: the edited text as it was saved, for
    the editor, even when it cannot be filled in (then the built-in text is what is sent)."""
    if key not in TEMPLATES:
        raise NotFound(f"There is no message template {key!r}.")
    edited = session.get(NotificationTemplate, key)
    base = TEMPLATES[key]
    if edited and not as_saved and not _sendable(key, edited.subject, edited.body):
        # saved before check_template refused such text: the built-in wording goes instead of
        # every message of the template failing, or going without its link (the
        # Notifications page says what to fix)
        log.warning("template %s cannot be sent as saved; its built-in text is sent", key)
        return base
    # an edited template has no text form of its own: its text is the edited email, flattened
    return Template(edited.subject, edited.body, base.description) if edited else base


def template_to_edit(session: Session, key: str) -> tuple[Template, Template]:
    """For the editor: the template as saved, and the one messages are made from (the same
    unless the saved text cannot be filled in, when the built-in text is sent)."""
    saved = template_for(session, key, as_saved=True)
    edited = saved is not TEMPLATES[key]
    usable = not edited or _sendable(key, saved.subject, saved.body)
    return saved, saved if usable else TEMPLATES[key]


def _sendable(key: str, subject: str, body: str) -> bool:
    """Whether an edited text can go as saved: it fills in, keeps the links it needs, and has
    none in its subject (check_template)."""
    return (
        _fills(subject, body)
        and all(n in _names(body) for n in needed_in(key))
        and not _links_in(subject)
    )


def _links_in(subject: str) -> list[str]:
    """The link placeholders (NEEDED) in `subject`: a subject is one line, cut at SUBJECT_MAX,
    and kept in the outbox as sent, where only the text's tokens are replaced by their hash
    (core.messaging.delivery.redact); {forms} there would carry a link for each form."""
    return [n for n in NEEDED if n in _names(subject)]


def _fills(*texts: str) -> bool:
    try:
        for text in texts:
            text.format_map(_Blank())
    except (ValueError, IndexError, KeyError, AttributeError):
        return False
    return True


def _names(*texts: str) -> set[str]:
    """The placeholder names in `texts` (unparseable text has none)."""
    try:
        return {n for t in texts for _, n, _, _ in string.Formatter().parse(t) if n}
    except ValueError:
        return set()


# what a patient acts through or must be told: an edited text without it is refused, and one
# saved without it earlier is not sent (the built-in text goes, and the editor says why)
NEEDED = ("link", "confirm_link", "cancel_link", "reschedule_link", "forms", "survey")


def placeholders_of(key: str) -> list[str]:
    """The placeholders a message of `key` is filled with: those of its built-in text and
    those its callers give it too (ALSO); any other would arrive blank, whatever the
    preview's sample said."""
    base = TEMPLATES[key]
    return sorted(_names(base.subject, base.body, base.sms) | set(ALSO[key]))


def needed_in(key: str) -> list[str]:
    """The placeholders `key`'s text cannot do without: its links (NEEDED)."""
    return [n for n in placeholders_of(key) if n in NEEDED]


def left_out(key: str, template: Template) -> list[str]:
    """The placeholders of `key`'s built-in text that an edited `template` does not use (an
    edit made before {where} was added to the built-in text, say), for the editor to say."""
    base, used = TEMPLATES[key], _names(template.subject, template.body)
    return sorted(_names(base.subject, base.body) - used)


def check_template(key: str, subject: str, body: str) -> None:
    """A ValidationError saying what to fix unless every placeholder of the typed template is
    a bare name in braces ({when}) that a message of `key` is filled with, and the text keeps
    the links the message needs: a name left out ({}), a format ({when:%d %B}) or a
    conversion ({when!r}) would make every message of the template fail to render, a name
    this message is not given would arrive blank, and a message without its link leaves the
    patient nothing to act on; a link goes in the text, never the subject (_links_in)."""
    if not body.strip():
        raise ValidationError("The message text cannot be empty.")
    if not subject.strip():  # an email without one, a text message starting '. Dear …'
        raise ValidationError("The subject cannot be empty: it is the email's subject line.")
    allowed = placeholders_of(key)
    available = "Available in this message: " + ", ".join(f"{{{n}}}" for n in allowed) + "."
    for text in (subject, body):
        try:
            fields = [(n, c, f) for _, n, f, c in string.Formatter().parse(text) if n is not None]
        except ValueError:
            raise ValidationError(
                "Braces must come in pairs around a placeholder, like {when}. To show a brace "
                "itself, type it twice ({{ or }})."
            ) from None
        for name, conversion, spec in fields:
            if not name or conversion or spec:
                typed = "{" + name + (f"!{conversion}" if conversion else "")
                typed += (f":{spec}" if spec else "") + "}"
                raise ValidationError(
                    f"Write each placeholder as its bare name in braces, like {{when}}: "
                    f"{typed} cannot be filled in. {available}"
                )
            if name not in allowed:
                known = name in SAMPLE_CONTEXT
                raise ValidationError(
                    f"{{{name}}} is not filled in for this message: it would arrive blank. "
                    f"{available}"
                    if known
                    else f"Unknown placeholder {{{name}}}. {available}"
                )
    if in_subject := _links_in(subject):
        raise ValidationError(
            f"A link cannot go in the subject ({{{in_subject[0]}}}): a subject is one line, "
            "which mail programs cut short. Keep it in the text only."
        )
    missing = [n for n in needed_in(key) if n not in _names(body)]
    if missing:
        raise ValidationError(
            "The text must keep "
            + " and ".join(f"{{{n}}} ({MEANINGS[n]})" for n in missing)
            + ": without it the patient has nothing to act on."
        )


def preview_typed(key: str, subject: str, body: str, fmt: ClinicFormat) -> tuple[str, str]:
    """A template as typed (saved or not), rendered with the clinic's sample values; a
    ValidationError saying what to fix when it could not be sent (check_template)."""
    check_template(key, subject, body)
    return render(Template(subject, body, ""), sample_context(fmt))


def save_template(
    session: Session,
    actor: Actor,
    key: str,
    subject: str,
    body: str,
    *,
    was: tuple[str, str] | None = None,
) -> None:
    """Save an edited template. `was`: the subject and text the editor opened with; when the
    template was saved or reset since (a second manager), nothing is saved and the Conflict says
    who changed it and when, so neither edit is lost unseen."""
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    template_for(session, key)
    check_template(key, subject, body)
    row = _unchanged_since(session, key, was)
    base = TEMPLATES[key]
    if (subject, body) == (base.subject, base.body):  # the built-in text, with its text form
        _reset(session, actor, key, row)
        return
    if row is None:
        row = NotificationTemplate(key=key)
        session.add(row)
    row.subject, row.body, row.updated_by_user_id = subject, body, actor.user_id
    try:
        with session.begin_nested():  # a second manager's first edit, saved at the same time
            session.flush()
    except IntegrityError:
        raise Conflict(_changed_meanwhile(session, key)) from None
    audit.record(session, actor, "template_saved", "template", None, details={"key": key})


def reset_template(
    session: Session, actor: Actor, key: str, *, was: tuple[str, str] | None = None
) -> None:
    """Messages of `key` go with the built-in text again (and its own text-message form); the
    edited text is dropped (audited)."""
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    template_for(session, key)
    _reset(session, actor, key, _unchanged_since(session, key, was))


def _reset(session: Session, actor: Actor, key: str, row: NotificationTemplate | None) -> None:
    if row is not None:
        session.delete(row)
        session.flush()
        audit.record(session, actor, "template_reset", "template", None, details={"key": key})


def _unchanged_since(
    session: Session, key: str, was: tuple[str, str] | None
) -> NotificationTemplate | None:
    """The edited row of `key` (locked until the end of the transaction), after checking that
    it still holds `was`; a Conflict saying who changed it and when otherwise."""
    row = session.get(NotificationTemplate, key, with_for_update=True, populate_existing=True)
    now = (row.subject, row.body) if row else (TEMPLATES[key].subject, TEMPLATES[key].body)
    if was is not None and tuple(was) != now:
        raise Conflict(_changed_meanwhile(session, key))
    return row


def _changed_meanwhile(session: Session, key: str) -> str:
    row = session.get(NotificationTemplate, key)
    if row is None:
        changed = "went back to the built-in text"
    else:
        who = session.get(User, row.updated_by_user_id) if row.updated_by_user_id else None
        at = clinic_time(clinic_format(session), row.updated_at, zone=True)
        changed = f"was saved by {who.display_name if who else 'someone else'} at {at}"
    return (
        f"Not saved: this template {changed} after you opened it. Read its text now, and "
        "make your change again."
    )


def preview_typed_text(key: str, sent: Template, subject: str, body: str, fmt: ClinicFormat) -> str:
    """The text message a template as typed makes, with the clinic's sample values, as
    queue_for_patient builds it: the template's own text form while the typed text is what is
    sent (`sent`: template_for's), else the typed email flattened."""
    check_template(key, subject, body)
    typed = sent if (subject, body) == (sent.subject, sent.body) else Template(subject, body, "")
    return render_sms(typed, sample_context(fmt))


def preview(
    session: Session, key: str, context: dict[str, object] | None = None
) -> tuple[str, str]:
    return render(template_for(session, key), {**SAMPLE_CONTEXT, **(context or {})})


# ---------------------------------------------------------------- queueing


@dataclass(frozen=True)
class Queued:
    notifications: list[Notification]
    skipped: list[str]  # why a channel was not used, in words for the screen


def queue_for_patient(
    session: Session,
    patient: Patient,
    key: str,
    context: dict[str, object],
    *,
    appointment_id: int | None = None,
    channels: list[Channel] | None = None,
    attachment: attachments.File | None = None,
    files: list[attachments.File] | None = None,
    subject: str | None = None,
    body: str | None = None,
    feedback_request_id: int | None = None,
    waitlist_offer_id: int | None = None,
) -> Queued:
    """Queue `key` to the patient on each consented channel (or only on `channels`).
    `subject`/`body` replace the rendered text when staff edited the message before sending
    (the text message is then theirs too, flattened; otherwise it is the template's text form).
    A survey request or waitlist offer names its request or offer (the sender's quiet hours
    read them, core.messaging.quiet). The email carries `attachment` (one file), then `files`
    (several, in order) and, for a CALENDAR_FILE message, the visit's calendar file; files one
    email cannot carry (too many, too large, a bad or repeated name) are refused with what to
    fix (core.messaging.attachments.check), whichever channels the message goes on."""
    usable, skipped = channels_for(patient)
    if channels is not None:
        skipped += [f"{CHANNEL_WORDS[c]} not chosen" for c in usable if c not in channels]
        usable = [c for c in usable if c in channels]
    template = template_for(session, key)
    values = {"patient_name": patient.full_name, **context}
    rendered_subject, rendered_body = render(template, values)
    sms = render_sms(template, values, subject=subject, body=body)
    subject, body = subject or rendered_subject, body or rendered_body
    files = ([attachment] if attachment else []) + list(files or [])
    if key in CALENDAR_FILE and appointment_id is not None:
        files += _calendar_file(session, key, patient.id, appointment_id)
    attachments.check(files)
    rows = []
    for channel in usable:
        rows.append(
            Notification(
                patient_id=patient.id,
                appointment_id=appointment_id,
                channel=channel,
                template=key,
                to_address=patient.email if channel == Channel.EMAIL else patient.phone,
                subject=subject,
                body=body if channel == Channel.EMAIL else sms,
                attachments=attachments.rows(files) if channel == Channel.EMAIL else [],
                feedback_request_id=feedback_request_id,
                waitlist_offer_id=waitlist_offer_id,
            )
        )
    session.add_all(rows)
    return Queued(rows, skipped)


def _calendar_file(
    session: Session, key: str, patient_id: int, appointment_id: int
) -> list[attachments.File]:
    """The visit's .ics as it is now: written first, so its SEQUENCE is the stored version. A
    cancellation carries one only where an email put the visit in a calendar before (a proposed
    time never accepted was never in one)."""
    session.flush()
    if key == "appointment_cancelled" and not session.scalar(
        select(Notification.id)
        .where(
            Notification.patient_id == patient_id,  # its index: the patient's few messages
            Notification.appointment_id == appointment_id,
            Notification.channel == Channel.EMAIL,
            Notification.template.in_(CALENDAR_FILE - {key}),
        )
        .limit(1)
    ):
        return []
    appointment = session.get(Appointment, appointment_id)
    base_url = session.info.get("base_url", DEFAULT_BASE_URL)
    sender = session.info.get(visit_calendar.SENDER, visit_calendar.DEFAULT_SENDER)
    made = appointment and visit_calendar.visit_file(appointment, base_url=base_url, sender=sender)
    return [made] if made else []


def withdraw_queued(
    session: Session, patient_ids: list[int], channel: Channel, reason: str
) -> None:
    """The patients' messages on `channel` still waiting are not sent (consent withdrawn): marked
    failed for good with `reason`, so neither the sender nor a Retry sends them."""
    session.execute(
        update(Notification)
        .where(
            Notification.patient_id.in_(patient_ids),
            Notification.channel == channel,
            Notification.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.FAILED]),
            Notification.permanent_failure.is_(False),
        )
        .values(**delivery.stopped(StopKind.CONSENT, reason))
        .execution_options(synchronize_session=False)
    )


def withdraw_unsent(session: Session, appointment_id: int, key: str, reason: str) -> None:
    """The appointment's `key` messages not sent yet are not sent: marked failed for good with
    `reason`. A message a sender holds right now (claimed) is left to go."""
    _withdraw(
        session,
        [Notification.appointment_id == appointment_id, Notification.template == key],
        reason,
    )


def reached_channels(
    session: Session, appointment_id: int, key: str, *, since: datetime | None = None
) -> tuple[list[Channel], list[Channel]]:
    """The channels the appointment's `key` message went out on or is going out on right now
    (sent, or held by a sender), and those where it still waits to be sent (withdraw_unsent
    stops these). With `since`, only the messages queued after it count (an earlier round of
    the same message, already dealt with, does not)."""
    where = [Notification.appointment_id == appointment_id, Notification.template == key]
    if since is not None:
        where.append(Notification.created_at > since)
    return _reached(session, where)


def offer_reached_channels(session: Session, offer_id: int) -> tuple[list[Channel], list[Channel]]:
    """reached_channels for a waitlist offer's message: the channels it went out on (or is
    going out on right now), and those where it still waits (withdraw_offer_unsent stops
    these)."""
    return _reached(session, _offer_message(offer_id))


def withdraw_offer_unsent(session: Session, offer_id: int, reason: str) -> None:
    """withdraw_unsent for a waitlist offer's message: not sent yet, it is not sent."""
    _withdraw(session, _offer_message(offer_id), reason)


def withdraw_patient_unsent(session: Session, patient_id: int, key: str, reason: str) -> None:
    """withdraw_unsent for a message to a patient about no appointment (a portal invitation)."""
    _withdraw(
        session, [Notification.patient_id == patient_id, Notification.template == key], reason
    )


def _offer_message(offer_id: int) -> list:
    return [Notification.waitlist_offer_id == offer_id, Notification.template == "waitlist_offer"]


def _reached(session: Session, where: list) -> tuple[list[Channel], list[Channel]]:
    query = select(Notification.channel, Notification.status, Notification.claim_token).where(
        *where, Notification.permanent_failure.is_(False)
    )
    reached, waiting = set(), set()
    for channel, status, claim in session.execute(query):
        gone = status == DeliveryStatus.SENT or claim is not None
        (reached if gone else waiting).add(channel)
    return sorted(reached), sorted(waiting - reached)


def withdraw_all_unsent(
    session: Session, appointment_id: int, patient_id: int, reason: str
) -> list[Notification]:
    """Every message of the appointment to `patient_id` not sent yet is not sent, marked failed
    for good with `reason`: queued, due for a retry, failed for a person to retry, and one a
    sender holds right now, its claim taken back (finding it gone, the sender sends nothing:
    delivery.take). What was sent, or stopped on purpose already, keeps its state. The
    messages stopped, for a visit that moved to another person's record (core.requests.flags
    writes the one it waits with again)."""
    unsent = session.scalars(
        select(Notification).where(
            Notification.appointment_id == appointment_id,
            Notification.patient_id == patient_id,
            Notification.status != DeliveryStatus.SENT,
            or_(
                Notification.permanent_failure.is_(False),
                Notification.stop_kind.is_distinct_from(StopKind.PURPOSE),
            ),
        )
    ).all()
    for message in unsent:
        for key, value in stopped_on_purpose(reason).items():
            setattr(message, key, value)
        message.claim_token = None
    return list(unsent)


def _withdraw(session: Session, where: list, reason: str) -> None:
    """The messages matching `where` not sent yet are marked failed for good with `reason`; one
    a sender holds right now (claimed) is left to go."""
    session.execute(
        update(Notification)
        .where(
            *where,
            Notification.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.FAILED]),
            Notification.permanent_failure.is_(False),
            Notification.claim_token.is_(None),
        )
        .values(**stopped_on_purpose(reason))
        .execution_options(synchronize_session=False)
    )


def stopped_on_purpose(reason: str) -> dict[str, object]:
    """The values that stop a message for good, on purpose, with `reason` shown as its error."""
    return delivery.stopped(StopKind.PURPOSE, reason)


def queue_to_address(
    session: Session, channel: Channel, address: str, key: str, context: dict[str, object]
) -> Notification | None:
    """A message to the practice itself (for example a clinic's email); None without address."""
    if not address:
        return None
    template = template_for(session, key)
    subject, body = render(template, context)
    row = Notification(
        channel=channel,
        template=key,
        to_address=address,
        subject=subject,
        body=body if channel == Channel.EMAIL else render_sms(template, context),
    )
    session.add(row)
    return row


_LINK = re.compile(r"https?://\S+")


def _sms_text(subject: str, body: str) -> str:
    """A text without a form of its own: the subject and the email on one line."""
    return fit_text(f"{subject}. {' '.join(body.split())}")


CUT = " ..."  # GSM: "…" would send the whole text in UCS-2, in 67-character parts

# the values a text shortens when its links and wording leave too little room for them (see
# _names_shortened): names and places, never a link, a time or what staff wrote
SHORTENED = ("first_name", "patient_name", "clinic_name", "provider_name", "service_name", "where")
SHORTEST = 1  # characters a shortened name keeps at least (before its ".")
ROOMY = 12  # names cut shorter than this in a text form: its shorter form is sent (sms_short)
_JOINERS = frozenset("\u200d\u20e3")  # zero-width joiner, keycap: part of the sign before


def _inside_a_sign(text: str, at: int) -> bool:
    """Whether a cut before `text[at]` would split one sign the reader sees: a letter from its
    accent, an emoji from its joiner, skin tone or variation selector, a flag's two halves."""
    char, before = text[at], text[at - 1]
    if before == "\u200d" or char in _JOINERS or unicodedata.category(char) in ("Mn", "Me"):
        return True
    if 0x1F3FB <= ord(char) <= 0x1F3FF:  # a skin tone
        return True
    if 0x1F1E6 <= ord(char) <= 0x1F1FF:  # a regional indicator: flags are pairs of them
        run = 0
        while at - run - 1 >= 0 and 0x1F1E6 <= ord(text[at - run - 1]) <= 0x1F1FF:
            run += 1
        return run % 2 == 1
    return False


def shorten(value: str, most: int) -> str:
    """`value` in at most `most` characters and a "." marking the cut: at the end of a word
    when one ends in the second half of those characters, else between two signs (never inside
    an emoji or a letter with its accent); a value that fits stays as it is."""
    if len(value) <= most:
        return value
    at = most
    while at > 0 and _inside_a_sign(value, at):
        at -= 1
    while at == 0 or (at < len(value) and _inside_a_sign(value, at)):
        at += 1  # the first sign alone is longer than `most`: it stays whole
    head = value[:at]
    space = head.rfind(" ")
    if space >= most // 2 and not value[at].isspace():
        head = head[:space]
    head = head.rstrip(" ,;:-/(")
    return head if head.endswith(".") else head + "."


def _names_shortened(
    compose: Callable[[dict[str, object]], str], values: dict
) -> tuple[str, int | None]:
    """The text `compose` makes of `values`, within MAX_PARTS parts: when its links and wording
    leave too little room (fit_text cuts only prose after the last link), the names and places
    (SHORTENED) are cut, the longest first, to one common length (`shorten`), the longest that
    fits — not below SHORTEST characters. Where even that cannot fit (a link for each of several
    forms in UCS-2), they are cut as little as the fewest parts those links allow need. With
    it, the length the names were cut to (None: not cut)."""
    text = compose(values)
    if sms_parts.parts(text).count <= sms_parts.MAX_PARTS:
        return text, None
    names = {k: v for k in SHORTENED if isinstance(v := values.get(k), str)}
    longest = max(map(len, names.values()), default=0)
    if longest <= SHORTEST:
        return text, None

    def cut_to(most: int) -> str:
        return compose(values | {k: shorten(v, most) for k, v in names.items()})

    goal = max(sms_parts.MAX_PARTS, sms_parts.parts(cut_to(SHORTEST)).count)
    if sms_parts.parts(text).count <= goal:
        return text, None  # the names cost no part
    fits, over = SHORTEST, longest  # the longest common length within the goal, by halving
    while over - fits > 1:
        middle = (fits + over) // 2
        if sms_parts.parts(cut_to(middle)).count <= goal:
            fits = middle
        else:
            over = middle
    return cut_to(fits), fits


def fit_text(text: str, most: int = sms_parts.MAX_PARTS) -> str:
    """`text` within `most` parts (counted as sms_parts does: one character outside the GSM
    alphabet shrinks every part), cut at a word with " ..." — but never before the end of its
    last link: a link arrives whole (a cut one opens nothing, or the wrong page), and the text
    then runs as long as that link needs, ending at the link when " ..." would cost a part."""
    if sms_parts.parts(text).count <= most:
        return text
    last_link_end = max((m.end() for m in _LINK.finditer(text)), default=0)
    fits, over = 0, len(text)  # the longest head that fits with the cut marker, by halving
    if sms_parts.parts(text[:last_link_end]).count > most:
        over = 0  # up to its last link the text is over already: it ends there, no search
    while over - fits > 1:
        middle = (fits + over) // 2
        if sms_parts.parts(text[:middle].rstrip() + CUT).count <= most:
            fits = middle
        else:
            over = middle
    keep = max(fits, last_link_end)
    if keep >= len(text):
        return text
    head = text[:keep]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space >= last_link_end and space > 0 and not text[keep].isspace():
        head = head[:space]  # the cut falls inside a word of prose: end at the word before
    head = head.rstrip()
    if keep == last_link_end and sms_parts.parts(head + CUT).count > max(
        most, sms_parts.parts(head).count
    ):
        return head  # cut at the link's end, where the mark would cost a part: the link ends it
    return head + CUT


# ---------------------------------------------------------------- outbox screen


OUTBOX_PAGE = 100  # messages on a page of the outbox screen


@dataclass(frozen=True)
class OutboxRow:
    id: int
    created_at: datetime
    channel: str
    to_address: str
    template: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    retryable: bool = False  # not sent, and not stopped on purpose (retry would refuse it)
    patient: str = ""  # the patient's name as it is now; "" for the clinic's own messages


def template_title(key: str) -> str:
    """A template's name in words ("Request received"), for the screen: its `title`, else its
    key read as words; a key no longer built in (an old message's) reads the same way."""
    known = TEMPLATES.get(key)
    return (known.title if known else "") or key.replace("_", " ").capitalize()


def channel_title(channel: str) -> str:
    """A channel as the screen names it: "Email", "Text message"."""
    return CHANNEL_WORDS[Channel(channel)].capitalize()


def _outbox_where(session: Session, template: str | None, search: str) -> list:
    """The outbox screen's filters but status: one template, and a search typed, taken
    literally (a % or _ is that character). A patient's messages are found by their record:
    each word in their names or email (Patient.search_text, as the patient search reads it),
    or a number, however typed, in their phone; then through ix_notifications_patient_id, so
    the search reads the patients and the messages found, never every message. Any message,
    a patient's or the clinic's, by the address it went to, whole, through
    ix_notifications_address_key (db.models.address_key): an email in any case, a number in
    any form (core.kernel.phones.stored_forms), so one sent to an address its patient no
    longer has is found by it. The clinic's own messages (no patient) also by a part of their
    address: the patient index's range of no patient, then their rows. The template through
    ix_notifications_template_id_status."""
    conditions = []
    if template:
        conditions.append(Notification.template == template)
    typed = search.strip()
    if typed:
        people, clinic = [], [Notification.to_address.icontains(typed, autoescape=True)]
        if words := plain_words(typed):
            people.append(and_(*(Patient.search_text.contains(w, autoescape=True) for w in words)))
        key = address_key(Notification.to_address)
        if digits := dialled(typed):  # a number, however it was stored and is typed
            people.append(bare_phone().contains(digits, autoescape=True))
            clinic.append(bare_phone(Notification.to_address).contains(digits, autoescape=True))
            sent_to = key.in_(stored_forms(typed, practice_regions(session)))
        else:  # an email, its key (dots and all dropped) checked whole again
            typed_key = address_key(literal(typed))
            sent_to = and_(
                key == typed_key, func.lower(Notification.to_address) == func.lower(typed)
            )
        found = [and_(Notification.patient_id.is_(None), or_(*clinic))]
        if people:
            patients = select(Patient.id).where(or_(*people))
            if session.get_bind().dialect.name == "postgresql":
                # the patients found, read first, as one array written into the statement:
                # PostgreSQL reads an IN of a query (a semi-join) into no index's bitmap, so
                # it read every message; an array from a query in the statement, or a
                # parameter once the statement is prepared (a generic plan), it searches row
                # by row; a constant one through a hash, and plans for its size
                if found_ids := list(session.scalars(patients)):  # ARRAY[] has no type
                    ids = bindparam("patients", found_ids, ARRAY(Integer), literal_execute=True)
                    found.append(Notification.patient_id == any_(ids))
            else:
                found.append(Notification.patient_id.in_(patients))
        conditions.append(or_(*found, sent_to))  # the key last: most rows found are before it
    return conditions


def list_outbox(
    session: Session,
    actor: Actor,
    status: str | None = None,
    page: int = 0,
    page_size: int = OUTBOX_PAGE,
    *,
    template: str | None = None,
    search: str = "",
) -> list[OutboxRow]:
    """One page of the outbox, newest first, under the screen's filters (`outbox_counts`
    counts the same messages by status)."""
    ensure(actor, Permission.NOTIFICATIONS_READ)
    query = (
        select(Notification, Patient.first_name, Patient.last_name)
        .outerjoin(Patient, Patient.id == Notification.patient_id)
        .where(*_outbox_where(session, template, search))
        .order_by(Notification.id.desc())
    )
    if status:
        query = query.where(Notification.status == status)
    rows = session.execute(query.limit(page_size).offset(max(0, page) * page_size))
    return [
        OutboxRow(
            n.id,
            n.created_at,
            n.channel.value,
            n.to_address,
            n.template,
            n.subject,
            n.status.value,
            n.attempts,
            n.last_error,
            None
            if n.status == DeliveryStatus.SENT
            or n.permanent_failure
            or (n.status == DeliveryStatus.FAILED and n.attempts >= MAX_ATTEMPTS)
            else n.next_attempt_at,
            n.sent_at,
            n.status != DeliveryStatus.SENT and not stopped_for_good(n),
            f"{first} {last}" if first is not None else "",
        )
        for n, first, last in rows
    ]


def outbox_counts(
    session: Session, actor: Actor, *, template: str | None = None, search: str = ""
) -> dict[str, int]:
    """How many messages each status has under the screen's other filters."""
    ensure(actor, Permission.NOTIFICATIONS_READ)
    rows = session.execute(
        select(Notification.status, func.count())
        .where(*_outbox_where(session, template, search))
        .group_by(Notification.status)
    ).all()
    counts = {s.value: 0 for s in DeliveryStatus}
    counts.update({status.value: n for status, n in rows})
    return counts


def stopped_for_good(row: Notification) -> bool:
    """Whether ClinicDesk stopped `row` before it went out for a reason that still stands (a
    no-show undone, an offer taken, a reminder too late): not a delivery failure, which a
    person may retry, nor a withdrawn consent, which retry checks itself."""
    return row.permanent_failure and row.stop_kind == StopKind.PURPOSE


def retry(session: Session, actor: Actor, notification_id: int) -> None:
    """Queue a message not sent again, now, to its patient's address or number on record now
    (corrected since, as a failure asks); refused when ClinicDesk stopped it on purpose, or
    for what a first send checks (core.messaging.recipients, channels_for's rule): the record
    was merged into another, the patient withdrew consent, has no address on that channel any
    more, or a number the practice reads as a landline, which no text reaches."""
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    row = session.get(Notification, notification_id)
    if row is None:
        raise NotFound(f"There is no notification #{notification_id}.")
    if row.status == DeliveryStatus.SENT:
        raise ValidationError("This message was sent already; there is nothing to retry.")
    if stopped_for_good(row):
        raise ValidationError(
            f"ClinicDesk stopped this message on purpose ({row.last_error.rstrip('.')}): it "
            "cannot be sent again. Send the patient a new message if they need one."
        )
    patient = session.get(Patient, row.patient_id) if row.patient_id else None
    if patient:  # what a first send checks, at the record now (core.messaging.recipients)
        if (refused := recipients.unreachable(patient, row.channel)) is not None:
            raise ValidationError(refused.again)
        # corrected since it was queued (what a failure asks): the retry goes there
        row.to_address = recipients.address(patient, row.channel)
    row.status, row.next_attempt_at = DeliveryStatus.QUEUED, utcnow()
    row.permanent_failure, row.stop_kind = False, None
    audit.record(
        session, actor, "notification_retry", "notification", row.id, patient_id=row.patient_id
    )
