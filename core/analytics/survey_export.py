"""The survey responses of a filter as spreadsheet-safe CSV, for the owner's own analysis;
every export is audited. A response's service is what its visit was booked as: a package's
by the package ("Package: name"), as the figures by service count it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.analytics.surveys import R, SurveyFilter, apply_filter, service_label, with_service
from core.kernel import exports
from core.kernel.authz import Actor, Permission, ensure
from db.models import Clinic, Package, Provider, Service

EXPORT_HEADER = [
    "response_id",
    "submitted_at_utc",
    "appointment_id",
    "clinic",
    "provider",
    "service",
    "nps",
    "rating",
    "answers",
    "comment",
    "source",
]


def export_csv(session: Session, actor: Actor, f: SurveyFilter) -> bytes:
    """The responses of the filter as spreadsheet-safe CSV (a service's: those to visits
    holding it; a provider's: those recording the provider); audited (needs data export)."""
    ensure(actor, Permission.ANALYTICS_READ)
    f = with_service(session, f)
    query = apply_filter(
        select(
            R.id,
            R.submitted_at,
            R.appointment_id,
            Clinic.name,
            Provider.name,
            R.nps,
            R.rating,
            R.answers,
            R.comment,
            R.source,
            Service.name,
            Package.name,
        )
        .outerjoin(Clinic, Clinic.id == R.clinic_id)
        .outerjoin(Provider, Provider.id == R.provider_id)
        .outerjoin(Service, Service.id == R.service_id)
        .outerjoin(Package, Package.id == R.package_id),
        f,
    ).order_by(R.submitted_at, R.id)
    rows = [
        [
            r[0],
            r[1].isoformat(),
            r[2],
            r[3] or "",
            r[4] or "",
            service_label(r[10], r[11]),
            r[5],
            r[6],
            ";".join(f"{k}={v}" for k, v in sorted((r[7] or {}).items())),
            r[8],
            r[9],
        ]
        for r in session.execute(query.execution_options(yield_per=2000))
    ]
    exports.record_export(
        session,
        actor,
        "survey_responses",
        len(rows),
        {
            "since": f.since,
            "until": f.until,
            "clinic_id": f.clinic_id,
            "provider_id": f.provider_id,
            "service_id": f.service_id,
        },
    )
    return exports.to_csv(EXPORT_HEADER, rows)
