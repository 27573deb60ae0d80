"""The page registry: which screen needs which permission. app.py builds st.navigation from it,
so a role never has a page registered that it may not use (and core checks again)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.authz import Actor, Permission

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    section: str
    permission: Permission
    hidden: bool = False  # reached by links only (e.g. an appointment's detail)

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file

    @property
    def url_path(self) -> str:
        return self.file.removesuffix(".py").replace("_", "-")


P = Permission
PAGES: tuple[PageSpec, ...] = (
    PageSpec("today.py", "Today", ":material/today:", "Front desk", P.APPOINTMENTS_READ),
    PageSpec("queue.py", "Request queue", ":material/inbox:", "Front desk", P.QUEUE_WORK),
    PageSpec("calendar.py", "Calendar", ":material/calendar_month:", "Front desk", P.APPOINTMENTS_READ),
    PageSpec("book.py", "New appointment", ":material/event_available:", "Front desk", P.APPOINTMENTS_BOOK),
    PageSpec("check_in.py", "Check-in", ":material/qr_code_scanner:", "Front desk", P.APPOINTMENTS_CHECK_IN),
    PageSpec("appointment.py", "Appointment", ":material/event_note:", "Front desk", P.APPOINTMENTS_READ, hidden=True),
    PageSpec("patients.py", "Patients", ":material/group:", "Patients", P.PATIENTS_READ),
    PageSpec("invitations.py", "Portal invitations", ":material/mail:", "Patients", P.INVITATIONS_SEND),
    PageSpec("cancellation_analytics.py", "Cancellations", ":material/event_busy:", "Reports", P.ANALYTICS_READ),
    PageSpec("survey_analytics.py", "Surveys", ":material/reviews:", "Reports", P.ANALYTICS_READ),
    PageSpec("schedules.py", "Provider schedules", ":material/schedule:", "Practice", P.SCHEDULES_MANAGE),
    PageSpec("policy.py", "Cancellation policy", ":material/policy:", "Practice", P.POLICY_MANAGE),
    PageSpec("notifications.py", "Notifications", ":material/outgoing_mail:", "Practice", P.NOTIFICATIONS_READ),
    PageSpec("data.py", "Import and export", ":material/swap_horiz:", "Practice", P.DATA_EXPORT),
    PageSpec("users.py", "Users", ":material/manage_accounts:", "Admin", P.USERS_MANAGE),
    PageSpec("audit_log.py", "Audit log", ":material/history:", "Admin", P.AUDIT_READ),
)  # fmt: skip
PATIENT_PAGE = PAGES_DIR / "patient.py"  # the public page behind signed patient links


def pages_for(actor: Actor) -> list[PageSpec]:
    """The pages this actor may use (those built so far)."""
    return [p for p in PAGES if actor.can(p.permission) and p.path.exists()]
