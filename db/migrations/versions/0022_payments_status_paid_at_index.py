"""an index of when payments' money moved, by status

The cash-up and the payments export (core.payments.cashup.movements) select the money that
moved on a range of days: payments paid or refunded with `paid_at` in the range, and refunds
made after the range's end. `paid_at` had no index: the read went through every payment of
those statuses the practice ever took (ix_payments_status_created_at), whatever the days. An
index of (status, paid_at) reads only the days asked for; one of paid_at alone was not chosen
by SQLite's planner over the status index.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.create_index(batch.f("ix_payments_status_paid_at"), ["status", "paid_at"])


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_index(batch.f("ix_payments_status_paid_at"))
