"""The demo practice tells a story that could have happened, checked over every row of one
freshly seeded demo database: each visit is one its provider performs, at a clinic and in
hours they work, with nobody (provider, patient, room or laser) in two places at once;
nothing happened after now; each visit's status fits its times, fees and feedback; every
points balance is what its ledger adds up to; the portal's enrolments are their
invitations'."""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Date, select

from core.kernel.clock import to_local
from core.patients.invitations import DEFAULT_EXPIRY_DAYS
from core.payments import points
from core.payments.rules import get_settings
from core.policy.cancellation import inside_window
from core.scheduling import notes
from core.scheduling.availability import padded, working_periods
from core.startup import install_session_rules
from db.engine import Database
from db.models import (
    OCCUPYING,
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    Base,
    CancellationPolicy,
    ChangeKind,
    ChangeRequest,
    Clinic,
    FeedbackRequest,
    FeedbackStatus,
    InvitationStatus,
    LedgerEntry,
    LedgerKind,
    LinkToken,
    Patient,
    PortalInvitation,
    Provider,
    ProviderClinic,
    ProviderService,
    Resource,
    Service,
    ServiceResource,
    SlotOpening,
    SurveyResponse,
    WaitlistEntry,
    WaitlistOffer,
    WorkingHours,
)
from db.types import UTCDateTime
from tests.support.shared import built_once
from tests.support.templates import build_demo, demo_seeded_at

