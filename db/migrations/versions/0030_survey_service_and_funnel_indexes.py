"""a service's survey figures and a provider's funnel read from indexes alone

Filtered by a service, the survey figures look up the answers whose visit holds the service
after its first one, then count the answers booked as it or found. The figures' covering
index (ix_survey_responses_figures) held neither the answers' visits nor their ids: the
look-up read every answer of the period from the table (on SQLite without statistics; with
them a skip-scan of the provider's index), and on PostgreSQL, whose indexes hold no row id,
so did the figures. The look-up now hands over the visits it found, not the answers' ids,
and this index gets the visit (appointment_id, after the columns it had): both are one
range of it. (The answers' ids too would have cost 15% more index; the visit fits in the
entry's padding on PostgreSQL.)

Filtered by a provider, the funnel counted the provider's completed visits per feedback
state from the provider's (provider_id, start_at) range and each visit's row.
ix_appointments_provider_day (provider_id, start_at, status, feedback_status, clinic_id)
replaces that index, whose columns lead it: whatever read that one reads this one, and each
count is the provider's range of it. (provider_id after the columns of
ix_appointments_feedback_day instead, a ninth of the size added, had both databases read
every provider's completed visits of the period: on SQLite a provider's funnel 8.0 -> 13.5
ms, and it took that index, covering, for the service funnel's look-up, 25 -> 58 ms.)

200k-visit bench (python -m bench.generate --appointments 200000 --patients 40000
--responses 60000), a year, all clinics on their own days, Chemical peel and provider 18.
PostgreSQL 15, EXPLAIN (ANALYZE, BUFFERS), vacuumed, indexes built afresh both sides: with the
service, the look-up 8,631 -> 202 pages, the key figures 8,528 -> 99, groups, weeks and
distribution 8,532 -> 106 each; the provider's funnel 2,507 -> 271 (29 for each count the
planner reads from the new index; the feedback requests still waiting, 2 expected and none
found, it takes from ix_appointments_feedback_day and the rows, 213). SQLite (ANALYZEd): the
provider's funnel 81,612 -> 71,235 VM steps, 8.0 -> 1.3 ms of CPU (13.7 -> 3.0 in a busier
run); a service's figures were index-only already with statistics, by a skip-scan (0-7%
fewer VM steps).

Size, built afresh: ix_survey_responses_figures 433 -> 436 pages on PostgreSQL, 673 -> 729 on
SQLite; the provider's index 789 -> 1,469 pages (6.2 -> 11.5 MB) on PostgreSQL, 1,853 ->
2,768 on SQLite. Neither adds a column that no other index of its table holds, so no update
that could be HOT before stops being so, and a visit or an answer goes into as many indexes
as before: writes cost the bytes only.

Revision ID: 0030
Revises: 0029
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIGURES = "ix_survey_responses_figures"
FIGURES_BEFORE = [
    "submitted_at",
    "service_id",
    "package_id",
    "provider_id",
    "clinic_id",
    "nps",
    "rating",
]
BEFORE = "ix_appointments_provider_id_start_at"
AFTER = "ix_appointments_provider_day"
PROVIDER_DAY = ["provider_id", "start_at", "status", "feedback_status", "clinic_id"]


def upgrade() -> None:
    with op.batch_alter_table("survey_responses") as batch:
        batch.drop_index(FIGURES)
        batch.create_index(FIGURES, [*FIGURES_BEFORE, "appointment_id"])
    with op.batch_alter_table("appointments") as batch:
        batch.create_index(AFTER, PROVIDER_DAY)
        batch.drop_index(BEFORE)


def downgrade() -> None:
    with op.batch_alter_table("survey_responses") as batch:
        batch.drop_index(FIGURES)
        batch.create_index(FIGURES, FIGURES_BEFORE)
    with op.batch_alter_table("appointments") as batch:
        batch.create_index(BEFORE, ["provider_id", "start_at"])
        batch.drop_index(AFTER)
