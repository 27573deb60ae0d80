"""a patient's points balance opens with a ledger entry; backfill the missing ones

New patients were given 100 points by a column default with no ledger entry, so a patient's
points history did not add up to the balance. The ledger gains the kind `points_opening`
(signed, like an adjustment), and every patient whose entries do not add up to their balance
gets one opening entry for the difference, dated when the patient was created.

Before that, the ledger was wrong in two more ways, put right first so the opening is what the
patient opened with: the policy's deduction lowered the balance only to zero but recorded the
full deduction (a waiver then gave back more than was taken), and 'Add points' changed the
balance with an audit event and no entry. Each such patient's history is replayed in time
order from the 100 they opened with, under the old rules: a deduction that took less is
rewritten to what it took, a waiver that gave back other than that and every 'Add points'
become adjustment entries (dated when they happened). Each change is an audit event
('points_deduction_corrected' with the points recorded and taken, 'points_entry_backfilled'),
which the downgrade reads to put the ledger back as it was.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_ledger_entries_kind"
OLD_KINDS = (
    "late_cancel_fee",
    "no_show_fee",
    "points",
    "points_earned",
    "points_spent",
    "points_adjusted",
    "points_refunded",
)
OPENING = "points_opening"
NEW_KINDS = (*OLD_KINDS, OPENING)

# each entry's effect on the balance, as core.payments.points.delta has it at this revision
DELTA = """CASE
    WHEN kind = 'points' AND waived_at IS NULL THEN -points
    WHEN kind = 'points_spent' THEN -points
    WHEN kind IN ('points_earned', 'points_refunded', 'points_adjusted', 'points_opening')
        THEN points
    ELSE 0
END"""

BACKFILL = f"""
INSERT INTO ledger_entries (patient_id, kind, amount_cents, points, created_at)
SELECT p.id, '{OPENING}', 0, p.points_balance - COALESCE(s.total, 0), p.created_at
FROM patients p
LEFT JOIN (
    SELECT patient_id, SUM({DELTA}) AS total FROM ledger_entries GROUP BY patient_id
) s ON s.patient_id = p.id
WHERE p.points_balance <> COALESCE(s.total, 0)
ORDER BY p.id
"""


OLD_OPENING = 100  # the column default every patient opened with before this revision
CORRECTED = "points_deduction_corrected"
BACKFILLED = "points_entry_backfilled"
ADDED = "points_added"  # the old 'Add points': the balance and this audit event, no entry
WAIVED = "fee_waived"

entries = sa.table(
    "ledger_entries",
    sa.column("id", sa.Integer),
    sa.column("patient_id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("amount_cents", sa.Integer),
    sa.column("points", sa.Integer),
    sa.column("created_at", UTCDateTime),
    sa.column("waived_at", UTCDateTime),
    sa.column("waive_reason", sa.Text),
)
events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer),
    sa.column("at", UTCDateTime),
    sa.column("actor_label", sa.String),
    sa.column("action", sa.String),
    sa.column("entity", sa.String),
    sa.column("entity_id", sa.Integer),
    sa.column("patient_id", sa.Integer),
    sa.column("reason", sa.Text),
    sa.column("message", sa.Text),
    sa.column("details", sa.JSON),
)


def _in(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def _set_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(CHECK), "ledger_entries", type_="check")
        op.create_check_constraint(op.f(CHECK), "ledger_entries", _in(new))
        return
    # SQLite cannot alter a CHECK constraint, and copying the table (batch mode) would fail on
    # the payments that refer to its rows. Changing the kinds a CHECK allows leaves the stored
    # rows as they are, so the table's recorded definition is edited in place, as SQLite's
    # documentation describes for such changes (ALTER TABLE, "other kinds of schema changes").
    table_sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_entries'"
    ).scalar_one()
    if _in(old) not in table_sql:
        raise RuntimeError(f"ledger_entries: {CHECK} is not the one this migration expects")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        sa.text(
            "UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'ledger_entries'"
        ),
        {"sql": table_sql.replace(_in(old), _in(new))},
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = bind.exec_driver_sql("PRAGMA integrity_check(ledger_entries)").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"ledger_entries after changing {CHECK}: {problems}")


def _history(bind) -> dict[int, list[tuple]]:
    """patient id -> what changed their points, in time order: (at, rank, id, what, row).
    Only patients with a policy deduction or an 'Add points' can be wrong."""
    deducted = sa.select(entries.c.patient_id).where(entries.c.kind == "points")
    added = sa.select(events.c.entity_id).where(
        events.c.action == ADDED, events.c.entity == "patient", events.c.entity_id.is_not(None)
    )
    patients = deducted.union(added).subquery()
    history: dict[int, list[tuple]] = {}
    rows = bind.execute(
        sa.select(entries).where(
            entries.c.kind.in_([k for k in OLD_KINDS if k.startswith("points")]),
            entries.c.patient_id.in_(sa.select(patients.c.patient_id)),
        )
    )
    for row in rows:
        steps = history.setdefault(row.patient_id, [])
        steps.append((row.created_at, 0, row.id, "entry", row))
        if row.kind == "points" and row.waived_at is not None:
            # never before the deduction it gives back (a hand-made row may say otherwise)
            steps.append((max(row.waived_at, row.created_at), 2, row.id, "waiver", row))
    for event in bind.execute(added.with_only_columns(events)):
        steps = history.setdefault(event.entity_id, [])
        steps.append((event.at, 1, event.id, "added", event))
    for steps in history.values():
        steps.sort(key=lambda step: step[:3])
    return history


def _given_back(bind) -> dict[int, int]:
    """deduction id -> the points its waiver gave back, as the waiver's audit event has it."""
    given = {}
    for entry_id, details in bind.execute(
        sa.select(events.c.entity_id, events.c.details).where(
            events.c.action == WAIVED, events.c.entity == "ledger_entry"
        )
    ):
        if isinstance(details, dict) and isinstance(details.get("points_given_back"), int):
            given[entry_id] = details["points_given_back"]
    return given


