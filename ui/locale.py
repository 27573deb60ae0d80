"""The clinic's display format (zone, locale, currency) for pages, cached across sessions, and
the formats of Streamlit's date and time pickers and table columns in a locale."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from core.kernel.money import (
    ClinicFormat,
    babel_locale,
    clinic_format,
    currency_locales,
    hour_cycle,
)
from ui.caches import cached
from ui.context import read

_PICKER_FIELDS = {"y": "YYYY", "M": "MM", "d": "DD"}


@cached("setup", ttl=300, max_entries=50)
def display_format(clinic_id: int | None = None) -> ClinicFormat:
    """How money and times are shown for a clinic (or the practice's first clinic)."""
    return read(clinic_format, clinic_id)


def in_currency(fmt: ClinicFormat, currency: str) -> ClinicFormat:
    """`fmt` for an amount in `currency`: as it is (its own currency), else in the locale of the
    practice's first clinic charging in it, so an all-clinics figure in euros reads '80,00 €'
    as Berlin writes it, not '€80.00'."""
    if currency == fmt.currency:
        return fmt
    return replace(fmt, currency=currency, locale=_locales().get(currency, fmt.locale))


@cached("setup", ttl=300, max_entries=5)
def _locales() -> dict[str, str]:
    return read(currency_locales)


def date_picker(locale: str | None) -> str:
    """st.date_input's format in a locale's order and separator (Babel's short date):
    DD/MM/YYYY in en-GB, MM/DD/YYYY in en-US, DD.MM.YYYY in de-DE, YYYY-MM-DD in sv-SE.
    Streamlit knows the separators / - and . and the orders year-month-day, day-month-year and
    month-day-year only; any other separator becomes /, any other order year-month-day."""
    pattern = babel_locale(locale).date_formats["short"].pattern
    order = "".join(sorted(_PICKER_FIELDS, key=pattern.find))
    if order not in ("yMd", "dMy", "Mdy"):
        order = "yMd"
    separator = next((c for c in pattern if c in "/-."), "/")
    return separator.join(_PICKER_FIELDS[field] for field in order)


def clock_picker(locale: str | None) -> Literal["12h", "24h"]:
    """st.time_input's format: the locale's own clock (24 h in en-GB, 12 h in en-US)."""
    return "24h" if hour_cycle(locale) else "12h"


def table_clock(locale: str | None) -> str:
    """A table column's time (moment.js, as st.column_config takes it) on the locale's clock."""
    return "HH:mm" if hour_cycle(locale) else "h:mm A"


def table_moment(locale: str | None) -> str:
    """A table column's date and time (moment.js) in the locale's order and on its clock."""
    return f"{date_picker(locale)} {table_clock(locale)}"


@dataclass(frozen=True)
class Pickers:
    date: str  # st.date_input's `format`
    clock: Literal["12h", "24h"]  # st.time_input's `format`


def pickers(locale: str | None) -> Pickers:
    """The date and time pickers' formats for a clinic's locale."""
    return Pickers(date_picker(locale), clock_picker(locale))


def clinic_pickers(clinic_id: int | None = None) -> Pickers:
    """The pickers' formats for a clinic (or, with none chosen, the practice's first clinic)."""
    return pickers(display_format(clinic_id).locale)
