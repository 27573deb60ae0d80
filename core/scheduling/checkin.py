"""Check-in at the desk: a scanned or typed code, a photo of the QR code, or a manual arrival."""

from __future__ import annotations

import io
from datetime import datetime

import zxingcpp
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel import tokens
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import to_local
from core.kernel.errors import LinkInvalid, NotFound, ValidationError
from core.kernel.money import clinic_time, format_clock
from core.scheduling import visits
from core.scheduling.codes import CODE_PREFIX, issue_code, qr_png
from core.scheduling.lifecycle import Outcome, latest_event, treatment_of
from core.scheduling.states import Action, status_is
from db.models import Appointment, AppointmentKind, AppointmentStatus, LinkToken

# ---------------------------------------------------------------- at the desk


MAX_IMAGE_BYTES = 15 * 1024 * 1024
_NOT_A_CODE = (
    "This is not a ClinicDesk check-in code. Scan the QR code from the confirmation email, "
    "or find the appointment and mark the patient arrived."
)


def _raw(code: str | None) -> str:
    text = (code or "").strip()
    if text.upper().startswith(CODE_PREFIX):
        text = text[len(CODE_PREFIX) :].strip()
    if not text or len(text) > 128 or any(c.isspace() for c in text):
        raise ValidationError(_NOT_A_CODE)
    return text


def check_in_by_code(
    session: Session,
    actor: Actor,
    code: str,
    *,
    clinic_id: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Check the patient in from a scanned or typed code; a code works once.

    Wrong, foreign (another kind of link, or another clinic's appointment) and used codes each
    get their own message, as does a code for another clinic-local day (the code stays unused:
    it works on the day, also after the visit was moved there); the whole step is one
    transaction with the check-in."""
    ensure(actor, Permission.APPOINTMENTS_CHECK_IN)
    raw = _raw(code)
    row = session.scalar(select(LinkToken).where(LinkToken.token_hash == tokens.hash_token(raw)))
    if row is None:
        raise ValidationError(_NOT_A_CODE)
    if row.purpose != "check_in":
        raise ValidationError(
            "This code is not a check-in code (it belongs to another kind of patient link). "
            "Ask for the QR code from the appointment confirmation."
        )
    # locked (as check_in locks it) before its status is read: a check-in at another desk
    # meanwhile is waited for and then said, not met later as a bare refusal
    appointment = session.scalar(
        select(Appointment)
        .where(Appointment.id == row.subject_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if appointment is None:
        raise ValidationError(_NOT_A_CODE)
    who = appointment.patient.full_name if appointment.patient else "the patient"
    clinic = appointment.clinic
    if clinic_id is not None and appointment.clinic_id != clinic_id:
        raise ValidationError(
            f"This code is for {who}'s appointment at {appointment.clinic.name}, not at this "
            "clinic. Send the patient to the right clinic, or switch clinic above."
        )
    if row.revoked_at is not None:
        raise ValidationError("This check-in code was withdrawn. Mark the patient arrived by hand.")
    if row.used_at is not None:
        raise ValidationError(
            f"This code was used already at {clinic_time(clinic, row.used_at)}; a code works once. "
            f"The appointment of {who} is {status_is(appointment.status)}."
        )
    if appointment.status == AppointmentStatus.CHECKED_IN:  # by hand, or by another code
        raise ValidationError(_checked_in_already(session, appointment, who))
    # A code checks in its appointment on the appointment's clinic-local day, whenever that is
    # now: a visit moved to a later day keeps the code of its confirmation, whose stored expiry
    # (what lets old codes be pruned) followed the first time. On any other day the desk hears
    # the visit's day, not "expired, mark them arrived by hand", which that day refuses; a visit
    # no longer scheduled is refused by check_in below, saying what became of it.
    if appointment.status == AppointmentStatus.SCHEDULED and appointment.start_at is not None:
        if refusal := visits.check_in_day_refusal(appointment, now, what="This code"):
            raise ValidationError(refusal)
    try:
        tokens.consume(session, row)
    except LinkInvalid:
        raise ValidationError("This code was used a moment ago at another desk.") from None

    return visits.check_in(session, actor, appointment.id, now=now)


def _checked_in_already(session: Session, appointment: Appointment, who: str) -> str:
    """'Ivy Walker is checked in already (at …, by Sam Lee); nothing more to do for this code.'"""
    event = latest_event(session, appointment.id, Action.CHECK_IN)
    arrived = appointment.checked_in_at or (event.at if event else None)
    when = [f"at {clinic_time(appointment.clinic, arrived)}"] if arrived else []
    when += [f"by {event.actor_label}"] if event else []
    said = f" ({', '.join(when)})" if when else ""
    return f"{who} is checked in already{said}; nothing more to do for this code."


def arrival_text(session: Session, actor: Actor, appointment_id: int) -> str:
    """Who was checked in, for the desk: 'Checked in: Ivy Walker, Blood test at 11:00 (#3962).'
    (patient text: the page escapes it)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    who = appointment.patient.full_name if appointment.patient else "no patient"
    what = treatment_of(appointment)
    text = f"Checked in: {who}" + (f", {what}" if what else "")
    if appointment.start_at is not None:
        local = to_local(appointment.start_at, appointment.clinic.timezone)
        text += f" at {format_clock(local, appointment.clinic.locale)}"
    return f"{text} (#{appointment.id})."


def issue_code_for(session: Session, actor: Actor, appointment_id: int) -> tuple[str, bytes]:
    """A fresh check-in code and its QR image for an appointment (to show or print)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or appointment.kind != AppointmentKind.APPOINTMENT:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    if appointment.status != AppointmentStatus.SCHEDULED or appointment.start_at is None:
        raise ValidationError("Only a scheduled appointment has a check-in code.")
    code = issue_code(session, appointment)
    return code, qr_png(code)


def decode_qr(image_bytes: bytes) -> str:
    """The text of the first QR code in a picture (a camera shot or an uploaded file)."""
    if not image_bytes:
        raise ValidationError("The picture is empty; take it again.")
    if len(image_bytes) > MAX_IMAGE_BYTES:
        raise ValidationError("The picture is too large (at most 15 MB).")
    try:
        image = Image.open(io.BytesIO(image_bytes))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        raise ValidationError("This file is not a picture ClinicDesk can read.") from None
    found = [
        r
        for r in zxingcpp.read_barcodes(image.convert("RGB"))
        if r.valid and r.format == zxingcpp.BarcodeFormat.QRCode
    ]
    if not found:
        raise ValidationError(
            "No QR code found in the picture. Hold the code flat, closer and in good light, or "
            "type the code under it."
        )
    return found[0].text
