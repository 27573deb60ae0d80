"""Which patient's phone is a landline for the practice (`Patient.phone_landline`): the rule
of core.kernel.phones.landline, in the countries of the practice's open clinics, stored so SQL
can tell who a text reaches (the invitation lists and counts, the portal tally's mobile bit).

Kept by every flush (`keep_landlines`): a new patient, or one whose phone changed (the desk's
edit, the public form, an import, a merge, a flag's new record), is classified before it is
written; and a clinic added, closed, reopened or given another locale may change the countries
a national number is read in: when it does, every stored phone is classified again after that
flush (`classify_all`; a clinic in a country the practice has already costs nothing). Bulk
inserts, which pass no flush, call `mark` themselves (core.interchange.import_batches).
core.startup.install_session_rules registers the hooks.
"""

from __future__ import annotations

from sqlalchemy import bindparam, event, inspect, select, update
from sqlalchemy.orm import Session

from core.kernel.phones import landline, practice_regions
from db.models import Clinic, Patient

_REGIONS_BEFORE = "landlines_regions_before"  # session.info: the countries before a clinic moved
_CHUNK = 5000


def keep_landlines() -> None:
    """Register the flush hooks (idempotent)."""
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
    if not event.contains(Session, "after_flush_postexec", _after_flush):
        event.listen(Session, "after_flush_postexec", _after_flush)


def mark(session: Session, rows: list[dict]) -> None:
    """Set `phone_landline` on rows about to be inserted in bulk (each with its "phone")."""
    regions = practice_regions(session)
    for row in rows:
        row["phone_landline"] = landline(row.get("phone"), regions)


def _phone_changed(patient: Patient) -> bool:
    state = inspect(patient)
    return state.pending or state.attrs.phone.history.has_changes()


def _clinic_moved(clinic: Clinic, session: Session) -> bool:
    if clinic in session.new or clinic in session.deleted:
        return True
    attrs = inspect(clinic).attrs
    return attrs.locale.history.has_changes() or attrs.active.history.has_changes()


def _before_flush(session: Session, _context, _instances) -> None:
    changed = [o for o in (*session.new, *session.dirty) if isinstance(o, Patient)]
    changed = [p for p in changed if _phone_changed(p)]
    clinics = (o for o in (*session.new, *session.dirty, *session.deleted) if isinstance(o, Clinic))
    moved = any(_clinic_moved(c, session) for c in clinics)
    if changed or moved:
        with session.no_autoflush:  # the countries as written so far, before this flush
            regions = practice_regions(session)
        for patient in changed:
            patient.phone_landline = landline(patient.phone, regions)
        if moved:
            session.info[_REGIONS_BEFORE] = regions


def _after_flush(session: Session, _context) -> None:
    before = session.info.pop(_REGIONS_BEFORE, None)
    if before is not None and set(practice_regions(session)) != set(before):
        classify_all(session)


def classify_all(session: Session) -> int:
    """Classify every stored phone again in the practice's countries (after its clinics
    changed); the rows whose class changed are written. How many changed."""
    regions = practice_regions(session)
    known: dict[str, bool] = {}
    moved: list[dict] = []
    last = 0
    while True:
        rows = session.execute(
            select(Patient.id, Patient.phone, Patient.phone_landline)
            .where(Patient.id > last, Patient.phone.is_not(None), Patient.phone != "")
            .order_by(Patient.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        for pid, phone, stored in rows:
            if phone not in known:
                known[phone] = landline(phone, regions)
            if known[phone] != stored:
                moved.append({"pid": pid, "landline": known[phone]})
        last = rows[-1][0]
    if moved:
        table = Patient.__table__
        session.execute(
            update(table)
            .where(table.c.id == bindparam("pid"))
            .values(phone_landline=bindparam("landline")),
            moved,
        )
        changed = {m["pid"] for m in moved}
        for obj in list(session.identity_map.values()):
            if isinstance(obj, Patient) and obj.id in changed:
                session.expire(obj, ["phone_landline"])
    return len(moved)
