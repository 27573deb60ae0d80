"""Patient records: search with suggestions, create, read."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from babel.dates import get_date_format
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit, locks
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import (
    DEFAULT_LOCALE,
    ClinicFormat,
    babel_locale,
    clinic_format,
    clinic_time,
    format_day,
)
from core.kernel.phones import dialable, landline, not_for_texts, practice_regions
from core.kernel.text import clean, plain_words
from core.kernel.times_of_day import TIME_OF_DAY_WINDOWS, time_of_day_label
from core.messaging import notify
from core.patients import enrolment, invitations, merge
from core.patients.emails import email_address
from core.patients.search import numbers_joined, phone_like
from core.payments import desk, points, prepay
from core.payments.rules import get_settings, money_format, payment_money
from core.practice.treatment import treatment_of, treatment_texts
from db.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Patient,
    Payment,
    Provider,
    Service,
    Source,
    TimeOfDay,
    User,
)
from db.types import utcnow

JUST_ADDED = timedelta(minutes=2)  # a patient of the same name added again: a second press


@dataclass(frozen=True)
class PatientSummary:
    id: int
    name: str
    date_of_birth: date | None
    email: str | None
    phone: str | None
    locale: str = DEFAULT_LOCALE  # the practice's display locale, for the date of birth
    merged_into: int | None = None  # found by its number only (core.patients.merge)

    @property
    def label(self) -> str:
        """'Alex Morgan (#1), born 12 Apr 1985 · alex@…' (en-GB); 'born Apr 12, 1985' in
        en-US. The number tells apart two patients of one name whose other details are the
        same or missing (twins sharing a family email, imported records)."""
        born = format_day(self.date_of_birth, self.locale, weekday=False)
        born = f", born {born}" if born else ""
        contact = self.email or self.phone or "no contact details"
        merged = f" · merged into #{self.merged_into}" if self.merged_into else ""
        return f"{self.name} (#{self.id}){born} · {contact}{merged}"


def _summary(p: Patient, locale: str) -> PatientSummary:
    return PatientSummary(
        p.id, p.full_name, p.date_of_birth, p.email, p.phone, locale, p.merged_into_id
    )


NUMBER = re.compile(r"^#(\d{1,9})$")
# Chinese and Japanese names are written without spaces, the family name first ('王伟' for 伟
# 王): each of these characters is found on its own in a search, as is each Hangul syllable
_EACH = re.compile("([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7a3])")


class Matches(list):
    """The patients a search found, best first (a list of PatientSummary); `more` when more
    patients match than were asked for, so the page can ask for more of the name, a date of
    birth or the phone instead of letting the patient sought be silently left out."""

    def __init__(self, found=(), more: bool = False) -> None:
        super().__init__(found)
        self.more = more

    @property
    def note(self) -> str | None:
        """What to say under a list cut short, or None."""
        if not self.more:
            return None
        return (
            f"More patients match than the {len(self)} shown (whole names first). Type more "
            "of the name (first and last), or search by phone, email or #number."
        )


def _search_words(typed: str) -> list[str]:
    """The words of a typed name as `Patient.search_text` holds them, each ideograph or
    Hangul syllable a word of its own."""
    return plain_words(_EACH.sub(r" \1 ", typed))


DAY = re.compile(r"^(\d{1,4})[./-](\d{1,2})[./-](\d{1,4})\.?$")


def typed_day(word: str, locale: str) -> date | None:
    """A date typed as the practice writes dates, in its locale's order (12/04/1985 or
    12.04.85 in en-GB and de-DE, 4/12/1985 in en-US), or as 1985-04-12 anywhere; None when
    `word` is no such date. A two-digit year is the latest one not after this year."""
    parts = DAY.match(word)
    if parts is None:
        return None
    if len(parts.group(1)) == 4:
        order = "yMd"  # ISO 8601, whatever the locale
    else:
        pattern = get_date_format("short", locale=babel_locale(locale)).pattern
        order = "".join(sorted("dMy", key=lambda c: (pattern.find(c) < 0, pattern.find(c))))
    value = dict(zip(order, parts.groups(), strict=True))
    if len(value["y"]) not in (2, 4) or len(value["d"]) > 2 or len(value["M"]) > 2:
        return None
    year = int(value["y"])
    if len(value["y"]) == 2:
        this_year = utcnow().year
        year += 2000 if 2000 + year <= this_year else 1900
    try:
        return date(year, int(value["M"]), int(value["d"]))
    except ValueError:
        return None


def _pieces(typed: str) -> list[str]:
    """What one typed word must be found as in a patient's search text with its spaces left
    out: the word without its punctuation ('obrien' for O'Brien or O’Brien, whichever was
    typed), and each ideograph or Hangul syllable on its own (in any order)."""
    return [joined for chunk in _EACH.split(typed) if (joined := _joined(chunk))]


def _joined(name: str) -> str:
    """A name with its spaces and punctuation left out, as the desk may type it: 'obrien' for
    O'Brien, 'vanderberg' for Van der Berg."""
    return "".join(plain_words(name))


