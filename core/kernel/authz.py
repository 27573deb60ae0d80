"""Who may do what. Every service that changes or reveals data calls `ensure` first.

The matrix below is the single source: the navigation is built from it, and the README shows it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.kernel.errors import PermissionDenied
from db.models import Role


class Permission(enum.StrEnum):
    QUEUE_WORK = "work the request queue"
    REQUESTS_DECIDE = "approve, decline or propose on requests"
    APPOINTMENTS_READ = "see appointments and the calendar"
    APPOINTMENTS_BOOK = "book appointments in office"
    APPOINTMENTS_RESCHEDULE = "move appointments"
    APPOINTMENTS_CANCEL = "cancel appointments"
    APPOINTMENTS_CHECK_IN = "check patients in and mark visits done"
    SCHEDULES_MANAGE = "set provider hours and time off"
    PATIENTS_READ = "see patient records"
    PATIENTS_EDIT = "create and edit patients"
    PATIENTS_MERGE = "merge duplicate patient records"
    INVITATIONS_SEND = "send portal invitations"
    FEEDBACK_REQUEST = "send feedback requests"
    FEES_WAIVE = "waive fees"
    NOTIFICATIONS_READ = "see the notification outbox"
    NOTIFICATIONS_MANAGE = "retry notifications and edit templates"
    ANALYTICS_READ = "read cancellation and survey analytics"
    DATA_EXPORT = "export patient data"
    DATA_IMPORT = "import data"
    POLICY_MANAGE = "set the cancellation policy"
    TRAVEL_TIME_SET = "set the travel time between clinics"
    SURVEYS_MANAGE = "set the survey questions and timing"
    PRACTICE_READ = "see the practice set-up"
    PRACTICE_MANAGE = "set up clinics, providers, services, packages and resources"
    USERS_MANAGE = "manage user accounts"
    AUDIT_READ = "read the audit log"
    PAYMENTS_RECORD = "record payments, refunds and fees paid"
    POINTS_ADJUST = "adjust patient points"
    PAYMENTS_MANAGE = "set prepayment rules and the value of a point"
    WAITLIST_EDIT = "put patients on the waitlist"
    WAITLIST_OFFER = "offer freed slots and set the waitlist rules"
    RISK_MANAGE = "train and run the no-show risk model"


P = Permission
_STAFF = {
    P.APPOINTMENTS_READ, P.APPOINTMENTS_BOOK, P.APPOINTMENTS_RESCHEDULE, P.APPOINTMENTS_CANCEL,
    P.APPOINTMENTS_CHECK_IN, P.PATIENTS_READ, P.PATIENTS_EDIT, P.INVITATIONS_SEND,
    P.FEEDBACK_REQUEST, P.NOTIFICATIONS_READ, P.PRACTICE_READ,
    P.PAYMENTS_RECORD, P.WAITLIST_EDIT,
}  # fmt: skip
_MANAGER = _STAFF | {
    P.QUEUE_WORK, P.REQUESTS_DECIDE, P.SCHEDULES_MANAGE, P.FEES_WAIVE, P.NOTIFICATIONS_MANAGE,
    P.PATIENTS_MERGE, P.ANALYTICS_READ, P.DATA_EXPORT, P.PRACTICE_MANAGE, P.POINTS_ADJUST,
    P.WAITLIST_OFFER, P.RISK_MANAGE,
}  # fmt: skip
MATRIX: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.MANAGER: frozenset(_MANAGER),
    Role.STAFF: frozenset(_STAFF),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, a patient through a link, or the system itself."""

    user_id: int | None
    name: str
    role: Role | None = None  # None for patients and the system
    # signed in with a password someone else chose (a new account, the owner's reset): may do
    # nothing but choose their own (accounts.change_own_password)
    password_change_due: bool = False

    def can(self, permission: Permission) -> bool:
        if self.password_change_due:
            return False
        return self.role is not None and permission in MATRIX[self.role]

    @property
    def label(self) -> str:
        return self.name


SYSTEM = Actor(user_id=None, name="System")


def patient_actor(patient_name: str = "", via: str = "link") -> Actor:
    """The patient acting through a signed link, the portal or a text message (`via`)."""
    return Actor(user_id=None, name=f"Patient {patient_name} ({via})".replace("  ", " "))


CHOOSE_OWN_FIRST = (
    "The password you signed in with was chosen by the practice owner, so nothing was done. "
    "Choose your own password first (Change your password), then carry on."
)


def ensure(actor: Actor | None, permission: Permission) -> None:
    """Raise PermissionDenied unless `actor` holds `permission`."""
    if actor is None:
        raise PermissionDenied("Please sign in first.")
    if actor.password_change_due:
        raise PermissionDenied(CHOOSE_OWN_FIRST)
    if actor is SYSTEM or actor.can(permission):
        return
    role = actor.role.value if actor.role else "a patient"
    raise PermissionDenied(
        f"Your role ({role}) may not {permission.value}. Ask the practice owner."
    )


def matrix_markdown() -> str:
    """The permission matrix as a Markdown table (README and the Users page show it)."""
    roles = list(Role)
    lines = [
        "| permission | " + " | ".join(r.value for r in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for permission in Permission:
        marks = ["✓" if permission in MATRIX[r] else "" for r in roles]
        lines.append(f"| {permission.value} | " + " | ".join(marks) + " |")
    return "\n".join(lines)
