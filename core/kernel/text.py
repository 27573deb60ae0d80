"""Typed text on its way into the database: one rule, the same on SQLite and PostgreSQL.

Every text a person typed is cleaned and bounded before it is stored or used in a query:
- NUL and the other control characters are dropped (PostgreSQL refuses NUL outright; SQLite
  would store it), as are invisible direction overrides (U+202A–U+202E, U+2066–U+2069);
- a single-line field (a `String(n)` column) gets its line breaks and tabs turned into spaces;
  a multi-line one (a `Text` column: notes, reasons, comments, message bodies) keeps newlines;
- the length is bounded by the column (`String(n)`) or by MAX_TEXT, with a message that names the
  field instead of a database error (PostgreSQL would refuse an over-long value, SQLite would
  silently keep it).

`clean` is for services that use a value before storing it (a lookup by email, a username); the
`before_flush` hook installed by `install()` (from core.startup.install_session_rules, wherever a
database is opened, and the test fixtures) applies the same rule to every string attribute of
every new or changed row, so no service can forget it.

The folding a search compares by (`plain_name`, `search_text`) lives here too; the hook that
keeps each patient's search text is the patients' own (core.patients.search).
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import Enum, String, event, inspect
from sqlalchemy.orm import Session

from core.kernel.errors import ValidationError

MAX_TEXT = 20_000  # characters in a multi-line (Text) field
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_MULTI = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACE_LIKE = re.compile("[\t\n\r]")


def clean(
    value: str | None, *, field: str, limit: int | None = None, multiline: bool = False
) -> str | None:
    """The value without control characters (line breaks kept only when multi-line), or a
    ValidationError naming the field when it is longer than `limit` characters."""
    if value is None:
        return None
    if value.isprintable():  # nothing to drop or change: every character dropped is unprintable
        text = value
    elif multiline:
        text = _CONTROL_MULTI.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    else:
        text = _CONTROL_LINE.sub("", _SPACE_LIKE.sub(" ", value))
    bound = limit if limit is not None else (MAX_TEXT if multiline else None)
    if bound is not None and len(text) > bound:
        raise ValidationError(
            f"The {field} is too long: {len(text):,} characters where at most {bound:,} fit. "
            "Shorten it."
        )
    return text


def _field_name(entity: str, key: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", entity).lower()
    return f"{words} {key.replace('_', ' ')}"


def _bound_row(obj: object, new: bool) -> None:
    state = inspect(obj)
    for column_attr in state.mapper.column_attrs:
        column = column_attr.columns[0]
        if not isinstance(column.type, String) or isinstance(column.type, Enum):
            continue
        key = column_attr.key
        value = state.dict.get(key)
        if type(value) is not str:
            continue
        if not new and not state.attrs[key].history.has_changes():
            continue
        multiline = column.type.length is None
        cleaned = clean(
            value,
            field=_field_name(type(obj).__name__, key),
            limit=column.type.length,
            multiline=multiline,
        )
        if cleaned != value:
            setattr(obj, key, cleaned)


def _before_flush(session: Session, _context, _instances) -> None:
    for obj in session.new:
        _bound_row(obj, new=True)
    for obj in session.dirty:
        _bound_row(obj, new=False)


def install() -> None:
    """Apply the rule to every session's flush (idempotent)."""
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)


# letters NFKD does not split into a base and an accent, as a reader would type them plain
_UNSPLIT = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "þ": "th", "ħ": "h", "ı": "i"}
)


_NOT_WORD = re.compile(r"[^\w]+")


def plain_name(name: str) -> str:
    """A name as a person compares it: case, accents, punctuation and spacing aside."""
    if name.isascii():  # no accent to take off nor letter to split: the same, sooner
        return " ".join(_NOT_WORD.sub(" ", name.lower()).split())
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_UNSPLIT))
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NOT_WORD.sub(" ", letters).split())


def same_name(a: str, b: str) -> bool:
    return plain_name(a) == plain_name(b)


def plain_words(typed: str) -> list[str]:
    """The words of a search as `search_text` holds them."""
    return plain_name(typed).split()


def search_text(*parts: str | None) -> str:
    """What a patient is found by (Patient.search_text, kept by core.patients.search on every
    flush; bulk inserts call it): their names and email as `plain_name`s, so 'elodie' finds
    Élodie and ÉLODIE on SQLite, whose lower() folds ASCII only, as on PostgreSQL."""
    return " ".join(plain_name(p) for p in parts if p)[:500]