def _same_name(a: str, b: str) -> bool:
    """One name however typed: case, accents, spaces and punctuation aside (OBrien, O'Brien,
    O’Brien, O Brien)."""
    return _joined(a) == _joined(b)


def search_patients(session: Session, actor: Actor, text: str, limit: int = 20) -> Matches:
    """Patients whose name, email or phone contains each word of `text` (case, accents and the
    punctuation inside a name aside: 'obrien' finds O'Brien) and who were born on the day a
    word gives as a date (typed_day: in the practice's date order, or ISO), whole words first,
    then words that start so, then the rest, each by name; at most `limit`, `more` saying
    when others match too. Labels show dates in the practice's display locale. Records merged
    into another are left out, except when asked for by number ('#12')."""
    ensure(actor, Permission.PATIENTS_READ)
    typed = (clean(text, field="search", limit=200) or "").split()
    if not typed:
        return Matches()
    locale = clinic_format(session).locale
    query = select(Patient).where(Patient.merged_into_id.is_(None))  # merged away: not listed
    days = {w: day for w in typed if DAY.match(w) and (day := typed_day(w, locale))}
    for day in days.values():
        query = query.where(Patient.date_of_birth == day)
    # a phone number as people space it ('+44 7700 900') is one word
    typed = numbers_joined([w for w in typed if w not in days])
    if len(typed) == 1 and not days and (number := NUMBER.match(typed[0])):
        patient = session.get(Patient, int(number.group(1)))
        return Matches([_summary(patient, locale)] if patient else [])
    spaced = " " + Patient.search_text + " "
    joined = func.replace(Patient.search_text, " ", "")
    whole, starts = [], []
    for word in typed:
        words = _search_words(word)
        conditions = [joined.contains(piece, autoescape=True) for piece in _pieces(word)]
        whole += [spaced.contains(f" {w} ", autoescape=True) for w in words]
        starts += [spaced.contains(f" {w}", autoescape=True) for w in words]
        named = and_(*conditions) if conditions else None
        if (phone := phone_like(word)) is not None:  # the invitations list's rule (enrolment)
            named = phone if named is None else or_(named, phone)
        if named is None:
            return Matches()
        query = query.where(named)
    rank = case((and_(*whole), 0), (and_(*starts), 1), else_=2) if whole else literal(0)
    query = query.order_by(rank, Patient.last_name, Patient.first_name, Patient.id)
    found = list(session.scalars(query.limit(limit + 1)))
    return Matches([_summary(p, locale) for p in found[:limit]], more=len(found) > limit)


def get_patient(session: Session, actor: Actor, patient_id: int) -> Patient:
    ensure(actor, Permission.PATIENTS_READ)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    return patient


def validate_contact(
    email: str | None, phone: str | None, regions: tuple[str, ...] = ()
) -> tuple[str | None, str | None]:
    """An email address the sender accepts and a phone number one can dial (a national form
    read in `regions`, by default the default locale's country), each None when blank."""
    return email_address(email), dialable(
        phone, regions or (babel_locale(DEFAULT_LOCALE).territory,)
    )


def check_texts(phone: str | None, consent_sms: bool, regions: tuple[str, ...]) -> None:
    """Refuse consent to texts on a landline (core.kernel.phones.landline): none would arrive,
    and reminders and invitations would go by them."""
    if consent_sms and phone and landline(phone, regions):
        raise ValidationError(
            f"{not_for_texts(phone)}. Untick text messages, or type the patient's mobile "
            "number instead."
        )


MAX_AGE_YEARS = 130  # older than anyone alive: a mistyped year (1 for 1981, 1800 for 1980)


def birth_problem(day: date | None) -> str | None:
    """Why a date of birth cannot be right ("in the future", "more than 130 years ago"), or
    None. Not after today anywhere on Earth (UTC+14), so a baby born today in any clinic's zone
    can be registered, whatever the server's date."""
    if day is None:
        return None
    if day > (utcnow() + timedelta(hours=14)).date():
        return "in the future"
    if day.year < utcnow().year - MAX_AGE_YEARS:
        return f"more than {MAX_AGE_YEARS} years ago"
    return None


def birth_bounds() -> tuple[date, date]:
    """The days a date-of-birth picker offers: from MAX_AGE_YEARS years back to today anywhere
    on Earth (a picker without bounds offers only ten years either side of its value)."""
    now = utcnow()
    return date(now.year - MAX_AGE_YEARS, 1, 1), (now + timedelta(hours=14)).date()


