"""Packages as something to book: a package's services in their order (each still offered),
and the packages a booking or request form offers (those whose every service it offers)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.errors import ValidationError
from core.practice.skills import performed_packages
from core.practice.timing import timing_of
from db.models import Package, PackageService, Service


@dataclass(frozen=True)
class PackageOffer:
    id: int
    name: str
    service_names: tuple[str, ...]
    minutes: int  # the services' durations and the buffers between them
    price_cents: int

    @property
    def label(self) -> str:
        return f"Package: {self.name} ({' + '.join(self.service_names)})"


def package_services(session: Session, package_id: int) -> tuple[Package, list[Service]]:
    """The active package and its services in booking order, or a ValidationError saying why
    it cannot be booked."""
    package = session.get(Package, package_id)
    if package is None or not package.active:
        raise ValidationError("Choose a package the practice offers.")
    services = list(
        session.scalars(
            select(Service)
            .join(PackageService, PackageService.service_id == Service.id)
            .where(PackageService.package_id == package.id)
            .order_by(PackageService.position, Service.id)
        )
    )
    retired = [s.name for s in services if not s.active]
    if retired:
        raise ValidationError(
            f"The package {package.name} includes {', '.join(retired)}, which is no longer "
            "offered; book its services one by one."
        )
    if not services:
        raise ValidationError(f"The package {package.name} has no services; choose them first.")
    return package, services


def offered_packages(session: Session, *, online_only: bool) -> list[PackageOffer]:
    """Active packages whose every service is active (and, `online_only`, may be requested
    online) and that one active provider performs whole, by name: offered wherever their
    services are."""
    rows = session.execute(
        select(Package.id, Package.name, Package.price_cents, Service)
        .join(PackageService, PackageService.package_id == Package.id)
        .join(Service, Service.id == PackageService.service_id)
        .where(Package.active.is_(True))
        .order_by(Package.name, Package.id, PackageService.position, Service.id)
    )
    found: dict[int, tuple[str, int, list[Service]]] = {}
    for package_id, name, price, service in rows:
        found.setdefault(package_id, (name, price, []))[2].append(service)
    performed = performed_packages(
        session, {package_id: [s.id for s in found[package_id][2]] for package_id in found}
    )
    return [
        PackageOffer(
            package_id,
            name,
            tuple(s.name for s in services),
            timing_of(services).minutes,
            price,
        )
        for package_id, (name, price, services) in found.items()
        if all(s.active and (s.online_allowed or not online_only) for s in services)
        and package_id in performed
    ]
