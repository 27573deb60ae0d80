"""Money and the clinic's locale, formatted by Babel in one place.

Amounts are stored as integer minor units (cents, pence). `format_money` is the only formatter
of amounts in ClinicDesk; `format_moment`, `format_day` and `format_clock` show dates and times
in a clinic's locale (a London clinic, en-GB, sees 24-hour times and day-month dates).
Imports nothing from core outside the kernel (clock, errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.numbers import format_currency, get_currency_precision
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.clock import to_local
from core.kernel.errors import ValidationError
from db.models import Clinic

DEFAULT_LOCALE = "en-GB"
DEFAULT_CURRENCY = "GBP"


def babel_locale(name: str | None) -> Locale:
    """The Babel locale for a BCP 47 tag such as 'en-GB' or 'de_DE'."""
    try:
        return Locale.parse((name or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise ValidationError(f"{name!r} is not a locale (e.g. en-GB, de-DE, fr-FR).") from None


def _minor_digits(currency: str) -> int:
    return get_currency_precision(currency)


def to_major(cents: int, currency: str = DEFAULT_CURRENCY) -> Decimal:
    """Minor units as an exact major amount (Decimal), e.g. 2550 GBP -> 25.50."""
    return Decimal(int(cents)).scaleb(-_minor_digits(currency))


def to_minor(amount: float | Decimal, currency: str = DEFAULT_CURRENCY) -> int:
    """A major amount typed by a user as integer minor units (rounded half up)."""
    scaled = Decimal(str(amount)).scaleb(_minor_digits(currency))
    return int(scaled.quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def format_money(
    cents: int | None, currency: str = DEFAULT_CURRENCY, locale: str | None = DEFAULT_LOCALE
) -> str:
    """An amount in minor units in the clinic's currency and locale: 2550, 'GBP', 'en-GB' ->
    '£25.50'; 2550, 'EUR', 'de-DE' -> '25,50 €'. None is an empty string."""
    if cents is None:
        return ""
    return format_currency(to_major(cents, currency), currency, locale=babel_locale(locale))


def clinic_money(clinic, cents: int | None) -> str:
    """An amount in a clinic's currency and locale (anything with .currency and .locale)."""
    return format_money(cents, clinic.currency or DEFAULT_CURRENCY, clinic.locale)


def currency_symbol(currency: str = DEFAULT_CURRENCY, locale: str | None = DEFAULT_LOCALE) -> str:
    return babel_locale(locale).currency_symbols.get(currency, currency)


def format_moment(
    moment: datetime | None, tz: str, locale: str | None = DEFAULT_LOCALE, with_weekday=True
) -> str:
    """A UTC moment as the clinic's local date and time in its locale ('' for None)."""
    if moment is None:
        return ""
    local = to_local(moment, tz)
    pattern = "EEE d MMM y" if with_weekday else "d MMM y"
    day = format_date(local.date(), pattern, babel_locale(locale))
    return f"{day}, {format_clock(local.time(), locale)}"


def format_day(day: date | None, locale: str | None = DEFAULT_LOCALE, weekday: bool = True) -> str:
    if day is None:
        return ""
    return format_date(day, "EEE d MMM y" if weekday else "d MMM y", babel_locale(locale))


def format_clock(at: time | datetime, locale: str | None = DEFAULT_LOCALE) -> str:
    """A wall-clock time in the locale's own short form (24-hour in en-GB, 12-hour in en-US)."""
    return format_time(at, "short", locale=babel_locale(locale))


def hour_cycle(locale: str | None = DEFAULT_LOCALE) -> bool:
    """True when the locale writes times on a 24-hour clock."""
    pattern = babel_locale(locale).time_formats["short"].pattern
    return "H" in pattern or "k" in pattern


@dataclass(frozen=True)
class ClinicFormat:
    """How one clinic shows money, dates and times (its zone, locale and currency)."""

    timezone: str = "UTC"
    locale: str = DEFAULT_LOCALE
    currency: str = DEFAULT_CURRENCY

    def money(self, cents: int | None) -> str:
        return format_money(cents, self.currency, self.locale)

    def moment(self, moment: datetime | None) -> str:
        return format_moment(moment, self.timezone, self.locale)

    def day(self, day: date | None, weekday: bool = True) -> str:
        return format_day(day, self.locale, weekday)

    def clock(self, at: time | datetime) -> str:
        return format_clock(at, self.locale)


def clinic_format(session: Session, clinic_id: int | None = None) -> ClinicFormat:
    """The display format of a clinic; with no clinic chosen, the practice's first clinic's
    (a practice's clinics normally share locale and currency)."""
    query = select(Clinic.timezone, Clinic.locale, Clinic.currency)
    query = query.where(Clinic.id == clinic_id) if clinic_id else query.order_by(Clinic.id)
    row = session.execute(query.limit(1)).first()
    if row is None:
        return ClinicFormat(timezone="Europe/London")
    return ClinicFormat(row[0], row[1] or DEFAULT_LOCALE, row[2] or DEFAULT_CURRENCY)
