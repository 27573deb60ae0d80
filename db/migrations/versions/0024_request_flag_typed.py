"""what a flagged public request typed, and who handled its flag

A public booking request's flag was one line of text: the date of birth typed (kept nowhere
else), the patients a new record may be, and what was typed could only be read in it, so the
desk retyped them by hand, and a flag stayed on the request after it was dealt with. The flag
now keeps them as data: the typed date of birth, the typed names, email, phone and consent
(for a record of their own when it is someone else), the ids of the patients on file it may be,
and when and by whom it was handled (a handled flag is no longer shown; its audit events stay).
Existing flags have none of these: the desk can still mark them checked.

Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("typed_birth", "typed", "known_ids", "handled_at", "handled_by")


def upgrade() -> None:
    op.add_column("request_flags", sa.Column("typed_birth", sa.Date(), nullable=True))
    op.add_column("request_flags", sa.Column("typed", sa.JSON(), nullable=True))
    op.add_column("request_flags", sa.Column("known_ids", sa.JSON(), nullable=True))
    op.add_column(
        "request_flags", sa.Column("handled_at", db.types.UTCDateTime(), nullable=True)
    )
    op.add_column("request_flags", sa.Column("handled_by", sa.String(120), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+), as 0020
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE request_flags DROP COLUMN {name}")
