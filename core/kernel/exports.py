"""Exports of patient data: always audited, and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([spreadsheet_safe(v) for v in row])
    return buffer.getvalue().encode("utf-8-sig")  # the BOM lets Excel read UTF-8


def record_export(
    session: Session,
    actor: Actor,
    what: str,
    row_count: int,
    filters: dict[str, Any] | None = None,
    *,
    patient_id: int | None = None,
    permission: Permission = Permission.DATA_EXPORT,
) -> None:
    """Check the export permission and write the audit event; call in the export's transaction.
    An export of one patient's data names them in `patient_id`, so the audit log finds it by
    patient like every other event about them. An export without patient data names the
    permission that reads what it holds (the practice file: PRACTICE_READ)."""
    ensure(actor, permission)
    audit.record(
        session,
        actor,
        "export",
        what,
        None,
        patient_id=patient_id,
        details={"rows": row_count, "filters": _stored(filters or {})},
    )


def _stored(filters: dict[str, Any]) -> dict[str, str]:
    """The filters an export used, as text; one not set (None) is left out rather than stored
    as the word 'None', which read as if the export had been filtered on it."""
    return {k: str(v) for k, v in filters.items() if v is not None}
