"""a message failed for good says why in a column, not only in its words

A message marked failed for good was told apart by its last_error's wording: a delivery
refusal began "Permanent failure, not retried", a withdrawn consent said "consent to" or
"replied STOP", and anything else had been stopped on purpose (an undone no-show, a taken
offer). Retry and the message lists read those words. The reason is now a column, stop_kind
('refused', 'consent' or 'purpose'), set where the message is stopped; the messages stopped
before are given theirs from those same words here.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the check named as db.models' naming convention names it; added in place on both databases
COLUMN = (
    "stop_kind VARCHAR(24) CONSTRAINT ck_notifications_stop_kind "
    "CHECK (stop_kind IN ('refused', 'consent', 'purpose'))"
)
STOPPED = "status = 'failed' AND permanent_failure = {true}"


def upgrade() -> None:
    op.execute(f"ALTER TABLE notifications ADD COLUMN {COLUMN}")
    true = "TRUE" if op.get_bind().dialect.name == "postgresql" else "1"
    stopped = STOPPED.format(true=true)
    # the words core.messaging.delivery.PERMANENT and the consent stops wrote until now
    op.execute(
        "UPDATE notifications SET stop_kind = 'refused' "
        f"WHERE {stopped} AND last_error LIKE 'Permanent failure, not retried%'"
    )
    op.execute(
        "UPDATE notifications SET stop_kind = 'consent' WHERE "
        f"{stopped} AND stop_kind IS NULL "
        "AND (last_error LIKE '%consent to%' OR last_error LIKE '%replied STOP%')"
    )
    op.execute(
        f"UPDATE notifications SET stop_kind = 'purpose' WHERE {stopped} AND stop_kind IS NULL"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE notifications DROP COLUMN stop_kind")  # its check with it
