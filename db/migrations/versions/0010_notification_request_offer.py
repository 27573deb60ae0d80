"""a survey request or waitlist offer message keeps the id of what it is about

The sender's quiet hours (core.messaging.quiet) hold the job's survey requests and the
waitlist's offers, and stop an offer that has ended; until now they found the request or the
offer by reading the link token back out of the message's text, one lookup per message. The
message now carries feedback_request_id or waitlist_offer_id, set when it is queued. Messages
not sent yet are given theirs here from their link (a sent one's link is redacted and no
longer needed). Plain ids, as clinic_events.email_id: SQLite drops the columns in place.

Revision ID: 0010
Revises: 0009
"""

import hashlib
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOKEN = re.compile(r"[?&]t=([A-Za-z0-9_\-]{16,128})")  # core.messaging.delivery's link token
_ABOUT = {  # template: (column, the link's token purpose)
    "feedback_request": ("feedback_request_id", "survey"),
    "waitlist_offer": ("waitlist_offer_id", "waitlist_offer"),
}


def upgrade() -> None:
    op.add_column("notifications", sa.Column("feedback_request_id", sa.Integer(), nullable=True))
    op.add_column("notifications", sa.Column("waitlist_offer_id", sa.Integer(), nullable=True))
    bind = op.get_bind()
    unsent = bind.execute(
        sa.text(
            "SELECT id, template, body FROM notifications WHERE status <> 'sent' "
            "AND template IN ('feedback_request', 'waitlist_offer')"
        )
    ).all()
    for notification_id, template, body in unsent:
        found = _TOKEN.search(body or "")
        if found is None:
            continue
        column, purpose = _ABOUT[template]
        subject_id = bind.execute(
            sa.text("SELECT subject_id FROM link_tokens WHERE token_hash = :h AND purpose = :p"),
            {"h": hashlib.sha256(found[1].encode()).hexdigest(), "p": purpose},
        ).scalar()
        if subject_id is not None:
            bind.execute(
                sa.text(f"UPDATE notifications SET {column} = :s WHERE id = :id"),
                {"s": subject_id, "id": notification_id},
            )


def downgrade() -> None:
    op.execute("ALTER TABLE notifications DROP COLUMN waitlist_offer_id")  # SQLite too
    op.execute("ALTER TABLE notifications DROP COLUMN feedback_request_id")