def _check_born(day: date | None) -> None:
    problem = birth_problem(day)
    if problem == "in the future":
        raise ValidationError("The date of birth cannot be in the future.")
    if problem:
        raise ValidationError(f"The date of birth is {problem}: check the year ({day.year}).")


# ---------------------------------------------------------------- the postal address

ADDRESS = merge.ADDRESS  # address_line1, address_line2, city, postcode, country
_ADDRESS_WORDS = {
    "address_line1": ("address's first line", 120),
    "address_line2": ("address's second line", 120),
    "city": ("town or city", 80),
    "postcode": ("postcode", 12),
}
# CLDR's two-letter territories that are no ISO 3166-1 country (the EU, the UN, Canary Islands,
# pseudo-locales, Unknown)
_NOT_COUNTRIES = "AC CP CQ DG EA EU EZ IC QO TA UN XA XB ZZ"
COUNTRIES = frozenset(
    code
    for code in babel_locale("en").territories
    if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES.split()
)
# a postcode is only checked for what any country's has: letters, digits, spaces and hyphens
POSTCODE = re.compile(r"^[A-Z0-9](?:[A-Z0-9 -]*[A-Z0-9])?$")


@functools.lru_cache(maxsize=16)
def country_names(locale: str) -> dict[str, str]:
    """The countries an address can be in, code → name in `locale`'s language, by name."""
    names = babel_locale(locale).territories
    return dict(sorted(((c, names.get(c, c)) for c in COUNTRIES), key=lambda item: item[1]))


def practice_country(session: Session) -> str:
    """The country an address is in when none is given: the practice's first clinic's
    (its locale's territory: en-GB, GB)."""
    return practice_regions(session)[0]


def validate_address(
    typed: dict[str, str | None], default_country: str | None = None, *, partial: bool = False
) -> dict[str, str | None]:
    """The address parts in `typed` cleaned (core.kernel.text: control characters dropped,
    spaces trimmed, each bounded), blank ones None; the postcode upper-cased and checked for
    its characters only (no country's format is guessed: no library pinned here knows them);
    the country an ISO 3166-1 alpha-2 code, `default_country` (if given) when an address is
    typed without one. The whole address is one a letter reaches (`check_whole`) unless
    `partial`: some parts of it changed, the caller checks the address they make."""
    found: dict[str, str | None] = {}
    for field, (words, limit) in _ADDRESS_WORDS.items():
        if field in typed:
            text = clean(typed[field] or "", field=words, limit=limit)
            found[field] = " ".join(text.split()) or None
    if found.get("postcode"):
        found["postcode"] = found["postcode"].upper()
        if not POSTCODE.match(found["postcode"]):
            raise ValidationError(
                f"{found['postcode']!r} is not a postcode: use letters, digits, spaces and "
                "hyphens only (like SW1A 1AA or 10115)."
            )
    if "country" in typed:
        country = (clean(typed["country"] or "", field="country", limit=60) or "").strip()
        found["country"] = country.upper() or None
        if found["country"] and found["country"] not in COUNTRIES:
            raise ValidationError(
                f"{country!r} is not a country code: use its two letters from ISO 3166 (GB for "
                "the United Kingdom, DE for Germany, US for the United States)."
            )
    if default_country and any(found.get(f) for f in ADDRESS[:-1]) and not found.get("country"):
        found["country"] = default_country
    if not partial:
        check_whole(found)
    return found


# what a letter needs, whatever the country: where to (a house and street, a PO box) and which
# town; a postcode, a second line and a country alone reach nobody
NEEDED = {"address_line1": "its first line", "city": "its town or city"}


def check_whole(parts: dict[str, str | None]) -> None:
    """Refuse an address a letter does not reach: once any part is given, its first line and
    its town or city are needed too (none given at all: no address, which is fine)."""
    if not any(parts.get(f) for f in ADDRESS):
        return
    missing = [words for f, words in NEEDED.items() if not parts.get(f)]
    if missing:
        raise ValidationError(
            f"The address needs {' and '.join(missing)} for a letter to reach it: type "
            f"{'them' if len(missing) > 1 else 'it'}, or clear the address's boxes (and its "
            "country) to keep no address."
        )


NO_NAME = (
    "Enter the patient's name: first and last, or their one name in either box if they have "
    "only one."
)
NO_NAME_YOURS = "Please enter your name: first and last, or your one name if you have only one."


def has_letter(name: str) -> bool:
    """Whether a name has a letter in it, in any alphabet ('Zoë', '李', "O'Brien"): '🙂🙂',
    '---' or '42' is no one's name."""
    return any(unicodedata.category(c).startswith("L") for c in name)


