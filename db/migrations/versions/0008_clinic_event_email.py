"""a clinic event keeps the id of the email it queued

Undoing a no-show stops the clinic's no-show email if it has not gone out yet; until now that
email was found by rendering its text again, which missed it once the template was edited.
Events from before have no id: their emails are left as they are.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clinic_events", sa.Column("email_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE clinic_events DROP COLUMN email_id")  # in place, SQLite included
