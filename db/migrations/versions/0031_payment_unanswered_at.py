"""a card refund the provider left unanswered says so in a column, not in its last error's words

A card refund whose last attempt the provider did not answer (a timeout, a connection cut, the
provider's own failure) may have been made: it is not handed back at the desk until the refund
job has settled it. The refund job told so by starting the refund's last error with a mark of
its own ('No answer, it may have been made: '), which the desk, the visit's Payments and the
cash-up read back: a refusal whose words happened to begin alike was taken for one, and the
export's last_error carried the mark. The time is now a column, unanswered_at (set when the
provider does not answer, cleared when it answers), and last_error holds the provider's words
alone. Refunds marked before get the column and lose the mark; the payments keep no time of
their last attempt, so the column says when this migration ran (the attempt was no later).
Going back writes the mark in front of their words again.

Revision ID: 0031
Revises: 0030
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MARK = "No answer, it may have been made: "  # as core.payments.prepay wrote it (1a4d1b9)
payments = sa.table(
    "payments",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("method", sa.String),
    sa.column("last_error", sa.String),
    sa.column("unanswered_at", sa.DateTime),  # naive UTC, as db.types.UTCDateTime stores it
)
# the job sent only card refunds through the provider: only theirs carry its mark
SENT = payments.c.kind.in_(("refund", "fee_refund")) & (payments.c.method == "stripe")


def upgrade() -> None:
    op.add_column("payments", sa.Column("unanswered_at", sa.DateTime(), nullable=True))
    bind = op.get_bind()
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = bind.execute(
        sa.select(payments.c.id, payments.c.last_error).where(
            SENT, payments.c.last_error.startswith(MARK, autoescape=True)
        )
    ).all()
    # LIKE ignores case on SQLite: the mark is compared exactly here
    marked = [(i, error) for i, error in rows if error.startswith(MARK)]
    if marked:
        bind.execute(
            payments.update()
            .where(payments.c.id == sa.bindparam("pid"))
            .values(last_error=sa.bindparam("said"), unanswered_at=now),
            [{"pid": i, "said": error.removeprefix(MARK)} for i, error in marked],
        )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(payments.c.id, payments.c.last_error).where(
            payments.c.unanswered_at.is_not(None)
        )
    ).all()
    if rows:
        bind.execute(
            payments.update()
            .where(payments.c.id == sa.bindparam("pid"))
            .values(last_error=sa.bindparam("said")),
            [{"pid": i, "said": f"{MARK}{error}"[:500]} for i, error in rows],
        )
    op.execute("ALTER TABLE payments DROP COLUMN unanswered_at")  # in place, SQLite included