def typed_name(value: str | None, field: str, *, yours: bool = False) -> str:
    """One part of a patient's name as typed (`field`: 'first name', 'last name'), cleaned and
    trimmed ('' when left empty), or a ValidationError when it has no letter in it, saying what
    to type: to the patient on the public form (`yours`), else to the desk. The one check of
    every patient name field: the desk's new patient and edit, and the public booking form."""
    name = (clean(value or "", field=field, limit=80) or "").strip()
    if name and not has_letter(name):
        raise ValidationError(
            f"Your {field} has no letter in it: please type your name as it is written (in any "
            "alphabet), or leave that box empty if you have only one name."
            if yours
            else f"The {field} has no letter in it: type the patient's name as it is written (in "
            "any alphabet), or leave that box empty if they have only one name."
        )
    return name


def typed_names(first_name: str | None, last_name: str | None, *, yours: bool = False):
    """A patient's first and last name as typed_name reads each; one of them may be empty (one
    name only, a mononym), not both (NO_NAME, or NO_NAME_YOURS on the public form)."""
    first = typed_name(first_name, "first name", yours=yours)
    last = typed_name(last_name, "last name", yours=yours)
    if not first and not last:
        raise ValidationError(NO_NAME_YOURS if yours else NO_NAME)
    return first, last


def create_patient(
    session: Session,
    actor: Actor,
    *,
    first_name: str,
    last_name: str,
    date_of_birth: date | None = None,
    email: str | None = None,
    phone: str | None = None,
    consent_email: bool = False,
    consent_sms: bool = False,
    card_on_file: bool = False,
    different_person: bool = False,
    address: dict[str, str | None] | None = None,
    note: str | None = None,
) -> Patient:
    """A new patient. One with the same name and date of birth as a patient on file is
    refused as a likely duplicate, naming them, unless staff say it is a different person
    (`different_person`). A shared email or phone alone is not a duplicate: families share
    them. `address`: the postal address's parts by ADDRESS name (validate_address). `note`:
    where the record came from, for its audit entry ("Made from online request #12")."""
    ensure(actor, Permission.PATIENTS_EDIT)
    first_name, last_name = typed_names(first_name, last_name)  # a mononym in either box
    _check_born(date_of_birth)
    email, phone = validate_contact(email, phone, practice_regions(session))
    check_texts(phone, consent_sms, practice_regions(session))
    unknown = set(address or {}) - set(ADDRESS)
    if unknown:
        raise ValidationError(f"These are no parts of an address: {', '.join(sorted(unknown))}.")
    postal = validate_address(address or {}, practice_country(session))
    # two presses at once (a double click, two desks adding one walk-in) check one after the
    # other: SQLite's writer holds its lock already, PostgreSQL takes this one
    locks.hold(session, f"new patient {_joined(last_name)}")
    if date_of_birth is None and not different_person:
        _refuse_just_added(session, first_name, last_name)
    if date_of_birth and not different_person:
        same = likely_duplicate(session, first_name, last_name, date_of_birth)
        if same is not None:
            born = format_day(date_of_birth, clinic_format(session).locale, weekday=False)
            raise Conflict(
                f"{same.full_name} (#{same.id}), born {born}, "
                "is already a patient: open their record instead, or tick "
                "'A different person' to add this one."
            )
    patient = Patient(
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        date_of_birth=date_of_birth,
        email=email,
        phone=phone,
        consent_email=consent_email and bool(email),
        consent_sms=consent_sms and bool(phone),
        card_on_file=card_on_file,
        **postal,
    )
    session.add(patient)
    session.flush()
    points.open_account(session, patient)
    details = {"consent_email": patient.consent_email, "consent_sms": patient.consent_sms}
    if any(postal.values()):
        details["address"] = "given"  # personal data: that it was given, not what
    audit.record(
        session,
        actor,
        "patient_created",
        "patient",
        patient.id,
        patient_id=patient.id,
        message=note,
        details=details,
    )
    return patient


def likely_duplicate(
    session: Session,
    first_name: str,
    last_name: str,
    date_of_birth: date | None,
    *,
    besides: int | None = None,
) -> Patient | None:
    """The first patient in use (not merged away) of this name, however typed, born that day,
    other than #`besides`; None when none is or no day is given."""
    if date_of_birth is None:
        return None
    # compared in Python: SQLite's lower() folds ASCII only, and accents and apostrophes differ
    # by typist
    born_that_day = session.scalars(
        select(Patient)
        .where(
            Patient.date_of_birth == date_of_birth,
            Patient.merged_into_id.is_(None),
            Patient.id != (besides or 0),
        )
        .order_by(Patient.id)
    )
    return next(
        (
            p
            for p in born_that_day
            if _same_name(p.first_name, first_name) and _same_name(p.last_name, last_name)
        ),
        None,
    )


