"""What a patient is found by: `Patient.search_text`, their names and email folded as a
reader types them (core.kernel.text.search_text), kept up to date by every flush.

`keep_search_text()` registers the flush hook; core.startup.install_session_rules calls it
(after the kernel's text rule, so the folded text is made from the cleaned names) wherever a
database is opened: the app, the CLI, the jobs loop, the imports and the test fixtures. Bulk
inserts, which pass no flush, call `search_text` themselves (core.interchange.import_batches).
"""

from __future__ import annotations

from sqlalchemy import event
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
