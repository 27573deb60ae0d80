"""a no-show score keeps the start and provider it was made for

A score describes a visit as it was scored: moved to another time or provider, its lead time
and weekday are another visit's. Scores were held current while scored after the appointment
last changed, so a note, a payment or a check of the reminder also hid the badge until the
next daily run. The score now keeps the start and provider it was made for and is current
while they are the visit's. Scores already stored take them from their appointment where they
were scored after its last change, and stay not current otherwise, as before.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("risk_scores") as batch:
        batch.add_column(sa.Column("start_at", db.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("provider_id", sa.Integer(), nullable=True))
    for column in ("start_at", "provider_id"):
        op.execute(
            f"UPDATE risk_scores SET {column} = (SELECT a.{column} FROM appointments a "
            "WHERE a.id = risk_scores.appointment_id AND risk_scores.scored_at >= a.updated_at)"
        )


def downgrade() -> None:
    with op.batch_alter_table("risk_scores") as batch:
        batch.drop_column("provider_id")
        batch.drop_column("start_at")
