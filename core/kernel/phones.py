"""Phone numbers read in a country: the clinic's (its locale's territory) for a national form,
and checked with phonenumbers (Google's libphonenumber data)."""

from __future__ import annotations

import phonenumbers

from core.kernel.errors import ValidationError
from core.kernel.money import babel_locale


def phone_region(locale: str | None) -> str:
    """A clinic's country for reading national phone numbers: its locale's (en-GB: GB)."""
    return babel_locale(locale).territory or babel_locale(None).territory


def international(typed: str, locale: str | None) -> str:
    """A typed phone number in international form (+44 20 7946 0123): a national form is read
    in the country of `locale`, one with its country code anywhere. A number that country's
    numbering plan does not have (a digit missing or extra, letters) is a ValidationError
    naming the country and what to type."""
    region = phone_region(locale)
    country = babel_locale("en").territories.get(region, region)  # as the messages' words
    try:
        number = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        example = phonenumbers.example_number(region)
        shown = (
            phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            if example
            else "+44 20 7946 0123"
        )
        raise ValidationError(
            f"{typed!r} is not a phone number in {country}: check its digits, or type it with "
            f"its country code, like {shown}."
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