def _replay(steps: list[tuple], given_back: dict[int, int]):
    """The patient's balance from their opening under the old rules, step by step; returns
    the deductions to rewrite {id: (recorded, taken)} and the adjustments the ledger lacks
    [(points, at, note, details)]."""
    balance, taken, rewrite, missing = OLD_OPENING, {}, {}, []
    for at, _, _, what, row in steps:
        if what == "added":
            points = int((row.details or {}).get("points") or 0)
            balance += points
            note = row.reason or "Points added by the practice"
            missing.append((points, at, note, {"audit_event_id": row.id}))
        elif what == "waiver":
            # the old waiver gave back what the deduction recorded (an undone no-show: what it
            # took); the audit event of the waiver says which, the recorded points otherwise
            given = given_back.get(row.id, row.points)
            balance += given
            if given != taken[row.id]:
                note = (
                    f"The waiver of deduction #{row.id} gave back {given} points; "
                    f"the deduction had taken {taken[row.id]}"
                )
                extra = {"ledger_entry_id": row.id, "given_back": given}
                missing.append((given - taken[row.id], at, note, extra))
        elif row.kind == "points":
            taken[row.id] = min(row.points, max(0, balance))
            balance -= taken[row.id]
            if taken[row.id] != row.points:
                rewrite[row.id] = (row.points, taken[row.id])
        elif row.kind == "points_spent":
            balance -= row.points
        else:  # earned, refunded, adjusted (signed)
            balance += row.points
    return rewrite, missing


def _audit(bind, patient_id: int, action: str, entry_id: int, message: str, details) -> None:
    bind.execute(
        sa.insert(events).values(
            at=datetime.now(UTC),
            actor_label="System",
            action=action,
            entity="ledger_entry",
            entity_id=entry_id,
            patient_id=patient_id,
            message=message,
            details={"migration": revision, **details},
        )
    )


def _correct_old_ledgers(bind) -> None:
    given_back = _given_back(bind)
    for patient_id, steps in sorted(_history(bind).items()):
        rewrite, missing = _replay(steps, given_back)
        for entry_id, (recorded, took) in sorted(rewrite.items()):
            bind.execute(
                sa.update(entries).where(entries.c.id == entry_id).values(points=took)
            )
            message = (
                f"The cancellation policy's deduction #{entry_id} recorded {recorded} points "
                f"but took {took} (the balance stopped at zero); it now records {took}."
            )
            details = {"recorded": recorded, "taken": took}
            _audit(bind, patient_id, CORRECTED, entry_id, message, details)
        for points, at, note, details in missing:
            if not points:
                continue
            entry_id = bind.execute(
                sa.insert(entries).values(
                    patient_id=patient_id,
                    kind="points_adjusted",
                    amount_cents=0,
                    points=points,
                    created_at=at,
                    waive_reason=note,
                )
                .returning(entries.c.id)
            ).scalar_one()
            message = f"Ledger entry for {points:+d} points that changed the balance: {note}."
            _audit(bind, patient_id, BACKFILLED, entry_id, message, {"points": points, **details})


def _restore_old_ledgers(bind) -> None:
    """Undo `_correct_old_ledgers` from its audit events: the deductions record what they did
    before, the entries it wrote go, and so do its events."""
    mine = sa.select(events.c.id, events.c.action, events.c.entity_id, events.c.details).where(
        events.c.action.in_((CORRECTED, BACKFILLED)), events.c.entity == "ledger_entry"
    )
    done = []
    for event_id, action, entry_id, details in bind.execute(mine).all():
        if not isinstance(details, dict) or details.get("migration") != revision:
            continue
        if action == CORRECTED:
            restore = sa.update(entries).values(points=details["recorded"])
            bind.execute(restore.where(entries.c.id == entry_id))
        else:
            bind.execute(sa.delete(entries).where(entries.c.id == entry_id))
        done.append(event_id)
    if done:
        bind.execute(sa.delete(events).where(events.c.id.in_(done)))


def upgrade() -> None:
    _set_check(OLD_KINDS, NEW_KINDS)
    _correct_old_ledgers(op.get_bind())
    op.execute(BACKFILL)


def downgrade() -> None:
    # the older code gives new patients 100 points with no entry; its CHECK has no such kind
    op.execute(f"DELETE FROM ledger_entries WHERE kind = '{OPENING}'")
    _restore_old_ledgers(op.get_bind())
    _set_check(NEW_KINDS, OLD_KINDS)
