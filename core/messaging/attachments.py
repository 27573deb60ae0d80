"""The files attached to an email: rows of their own (db.models.NotificationAttachment), one a
file in order, each with its content type (the check-in QR code, the visit's calendar file, a
document the caller hands over). Once the email is sent their bytes are dropped; their names
stay, to say what was sent.

An email carries at most MAX_FILES files, none over FILE_MAX_BYTES and all together at most
MESSAGE_MAX_BYTES (sent in base64, a third larger: within the 20-25 MB most mail servers take).
Each name is a plain file name (no folder, no line break, at most NAME_MAX characters, never
cut: a cut name loses its extension) and differs from the others'; `check` says which file
breaks which rule and what to do. A text file (.txt, .ics) is UTF-8, and its part says so.
"""

from __future__ import annotations

from core.kernel.errors import ValidationError
from db.models import Notification, NotificationAttachment

NAME_MAX = 120  # NotificationAttachment.name
MAX_FILES = 10
FILE_MAX_BYTES = 5 * 1024 * 1024
MESSAGE_MAX_BYTES = 10 * 1024 * 1024
TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "ics": "text/calendar",
}

File = tuple[str, bytes]


def content_type(name: str) -> str:
    return TYPES.get(name.rpartition(".")[2].lower(), "application/octet-stream")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def check(files: list[File]) -> None:
    """Refuse, saying what to fix, files one email cannot carry (see the module)."""
    if len(files) > MAX_FILES:
        raise ValidationError(
            f"An email can carry at most {MAX_FILES} files, not {len(files)}: send the others "
            "in another message."
        )
    seen: set[str] = set()
    for name, data in files:
        shown = name if len(name) <= 60 else f"{name[:57]}..."
        if not name.strip():
            raise ValidationError("A file attached to an email needs a name (instructions.pdf).")
        if any(ch in name for ch in "/\\") or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise ValidationError(
                f"The file name {shown!r} holds a folder separator or a control character: "
                "give the file a plain name (instructions.pdf)."
            )
        if len(name) > NAME_MAX:
            raise ValidationError(
                f"The file name {shown!r} is {len(name)} characters long; at most {NAME_MAX}: "
                "shorten it, keeping its extension."
            )
        if name.casefold() in seen:
            raise ValidationError(
                f"Two files are named {shown!r}: the files of one email need different names."
            )
        seen.add(name.casefold())
        if not data:
            raise ValidationError(f"The file {shown!r} is empty: attach the file itself.")
        if len(data) > FILE_MAX_BYTES:
            raise ValidationError(
                f"The file {shown!r} is {_megabytes(len(data))}; a file sent by email may be at "
                f"most {_megabytes(FILE_MAX_BYTES)}: send a smaller one, or a link to it."
            )
    total = sum(len(data) for _, data in files)
    if total > MESSAGE_MAX_BYTES:
        raise ValidationError(
            f"The files come to {_megabytes(total)} together; one email may carry at most "
            f"{_megabytes(MESSAGE_MAX_BYTES)}: send some of them in another message."
        )


def rows(files: list[File]) -> list[NotificationAttachment]:
    """The outbox rows for `files`, in their order (checked first: see `check`)."""
    check(files)
    return [
        NotificationAttachment(
            position=position, name=name, content_type=content_type(name), content=data
        )
        for position, (name, data) in enumerate(files)
    ]


def files_of(notification: Notification) -> list[File]:
    """The files `notification` still carries (none once sent: delivery drops their bytes)."""
    return [(a.name, a.content) for a in notification.attachments if a.content is not None]


def names_of(notification: Notification) -> str | None:
    """The names of the files `notification` carries or carried, together."""
    return ", ".join(a.name for a in notification.attachments) or None
