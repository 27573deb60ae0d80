"""What a patient is found by: `Patient.search_text`, their names and email folded as a
reader types them (core.kernel.text.search_text), kept up to date by every flush; and their
phone's digits, however the number was stored and is typed (`phone_like`).

`keep_search_text()` registers the flush hook; core.startup.install_session_rules calls it
(after the kernel's text rule, so the folded text is made from the cleaned names) wherever a
database is opened: the app, the CLI, the jobs loop, the imports and the test fixtures. Bulk
inserts, which pass no flush, call `search_text` themselves (core.interchange.import_batches).
"""

from __future__ import annotations

import re

import phonenumbers
from sqlalchemy import event, func
from sqlalchemy.orm import Session

from core.kernel.text import search_text
from db.models import Patient


def keep_search_text() -> None:
    """Refresh every new or changed patient's search text on flush (idempotent)."""
    if not event.contains(Session, "before_flush", _searchable):
        event.listen(Session, "before_flush", _searchable)


def _searchable(session: Session, _context, _instances) -> None:
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Patient):
            obj.search_text = search_text(obj.first_name, obj.last_name, obj.email)


def bare_phone():
    """The stored phone's digits (the separators people type removed)."""
    bare = Patient.phone
    for char in (" ", "-", "(", ")", ".", "+"):
        bare = func.replace(bare, char, "")
    return bare


def dialled(word: str, digits: str) -> str:
    """The digits of a typed phone number, or its start, that every form on file holds: the
    national number after a country code (+44 7700 900 or 0044 7700 900: 7700900), else the
    digits after a trunk 0 (07700 900: 7700900; three at least), at most the last nine; so a
    number on file as 07700 900123 or +44 7700 900123 is found however it is typed, whole or
    in part."""
    if word.startswith("+") or digits.startswith("00"):
        try:
            national = phonenumbers.parse("+" + digits.removeprefix("00"), None).national_number
            digits = str(national)
        except phonenumbers.NumberParseException:
            pass
    bare = digits.lstrip("0")
    return (bare if len(bare) >= 3 else digits)[-9:]


# a number, or a part of one, as people type it: digits, spaces, +, brackets, dashes and dots
NUMBER_SHAPED = re.compile(r"[\d\s+\-().]*\d[\d\s+\-().]*")


def numbers_joined(words: list[str]) -> list[str]:
    """The typed words with each run of words that make one number as people space it joined
    into one ('lee +44 7700 900' is 'lee' and '+44 7700 900'; 'abc123' stays a word)."""
    joined: list[str] = []
    for word in words:
        if joined and NUMBER_SHAPED.fullmatch(word) and NUMBER_SHAPED.fullmatch(joined[-1]):
            joined[-1] += " " + word
        else:
            joined.append(word)
    return joined


def phone_like(typed: str):
    """The patients whose phone holds a typed number, or its start, however either is spaced
    (`dialled`); None when `typed` is not a number of three digits at least ('abc123' is
    none: a word with letters is a name's or an email's)."""
    digits = re.sub(r"\D", "", typed)
    if not NUMBER_SHAPED.fullmatch(typed.strip()) or len(digits) < 3:
        return None
    return bare_phone().like(f"%{dialled(typed.strip(), digits)}%")
