"""The set-up checklist: what a new practice must have before its first booking. The Practice
section shows it until every step is done."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from db.models import (
    CancellationPolicy,
    Clinic,
    DeliveryStatus,
    Notification,
    Provider,
    Role,
    Service,
    User,
    WorkingHours,
)

TEST_MESSAGE_TEMPLATE = "setup_test_message"


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    done: bool
    page: str  # the app page file that does this step
    hint: str


@dataclass(frozen=True)
class Checklist:
    steps: list[Step]

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.steps)

    @property
    def done_count(self) -> int:
        return sum(s.done for s in self.steps)

    @property
    def next_step(self) -> Step | None:
        """The first step not done yet (None once every one is): what a page suggests next."""
        return next((s for s in self.steps if not s.done), None)


def _exists(session: Session, query) -> bool:
    return session.scalar(query.limit(1)) is not None


def _providers_step(session: Session) -> Step:
    """Done once there are active providers and each has weekly hours somewhere: a provider
    without any cannot be booked, so the step names them and leads to Provider schedules."""
    hours = select(WorkingHours.id).where(WorkingHours.provider_id == Provider.id)
    idle = list(
        session.scalars(
            select(Provider.name)
            .where(Provider.active.is_(True), ~hours.exists())
            .order_by(Provider.name)
            .limit(4)
        )
    )
    title = "Add providers and their weekly hours"
    if idle:
        names = ", ".join(idle[:3]) + (" and others" if len(idle) > 3 else "")
        has = "has" if len(idle) == 1 else "have"
        hint = f"{names} {has} no weekly hours yet, so nobody can book them."
        return Step("providers", title, False, "schedules.py", hint)
    done = _exists(session, select(Provider.id).where(Provider.active))
    hint = "Who works at which clinic, and when (hours on Provider schedules)."
    return Step("providers", title, done, "providers.py", hint)


def checklist(session: Session, actor: Actor) -> Checklist:
    ensure(actor, Permission.PRACTICE_READ)
    steps = [
        Step(
            "clinic",
            "Add your clinic",
            _exists(session, select(Clinic.id).where(Clinic.active)),
            "clinics.py",
            "Name, address, time zone, locale and currency.",
        ),
        Step(
            "services",
            "Add the services you offer",
            _exists(session, select(Service.id).where(Service.active)),
            "services.py",
            "Duration, buffers, price, the rooms or equipment each needs.",
        ),
        _providers_step(session),
        Step(
            "staff",
            "Create staff accounts",
            _exists(session, select(User.id).where(User.active, User.role != Role.OWNER)),
            "users.py",
            "A manager or front-desk account for each colleague.",
        ),
        Step(
            "policy",
            "Set the cancellation policy",
            _exists(session, select(CancellationPolicy.id)),
            "policy.py",
            "The window, fees and what patients may do online.",
        ),
        Step(
            "messages",
            "Send a test message",
            _exists(
                session,
                select(Notification.id).where(
                    Notification.template == TEST_MESSAGE_TEMPLATE,
                    Notification.status == DeliveryStatus.SENT,
                ),
            ),
            "practice.py",
            "Proves that email (SMTP) or SMS sending works.",
        ),
    ]
    return Checklist(steps)
