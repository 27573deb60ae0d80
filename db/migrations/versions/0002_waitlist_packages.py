"""a waitlist entry may name a package

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


FK = "fk_waitlist_entries_package_id_packages"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # a plain ADD COLUMN: batch mode would copy the table, which waitlist_offers refers to
        op.execute(
            f"ALTER TABLE waitlist_entries ADD COLUMN package_id INTEGER "
            f"CONSTRAINT {FK} REFERENCES packages (id)"
        )
        return
    op.add_column("waitlist_entries", sa.Column("package_id", sa.Integer(), nullable=True))
    op.create_foreign_key(FK, "waitlist_entries", "packages", ["package_id"], ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("waitlist_entries") as batch_op:
            batch_op.drop_column("package_id")
        return
    op.drop_constraint(FK, "waitlist_entries", type_="foreignkey")
    op.drop_column("waitlist_entries", "package_id")
