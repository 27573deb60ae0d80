"""a booking request keeps what its patient asked in columns while a proposal replaces it

A proposal puts the practice's time and provider on the request; what the patient asked (an
exact time or none, the provider or any) was kept only in the proposal's audit event
(details["asked"]), and a proposal let go read it back from the audit log. The appointment now
keeps it: `ask_kept` (one is kept: both of the others may be none), `asked_start_at`,
`asked_provider_id` (core.requests.decisions). Proposals waiting for their patient now take the
ask their audit event kept: the latest event that began the proposal (a proposal of a request,
or one answering a change request, which keeps no ask; a second proposal of a request began
nothing). A proposal made before the ask was kept has none, as before.

SQLite adds the columns in place, the reference with its column: a batch copy of appointments
would trip the foreign keys that point at it.

Revision ID: 0028
Revises: 0027
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_appointments_asked_provider_id_providers"
SQLITE_COLUMN = f"asked_provider_id INTEGER CONSTRAINT {FK} REFERENCES providers (id)"
CHUNK = 500

appointments = sa.table(
    "appointments",
    sa.column("id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("ask_kept", sa.Boolean),
    sa.column("asked_start_at", sa.DateTime),  # naive UTC, as db.types.UTCDateTime stores it
    sa.column("asked_provider_id", sa.Integer),
)
audit_events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer),
    sa.column("entity", sa.String),
    sa.column("entity_id", sa.Integer),
    sa.column("action", sa.String),
    sa.column("from_status", sa.String),
    sa.column("details", sa.JSON),
)


def _naive_utc(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _back_fill(bind) -> None:
    waiting = bind.scalars(
        sa.select(appointments.c.id).where(appointments.c.status == "tentative")
    ).all()
    kept = []
    for first in range(0, len(waiting), CHUNK):
        began: dict[int, tuple[str, dict | None]] = {}
        events = bind.execute(
            sa.select(audit_events.c.entity_id, audit_events.c.action, audit_events.c.details)
            .where(
                audit_events.c.entity == "appointment",
                audit_events.c.entity_id.in_(waiting[first : first + CHUNK]),
                audit_events.c.action.in_(("propose", "propose_for_change")),
                # a second proposal of a request (from tentative) began nothing
                sa.func.coalesce(audit_events.c.from_status, "") != "tentative",
            )
            .order_by(audit_events.c.id)
        )
        for appointment_id, action, details in events:
            began[appointment_id] = (action, details)
        for appointment_id, (action, details) in began.items():
            asked = (details or {}).get("asked") if action == "propose" else None
            if not isinstance(asked, dict):
                continue
            kept.append(
                {
                    "aid": appointment_id,
                    "start_at": _naive_utc(asked.get("start_at")),
                    "provider_id": asked.get("provider_id"),
                }
            )
    if kept:
        bind.execute(
            appointments.update()
            .where(appointments.c.id == sa.bindparam("aid"))
            .values(
                ask_kept=True,
                asked_start_at=sa.bindparam("start_at"),
                asked_provider_id=sa.bindparam("provider_id"),
            ),
            kept,
        )


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column(
        "appointments",
        sa.Column("ask_kept", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("appointments", sa.Column("asked_start_at", sa.DateTime(), nullable=True))
    if bind.dialect.name == "sqlite":
        op.execute(f"ALTER TABLE appointments ADD COLUMN {SQLITE_COLUMN}")
    else:
        op.add_column("appointments", sa.Column("asked_provider_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f(FK), "appointments", "providers", ["asked_provider_id"], ["id"])
    _back_fill(bind)


def downgrade() -> None:
    # a proposal let go after this reads its ask from the audit event again, which still has it
    bind = op.get_bind()
    op.execute("ALTER TABLE appointments DROP COLUMN ask_kept")
    op.execute("ALTER TABLE appointments DROP COLUMN asked_start_at")
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(FK), "appointments", type_="foreignkey")
        op.drop_column("appointments", "asked_provider_id")
        return
    # SQLite refuses to drop a column that a foreign key names: the reference is taken off the
    # column's recorded definition first (the stored rows are unchanged by it), as 0007 does
    table_sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'appointments'"
    ).scalar_one()
    if SQLITE_COLUMN not in table_sql:
        raise RuntimeError("appointments.asked_provider_id is not the column this migration added")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        sa.text(
            "UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'appointments'"
        ),
        {"sql": table_sql.replace(SQLITE_COLUMN, "asked_provider_id INTEGER")},
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    op.execute("ALTER TABLE appointments DROP COLUMN asked_provider_id")
