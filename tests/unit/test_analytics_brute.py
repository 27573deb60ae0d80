"""Every chart figure of the cancellation dashboard recomputed by brute force, in Python, from
a small generated history: two clinics (London in pounds, New York in dollars) over weeks that
hold both zones' spring-forward changes, random statuses, providers, services (some visits
booked as a package: its own bar by service), lead times and start times (some near midnight):
the totals, each weekday, week, weekday × hour cell, lead-time bucket, SMS split, provider and
service, each from the appointments and from the roll-ups, and
the appointments a click on each bar (and heatmap cell) lists; the roll-ups again after status
changes, moves and an import (left out until its batch is finished); and the survey figures
(NPS, CSAT, the rating and 0–10 distributions, the weeks, the groups — by service, a package's
responses its own group — and the responses behind each group's bar)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import selectinload

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
    AppointmentService,
    AppointmentStatus,
    Clinic,
    ImportBatch,
    Package,
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
        packages = [Package(name="Peel day", price_cents=20000), Package(name="Both")]
        session.add_all([ny, peel, two, *packages])
        session.flush()
        clinics = [(world.clinic_id, "Europe/London"), (ny.id, "America/New_York")]
        for _ in range(260):
            clinic, tz = rng.choice(clinics)
            day = FIRST + timedelta(days=rng.randrange(-3, (LAST - FIRST).days + 4))
            at = time(rng.choice([0, 1, 7, 9, 13, 17, 22, 23]), rng.choice([0, 30]))
            start = local_to_utc(day, at, tz)
            status = rng.choice(STATUSES)
            lead = rng.choice(LEADS)
            package = rng.choice([None, None, None, *packages])
            first = rng.choice([world.service_id, peel.id])
            visit = Appointment(
                package_id=package and package.id,
                clinic_id=clinic,
                provider_id=rng.choice([world.provider_id, two.id, None]),
                patient_id=world.patient_id,
                service_id=first,
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
            # its services: a package's (or, one in five others, several booked together) are
            # the first and the other one after it
            listed = [first]
            if package or rng.random() < 0.2:
                listed.append(peel.id if first == world.service_id else world.service_id)
            for position, service_id in enumerate(listed):
                visit.services.append(AppointmentService(service_id=service_id, position=position))
            session.add(visit)
    return clinics


def brute(db, filters):
    """Per bar, the ids of the booked appointments behind it."""
    with db.read() as session:
        rows = session.scalars(select(Appointment).options(selectinload(Appointment.services)))
        zones = dict(session.query(Clinic.id, Clinic.timezone).all())
        bars = defaultdict(set)
        for a in rows:
            if a.kind != AppointmentKind.APPOINTMENT or a.start_at is None:
                continue
            if a.status not in parts.BOOKED:
                continue
            if filters.clinic_id not in (None, a.clinic_id):
                continue
            # a service filter: every visit holding it, booked as it, as a package or with others
            if filters.service_id not in (None, *(x.service_id for x in a.services)):
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
                ("package", a.package_id) if a.package_id else ("service", a.service_id),
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


def test_every_bar_is_its_appointments(db, world, history):
    """From the appointments, then from the roll-ups; all clinics, then each (one history).
    The list behind a bar is always read from the appointments (appointments_behind has no
    roll-up path): read once per bar and filter, it is checked against the brute force and
    against both passes' bars and heatmap cells."""
    listed = {}
    for use_rollups in (False, True):
        if use_rollups:
            rollups.refresh_job(db, None)
        for clinic in (None, 0, 1):
            check_bars(db, world, history, clinic, use_rollups, listed=listed)


def test_a_service_filter_is_every_visit_holding_it(db, world, history):
    """Filtered by a service: the visits booked as it, and those booked as a package holding
    it or with it among several services, wherever it comes in them (before: only the visits
    it came first in; a package's second service never found its package's visits)."""
    with db.read() as session:
        services = session.scalars(select(Service.id)).all()
    for service_id in services:
        for clinic in (None, 0):
            check_bars(db, world, history, clinic, False, service_id)


def check_bars(db, world, history, clinic, use_rollups, service_id=None, listed=None):
    """Every figure against the brute force; `listed` keeps the lists behind the bars read
    (by filters and bar) for a second pass over the same appointments."""
    listed = {} if listed is None else listed
    filters = parts.AnalyticsFilters(
        FIRST,
        LAST,
        None if clinic is None else history[clinic][0],
        service_id=service_id,
        parts=frozenset(parts.PARTS),
    )
    bars = brute(db, filters)
    with db.read() as session:
        f = ca.compute_figures(session, world.owner, filters, use_rollups=use_rollups)
        assert f.from_rollups == use_rollups
        assert bars[("all", None)], "the filter leaves something to count"
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
        for group, dimensions in (("provider", {"provider"}), ("service", {"service", "package"})):
            got = {
                (g.dimension, g.key): of(g.counts)
                for g in bd.rates_by(session, world.owner, filters, group, use_rollups=use_rollups)
            }
            assert got == {k: counts(v) for k, v in bars.items() if k[0] in dimensions}, group
        cells = {(h.weekday, h.hour): h.counts.booked for h in f.heatmap}
        for (dimension, value), expected in bars.items():
            if dimension == "sms":
                continue
            key = (filters, dimension, value)
            if key not in listed:
                listed[key] = bd.appointments_behind(
                    session, world.owner, filters, dimension, value
                )
            frame, total = listed[key]
            assert total == len(expected), (dimension, value)
            assert set(frame["#"]) == {a.id for a in expected}, (dimension, value)
            if dimension == "cell":  # a heatmap cell lists as many as its rate is over
                assert total == cells.pop(value), value
        assert not cells  # every cell drawn lists its bookings


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
                (g.dimension, g.key): of(g.counts)
                for g in bd.rates_by(session, world.owner, filters, "service")
            }
            assert got == {k: counts(v) for k, v in bars.items() if k[0] in ("service", "package")}

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


