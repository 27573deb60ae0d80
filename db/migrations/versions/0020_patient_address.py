"""a patient's postal address

Letters, invoices, insurers and FHIR Patient.address all need where a patient lives; the
record had no place for it. Five optional columns on patients: two address lines, the city,
the postcode and the country (ISO 3166-1 alpha-2). Existing patients have none.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("address_line1", 120),
    ("address_line2", 120),
    ("city", 80),
    ("postcode", 12),
    ("country", 2),
)


def upgrade() -> None:
    for name, length in COLUMNS:
        op.add_column("patients", sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy of the table would lose its triggers
    for name, _length in reversed(COLUMNS):
        op.execute(f"ALTER TABLE patients DROP COLUMN {name}")
