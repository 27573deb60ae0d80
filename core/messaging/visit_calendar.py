"""One visit as an iCalendar file for the patient's own calendar: attached to the messages that
say when a visit is (booked, moved, cancelled; notify.CALENDAR_FILE) and offered in the portal.

The event's UID is the same for every file of one visit and its SEQUENCE is the visit's version,
so a calendar that imported an earlier file updates that event (a moved visit moves, a
cancelled one says STATUS:CANCELLED) instead of adding a second one. Times are UTC; each
calendar shows them in its own zone. The file says what the patient's messages say (treatment,
clinic, its address or "Video visit", provider, the clinic's phone) and never the notes; every
value is a TEXT property, escaped by icalendar, so no name can add a line of its own.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlparse

from icalendar import Calendar, Event

from core.kernel.clock import to_local
from core.kernel.config import DEFAULT_BASE_URL
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


def visit_uid(appointment_id: int, base_url: str = DEFAULT_BASE_URL) -> str:
    """The visit's event UID in every file: its number at the practice's own host."""
    return f"visit-{appointment_id}@{urlparse(base_url).hostname or 'clinicdesk'}"


def file_name(appointment: Appointment) -> str:
    """'lakeside-aesthetics-2026-12-07.ics': the clinic and the visit's local day."""
    clinic = appointment.clinic
    slug = "".join(ch if ch.isalnum() else "-" for ch in clinic.name.lower()).strip("-")
    day = to_local(appointment.start_at, clinic.timezone).date()
    return f"{slug[:40].strip('-') or 'visit'}-{day.isoformat()}.ics"


def visit_file(
    appointment: Appointment, *, base_url: str = DEFAULT_BASE_URL, now: datetime | None = None
) -> tuple[str, bytes] | None:
    """(file name, .ics content) for a visit with a time, else None (a request of a day)."""
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
    calendar = Calendar()
    calendar.add("prodid", "-//ClinicDesk//Patient visit//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    calendar.add_component(event)
    return file_name(appointment), calendar.to_ical()
