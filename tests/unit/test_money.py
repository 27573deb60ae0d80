"""The one money formatter and the clinic's locale (core.kernel.money), with Babel."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

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


def test_counts_and_rates_follow_the_locale():
    assert money.format_number(1234567, locale="en-GB") == "1,234,567"
    assert money.format_number(1234567, locale="pt-BR") == "1.234.567"
    assert money.format_number(1234567, locale="fr-FR") == "1\u202f234\u202f567"
    assert money.format_number(2.5, 1, "de-DE") == "2,5"
    assert money.format_percent(0.128, locale="en-GB") == "12.8%"
    assert money.format_percent(0.128, locale="pt-BR") == "12,8%"
    assert money.format_percent(0.2, 0, "de-DE") == "20\xa0%"
    # a change shows its sign, + included; one that rounds to nothing shows none
    assert money.format_number(12, locale="pt-BR", signed=True) == "+12"
    assert money.format_number(-1234, locale="pt-BR", signed=True) == "-1.234"
    assert money.format_number(0.04, 1, "en-GB", signed=True) == "0.0"
    brazil = money.ClinicFormat(locale="pt-BR")
    assert brazil.points(0.2, 0.188) == "+1,2 pp" and brazil.points(None, 0.1) is None
    assert brazil.percent(None) == money.NO_VALUE and brazil.percent(-0.034, signed=True) == "-3,4%"
    # a fall in money starts with the minus sign Streamlit's metric reads as a fall (down arrow)
    gb = money.ClinicFormat()
    assert gb.money_change(-350) == "-£3.50" and gb.money_change(1200) == "+£12.00"
    assert gb.money_change(0) == "±£0.00"


def test_minor_units_follow_the_currency():
    assert money.to_minor(25.5, "GBP") == 2550
    assert money.to_minor(0.1 + 0.2, "GBP") == 30  # no binary-float off-by-one
    assert money.to_minor(500, "JPY") == 500  # yen has no minor unit
    assert str(money.to_major(2550, "GBP")) == "25.50"


def test_the_minor_units_stored_amounts_mean_are_babels_pinned_ones():
    """Stored amounts are minor units as babel counts them: a babel upgrade that counts a
    currency differently would change every stored amount in it a hundredfold (ISO 4217 gives
    HUF and IDR two decimals, babel's CLDR data none), so the counts of the currencies clinics
    charge in are pinned here and such an upgrade fails this test instead of repricing them."""
    pinned = {"GBP": 2, "EUR": 2, "USD": 2, "CHF": 2, "JPY": 0, "KRW": 0, "HUF": 0, "IDR": 0}
    pinned |= {"KWD": 3, "BHD": 3}
    assert {code: money.minor_digits(code) for code in pinned} == pinned


def test_a_typed_amount_with_more_decimals_than_its_currency_is_refused():
    assert money.typed_minor(3000.0, "JPY") == 3000
    assert money.typed_minor(49.99, "EUR") == 4999
    assert money.typed_minor(25.5, "BRL") == 2550
    with pytest.raises(ValidationError, match="JPY amounts have no decimals"):
        money.typed_minor(3000.5, "JPY")
    with pytest.raises(ValidationError, match="EUR amounts have at most 2 decimals; 49.999 has 3"):
        money.typed_minor(49.999, "EUR")


@pytest.mark.parametrize(
    ("typed", "currency", "locale", "cents"),
    [
        ("1.234,50", "EUR", "de-DE", 123450),
        ("1.234,50 €", "EUR", "de-DE", 123450),
        ("1 234,50", "EUR", "fr-FR", 123450),  # a plain space for French grouping
        ("1\u202f234,50\xa0€", "EUR", "fr-FR", 123450),  # as babel writes it
        ("R$ 1.234,50", "BRL", "pt-BR", 123450),
        ("₹12,34,567.50", "INR", "en-IN", 123456750),  # lakh grouping
        ("CHF 1'234.50", "CHF", "de-CH", 123450),
        ("1’234.50", "CHF", "de-CH", 123450),
        ("￥1,000", "JPY", "ja-JP", 1000),
        ("₩50,000", "KRW", "ko-KR", 50000),
        ("5.125 KWD", "KWD", "en-GB", 5125),  # fils: three decimals
        ("0,250", "BHD", "fr-FR", 250),
    ],
)
def test_an_amount_typed_as_its_locale_writes_it_is_read_exactly(typed, currency, locale, cents):
    assert money.typed_minor(typed, currency, locale) == cents


def test_a_typed_amount_keeps_its_sign_and_size_for_the_service_to_check():
    """Negative and huge amounts are read as typed: the service refuses them with the form's
    other problems at once (a negative fee beside an empty policy text)."""
    assert money.typed_minor("-5", "GBP", "en-GB") == -500
    assert money.typed_minor(-5.0, "EUR") == -500
    assert money.typed_minor("2.000.000.000", "JPY", "de-DE") == 2 * 10**9


@pytest.mark.parametrize(
    ("typed", "currency", "locale", "said"),
    [
        ("1000.5", "JPY", "ja-JP", "JPY amounts have no decimals; 1000.5 has 1."),
        ("5.1255", "KWD", "en-GB", "KWD amounts have at most 3 decimals; 5.1255 has 4."),
        (
            "1,234.50",
            "EUR",
            "de-DE",
            "'1,234.50' is not an amount as de-DE writes numbers; type it as 1.234,50.",
        ),
        ("1,234,567.50", "INR", "en-IN", "type it as 1,234.50."),
        (
            "1e9",
            "GBP",
            "en-GB",
            "'1e9' is not an amount; type it in digits as en-GB writes them, e.g. 1,234.50.",
        ),
        ("NaN", "GBP", "en-GB", "'NaN' is not an amount; type a number such as 25."),
        (float("nan"), "GBP", None, "nan is not an amount; type a number such as 25."),
        (float("inf"), "EUR", None, "inf is not an amount; type a number such as 25."),
        ("$25", "EUR", "de-DE", "'$25' is not an amount as de-DE writes numbers"),
        ("", "GBP", "en-GB", "'' is not an amount"),
        (True, "GBP", None, "True is not an amount"),
    ],
)
def test_a_typed_amount_that_is_no_amount_is_refused_saying_what_to_type(
    typed, currency, locale, said
):
    """Each refusal is a ValidationError (the page shows it), not Decimal's or a TypeError:
    before, NaN and infinity raised TypeError and any text raised decimal.InvalidOperation."""
    with pytest.raises(ValidationError) as refused:
        money.typed_minor(typed, currency, locale)
    assert said in str(refused.value).replace("\xa0", " ")


def test_london_sees_24_hour_times_and_day_month_dates():
    moment = datetime(2026, 7, 3, 14, 5, tzinfo=UTC)  # 15:05 in London (BST)
    assert money.format_moment(moment, "Europe/London", "en-GB") == "Fri, 3 Jul 2026, 15:05"
    assert money.format_clock(time(14, 5), "en-GB") == "14:05"
    assert money.hour_cycle("en-GB") and not money.hour_cycle("en-US")
    assert (
        money.format_moment(moment, "America/New_York", "en-US")
        == f"Fri, Jul 3, 2026, 10:05{NNBSP}AM"
    )
    assert money.format_moment(None, "Europe/London") == ""


NNBSP, THIN = "\u202f", "\u2009"  # CLDR's spaces: before AM/PM, around an en dash


@dataclass
class Place:  # anything with a time zone and a locale, as a Clinic row has
    timezone: str
    locale: str


LONDON, NEW_YORK = Place("Europe/London", "en-GB"), Place("America/New_York", "en-US")


def test_a_clinic_time_is_in_its_zone_and_locale_with_the_zone_of_that_day():
    winter = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 3, 14, 0, tzinfo=UTC)
    assert money.clinic_time(LONDON, winter, zone=True) == "Tue, 3 Mar 2026, 14:00 (GMT)"
    assert money.clinic_time(LONDON, summer, zone=True) == "Fri, 3 Jul 2026, 15:00 (BST)"
    assert (
        money.clinic_time(NEW_YORK, summer, zone=True) == f"Fri, Jul 3, 2026, 10:00{NNBSP}AM (EDT)"
    )
    assert money.clinic_time(LONDON, winter, weekday=False) == "3 Mar 2026, 14:00"
    assert money.clinic_time(NEW_YORK, winter, weekday=False) == f"Mar 3, 2026, 9:00{NNBSP}AM"
    assert money.clinic_time(LONDON, None) == ""


def test_a_time_range_names_the_day_once_and_both_times_in_the_locale():
    start = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    assert money.clinic_time_range(LONDON, start, end) == "Tue, 3 Mar 2026, 14:00–14:30"
    assert money.clinic_time_range(NEW_YORK, start, end) == (
        f"Tue, Mar 3, 2026, 9:00{THIN}–{THIN}9:30{NNBSP}AM"
    )
    # across noon the 12-hour clock says both halves of the day
    assert money.clinic_time_range(
        NEW_YORK, start + timedelta(hours=2), end + timedelta(hours=3)
    ) == (f"Tue, Mar 3, 2026, 11:00{NNBSP}AM{THIN}–{THIN}12:30{NNBSP}PM")
    # over several days: both moments in full
    assert money.clinic_time_range(LONDON, start, start + timedelta(days=2)) == (
        "Tue, 3 Mar 2026, 14:00 – Thu, 5 Mar 2026, 14:00"
    )
    assert money.clinic_time_range(LONDON, None, end) == ""
    assert money.clinic_clock_range(LONDON, start, end) == "14:00–14:30"


def test_times_across_the_night_the_clocks_change_are_wall_times():
    # London springs forward at 01:00 UTC on 29 March 2026: 00:30 GMT, then 02:30 BST
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    end = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert money.clinic_time_range(LONDON, start, end, zone=True) == (
        "Sun, 29 Mar 2026, 00:30–02:30 (GMT/BST)"
    )
    # New York falls back on 1 November 2026: 01:30 happens twice, told apart by the zone
    first, second = (
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
    )
    assert money.clinic_time(NEW_YORK, first, zone=True).endswith(f"1:30{NNBSP}AM (EDT)")
    assert money.clinic_time(NEW_YORK, second, zone=True).endswith(f"1:30{NNBSP}AM (EST)")
    # a day's list of clock times (Today) tells the two apart too, and only those
    half = timedelta(minutes=30)
    assert money.clinic_clock_range(NEW_YORK, first, first + half) == (
        f"1:30{THIN}–{THIN}1:00{NNBSP}AM (EDT/EST)"
    )
    assert money.clinic_clock_range(NEW_YORK, second, second + half) == (
        f"1:30{THIN}–{THIN}2:00{NNBSP}AM (EST)"
    )
    assert money.clinic_clock_range(NEW_YORK, first - 3 * half, first - half) == (
        f"12:00{THIN}–{THIN}1:00{NNBSP}AM (EDT)"
    )
    assert money.clinic_clock_range(NEW_YORK, second + half, second + 2 * half) == (
        f"2:00{THIN}–{THIN}2:30{NNBSP}AM"
    )


def test_days_follow_the_locales_order():
    assert money.format_day(date(2026, 3, 3), "en-GB") == "Tue, 3 Mar 2026"
    assert money.format_day(date(2026, 3, 3), "en-US") == "Tue, Mar 3, 2026"
    assert money.format_day(date(2026, 3, 3), "en-US", weekday=False) == "Mar 3, 2026"
    assert (
        money.format_day_range(date(2026, 3, 3), date(2026, 3, 10), "en-GB")
        == f"3{THIN}–{THIN}10 Mar 2026"
    )
    assert money.format_clock_range(time(21), time(8), "en-GB") == "21:00–08:00"
    assert money.ClinicFormat(locale="en-US").month(date(2026, 3, 1)) == "Mar 2026"


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


def test_each_currency_is_written_as_the_first_clinic_charging_in_it(db, world):
    """One rule for the all-clinics figures (every clinic) and the set-up pages' prices (the
    active clinics, through core.practice.reads.overview): the first clinic by creation, not
    by name, so both pages write euros as Berlin does."""
    from core.practice import reads

    with db.write() as session:
        session.add_all(
            [
                Clinic(name="Wien", timezone="Europe/Vienna", locale="de-AT", currency="JPY"),
                Clinic(name="Berlin", timezone="Europe/Berlin", locale="de-DE", currency="EUR"),
                Clinic(
                    name="Amsterdam", timezone="Europe/Amsterdam", locale="nl-NL", currency="EUR"
                ),
            ]
        )
        session.flush()
        session.query(Clinic).filter_by(name="Wien").one().active = False
    with db.read() as session:
        every = money.currency_locales(session)
        active = money.currency_locales(session, active_only=True)
        setup = reads.overview(session, world.owner)
    assert every == {"GBP": "en-GB", "JPY": "de-AT", "EUR": "de-DE"}
    assert active == setup.currencies == {"GBP": "en-GB", "EUR": "de-DE"}


def test_weekday_names_come_from_the_locale():
    assert money.weekday_name(0) == "Monday" and money.weekday_name(6, "de-DE") == "Sonntag"
    assert money.ClinicFormat(locale="fr-FR").weekday(1) == "mardi"
    with pytest.raises(ValidationError, match="from 0 \\(Monday\\) to 6"):
        money.weekday_name(7)
