"""The files attached to an email: rows of their own (db.models.NotificationAttachment), one a
file in order, each with its content type (the check-in QR code, the visit's calendar file).
Once the email is sent their bytes are dropped; their names stay, to say what was sent."""

from __future__ import annotations

from db.models import Notification, NotificationAttachment

NAME_MAX = 120  # NotificationAttachment.name
TYPES = {"png": "image/png", "ics": "text/calendar"}

File = tuple[str, bytes]


def content_type(name: str) -> str:
    return TYPES.get(name.rpartition(".")[2].lower(), "application/octet-stream")


def rows(files: list[File]) -> list[NotificationAttachment]:
    """The outbox rows for `files`, in their order."""
    return [
        NotificationAttachment(
            position=position, name=name[:NAME_MAX], content_type=content_type(name), content=data
        )
        for position, (name, data) in enumerate(files)
    ]


def files_of(notification: Notification) -> list[File]:
    """The files `notification` still carries (none once sent: delivery drops their bytes)."""
    return [(a.name, a.content) for a in notification.attachments if a.content is not None]


def names_of(notification: Notification) -> str | None:
    """The names of the files `notification` carries or carried, together."""
    return ", ".join(a.name for a in notification.attachments) or None
