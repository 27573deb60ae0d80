"""The one money formatter and the clinic's locale (core.kernel.money), with Babel."""

from datetime import UTC, datetime, time

import pytest

from core.kernel import money
from core.kernel.errors import ValidationError
from db.models import Clinic


def test_money_in_the_clinics_currency_and_locale():
    assert money.format_money(2550, "GBP", "en-GB") == "£25.50"
    assert money.format_money(123456789, "USD", "en-US") == "$1,234,567.89"
    # German: comma decimals, the symbol after the amount (a no-break space before it)
    assert money.format_money(2550, "EUR", "de-DE").replace("\xa0", " ") == "25,50 €"
    assert money.format_money(None) == ""


def test_minor_units_follow_the_currency():
    assert money.to_minor(25.5, "GBP") == 2550
    assert money.to_minor(0.1 + 0.2, "GBP") == 30  # no binary-float off-by-one
    assert money.to_minor(500, "JPY") == 500  # yen has no minor unit
    assert str(money.to_major(2550, "GBP")) == "25.50"


def test_london_sees_24_hour_times_and_day_month_dates():
    moment = datetime(2026, 7, 3, 14, 5, tzinfo=UTC)  # 15:05 in London (BST)
    assert money.format_moment(moment, "Europe/London", "en-GB") == "Fri 3 Jul 2026, 15:05"
    assert money.format_clock(time(14, 5), "en-GB") == "14:05"
    assert money.hour_cycle("en-GB") and not money.hour_cycle("en-US")
    assert "AM" in money.format_moment(moment, "America/New_York", "en-US")
    assert money.format_moment(None, "Europe/London") == ""


def test_an_unknown_locale_is_a_clear_error():
    with pytest.raises(ValidationError, match="not a locale"):
        money.format_money(100, "GBP", "xx-nowhere")


def test_clinic_format_reads_the_clinics_columns(db, world):
    with db.write() as session:
        session.add(Clinic(name="Berlin", timezone="Europe/Berlin", locale="de-DE", currency="EUR"))
    with db.read() as session:
        berlin = session.query(Clinic).filter_by(name="Berlin").one()
        fmt = money.clinic_format(session, berlin.id)
        first = money.clinic_format(session, None)
    assert fmt == money.ClinicFormat("Europe/Berlin", "de-DE", "EUR")
    assert fmt.money(1000).replace("\xa0", " ") == "10,00 €"
    assert first.currency == "GBP" and first.locale == "en-GB"  # the defaults of a new clinic
