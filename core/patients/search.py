"""What a patient is found by: `Patient.search_text`, their names and email folded as a
reader types them (core.kernel.text.search_text), kept up to date by every flush; and their
phone's digits, however the number was stored and is typed (`phone_like`, by the rule of
core.kernel.phones.dialled that the outbox's search reads a number by too).

`keep_search_text()` registers the flush hook; core.startup.install_session_rules calls it
(after the kernel's text rule, so the folded text is made from the cleaned names) wherever a
database is opened: the app, the CLI, the jobs loop, the imports and the test fixtures. Bulk
inserts, which pass no flush, call `search_text` themselves (core.interchange.import_batches).
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from core.kernel.phones import NUMBER_SHAPED, bare_phone, dialled
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
    (core.kernel.phones.dialled); None when `typed` is not a number of three digits at least
    ('abc123' is none: a word with letters is a name's or an email's)."""
    if (digits := dialled(typed)) is None:
        return None
    return bare_phone().like(f"%{digits}%")
