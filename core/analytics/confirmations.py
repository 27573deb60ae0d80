"""How many scheduled-for appointments the patient confirmed (by reminder link or text reply),
for the cancellations page: of the appointments in the range that were reminded, how many were
confirmed for the time they then had."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import Session

from core.analytics.cancellation_parts import holds_service
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_days_bounds
from db.models import Appointment, AppointmentConfirmation, Clinic, ReminderSent


@dataclass(frozen=True)
class ConfirmationRate:
    reminded: int  # appointments in the range that got at least one reminder
    confirmed: int  # of those, confirmed by the patient

    @property
    def rate(self) -> float | None:
        return self.confirmed / self.reminded if self.reminded else None


def confirmation_rate(
    session: Session,
    actor: Actor,
    first: date,
    last: date,
    clinic_id: int | None = None,
    provider_id: int | None = None,
    service_id: int | None = None,
) -> ConfirmationRate:
    """Of the reminded appointments starting on the clinic-local days `first`..`last` (each
    clinic's own), of the clinic, provider and service filtered on as the cancellation
    figures beside it are, how many the patient confirmed."""
    ensure(actor, Permission.ANALYTICS_READ)
    narrower = []
    if provider_id is not None:
        narrower.append(Appointment.provider_id == provider_id)
    if service_id is not None:
        narrower.append(holds_service(service_id))
    clinics = session.execute(
        select(Clinic.id, Clinic.timezone).where(
            Clinic.id == clinic_id if clinic_id is not None else True
        )
    ).all()
    reminded = confirmed = 0
    for ident, tz in clinics:  # clinic-local days, one range per clinic
        start, end = local_days_bounds(first, last, tz)
        # one pass from the clinic's (clinic_id, start_at) index: reminders go to appointments
        # only (core.messaging.reminders), so the join needs no look at each visit's kind
        row = session.execute(
            select(
                func.count(distinct(ReminderSent.appointment_id)),
                func.count(distinct(AppointmentConfirmation.appointment_id)),
            )
            .select_from(Appointment)
            # reminded of, and confirmed for, the start it has: a visit moved since is to be
            # reminded and confirmed again (its old confirmation is not one of this time)
            .join(
                ReminderSent,
                and_(
                    ReminderSent.appointment_id == Appointment.id,
                    ReminderSent.start_at == Appointment.start_at,
                ),
            )
            .outerjoin(
                AppointmentConfirmation,
                and_(
                    AppointmentConfirmation.appointment_id == Appointment.id,
                    AppointmentConfirmation.start_at == Appointment.start_at,
                ),
            )
            .where(
                Appointment.clinic_id == ident,
                Appointment.start_at >= start,
                Appointment.start_at < end,
                ReminderSent.channels != "",
                *narrower,
            )
        ).one()
        reminded, confirmed = reminded + row[0], confirmed + row[1]
    return ConfirmationRate(reminded, confirmed)