def _refuse_just_added(session: Session, first_name: str, last_name: str) -> None:
    """A patient of this name added in the last JUST_ADDED is this one pressed again (a double
    click, or a press that seemed not to work), when no date of birth tells them apart."""
    now = utcnow()
    # the newest rows by the key's index, not a scan of every patient's created_at
    newest = session.execute(
        select(Patient.id, Patient.first_name, Patient.last_name, Patient.created_at)
        .where(Patient.merged_into_id.is_(None))
        .order_by(Patient.id.desc())
        .limit(100)
    )
    for id_, first, last, created_at in newest:
        if created_at < now - JUST_ADDED:
            continue  # an imported row may carry an older time
        if _same_name(first, first_name) and _same_name(last, last_name):
            seconds = max(1, int((now - created_at).total_seconds()))
            raise Conflict(
                f"{first} {last} (#{id_}) was added {seconds} s ago; this press did not add "
                "them again. Open their record, or tick 'A different person' to add another "
                "patient of the same name."
            )


# ---------------------------------------------------------------- editing and the record

EDITABLE = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "consent_email",
    "consent_sms",
    "consent_marketing",
    "reminders_enabled",
    "card_on_file",
    *ADDRESS,
)


@dataclass(frozen=True)
class PatientUpdate:
    patient_id: int
    changed: list[str]
    invitation_revoked: bool  # a pending portal invitation was revoked by this change
    offer_new_invitation: bool  # the page should offer to send a new one
    portal_signed_out: bool = False  # open portal sessions or sign-in links were ended

    @property
    def message(self) -> str:
        if not self.changed:
            return "Nothing changed."
        text = "Saved: " + ", ".join(FIELD_WORDS.get(f, f.replace("_", " ")) for f in self.changed)
        text += "."
        if self.invitation_revoked:
            text += (
                " The pending portal invitation went to the old address or number and was revoked."
            )
        if self.portal_signed_out:
            text += (
                " The patient is signed out of the portal, and a sign-in link sent before no "
                "longer works: they sign in again with the new details."
            )
        return text


FIELD_WORDS = {
    "date_of_birth": "date of birth",
    "consent_sms": "consent to text messages",
    "address_line1": "address line 1",
    "address_line2": "address line 2",
}


class ChangedMeanwhile(Conflict):
    """A field the form changed was changed by someone else since the form showed it: nothing
    is saved. `now` holds those fields' values on file, for the form to show."""

    def __init__(self, now: dict[str, object]) -> None:
        self.now = now
        fields = ", ".join(FIELD_WORDS.get(f, f.replace("_", " ")) for f in now)
        super().__init__(
            f"Someone else changed this patient's {fields} while this form was open, so nothing "
            "was saved. Check the record above; what you typed is kept: press Save changes "
            "again to put yours in its place."
        )


def _as_shown(field: str, value):
    if value is None and field in ("email", "phone", *ADDRESS):
        return ""  # a form shows a missing address or number as an empty box
    return value


