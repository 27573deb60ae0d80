"""Phone numbers read in a country: the clinic's (its locale's territory) for a national form,
and checked with phonenumbers (Google's libphonenumber data). A number typed for the practice
to text (a patient's, a test message's) is checked once, here (`dialable`), in the countries of
the practice's clinics (`practice_regions`). A text reaches a mobile: `landline` says when
phonenumbers knows the number for a fixed line (a number that may be either, as most US ones
are, or one it cannot place, may get texts). A number typed to find someone (the patient
search, the outbox's search) is read by one rule, `dialled`, as the digits every form on file
holds, and looked for in a stored number's digits (`bare_phone`); a whole number typed, in
every form a text's address may have been stored in (`stored_forms`)."""

from __future__ import annotations

import re

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.kernel.errors import ValidationError
from core.kernel.money import babel_locale
from core.kernel.text import clean
from db.models import Appointment, Clinic, Patient

PHONE = re.compile(r"^\+?[0-9 ()-]{1,40}$")  # the characters; phonenumbers reads the rest
# a number, or a part of one, as people type it: digits, spaces, +, brackets, dashes and dots
NUMBER_SHAPED = re.compile(r"[\d\s+\-().]*\d[\d\s+\-().]*")


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


def practice_regions(session: Session, first: str | None = None) -> tuple[str, ...]:
    """The countries of the practice's open clinics (their locales' territories), `first`'s
    (a clinic's locale) or else the first clinic's first: where a national phone number typed
    at the desk, in a form or in a file can belong."""
    locales = session.scalars(
        select(Clinic.locale).where(Clinic.active.is_(True)).order_by(Clinic.id)
    )
    found = dict.fromkeys(phone_region(locale) for locale in [first, *locales] if locale)
    return tuple(found) or (phone_region(None),)


def booked_regions(session: Session, patient_ids) -> dict[int, tuple[str, ...]]:
    """By patient, the countries of the clinics they have an appointment at (any status, any
    time), by clinic, in one query; a patient who booked nowhere is left out. Where a reply
    from their number is matched (core.portal.sign_in) and a text to it is read first
    (core.messaging.delivery)."""
    ids = set(patient_ids)
    found: dict[int, dict[str, None]] = {}
    if ids:
        rows = session.execute(
            select(Appointment.patient_id, Clinic.id, Clinic.locale)
            .join(Clinic, Clinic.id == Appointment.clinic_id)
            .where(Appointment.patient_id.in_(ids))
            .distinct()
            .order_by(Appointment.patient_id, Clinic.id)
        )
        for patient_id, _, locale in rows:
            found.setdefault(patient_id, {})[phone_region(locale)] = None
    return {patient_id: tuple(regions) for patient_id, regions in found.items()}


_PHONE_WHY = {
    phonenumbers.ValidationResult.TOO_SHORT: "it is too short",
    phonenumbers.ValidationResult.TOO_LONG: "it is too long",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "it has no area code",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "it starts with no country's code",
    phonenumbers.ValidationResult.INVALID_LENGTH: "it has the wrong number of digits",
}
_PARSE_WHY = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "it starts with no country's code",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "it is too short",
    phonenumbers.NumberParseException.TOO_LONG: "it is too long",
}


def phone_problem(phone: str, regions: tuple[str, ...]) -> str | None:
    """Why no phone can dial `phone` (phonenumbers: a national form read in each of `regions`,
    an international one as it stands), or None when it can be dialled in one of them."""
    why = None
    for region in regions:
        try:
            reading = phonenumbers.is_possible_number_with_reason(phonenumbers.parse(phone, region))
        except phonenumbers.NumberParseException as error:
            digits = any(c.isdigit() for c in phone)
            found = _PARSE_WHY.get(error.error_type, "it is too short" if digits else "")
            why = why or found or "it has no digits"
            continue
        if reading == phonenumbers.ValidationResult.IS_POSSIBLE:
            return None
        why = why or _PHONE_WHY.get(reading, "it is no number a phone can dial")
    return why


