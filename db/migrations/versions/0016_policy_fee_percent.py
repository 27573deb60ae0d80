"""a cancellation-policy fee may be a percentage of the visit's price

Each of the policy's two fees (late cancellation, no-show) was a fixed amount. Many aesthetic
practices charge a share of the treatment instead ("50% of the treatment"). Two columns per fee:
its basis ('fixed' or 'percent') and its whole percentage (0 to 100). The server defaults
('fixed', 0) keep every existing version charging the fixed fee it charged.

The columns are added in place, their checks with them, the same statement on SQLite and
PostgreSQL: a batch copy of cancellation_policies on SQLite would trip the foreign keys that
point at it (appointments, ledger entries).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, its definition): the checks named as db.models' naming convention names them
COLUMNS = (
    (
        "late_cancel_fee_basis",
        "VARCHAR(24) DEFAULT 'fixed' NOT NULL CONSTRAINT ck_cancellation_policies_late_fee_basis "
        "CHECK (late_cancel_fee_basis IN ('fixed', 'percent'))",
    ),
    (
        "late_cancel_fee_percent",
        "INTEGER DEFAULT '0' NOT NULL CONSTRAINT ck_cancellation_policies_late_fee_percent_range "
        "CHECK (late_cancel_fee_percent BETWEEN 0 AND 100)",
    ),
    (
        "no_show_fee_basis",
        "VARCHAR(24) DEFAULT 'fixed' NOT NULL CONSTRAINT ck_cancellation_policies_no_show_fee_basis "
        "CHECK (no_show_fee_basis IN ('fixed', 'percent'))",
    ),
    (
        "no_show_fee_percent",
        "INTEGER DEFAULT '0' NOT NULL CONSTRAINT "
        "ck_cancellation_policies_no_show_fee_percent_range "
        "CHECK (no_show_fee_percent BETWEEN 0 AND 100)",
    ),
)


def upgrade() -> None:
    for column, definition in COLUMNS:
        op.execute(f"ALTER TABLE cancellation_policies ADD COLUMN {column} {definition}")


def downgrade() -> None:
    # a column's own check goes with it (SQLite included); percentage fees become fixed ones
    # of their fixed amount, as every fee was before
    for column, _ in reversed(COLUMNS):
        op.execute(f"ALTER TABLE cancellation_policies DROP COLUMN {column}")