LONDON, NEW_YORK = "Europe/London", "America/New_York"
NY_EVENING = date(2026, 3, 31), time(22)  # 22:00 EDT on 31 March is 03:00 BST on 1 April


@pytest.fixture
def responses(db, world, history):
    """Survey responses at both clinics and of no clinic (taken by the practice's London days),
    near midnight too, one of them New York's at 22:00 on 31 March; a completed visit at the
    moment of half of them, for the funnel."""
    rng = random.Random(11)
    with db.write() as session:
        providers = [p for (p,) in session.query(Provider.id)]
        services = [s for (s,) in session.query(Service.id)]
        packages = [p for (p,) in session.query(Package.id)]
        moments = [(history[1][0], local_to_utc(*NY_EVENING, NEW_YORK))]
        for _ in range(300):
            cid, tz = rng.choice([*history, (None, LONDON)])
            day = FIRST + timedelta(days=rng.randrange(-3, (LAST - FIRST).days + 4))
            moments.append((cid, local_to_utc(day, time(rng.choice([0, 6, 12, 19, 23]), 30), tz)))
        for i, (cid, when) in enumerate(moments):
            session.add(
                SurveyResponse(
                    submitted_at=when,
                    nps=rng.choice([None, *range(11)]),
                    rating=rng.choice([None, 1, 2, 3, 4, 5]),
                    clinic_id=cid,
                    provider_id=rng.choice([None, *providers]),
                    service_id=rng.choice([None, *services]),
                    # a visit booked as a package: the package's own group by service
                    package_id=rng.choice([None, None, *packages]),
                    comment="late evening" if i == 0 else rng.choice(["", "ok", "**bold**"]),
                )
            )
            if cid is not None and rng.random() < 0.5:
                session.add(
                    Appointment(
                        clinic_id=cid,
                        patient_id=world.patient_id,
                        status=S.COMPLETED,
                        start_at=when,
                        end_at=when + timedelta(minutes=30),
                        kind=AppointmentKind.APPOINTMENT,
                    )
                )
    return history


def survey_filter(history, clinic, last):
    """The page's filter: all clinics on the practice's (London's) days, each clinic's
    responses on its own."""
    cid, tz = (None, LONDON) if clinic is None else history[clinic]
    return sa.filter_for_days(FIRST, last, tz, cid, zones=history)


def brute_surveys(db, clinic_id, last, unassigned=True):
    """The responses in the range, each on its own clinic's day (no clinic: London's), with
    that day; and how many completed visits the same way."""
    with db.read() as session:
        zones = dict(session.query(Clinic.id, Clinic.timezone).all())
        found = []
        for r in session.query(SurveyResponse).all():
            day = to_local(r.submitted_at, zones.get(r.clinic_id, LONDON)).date()
            mine = clinic_id == r.clinic_id or (clinic_id is None and unassigned)
            if mine and FIRST <= day <= last:
                found.append((r, day))
        visits = sum(
            1
            for a in session.query(Appointment).filter(Appointment.status == S.COMPLETED)
            if clinic_id in (None, a.clinic_id)
            and FIRST <= to_local(a.start_at, zones[a.clinic_id]).date() <= last
        )
        return found, visits


def figures_of(found, visits) -> dict:
    """The figures worked out in Python from the responses and their days."""
    rows = [r for r, _ in found]
    nps = [r.nps for r in rows if r.nps is not None]
    ratings = [r.rating for r in rows if r.rating is not None]
    weeks, months = defaultdict(int), defaultdict(int)
    for _, day in found:
        weeks[pd.Timestamp(day - timedelta(days=day.weekday()))] += 1
        months[pd.Timestamp(day.replace(day=1))] += 1
    behind, groups = defaultdict(set), defaultdict(lambda: [0, 0])
    for r in rows:
        behind[("provider", r.provider_id)].add(r.id)
        # by service: a package's responses are its own group, never its first service's
        service = ("package", r.package_id) if r.package_id else ("service", r.service_id)
        behind[service].add(r.id)
        groups[service][0] += r.rating is not None
        groups[service][1] += r.nps is not None
        if r.rating:
            behind[("rating", r.rating)].add(r.id)
    return {
        "summary": sa.Figures(
            len(rows),
            len(nps),
            sum(n >= 9 for n in nps),
            sum(7 <= n <= 8 for n in nps),
            sum(n <= 6 for n in nps),
            len(ratings),
            sum(ratings),
            sum(r * r for r in ratings),
            sum(r >= 4 for r in ratings),
        ),
        "ratings": [ratings.count(v) for v in range(1, 6)],
        "nps": [nps.count(v) for v in range(11)],
        "weeks": dict(weeks),
        "months": dict(months),
        "comments": {r.id for r in rows if r.comment},
        "behind": dict(behind),
        "groups": {k: tuple(v) for k, v in groups.items()},
        "funnel": visits,
    }


