"""Money and the clinic's locale, formatted by Babel in one place.

Amounts are stored as integer minor units (cents, pence). `format_money` is the only formatter
of amounts in ClinicDesk. Times are stored in UTC and reach people only through `clinic_time`
and `clinic_time_range` (or `format_moment`/`format_moment_range` given a zone and a locale):
clinic-local, in the clinic's locale (a London clinic, en-GB, sees 24-hour times and day-month
dates; a New York one, en-US, 12-hour times and month-day dates), never in UTC. `format_day`,
`format_clock` and their ranges show days and wall-clock times the same way; `weekday_name`
names a weekday. `format_number` and `format_percent` show counts, figures and rates with the
locale's separators and percent sign (en-GB '1,234' and '12.8%', pt-BR '1.234' and '12,8%').
Imports nothing from core outside the kernel (clock, errors).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_interval, format_skeleton, format_time
from babel.numbers import (
    NumberFormatError,
    NumberPattern,
    format_currency,
    get_currency_precision,
    get_group_symbol,
    get_minus_sign_symbol,
    get_plus_sign_symbol,
    parse_decimal,
    parse_pattern,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.clock import to_local
from core.kernel.errors import ValidationError
from db.models import Clinic

DEFAULT_LOCALE = "en-GB"
DEFAULT_CURRENCY = "GBP"
# a figure that cannot be computed (nothing booked, no answers yet), on every page and chart
NO_VALUE = "—"


@lru_cache(maxsize=256)
def babel_locale(name: str | None) -> Locale:
    """The Babel locale for a BCP 47 tag such as 'en-GB' or 'de_DE' (parsed once per tag)."""
    try:
        return Locale.parse((name or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise ValidationError(f"{name!r} is not a locale (e.g. en-GB, de-DE, fr-FR).") from None


def minor_digits(currency: str) -> int:
    """Digits after the decimal point of the currency's amounts: GBP 2, JPY 0."""
    return get_currency_precision(currency)


def to_major(cents: int, currency: str = DEFAULT_CURRENCY) -> Decimal:
    """Minor units as an exact major amount (Decimal), e.g. 2550 GBP -> 25.50."""
    return Decimal(int(cents)).scaleb(-minor_digits(currency))


def to_minor(amount: float | Decimal, currency: str = DEFAULT_CURRENCY) -> int:
    """A major amount typed by a user as integer minor units (rounded half up)."""
    scaled = Decimal(str(amount)).scaleb(minor_digits(currency))
    return int(scaled.quantize(Decimal(1), rounding="ROUND_HALF_UP"))


# the most a price, a deposit or a payment may be, in minor units (the services check it): far
# inside the database's integer columns, and many of them still add up in its sums
MAX_MINOR = 10**9
_SPACES = {" ", "\xa0", "\u202f", "\u2009"}  # a space typed for a space-like group separator
_QUOTES = {"'", "\u2019"}  # Swiss German groups with an apostrophe, typed either way


def typed_minor(
    amount: float | Decimal | str, currency: str = DEFAULT_CURRENCY, locale: str | None = None
) -> int:
    """An amount typed by a user as integer minor units: the number a number field gave, or
    the text typed, read as `locale` writes numbers ('1.234,50' in de-DE, '1 234,50' in fr-FR,
    '12,34,567.50' in en-IN; the currency's symbol or code may be typed with it). Refused
    (ValidationError, saying what to type) when it is not a number (NaN, '1e9') or has more
    decimals than the currency: 3000.5 JPY or 49.999 EUR is not silently rounded. Its range
    (0 or more, at most MAX_MINOR) is the service's to check, with the form's other problems."""
    exact = _typed_decimal(amount, currency, locale)
    if not exact.is_finite():
        raise ValidationError(f"{amount!r} is not an amount; type a number such as 25.")
    exact = exact.normalize()
    digits = minor_digits(currency)
    if -exact.as_tuple().exponent > digits:
        allowed = "no decimals" if digits == 0 else f"at most {digits} decimals"
        raise ValidationError(
            f"{currency} amounts have {allowed}; {amount} has {-exact.as_tuple().exponent}. "
            "Type the amount without the extra decimals."
        )
    return to_minor(exact, currency)


