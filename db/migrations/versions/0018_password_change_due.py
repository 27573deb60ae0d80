"""a password someone else chose must be replaced at its holder's next sign-in

The owner gives a new colleague their first password (Users, Add a user) and resets a
forgotten one, so the owner knows it; nothing asked the colleague to choose their own. A
flag on the account, set by those two and cleared when its holder changes it, now keeps
them from anything else until they do. Existing accounts are not flagged: whether their
holders chose their passwords is not known.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    false = "FALSE" if op.get_bind().dialect.name == "postgresql" else "0"
    op.execute(f"ALTER TABLE users ADD COLUMN password_change_due BOOLEAN DEFAULT {false} NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN password_change_due")
