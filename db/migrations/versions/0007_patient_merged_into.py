"""a duplicate patient record can be merged into the record kept

Two columns on patients: the record a duplicate was merged into, and when. The duplicate stays
(nothing clinical is deleted); core.patients.merge moves what pointed at it.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_patients_merged_into_id_patients"
# SQLite adds a column with its reference in place; a batch copy of patients would drop the
# triggers on it (db/triggers.py) and trip the foreign keys that point at it
SQLITE_COLUMN = f"merged_into_id INTEGER CONSTRAINT {FK} REFERENCES patients (id)"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(f"ALTER TABLE patients ADD COLUMN {SQLITE_COLUMN}")
    else:
        op.add_column("patients", sa.Column("merged_into_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f(FK), "patients", "patients", ["merged_into_id"], ["id"])
    op.add_column("patients", sa.Column("merged_at", UTCDateTime(), nullable=True))
    op.create_index(op.f("ix_patients_merged_into_id"), "patients", ["merged_into_id"])


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index(op.f("ix_patients_merged_into_id"), table_name="patients")
    op.execute("ALTER TABLE patients DROP COLUMN merged_at")
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(FK), "patients", type_="foreignkey")
        op.drop_column("patients", "merged_into_id")
        return
    # SQLite refuses to drop a column that a foreign key names. The reference is taken off the
    # column's recorded definition first (the stored rows are unchanged by it), as SQLite's
    # documentation describes for such changes (ALTER TABLE, "other kinds of schema changes").
    table_sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'patients'"
    ).scalar_one()
    if SQLITE_COLUMN not in table_sql:
        raise RuntimeError("patients.merged_into_id is not the column this migration added")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'patients'"),
        {"sql": table_sql.replace(SQLITE_COLUMN, "merged_into_id INTEGER")},
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    op.execute("ALTER TABLE patients DROP COLUMN merged_into_id")
