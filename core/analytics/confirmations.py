"""How many scheduled-for appointments the patient confirmed (by reminder link or text reply),
for the cancellations page: of the appointments in the range that were reminded, how many were
confirmed for the time they then had."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_days_bounds
from db.models import Appointment, AppointmentConfirmation, AppointmentKind, Clinic, ReminderSent


@dataclass(frozen=True)
class ConfirmationRate:
    reminded: int  # appointments in the range that got at least one reminder
    confirmed: int  # of those, confirmed by the patient

    @property
    def rate(self) -> float | None:
        return self.confirmed / self.reminded if self.reminded else None


def confirmation_rate(
    session: Session, actor: Actor, first: date, last: date, clinic_id: int | None = None
) -> ConfirmationRate:
    ensure(actor, Permission.ANALYTICS_READ)
    clinics = session.execute(
        select(Clinic.id, Clinic.timezone).where(
            Clinic.id == clinic_id if clinic_id is not None else True
        )
    ).all()
    reminded = confirmed = 0
    for ident, tz in clinics:  # clinic-local days, one range per clinic
        start, end = local_days_bounds(first, last, tz)
        in_range = and_(
            Appointment.clinic_id == ident,
            Appointment.start_at >= start,
            Appointment.start_at < end,
            Appointment.kind == AppointmentKind.APPOINTMENT,
        )
        reminded += session.scalar(
            select(func.count(distinct(ReminderSent.appointment_id)))
            .join(Appointment, Appointment.id == ReminderSent.appointment_id)
            .where(in_range, ReminderSent.channels != "")
        )
        confirmed += session.scalar(
            select(func.count(distinct(AppointmentConfirmation.appointment_id)))
            .join(Appointment, Appointment.id == AppointmentConfirmation.appointment_id)
            .join(ReminderSent, ReminderSent.appointment_id == Appointment.id)
            .where(in_range, ReminderSent.channels != "")
        )
    return ConfirmationRate(reminded, confirmed)