def survey_figures(db, world, f) -> dict:
    """Every survey figure of the page for one filter (the dashboard's and each section's)."""
    with db.read() as session:
        s = sa.summary(session, world.owner, f)
        board = sa.get_dashboard(session, world.owner, f, now=datetime(2026, 4, 30, tzinfo=UTC))
        assert board.summary == s
        assert sa.funnel(session, world.owner, f) == board.funnel
        d = bd.distribution(session, world.owner, f)
        weekly = sa.trend(session, world.owner, f, "week")
        assert weekly.equals(board.weekly)
        monthly = sa.trend(session, world.owner, f, "month")
        comments, page, more = set(), 0, True
        while more:
            frame, more = sa.comments(session, world.owner, f, page=page)
            comments |= set(frame.id)
            page += 1
        behind, groups = {}, {}
        for frame in (board.providers, board.services):
            for key, dimension, n, nps_n in zip(
                frame.id, frame.dimension, frame.n, frame.nps_n, strict=True
            ):
                key = None if key is pd.NA else int(key)
                rows, total = bd.responses_behind(session, world.owner, f, dimension, key)
                assert total == len(rows)
                behind[(dimension, key)] = set(rows.id)
                # the group's ratings are those of its responses
                assert n == sum(1 for r in rows.rating if pd.notna(r)), (dimension, key)
                if frame is board.services:
                    groups[(dimension, key)] = (int(n), int(nps_n))
        # a package's row is named as the package, as its bar and its listed responses are
        names = dict(session.query(Package.id, Package.name).all())
        for key, label in zip(board.services.id, board.services.service, strict=True):
            if label.startswith("Package: "):
                assert label == "Package: " + names[int(key)]
        for dimension, key in behind:
            if dimension == "package":
                rows, _ = bd.responses_behind(session, world.owner, f, dimension, key)
                assert set(rows.service) == {"Package: " + names[key]}
        for star in range(1, 6):
            rows, _ = bd.responses_behind(session, world.owner, f, "rating", star)
            if len(rows):
                behind[("rating", star)] = set(rows.id)
    return {
        "summary": s,
        "ratings": d.ratings,
        "nps": d.nps,
        "weeks": dict(zip(weekly.period, weekly.responses, strict=True)),
        "months": dict(zip(monthly.period, monthly.responses, strict=True)),
        "comments": comments,
        "behind": behind,
        "groups": groups,
        "funnel": board.funnel.completed,
    }


# 31 March: New York's evening is London's 1 April; 12 April: the same around midnight
ENDS = (date(2026, 3, 31), LAST)


def test_every_survey_figure_is_its_responses(db, world, responses):
    for last in ENDS:
        for clinic in (None, 0, 1):
            f = survey_filter(responses, clinic, last)
            clinic_id = None if clinic is None else responses[clinic][0]
            expected = figures_of(*brute_surveys(db, clinic_id, last))
            assert survey_figures(db, world, f) == expected, (clinic, last)


def test_all_clinics_add_up_to_their_clinics_surveys(db, world, responses):
    for last in ENDS:
        check_all_clinics_add_up(db, world, responses, last)


def check_all_clinics_add_up(db, world, responses, last):
    """All clinics = each clinic's figures and those of the responses of no clinic (on the
    practice's days): New York's 22:00 on 31 March counted on New York's 31 March in both."""
    every = survey_figures(db, world, survey_filter(responses, None, last))
    clinics = [survey_filter(responses, c, last) for c in (0, 1)]
    london, new_york = (survey_figures(db, world, f) for f in clinics)
    no_clinic = [(r, day) for r, day in brute_surveys(db, None, last)[0] if r.clinic_id is None]
    unassigned = figures_of(no_clinic, 0)
    parts = (london, new_york, unassigned)
    assert every["summary"] == london["summary"] + new_york["summary"] + unassigned["summary"]
    for key in ("ratings", "nps"):
        assert every[key] == [sum(n) for n in zip(*(p[key] for p in parts), strict=True)], key
    for key in ("weeks", "months"):
        total = defaultdict(int)
        for p in parts:
            for period, n in p[key].items():
                total[period] += n
        assert every[key] == total, key
    assert every["comments"] == set().union(*(p["comments"] for p in parts))
    assert every["funnel"] == london["funnel"] + new_york["funnel"]
    with db.read() as session:
        evening = session.scalar(
            select(SurveyResponse.id).where(
                SurveyResponse.submitted_at == local_to_utc(*NY_EVENING, NEW_YORK)
            )
        )
    assert evening in every["comments"] and evening in new_york["comments"]