def update_patient(
    session: Session,
    actor: Actor,
    patient_id: int,
    *,
    shown: dict[str, object] | None = None,
    note: str | None = None,
    **changes,
) -> PatientUpdate:
    """Change a patient's details. When the email address or mobile number a pending portal
    invitation went to changes (or consent to its channel is withdrawn) the invitation is
    revoked, audited, and never resent to the new address: the result tells the page to offer
    a new invitation instead (by the channel the patient can now be reached on).

    `shown`: the changed fields as the form showed them. A field someone else changed since
    (to something other than what is typed here) is ChangedMeanwhile, decided under the
    patient's row lock, so two desks saving at once cannot overwrite each other unseen.
    `note`: where the change came from, for its audit entry ("From online request #12")."""

    ensure(actor, Permission.PATIENTS_EDIT)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError(f"These fields cannot be edited here: {', '.join(sorted(unknown))}.")
    patient = session.get(Patient, patient_id, with_for_update=True)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    merge.refuse_merged(patient, "edit")
    now = {f: _as_shown(f, getattr(patient, f)) for f in changes if shown and f in shown}
    clash = {f: v for f, v in now.items() if v != shown[f] and v != changes[f]}
    if clash:
        raise ChangedMeanwhile(clash)
    for field in ("first_name", "last_name"):
        if field in changes:
            changes[field] = typed_name(changes[field], field.replace("_", " "))
    if not any(changes.get(f, getattr(patient, f)) for f in ("first_name", "last_name")):
        raise ValidationError(NO_NAME)
    _check_born(changes.get("date_of_birth"))
    # what is typed is checked; a number on file left as it is stays (an import's, an old one)
    if "email" in changes:
        same = (changes["email"] or "").strip().lower() == (patient.email or "")
        changes["email"] = patient.email if same else email_address(changes["email"])
    if "phone" in changes:
        same = (changes["phone"] or "").strip() == (patient.phone or "")
        changes["phone"] = (
            patient.phone if same else dialable(changes["phone"], practice_regions(session))
        )
    # a number or consent typed is checked; a landline with consent on file (an import's, an
    # old one) left as it is stays, and other edits go through
    if changes.get("phone", patient.phone) != patient.phone or (
        changes.get("consent_sms") and not patient.consent_sms
    ):
        check_texts(
            changes.get("phone", patient.phone),
            changes.get("consent_sms", patient.consent_sms),
            practice_regions(session),
        )
    if typed_address := {f: changes[f] for f in ADDRESS if f in changes}:
        # what is typed is checked; a part on file left as it is stays (an import's)
        changes.update(validate_address(typed_address, partial=True))
        after = {f: changes.get(f, getattr(patient, f)) for f in ADDRESS}
        if any(after[f] for f in ADDRESS[:-1]) and not after["country"]:
            changes["country"] = after["country"] = practice_country(session)
        if not any(after[f] for f in ADDRESS[:-1]) and "country" not in typed_address:
            changes["country"] = after["country"] = None  # a cleared address takes its country
        check_whole(after)
    email_after = changes.get("email", patient.email)
    if not email_after:
        changes["consent_email"] = False  # no consent to an address we do not have
    if not changes.get("phone", patient.phone):
        changes["consent_sms"] = False
    changed = [f for f in EDITABLE if f in changes and getattr(patient, f) != changes[f]]
    details = {}
    for field in changed:
        before, after = getattr(patient, field), changes[field]
        # contact details are personal data: the audit trail keeps that they changed, not values
        details[field] = {"from": before, "to": after} if isinstance(after, bool) else "changed"
        setattr(patient, field, after)
    signed_out = False
    if "email" in changed or "phone" in changed:
        # a sign-in link sent to the old address or number, and a portal session opened with
        # one (the old address may have been someone else's), no longer open the portal
        ended, stopped = invitations.end_portal_access(session, patient.id)
        signed_out = bool(ended or stopped)
        if signed_out:
            details["portal"] = {"sessions_ended": ended, "sign_in_links_stopped": stopped}
    revoked = invitations.revoke_for_contact_change(session, actor, patient, changed)
    for field, channel, word in (
        ("consent_email", Channel.EMAIL, "email"),
        ("consent_sms", Channel.SMS, "text messages"),
    ):
        if field in changed and not getattr(patient, field):  # withdrawn: nothing more goes out
            reason = f"Not sent: consent to {word} was withdrawn on the patient's record."
            notify.withdraw_queued(session, [patient.id], channel, reason)
    if changed:
        audit.record(
            session,
            actor,
            "patient_updated",
            "patient",
            patient.id,
            patient_id=patient.id,
            message=note,
            details=details,
        )
        session.flush()
    offer = bool(revoked) and invitations.channel_for(patient) is not None
    return PatientUpdate(patient.id, changed, bool(revoked), offer, signed_out)


def portal_status(session: Session, actor: Actor, patient_id: int):
    """The patient's portal status (core.patients.invitations.PortalState)."""

    return invitations.get_portal_state(session, actor, patient_id)


@dataclass(frozen=True)
class PatientRecord:
    id: int
    first_name: str
    last_name: str
    date_of_birth: date | None
    email: str | None
    phone: str | None
    consent_email: bool
    consent_sms: bool
    consent_marketing: bool
    reminders_enabled: bool
    card_on_file: bool
    points_balance: int
    portal: object  # core.patients.invitations.PortalState
    invitations: list  # core.patients.invitations.HistoryRow, newest first
    merged_into: int | None = None  # the record this one was merged into (core.patients.merge)
    merged_at: datetime | None = None
    next_visit: str = ""  # "Tue, 8 Dec 2026, 10:30: Consultation with Dr Becker at …" or ""
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    country_name: str = ""  # in the practice's language

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def address(self) -> str:
        """'1 High Street, Flat 2, London, SW1A 1AA, United Kingdom', or "" when none."""
        parts = (self.address_line1, self.address_line2, self.city, self.postcode)
        if not any(parts):
            return ""
        return ", ".join(p for p in (*parts, self.country_name or self.country) if p)


def get_patient_record(session: Session, actor: Actor, patient_id: int) -> PatientRecord:
    """A patient's details, consent, portal status and invitation history."""

    patient = get_patient(session, actor, patient_id)
    return PatientRecord(
        patient.id,
        patient.first_name,
        patient.last_name,
        patient.date_of_birth,
        patient.email,
        patient.phone,
        patient.consent_email,
        patient.consent_sms,
        patient.consent_marketing,
        patient.reminders_enabled,
        patient.card_on_file,
        patient.points_balance,
        invitations.state_of(session, patient),
        enrolment.invitation_history(session, actor, patient.id),
        patient.merged_into_id,
        patient.merged_at,
        _next_visit(session, patient.id),
        *(getattr(patient, f) for f in ADDRESS),
        country_names(clinic_format(session).locale).get(patient.country or "", ""),
    )


