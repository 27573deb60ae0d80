"""Which services a provider performs ("Services they perform" on the Providers page).

A provider with services listed performs only those; one with none listed performs every
service, so a practice books before it has listed them (and a file or test without the lists
keeps working). One provider takes a whole visit, so a package is performed by a provider who
performs each of its services. Booking, approvals, proposals, moves to another provider, slot
suggestions, the packages offered and the waitlist's offers all ask here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.errors import ValidationError
from db.models import PackageService, Provider, ProviderService, Service


def _services_of(session: Session, owner, service, owner_ids: Iterable[int]):
    """The services of each owner (a provider's listed ones, a package's members) in one query:
    `owner` and `service` are the link table's columns; owners without any are absent."""
    ids = list(dict.fromkeys(owner_ids))
    found: dict[int, set[int]] = defaultdict(set)
    if ids:
        for owner_id, service_id in session.execute(select(owner, service).where(owner.in_(ids))):
            found[owner_id].add(service_id)
    return {owner_id: frozenset(sids) for owner_id, sids in found.items()}


def listed_services(session: Session, provider_ids: Iterable[int]) -> dict[int, frozenset[int]]:
    """The services each provider has listed (absent: none listed, so every service)."""
    return _services_of(
        session, ProviderService.provider_id, ProviderService.service_id, provider_ids
    )


def performs(listed: frozenset[int] | None, service_ids: Iterable[int]) -> bool:
    """Whether a provider with `listed` services (empty or None: none listed) performs all."""
    return not listed or set(service_ids) <= listed


def able(session: Session, provider_ids: Iterable[int], service_ids: Iterable[int]) -> set[int]:
    """The providers among `provider_ids` who perform every one of the services."""
    ids, wanted = list(provider_ids), set(service_ids)
    listed = listed_services(session, ids)
    return {pid for pid in ids if performs(listed.get(pid), wanted)}


class Wanted(Protocol):
    """What a waitlist entry or a request waits for: a package (its services, booked as one
    visit), or else one service."""

    service_id: int | None
    package_id: int | None


W = TypeVar("W", bound=Wanted)


def package_members(session: Session, package_ids: Iterable[int]) -> dict[int, frozenset[int]]:
    """Each package's services, one query for all of them."""
    return _services_of(session, PackageService.package_id, PackageService.service_id, package_ids)


def performed_by(session: Session, provider_id: int, wanted: Sequence[W]) -> list[W]:
    """Those of `wanted` (waitlist entries, requests) whose every service the provider
    performs, a package's services each counted: one query for the services they list and,
    when they list some, one for the packages' services."""
    listed = listed_services(session, [provider_id]).get(provider_id)
    if not listed:
        return list(wanted)  # none listed: they perform every service
    members = package_members(session, (w.package_id for w in wanted if w.package_id is not None))
    return [
        w
        for w in wanted
        if performs(
            listed,
            members.get(w.package_id, frozenset()) if w.package_id is not None else {w.service_id},
        )
    ]


def performed_packages(session: Session, packages: dict[int, Iterable[int]]) -> set[int]:
    """The packages (id: its service ids) that one active provider performs whole."""
    active = list(session.scalars(select(Provider.id).where(Provider.active.is_(True))))
    listed = listed_services(session, active)
    return {
        pid
        for pid, sids in packages.items()
        if any(performs(listed.get(provider), sids) for provider in active)
    }


def not_performed(session: Session, provider_id: int, service_ids: Iterable[int]) -> list[str]:
    """The names of the services (in the order given) the provider does not perform."""
    wanted = list(dict.fromkeys(service_ids))
    listed = listed_services(session, [provider_id]).get(provider_id)
    if performs(listed, wanted):
        return []
    names = dict(
        session.execute(select(Service.id, Service.name).where(Service.id.in_(wanted))).all()
    )
    return [names.get(sid, f"#{sid}") for sid in wanted if sid not in listed]


def ensure_performs(session: Session, provider: Provider, service_ids: Iterable[int]) -> None:
    """Refuse a provider who does not perform every service of the visit, naming the gap."""
    missing = not_performed(session, provider.id, service_ids)
    if missing:
        raise ValidationError(
            f"{provider.name} does not perform {_and(missing)}. Choose a provider who does, "
            "or add it to their services on the Providers page."
        )


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
