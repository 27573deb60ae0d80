"""the background jobs' health: a row per job that has failed, so the practice sees it

Until now a job that raised (the reminders, the outbox, the nightly no-show fit) was only
written to the server's log, and the practice learnt of it when patients complained. The jobs
loop now records in job_runs when a job starts failing (since when, its last error's first
line, how many failures) and clears it when the job works again; owners and managers see it on
the Practice set-up page and in a banner. A new table: nothing to carry over.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("last_ok_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("failing_since", db.types.UTCDateTime(), nullable=True),
        sa.Column("last_failed_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_runs")),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
