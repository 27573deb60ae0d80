"""The page registry: which screen needs which permission. app.py builds st.navigation from it,
so a role never has a page registered that it may not use (and core checks again)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.kernel.authz import MATRIX, Actor, Permission
from ui.context import require_actor
from ui.text import escape

PAGES_DIR = Path(__file__).resolve().parent.parent / "app_pages"


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    symbol: str  # a Material symbol's name
    section: str
    permission: Permission
    hidden: bool = False  # reached by links only (e.g. an appointment's detail)

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file

    @property
    def icon(self) -> str:
        return f":material/{self.symbol}:"

    @property
    def url_path(self) -> str:
        return self.file.removesuffix(".py").replace("_", "-")


P = Permission
DESK, PATIENTS, REPORTS, PRACTICE, ADMIN = "Front desk", "Patients", "Reports", "Practice", "Admin"
PAGES: tuple[PageSpec, ...] = (
    PageSpec("today.py", "Today", "today", DESK, P.APPOINTMENTS_READ),
    PageSpec("queue.py", "Request queue", "inbox", DESK, P.QUEUE_WORK),
    PageSpec("calendar.py", "Calendar", "calendar_month", DESK, P.APPOINTMENTS_READ),
    PageSpec("book.py", "New appointment", "event_available", DESK, P.APPOINTMENTS_BOOK),
    PageSpec("check_in.py", "Check-in", "qr_code_scanner", DESK, P.APPOINTMENTS_CHECK_IN),
    PageSpec("text_replies.py", "Text replies", "sms", DESK, P.NOTIFICATIONS_READ),
    PageSpec("waitlist.py", "Waitlist", "hourglass", DESK, P.WAITLIST_EDIT),
    PageSpec("call_list.py", "Call list", "call", DESK, P.APPOINTMENTS_READ),
    PageSpec("cash_up.py", "Cash-up", "point_of_sale", DESK, P.PAYMENTS_RECORD),
    PageSpec("appointment.py", "Appointment", "event_note", DESK, P.APPOINTMENTS_READ, hidden=True),
    PageSpec("patients.py", "Patients", "group", PATIENTS, P.PATIENTS_READ),
    PageSpec("invitations.py", "Portal invitations", "mail", PATIENTS, P.INVITATIONS_SEND),
    PageSpec("cancellation_analytics.py", "Cancellations", "event_busy", REPORTS, P.ANALYTICS_READ),
    PageSpec("survey_analytics.py", "Surveys", "reviews", REPORTS, P.ANALYTICS_READ),
    PageSpec("practice.py", "Practice set-up", "checklist", PRACTICE, P.PRACTICE_READ),
    PageSpec("clinics.py", "Clinics and rooms", "apartment", PRACTICE, P.PRACTICE_READ),
    PageSpec("providers.py", "Providers", "badge", PRACTICE, P.PRACTICE_READ),
    PageSpec("services.py", "Services", "medical_services", PRACTICE, P.PRACTICE_READ),
    PageSpec("packages.py", "Packages", "inventory_2", PRACTICE, P.PRACTICE_READ),
    PageSpec("no_show_risk.py", "No-show risk", "model_training", REPORTS, P.ANALYTICS_READ),
    PageSpec("schedules.py", "Provider schedules", "schedule", PRACTICE, P.SCHEDULES_MANAGE),
    PageSpec("policy.py", "Cancellation policy", "policy", PRACTICE, P.POLICY_MANAGE),
    PageSpec("payments.py", "Payments and points", "payments", PRACTICE, P.POINTS_ADJUST),
    PageSpec("notifications.py", "Notifications", "outgoing_mail", PRACTICE, P.NOTIFICATIONS_READ),
    PageSpec("messages.py", "Reminders and notices", "alarm", PRACTICE, P.NOTIFICATIONS_MANAGE),
    PageSpec("data.py", "Import and export", "swap_horiz", PRACTICE, P.DATA_EXPORT),
    PageSpec("users.py", "Users", "manage_accounts", ADMIN, P.USERS_MANAGE),
    PageSpec("audit_log.py", "Audit log", "history", ADMIN, P.AUDIT_READ),
)  # fmt: skip
PATIENT_PAGE = PAGES_DIR / "patient.py"  # the public page behind signed patient links
PORTAL_PAGE = PAGES_DIR / "portal.py"  # the patient portal: its own sign-in and session


def pages_for(actor: Actor) -> list[PageSpec]:
    """The pages this actor may use."""
    return [p for p in PAGES if actor.can(p.permission)]


def refused_for(actor: Actor) -> list[PageSpec]:
    """The pages this actor may not use: their addresses (a colleague's bookmark or link) open
    `refused` instead of Streamlit's "Page not found", which then runs another page."""
    return [p for p in PAGES if not actor.can(p.permission)]


def refused(spec: PageSpec) -> None:
    """What a role that may not use a page sees at its address: whose page it is, and what to
    do. The page's own file never runs for this role (and its services refuse it anyway)."""
    actor = require_actor()  # this run's: the page objects are kept per session and role
    may = [role.value for role in MATRIX if spec.permission in MATRIX[role]] or ["owner"]
    ask = may[-1]  # the role closest to theirs that may
    st.title(spec.title)
    st.warning(
        escape(
            f"{spec.title} is for {' and '.join(f'{r}s' for r in may)}: you are signed in as "
            f"{actor.name} ({actor.role.value}), who may not {spec.permission.value}. Nothing "
            f"was opened or changed. Ask {'an' if ask[0] in 'aeiou' else 'a'} {ask} to do it, "
            "or go back to Today."
        ),
        icon=":material/lock:",
    )
    st.page_link(str(PAGES_DIR / "today.py"), label="Today", icon=":material/today:")
