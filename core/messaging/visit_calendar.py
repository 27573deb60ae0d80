"""One visit as an iCalendar file for the patient's own calendar: attached to the messages that
say when a visit is (booked, moved, cancelled; notify.CALENDAR_FILE) and offered in the portal.

The event's UID is the same for every file of one visit and its SEQUENCE is the visit's version,
so a calendar that imported an earlier file updates that event (a moved visit moves) instead of
adding a second one. Times are UTC; each calendar shows them in its own zone. The file says what
the patient's messages say (treatment, clinic, its address or "Video visit", provider, the
clinic's phone) and never the notes; every value is a TEXT property, escaped by icalendar, so no
name can add a line of its own.

The file is an iTIP object (RFC 5546). A visit with its time is PUBLISHed (3.2.1): an
unsolicited posting the patient's calendar adds, which MUST name its ORGANIZER and MUST NOT
name an ATTENDEE. A cancelled or declined visit is a CANCEL (3.2.5), the way the organizer of a
published event takes it out again: the same UID, STATUS:CANCELLED and a higher SEQUENCE (the
cancellation grew the visit's version). CANCEL lets ATTENDEE be absent (0+) and asks only for
the attendees being removed, and a published event has none, so no file names the patient: an
ATTENDEE would make a calendar treat the file as an invitation the patient is to answer.
(Before, a cancelled visit's file was a PUBLISH of STATUS:CANCELLED, which iTIP does not make a
cancellation: a calendar could keep the event.)

The ORGANIZER is the clinic, its name as the CN parameter (escaped by icalendar, RFC 6868 for a
quote), at the address the practice's messages go from (SMTP_FROM: `sender`, handed over by the
caller from session.info["sender"], SENDER), so the file's organizer is the email's From. The
email's part says the file's METHOD as its `method` parameter (method_of; RFC 6047 2.4):
Outlook ignores a file whose part says another.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parseaddr
from urllib.parse import urlparse

from icalendar import Calendar, Event, vCalAddress, vText

from core.kernel.clock import to_local
from core.kernel.config import DEFAULT_BASE_URL, SmtpSettings
from core.practice.treatment import treatment_of
from db.models import Appointment, AppointmentStatus, VisitMode
from db.types import utcnow

S = AppointmentStatus
MIME = "text/calendar"
STATUS = {
    S.REQUESTED: "TENTATIVE",
    S.TENTATIVE: "TENTATIVE",
    S.SCHEDULED: "CONFIRMED",
    S.CHECKED_IN: "CONFIRMED",
    S.COMPLETED: "CONFIRMED",
    S.NO_SHOW: "CONFIRMED",
    S.CANCELLED: "CANCELLED",
    S.DECLINED: "CANCELLED",
}
VIDEO = "Video visit"
OFF = frozenset({S.CANCELLED, S.DECLINED})  # taken out of the calendar: METHOD:CANCEL
SENDER = "sender"  # the session.info key of SMTP_FROM, the messages' From header
DEFAULT_SENDER = SmtpSettings.sender  # their From with no SMTP_FROM set


def visit_uid(appointment_id: int, base_url: str = DEFAULT_BASE_URL) -> str:
    """The visit's event UID in every file: its number at the practice's own host."""
    return f"visit-{appointment_id}@{urlparse(base_url).hostname or 'clinicdesk'}"


def file_name(appointment: Appointment) -> str:
    """'lakeside-aesthetics-2026-12-07.ics': the clinic and the visit's local day."""
    clinic = appointment.clinic
    slug = "".join(ch if ch.isalnum() else "-" for ch in clinic.name.lower()).strip("-")
    day = to_local(appointment.start_at, clinic.timezone).date()
    return f"{slug[:40].strip('-') or 'visit'}-{day.isoformat()}.ics"


def organizer(clinic_name: str, sender: str) -> vCalAddress:
    """The clinic (CN) at the address of `sender`, a From header ('Desk <desk@example.org>')."""
    address = parseaddr(sender)[1] or parseaddr(DEFAULT_SENDER)[1]
    value = vCalAddress(f"mailto:{address}")
    value.params["CN"] = vText(clinic_name)
    return value


def method_of(content: bytes) -> str | None:
    """The iCalendar file's METHOD ('PUBLISH', 'CANCEL'), None for a file without one or that
    icalendar cannot read: the text/calendar part's `method` parameter (RFC 6047 2.4), which
    is given if and only if the file has a METHOD (RFC 5545 8.1)."""
    try:
        method = Calendar.from_ical(content).get("METHOD")
    except ValueError:
        return None
    return str(method).upper() if method else None


def visit_file(
    appointment: Appointment,
    *,
    base_url: str = DEFAULT_BASE_URL,
    sender: str = DEFAULT_SENDER,
    now: datetime | None = None,
) -> tuple[str, bytes] | None:
    """(file name, .ics content) for a visit with a time, else None (a request of a day): a
    PUBLISH, or a CANCEL for a visit cancelled or declined; `sender` is the messages' From."""
    if appointment.start_at is None or appointment.end_at is None:
        return None
    clinic = appointment.clinic
    treatment = treatment_of(appointment) or "Appointment"
    virtual = appointment.mode == VisitMode.VIRTUAL
    event = Event()
    event.add("uid", visit_uid(appointment.id, base_url))
    event.add("sequence", appointment.version)
    event.add("dtstamp", now or utcnow())
    event.add("dtstart", appointment.start_at)
    event.add("dtend", appointment.end_at)
    event.add("summary", f"{treatment} at {clinic.name}")
    event.add("location", VIDEO if virtual else (clinic.address or "").strip() or clinic.name)
    who = appointment.provider.name if appointment.provider else "our team"
    phone = f" · {clinic.phone}" if clinic.phone else ""
    event.add("description", f"{treatment} with {who}.\n{clinic.name}{phone}")
    event.add("status", STATUS[appointment.status])
    event.add("organizer", organizer(clinic.name, sender))
    calendar = Calendar()
    calendar.add("prodid", "-//ClinicDesk//Patient visit//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if appointment.status in OFF else "PUBLISH")
    calendar.add_component(event)
    return file_name(appointment), calendar.to_ical()
