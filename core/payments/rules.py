"""The practice's payment rules as data: which services allow or require prepayment or a
deposit, the value of a point, the points a survey earns, and the currency. Stored as one
setting row (key `payments`); absent values take the defaults below."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import ValidationError
from db.models import Appointment, Service, Setting

SETTING_KEY = "payments"
MODES = {
    "none": "No prepayment",
    "allowed": "Prepayment allowed",
    "required": "Prepayment required",
    "deposit": "Deposit required",
}
MAX_CENTS = 10_000_000


@dataclass(frozen=True)
class ServiceRule:
    mode: str = "allowed"
    deposit_cents: int = 0


@dataclass(frozen=True)
class PaymentSettings:
    currency: str = "GBP"
    locale: str = "en_GB"
    point_value_cents: int = 10  # what one point is worth when paying
    survey_points: int = 10  # points earned per answered survey
    survey_points_enabled: bool = True
    default_mode: str = "allowed"
    services: dict[int, ServiceRule] = field(default_factory=dict)

    def rule_for(self, service_id: int | None) -> ServiceRule:
        if service_id is not None and service_id in self.services:
            return self.services[service_id]
        return ServiceRule(self.default_mode)

    def money(self, cents: int) -> str:
        return format_currency(Decimal(cents) / 100, self.currency, locale=self.locale)


def get_settings(session: Session) -> PaymentSettings:
    """The rules in force (read by the portal too, so no permission: they reveal nothing)."""
    row = session.get(Setting, SETTING_KEY)
    value: dict[str, Any] = dict(row.value or {}) if row else {}
    services = {
        int(k): ServiceRule(v.get("mode", "allowed"), int(v.get("deposit_cents", 0)))
        for k, v in (value.pop("services", None) or {}).items()
    }
    known = {k: v for k, v in value.items() if k in PaymentSettings.__dataclass_fields__}
    return replace(PaymentSettings(**known), services=services)


def save_settings(session: Session, actor: Actor, new: PaymentSettings) -> PaymentSettings:
    ensure(actor, Permission.PAYMENTS_MANAGE)
    problems = []
    if not isinstance(new.point_value_cents, int) or not 0 <= new.point_value_cents <= 10_000:
        problems.append("A point must be worth between 0 and 100.00 (in cents: 0–10000).")
    if not isinstance(new.survey_points, int) or not 0 <= new.survey_points <= 10_000:
        problems.append("Points per survey must be a whole number from 0 to 10000.")
    if len(new.currency) != 3 or not new.currency.isalpha():
        problems.append("The currency is a three-letter ISO code such as GBP or EUR.")
    for service_id, rule in {0: ServiceRule(new.default_mode), **new.services}.items():
        if rule.mode not in MODES:
            problems.append(f"Unknown prepayment mode {rule.mode!r}.")
        if rule.mode == "deposit" and not 0 < rule.deposit_cents <= MAX_CENTS:
            problems.append(f"Service #{service_id}: a deposit must be more than 0.")
        if service_id and session.get(Service, service_id) is None:
            problems.append(f"There is no service #{service_id}.")
    if problems:
        raise ValidationError(" ".join(problems))
    value = {
        "currency": new.currency.upper(),
        "locale": new.locale,
        "point_value_cents": new.point_value_cents,
        "survey_points": new.survey_points,
        "survey_points_enabled": bool(new.survey_points_enabled),
        "default_mode": new.default_mode,
        "services": {
            str(k): {"mode": r.mode, "deposit_cents": r.deposit_cents}
            for k, r in new.services.items()
        },
    }
    row = session.get(Setting, SETTING_KEY)
    if row is None:
        session.add(Setting(key=SETTING_KEY, value=value, updated_by_user_id=actor.user_id))
    else:
        row.value, row.updated_by_user_id = value, actor.user_id
    audit.record(session, actor, "payment_settings_saved", "setting", None, details=value)
    session.flush()
    return get_settings(session)


def price_cents(appointment: Appointment) -> int:
    """The appointment's price (integer cents): a package's one price, otherwise its services'
    prices added up."""
    if appointment.package is not None:
        return appointment.package.price_cents
    services = [link.service for link in appointment.services] or (
        [appointment.service] if appointment.service else []
    )
    return sum(s.price_cents or 0 for s in services)


@dataclass(frozen=True)
class Due:
    mode: str  # the service's rule
    price_cents: int
    asked_cents: int  # what prepayment asks for: the price, or the deposit
    paid_cents: int  # money and points (at their value) received, less refunds
    required: bool

    @property
    def outstanding_cents(self) -> int:
        return max(0, self.asked_cents - self.paid_cents)

    @property
    def payable(self) -> bool:
        return self.mode != "none" and self.outstanding_cents > 0


def due_for(appointment: Appointment, rules: PaymentSettings, paid_cents: int) -> Due:
    rule = rules.rule_for(appointment.service_id)
    price = price_cents(appointment)
    asked = min(rule.deposit_cents, price) if rule.mode == "deposit" else price
    if rule.mode == "none":
        asked = 0
    return Due(rule.mode, price, asked, paid_cents, rule.mode in ("required", "deposit"))


@dataclass(frozen=True)
class ServiceLine:
    service_id: int
    name: str
    price_cents: int
    mode: str
    deposit_cents: int


def service_lines(session: Session, actor: Actor) -> list[ServiceLine]:
    """Each active service with its prepayment rule (the settings page's table)."""
    ensure(actor, Permission.POINTS_ADJUST)
    current = get_settings(session)
    services = session.scalars(
        select(Service).where(Service.active.is_(True)).order_by(Service.name)
    )
    return [
        ServiceLine(
            s.id,
            s.name,
            s.price_cents,
            current.rule_for(s.id).mode,
            current.rule_for(s.id).deposit_cents,
        )
        for s in services
    ]
