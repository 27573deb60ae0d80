"""a text reply keeps the answer texted back to it in a column of its own

Until now the answer was the last line of the reply's note ("Answered by text: …"); existing
replies get it moved into `answer`, and their note keeps the rest.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MARK = "Answered by text: "
replies = sa.table(
    "sms_replies", sa.column("id", sa.Integer), sa.column("note", sa.Text), sa.column("answer")
)


def _split(note: str) -> tuple[str, str]:
    """(the note without the answer's line, the answer): the answer was written as a line of
    its own right after what the code noted, before any note staff added."""
    lines = note.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(MARK):
            return "\n".join(lines[:i] + lines[i + 1 :]), line[len(MARK) :]
    return note, ""


def upgrade() -> None:
    op.add_column(
        "sms_replies", sa.Column("answer", sa.Text(), nullable=False, server_default="")
    )
    bind = op.get_bind()
    answered = bind.execute(
        sa.select(replies.c.id, replies.c.note).where(replies.c.note.contains(MARK))
    ).all()
    for reply_id, note in answered:
        kept, answer = _split(note)
        bind.execute(
            replies.update().where(replies.c.id == reply_id).values(note=kept, answer=answer)
        )


def downgrade() -> None:
    bind = op.get_bind()
    answered = bind.execute(
        sa.select(replies.c.id, replies.c.note, replies.c.answer).where(replies.c.answer != "")
    ).all()
    for reply_id, note, answer in answered:
        line = MARK + answer
        bind.execute(
            replies.update()
            .where(replies.c.id == reply_id)
            .values(note=f"{note}\n{line}" if note else line)
        )
    with op.batch_alter_table("sms_replies") as batch_op:
        batch_op.drop_column("answer")
