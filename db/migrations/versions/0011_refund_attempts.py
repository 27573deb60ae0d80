"""a refund sent through the provider counts its attempts and keeps its last error apart

Until now a card refund the provider refused kept the refusal in its note, after
'Last attempt: ': the refund job ordered the refunds by whether the note held those words and cut
the note there on the next try, so a waiver reason typed with them was cut. Two columns now hold
it (refund_attempts, last_error) and the note stays as typed. Refunds refused before keep their
note up to the last ' · Last attempt: ' the job wrote, the refusal after it as their last error,
counted as one attempt. The job's words are told from typed ones by what it wrote after them:
Stripe's refusal, which always began 'Stripe did not make the refund: '.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LAST_ATTEMPT = "Last attempt: "  # as core.payments.prepay wrote it into the note
REFUSED = "Stripe did not make the refund: "  # how its refusal began (StripeProvider.refund)
payments = sa.table(
    "payments",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("method", sa.String),
    sa.column("note", sa.Text),
    sa.column("refund_attempts", sa.Integer),
    sa.column("last_error", sa.String),
)
# the job sent only card refunds through the provider: only their notes hold its words
SENT = payments.c.kind.in_(("refund", "fee_refund")) & (payments.c.method == "stripe")


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column("refund_attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "payments", sa.Column("last_error", sa.String(500), nullable=False, server_default="")
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(payments.c.id, payments.c.note).where(
            SENT, payments.c.note.contains(LAST_ATTEMPT + REFUSED)
        )
    ).all()
    for payment_id, note in rows:
        # the job wrote 'note · Last attempt: Stripe did not …' (or that alone), at the end
        typed, _, error = note.rpartition(LAST_ATTEMPT + REFUSED)
        error = REFUSED + error
        bind.execute(
            payments.update()
            .where(payments.c.id == payment_id)
            .values(
                note=typed.rstrip(" ·"),
                last_error=error.strip()[:500],
                refund_attempts=1,
            )
        )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(payments.c.id, payments.c.note, payments.c.last_error).where(
            payments.c.last_error != ""
        )
    ).all()
    for payment_id, note, error in rows:
        old = " · ".join(filter(None, [note, f"{LAST_ATTEMPT}{error}"]))[:500]
        bind.execute(payments.update().where(payments.c.id == payment_id).values(note=old))
    op.execute("ALTER TABLE payments DROP COLUMN last_error")  # in place, SQLite included
    op.execute("ALTER TABLE payments DROP COLUMN refund_attempts")
