"""The practice's payment rules as data: which services allow or require prepayment or a
deposit, the value of a point and the points a survey earns. Stored as one setting row (key
`payments`); absent values take the defaults below.

There is no practice-wide currency: every amount for an appointment (price, deposit, payment,
refund, checkout, receipt) is in the currency of the appointment's clinic (`money_format`), and
the rules' numbers (deposits, the value of a point) are minor units of that currency."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import ValidationError
from core.kernel.money import (
    DEFAULT_CURRENCY,
    DEFAULT_LOCALE,
    MAX_MINOR,
    ClinicFormat,
    currency_locales,
    format_money,
    typed_minor,
)
from core.practice.treatment import price_of
from db.models import Appointment, Clinic, Service, Setting

SETTING_KEY = "payments"
MODES = {
    "none": "No prepayment",
    "allowed": "Prepayment allowed",
    "required": "Prepayment required",
    "deposit": "Deposit required",
}
MAX_CENTS = MAX_MINOR  # as for a price: ₫20,000,000 is a deposit too


@dataclass(frozen=True)
class ServiceRule:
    mode: str = "allowed"
    deposit_cents: int = 0


@dataclass(frozen=True)
class PaymentSettings:
    """The practice's rules. `point_value_cents` is what one point is worth in minor units of
    the currency of the clinic where it is spent: 10 is £0.10 at a GBP clinic and $0.10 at a
    USD clinic (one number for the practice, never converted at an exchange rate)."""

    point_value_cents: int = 10  # minor units of the paying clinic's currency
    survey_points: int = 10  # points earned per answered survey
    survey_points_enabled: bool = True
    default_mode: str = "allowed"
    services: dict[int, ServiceRule] = field(default_factory=dict)

    def rule_for(self, service_id: int | None) -> ServiceRule:
        if service_id is not None and service_id in self.services:
            return self.services[service_id]
        return ServiceRule(self.default_mode)


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


def save_settings(
    session: Session,
    actor: Actor,
    new: PaymentSettings,
    typed_deposits: dict[int, Any] | None = None,
) -> PaymentSettings:
    """Save the rules. `typed_deposits` (service id: the amount typed, in major units of the
    `typing_currency`) replace those services' deposits once checked against that currency."""
    ensure(actor, Permission.PAYMENTS_MANAGE)
    problems = []
    currency, locale = _typing(session)
    if typed_deposits:
        cents, problems = _typed_deposits(session, typed_deposits, currency, locale)
        if problems:  # nothing else is checked against a deposit that was not read
            raise ValidationError(" ".join(problems))
        services = {
            i: replace(r, deposit_cents=cents.get(i, r.deposit_cents))
            for i, r in new.services.items()
        }
        new = replace(new, services=services)
    if not isinstance(new.point_value_cents, int) or not 0 <= new.point_value_cents <= 10_000:
        problems.append(
            "A point must be worth between 0 and 10000 minor units (pence, cents) of the "
            "clinic's currency."
        )
    if not isinstance(new.survey_points, int) or not 0 <= new.survey_points <= 10_000:
        problems.append("Points per survey must be a whole number from 0 to 10000.")
    names = dict(session.execute(select(Service.id, Service.name)).all())
    for service_id, rule in {0: ServiceRule(new.default_mode), **new.services}.items():
        name = names.get(service_id, f"Service #{service_id}")
        if rule.mode not in MODES:
            problems.append(f"Unknown prepayment mode {rule.mode!r}.")
        deposit = rule.deposit_cents
        if isinstance(deposit, bool) or not isinstance(deposit, int) or deposit < 0:
            problems.append(f"{name}: a deposit is a whole number of minor units, 0 or more.")
        elif deposit > MAX_CENTS:
            most = format_money(MAX_CENTS, currency, locale)
            problems.append(f"{name}: a deposit can be at most {most}.")
        elif rule.mode == "deposit" and deposit == 0:
            problems.append(f"{name}: a deposit must be more than 0.")
        if service_id and service_id not in names:
            problems.append(f"There is no service #{service_id}.")
    if problems:
        raise ValidationError(" ".join(problems))
    value = {
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


def typing_currency(session: Session) -> str:
    """The currency a deposit is typed in on the rules table: that of the practice's first
    active clinic, as a price is typed on the Services page (a deposit, like a price, is one
    amount in minor units charged in each clinic's own currency)."""
    return _typing(session)[0]


def _typing(session: Session) -> tuple[str, str]:
    """The typing currency and the locale it is written in (the first clinic charging in it)."""
    found = currency_locales(session, active_only=True)
    return next(iter(found.items()), (DEFAULT_CURRENCY, DEFAULT_LOCALE))


def _typed_deposits(
    session: Session, typed: dict[int, Any], currency: str, locale: str
) -> tuple[dict[int, int], list[str]]:
    """Deposits typed on the rules table (service id: amount in major units of `currency`, None
    for none) as minor units, and what is wrong: an amount with more decimals than the currency
    has is refused, naming the service, not rounded."""
    names = dict(session.execute(select(Service.id, Service.name)).all())
    cents, problems = {}, []
    for service_id, amount in typed.items():
        try:
            cents[service_id] = 0 if amount is None else typed_minor(amount, currency, locale)
        except ValidationError as error:
            name = names.get(service_id, f"Service #{service_id}")
            problems.append(f"{name}'s deposit: {error}")
    return cents, problems


def latest_clinic_id(session: Session, patient_id: int) -> int | None:
    """The clinic of the patient's latest appointment: where a fee on no visit is charged (and
    counted in the cash-up); None for a patient with none."""
    return session.scalar(
        select(Appointment.clinic_id)
        .where(Appointment.patient_id == patient_id)
        .order_by(Appointment.start_at.desc(), Appointment.id.desc())
        .limit(1)
    )


def money_format(clinic: Clinic | None) -> ClinicFormat:
    """How an appointment's money is charged and shown: in its clinic's currency and locale."""
    if clinic is None:
        return ClinicFormat()
    currency = (clinic.currency or DEFAULT_CURRENCY).upper()
    return ClinicFormat(clinic.timezone, clinic.locale or DEFAULT_LOCALE, currency)


def payment_money(payment, fmt: ClinicFormat) -> str:
    """A stored payment's amount in its own stored currency (older rows keep theirs), in the
    clinic's locale."""
    return format_money(payment.amount_cents, payment.currency or fmt.currency, fmt.locale)


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


# from what asks least to what asks most of the patient ahead of the visit
_DEMAND = ("none", "allowed", "deposit", "required")


def visit_rule(appointment: Appointment, rules: PaymentSettings) -> ServiceRule:
    """The rule of a visit: its service's, or for a visit of several services (a package) the
    one that asks most of theirs: prepayment required by any of them; else a deposit, those of
    the services asking one added up; else prepayment allowed by any; else none. (Before, a
    package took its first service's rule, so a laser requiring prepayment went unpaid ahead
    when booked after a consultation.)"""
    ids = [row.service_id for row in appointment.services] or [appointment.service_id]
    each = [rules.rule_for(service_id) for service_id in dict.fromkeys(ids)]
    mode = max((r.mode for r in each), key=lambda m: _DEMAND.index(m) if m in _DEMAND else 1)
    deposit = sum(r.deposit_cents for r in each if r.mode == "deposit")
    return ServiceRule(mode, deposit if mode == "deposit" else 0)


def due_for(appointment: Appointment, rules: PaymentSettings, paid_cents: int) -> Due:
    rule = visit_rule(appointment, rules)
    price = price_of(appointment)
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


@dataclass(frozen=True)
class ClinicPointValue:
    clinic: str
    currency: str
    point: str  # one point, in the clinic's currency and locale


def point_values(session: Session, actor: Actor) -> list[ClinicPointValue]:
    """What one point is worth at each active clinic, in its own currency (the settings page)."""
    ensure(actor, Permission.POINTS_ADJUST)
    value = get_settings(session).point_value_cents
    clinics = session.scalars(select(Clinic).where(Clinic.active.is_(True)).order_by(Clinic.name))
    return [
        ClinicPointValue(c.name, money_format(c).currency, money_format(c).money(value))
        for c in clinics
    ]