def _typed_decimal(amount: float | Decimal | str, currency: str, locale: str | None) -> Decimal:
    """The exact number typed: a number as it is, text as the locale writes numbers."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | Decimal | str):
        raise ValidationError(f"{amount!r} is not an amount; type a number such as 25.")
    if not isinstance(amount, str):
        return Decimal(str(amount))
    loc = babel_locale(locale)
    group = get_group_symbol(loc)
    text = "".join(c for c in amount if unicodedata.category(c) != "Cf")  # bidi marks
    for sign in (currency_symbol(currency, locale), currency.upper(), currency.lower()):
        text = text.replace(sign, "")
    text = text.strip()
    for typed in _SPACES if group in _SPACES else _QUOTES if group in _QUOTES else ():
        text = text.replace(typed, group)
    name = locale or DEFAULT_LOCALE
    example = _shown(1234.5, name, False, minor_digits(currency), False)  # de-DE '1.234,50'
    if not text or "e" in text.lower() and text.lower() not in ("nan", "inf", "infinity"):
        raise ValidationError(
            f"{amount!r} is not an amount; type it in digits as {name} writes them, e.g. {example}."
        )
    try:
        return parse_decimal(text, loc, strict=True)
    except NumberFormatError:
        raise ValidationError(
            f"{amount!r} is not an amount as {name} writes numbers; type it as {example}."
        ) from None


def format_money(
    cents: int | None, currency: str = DEFAULT_CURRENCY, locale: str | None = DEFAULT_LOCALE
) -> str:
    """An amount in minor units in the clinic's currency and locale: 2550, 'GBP', 'en-GB' ->
    '£25.50'; 2550, 'EUR', 'de-DE' -> '25,50 €'. None is an empty string."""
    if cents is None:
        return ""
    return format_currency(to_major(cents, currency), currency, locale=babel_locale(locale))


@lru_cache(maxsize=128)
def _pattern(locale: str | None, percent: bool, digits: int) -> tuple[NumberPattern, Locale]:
    """The locale's decimal or percent pattern with exactly `digits` decimals (parsed once:
    a report page formats hundreds of values)."""
    loc = babel_locale(locale)
    pattern = parse_pattern((loc.percent_formats if percent else loc.decimal_formats)[None].pattern)
    pattern.frac_prec = (digits, digits)
    return pattern, loc


def _sign(value: float, locale: Locale) -> str:
    """The locale's plus or minus sign for a change (its minus is the '-' Streamlit's metric
    reads as a fall)."""
    return get_plus_sign_symbol(locale) if value > 0 else get_minus_sign_symbol(locale)


def _shown(value: float, locale: str | None, percent: bool, digits: int, signed: bool) -> str:
    """`signed`: with its sign, + included (a change); none on a change that rounds to zero."""
    pattern, loc = _pattern(locale, percent, digits)
    shown = pattern.apply(abs(value), loc)
    if (signed or value < 0) and shown != pattern.apply(0, loc):
        shown = _sign(value, loc) + shown
    return shown


def format_number(
    value: float, digits: int = 0, locale: str | None = DEFAULT_LOCALE, signed: bool = False
) -> str:
    """A count or figure in the locale: 1234 -> en-GB '1,234', pt-BR '1.234', fr-FR '1 234';
    `signed` shows + on a rise (a change against another period)."""
    return _shown(value, locale, False, digits, signed)


def format_percent(
    rate: float, digits: int = 1, locale: str | None = DEFAULT_LOCALE, signed: bool = False
) -> str:
    """A rate (0.128) as a percentage in the locale: en-GB '12.8%', pt-BR '12,8%', de-DE
    '12,8 %'."""
    return _shown(rate, locale, True, digits, signed)


def clinic_money(clinic, cents: int | None) -> str:
    """An amount in a clinic's currency and locale (anything with .currency and .locale)."""
    return format_money(cents, clinic.currency or DEFAULT_CURRENCY, clinic.locale)


def currency_symbol(currency: str = DEFAULT_CURRENCY, locale: str | None = DEFAULT_LOCALE) -> str:
    return babel_locale(locale).currency_symbols.get(currency, currency)


def format_moment(
    moment: datetime | None,
    tz: str,
    locale: str | None = DEFAULT_LOCALE,
    weekday: bool = True,
    zone: bool = False,
) -> str:
    """A UTC moment as the clinic's local date and time in its locale ('' for None): en-GB
    'Tue, 3 Mar 2026, 14:00', en-US 'Tue, Mar 3, 2026, 2:00 PM'; `zone` adds the local zone's
    abbreviation of that day ('(GMT)', '(BST)')."""
    if moment is None:
        return ""
    local = to_local(moment, tz)
    text = _day_and_time(local.date(), format_clock(local.time(), locale), locale, weekday)
    return f"{text} ({local.tzname()})" if zone else text


