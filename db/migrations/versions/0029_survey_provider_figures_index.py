"""one provider's survey figures read from an index alone

Surveys filtered by a provider read the figures' columns (service, package, clinic, NPS,
rating) of that provider's answers. The provider's index held only (provider_id,
submitted_at): SQLite read its range and then each answer's row from the table; PostgreSQL
read either that range and the rows (a bitmap scan) or the whole period of the figures'
covering index (ix_survey_responses_figures, which starts with submitted_at), skipping the
other providers' entries. This index holds what the figures read after the provider and the
time, and what the service filter reads of an answer (appointment_id, to find the visits
holding the service after their first one, and id, the answers found: SQLite's rowid is in
every index, PostgreSQL's is not), so a provider's figures are one range of it, without the
table. id comes straight after the time, so the comments of a provider, newest first (by time,
then id), are still read in the index's order. It replaces the provider's narrower index,
whose columns lead it: whatever read that one reads this one.

200k-visit bench, a year, provider 18 (1,109 answers; bench/README.md has the rest):
PostgreSQL 15 (EXPLAIN (ANALYZE, BUFFERS), the table vacuumed) reads 151-169 pages for each
of the key figures, distribution, groups and weeks before and 13-24 after, with a service
421-432 and 129-140; SQLite's CPU for the page's first view's statements 6.9 -> 5.0 ms (8.0 ->
4.6 ms with a service). SQLite's VM steps move by 1-8% only: a row read from the table is one
step of its VM however many pages that read touches.

Revision ID: 0029
Revises: 0028
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = "ix_survey_responses_provider_id_submitted_at"
AFTER = "ix_survey_responses_provider_figures"
COLUMNS = [
    "provider_id",
    "submitted_at",
    "id",
    "service_id",
    "package_id",
    "clinic_id",
    "nps",
    "rating",
    "appointment_id",
]


def upgrade() -> None:
    with op.batch_alter_table("survey_responses") as batch:
        batch.create_index(AFTER, COLUMNS)
        batch.drop_index(BEFORE)


def downgrade() -> None:
    with op.batch_alter_table("survey_responses") as batch:
        batch.create_index(BEFORE, ["provider_id", "submitted_at"])
        batch.drop_index(AFTER)