S = AppointmentStatus
# where the practice was or is busy: time a provider, a patient and the rooms really spent
BUSY = (*OCCUPYING, S.COMPLETED, S.NO_SHOW)
# the columns that may lie ahead of now: appointments' times and what is planned for them
AHEAD = {
    "appointments.start_at",
    "appointments.end_at",
    "change_requests.original_start_at",
    "change_requests.requested_start_at",
    "link_tokens.expires_at",
    "portal_invitations.expires_at",
    "notifications.next_attempt_at",
    "slot_openings.start_at",
    "slot_openings.end_at",
    "waitlist_offers.start_at",
    "waitlist_offers.expires_at",
    "time_off.starts_at",
    "time_off.ends_at",
    "reminders_sent.start_at",
    "appointment_confirmations.start_at",
    "users.locked_until",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One demo database for the module, and the moment it was seeded: a copy of the run's
    demo template (migrated with Alembic and seeded today, once a run, as the page tests'
    databases are; tests.support.templates), not a seeding of its own (30 s loaded)."""
    template = built_once(tmp_path_factory, "demo.db", build_demo)
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    shutil.copyfile(template, path)
    database = Database(f"sqlite:///{path}")
    install_session_rules()
    yield database, demo_seeded_at(template)
    database.dispose()


def _first(problems: list[str]) -> str:
    return f"{len(problems)} found, such as:\n" + "\n".join(problems[:8])


def _services_of(session) -> dict[int, list[int]]:
    """Appointment id -> its services (the first one and those listed)."""
    found: dict[int, set[int]] = defaultdict(set)
    for aid, sid in session.execute(select(Appointment.id, Appointment.service_id)):
        if sid is not None:
            found[aid].add(sid)
    for aid, sid in session.execute(
        select(AppointmentService.appointment_id, AppointmentService.service_id)
    ):
        found[aid].add(sid)
    return {aid: sorted(sids) for aid, sids in found.items()}


def test_every_demo_visit_is_one_its_provider_performs_where_and_when_they_work(seeded):
    database, _ = seeded
    problems = []
    with database.read() as s:
        performs = defaultdict(set)
        for pid, sid in s.execute(select(ProviderService.provider_id, ProviderService.service_id)):
            performs[pid].add(sid)
        works_at = set(s.execute(select(ProviderClinic.provider_id, ProviderClinic.clinic_id)))
        hours = defaultdict(list)
        for h in s.scalars(select(WorkingHours)):
            hours[(h.provider_id, h.clinic_id)].append(h)
        names = dict(s.execute(select(Service.id, Service.name)).all())
        services = _services_of(s)
        zones = dict(s.execute(select(Clinic.id, Clinic.timezone)).all())
        visits = s.scalars(
            select(Appointment).where(
                Appointment.provider_id.is_not(None),
                Appointment.kind == AppointmentKind.APPOINTMENT,
            )
        ).all()
        for a in visits:
            who = f"#{a.id} {a.provider.name} on {a.start_at:%Y-%m-%d %H:%M}"
            missing = [names[sid] for sid in services[a.id] if sid not in performs[a.provider_id]]
            if missing:
                problems.append(f"{who}: does not perform {', '.join(missing)}")
            if (a.provider_id, a.clinic_id) not in works_at:
                problems.append(f"{who}: does not work at clinic #{a.clinic_id}")
            day = to_local(a.start_at, zones[a.clinic_id]).date()
            periods = working_periods(hours[(a.provider_id, a.clinic_id)], day, zones[a.clinic_id])
            if not any(start <= a.start_at and a.end_at <= end for start, end in periods):
                problems.append(f"{who}: outside their working hours")
    assert len(visits) > 3000
    assert not problems, _first(problems)


def test_nothing_in_the_demo_happened_after_it_was_seeded(seeded):
    """No fee, payment, ledger entry, survey answer, message, check-in, enrolment … dated
    after now: only appointments' times and what is planned for them lie ahead."""
    database, now = seeded
    problems = []
    with database.read() as s:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                name = f"{table.name}.{column.name}"
                if not isinstance(column.type, UTCDateTime) or name in AHEAD:
                    continue
                ahead = s.scalar(select(column).where(column > now).order_by(column).limit(1))
                if ahead is not None:
                    problems.append(f"{name}: {ahead:%Y-%m-%d %H:%M} is after now ({now:%H:%M})")
        today = now.date() + timedelta(days=1)  # a clinic-local day: at most tomorrow's
        for column in (FeedbackRequest.sent_on,):
            assert isinstance(column.type, Date)
            late = s.scalar(select(column).where(column > today).limit(1))
            if late is not None:
                problems.append(f"{column}: {late} is after today")
    assert not problems, _first(problems)


def test_each_demo_visits_status_fits_its_times_fees_and_feedback(seeded):
    database, now = seeded
    problems = []
    with database.read() as s:
        policies = {p.id: p for p in s.scalars(select(CancellationPolicy))}
        clinic_policy = {p.clinic_id: p for p in policies.values() if p.service_id is None}
        fees = defaultdict(list)
        for entry in s.scalars(select(LedgerEntry).where(LedgerEntry.appointment_id.is_not(None))):
            fees[entry.appointment_id].append(entry)
        feedback = {r.appointment_id: r for r in s.scalars(select(FeedbackRequest))}
        answers = {r.appointment_id: r for r in s.scalars(select(SurveyResponse))}
        performed_at = defaultdict(set)  # clinic -> services someone there performs
        for cid, sid in s.execute(
            select(ProviderClinic.clinic_id, ProviderService.service_id).join(
                ProviderService, ProviderService.provider_id == ProviderClinic.provider_id
            )
        ):
            performed_at[cid].add(sid)
        rows = s.scalars(
            select(Appointment).where(Appointment.kind == AppointmentKind.APPOINTMENT)
        ).all()
        for a in rows:
            who = f"#{a.id} ({a.status.value}, {a.start_at or a.requested_day})"
            ended = a.end_at is not None and a.end_at <= now
            began = a.start_at is not None and a.start_at <= now
            if a.status == S.REQUESTED:
                if a.start_at or a.provider_id or a.service_id not in performed_at[a.clinic_id]:
                    problems.append(f"{who}: a request with a time, a provider or no one to do it")
                if a.requested_day < to_local(now, a.clinic.timezone).date():
                    problems.append(f"{who}: a request for a day gone by")
                continue
            if a.booked_at > a.start_at or a.created_at > a.start_at:
                problems.append(f"{who}: booked after it began")
            if a.decided_at and not a.booked_at <= a.decided_at <= min(a.start_at, now):
                problems.append(f"{who}: decided before it was asked or after it began")
            if a.status in (S.SCHEDULED, S.TENTATIVE) and began:
                problems.append(f"{who}: began and is still waiting to be seen")
            if a.status in (S.COMPLETED, S.NO_SHOW) and not ended:
                problems.append(f"{who}: attended or missed before its end")
            if a.status == S.CHECKED_IN and not (began and not ended):
                problems.append(f"{who}: checked in but not under way")
            if (a.checked_in_at is not None) != (a.status in (S.CHECKED_IN, S.COMPLETED)):
                problems.append(f"{who}: a check-in on a visit not attended, or none on one")
            if a.checked_in_at and not a.booked_at <= a.checked_in_at <= a.start_at:
                problems.append(f"{who}: checked in before booking or after its start")
            if (a.completed_at is not None) != (a.status == S.COMPLETED):
                problems.append(f"{who}: completed_at does not fit the status")
            if (a.cancelled_at is not None) != (a.status == S.CANCELLED):
                problems.append(f"{who}: cancelled_at does not fit the status")
            if a.status == S.DECLINED and not (a.decided_at and a.decline_reason):
                problems.append(f"{who}: declined without a decision or reason")
            expected = []  # the fee and points its policy charged
            policy = policies.get(a.policy_id)
            if a.status in (S.CANCELLED, S.NO_SHOW) and policy is None:
                problems.append(f"{who}: no cancellation policy recorded")
                continue
            if a.status == S.CANCELLED:
                if not a.booked_at <= a.cancelled_at <= min(a.start_at, now):
                    problems.append(f"{who}: cancelled before booking, after its start or ahead")
                late = inside_window(a.start_at, a.cancelled_at, policy.window_hours)
                if a.late_cancellation != late:
                    problems.append(f"{who}: late_cancellation {a.late_cancellation}, not {late}")
                if late:
                    expected = [(LedgerKind.LATE_CANCEL_FEE, policy.late_cancel_fee_cents)]
            if a.status == S.NO_SHOW:
                expected = [(LedgerKind.NO_SHOW_FEE, policy.no_show_fee_cents)]
            charged = fees.get(a.id, [])
            got = sorted((e.kind, e.amount_cents) for e in charged if e.amount_cents)
            if got != expected:
                problems.append(f"{who}: fees {got}, its policy charges {expected}")
            deducted = [e for e in charged if e.kind == LedgerKind.POINTS]
            if expected and policy.points_deducted and len(deducted) != 1:
                problems.append(f"{who}: the policy's points were not deducted")
            for e in charged:
                at = a.cancelled_at if a.status == S.CANCELLED else a.start_at
                if e.kind != LedgerKind.POINTS_EARNED and not at <= e.created_at <= now:
                    problems.append(f"{who}: {e.kind.value} dated {e.created_at:%Y-%m-%d %H:%M}")
            request, answer = feedback.get(a.id), answers.get(a.id)
            if request and not (a.status == S.COMPLETED and a.completed_at <= request.sent_at):
                problems.append(f"{who}: a survey request on a visit not completed first")
            status = (
                FeedbackStatus.COLLECTED
                if answer
                else FeedbackStatus.PENDING
                if request
                else FeedbackStatus.NONE
            )
            if a.feedback_status != status:
                problems.append(f"{who}: feedback {a.feedback_status.value}, not {status.value}")
            if answer and not (request and request.sent_at <= answer.submitted_at):
                problems.append(f"{who}: answered before the survey was sent")
            if answer and answer.submitted_at != request.answered_at:
                problems.append(f"{who}: answered at two times")
            earned = [e for e in charged if e.kind == LedgerKind.POINTS_EARNED]
            if answer and get_settings(s).survey_points_enabled and len(earned) != 1:
                problems.append(f"{who}: answered its survey without earning points")
        for change in s.scalars(select(ChangeRequest)):
            a = change.appointment
            who = f"change request #{change.id} on #{a.id}"
            if a.status != S.SCHEDULED or a.start_at <= now:
                problems.append(f"{who}: open on a visit not ahead ({a.status.value})")
            if not a.booked_at <= change.created_at <= now:
                problems.append(f"{who}: asked before the visit was booked")
            if change.original_start_at != a.start_at:
                problems.append(f"{who}: its original time is not the visit's")
            policy = clinic_policy[a.clinic_id]
            late = inside_window(a.start_at, change.created_at, policy.window_hours)
            charged = late and change.kind == ChangeKind.CANCEL
            fee = (policy.late_cancel_fee_cents, policy.points_deducted) if charged else (0, 0)
            if change.inside_window != late or (change.fee_cents, change.points) != fee:
                problems.append(f"{who}: inside the window {change.inside_window}, not {late}")
    # every status is shown (a visit under way only when the demo is seeded in working hours)
    assert {a.status for a in rows} >= set(S) - {S.CHECKED_IN}
    assert not problems, _first(problems)


OPENING = LedgerKind.POINTS_OPENING


def test_every_demo_patients_points_add_up_from_an_opening_before_their_first_visit(seeded):
    database, _ = seeded
    problems = []
    with database.read() as s:
        balances = dict(s.execute(select(Patient.id, Patient.points_balance)).all())
        created = dict(s.execute(select(Patient.id, Patient.created_at)).all())
        sums, entries = defaultdict(int), defaultdict(list)
        for entry in s.scalars(select(LedgerEntry).order_by(LedgerEntry.created_at)):
            sums[entry.patient_id] += points.delta(entry)
            entries[entry.patient_id].append(entry)
        booked = dict(
            s.execute(
                select(Appointment.patient_id, Appointment.booked_at)
                .where(Appointment.patient_id.is_not(None))
                .order_by(Appointment.booked_at.desc())
            ).all()
        )  # the earliest booking of each patient (the last row for a patient wins)
    for pid, balance in balances.items():
        if balance != sums[pid]:
            problems.append(f"patient #{pid}: balance {balance}, ledger {sums[pid]}")
        if pid in booked and created[pid] > booked[pid]:
            problems.append(f"patient #{pid}: added after their first booking")
        running = 0  # as it went: never below zero, an opening first (none for zero)
        for entry in entries[pid]:
            running += points.delta(entry)
            opening = entry.kind == LedgerKind.POINTS_OPENING
            if (
                running < 0
                or entry.created_at < created[pid]
                or (opening and entry.created_at != created[pid])
            ):
                problems.append(f"patient #{pid}: {entry.kind.value} at {entry.created_at}")
    assert 0 in balances.values()  # some patients cannot request online
    assert max(balances.values()) > 100  # survey points on top of an opening of 100
    opened = {e.points for found in entries.values() for e in found if e.kind == OPENING}
    assert opened == {40, 100}  # the demo's mix; a zero opening has nothing to open with
    assert not problems, _first(problems)


def test_the_demos_invitations_happened_in_order_and_match_the_enrolments(seeded):
    database, now = seeded
    problems = []
    with database.read() as s:
        rows = s.scalars(select(PortalInvitation).order_by(PortalInvitation.id)).all()
        tokens = {t.id: t for t in s.scalars(select(LinkToken))}
        latest = {r.patient_id: r for r in rows}
        patients = s.scalars(select(Patient)).all()
    by = {status: [r for r in rows if r.status == status] for status in InvitationStatus}
    assert all(by[s] for s in InvitationStatus)  # every state is shown
    life = timedelta(days=DEFAULT_EXPIRY_DAYS)
    for r in rows:
        who = f"invitation #{r.id} ({r.status.value})"
        token = tokens[r.token_id]
        if not r.sent_at <= now or r.expires_at - r.sent_at != life:
            problems.append(f"{who}: sent {r.sent_at}, expires {r.expires_at}")
        if token.expires_at != r.expires_at or token.created_at != r.sent_at:
            problems.append(f"{who}: its link was made or expires at other times")
        if (token.used_at is not None) != (r.status == InvitationStatus.ENROLLED):
            problems.append(f"{who}: its link used {token.used_at}")
        if (token.revoked_at is not None) != (r.status == InvitationStatus.REVOKED):
            problems.append(f"{who}: its link revoked {token.revoked_at}")
        if r.status == InvitationStatus.ENROLLED and not (
            r.sent_at <= r.enrolled_at <= min(now, r.expires_at)
        ):
            problems.append(f"{who}: enrolled {r.enrolled_at}")
        if r.status == InvitationStatus.EXPIRED and r.expires_at > now:
            problems.append(f"{who}: expired before its time")
        if r.status == InvitationStatus.PENDING and r.expires_at <= now:
            problems.append(f"{who}: pending past its time")
        if r.status == InvitationStatus.REVOKED and not r.sent_at <= r.revoked_at <= now:
            problems.append(f"{who}: revoked {r.revoked_at}")
    for p in patients:
        invitation = latest.get(p.id)
        enrolled = invitation is not None and invitation.status == InvitationStatus.ENROLLED
        if enrolled and p.portal_enrolled_at != invitation.enrolled_at:
            problems.append(f"patient #{p.id}: enrolled {p.portal_enrolled_at}, not as invited")
        if not enrolled and p.portal_enrolled_at is not None:
            problems.append(f"patient #{p.id}: enrolled without an invitation")
        if invitation and not (p.email and p.consent_email and invitation.email == p.email):
            problems.append(f"patient #{p.id}: invited without an email or consent")
    assert not problems, _first(problems)


def _overlaps(spans: list[tuple[datetime, datetime, Appointment]]) -> list[tuple]:
    """Pairs of spans that overlap unless allowed: a patient's visit only by its own "allow
    double booking" (an out-of-office block that allows it does not book patients over it)."""
    found = []
    spans = sorted(spans, key=lambda span: span[0])
    for i, (_, end, a) in enumerate(spans):
        for other_start, _, b in spans[i + 1 :]:
            if other_start >= end:
                break
            visits = [x for x in (a, b) if x.kind == AppointmentKind.APPOINTMENT] or [a, b]
            if not any(x.allow_double_booking for x in visits):
                found.append((a, b))
    return found


def test_nobody_and_no_room_in_the_demo_is_in_two_places_at_once(seeded):
    """A provider's visits and out-of-office blocks (with the services' buffers) never
    overlap, nor a patient's, and no room or laser is used by more visits than it has; a
    booking that allows double booking is the exception the practice chose."""
    database, _ = seeded
    problems = []
    with database.read() as s:
        buffers = {
            v.id: (v.buffer_before_minutes, v.buffer_after_minutes)
            for v in s.scalars(select(Service))
        }
        services = _services_of(s)
        needs = defaultdict(set)  # (clinic, service) -> the resources it needs there
        for sid, rid, cid in s.execute(
            select(ServiceResource.service_id, Resource.id, Resource.clinic_id).join(
                Resource, Resource.id == ServiceResource.resource_id
            )
        ):
            needs[(cid, sid)].add(rid)
        quantity = dict(s.execute(select(Resource.id, Resource.quantity)).all())
        rows = s.scalars(
            select(Appointment).where(
                Appointment.status.in_(BUSY), Appointment.start_at.is_not(None)
            )
        ).all()
        by_provider, by_patient, by_resource = (
            defaultdict(list),
            defaultdict(list),
            defaultdict(list),
        )
        for a in rows:
            start, end = padded(a)
            by_provider[a.provider_id].append((start, end, a))
            if a.kind != AppointmentKind.APPOINTMENT:
                continue
            sids = services[a.id]
            stored = (a.buffer_before_minutes, a.buffer_after_minutes)
            if stored != (buffers[sids[0]][0], buffers[sids[-1]][1]):
                problems.append(f"#{a.id}: buffers {stored}, its services keep others")
            by_patient[a.patient_id].append((a.start_at, a.end_at, a))
            for rid in {r for sid in sids for r in needs[(a.clinic_id, sid)]}:
                by_resource[rid].append((start, end, a))
        for provider_id, spans in by_provider.items():
            name = s.get(Provider, provider_id).name
            for a, b in _overlaps(spans):
                problems.append(f"{name}: #{a.id} and #{b.id} overlap ({a.start_at:%F %H:%M})")
        for patient_id, spans in by_patient.items():
            for a, b in _overlaps(spans):
                problems.append(f"patient #{patient_id} at #{a.id} and #{b.id} at once")
        for rid, spans in by_resource.items():
            edges = sorted([(st, 1) for st, _, _ in spans] + [(en, -1) for _, en, _ in spans])
            using, most = 0, 0
            for _, step in edges:  # an end sorts before a start at the same moment
                using += step
                most = max(most, using)
            if most > quantity[rid]:
                problems.append(f"resource #{rid}: {most} visits at once, {quantity[rid]} exist")
        for offer in s.scalars(select(WaitlistOffer)):  # none yet: offers once someone waits
            entry, opening = (
                s.get(WaitlistEntry, offer.entry_id),
                s.get(SlotOpening, offer.opening_id),
            )
            if not opening.start_at <= offer.start_at < opening.end_at:
                problems.append(f"offer #{offer.id}: outside its opening")
            taken = [
                a
                for a in by_provider[opening.provider_id]
                if a[0] < offer.start_at + timedelta(minutes=entry.service.duration_minutes)
                and a[1] > offer.start_at
                and a[2].id != offer.appointment_id
            ]
            if taken:
                problems.append(f"offer #{offer.id}: the time is taken by #{taken[0][2].id}")
    assert any(a.kind == AppointmentKind.OUT_OF_OFFICE for a in rows)  # the team meetings
    assert not problems, _first(problems)


def test_every_demo_note_is_a_note_with_its_author_and_time(seeded):
    """Each demo appointment's notes text (a request's, a team meeting's) is a note by who
    wrote it, when; before, it was stored only as the text and shown as an "Earlier note"."""
    database, _ = seeded
    with database.read() as s:
        noted = list(s.scalars(select(Appointment).where(Appointment.notes != "")))
        shown = notes.notes_of(s, noted)
    assert noted
    unsigned = [
        f"#{a.id} {a.notes!r}: {[(n.author, n.written_at) for n in shown[a.id]]}"
        for a in noted
        if not shown[a.id]
        or shown[a.id][0].written_at is None
        or shown[a.id][0].author in (notes.EARLIER, "Imported")
        or shown[a.id][0].written_at > a.created_at + timedelta(seconds=1)
    ]
    assert not unsigned, _first(unsigned)
    assert {n.author for a in noted for n in shown[a.id]} <= {"Sam Staff", "Demo"}


def test_the_demo_books_package_visits_that_both_dashboards_show_as_their_own_bars(seeded):
    """A few visits are booked as a package, as booking does: its services in order, one after
    another, the first's buffer before and the last's after, answered surveys recording the
    package; the Cancellations and Survey analytics pages show each package as its own bar."""
    from core.analytics import breakdowns, surveys
    from core.analytics.cancellation_parts import AnalyticsFilters
    from core.kernel.authz import SYSTEM
    from db.models import Package, PackageService

    database, now = seeded
    problems = []
    with database.read() as s:
        members = defaultdict(list)
        for pid, sid in s.execute(
            select(PackageService.package_id, PackageService.service_id).order_by(
                PackageService.package_id, PackageService.position
            )
        ):
            members[pid].append(s.get(Service, sid))
        booked = s.scalars(select(Appointment).where(Appointment.package_id.is_not(None))).all()
        for a in booked:
            services = members[a.package_id]
            listed = [x.service_id for x in a.services]
            if listed != [x.id for x in services] or a.service_id != services[0].id:
                problems.append(f"#{a.id}: services {listed}, its package's {services}")
            minutes = sum(x.duration_minutes for x in services)
            if a.end_at - a.start_at != timedelta(minutes=minutes):
                problems.append(f"#{a.id}: lasts {a.end_at - a.start_at}, not {minutes} minutes")
        answered = s.scalars(
            select(SurveyResponse).where(SurveyResponse.package_id.is_not(None))
        ).all()
        for r in answered:
            if r.package_id != s.get(Appointment, r.appointment_id).package_id:
                problems.append(f"response #{r.id}: not its visit's package")
        names = {p.id: p.name for p in s.scalars(select(Package))}
        statuses = {a.status for a in booked}
        today = now.date()
        f = surveys.filter_for_days(today - timedelta(days=179), today)  # the half year of history
        by_service = surveys.by_group(s, SYSTEM, f, "service")
        survey_bars = set(by_service.loc[by_service.dimension == "package", "service"])
        filters = AnalyticsFilters(today - timedelta(days=179), today)
        groups = breakdowns.rates_by(s, SYSTEM, filters, "service", top=None)
        cancellation_bars = {g.counts.label for g in groups if g.dimension == "package"}
    assert {a.package_id for a in booked} == set(names)  # each of the demo's packages
    assert 40 <= len(booked) <= 400  # a few: the demo has some 5,000 visits
    assert {S.COMPLETED, S.CANCELLED, S.SCHEDULED} <= statuses
    assert len(answered) >= 10
    every = {surveys.PACKAGE + name for name in names.values()}
    assert survey_bars == every
    assert cancellation_bars == every
    assert not problems, _first(problems)