def format_moment_range(
    start: datetime | None,
    end: datetime | None,
    tz: str,
    locale: str | None = DEFAULT_LOCALE,
    weekday: bool = True,
    zone: bool = False,
) -> str:
    """From one UTC moment to another in the clinic's zone and locale: the day once and the two
    times when both fall on the same local day (en-GB 'Tue, 3 Mar 2026, 14:00–14:30', en-US
    'Tue, Mar 3, 2026, 2:00 – 2:30 PM'), otherwise both moments in full ('' with no start)."""
    if start is None or end is None:
        return format_moment(start, tz, locale, weekday, zone)
    first, last = to_local(start, tz), to_local(end, tz)
    if first.date() != last.date():
        return f"{format_moment(start, tz, locale, weekday, zone)} – " + format_moment(
            end, tz, locale, weekday, zone
        )
    times = format_clock_range(first.time(), last.time(), locale)
    text = _day_and_time(first.date(), times, locale, weekday)
    names = dict.fromkeys((first.tzname(), last.tzname()))  # both on a night the clocks change
    return f"{text} ({'/'.join(names)})" if zone else text


def _day_and_time(day: date, times: str, locale: str | None, weekday: bool) -> str:
    joined = babel_locale(locale).datetime_formats["medium"]  # '{1}, {0}': day, then time
    return joined.replace("{1}", format_day(day, locale, weekday)).replace("{0}", times)


def format_day_range(first: date, last: date, locale: str | None = DEFAULT_LOCALE) -> str:
    """From one day to another, each part once: en-GB '3–10 Mar 2026', en-US 'Mar 3 – 10, 2026'."""
    return format_interval(first, last, "yMMMd", locale=babel_locale(locale))


def clinic_time(clinic, moment: datetime | None, weekday: bool = True, zone: bool = False) -> str:
    """A UTC moment in a clinic's time zone and locale (anything with .timezone and .locale:
    a Clinic, a ClinicFormat). The one way a time reaches a user; never UTC."""
    return format_moment(moment, clinic.timezone, clinic.locale, weekday, zone)


def clinic_time_range(
    clinic, start: datetime | None, end: datetime | None, weekday: bool = True, zone: bool = False
) -> str:
    """A visit's or a period's start and end in a clinic's time zone and locale."""
    return format_moment_range(start, end, clinic.timezone, clinic.locale, weekday, zone)


def format_day(day: date | None, locale: str | None = DEFAULT_LOCALE, weekday: bool = True) -> str:
    """A calendar day in the locale's own order: en-GB 'Tue, 3 Mar 2026', en-US 'Tue, Mar 3,
    2026' ('' for None)."""
    if day is None:
        return ""
    return format_skeleton("yMMMEd" if weekday else "yMMMd", day, locale=babel_locale(locale))


def format_clock(at: time | datetime, locale: str | None = DEFAULT_LOCALE) -> str:
    """A wall-clock time in the locale's own short form (24-hour in en-GB, 12-hour in en-US)."""
    return format_time(at, "short", locale=babel_locale(locale))


@lru_cache(maxsize=4096)
def format_clock_range(first: time, last: time, locale: str | None = DEFAULT_LOCALE) -> str:
    """From one wall-clock time to another in the locale's form: en-GB '14:00–14:30', en-US
    '2:00 – 2:30 PM'. Remembered: a day's visits share a few dozen slots, and Babel's
    interval formatting took 0.1 ms a row (two thirds of Today's list on a busy clinic)."""
    skeleton = "Hm" if hour_cycle(locale) else "hm"
    return format_interval(first, last, skeleton, locale=babel_locale(locale))


def clinic_clock_range(clinic, start: datetime, end: datetime) -> str:
    """The local times (no day) of a UTC start and end in a clinic's zone and locale. A time
    the clock shows twice (the autumn night's repeated hour) is told apart by the zone:
    '01:30–02:00 (BST)', then '01:30–02:00 (GMT)'."""
    first, last = to_local(start, clinic.timezone), to_local(end, clinic.timezone)
    times = format_clock_range(first.time(), last.time(), clinic.locale)
    if not (_repeated(first) or _repeated(last)):
        return times
    return f"{times} ({'/'.join(dict.fromkeys((first.tzname(), last.tzname())))})"


