"""a patient's points balance opens with a ledger entry; backfill the missing ones

New patients were given 100 points by a column default with no ledger entry, so a patient's
points history did not add up to the balance. The ledger gains the kind `points_opening`
(signed, like an adjustment), and every patient whose entries do not add up to their balance
gets one opening entry for the difference, dated when the patient was created.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

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


def upgrade() -> None:
    _set_check(OLD_KINDS, NEW_KINDS)
    op.execute(BACKFILL)


def downgrade() -> None:
    # the older code gives new patients 100 points with no entry; its CHECK has no such kind
    op.execute(f"DELETE FROM ledger_entries WHERE kind = '{OPENING}'")
    _set_check(NEW_KINDS, OLD_KINDS)
