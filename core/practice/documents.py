"""Documents attached to a service: a questionnaire (short typed questions), a consent text and
pre-treatment instructions. Versioned: saving adds version + 1 and deactivates the previous one,
so answers and signatures keep pointing at the text the patient saw. Sending them after booking
belongs to messaging."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import NotFound, ValidationError
from db.models import DocumentKind, Service, ServiceDocument

QUESTION_TYPES = ("text", "yes_no", "choice", "number")
KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_QUESTIONS = 30


@dataclass(frozen=True)
class DocumentRow:
    id: int
    service_id: int
    kind: DocumentKind
    title: str
    body: str
    questions: list[dict[str, Any]]
    version: int
    active: bool
    created_by: str


def check_questions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The questions in their stored shape, or a ValidationError naming the first bad one."""
    if len(questions) > MAX_QUESTIONS:
        raise ValidationError(f"Keep a questionnaire to {MAX_QUESTIONS} questions.")
    clean, keys = [], set()
    for n, q in enumerate(questions, start=1):
        key, label = str(q.get("key", "")).strip(), str(q.get("label", "")).strip()
        kind = q.get("type", "text")
        if not KEY.match(key):
            raise ValidationError(
                f"Question {n}: the key must be lower-case letters, digits or _ (e.g. allergies)."
            )
        if key in keys:
            raise ValidationError(f"Question {n}: the key {key!r} is used twice.")
        if not label:
            raise ValidationError(f"Question {n}: give the question's text.")
        if q.get("unread"):
            raise ValidationError(
                f"Question {n}: {q['unread'][0]!r} is not understood; write each question as "
                f"{LINE_FORMAT}."
            )
        if kind not in QUESTION_TYPES:
            raise ValidationError(
                f"Question {n}: the type must be one of {', '.join(QUESTION_TYPES)}."
            )
        options = [str(o).strip() for o in q.get("options", []) if str(o).strip()]
        if kind == "choice" and len(options) < 2:
            raise ValidationError(f"Question {n}: a choice question needs at least two options.")
        keys.add(key)
        clean.append(
            {
                "key": key,
                "label": label,
                "type": kind,
                "options": options if kind == "choice" else [],
                "required": bool(q.get("required", False)),
            }
        )
    return clean


LINE_FORMAT = "key | question | type | options separated by ; | required"


def parse_question_lines(text: str) -> list[dict[str, Any]]:
    """Questions typed one per line as `key | question | type | options;… | required`. After
    the type, "required" may stand anywhere (`allergies | Any allergies? | yes_no | required`
    leaves the options out); a part that is neither the options nor "required" is refused by
    check_questions, naming the format."""
    found = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")] + ["", ""]
        required, rest = False, []
        for position, part in enumerate(parts[3:], start=3):
            word = part.lower()
            if word == "required" or (position == 4 and word in {"yes", "true"}):
                required = True
            elif word not in {"", "optional"}:
                rest.append(part)
        found.append(
            {
                "key": parts[0],
                "label": parts[1],
                "type": parts[2] or "text",
                "options": [o for o in (rest[0] if rest else "").split(";") if o.strip()],
                "required": required,
            }
            | ({"unread": rest[1:]} if len(rest) > 1 else {})
        )
    return found


def save_document(
    session: Session,
    actor: Actor,
    service_id: int,
    kind: DocumentKind | str,
    title: str,
    body: str = "",
    questions: list[dict[str, Any]] | None = None,
) -> int:
    """A new version of the service's document of this kind (the previous one is kept,
    inactive). Returns the new row's id; nothing is written when nothing changed."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    kind = DocumentKind(kind)
    if session.get(Service, service_id) is None:
        raise NotFound(f"There is no service #{service_id}.")
    title, body = (title or "").strip(), (body or "").strip()
    if not title or len(title) > 200:
        raise ValidationError("Give the document a title of at most 200 characters.")
    clean = check_questions(questions or [])
    if kind == DocumentKind.QUESTIONNAIRE and not clean:
        raise ValidationError("A questionnaire needs at least one question.")
    if kind != DocumentKind.QUESTIONNAIRE and not body:
        raise ValidationError(f"Write the {kind.value} text.")
    current = current_document(session, service_id, kind)
    if current and (current.title, current.body, current.questions) == (title, body, clean):
        return current.id
    version = (
        session.scalar(
            select(func.max(ServiceDocument.version)).where(
                ServiceDocument.service_id == service_id, ServiceDocument.kind == kind
            )
        )
        or 0
    ) + 1
    session.execute(
        update(ServiceDocument)
        .where(ServiceDocument.service_id == service_id, ServiceDocument.kind == kind)
        .values(active=False)
    )
    row = ServiceDocument(
        service_id=service_id,
        kind=kind,
        title=title,
        body=body,
        questions=clean,
        version=version,
        active=True,
        created_by=actor.label,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "service_document.saved",
        "service_document",
        row.id,
        message=title,
        details={"service_id": service_id, "kind": kind.value, "version": version},
    )
    return row.id


def current_document(
    session: Session, service_id: int, kind: DocumentKind
) -> ServiceDocument | None:
    return session.scalar(
        select(ServiceDocument).where(
            ServiceDocument.service_id == service_id,
            ServiceDocument.kind == kind,
            ServiceDocument.active.is_(True),
        )
    )


def list_documents(
    session: Session, actor: Actor, service_id: int, *, all_versions: bool = False
) -> list[DocumentRow]:
    ensure(actor, Permission.PRACTICE_READ)
    query = select(ServiceDocument).where(ServiceDocument.service_id == service_id)
    if not all_versions:
        query = query.where(ServiceDocument.active.is_(True))
    rows = session.scalars(query.order_by(ServiceDocument.kind, ServiceDocument.version.desc()))
    return [
        DocumentRow(
            d.id,
            d.service_id,
            d.kind,
            d.title,
            d.body,
            list(d.questions or []),
            d.version,
            d.active,
            d.created_by,
        )
        for d in rows
    ]


def preview(document: DocumentRow) -> str:
    """Plain text as the patient will read it (the page shows it with st.text, never Markdown)."""
    lines = [f"{document.title} (version {document.version})", ""]
    if document.body:
        lines += [document.body, ""]
    words = {"text": "free text", "yes_no": "yes / no", "number": "a number"}
    for n, q in enumerate(document.questions, start=1):
        answer = " / ".join(q["options"]) if q["type"] == "choice" else words[q["type"]]
        required = " (required)" if q["required"] else ""
        lines.append(f"{n}. {q['label']}{required} — {answer}")
    return "\n".join(lines).rstrip()
