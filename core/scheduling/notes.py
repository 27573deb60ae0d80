"""An appointment's notes: each one kept as written, with who wrote it and when, newest first.

Notes are appended, never replaced: staff add one on the appointment page (`add_note`), the
booking's own note (staff booking in office, a patient's request) is the first, and an update
that brings new notes text appends it too; an import's notes are the import's (`imported`).
`Appointment.notes` stays the latest text, which the queue, the calendar and the exports read.
A text stored there some other way (rows older than the notes' history) is shown as an earlier
note without a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, ensure
from core.kernel.errors import NotFound, ValidationError
from core.kernel.text import clean
from core.scheduling.lifecycle import flush
from core.scheduling.states import ENTITY, RULES, Action
from db.models import Appointment, AppointmentKind, AppointmentNote, Source

NOTE_LIMIT = 4_000  # characters in one note
EARLIER = "Earlier note"  # the author of a text kept from before notes had authors
NOTE_ADDED = "appointment_note_added"


@dataclass(frozen=True)
class Note:
    written_at: datetime | None  # None: not known (kept from before, or imported)
    author: str  # as named when written
    text: str  # as typed: escape before any Markdown


def append_note(session: Session, appointment: Appointment, actor: Actor, text: str):
    """Add `text` (stripped) as a note by `actor`, now, and make it the appointment's latest
    notes text; nothing for an empty text. For services that checked their permission."""
    text = (text or "").strip()
    if not text:
        return None
    note = AppointmentNote(
        appointment_id=appointment.id,
        author_user_id=actor.user_id,
        author_name=actor.label[:120],
        text=text,
    )
    session.add(note)
    appointment.notes = text
    return note


def add_note(session: Session, actor: Actor, appointment_id: int, text: str) -> AppointmentNote:
    """A note on an appointment in any status, by whoever may update appointments; audited.
    Earlier notes stay as they were."""
    ensure(actor, RULES[Action.UPDATE].permission)
    text = (clean(text, field="note", limit=NOTE_LIMIT, multiline=True) or "").strip()
    appointment = (
        session.execute(
            select(Appointment)
            .where(Appointment.id == appointment_id)
            .with_for_update()  # notes added at once are written one after the other
            .execution_options(populate_existing=True)
        ).scalar()
        if 0 < appointment_id < 2**31
        else None
    )
    if appointment is None or appointment.kind != AppointmentKind.APPOINTMENT:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    if not text:
        raise ValidationError("The note is empty: write it first, then press Add note.")
    note = append_note(session, appointment, actor, text)
    flush(session, appointment)
    audit.record(
        session,
        actor,
        NOTE_ADDED,
        ENTITY,
        appointment.id,
        patient_id=appointment.patient_id,
        details={"note_id": note.id},
    )
    return note


def imported(session: Session, written: Iterable[tuple[int, str]], source: str, at: datetime):
    """Each (appointment id, text) with a text as a note by "Imported from `source`" (no user),
    written `at` (when the import ran, or the file's own time); one INSERT for them all. The
    importer sets the appointments' notes text itself.

    The INSERT passes the rule that cleans a row's typed text on flush, so the texts are
    cleaned here as a typed note is (core.kernel.text.clean: no NUL, which PostgreSQL refuses,
    no control characters or direction overrides); one longer than NOTE_LIMIT is refused,
    named, whichever importer calls this."""
    author = clean(f"Imported from {source}", field="importer's name")[:120]
    texts = (
        (appointment_id, (clean(text, field="note", limit=NOTE_LIMIT, multiline=True) or ""))
        for appointment_id, text in written
        if text
    )
    rows = [
        {
            "appointment_id": appointment_id,
            "author_user_id": None,
            "author_name": author,
            "written_at": at,
            "text": text.strip(),
        }
        for appointment_id, text in texts
        if text.strip()
    ]
    if rows:
        session.execute(insert(AppointmentNote), rows)


def notes_of(session: Session, appointments: Iterable[Appointment]) -> dict[int, list[Note]]:
    """Each appointment's notes, newest first (one query). For readers that checked their
    permission. A latest text that no note holds comes first, as an earlier note."""
    visits = list(appointments)
    found: dict[int, list[Note]] = {a.id: [] for a in visits}
    if visits:
        for row in session.scalars(
            select(AppointmentNote)
            .where(AppointmentNote.appointment_id.in_(list(found)))
            .order_by(AppointmentNote.written_at.desc(), AppointmentNote.id.desc())
        ):
            found[row.appointment_id].append(Note(row.written_at, row.author_name, row.text))
    for a in visits:
        latest, notes = (a.notes or "").strip(), found[a.id]
        if latest and (not notes or notes[0].text.strip() != latest):
            author = "Imported" if a.source == Source.IMPORT else EARLIER
            notes.insert(0, Note(None, author, a.notes))
    return found