def _repeated(local: datetime) -> bool:
    """Whether the clock shows this wall time twice that day (its other fold has another
    offset)."""
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def weekday_name(
    weekday: int, locale: str | None = DEFAULT_LOCALE, in_text: bool = False, width: str = "wide"
) -> str:
    """A weekday (0 = Monday) by its name in the locale: en-GB 'Monday', de-DE 'Montag',
    fr-FR 'lundi'; `in_text` for a name inside a sentence (some languages capitalise only a
    name that stands alone); `width` "abbreviated" ('Mon', 'seg.') or "narrow" ('M', 'S')."""
    if not 0 <= weekday <= 6:
        raise ValidationError("A weekday is a number from 0 (Monday) to 6 (Sunday).")
    days = babel_locale(locale).days["format" if in_text else "stand-alone"][width]
    return days[weekday]


def hour_cycle(locale: str | None = DEFAULT_LOCALE) -> bool:
    """True when the locale writes times on a 24-hour clock."""
    pattern = babel_locale(locale).time_formats["short"].pattern
    return "H" in pattern or "k" in pattern


@dataclass(frozen=True)
class ClinicFormat:
    """How one clinic shows money, numbers, dates and times (its zone, locale and currency)."""

    timezone: str = "UTC"
    locale: str = DEFAULT_LOCALE
    currency: str = DEFAULT_CURRENCY

    def money(self, cents: int | None) -> str:
        return format_money(cents, self.currency, self.locale)

    def money_change(self, cents: int) -> str:
        """A change in money with its sign: '+£12.00', '-£3.50', '±£0.00'."""
        sign = "±" if cents == 0 else _sign(cents, babel_locale(self.locale))
        return sign + self.money(abs(cents))

    def number(self, value: float, digits: int = 0, signed: bool = False) -> str:
        return format_number(value, digits, self.locale, signed)

    def percent(self, rate: float | None, digits: int = 1, signed: bool = False) -> str:
        """A rate as a percentage; a rate that cannot be computed (nothing booked) is NO_VALUE."""
        return (
            NO_VALUE
            if rate is None or rate != rate
            else format_percent(rate, digits, self.locale, signed)
        )

    def points(self, now: float | None, before: float | None) -> str | None:
        """A rate's change against another period in percentage points ('+1.2 pp')."""
        if now is None or before is None:
            return None
        return f"{format_number((now - before) * 100, 1, self.locale, signed=True)} pp"

    def moment(self, moment: datetime | None, weekday: bool = True, zone: bool = False) -> str:
        return format_moment(moment, self.timezone, self.locale, weekday, zone)

    def day(self, day: date | None, weekday: bool = True) -> str:
        return format_day(day, self.locale, weekday)

    def clock(self, at: time | datetime) -> str:
        return format_clock(at, self.locale)

    def weekday(self, weekday: int, width: str = "wide") -> str:
        """A weekday (0 = Monday) by its name in the clinic's locale (`width` as weekday_name)."""
        return weekday_name(weekday, self.locale, width=width)

    def month(self, day: date) -> str:
        """A month and year: en-GB 'Mar 2026', pt-BR 'mar. de 2026'."""
        return format_skeleton("yMMM", day, locale=babel_locale(self.locale))


def currency_locales(session: Session, *, active_only: bool = False) -> dict[str, str]:
    """Each currency the practice charges in, with the locale of the first clinic charging in it
    (how an amount in that currency is written when no one clinic is chosen); `active_only`:
    of the clinics open today (what a price is charged in). Empty before any clinic exists."""
    query = select(Clinic.currency, Clinic.locale).order_by(Clinic.id)
    if active_only:
        query = query.where(Clinic.active.is_(True))
    found: dict[str, str] = {}
    for currency, locale in session.execute(query):
        found.setdefault(currency or DEFAULT_CURRENCY, locale or DEFAULT_LOCALE)
    return found


def clinic_format(session: Session, clinic_id: int | None = None) -> ClinicFormat:
    """The display format of a clinic; with no clinic chosen, the practice's first clinic's
    (a practice's clinics normally share locale and currency)."""
    query = select(Clinic.timezone, Clinic.locale, Clinic.currency)
    query = query.where(Clinic.id == clinic_id) if clinic_id else query.order_by(Clinic.id)
    row = session.execute(query.limit(1)).first()
    if row is None:
        return ClinicFormat(timezone="Europe/London")
    return ClinicFormat(row[0], row[1] or DEFAULT_LOCALE, row[2] or DEFAULT_CURRENCY)
