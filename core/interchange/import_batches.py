"""Saving an appointment import in chunks: its batch (one per run; the rows of a run that
stopped part-way are taken into the next), its clinic, patients and appointments
chunk by chunk (each chunk one short transaction, so nobody waits on SQLite's write lock for
long, and only one chunk is in memory), and the finish that makes the batch visible to the
analytics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import any_, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.analytics.cancellation_rollups import EVERYTHING, daynum
from core.interchange.csv_files import ImportReport
from core.kernel.authz import Actor
from core.kernel.text import search_text
from core.patients import landlines
from core.patients.records import has_letter
from core.payments import points
from db.models import (
    Appointment,
    AppointmentStatus,
    CancellationRollupDirty,
    Clinic,
    ImportBatch,
    Patient,
)
from db.types import utcnow

CHUNK = 1_000  # rows per transaction: each holds the SQLite write lock well under a second


def batch(session: Session, actor: Actor, fingerprint: str, clinic_id: int, report) -> int:
    """A new batch for this run. The rows of an earlier run that stopped part-way (its batch
    never finished) are taken into it as the chunks meet them (save_chunk)."""
    batch = ImportBatch(
        what="appointments",
        fingerprint=fingerprint,
        clinic_id=clinic_id,
        started_by_user_id=actor.user_id,
    )
    session.add(batch)
    session.flush()
    return batch.id


class Chunk:
    """The rows read since the last save, with their patients; saved as one transaction."""

    def __init__(self, clinic_id: int, provider_id: int | None, batch_id: int) -> None:
        self.clinic_id, self.provider_id, self.batch_id = clinic_id, provider_id, batch_id
        self.rows: list[tuple[int, dict[str, Any]]] = []
        self.patients: dict[str, dict[str, Any]] = {}
        self.numbers: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, number: int, record: dict[str, Any], patient: dict[str, Any]) -> int | None:
        """Add a row; or, when its id is in this chunk already, the row number it is at."""
        ref = record["external_ref"]
        if ref in self.numbers:
            return self.numbers[ref]
        self.numbers[ref] = number
        self.patients.setdefault(record.pop("patient_ref"), patient)
        self.rows.append((number, record))
        return None

    def save(self, session: Session, report: ImportReport) -> None:
        patient_ids = save_patients(session, self.patients, report)
        save_chunk(
            session,
            self.rows,
            patient_ids,
            self.clinic_id,
            self.provider_id,
            self.batch_id,
            report,
        )
        self.rows, self.patients, self.numbers = [], {}, {}


def _insert(session: Session, model):
    """INSERT that leaves out a row whose external_ref another transaction has just saved (two
    imports of one file at once): counted as already imported, not a duplicate-key error. A
    Core insert into the model's table, not the ORM's bulk insert of the model: the rows are
    plain dicts of column values already, and the ORM's per-row work on them (collecting each
    row's columns again, grouping rows by their keys) was a tenth of an import's CPU."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    made = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return made.on_conflict_do_nothing(index_elements=[table.c.external_ref])


