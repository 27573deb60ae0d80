"""Glue between `python -m core.cli stats` and the analytics code: the figures printed are the
ones the Cancellations page shows, computed by `core.analytics.cancellations.compute_figures`."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.analytics import cancellations as analytics
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import DomainError
from db.models import Appointment


def figures(
    session: Session,
    actor: Actor,
    *,
    since: date | None = None,
    until: date | None = None,
    clinic_id: int | None = None,
) -> Any:
    """The cancellation / no-show figures for clinic-local days since..until (default: the
    three years up to the last appointment, the longest range the analytics page allows)."""
    ensure(actor, Permission.ANALYTICS_READ)  # before anything is read, the dates included
    if since is None or until is None:
        first, last = session.execute(
            select(func.min(Appointment.start_at), func.max(Appointment.start_at))
        ).one()
        if last is None:
            raise DomainError("There are no appointments yet, so there are no figures.")
        until = until or last.date() + timedelta(days=1)
        since = since or max(
            first.date() - timedelta(days=1), until - timedelta(days=analytics.MAX_RANGE_DAYS)
        )
    filters = analytics.AnalyticsFilters(start=since, end=until, clinic_id=clinic_id)
    return analytics.compute_figures(session, actor, filters)


def plain(value: Any) -> Any:
    """Figures as JSON-ready values (dataclasses, DataFrames, dates, enums)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("cancellation_rate", "late_cancellation_rate", "no_show_rate"):
            if isinstance(getattr(type(value), name, None), property):  # the page's rates too
                data[name] = plain(getattr(value, name))
        return data
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame
        return [plain(r) for r in value.to_dict(orient="records")]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def render(result: Any, *, as_json: bool) -> str:
    data = plain(result)
    if as_json:
        return json.dumps(data, indent=2, ensure_ascii=False, default=str)
    lines = []
    for key, value in data.items() if isinstance(data, dict) else []:
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"  {row}" for row in value[:20]]
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)
