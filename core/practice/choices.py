"""The one reader of clinic, provider, service and package choices: named fields, never tuples
indexed by position. Pages use it for every select box of the practice's things."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.practice.skills import performed_packages
from db.models import (
    Clinic,
    Package,
    PackageService,
    Provider,
    ProviderClinic,
    Service,
    WorkingHours,
)


@dataclass(frozen=True)
class ClinicChoice:
    id: int
    name: str
    timezone: str
    locale: str
    currency: str
    active: bool


@dataclass(frozen=True)
class ProviderChoice:
    id: int
    name: str
    colour: str
    active: bool
    clinic_ids: tuple[int, ...]
    user_id: int | None


@dataclass(frozen=True)
class ServiceChoice:
    id: int
    name: str
    duration_minutes: int
    price_cents: int
    virtual_allowed: bool
    online_allowed: bool
    active: bool
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0

    @property
    def label(self) -> str:
        virtual = ", can be virtual" if self.virtual_allowed else ""
        return f"{self.name} ({self.duration_minutes} min{virtual})"


@dataclass(frozen=True)
class PackageChoice:
    id: int
    name: str
    service_ids: tuple[int, ...]
    price_cents: int
    active: bool
    performed: bool = True  # one active provider performs all its services (core.practice.skills)


@dataclass(frozen=True)
class Choices:
    clinics: list[ClinicChoice]
    providers: list[ProviderChoice]
    services: list[ServiceChoice]
    packages: list[PackageChoice]

    def clinic(self, clinic_id: int) -> ClinicChoice | None:
        return next((c for c in self.clinics if c.id == clinic_id), None)

    def providers_at(self, clinic_id: int) -> list[ProviderChoice]:
        return [p for p in self.providers if clinic_id in p.clinic_ids]


def list_choices(
    session: Session,
    actor: Actor,
    *,
    include_inactive: bool = False,
    permission: Permission = Permission.APPOINTMENTS_READ,
) -> Choices:
    """Clinics, providers, services and packages by name (active ones unless asked), with the
    clinics each provider works at. `permission` is what the caller's page needs."""
    ensure(actor, permission)

    def active(model):
        return [] if include_inactive else [model.active.is_(True)]

    clinics = [
        ClinicChoice(c.id, c.name, c.timezone, c.locale, c.currency, c.active)
        for c in session.scalars(select(Clinic).where(*active(Clinic)).order_by(Clinic.name))
    ]
    works: dict[int, list[int]] = {}
    linked = select(ProviderClinic.provider_id, ProviderClinic.clinic_id).union(
        select(WorkingHours.provider_id, WorkingHours.clinic_id)
    )
    for pid, cid in session.execute(linked):
        works.setdefault(pid, []).append(cid)
    providers = [
        ProviderChoice(
            p.id, p.name, p.colour, p.active, tuple(sorted(works.get(p.id, []))), p.user_id
        )
        for p in session.scalars(
            select(Provider).where(*active(Provider)).order_by(Provider.name, Provider.id)
        )
    ]
    services = [
        ServiceChoice(
            s.id,
            s.name,
            s.duration_minutes,
            s.price_cents,
            s.virtual_allowed,
            s.online_allowed,
            s.active,
            s.buffer_before_minutes,
            s.buffer_after_minutes,
        )
        for s in session.scalars(select(Service).where(*active(Service)).order_by(Service.name))
    ]
    members: dict[int, list[int]] = {}
    for pkg, sid in session.execute(
        select(PackageService.package_id, PackageService.service_id).order_by(
            PackageService.package_id, PackageService.position
        )
    ):
        members.setdefault(pkg, []).append(sid)
    performed = performed_packages(session, members)
    packages = [
        PackageChoice(
            p.id, p.name, tuple(members.get(p.id, [])), p.price_cents, p.active, p.id in performed
        )
        for p in session.scalars(select(Package).where(*active(Package)).order_by(Package.name))
    ]
    return Choices(clinics, providers, services, packages)
