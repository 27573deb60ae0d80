"""The dashboards' breakdowns and drill-downs: cancellation and no-show rates by provider and
service, the appointments behind one bar (or heatmap cell) of any cancellation chart, the
survey rating distribution and the responses behind one bar of a survey chart.

Everything is aggregated in SQL over the same filters as core.analytics.cancellations (the rates
by provider and service from its roll-ups where it can, otherwise one grouped query per
breakdown; a drill-down reads at most `limit` rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from core.analytics import cancellation_rollups
from core.analytics import surveys as sa
from core.analytics.cancellation_parts import (
    BOOKED,
    LEAD_BUCKETS,
    AnalyticsFilters,
    Counts,
    S,
    scope_of,
    service_or_package,
    validate_filters,
    when_values,
    where_clauses,
)
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import to_local
from core.kernel.errors import ValidationError
from core.scheduling.states import STATUS_WORDS
from db.models import Appointment, Clinic, Package, Patient, Provider, Service, SurveyResponse

# the group's key in SQL (0: none recorded); by service, a visit booked as a package is keyed
# minus its package's id: the package is its own bar ("Package: …"), not its first service's
GROUPS = {
    "provider": lambda: func.coalesce(Appointment.provider_id, 0),
    "service": service_or_package,
}
PACKAGE = "Package: "  # a package's bar is labelled with its name after this
DIMENSIONS = ("weekday", "hour", "cell", "week", "lead", "provider", "service", "package", "all")
# what a bar counts: the cancellation rate is over the bookings, the no-show rate over the
# visits due (no-shows and attended); the list behind a bar is that bar's n, no more
COUNTED = {"booked": BOOKED, "due": (S.NO_SHOW, S.COMPLETED, S.CHECKED_IN)}
TOP = 15  # groups shown per chart (the largest by bookings); the rest are summed as "Others"


def _core5(a=Appointment):
    cancelled = a.status == S.CANCELLED
    return [
        func.sum(case((a.status.in_(BOOKED), 1), else_=0)),
        func.sum(case((cancelled, 1), else_=0)),
        func.sum(case((and_(cancelled, a.late_cancellation), 1), else_=0)),
        func.sum(case((a.status == S.NO_SHOW, 1), else_=0)),
        func.sum(case((a.status.in_((S.COMPLETED, S.CHECKED_IN)), 1), else_=0)),
    ]


@dataclass(frozen=True)
class Group:
    """One bar group: its key (None for "not recorded" or "Others"), its counts and what it
    is (`appointments_behind`'s dimension: provider, service, or package among the
    services)."""

    key: int | None
    counts: Counts
    dimension: str = ""


def rates_by(
    session: Session,
    actor: Actor,
    filters: AnalyticsFilters,
    group: str,
    *,
    use_rollups: bool = True,
    top: int | None = TOP,
) -> list[Group]:
    """Cancellation and no-show counts per provider or service, largest first: from the
    maintained roll-ups when no provider or service is chosen (the days whose roll-ups lag
    taken from the appointments), otherwise in one grouped query over the appointments.
    By service, each package booked is its own group ("Package: name", dimension "package"):
    its visits are not counted under its first service, and every visit is in one group.
    Beyond the `top` largest (None: no limit), the rest are summed as "Others"."""
    ensure(actor, Permission.ANALYTICS_READ)
    validate_filters(filters)
    if group not in GROUPS:
        raise ValidationError(f"Choose a breakdown by {' or '.join(GROUPS)}.")
    scope = scope_of(session, filters, periods_too=False)
    lagging = cancellation_rollups.usable_for(session, filters, use_rollups)
    if lagging is None:
        key = GROUPS[group]().label("key")
        query = (
            select(key, *_core5())
            .where(*where_clauses(scope, filters), Appointment.status.in_(BOOKED))
            .group_by(key)
        )
        counted = {int(k): values for k, *values in session.execute(query)}
    else:
        clinics = [c for c, _ in scope.clinics]
        counted = cancellation_rollups.read_groups(session, group, filters, clinics, lagging)
    model = Provider if group == "provider" else Service
    names = _names(session, model, [k for k in counted if k > 0])
    packages = _names(session, Package, [-k for k in counted if k < 0])
    groups = []
    for k, values in counted.items():
        if k < 0:
            name, key, dimension = PACKAGE + packages.get(-k, "(not recorded)"), -k, "package"
        else:
            name, key, dimension = names.get(k, "(not recorded)"), k or None, group
        counts = Counts(name)
        counts.add(*(int(v or 0) for v in values))
        groups.append(Group(key, counts, dimension))
    groups.sort(key=lambda g: (-g.counts.booked, g.counts.label))
    if top is not None and len(groups) > top:
        rest = Counts("Others")
        for g in groups[top - 1 :]:
            c = g.counts
            rest.add(c.booked, c.cancelled, c.late, c.no_shows, c.attended)
        groups = [*groups[: top - 1], Group(None, rest)]
    return groups


def _names(session: Session, model, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def _week_days(monday_iso: str) -> tuple[int, int]:
    first = (date.fromisoformat(monday_iso) - date(1970, 1, 1)).days
    return first, first + 6


def appointments_behind(
    session: Session,
    actor: Actor,
    filters: AnalyticsFilters,
    dimension: str,
    value: int | str | None,
    limit: int = 200,
    counted: str = "booked",
) -> tuple[pd.DataFrame, int]:
    """The appointments behind one bar: `dimension` is weekday (0 = Monday), hour, cell (the
    heatmap's (weekday, hour)), week (its Monday, ISO), lead (bucket index), provider or
    service (id; None = not recorded; a service's visits booked alone, as its bar counts),
    package (id: the visits booked as that package) or all;
    `counted` is the bar's n (COUNTED): "booked" for a cancellation rate, "due" (no-shows and
    attended) for a no-show rate. Newest first, at most `limit` rows, and how many there are
    in all; each start in its clinic's time, beside the clinic's name."""
    ensure(actor, Permission.ANALYTICS_READ)
    validate_filters(filters)
    if dimension not in DIMENSIONS:
        raise ValidationError(f"Unknown breakdown {dimension!r}.")
    if counted not in COUNTED:
        raise ValidationError(f"Choose what the bar counts: {' or '.join(COUNTED)}.")
    dialect = session.get_bind().dialect.name
    scope = scope_of(session, filters)
    a = Appointment
    daynum, hour, lead = when_values(dialect, scope)
    inner = (
        select(
            a.id.label("id"),
            a.start_at.label("start_at"),
            a.status.label("status"),
            a.late_cancellation.label("late"),
            a.patient_id.label("patient_id"),
            a.provider_id.label("provider_id"),
            a.service_id.label("service_id"),
            a.package_id.label("package_id"),
            a.clinic_id.label("clinic_id"),
            daynum,
            hour,
            lead,
        )
        .outerjoin(Service, Service.id == a.service_id)
        .where(*where_clauses(scope, filters), a.status.in_(COUNTED[counted]))
        .subquery()
    )
    i = inner.c

    def cell(v) -> Any:
        weekday, hour = (int(x) for x in v)
        return and_((i.daynum + 3) % 7 == weekday, i.hour == hour)

    condition = {
        "weekday": lambda v: (i.daynum + 3) % 7 == int(v),
        "hour": lambda v: i.hour == int(v),
        "cell": cell,
        "week": lambda v: i.daynum.between(*_week_days(str(v))),
        "lead": lambda v: i.lead == int(v),
        "provider": lambda v: i.provider_id.is_(None) if v is None else i.provider_id == int(v),
        "service": lambda v: and_(
            i.package_id.is_(None),
            i.service_id.is_(None) if v is None else i.service_id == int(v),
        ),
        "package": lambda v: i.package_id == int(v),
        "all": lambda v: True,
    }[dimension](value)
    total = int(session.scalar(select(func.count()).select_from(inner).where(condition)) or 0)
    query = (
        select(
            i.id,
            i.start_at,
            i.status,
            i.late,
            Clinic.timezone,
            Clinic.name,
            Patient.first_name,
            Patient.last_name,
            Provider.name,
            Service.name,
            Package.name,
        )
        .select_from(inner)
        .join(Clinic, Clinic.id == i.clinic_id)
        .outerjoin(Patient, Patient.id == i.patient_id)
        .outerjoin(Provider, Provider.id == i.provider_id)
        .outerjoin(Service, Service.id == i.service_id)
        .outerjoin(Package, Package.id == i.package_id)
        .where(condition)
        .order_by(i.start_at.desc(), i.id.desc())
        .limit(limit)
    )
    rows = [
        {
            "#": r[0],
            "Start": to_local(r[1], r[4]).replace(tzinfo=None),
            "Clinic": r[5],  # whose time the start is in (all clinics: several zones)
            # as the calendar names the state ('no-show'), not its stored value ('no_show')
            "Status": STATUS_WORDS[r[2]] + (" (late)" if r[3] else ""),
            "Patient": f"{r[6] or ''} {r[7] or ''}".strip(),
            "Provider": r[8] or "",
            # a package's visit by its package, as the by-service chart counts it
            "Service": PACKAGE + r[10] if r[10] else r[9] or "",
        }
        for r in session.execute(query)
    ]
    columns = ["#", "Start", "Clinic", "Status", "Patient", "Provider", "Service"]
    return pd.DataFrame(rows, columns=columns), total


LEAD_LABELS = [label for label, _ in LEAD_BUCKETS]


# ---------------------------------------------------------------- surveys

R = SurveyResponse


@dataclass(frozen=True)
class Distribution:
    ratings: list[int]  # count of each star, 1..5
    nps: list[int]  # count of each answer, 0..10


def distribution(session: Session, actor: Actor, f: sa.SurveyFilter) -> Distribution:
    """How many responses gave each star rating and each 0–10 answer (one query)."""
    ensure(actor, Permission.ANALYTICS_READ)
    return Distribution(*sa.answer_counts(session, sa.with_service(session, f)))


def _is(column, value):
    return column.is_(None) if value is None else column == int(value)


# the responses a survey bar counts: by service, a service's are those of visits booked as
# that service alone; a package's (its own bar) those of visits booked as the package
SURVEY_DIMENSIONS = {
    "provider": lambda v: _is(R.provider_id, v),
    "service": lambda v: and_(R.package_id.is_(None), _is(R.service_id, v)),
    "package": lambda v: R.package_id == int(v),
    "rating": lambda v: _is(R.rating, v),
}


def responses_behind(
    session: Session,
    actor: Actor,
    f: sa.SurveyFilter,
    dimension: str,
    value: int | None,
    limit: int = 200,
) -> tuple[pd.DataFrame, int]:
    """The responses behind one bar of a survey chart (provider, service or package id — a
    service's bar is its visits booked alone, a package's those booked as it — or a star
    rating) under the filter (a service's: of visits holding it), newest first, at most
    `limit` of them, and how many there are in all (counted only when there are more than
    `limit`); comments are patient text, for st.dataframe only."""
    ensure(actor, Permission.ANALYTICS_READ)
    if dimension not in SURVEY_DIMENSIONS:
        raise ValidationError(f"Unknown breakdown {dimension!r}.")
    if dimension == "package" and value is None:
        raise ValidationError("Choose the package whose responses to list.")
    condition = SURVEY_DIMENSIONS[dimension](value)
    f = sa.with_service(session, f)
    query = sa.feed_query(f).where(condition).order_by(R.submitted_at.desc(), R.id.desc())
    rows = list(session.execute(query.limit(limit + 1)))
    total = len(rows)
    if total > limit:
        counted = sa.apply_filter(select(func.count()).select_from(R).where(condition), f)
        total = int(session.scalar(counted) or 0)
    return sa.feed_frame(session, rows[:limit]), total
