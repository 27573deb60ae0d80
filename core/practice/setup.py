"""Create, edit and deactivate the practice's clinics, providers, services, rooms and equipment
and packages. Nothing is deleted: a deactivated provider or service stays on past appointments
and in reports, and can be activated again. Every change is audited with the fields it changed.

Each `save_*` takes the complete new state as a frozen dataclass, creates the row when `id` is
None and updates it otherwise; `find_*_id` looks a row up by name (the practice file uses them).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import available_timezones

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import NotFound, ValidationError
from core.kernel.money import MAX_MINOR, ClinicFormat, clinic_money, clinic_time, format_moment
from core.kernel.phones import international
from core.practice.treatment import price_of
from db.models import (
    OCCUPYING,
    Appointment,
    AppointmentService,
    AppointmentStatus,
    CancellationPolicy,
    Clinic,
    FeeBasis,
    LedgerEntry,
    LedgerKind,
    Package,
    PackageService,
    Payment,
    Provider,
    ProviderClinic,
    ProviderService,
    Resource,
    ResourceKind,
    Service,
    ServiceResource,
    User,
    WorkingHours,
)
from db.types import utcnow

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
RESOURCE_KINDS = [k.value for k in ResourceKind]
# The locales the clinic form offers; save_clinic accepts any Babel locale, and the form always
# offers a clinic's stored one too.
LOCALES = (
    "en-GB",
    "en-US",
    "en-IE",
    "en-AU",
    "en-NZ",
    "en-CA",
    "en-ZA",
    "fr-FR",
    "fr-BE",
    "fr-CA",
    "fr-CH",
    "de-DE",
    "de-AT",
    "de-CH",
    "it-IT",
    "nl-NL",
    "nl-BE",
    "es-ES",
    "es-MX",
    "pt-PT",
    "pt-BR",
    "sv-SE",
    "da-DK",
    "nb-NO",
    "fi-FI",
    "pl-PL",
    "cs-CZ",
    "el-GR",
    "tr-TR",
    "ja-JP",
    "ko-KR",
    "zh-CN",
    "zh-TW",
)


def time_zones() -> list[str]:
    """IANA zones a clinic may choose, by name (the page offers them as a list)."""
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ClinicData:
    name: str
    timezone: str
    address: str = ""
    phone: str = ""
    email: str = ""
    locale: str = "en-GB"
    currency: str = "GBP"
    active: bool = True


@dataclass(frozen=True)
class ProviderData:
    name: str
    title: str = ""
    email: str = ""
    colour: str = "#4c78a8"
    clinic_ids: tuple[int, ...] = ()
    service_ids: tuple[int, ...] = ()
    user_id: int | None = None
    active: bool = True


@dataclass(frozen=True)
class ServiceData:
    name: str
    duration_minutes: int
    category: str = ""
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    price_cents: int = 0
    virtual_allowed: bool = False
    online_allowed: bool = True
    provider_ids: tuple[int, ...] = ()
    resource_ids: tuple[int, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class ResourceData:
    clinic_id: int
    name: str
    kind: ResourceKind | str = ResourceKind.ROOM
    quantity: int = 1
    active: bool = True


@dataclass(frozen=True)
class PackageData:
    name: str
    service_ids: tuple[int, ...] = field(default_factory=tuple)
    price_cents: int = 0
    active: bool = True


# ---------------------------------------------------------------- shared steps


def _text(value: str, what: str, limit: int, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationError(f"Give the {what}.")
    if len(value) > limit:
        raise ValidationError(f"Keep the {what} under {limit} characters.")
    return value


def _email(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValidationError(f"The {what} is not a valid address: {error}") from None


def _minutes(value: int, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"The {what} must be a whole number from {low} to {high} minutes.")
    return value


def _unique_name(session: Session, model, name: str, row_id: int | None, what: str, *extra):
    clash = session.scalar(
        select(model.id).where(func.lower(model.name) == name.lower(), *extra).limit(1)
    )
    if clash is not None and clash != row_id:
        raise ValidationError(f"There is already a {what} called {name!r}; choose another name.")


def _get(session: Session, model, row_id: int, what: str):
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"There is no {what} #{row_id}.")
    return row


def _lock(session: Session, model, row_id: int) -> None:
    """Lock the row until the transaction ends (PostgreSQL; SQLite's writers take turns): a
    provider's bookings lock it too, so a check of their visits ahead and a booking placed
    meanwhile do not miss each other."""
    session.execute(select(model.id).where(model.id == row_id).with_for_update()).all()


def _existing(session: Session, model, ids: tuple[int, ...], what: str) -> list[int]:
    ids = sorted(set(ids))
    found = set(session.scalars(select(model.id).where(model.id.in_(ids)))) if ids else set()
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError(f"There is no {what} #{missing[0]}; reload the page.")
    return ids


def _apply(session: Session, actor: Actor, row, values: dict[str, Any], entity: str) -> dict:
    """Set the columns, audit what changed; returns the changes (empty when nothing did)."""
    created = row.id is None
    changes = {}
    for key, value in values.items():
        old = None if created else getattr(row, key)
        if created or old != value:
            changes[key] = {"from": _plain(old), "to": _plain(value)}
            setattr(row, key, value)
    if created:
        session.add(row)
    session.flush()
    if changes:
        action = "created" if created else _verb(changes)
        audit.record(
            session,
            actor,
            f"{entity}.{action}",
            entity,
            row.id,
            message=getattr(row, "name", None),
            details=changes,
        )
    return changes


def _verb(changes: dict) -> str:
    if set(changes) == {"active"}:
        return "activated" if changes["active"]["to"] else "deactivated"
    return "updated"


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.value if hasattr(value, "value") else value


def _links(session: Session, model, own: str, own_id: int, other: str, ids: list[int]) -> list:
    current = sorted(
        session.scalars(select(getattr(model, other)).where(getattr(model, own) == own_id))
    )
    if current != ids:
        session.execute(delete(model).where(getattr(model, own) == own_id))
        session.add_all([model(**{own: own_id, other: i}) for i in ids])
        session.flush()
    return current


def _audit_links(session, actor, entity, row_id, name, what, before, after) -> None:
    if before != after:
        audit.record(
            session,
            actor,
            f"{entity}.updated",
            entity,
            row_id,
            message=name,
            details={what: {"from": before, "to": after}},
        )


# ---------------------------------------------------------------- clinics


def _phone(typed: str, locale: str) -> str:
    """The clinic's phone number in international form (+44 20 7946 0123), a national one read
    in the clinic's country (its locale's); none is fine."""
    phone = _text(typed, "phone number", 40)
    return international(phone, locale) if phone else ""


# what a refusal asks the user to confirm, by the change it holds back
CONFIRM = {
    "time zone": "change the time zone",
    "currency": "change the currency",
    "time zone and currency": "change the time zone and the currency",
    "deactivate": "deactivate",
    "service": "save the service",
    "policy": "save the new version",
    "package": "save the package",
    "resource": "save the room or equipment",
}


class NeedsConfirmation(ValidationError):
    """A change that leaves booked visits behind, refused until the user confirms it (the set-up
    pages ask, with `warning`); `change` is one of CONFIRM's keys."""

    def __init__(self, change: str, warning: str) -> None:
        super().__init__(f"{warning} Confirm to {CONFIRM[change]} anyway.")
        self.change, self.warning = change, warning


