"""the Notifications page's template filter and address search read indexes

The page (core.messaging.notify.list_outbox, outbox_counts) filters the outbox by template,
alone or with a status, and counts the template's messages by status: no index held the
template, so the counts read every message (on SQLite through the status index and each
row) and a page of a template few messages have walked the table back from its newest row
until it had a hundred. ix_notifications_template_id_status holds the template, the id and the
status: a page is the template's range read back from its newest entry (with a status, that
range with the status checked in it), the counts that range alone. (template, status, id)
instead counted without a sort but gave a page of one template across its statuses a sort of
all its rows, read from the table: on SQLite the reminders' first page 4 -> 250 ms (wall).

The search now also finds a message by the address it went to (an email in any case, a
number in any form), a patient's too, so one sent to an address its patient no longer has is
found by it: ix_notifications_address_key is that address lower case without the separators a
number is typed with (db.models.address_key; the expression here is the one the model
renders, which SQLite and PostgreSQL both match only when a query's is the same).

300k messages, 50k patients, the old code at 0031 and the new at 0032 in one run. SQLite (CPU,
median of 7): a template's counts 81-87 -> 33-34 ms (the reminders, 126k messages), 72-75 -> 1
ms (one of 2k); its first page 3-4 ms as before. PostgreSQL 15 (EXPLAIN ANALYZE, pages read):
the reminders' counts 5,185 pages (the table) -> 920 (this index alone), one of 2k 5,243 -> 17
(54 -> 0.5 ms), its page 623 -> 385; a search by an old address, found now, read 8,455 pages
for the counts, 5,186 now (the range of no patient of ix_notifications_patient_id holds the
bench's 15k clinic messages, on every page of the table).

Size at 300k messages: the template's 11.1 MB and the address key's 8.9 MB on SQLite (the
table 47.5 MB), 16.8 and 6.3 MB on PostgreSQL (42.3 MB). Each message queued goes into both
(SQLite, 20k queued ten a transaction: 18 -> 25 us of CPU a message). A status change (each
send) goes into the template's on SQLite, where an update touches only the indexes of the
columns it changes (20k marked sent: 9.5 -> 12.5 us each); on PostgreSQL the status was indexed
already, so such an update wrote every index before too. A change of address (a retry to the
record's address now) goes into the key.

SQLite's batch mode reflects no expression index: a later migration that copies the
notifications table (batch_alter_table with recreate) must create ix_notifications_address_key
again.

Revision ID: 0032
Revises: 0031
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEMPLATE = "ix_notifications_template_id_status"
ADDRESS = "ix_notifications_address_key"
KEY = "to_address"
for char in (" ", "-", "(", ")", ".", "+"):  # db.models.address_key, in its order
    KEY = f"replace({KEY}, '{char}', '')"
KEY = f"lower({KEY})"


def upgrade() -> None:
    op.create_index(TEMPLATE, "notifications", ["template", "id", "status"])
    op.create_index(ADDRESS, "notifications", [sa.text(KEY)])


def downgrade() -> None:
    op.drop_index(ADDRESS, table_name="notifications")
    op.drop_index(TEMPLATE, table_name="notifications")
