"""an email's files in a table of their own

The outbox row had one attachment column: a confirmation's two files (the check-in QR code and
the visit's .ics) were packed there as one MIME bundle, named by their names together. Each
file is now a row of notification_attachments (position, name, content type, bytes), dropped
with its message. Every file stored moves into rows, bundles unpacked as core.messaging.
attachments read them (frozen here); a sent message, whose bytes were dropped, keeps its files'
names. The two columns go; the downgrade packs the rows back into them.

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
BUNDLE = b"X-ClinicDesk-Files: "  # how a bundle's bytes began (a PNG begins \x89PNG)
NAME_MAX = 120
TYPES = {"png": "image/png", "ics": "text/calendar"}

notifications = sa.table(
    "notifications",
    sa.column("id", sa.Integer),
    sa.column("attachment_name", sa.String),
    sa.column("attachment", sa.LargeBinary),
)
files = sa.table(
    "notification_attachments",
    sa.column("notification_id", sa.Integer),
    sa.column("position", sa.Integer),
    sa.column("name", sa.String),
    sa.column("content_type", sa.String),
    sa.column("content", sa.LargeBinary),
)


def _type(name: str) -> str:
    return TYPES.get(name.rpartition(".")[2].lower(), "application/octet-stream")


def _unpacked(name: str | None, content: bytes | None) -> list[tuple[str, bytes | None]]:
    """The files one row carried: a bundle's, a single file, or (sent) only their names."""
    if not content:
        return [(n, None) for n in (name or "").split(", ") if n]
    if not content.startswith(BUNDLE):
        return [(name or "attachment.png", content)]
    bundle = BytesParser(policy=policy.default).parsebytes(content)
    return [(p.get_filename(), p.get_payload(decode=True)) for p in bundle.iter_attachments()]


def upgrade() -> None:
    op.create_table(
        "notification_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(NAME_MAX), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_attachments_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attachments")),
    )
    op.create_index(
        op.f("ix_notification_attachments_notification_id"),
        "notification_attachments",
        ["notification_id"],
    )
    bind = op.get_bind()
    stored = sa.or_(
        notifications.c.attachment_name.is_not(None), notifications.c.attachment.is_not(None)
    )
    last = 0
    while rows := bind.execute(
        sa.select(notifications)
        .where(stored, notifications.c.id > last)
        .order_by(notifications.c.id)
        .limit(BATCH)
    ).all():
        moved = [
            {
                "notification_id": id_,
                "position": position,
                "name": name[:NAME_MAX],
                "content_type": _type(name),
                "content": content,
            }
            for id_, packed_name, packed in rows
            for position, (name, content) in enumerate(_unpacked(packed_name, packed))
        ]
        if moved:
            bind.execute(files.insert(), moved)
        last = rows[-1][0]
    # in place (SQLite 3.35+): a batch copy would trip the foreign keys that point at the table
    # (notifications has no triggers of its own, db/triggers.py)
    op.execute("ALTER TABLE notifications DROP COLUMN attachment_name")
    op.execute("ALTER TABLE notifications DROP COLUMN attachment")


def _packed(rows: list[tuple[str, bytes | None]]) -> tuple[str, bytes | None]:
    """(attachment_name, attachment) as the column kept them before this revision."""
    names = ", ".join(name for name, _ in rows)[:NAME_MAX]
    if any(content is None for _, content in rows):
        return names, None  # sent: only the names were kept
    if len(rows) == 1:
        return rows[0]
    bundle = EmailMessage()
    bundle["X-ClinicDesk-Files"] = str(len(rows))
    for name, content in rows:
        maintype, _, subtype = _type(name).partition("/")
        bundle.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return names, bundle.as_bytes()


def downgrade() -> None:
    op.add_column("notifications", sa.Column("attachment_name", sa.String(NAME_MAX)))
    op.add_column("notifications", sa.Column("attachment", sa.LargeBinary()))
    bind = op.get_bind()
    last = 0
    while ids := bind.scalars(
        sa.select(files.c.notification_id)
        .where(files.c.notification_id > last)
        .distinct()
        .order_by(files.c.notification_id)
        .limit(BATCH)
    ).all():
        carried: dict[int, list[tuple[str, bytes | None]]] = {id_: [] for id_ in ids}
        for id_, name, content in bind.execute(
            sa.select(files.c.notification_id, files.c.name, files.c.content)
            .where(files.c.notification_id.in_(ids))
            .order_by(files.c.notification_id, files.c.position)
        ):
            carried[id_].append((name, content))
        bind.execute(
            notifications.update()
            .where(notifications.c.id == sa.bindparam("nid"))
            .values(attachment_name=sa.bindparam("name"), attachment=sa.bindparam("content")),
            [
                dict(zip(("name", "content"), _packed(rows), strict=True), nid=id_)
                for id_, rows in carried.items()
            ],
        )
        last = ids[-1]
    op.drop_index(
        op.f("ix_notification_attachments_notification_id"), "notification_attachments"
    )
    op.drop_table("notification_attachments")
