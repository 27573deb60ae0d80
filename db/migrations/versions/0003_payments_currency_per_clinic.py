"""payments are in the appointment's clinic's currency: drop the practice-wide one

The payment rules (the `payments` settings row) no longer carry a currency or a locale: every
amount is in the currency of the appointment's clinic. Payment rows keep their stored currency.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RETIRED = ("currency", "locale")
settings = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.JSON))


def upgrade() -> None:
    bind = op.get_bind()
    value = bind.scalar(sa.select(settings.c.value).where(settings.c.key == "payments"))
    if isinstance(value, dict) and any(k in value for k in RETIRED):
        kept = {k: v for k, v in value.items() if k not in RETIRED}
        bind.execute(
            settings.update().where(settings.c.key == "payments").values(value=kept)
        )


def downgrade() -> None:
    pass  # the older code takes its defaults for absent keys
