"""patients are found by their names and email case and accents aside

A new column keeps each patient's names and email as searched (lower case, accents dropped,
punctuation as spaces): SQLite's lower() folds ASCII only, so 'élodie' missed Élodie there, and
neither database let 'elodie' find her. The rule is frozen here as it was written
(core.kernel.text.search_text keeps the column from now on).

Revision ID: 0005
Revises: 0004
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
patients = sa.table(
    "patients",
    sa.column("id", sa.Integer),
    sa.column("first_name", sa.String),
    sa.column("last_name", sa.String),
    sa.column("email", sa.String),
    sa.column("search_text", sa.String),
)


# letters NFKD does not split into a base and an accent, as a reader would type them plain
_UNSPLIT = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "þ": "th", "ħ": "h", "ı": "i"}
)


def _plain(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_UNSPLIT))
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", letters).split())


def upgrade() -> None:
    op.add_column(
        "patients", sa.Column("search_text", sa.String(500), nullable=False, server_default="")
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(patients.c.id, patients.c.first_name, patients.c.last_name, patients.c.email)
            .where(patients.c.id > last)
            .order_by(patients.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            patients.update()
            .where(patients.c.id == sa.bindparam("pid"))
            .values(search_text=sa.bindparam("text")),
            [
                {"pid": pid, "text": " ".join(_plain(p) for p in parts if p)[:500]}
                for pid, *parts in rows
            ],
        )
        last = rows[-1][0]


def downgrade() -> None:
    # SQLite 3.35+ drops a plain column in place: a batch copy of patients would drop the
    # triggers on it (db/triggers.py) and trip the foreign keys that point at it
    op.execute("ALTER TABLE patients DROP COLUMN search_text")