def _next_visit(session: Session, patient_id: int) -> str:
    """The patient's next visit still to come ("when is my next visit, and with whom?"), on its
    clinic's clock with the zone named; "" when none is booked."""
    visit = session.scalar(
        select(Appointment)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.status.in_((AppointmentStatus.SCHEDULED, AppointmentStatus.TENTATIVE)),
            Appointment.start_at > utcnow(),
        )
        .order_by(Appointment.start_at, Appointment.id)
        .limit(1)
    )
    if visit is None:
        return ""
    what = treatment_of(visit) or "a visit"
    who = f" with {visit.provider.name}" if visit.provider else ""
    tentative = visit.status == AppointmentStatus.TENTATIVE
    proposed = " (a time proposed to them, not yet accepted)" if tentative else ""
    return (
        f"{clinic_time(visit.clinic, visit.start_at, zone=True)}: {what}{who} at "
        f"{visit.clinic.name}{proposed}"
    )


@dataclass(frozen=True)
class PatientAppointment:
    id: int
    when: str  # clinic-local start, or the requested day and time of day
    service: str
    provider: str
    clinic: str
    # stored ('no_show'): the page names it as the calendar does (core.scheduling.states'
    # STATUS_WORDS, which this package, below scheduling, does not import)
    status: str
    booked_by: str  # a staff name, or "Online appointment · <time>"


def booked_by_label(source, created_by: str | None, booked_at, clinic, zone: bool = False) -> str:
    """Who created an appointment: "Online appointment" and the time (in the clinic's zone and
    locale, the zone named with `zone`) in place of a staff name."""
    if source == Source.ONLINE:
        return f"Online appointment · {clinic_time(clinic, booked_at, zone=zone)}"
    return created_by or ("Imported" if source == Source.IMPORT else "Practice")


VISITS_SHOWN = 20  # on the record; the patient's file (core.interchange) holds them all


