"""a survey response records the package its visit was booked as

Survey analytics counted a package's answers under its first service (a response recorded the
visit's service, not its package), while Cancellations shows a package as its own bar; joining
each response to its visit to find the package cost the figures 17 -> 66 ms on 120k
responses. The response now records the package when it is written (`package_id`, nullable:
visits booked as one service, and imported responses, have none), and the figures' covering
index (ix_survey_responses_figures) holds it, so the by-service figures still read only the
index. Responses stored before take their visit's package.

Revision ID: 0025
Revises: 0024
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIGURES = "ix_survey_responses_figures"
BEFORE = ["submitted_at", "service_id", "provider_id", "clinic_id", "nps", "rating"]
AFTER = ["submitted_at", "service_id", "package_id", "provider_id", "clinic_id", "nps", "rating"]


def upgrade() -> None:
    with op.batch_alter_table("survey_responses") as batch:
        batch.drop_index(FIGURES)
        batch.add_column(sa.Column("package_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_survey_responses_package_id_packages"), "packages", ["package_id"], ["id"]
        )
    # before the index is built: the rows are written once
    op.execute(
        "UPDATE survey_responses SET package_id = (SELECT a.package_id FROM appointments a "
        "WHERE a.id = survey_responses.appointment_id) WHERE appointment_id IN "
        "(SELECT id FROM appointments WHERE package_id IS NOT NULL)"
    )
    with op.batch_alter_table("survey_responses") as batch:
        batch.create_index(FIGURES, AFTER)


def downgrade() -> None:
    with op.batch_alter_table("survey_responses") as batch:
        batch.drop_index(FIGURES)
        batch.drop_constraint(
            batch.f("fk_survey_responses_package_id_packages"), type_="foreignkey"
        )
        batch.drop_column("package_id")
    with op.batch_alter_table("survey_responses") as batch:
        batch.create_index(FIGURES, BEFORE)
