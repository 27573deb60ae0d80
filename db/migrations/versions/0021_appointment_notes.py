"""an appointment's notes keep who wrote what, and when

An appointment had one notes text that each edit overwrote: who wrote a note and when was not
kept, and an edit lost what was there. Notes are now rows of their own, appended, never
replaced (author as named then, the time, the text); `appointments.notes` stays the latest
text for the lists. Each non-empty note already stored becomes one row, "Earlier note", dated
when its appointment last changed.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointment_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("author_name", sa.String(120), nullable=False),
        sa.Column("written_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_appointment_notes_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["users.id"],
            name=op.f("fk_appointment_notes_author_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_notes")),
    )
    with op.batch_alter_table("appointment_notes") as batch:
        batch.create_index(
            batch.f("ix_appointment_notes_appointment_id_written_at"),
            ["appointment_id", "written_at"],
        )
    op.execute(
        "INSERT INTO appointment_notes (appointment_id, author_user_id, author_name, written_at, "
        "text) SELECT id, NULL, 'Earlier note', COALESCE(updated_at, created_at), notes "
        "FROM appointments WHERE TRIM(COALESCE(notes, '')) <> '' ORDER BY id"
    )


def downgrade() -> None:
    with op.batch_alter_table("appointment_notes") as batch:
        batch.drop_index(batch.f("ix_appointment_notes_appointment_id_written_at"))
    op.drop_table("appointment_notes")
