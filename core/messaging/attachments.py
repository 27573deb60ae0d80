"""The files attached to an email. The outbox row has one attachment column: a single file is
kept there as it is (the check-in QR code), several (a confirmation's QR code and its calendar
file) as one MIME bundle that `files_of` reads back, named by their names together."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

BUNDLE = b"X-ClinicDesk-Files: "  # how a bundle's bytes begin (a PNG begins \x89PNG)
NAME_MAX = 120  # Notification.attachment_name
TYPES = {"png": ("image", "png"), "ics": ("text", "calendar")}

File = tuple[str, bytes]


def content_type(name: str) -> tuple[str, str]:
    return TYPES.get(name.rpartition(".")[2].lower(), ("application", "octet-stream"))


def pack(files: list[File]) -> tuple[str | None, bytes | None]:
    """(attachment_name, attachment) for the outbox row."""
    if not files:
        return None, None
    if len(files) == 1:
        return files[0]
    bundle = EmailMessage()
    bundle["X-ClinicDesk-Files"] = str(len(files))
    for name, content in files:
        maintype, subtype = content_type(name)
        bundle.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return ", ".join(name for name, _ in files)[:NAME_MAX], bundle.as_bytes()


def files_of(name: str | None, content: bytes | None) -> list[File]:
    """The files an outbox row carries (none once sent: delivery drops them)."""
    if not content:
        return []
    if not content.startswith(BUNDLE):
        return [(name or "attachment.png", content)]
    bundle = BytesParser(policy=policy.default).parsebytes(content)
    return [(p.get_filename(), p.get_payload(decode=True)) for p in bundle.iter_attachments()]
