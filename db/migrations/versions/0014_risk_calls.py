"""the call list remembers its calls: a row per reminder call made from it

Front-desk staff work the call list (high-risk visits of the next days) by phone, but it could
not record that a call was made, so a colleague called the same patient again or nobody did.
A call now keeps its outcome (reached, left a message, no answer), an optional note, who made it
and when, for the start the visit had then (a move makes it a visit to call again). A new
table: nothing to carry over.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("start_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("called_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("called_by_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_risk_calls_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["called_by_user_id"], ["users.id"], name=op.f("fk_risk_calls_called_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_calls")),
    )
    with op.batch_alter_table("risk_calls") as batch:
        batch.create_index(
            batch.f("ix_risk_calls_appointment_id_start_at"), ["appointment_id", "start_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("risk_calls") as batch:
        batch.drop_index(batch.f("ix_risk_calls_appointment_id_start_at"))
    op.drop_table("risk_calls")
