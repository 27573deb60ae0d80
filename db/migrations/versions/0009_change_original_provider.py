"""a change request keeps the provider of the booking a proposal moved

While a proposal answering a reschedule or cancellation request waits for the patient, the
booking's original time stays held (core.scheduling.availability.held), with the provider it
had: original_provider_id beside the existing original_start_at. Proposals waiting now take it
from their audit event (the proposal's details.original.provider_id), as the restore read it.
A plain id as the audit keeps it (providers are deactivated, never deleted).

Revision ID: 0009
Revises: 0008
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("change_requests", sa.Column("original_provider_id", sa.Integer(), nullable=True))
    bind = op.get_bind()
    waiting = bind.execute(
        sa.text("SELECT id, appointment_id FROM change_requests WHERE status = 'proposed'")
    ).all()
    for change_id, appointment_id in waiting:
        details = bind.execute(
            sa.text(
                "SELECT details FROM audit_events WHERE entity = 'appointment' "
                "AND entity_id = :aid AND action = 'propose_for_change' ORDER BY id DESC LIMIT 1"
            ),
            {"aid": appointment_id},
        ).scalar()
        if isinstance(details, str):
            details = json.loads(details)
        provider_id = ((details or {}).get("original") or {}).get("provider_id")
        if provider_id:
            bind.execute(
                sa.text("UPDATE change_requests SET original_provider_id = :p WHERE id = :id"),
                {"p": provider_id, "id": change_id},
            )


def downgrade() -> None:
    op.execute("ALTER TABLE change_requests DROP COLUMN original_provider_id")  # SQLite too
