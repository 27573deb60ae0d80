"""What the set-up pages show: every clinic, provider, service, resource and package (active
or not) with the fields their edit forms need, as named rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.money import currency_locales
from core.practice.setup import ClinicData, PackageData, ProviderData, ResourceData, ServiceData
from db.models import (
    Clinic,
    Package,
    PackageService,
    Provider,
    ProviderClinic,
    ProviderService,
    Resource,
    Service,
    ServiceResource,
    User,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Row(Generic[T]):
    id: int
    data: T

    @property
    def name(self) -> str:
        return self.data.name


@dataclass(frozen=True)
class UserOption:
    id: int
    name: str


@dataclass(frozen=True)
class Setup:
    clinics: list[Row[ClinicData]]
    providers: list[Row[ProviderData]]
    services: list[Row[ServiceData]]
    resources: list[Row[ResourceData]]
    packages: list[Row[PackageData]]
    users: list[UserOption]
    # the active clinics' currencies, each in the locale of the first clinic charging in it
    # (core.kernel.money.currency_locales): what a price is charged in and how it is written
    currencies: dict[str, str]

    def clinic_name(self, clinic_id: int) -> str:
        return next((c.name for c in self.clinics if c.id == clinic_id), f"#{clinic_id}")


def _pairs(session: Session, a, b) -> dict[int, tuple[int, ...]]:
    found: dict[int, list[int]] = defaultdict(list)
    for x, y in session.execute(select(a, b).order_by(a, b)):
        found[x].append(y)
    return {k: tuple(v) for k, v in found.items()}


def overview(session: Session, actor: Actor) -> Setup:
    ensure(actor, Permission.PRACTICE_READ)
    clinics = [
        Row(
            c.id,
            ClinicData(
                c.name, c.timezone, c.address, c.phone, c.email, c.locale, c.currency, c.active
            ),
        )
        for c in session.scalars(select(Clinic).order_by(Clinic.name))
    ]
    works = _pairs(session, ProviderClinic.provider_id, ProviderClinic.clinic_id)
    performs = _pairs(session, ProviderService.provider_id, ProviderService.service_id)
    performed_by = _pairs(session, ProviderService.service_id, ProviderService.provider_id)
    needs = _pairs(session, ServiceResource.service_id, ServiceResource.resource_id)
    providers = [
        Row(
            p.id,
            ProviderData(
                p.name,
                p.title,
                p.email,
                p.colour,
                works.get(p.id, ()),
                performs.get(p.id, ()),
                p.user_id,
                p.active,
            ),
        )
        for p in session.scalars(select(Provider).order_by(Provider.name, Provider.id))
    ]
    services = [
        Row(
            s.id,
            ServiceData(
                s.name,
                s.duration_minutes,
                s.category,
                s.buffer_before_minutes,
                s.buffer_after_minutes,
                s.price_cents,
                s.virtual_allowed,
                s.online_allowed,
                performed_by.get(s.id, ()),
                needs.get(s.id, ()),
                s.active,
            ),
        )
        for s in session.scalars(select(Service).order_by(Service.name))
    ]
    resources = [
        Row(r.id, ResourceData(r.clinic_id, r.name, r.kind, r.quantity, r.active))
        for r in session.scalars(select(Resource).order_by(Resource.clinic_id, Resource.name))
    ]
    members: dict[int, list[int]] = defaultdict(list)
    for pkg, sid in session.execute(
        select(PackageService.package_id, PackageService.service_id).order_by(
            PackageService.package_id, PackageService.position
        )
    ):
        members[pkg].append(sid)
    packages = [
        Row(p.id, PackageData(p.name, tuple(members.get(p.id, [])), p.price_cents, p.active))
        for p in session.scalars(select(Package).order_by(Package.name))
    ]
    users = [
        UserOption(u.id, u.display_name)
        for u in session.scalars(select(User).where(User.active).order_by(User.display_name))
    ]
    currencies = currency_locales(session, active_only=True)
    return Setup(clinics, providers, services, resources, packages, users, currencies)
