"""What a visit is, in words, wherever it is named (appointment page, confirmations, receipts):
a package by its name with its services, else the services. Below scheduling and payments so
both name a visit the same way."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from db.models import Appointment, AppointmentService, Package, Service


def services_of(appointment: Appointment) -> list[Service]:
    if appointment.services:
        return [s.service for s in appointment.services]
    return [appointment.service] if appointment.service else []


def price_of(appointment: Appointment) -> int:
    """The visit's price in minor units of its clinic's currency: its package's one price,
    otherwise its services' prices added up (0: a visit with no price). What prepayment asks
    for (core.payments) and a percentage fee is a share of (core.policy)."""
    if appointment.package is not None:
        return appointment.package.price_cents or 0
    return sum(s.price_cents or 0 for s in services_of(appointment))


def treatment_text(service_names: list[str], package_name: str | None = None) -> str:
    """What is booked, in words: "Skin renewal (Skin check + Chemical peel)" for a package,
    "Consultation + Blood test" for services."""
    names = " + ".join(service_names)
    if package_name:
        return f"{package_name} ({names})" if names else package_name
    return names


def treatment_of(appointment: Appointment) -> str:
    package = appointment.package.name if appointment.package else None
    return treatment_text([s.name for s in services_of(appointment)], package)


def more_services(session: Session, appointment_ids: Select) -> dict[int, list[str]]:
    """The services by name, in their booked order, of the visits `appointment_ids` (a query of
    ids, such as a calendar window's) that have more than one; a visit of one service is left
    out (its row names it). Two short queries on the index of second services, however many
    visits the query selects: their ids are never handed over one by one."""
    many = select(AppointmentService.appointment_id).where(
        AppointmentService.position > 0, AppointmentService.appointment_id.in_(appointment_ids)
    )
    return service_names(session, session.scalars(many.distinct()).all())


def service_names(session: Session, appointment_ids: Iterable[int]) -> dict[int, list[str]]:
    """The services of many visits by name, in their booked order, in one query (for lists that
    read rows, not appointments); a visit without service rows is left out."""
    names: dict[int, list[str]] = {}
    ids = list(appointment_ids)
    if not ids:
        return names
    query = (
        select(AppointmentService.appointment_id, Service.name)
        .join(Service, Service.id == AppointmentService.service_id)
        .where(AppointmentService.appointment_id.in_(ids))
        .order_by(AppointmentService.appointment_id, AppointmentService.position)
    )
    for ident, name in session.execute(query):
        names.setdefault(ident, []).append(name)
    return names


def treatment_texts(session: Session, appointment_ids: Iterable[int]) -> dict[int, str]:
    """The visits among `appointment_ids` booked as a package or with several services, in
    words as treatment_of names them ("Glow (Consultation + Peel)"), for lists that read a
    visit's first service by a join; a visit of one service is left out (its service names
    it). Two queries however many visits."""
    ids = list(dict.fromkeys(appointment_ids))
    if not ids:
        return {}
    names = service_names(session, ids)
    packages = dict(
        session.execute(
            select(Appointment.id, Package.name)
            .join(Package, Package.id == Appointment.package_id)
            .where(Appointment.id.in_(ids))
        ).all()
    )
    return {
        i: treatment_text(names.get(i, []), packages.get(i))
        for i in ids
        if i in packages or len(names.get(i, ())) > 1
    }
