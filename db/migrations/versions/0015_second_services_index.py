"""an index of the visits' second and later services

The calendar names a visit of several services by all of them ('Consultation + Peel'). It read
the services of every visit in the window by handing their ids over one by one: a thousand
bound ids cost 10 ms on PostgreSQL, a third of the week's read. Most visits have one service,
named by the window's own row; a partial index of the rows after a visit's first service (few)
finds the others from the window's query itself.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_appointment_services_more",
        "appointment_services",
        ["appointment_id"],
        sqlite_where=sa.text("position > 0"),
        postgresql_where=sa.text("position > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_appointment_services_more", table_name="appointment_services")
