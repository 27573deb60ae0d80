"""a waitlist offer keeps the mode it went out in

The portal worded an offer ("held for you alone until …" or "the first to accept gets it") by
the practice's mode at the time it was read, and the jobs loop sent a time held for one patient
to others too once the practice moved to first to accept: a practice switching modes while
offers were out told its patients the wrong thing. An offer now records the mode it is sent in
(`mode`, nullable: an offer still queued has none yet); its hold's end was stored already
(`expires_at`). Offers sent before take the mode their message named (its terms sentence, in the
outbox), else first to accept when another offer of the same time was out beside them (sent
before it was answered or lapsed), else the practice's mode now (what the portal has told
their patients so far).

Revision ID: 0026
Revises: 0025
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE, FIRST = "one_at_a_time", "first_to_accept"
SAID = {  # the offer message's terms sentence (core.waitlist.offers.TERMS)
    ONE: "%holding this time for you alone%",
    FIRST: "%the first to accept gets it%",
}


def _mode_now(connection) -> str:
    value = connection.execute(
        sa.text("SELECT value FROM settings WHERE key = 'waitlist_rules'")
    ).scalar()
    if isinstance(value, str):  # JSON as text (SQLite)
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    mode = value.get("mode") if isinstance(value, dict) else None
    return mode if mode in (ONE, FIRST) else ONE  # the rules' default


def upgrade() -> None:
    with op.batch_alter_table("waitlist_offers") as batch:
        batch.add_column(
            sa.Column(
                "mode",
                sa.Enum(
                    ONE, FIRST, name="mode", native_enum=False, create_constraint=True, length=24
                ),
                nullable=True,
            )
        )
    sent = "mode IS NULL AND sent_at IS NOT NULL"
    for mode, words in SAID.items():  # what the message told the patient
        op.execute(
            sa.text(
                f"UPDATE waitlist_offers SET mode = :mode WHERE {sent} AND EXISTS (SELECT 1 FROM "
                "notifications n WHERE n.waitlist_offer_id = waitlist_offers.id AND "
                "n.template = 'waitlist_offer' AND n.body LIKE :words)"
            ).bindparams(mode=mode, words=words)
        )
    op.execute(  # another offer of the same time out beside it: several at once
        sa.text(
            f"UPDATE waitlist_offers SET mode = :mode WHERE {sent} AND EXISTS (SELECT 1 FROM "
            "waitlist_offers o WHERE o.opening_id = waitlist_offers.opening_id AND "
            "o.id <> waitlist_offers.id AND o.sent_at IS NOT NULL AND "
            "o.sent_at < COALESCE(waitlist_offers.answered_at, waitlist_offers.expires_at) AND "
            "COALESCE(o.answered_at, o.expires_at) > waitlist_offers.sent_at)"
        ).bindparams(mode=FIRST)
    )
    op.execute(
        sa.text(f"UPDATE waitlist_offers SET mode = :mode WHERE {sent}").bindparams(
            mode=_mode_now(op.get_bind())
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("waitlist_offers") as batch:
        batch.drop_constraint(batch.f("ck_waitlist_offers_mode"), type_="check")
        batch.drop_column("mode")