def e164(phone: str, regions: tuple[str, ...]) -> str | None:
    """`phone` as a text provider takes it (E.164: +447700900123): a national form read in the
    first of `regions` whose numbering plan can have it (phonenumbers' possible, as `dialable`
    checks), an international one as it stands; None when none can (`phone_problem` says
    why)."""
    for region in regions:
        try:
            number = phonenumbers.parse(phone, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def countries(regions: tuple[str, ...]) -> str:
    """`regions` in English words, as the messages name them ("United Kingdom or Germany")."""
    names = [babel_locale("en").territories.get(region, region) for region in regions]
    return " or ".join(names)


def dialable(typed: str | None, regions: tuple[str, ...]) -> str | None:
    """A phone number someone can dial, kept as typed, or None when blank."""
    phone = (clean(typed, field="phone number", limit=40) or "").strip() or None
    if phone and not PHONE.match(phone):
        raise ValidationError(
            f"{phone!r} is not a phone number: use digits, spaces and an optional +."
        )
    if phone and (why := phone_problem(phone, regions)):
        example = phonenumbers.format_number(
            phonenumbers.example_number_for_type(regions[0], phonenumbers.PhoneNumberType.MOBILE),
            phonenumbers.PhoneNumberFormat.NATIONAL,
        )
        raise ValidationError(
            f"{phone!r} is not a phone number: {why}. Type it with its area code, like "
            f"{example}, or with + and the country code."
        )
    return phone


def landline(phone: str | None, regions: tuple[str, ...]) -> bool:
    """Whether `phone` is a fixed line, which no text reaches: each possible reading of it (a
    national form read in each of `regions`, an international one as it stands) is a valid
    number of phonenumbers' FIXED_LINE, and there is at least one. A reading phonenumbers
    cannot place (possible but not valid: a new or reserved range such as the UK's 07700 900)
    may be a mobile, so the number is not called a landline because another country's plan
    happens to read it as one."""
    kinds = set()
    for region in regions:
        try:
            number = phonenumbers.parse(phone or "", region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            kinds.add(phonenumbers.number_type(number))
        elif phonenumbers.is_possible_number(number):
            return False
    return kinds == {phonenumbers.PhoneNumberType.FIXED_LINE}


def not_for_texts(phone: str) -> str:
    """What a refusal to text a landline says first."""
    return f"{phone!r} is a landline: texts cannot reach it"


def dialled(typed: str) -> str | None:
    """The digits of a typed phone number, or its start or end, that every form on file holds:
    the national number after a country code (+44 7700 900 or 0044 7700 900: 7700900), else
    the digits after a trunk 0 (07700 900: 7700900; three at least), at most the last nine; so
    a number on file as 07700 900123 or +44 7700 900123 is found however it is typed, whole or
    in part. None when `typed` is not a number of three digits at least ('abc123' is none: a
    word with letters is a name's or an email's)."""
    typed = typed.strip()
    digits = re.sub(r"\D", "", typed)
    if not NUMBER_SHAPED.fullmatch(typed) or len(digits) < 3:
        return None
    if typed.startswith("+") or digits.startswith("00"):
        try:
            national = phonenumbers.parse("+" + digits.removeprefix("00"), None).national_number
            digits = str(national)
        except phonenumbers.NumberParseException:
            pass
    bare = digits.lstrip("0")
    return (bare if len(bare) >= 3 else digits)[-9:]


def bare_phone(column=Patient.phone):
    """A stored number's digits in SQL, the separators people type removed (a patient's phone,
    or another column holding a number, such as the address a text went to): where the digits
    `dialled` reads are looked for."""
    for char in (" ", "-", "(", ")", ".", "+"):
        column = func.replace(column, char, "")
    return column


def stored_forms(typed: str, regions: tuple[str, ...]) -> list[str]:
    """The digits a number typed (a whole one) has in each form a text's address may have been
    stored in: a patient's phone as typed on their record, so with its country code or
    without, a trunk 0 or none, 00 for the +; read in each of the practice's countries
    (`practice_regions`), as a national form may belong to any of them."""
    forms = {re.sub(r"\D", "", typed)}
    for region in regions:
        try:
            number = phonenumbers.parse(typed, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_possible_number(number):
            continue
        significant = phonenumbers.national_significant_number(number)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        trunk, code = re.sub(r"\D", "", national), str(number.country_code)
        # 7700900123, 07700900123, 447700900123, 00447700900123, +44 (0)7700 ...
        forms |= {significant, trunk, code + significant, "00" + code + significant, code + trunk}
    return sorted(forms)