def _confirm_deactivation(
    session: Session, entity: str, row, active: bool, despite_bookings: bool
) -> None:
    """Deactivating a row with visits booked ahead (or requests waiting) needs a confirmation,
    whichever way it comes (its toggle, a save with active unticked, the practice file)."""
    if row.id is not None and row.active and not active and not despite_bookings:
        if warning := _deactivation_warning(session, entity, row):
            raise NeedsConfirmation("deactivate", warning)


def save_clinic(
    session: Session,
    actor: Actor,
    data: ClinicData,
    id: int | None = None,
    *,
    despite_bookings: bool = False,
) -> int:
    """Create or change a clinic. A new time zone for a clinic with visits booked ahead is
    refused, saying what happens to them, unless `despite_bookings` (the user confirmed)."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    name = _text(data.name, "clinic name", 120, required=True)
    if data.timezone not in available_timezones():
        raise ValidationError(
            f"{data.timezone!r} is not an IANA time zone; choose one from the list."
        )
    try:
        Locale.parse(data.locale, sep="-")
    except (ValueError, UnknownLocaleError):
        raise ValidationError(
            f"{data.locale!r} is not a locale; use a tag such as en-GB."
        ) from None
    currency = (data.currency or "").upper()
    if currency not in list_currencies():
        raise ValidationError(f"{data.currency!r} is not a currency code; use one such as GBP.")
    _unique_name(session, Clinic, name, id, "clinic")
    row = Clinic() if id is None else _get(session, Clinic, id, "clinic")
    if id is not None and not despite_bookings:
        zone = _zone_warning(session, row, data.timezone, data.locale)
        money = _currency_warning(session, row, currency, data.locale)
        if zone or money:
            change = " and ".join(
                w for w, said in (("time zone", zone), ("currency", money)) if said
            )
            raise NeedsConfirmation(change, " ".join(w for w in (zone, money) if w))
    _confirm_deactivation(session, "clinic", row, data.active, despite_bookings)
    values = asdict(data) | {
        "name": name,
        "address": _text(data.address, "address", 250),
        "phone": _phone(data.phone, data.locale),
        "email": _email(data.email, "clinic email"),
        "currency": currency,
    }
    _apply(session, actor, row, values, "clinic")
    return row.id


def zone_change_warning(
    session: Session, actor: Actor, clinic_id: int, timezone: str, locale: str | None = None
) -> str:
    """What moving the clinic to `timezone` does to the visits booked there ahead ("" when
    the zone stays or nothing is booked): the clinic page asks for a confirmation with it."""
    ensure(actor, Permission.PRACTICE_READ)
    clinic = _get(session, Clinic, clinic_id, "clinic")
    return _zone_warning(session, clinic, timezone, locale or clinic.locale)


def clinic_change_warning(
    session: Session, actor: Actor, clinic_id: int, timezone: str, locale: str, currency: str
) -> str:
    """What the clinic form's new time zone and currency do to what is booked and charged there
    ("" when neither changes or nothing is at stake): the page asks for a confirmation with it,
    as save_clinic would refuse without one."""
    ensure(actor, Permission.PRACTICE_READ)
    clinic = _get(session, Clinic, clinic_id, "clinic")
    said = (
        _zone_warning(session, clinic, timezone, locale),
        _currency_warning(session, clinic, (currency or "").upper(), locale),
    )
    return " ".join(s for s in said if s)


def _currency_warning(session: Session, clinic: Clinic, currency: str, locale: str) -> str:
    """A new currency re-reads every amount of the clinic (they are stored as minor units, not
    converted): the prices of its visits ahead, the policy's fixed fees, fees not waived; what
    was paid stays in the currency it was paid in."""
    old = (clinic.currency or "GBP").upper()
    if currency == old or currency not in list_currencies():
        return ""
    here = Appointment.clinic_id == clinic.id
    count, first = _upcoming(session, here)
    waiting = _waiting(session, here)
    policy = session.scalar(
        select(CancellationPolicy)
        .where(
            CancellationPolicy.clinic_id == clinic.id,
            CancellationPolicy.service_id.is_(None),
            CancellationPolicy.effective_at <= utcnow(),
        )
        .order_by(CancellationPolicy.effective_at.desc(), CancellationPolicy.id.desc())
        .limit(1)
    )
    fees_set = (
        ()
        if policy is None
        else (
            ("late-cancellation", policy.late_cancel_fee_basis, policy.late_cancel_fee_cents),
            ("no-show", policy.no_show_fee_basis, policy.no_show_fee_cents),
        )
    )
    fixed = [(w, cents) for w, basis, cents in fees_set if basis == FeeBasis.FIXED and cents]
    fees = session.scalar(
        select(func.count(LedgerEntry.id))
        .join(Appointment, Appointment.id == LedgerEntry.appointment_id)
        .where(
            here,
            LedgerEntry.kind.in_((LedgerKind.LATE_CANCEL_FEE, LedgerKind.NO_SHOW_FEE)),
            LedgerEntry.amount_cents > 0,
            LedgerEntry.waived_at.is_(None),
        )
    )
    if first is None and not waiting and not fixed and not fees:
        return ""
    was = ClinicFormat(clinic.timezone, clinic.locale, old)
    will = ClinicFormat(clinic.timezone, locale or clinic.locale, currency)
    said = [
        f"{clinic.name} charges in {old}. Amounts are not converted when it charges in "
        f"{currency}: each is read again as {currency}."
    ]
    if first is not None:
        price = price_of(first)
        paid = session.scalar(
            select(func.count(func.distinct(Payment.appointment_id))).where(
                Payment.appointment_id.in_(
                    select(Appointment.id).where(
                        here, Appointment.status.in_(OCCUPYING), Appointment.start_at >= utcnow()
                    )
                ),
                Payment.kind.in_(("prepayment", "deposit")),
                Payment.status == "paid",
            )
        )
        priced = f", priced {was.money(price)}, which would be {will.money(price)}" if price else ""
        said.append(f"It has {_plural(count, 'upcoming visit')}, {_first_on(first)}{priced}.")
        if paid:
            said.append(
                f"{_plural(paid, 'of them has', 'of them have')} payments taken in {old}; "
                f"they stay in {old}, so check what is still due on their Payments."
            )
    if waiting:
        said.append(
            f"{_plural(waiting, 'booking request')} {'waits' if waiting == 1 else 'wait'} "
            "in the Request queue, to be priced in the new currency."
        )
    if fixed:
        words = " and ".join(
            f"{w} fee of {was.money(c)} would be {will.money(c)}" for w, c in fixed
        )
        said.append(f"The cancellation policy's {words}.")
    if fees:
        said.append(
            f"{_plural(fees, 'fee')} charged here and not waived would read in {currency} too."
        )
    said.append(
        "Change the prices on Services (they are one amount for every clinic) and save a new "
        "version on Cancellation policy if the amounts should change too."
    )
    return " ".join(said)


def _zone_warning(session: Session, clinic: Clinic, timezone: str, locale: str) -> str:
    if timezone == clinic.timezone:
        return ""
    count, first = _upcoming(session, Appointment.clinic_id == clinic.id)
    if first is None:
        return ""
    now = format_moment(first.start_at, timezone, locale)
    return (
        f"{clinic.name} has {_plural(count, 'upcoming visit')}. Moving it from "
        f"{clinic.timezone} to {timezone} keeps each visit at the same moment, so its clock "
        f"time changes: the first, {clinic_time(clinic, first.start_at)}, would read {now}. "
        "The weekly hours keep their clock times, so some visits may fall outside them; time "
        "off keeps its moments too. Patients were told the old times; their reminders will give "
        "the new ones. To keep a visit at its old clock time, move it on the Calendar after the "
        "change."
    )


# ---------------------------------------------------------------- providers


def save_provider(
    session: Session,
    actor: Actor,
    data: ProviderData,
    id: int | None = None,
    *,
    despite_bookings: bool = False,
) -> int:
    ensure(actor, Permission.PRACTICE_MANAGE)
    name = _text(data.name, "provider's name", 120, required=True)
    if not COLOUR.match(data.colour or ""):
        raise ValidationError("Choose the calendar colour as #rrggbb.")
    clinics = _existing(session, Clinic, data.clinic_ids, "clinic")
    services = _existing(session, Service, data.service_ids, "service")
    if data.user_id is not None:
        _get(session, User, data.user_id, "user account")
        other = session.scalar(
            select(Provider.name).where(Provider.user_id == data.user_id, Provider.id != id)
        )
        if other:
            raise ValidationError(f"That user account is already linked to {other}.")
    _unique_name(session, Provider, name, id, "provider")
    row = Provider() if id is None else _get(session, Provider, id, "provider")
    if id is not None:  # as a booking of theirs does (core.scheduling): one after the other
        _lock(session, Provider, id)
        _confirm_deactivation(session, "provider", row, data.active, despite_bookings)
    leaving = [] if id is None else _clinics_left(session, row, clinics)  # checked before any write
    values = {
        "name": name,
        "title": _text(data.title, "title", 80),
        "email": _email(data.email, "provider's email"),
        "colour": data.colour.lower(),
        "user_id": data.user_id,
        "active": data.active,
    }
    _apply(session, actor, row, values, "provider")
    before = _links(session, ProviderClinic, "provider_id", row.id, "clinic_id", clinics)
    _audit_links(session, actor, "provider", row.id, name, "clinic_ids", before, clinics)
    for clinic in leaving:
        _drop_hours(session, actor, row, clinic)
    before = _links(session, ProviderService, "provider_id", row.id, "service_id", services)
    _audit_links(session, actor, "provider", row.id, name, "service_ids", before, services)
    return row.id


def _clinics_left(session: Session, provider: Provider, clinic_ids: list[int]) -> list[Clinic]:
    """The clinics taken off the provider's list; refused while they have visits booked ahead
    at one. Their weekly hours there then go too (`_drop_hours`): before, the hours kept them
    bookable and shown at the clinic, as if the change had not been saved."""
    listed = session.scalars(
        select(ProviderClinic.clinic_id).where(ProviderClinic.provider_id == provider.id)
    )
    leaving = [_get(session, Clinic, c, "clinic") for c in sorted(set(listed) - set(clinic_ids))]
    for clinic in leaving:
        count, first = _upcoming(
            session, Appointment.provider_id == provider.id, Appointment.clinic_id == clinic.id
        )
        if first is not None:
            raise ValidationError(
                f"{provider.name} has {_plural(count, 'upcoming visit')} at {clinic.name}, "
                f"{_first_on(first)}. Move them to another provider on the Calendar, or keep "
                f"{clinic.name} among their clinics; nothing was saved."
            )
    return leaving


def _drop_hours(session: Session, actor: Actor, provider: Provider, clinic: Clinic) -> None:
    """The provider's weekly hours at a clinic no longer theirs, removed and audited as a
    change of hours (Provider schedules' own event)."""
    hours = list(
        session.scalars(
            select(WorkingHours)
            .where(WorkingHours.provider_id == provider.id, WorkingHours.clinic_id == clinic.id)
            .order_by(WorkingHours.weekday, WorkingHours.starts)
        )
    )
    if not hours:
        return
    before = [
        {"weekday": h.weekday + 1, "starts": f"{h.starts:%H:%M}", "ends": f"{h.ends:%H:%M}"}
        for h in hours
    ]
    for h in hours:
        session.delete(h)
    session.flush()
    audit.record(
        session,
        actor,
        "working_hours_set",
        "provider",
        provider.id,
        message=f"Weekly hours at {clinic.name} (no longer one of their clinics)",
        details={"clinic_id": clinic.id, "before": before, "after": []},
    )


# ---------------------------------------------------------------- services


def _price(cents) -> None:
    """A price is a whole number of minor units (pence, whole yen), zero to MAX_MINOR (what
    the price field takes and the database's integer column holds)."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise ValidationError(
            f"The price must be a whole number of the currency's smallest unit (pence, cents, "
            f"whole yen); {cents!r} is not."
        )
    if cents < 0:
        raise ValidationError("The price cannot be negative.")
    if cents > MAX_MINOR:
        raise ValidationError(
            f"The price can be at most {MAX_MINOR} of the currency's smallest unit (pence, cents, "
            f"whole yen), as on the Services page; {cents} is more."
        )


def save_service(
    session: Session,
    actor: Actor,
    data: ServiceData,
    id: int | None = None,
    *,
    despite_bookings: bool = False,
) -> int:
    ensure(actor, Permission.PRACTICE_MANAGE)
    name = _text(data.name, "service name", 120, required=True)
    values = {
        "name": name,
        "category": _text(data.category, "category", 80),
        "duration_minutes": _minutes(data.duration_minutes, "duration", 5, 12 * 60),
        "buffer_before_minutes": _minutes(data.buffer_before_minutes, "buffer before", 0, 240),
        "buffer_after_minutes": _minutes(data.buffer_after_minutes, "buffer after", 0, 240),
        "price_cents": data.price_cents,
        "virtual_allowed": data.virtual_allowed,
        "online_allowed": data.online_allowed,
        "active": data.active,
    }
    _price(data.price_cents)
    providers = _existing(session, Provider, data.provider_ids, "provider")
    resources = _existing(session, Resource, data.resource_ids, "room or equipment")
    _unique_name(session, Service, name, id, "service")
    row = Service() if id is None else _get(session, Service, id, "service")
    _confirm_deactivation(session, "service", row, data.active, despite_bookings)
    if id is not None and not despite_bookings:
        if warning := _service_change_warning(session, row, values, resources):
            raise NeedsConfirmation("service", warning)
    _apply(session, actor, row, values, "service")
    before = sorted(
        session.scalars(
            select(ProviderService.provider_id).where(ProviderService.service_id == row.id)
        )
    )
    if before != providers:
        session.execute(delete(ProviderService).where(ProviderService.service_id == row.id))
        session.add_all([ProviderService(provider_id=p, service_id=row.id) for p in providers])
        session.flush()
    _audit_links(session, actor, "service", row.id, name, "provider_ids", before, providers)
    before = _links(session, ServiceResource, "service_id", row.id, "resource_id", resources)
    _audit_links(session, actor, "service", row.id, name, "resource_ids", before, resources)
    return row.id


def service_change_warning(
    session: Session, actor: Actor, service_id: int, data: ServiceData
) -> str:
    """What the service form's new price, length, buffers or rooms do to the visits booked
    ahead with it ("" when none of these changes or nothing is booked): the Services page asks
    for a confirmation with it, as save_service would refuse without one."""
    ensure(actor, Permission.PRACTICE_READ)
    service = _get(session, Service, service_id, "service")
    values = {
        "price_cents": data.price_cents,
        "duration_minutes": data.duration_minutes,
        "buffer_before_minutes": data.buffer_before_minutes,
        "buffer_after_minutes": data.buffer_after_minutes,
    }
    return _service_change_warning(session, service, values, sorted(set(data.resource_ids)))


def _in_visit(service_id: int):
    """A visit of the service: its first service, or one of its others."""
    return or_(
        Appointment.service_id == service_id,
        Appointment.id.in_(
            select(AppointmentService.appointment_id).where(
                AppointmentService.service_id == service_id
            )
        ),
    )


def _service_change_warning(
    session: Session, service: Service, values: dict, resources: list[int]
) -> str:
    """A booked visit takes its price and the rooms it holds from its services as they are now
    (core.practice.treatment.price_of, core.scheduling.availability), while its length and
    buffers stay as booked until it is moved: each change said for the visits booked ahead."""
    price = values["price_cents"] != service.price_cents
    timing = any(
        values[k] != getattr(service, k)
        for k in ("duration_minutes", "buffer_before_minutes", "buffer_after_minutes")
    )
    needs = session.scalars(
        select(ServiceResource.resource_id).where(ServiceResource.service_id == service.id)
    ).all()
    added = sorted(set(resources) - set(needs))
    dropped = sorted(set(needs) - set(resources))
    if not (price or timing or added or dropped):
        return ""
    count, first = _upcoming(session, _in_visit(service.id))
    if first is None:
        return ""
    several = session.scalar(select(func.count(Clinic.id)).where(Clinic.active)) > 1
    said = [
        f"{service.name} is booked in {_plural(count, 'upcoming visit')}, "
        f"{_first_on(first, several)}."
    ]
    if price:
        alone = _in_visit(service.id), Appointment.package_id.is_(None)
        priced, _ = _upcoming(session, *alone)
        paid = _paid_ahead(session, *alone)
        if priced:
            old_price = clinic_money(first.clinic, service.price_cents)
            new_price = clinic_money(first.clinic, values["price_cents"])
            if priced == count:
                lead = f"Its new price applies to {'it' if count == 1 else 'them'}"
            else:
                lead = (
                    f"Its new price applies to the {priced} not booked in a package (a package "
                    "keeps its own price)"
                )
            said.append(
                f"{lead}: {service.name} costs {new_price} there instead of {old_price}, and a "
                "fee that is a share of a visit's price follows it."
            )
        if paid:
            said.append(
                f"{_plural(paid, 'of them was', 'of them were')} paid ahead at the old price: "
                "see what is due or due back on their Payments."
            )
    if timing:
        said.append(
            "Visits booked keep their length and buffers; one moved on the Calendar takes the "
            f"new ones ({values['duration_minutes']} minutes)."
        )
    if added or dropped:
        names = dict(
            session.execute(
                select(Resource.id, Resource.name).where(Resource.id.in_(added + dropped))
            ).all()
        )
        if added:
            held = ", ".join(names[r] for r in added)
            said.append(
                f"They will hold {held} as well from now on, also where it is already taken at "
                "their time: check the Calendar's conflicts and move any that clash."
            )
        if dropped:
            freed = ", ".join(names[r] for r in dropped)
            said.append(f"They will no longer hold {freed}, which others can then book.")
    said.append("Tell the patients booked if they should know.")
    return " ".join(said)


# ---------------------------------------------------------------- rooms and equipment


def save_resource(
    session: Session,
    actor: Actor,
    data: ResourceData,
    id: int | None = None,
    *,
    despite_bookings: bool = False,
) -> int:
    """A room or piece of equipment. A quantity lowered below what visits booked ahead hold at
    once is refused until confirmed (`despite_bookings`)."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    name = _text(data.name, "room or equipment name", 120, required=True)
    _get(session, Clinic, data.clinic_id, "clinic")
    if not isinstance(data.quantity, int) or not 1 <= data.quantity <= 100:
        raise ValidationError("The quantity must be a whole number from 1 to 100.")
    _unique_name(
        session,
        Resource,
        name,
        id,
        "room or equipment at this clinic",
        Resource.clinic_id == data.clinic_id,
    )
    row = Resource() if id is None else _get(session, Resource, id, "room or equipment")
    if id is not None and not despite_bookings:
        if warning := _resource_change_warning(session, row, data.quantity):
            raise NeedsConfirmation("resource", warning)
    values = asdict(data) | {"name": name, "kind": ResourceKind(data.kind)}
    _apply(session, actor, row, values, "resource")
    return row.id


def resource_change_warning(
    session: Session, actor: Actor, resource_id: int, data: ResourceData
) -> str:
    """What the form's new quantity does to the visits booked ahead holding the room or
    equipment ("" when they still fit): the Clinics and rooms page asks with it first."""
    ensure(actor, Permission.PRACTICE_READ)
    resource = _get(session, Resource, resource_id, "room or equipment")
    return _resource_change_warning(session, resource, data.quantity)


def _resource_change_warning(session: Session, resource: Resource, quantity: int) -> str:
    """The first moment visits booked ahead hold more of it at once than `quantity`."""
    if quantity >= resource.quantity:
        return ""
    ahead = session.execute(
        select(Appointment.start_at, Appointment.end_at).where(
            _holding(resource),
            Appointment.status.in_(OCCUPYING),
            Appointment.end_at > utcnow(),
        )
    ).all()
    moments = sorted([(start, 1) for start, _ in ahead] + [(end, -1) for _, end in ahead])
    held, over = 0, None  # an end sorts before a start at the same moment: back to back fits
    for at, step in moments:
        held += step
        if held > quantity and over is None:
            over = at
    if over is None:
        return ""
    clinic = session.get(Clinic, resource.clinic_id)
    return (
        f"Visits booked ahead hold more than {quantity} {resource.name} at once, the first time "
        f"on {clinic_time(clinic, over, zone=True)}. They stay booked, and the Calendar shows "
        f"the clash: move one of them, or keep the quantity at {resource.quantity}. Nothing "
        "new is booked over the new quantity."
    )


# ---------------------------------------------------------------- packages


def save_package(
    session: Session,
    actor: Actor,
    data: PackageData,
    id: int | None = None,
    *,
    despite_bookings: bool = False,
) -> int:
    """A package's name, services and price. A new price or new services for a package booked
    ahead is refused until confirmed (`despite_bookings`): its visits take the package's price
    as it is now, and keep the services they were booked with."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    name = _text(data.name, "package name", 120, required=True)
    if len(data.service_ids) < 2:
        raise ValidationError("A package bundles at least two services; choose them.")
    if len(set(data.service_ids)) != len(data.service_ids):
        raise ValidationError("Choose each service of a package once.")
    _existing(session, Service, tuple(data.service_ids), "service")
    _price(data.price_cents)
    _unique_name(session, Package, name, id, "package")
    row = Package() if id is None else _get(session, Package, id, "package")
    if id is not None and not despite_bookings:
        if warning := _package_change_warning(session, row, data):
            raise NeedsConfirmation("package", warning)
    _apply(
        session,
        actor,
        row,
        {"name": name, "price_cents": data.price_cents, "active": data.active},
        "package",
    )
    wanted = list(data.service_ids)
    current = list(
        session.scalars(
            select(PackageService.service_id)
            .where(PackageService.package_id == row.id)
            .order_by(PackageService.position)
        )
    )
    if current != wanted:
        session.execute(delete(PackageService).where(PackageService.package_id == row.id))
        session.flush()
        session.add_all(
            [
                PackageService(package_id=row.id, service_id=s, position=n)
                for n, s in enumerate(wanted)
            ]
        )
        session.flush()
        _audit_links(session, actor, "package", row.id, name, "service_ids", current, wanted)
    return row.id


def package_change_warning(
    session: Session, actor: Actor, package_id: int, data: PackageData
) -> str:
    """What the package form's new price or services do to the visits booked ahead with it
    ("" when neither changes or nothing is booked): the Packages page asks with it first."""
    ensure(actor, Permission.PRACTICE_READ)
    package = _get(session, Package, package_id, "package")
    return _package_change_warning(session, package, data)


def _package_change_warning(session: Session, package: Package, data: PackageData) -> str:
    price_cents = data.price_cents
    was = list(
        session.scalars(
            select(PackageService.service_id)
            .where(PackageService.package_id == package.id)
            .order_by(PackageService.position)
        )
    )
    new_services = list(data.service_ids) != was
    if price_cents == package.price_cents and not new_services:
        return ""
    booked = Appointment.package_id == package.id
    count, first = _upcoming(session, booked)
    if first is None:
        return ""
    several = session.scalar(select(func.count(Clinic.id)).where(Clinic.active)) > 1
    said = [
        f"{package.name} is booked in {_plural(count, 'upcoming visit')}, "
        f"{_first_on(first, several)}."
    ]
    if new_services:
        rows = session.execute(select(Service.id, Service.name).where(Service.id.in_(was)))
        names = {service_id: name for service_id, name in rows}
        said.append(
            f"{'It keeps' if count == 1 else 'They keep'} the services booked "
            f"({' + '.join(names.get(i, f'service #{i}') for i in was)}), at the package's "
            "price; the new services are for visits booked from now on. Move or rebook a visit "
            "that should change."
        )
    if price_cents != package.price_cents:
        said.append(
            f"Its new price applies to {'it' if count == 1 else 'them'}: {package.name} costs "
            f"{clinic_money(first.clinic, price_cents)} there instead of "
            f"{clinic_money(first.clinic, package.price_cents)}, and a fee that is a share of a "
            "visit's price follows it."
        )
    if paid := _paid_ahead(session, booked):
        said.append(
            f"{_plural(paid, 'of them was', 'of them were')} paid ahead at the old price: "
            "see what is due or due back on their Payments."
        )
    said.append("Tell the patients booked if they should know.")
    return " ".join(said)


def _paid_ahead(session: Session, *where) -> int:
    """How many visits booked ahead matching `where` have money paid ahead."""
    ahead = select(Appointment.id).where(
        *where, Appointment.status.in_(OCCUPYING), Appointment.start_at >= utcnow()
    )
    return session.scalar(
        select(func.count(func.distinct(Payment.appointment_id))).where(
            Payment.appointment_id.in_(ahead),
            Payment.kind.in_(("prepayment", "deposit")),
            Payment.status == "paid",
        )
    )


def set_active(
    session: Session,
    actor: Actor,
    entity: str,
    row_id: int,
    active: bool,
    *,
    despite_bookings: bool = False,
) -> None:
    """Deactivate (or activate again) a clinic, provider, service, resource or package. A
    clinic, provider or service with visits booked ahead (or requests waiting) is deactivated
    only `despite_bookings`: the refusal says what stays booked and what nobody can do after."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    model = MODELS.get(entity)
    if model is None:
        raise ValidationError(f"{entity!r} is not part of the set-up.")
    row = _get(session, model, row_id, entity)
    if entity == "provider":  # a booking of theirs waits, or is waited for, then counted
        _lock(session, Provider, row.id)
    _confirm_deactivation(session, entity, row, active, despite_bookings)
    _apply(session, actor, row, {"active": active}, entity)


def deactivation_warning(session: Session, actor: Actor, entity: str, row_id: int) -> str:
    """What deactivating the clinic, provider or service leaves behind ("Dr X has 3 upcoming
    appointments, the first on …; they stay booked …"), or "" when nothing is booked ahead."""
    ensure(actor, Permission.PRACTICE_READ)
    model = MODELS.get(entity)
    if model is None:
        raise ValidationError(f"{entity!r} is not part of the set-up.")
    return _deactivation_warning(session, entity, _get(session, model, row_id, entity))


def _deactivation_warning(session: Session, entity: str, row) -> str:
    if entity == "provider":
        return _provider_warning(session, row)
    if entity == "service":
        return _service_warning(session, row)
    if entity == "clinic":
        return _clinic_warning(session, row)
    if entity == "resource":
        return _resource_warning(session, row)
    if entity == "package":
        return _package_warning(session, row)
    return ""


def _package_warning(session: Session, package: Package) -> str:
    """A package booked ahead or asked for in the queue (its services stay offered alone)."""
    count, first = _upcoming(session, Appointment.package_id == package.id)
    waiting = _waiting(session, Appointment.package_id == package.id)
    if first is None and not waiting:
        return ""
    said = []
    if first is not None:
        said.append(
            f"{package.name} is booked in {_plural(count, 'upcoming visit')}, "
            f"{_first_on(first, True)}; they stay booked and on the calendar."
        )
    if waiting:
        said.append(
            f"{_plural(waiting, 'booking request')} for {package.name} "
            f"{'waits' if waiting == 1 else 'wait'} in the Request queue; decide "
            f"{'it' if waiting == 1 else 'them'} first."
        )
    said.append(f"Nobody can book {package.name} after this; its services stay bookable alone.")
    return " ".join(said)


def _upcoming(session: Session, *where) -> tuple[int, Appointment | None]:
    """How many booked visits (holding their time) start from now on, and the first of them."""
    ahead = (
        select(Appointment)
        .where(Appointment.status.in_(OCCUPYING), Appointment.start_at >= utcnow(), *where)
        .order_by(Appointment.start_at, Appointment.id)
    )
    first = session.scalars(ahead.limit(1)).first()
    if first is None:
        return 0, None
    return session.scalar(select(func.count()).select_from(ahead.subquery())), first


def _waiting(session: Session, *where) -> int:
    """How many booking requests wait in the queue."""
    query = select(func.count(Appointment.id)).where(
        Appointment.status == AppointmentStatus.REQUESTED, *where
    )
    return session.scalar(query) or 0


def _plural(count: int, word: str, words: str | None = None) -> str:
    """'1 visit', '2 visits'; with `words`, the plural as given ('1 of them has', '2 of them
    have')."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {words or word + 's'}"


def _first_on(first: Appointment, clinic_named: bool = False) -> str:
    where = f" at {first.clinic.name}" if clinic_named else ""
    return f"the first on {clinic_time(first.clinic, first.start_at)}{where}"


def _provider_warning(session: Session, provider: Provider) -> str:
    """A provider booked ahead, or asked for by requests waiting in the queue."""
    count, first = _upcoming(session, Appointment.provider_id == provider.id)
    waiting = _waiting(session, Appointment.provider_id == provider.id)
    if first is None and not waiting:
        return ""
    said = []
    if first is not None:
        said.append(
            f"{provider.name} has {_plural(count, 'upcoming appointment')}, {_first_on(first)}. "
            "They stay booked and on the calendar. Move them on the Calendar to another "
            "provider."
        )
    if waiting:
        one = waiting == 1
        said.append(
            f"{_plural(waiting, 'booking request')} in the Request queue "
            f"{'asks' if one else 'ask'} for {provider.name}; decide {'it' if one else 'them'} "
            "first (with another provider, or decline with a reason)."
        )
    said.append(f"Nobody new can be booked with {provider.name} after this.")
    return " ".join(said)


def _service_warning(session: Session, service: Service) -> str:
    """A service booked ahead, asked for in the queue or part of an active package."""
    in_visit = or_(
        Appointment.service_id == service.id,
        Appointment.id.in_(
            select(AppointmentService.appointment_id).where(
                AppointmentService.service_id == service.id
            )
        ),
    )
    count, first = _upcoming(session, in_visit)
    waiting = _waiting(session, in_visit)
    packages = list(
        session.scalars(
            select(Package.name)
            .join(PackageService, PackageService.package_id == Package.id)
            .where(PackageService.service_id == service.id, Package.active.is_(True))
            .order_by(Package.name)
        )
    )
    if first is None and not waiting and not packages:
        return ""
    said = []
    if first is not None:
        several = session.scalar(select(func.count(Clinic.id)).where(Clinic.active)) > 1
        said.append(
            f"{service.name} is booked in {_plural(count, 'upcoming visit')}, "
            f"{_first_on(first, several)}; they stay booked and on the calendar."
        )
    if waiting:
        said.append(
            f"{_plural(waiting, 'booking request')} for {service.name} "
            f"{'waits' if waiting == 1 else 'wait'} in the Request queue; decide "
            f"{'it' if waiting == 1 else 'them'} first."
        )
    if packages:
        names = ", ".join(packages)
        said.append(
            f"The package{'s' if len(packages) > 1 else ''} {names} include"
            f"{'' if len(packages) > 1 else 's'} {service.name} and can no longer be booked "
            "until it is active again."
        )
    said.append(f"Nobody can book {service.name} after this.")
    return " ".join(said)


def _holding(resource: Resource):
    """SQL: a visit at the resource's clinic of a service that needs it."""
    needing = select(ServiceResource.service_id).where(ServiceResource.resource_id == resource.id)
    return and_(
        Appointment.clinic_id == resource.clinic_id,
        or_(
            Appointment.service_id.in_(needing),
            Appointment.id.in_(
                select(AppointmentService.appointment_id).where(
                    AppointmentService.service_id.in_(needing)
                )
            ),
        ),
    )


def _resource_warning(session: Session, resource: Resource) -> str:
    """A room or piece of equipment that visits booked ahead at its clinic need: once inactive
    it is no longer held, so the services needing it are booked without it."""
    needing = select(ServiceResource.service_id).where(ServiceResource.resource_id == resource.id)
    count, first = _upcoming(session, _holding(resource))
    if first is None:
        return ""
    names = ", ".join(
        session.scalars(select(Service.name).where(Service.id.in_(needing)).order_by(Service.name))
    )
    return (
        f"{resource.name} is needed by {_plural(count, 'upcoming visit')} at "
        f"{first.clinic.name} ({names}), {_first_on(first)}. They stay booked; once "
        f"{resource.name} is inactive it is no longer held, so {names} can then be booked "
        "at any time without it."
    )


def _clinic_warning(session: Session, clinic: Clinic) -> str:
    """A clinic with visits booked ahead or requests waiting: they would leave the Calendar,
    Today and the queue's clinic filter with it."""
    count, first = _upcoming(session, Appointment.clinic_id == clinic.id)
    waiting = _waiting(session, Appointment.clinic_id == clinic.id)
    if first is None and not waiting:
        return ""
    said = []
    if first is not None:
        said.append(f"{clinic.name} has {_plural(count, 'upcoming visit')}, {_first_on(first)}.")
    if waiting:
        said.append(
            f"{_plural(waiting, 'booking request')} for {clinic.name} "
            f"{'waits' if waiting == 1 else 'wait'} in the Request queue."
        )
    said.append(
        "A deactivated clinic leaves the Calendar, Today and booking, and its visits with it "
        "(they stay booked): move or cancel them on the Calendar, and decide the requests, first."
    )
    return " ".join(said)


MODELS = {
    "clinic": Clinic,
    "provider": Provider,
    "service": Service,
    "resource": Resource,
    "package": Package,
}
