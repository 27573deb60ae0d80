"""Every chart figure of the cancellation dashboard recomputed by brute force, in Python, from
a small generated history: two clinics (London in pounds, New York in dollars) over weeks that
hold both zones' spring-forward changes, random statuses, providers, services, lead times and
start times (some near midnight): the totals, each weekday, week, weekday × hour cell, lead-time
bucket, SMS split, provider and service, each from the appointments and from the roll-ups, and
the appointments a click on each bar lists; the roll-ups again after status changes, moves and
an import (left out until its batch is finished); and the survey figures (NPS, CSAT, the rating
and 0–10 distributions, the weeks, the groups and the responses behind each group's bar)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import pytest
from sqlalchemy import insert, select

from core.analytics import breakdowns as bd
from core.analytics import cancellation_parts as parts
from core.analytics import cancellation_rollups as rollups
from core.analytics import cancellations as ca
from core.analytics import surveys as sa
from core.interchange import import_batches
from core.interchange.csv_files import ImportReport
from core.kernel.clock import local_to_utc, to_local
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Clinic,
    ImportBatch,
    Provider,
    Service,
    SurveyResponse,
)

S = AppointmentStatus
FIRST, LAST = date(2026, 3, 2), date(2026, 4, 12)  # US DST 8 Mar, UK DST 29 Mar
STATUSES = [S.SCHEDULED, S.CHECKED_IN, S.COMPLETED, S.NO_SHOW, S.CANCELLED, S.DECLINED]
LEADS = [
    timedelta(hours=5),
    timedelta(days=2),
    timedelta(days=5),
    timedelta(days=9),
    timedelta(days=20),
    timedelta(days=45),
]


@pytest.fixture
def history(db, world):
    rng = random.Random(7)
    with db.write() as session:
        ny = Clinic(name="NY", timezone="America/New_York", currency="USD", locale="en-US")
        peel = Service(name="Peel", duration_minutes=30, price_cents=15000)
        two = Provider(name="Dr Two")
        session.add_all([ny, peel, two])
        session.flush()
        clinics = [(world.clinic_id, "Europe/London"), (ny.id, "America/New_York")]
        for _ in range(260):
            clinic, tz = rng.choice(clinics)
            day = FIRST + timedelta(days=rng.randrange(-3, (LAST - FIRST).days + 4))
            at = time(rng.choice([0, 1, 7, 9, 13, 17, 22, 23]), rng.choice([0, 30]))
            start = local_to_utc(day, at, tz)
            status = rng.choice(STATUSES)
            lead = rng.choice(LEADS)
            session.add(
                Appointment(
                    clinic_id=clinic,
                    provider_id=rng.choice([world.provider_id, two.id, None]),
                    patient_id=world.patient_id,
                    service_id=rng.choice([world.service_id, peel.id]),
                    status=status,
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                    booked_at=start - lead,
                    created_at=start - lead,
                    sms_reminder=rng.random() < 0.5,
                    cancelled_at=start - timedelta(hours=3) if status == S.CANCELLED else None,
                    late_cancellation=status == S.CANCELLED and rng.random() < 0.4,
                    kind=AppointmentKind.APPOINTMENT,
                )
            )
    return clinics


def brute(db, filters):
    """Per bar, the ids of the booked appointments behind it."""
    with db.read() as session:
        rows = session.query(Appointment).all()
        zones = dict(session.query(Clinic.id, Clinic.timezone).all())
        bars = defaultdict(set)
        for a in rows:
            if a.kind != AppointmentKind.APPOINTMENT or a.start_at is None:
                continue
            if a.status not in parts.BOOKED:
                continue
            if filters.clinic_id not in (None, a.clinic_id):
                continue
            local = to_local(a.start_at, zones[a.clinic_id])
            if not filters.start <= local.date() <= filters.end:
                continue
            lead = (a.start_at - a.booked_at).total_seconds()
            bucket = next(i for i, (_, b) in enumerate(parts.LEAD_BUCKETS) if b is None or lead < b)
            monday = local.date() - timedelta(days=local.weekday())
            for key in (
                ("all", None),
                ("weekday", local.weekday()),
                ("hour", local.hour),
                ("cell", (local.weekday(), local.hour)),
                ("week", monday.isoformat()),
                ("lead", bucket),
                ("sms", a.sms_reminder),
                ("provider", a.provider_id),
                ("service", a.service_id),
            ):
                bars[key].add(a)
        return bars


def counts(appointments) -> tuple:
    c = [a.status for a in appointments]
    late = sum(1 for a in appointments if a.status == S.CANCELLED and a.late_cancellation)
    return (
        len(c),
        c.count(S.CANCELLED),
        late,
        c.count(S.NO_SHOW),
        c.count(S.COMPLETED) + c.count(S.CHECKED_IN),
    )


def of(c: parts.Counts) -> tuple:
    return c.booked, c.cancelled, c.late, c.no_shows, c.attended


@pytest.mark.parametrize("clinic", [None, 0, 1])
@pytest.mark.parametrize("use_rollups", [False, True])
def test_every_bar_is_its_appointments(db, world, history, clinic, use_rollups):
    filters = parts.AnalyticsFilters(
        FIRST, LAST, None if clinic is None else history[clinic][0], parts=frozenset(parts.PARTS)
    )
    if use_rollups:
        rollups.refresh_job(db, None)
    bars = brute(db, filters)
    with db.read() as session:
        f = ca.compute_figures(session, world.owner, filters, use_rollups=use_rollups)
        assert f.from_rollups == use_rollups
        assert of(f.totals) == counts(bars[("all", None)])
        for w in range(7):
            assert of(f.by_weekday[w]) == counts(bars[("weekday", w)]), w
        assert {c.label: of(c) for c in f.weekly} == {
            k[1]: counts(v) for k, v in bars.items() if k[0] == "week"
        }
        assert {(h.weekday, h.hour): of(h.counts) for h in f.heatmap} == {
            k[1]: counts(v) for k, v in bars.items() if k[0] == "cell"
        }
        assert [of(c) for c in f.by_lead_time] == [
            counts(bars[("lead", i)]) for i in range(len(parts.LEAD_BUCKETS))
        ]
        assert [of(c) for c in f.by_sms] == [
            counts(bars[("sms", True)]),
            counts(bars[("sms", False)]),
        ]
        for group in ("provider", "service"):
            got = {
                g.key: of(g.counts)
                for g in bd.rates_by(session, world.owner, filters, group, use_rollups=use_rollups)
            }
            assert got == {k[1]: counts(v) for k, v in bars.items() if k[0] == group}, group
        for (dimension, value), expected in bars.items():
            if dimension in ("cell", "sms"):
                continue
            frame, total = bd.appointments_behind(session, world.owner, filters, dimension, value)
            assert total == len(expected), (dimension, value)
            assert set(frame["#"]) == {a.id for a in expected}, (dimension, value)


def test_the_roll_ups_follow_changes_moves_and_imports(db, world, history):
    rollups.refresh_job(db, None)
    filters = parts.AnalyticsFilters(FIRST, LAST, parts=frozenset(parts.PARTS))
    rng = random.Random(3)
    with db.write() as session:
        ids = session.scalars(select(Appointment.id)).all()
        for aid in rng.sample(ids, 40):
            a = session.get(Appointment, aid)
            a.status = rng.choice(STATUSES)
            if rng.random() < 0.5:
                a.start_at += timedelta(days=rng.randrange(-9, 9), hours=rng.randrange(-5, 5))
                a.end_at = a.start_at + timedelta(minutes=30)
        batch = ImportBatch(what="appointments", fingerprint="x", clinic_id=world.clinic_id)
        session.add(batch)
        session.flush()
        batch_id = batch.id
        start = datetime(2026, 3, 18, 10, tzinfo=UTC)
        session.execute(
            insert(Appointment),
            [
                dict(
                    clinic_id=world.clinic_id,
                    patient_id=world.patient_id,
                    status=S.NO_SHOW,
                    start_at=start + timedelta(hours=h),
                    end_at=start + timedelta(hours=h, minutes=30),
                    booked_at=start - timedelta(days=3),
                    created_at=start - timedelta(days=3),
                    kind=AppointmentKind.APPOINTMENT,
                    import_batch_id=batch_id,
                )
                for h in range(3)
            ],
        )

    def check():
        bars = brute_unfinished(db, filters)
        with db.read() as session:
            f = ca.compute_figures(session, world.owner, filters)
            assert of(f.totals) == counts(bars[("all", None)])
            assert {c.label: of(c) for c in f.weekly} == {
                k[1]: counts(v) for k, v in bars.items() if k[0] == "week"
            }
            got = {
                g.key: of(g.counts) for g in bd.rates_by(session, world.owner, filters, "service")
            }
            assert got == {k[1]: counts(v) for k, v in bars.items() if k[0] == "service"}

    check()
    rollups.refresh_job(db, None)
    check()
    with db.write() as session:
        import_batches.finish(
            session,
            world.owner,
            batch_id,
            [{"start_at": start}],
            "Europe/London",
            ImportReport("appointments"),
        )
    check()
    rollups.refresh_job(db, None)
    check()


def brute_unfinished(db, filters):
    bars = brute(db, filters)
    with db.read() as session:
        unfinished = {b.id for b in session.query(ImportBatch).all() if b.finished_at is None}
    kept = {k: {a for a in v if a.import_batch_id not in unfinished} for k, v in bars.items()}
    return defaultdict(set, {k: v for k, v in kept.items() if v})


@pytest.mark.parametrize("clinic", [None, 0, 1])
def test_every_survey_figure_is_its_responses(db, world, history, clinic):
    rng = random.Random(11)
    with db.write() as session:
        providers = session.query(Provider.id).all()
        services = session.query(Service.id).all()
        for _ in range(300):
            cid, tz = rng.choice(history)
            day = FIRST + timedelta(days=rng.randrange(-3, (LAST - FIRST).days + 4))
            when = local_to_utc(day, time(rng.choice([0, 6, 12, 19, 23]), 30), tz)
            session.add(
                SurveyResponse(
                    submitted_at=when,
                    nps=rng.choice([None, *range(11)]),
                    rating=rng.choice([None, 1, 2, 3, 4, 5]),
                    clinic_id=cid,
                    provider_id=rng.choice([None, *(p for (p,) in providers)]),
                    service_id=rng.choice([None, *(s for (s,) in services)]),
                    comment=rng.choice(["", "ok", "**bold**"]),
                )
            )
    cid, tz = (None, "Europe/London") if clinic is None else history[clinic]
    f = sa.filter_for_days(FIRST, LAST, tz, cid)
    with db.read() as session:
        rows = [
            r
            for r in session.query(SurveyResponse).all()
            if cid in (None, r.clinic_id) and FIRST <= to_local(r.submitted_at, tz).date() <= LAST
        ]
        s = sa.summary(session, world.owner, f)
        nps = [r.nps for r in rows if r.nps is not None]
        ratings = [r.rating for r in rows if r.rating is not None]
        assert s.responses == len(rows)
        assert s.nps == pytest.approx(
            100 * (sum(n >= 9 for n in nps) - sum(n <= 6 for n in nps)) / len(nps)
        )
        assert s.csat == pytest.approx(100 * sum(r >= 4 for r in ratings) / len(ratings))
        d = bd.distribution(session, world.owner, f)
        assert d.ratings == [ratings.count(v) for v in range(1, 6)]
        assert d.nps == [nps.count(v) for v in range(11)]
        weekly = sa.trend(session, world.owner, f, "week")
        weeks = defaultdict(list)
        for r in rows:
            local = to_local(r.submitted_at, tz).date()
            weeks[local - timedelta(days=local.weekday())].append(r)
        assert [p.date() for p in weekly.period] == sorted(weeks)
        for p, n in zip(weekly.period, weekly.responses, strict=True):
            assert n == len(weeks[p.date()])
        groups = sa.get_groups(session, world.owner, f)
        for name, frame in (("provider", groups.providers), ("service", groups.services)):
            for key, n in zip(frame.id, frame.n, strict=True):
                key = None if key is pd.NA else key
                mine = [
                    r
                    for r in rows
                    if getattr(r, f"{name}_id") == (None if key is None else int(key))
                ]
                assert n == sum(r.rating is not None for r in mine)
                behind, _ = bd.responses_behind(
                    session, world.owner, f, name, None if key is None else int(key)
                )
                assert set(behind.id) == {r.id for r in mine}