def _among(session: Session, column, values: list):
    """`column IN values`, on PostgreSQL as `column = ANY(array)`: one parameter whatever the
    count, where IN has one for each value (a chunk's thousand), and psycopg, which remembers
    how it split a statement of at most 50 parameters and 4,096 characters, splits a longer one
    for its placeholders again on every execution (by regular expression, in Python)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, postgresql.ARRAY(column.type)))
    return column.in_(values)


def save_chunk(session, rows, patient_ids, clinic_id, provider_id, batch_id, report) -> None:
    """Save a chunk's new appointments, (row number, record) each, in this run's batch. A row
    saved by a batch that never finished (a run that stopped part-way, whether the file was
    then imported again as it was or corrected) is taken into this batch and counts as this
    import's, or the analytics would leave it out for ever; a row of a finished import is
    already imported; one saved in this batch already came earlier in the file."""
    wanted = [a["external_ref"] for _, a in rows]
    found = {
        ref: (owner, finished)
        for ref, owner, finished in session.execute(
            select(Appointment.external_ref, Appointment.import_batch_id, ImportBatch.finished_at)
            .outerjoin(ImportBatch, ImportBatch.id == Appointment.import_batch_id)
            .where(_among(session, Appointment.external_ref, wanted))
        )
    }
    fresh, adopted = [], {}
    for number, a in rows:
        if a["external_ref"] in found:
            owner, finished = found[a["external_ref"]]
            if owner == batch_id:
                report.problem(number, "appointment id appears again (earlier in the file)")
            elif owner is not None and finished is None:
                adopted.setdefault(owner, []).append(a["external_ref"])
            else:
                report.already_imported += 1
            continue
        fresh.append(
            {
                **{k: v for k, v in a.items() if k != "patient_external_ref"},
                "patient_id": patient_ids[a["patient_external_ref"]],
                "clinic_id": clinic_id,
                "provider_id": provider_id,
                "import_batch_id": batch_id,
            }
        )
    for owner, refs in adopted.items():
        session.execute(
            update(Appointment)
            .where(_among(session, Appointment.external_ref, refs))
            .where(Appointment.import_batch_id == owner)
            .values(import_batch_id=batch_id)
        )
        report.created += len(refs)
        note = (
            f"Resumed import #{owner}, which had stopped part-way: the rows it saved are "
            "counted in this one."
        )
        if note not in report.notes:
            report.notes.append(note)
    if fresh:  # every row has every key: one statement, with and without a completion time
        # No RETURNING, so the driver's executemany (psycopg: one prepared statement, the rows
        # piped) rather than one INSERT of a thousand VALUES lists, which psycopg parsed for
        # its 27,000 placeholders each time; the rows it inserted are its row count
        made = _insert(session, Appointment).execution_options(preserve_rowcount=True)
        saved = session.execute(made, fresh).rowcount
        report.created += saved
        report.already_imported += len(fresh) - saved


def finish(session, actor, batch_id, appointments, tz: str, report: ImportReport) -> None:
    """Make the batch visible to the analytics and mark its days (from the first start of
    `appointments` to the last; the import passes only those two) for the roll-ups."""
    batch = session.get(ImportBatch, batch_id)
    batch.finished_at, batch.summary = utcnow(), report.summary
    starts = [a["start_at"] for a in appointments]
    if starts:
        first, last = daynum(min(starts), tz), daynum(max(starts), tz)
        days = [(batch.clinic_id, d) for d in range(first, last + 1)]
        if len(days) > 2_000:
            days = [EVERYTHING]  # years of data: the roll-ups are rebuilt whole
        session.execute(
            insert(CancellationRollupDirty), [{"clinic_id": c, "daynum": d} for c, d in days]
        )


def clinic(session: Session, name: str, tz: str, report: ImportReport) -> int:
    clinic_id = session.scalar(select(Clinic.id).where(Clinic.name == name))
    if clinic_id is None:
        clinic_id = new_clinic(session, name, tz, report).id
    return clinic_id


def new_clinic(session: Session, name: str, tz: str, report: ImportReport) -> Clinic:
    """A clinic the file names and the practice lacks, in the time zone the import was given.
    Its money and dates follow the practice's first clinic (a new branch's data), or the
    defaults in an empty practice; one note of the report says which, and what to set."""
    first = session.scalar(select(Clinic).order_by(Clinic.active.desc(), Clinic.id).limit(1))
    clinic = Clinic(name=name[:120], timezone=tz)
    if first is not None:
        clinic.locale, clinic.currency = first.locale, first.currency
    session.add(clinic)
    session.flush()
    names = report.clinics_created
    names.append(name)
    said = f"the clinic {name}" if len(names) == 1 else f"{len(names):,} clinics ("
    if len(names) > 1:
        said += ", ".join(names[:3]) + (f" and {len(names) - 3:,} more)" if names[3:] else ")")
    like = f", as {first.name}" if first is not None else ""
    note = (
        f"Created {said} in {tz} with the locale {clinic.locale} and the currency "
        f"{clinic.currency}{like}. Check those and add the address and phone on the Clinics "
        "page."
    )
    report.notes[:] = [n for n in report.notes if not n.startswith("Created ")] + [note]
    return clinic


def name_part(text: str, field: str, *, empty: str, whose: str = "the") -> str:
    """One part of an imported patient's name (`field`: 'first name', 'last name') as it
    came, or a ValueError when it has no letter in it, saying what to write: the rule of every
    patient name field (core.patients.records.has_letter). `empty`: how the file leaves a
    part out ('leave the cell empty'); `whose`: whose name it is ("Patient/p1's")."""
    if text and not has_letter(text):
        raise ValueError(
            f"{whose} {field} {text!r} has no letter in it: write the patient's name as it is "
            f"written (in any alphabet), or {empty}"
        )
    return text


OPEN = (AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN)  # no outcome yet


def without_outcome(record: dict[str, Any], now) -> bool:
    """A visit imported as scheduled or arrived whose time has passed: its outcome is unknown."""
    return record["status"] in OPEN and record["start_at"] is not None and record["start_at"] < now


def past_open_note(report: ImportReport, count: int) -> None:
    """Tell the owner what past visits without an outcome count as (and what they do not)."""
    if not count:
        return
    visits = "1 visit" if count == 1 else f"{count:,} visits"
    report.notes.append(
        f"{visits} in the past came as scheduled or arrived, with no outcome: they count as "
        "booked (the cancellation rate) but not as visits due (the no-show rate), and the "
        "no-show model does not learn from them. Where you know the outcome, set it on the "
        "calendar."
    )


def existing(session: Session, model, refs: list[str]) -> dict[str, int]:
    """external_ref -> id of the rows that exist already (looked up in chunks)."""
    found: dict[str, int] = {}
    for start in range(0, len(refs), CHUNK):
        chunk = refs[start : start + CHUNK]
        query = select(model.external_ref, model.id).where(
            _among(session, model.external_ref, chunk)
        )
        found.update({ref: id_ for ref, id_ in session.execute(query)})
    return found


def save_patients(
    session: Session, patients: dict[str, dict[str, Any]], report: ImportReport
) -> dict[str, int]:
    """external_ref -> id of every patient of a chunk, inserting the new ones."""
    refs = list(patients)
    found = existing(session, Patient, refs)
    fresh = [patients[ref] for ref in refs if ref not in found]
    for row in fresh:  # a bulk insert: no flush keeps the search text or the landline mark
        row["search_text"] = search_text(row["first_name"], row["last_name"], row.get("email"))
    landlines.mark(session, fresh)
    if fresh:
        # one time for the chunk's patients and their opening entries, so each entry is dated
        # at its patient's creation as a single patient's is (points.open_account)
        now = utcnow()
        fresh = [p | {"points_balance": points.OPENING_POINTS, "created_at": now} for p in fresh]
        created = _inserted(session, fresh)
        # their opening points in the order they were inserted (the ids' order)
        points.open_accounts(
            session,
            [created[p["external_ref"]] for p in fresh if p["external_ref"] in created],
            created_at=now,
        )
        found.update(created)
        if len(created) < len(fresh):  # saved meanwhile by another import of the file
            found.update(existing(session, Patient, [r for r in refs if r not in found]))
        report.patients_created += len(created)
    return found


def _inserted(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """external_ref -> id of the patients of `rows` this insert saved: not those another import
    of the file saved meanwhile (ON CONFLICT DO NOTHING leaves them out)."""
    table = Patient.__table__
    made = _insert(session, Patient).execution_options(preserve_rowcount=True)
    returning = made.returning(table.c.external_ref, table.c.id)
    if session.get_bind().dialect.name != "postgresql":  # SQLite: one INSERT of the rows
        # with RETURNING, read once in C, is sooner than an execution a row; and its write
        # lock, held from the chunk's look-up on, leaves no other import a moment to save one
        return dict(session.execute(returning, rows).all())
    # PostgreSQL: no RETURNING, so psycopg's executemany (one prepared statement, the rows
    # piped, as the appointments') rather than one INSERT of the thousand rows, whose many
    # thousand placeholders psycopg split again for every chunk; then one look-up of the ids.
    # When another import saved some meanwhile, the insert is undone and made again with
    # RETURNING, which says which are this one's
    savepoint = session.begin_nested()
    if session.execute(made, rows).rowcount == len(rows):
        savepoint.commit()
        return existing(session, Patient, [row["external_ref"] for row in rows])
    savepoint.rollback()
    return dict(session.execute(returning, rows).all())