def list_patient_appointments(
    session: Session, actor: Actor, patient_id: int, limit: int = VISITS_SHOWN
) -> list[PatientAppointment]:
    """The patient's latest appointments and requests, newest first."""
    ensure(actor, Permission.PATIENTS_READ)
    rows = session.execute(
        select(
            Appointment,
            Service.name,
            Provider.name,
            Clinic.name,
            Clinic.timezone,
            Clinic.locale,
            User.display_name,
        )
        .join(Clinic, Clinic.id == Appointment.clinic_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .outerjoin(Provider, Provider.id == Appointment.provider_id)
        .outerjoin(User, User.id == Appointment.created_by_user_id)
        .where(Appointment.patient_id == patient_id)
        .order_by(
            func.coalesce(Appointment.start_at, Appointment.created_at).desc(),
            Appointment.id.desc(),
        )
        .limit(limit)
    ).all()
    result = []
    named = treatment_texts(session, [row[0].id for row in rows])  # a package by its name
    home = clinic_format(session).timezone  # the practice's clock, the page's dates and times
    for a, service, provider, clinic, tz, locale, creator in rows:
        local = ClinicFormat(tz, locale or DEFAULT_LOCALE)
        result.append(
            PatientAppointment(
                a.id,
                _visit_when(a, local, zone=tz != home),
                named.get(a.id, service or ""),
                provider or "",
                clinic,
                a.status.value,
                booked_by_label(a.source, creator, a.booked_at, local, zone=tz != home),
            )
        )
    return result


def _visit_when(visit: Appointment, local: ClinicFormat, *, zone: bool) -> str:
    """When a visit on the record is, on its clinic's clock: its start, or the day asked for
    with the time of day's one label ('Thu, 9 Jul 2026, morning (9:00–12:00)'). `zone`: the
    clinic's zone is not the practice's, so a time names it by its abbreviation that day, as
    format_moment's `zone` does ('10:00 AM (EST)'): a 10:00 in London and one in New York read
    apart."""
    if visit.start_at is not None:
        return local.moment(visit.start_at, zone=zone)
    if visit.requested_day is None:
        return ""
    if not visit.time_of_day:
        return f"{local.day(visit.requested_day)}, any time"
    moment = time_of_day_label(visit.time_of_day, local.locale, in_text=True)
    when = f"{local.day(visit.requested_day)}, {moment}"
    if not zone:
        return when
    first = TIME_OF_DAY_WINDOWS[TimeOfDay(visit.time_of_day)][0]
    at = to_local(local_to_utc(visit.requested_day, first, local.timezone), local.timezone)
    return f"{when} ({at.tzname()})"


# ---------------------------------------------------------------- money on the record


@dataclass(frozen=True)
class PatientPayment:
    id: int
    when: str  # paid (or recorded), clinic-local (the zone named when not the practice's)
    appointment_id: int | None
    kind: str  # in words: 'deposit', 'no-show fee', 'fee given back' (prepay.payment_words)
    method: str  # as the appointment's Payments says it: "Card (desk)", "Cash", "Points"
    amount: str  # in the payment's own currency, the clinic's locale
    status: str  # in words: 'paid', 'to give back' (prepay.STATUS_WORDS)


@dataclass(frozen=True)
class Owed:
    appointment_id: int
    what: str  # "no-show fee", "late-cancellation fee", "deposit still to pay"
    amount: str
    when: str  # the visit's clinic-local time (the zone named when not the practice's)


@dataclass(frozen=True)
class PatientMoney:
    payments: list[PatientPayment]  # newest first, at most `limit`
    owed: list[Owed]  # fees not paid or waived; required prepayments not yet made
    more: bool  # older payments exist beyond those listed

    @property
    def owed_text(self) -> str:
        if not self.owed:
            return "Nothing owed."
        return "Owed: " + "; ".join(
            f"{o.amount} {o.what} (#{o.appointment_id}, {o.when})" for o in self.owed
        )


MONEY_LIMIT = 20


def patient_money(
    session: Session, actor: Actor, patient_id: int, limit: int = MONEY_LIMIT
) -> PatientMoney:
    """What the patient paid (their newest payments and refunds, any appointment) and what they
    owe: each fee not paid or waived (core.payments.desk.unpaid_fees, as the appointment shows
    it) and each coming visit's required prepayment or deposit not yet paid
    (core.payments.prepay.due)."""
    ensure(actor, Permission.PATIENTS_READ)
    ensure(actor, Permission.APPOINTMENTS_READ)
    rows = session.execute(
        select(Payment, Appointment, LedgerEntry.kind)
        .outerjoin(Appointment, Appointment.id == Payment.appointment_id)
        .outerjoin(LedgerEntry, LedgerEntry.id == Payment.ledger_entry_id)  # a fee's own words
        .where(Payment.patient_id == patient_id)
        .order_by(func.coalesce(Payment.paid_at, Payment.created_at).desc(), Payment.id.desc())
        .limit(limit + 1)
    ).all()
    practice = clinic_format(session)
    payments = []
    for p, visit, fee in rows[:limit]:
        fmt = money_format(visit.clinic) if visit else practice
        what, status = prepay.payment_words(p.kind, p.status, fee)
        payments.append(
            PatientPayment(
                p.id,
                # on the visit's clinic's clock, its zone named where it is not the practice's
                fmt.moment(p.paid_at or p.created_at, zone=fmt.timezone != practice.timezone),
                p.appointment_id,
                what,
                prepay.METHOD_LABELS.get(p.method, p.method),
                payment_money(p, fmt),
                status,
            )
        )
    owed: list[Owed] = []
    fees = select(LedgerEntry.appointment_id).where(
        LedgerEntry.patient_id == patient_id,
        LedgerEntry.appointment_id.is_not(None),
        LedgerEntry.kind.in_((LedgerKind.LATE_CANCEL_FEE, LedgerKind.NO_SHOW_FEE)),
        LedgerEntry.waived_at.is_(None),
        LedgerEntry.amount_cents > 0,
    )
    coming = select(Appointment.id).where(
        Appointment.patient_id == patient_id,
        Appointment.status.in_((AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN)),
        Appointment.start_at >= utcnow() - timedelta(days=1),
    )
    visits = session.scalars(
        select(Appointment)
        .where(or_(Appointment.id.in_(fees), Appointment.id.in_(coming)))
        .order_by(Appointment.start_at, Appointment.id)
    ).all()
    rules = get_settings(session) if visits else None
    for visit in visits:
        fmt = money_format(visit.clinic)
        other_zone = fmt.timezone != practice.timezone  # named, as the record's visits are
        when = fmt.moment(visit.start_at, zone=other_zone) if visit.start_at else ""
        for fee in desk.unpaid_fees(session, actor, visit.id):
            owed.append(Owed(visit.id, fee.kind, fee.amount, when))
        if visit.status in (AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN):
            due = prepay.due(session, visit, rules)
            if due.required and due.outstanding_cents > 0:
                what = "deposit" if due.mode == "deposit" else "prepayment"
                owed.append(
                    Owed(visit.id, f"{what} still to pay", fmt.money(due.outstanding_cents), when)
                )
    return PatientMoney(payments, owed, more=len(rows) > limit)
