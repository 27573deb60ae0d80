"""Deterministic demo data: two clinics in different time zones, six providers, ten services,
500 patients, about six months of history and four weeks ahead in every status (a few visits
booked as a package), open requests of every kind, invitations in every state and survey
responses. Same seed, same data."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.interchange import practice_file
from core.kernel import accounts, tokens
from core.kernel.authz import SYSTEM
from core.kernel.clock import local_to_utc, to_local
from core.kernel.money import clinic_time
from core.messaging import delivery, notify
from core.patients import invitations
from core.payments import points
from core.payments.rules import get_settings
from core.policy.cancellation import inside_window
from core.practice import skills
from core.practice.checklist import TEST_MESSAGE_TEMPLATE
from core.practice.packages import package_services
from core.practice.treatment import treatment_of
from core.scheduling.states import PROPOSAL_TTL
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentNote,
    AppointmentService,
    AppointmentStatus,
    CancellationPolicy,
    ChangeKind,
    ChangeRequest,
    Channel,
    Clinic,
    DeliveryStatus,
    FeedbackRequest,
    FeedbackStatus,
    InvitationStatus,
    LedgerEntry,
    LedgerKind,
    Notification,
    Package,
    Patient,
    PortalInvitation,
    Provider,
    Resource,
    Role,
    Service,
    ServiceResource,
    Source,
    StopKind,
    SurveyResponse,
    TimeOfDay,
    VisitMode,
)
from db.types import utcnow

SEED = 20261125
SURVEY_DELAY = timedelta(hours=2)  # a survey goes out this long after a completed visit
PRACTICE_FILE = Path(__file__).with_name("demo_practice.toml")
DEMO_PASSWORDS = {
    "owner": ("Olivia Owner", Role.OWNER, "owner-demo-pass"),
    "manager": ("Max Manager", Role.MANAGER, "manager-demo-pass"),
    "staff": ("Sam Staff", Role.STAFF, "staff-demo-pass"),
}
FIRST = [
    "Amelia",
    "Oliver",
    "Isla",
    "George",
    "Ava",
    "Noah",
    "Mia",
    "Arthur",
    "Ivy",
    "Leo",
    "Grace",
    "Oscar",
    "Lily",
    "Harry",
    "Freya",
    "Jack",
    "Sofia",
    "Charlie",
    "Ella",
    "Jacob",
    "Maria",
    "Lucas",
    "Chloe",
    "Mateo",
    "Zara",
    "Ethan",
    "Nora",
    "Samuel",
    "Layla",
    "Adam",
]
LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Robinson",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Silva",
    "Santos",
    "Costa",
    "Nguyen",
    "Kim",
    "Garcia",
    "Martin",
    "Lopez",
    "Murphy",
]
SERVICES = [  # name, minutes, price in pence/cents, virtual allowed
    ("Consultation", 30, 6000, True),
    ("Follow-up", 15, 3000, True),
    ("Skin check", 30, 7500, False),
    ("Botox treatment", 45, 25000, False),
    ("Dermal filler", 60, 35000, False),
    ("Chemical peel", 45, 15000, False),
    ("Laser hair removal", 30, 12000, False),
    ("Vaccination", 15, 4000, False),
    ("Blood test", 15, 3500, False),
    ("Nutrition advice", 30, 5000, True),
]
REASONS = [
    "Feeling unwell",
    "Work commitment",
    "Travel",
    "Childcare",
    "Booked elsewhere",
    "Transport problem",
    "Forgot",
    "Weather",
]
COMMENTS = [
    "Lovely staff and no waiting.",
    "The doctor explained everything clearly.",
    "Hard to get through on the phone.",
    "Waited 40 minutes past my time.",
    "Very professional, would recommend.",
    "Parking was difficult.",
    "Quick and friendly service.",
    "Receptionist was rude.",
    "",
]


@dataclass(frozen=True)
class DemoSummary:
    patients: int
    appointments: int
    accounts: dict[str, tuple[str, Role, str]]


def seed_practice(session: Session, now: datetime) -> None:
    """The demo's practice alone, its set-up complete: the three accounts, the practice file
    (clinics, rooms, providers, services, packages, policies in force since `now` less 400
    days) and the test message the checklist's last step asks for. No patient, no visit."""
    if session.query(Clinic).count():
        raise RuntimeError("the database has data already; demo data is only for an empty one")
    for username, (name, role, password) in DEMO_PASSWORDS.items():
        accounts.insert_user(
            session, SYSTEM, username, name, role, password, f"{username}@clinicdesk.example"
        )
    practice_file.import_practice(
        session, SYSTEM, PRACTICE_FILE.read_text(), policy_effective_at=now - timedelta(days=400)
    )
    _test_message(session)


def seed_demo(session: Session, *, today: date | None = None, seed: int = SEED) -> DemoSummary:
    """Fill an empty database. Raises if it already has clinics (demo data goes in once)."""
    rng = random.Random(seed)
    since = random.Random(seed + 1)  # when each patient was added
    now = utcnow()
    today = today or now.date()
    seed_practice(session, now)
    staff_user = accounts.count_users(session)  # ids 1..3; staff is the last
    clinics = list(session.scalars(select(Clinic).order_by(Clinic.name)))
    by_name = {s.name: s for s in session.scalars(select(Service))}
    services = [by_name[name] for name, *_ in SERVICES]
    providers = []
    for provider in session.scalars(select(Provider).order_by(Provider.id)):
        clinic_id = min(h.clinic_id for h in provider.working_hours)
        providers.append((provider, session.get(Clinic, clinic_id)))

    patients, opening = [], []
    for i in range(500):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        has_email = rng.random() > 0.06
        patients.append(
            Patient(
                external_ref=f"DEMO-{i + 1:04d}",
                first_name=first,
                last_name=last,
                date_of_birth=date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 65)),
                email=f"{first}.{last}.{i + 1}@patients.example".lower() if has_email else None,
                phone=f"07700 9{i:05d}" if rng.random() > 0.1 else None,
                consent_email=has_email and rng.random() > 0.12,
                consent_sms=rng.random() > 0.3,
                reminders_enabled=rng.random() > 0.15,
                card_on_file=rng.random() > 0.5,
                # on file before their first booking (the history goes back about 7 months);
                # drawn apart so the patients are the same people as before
                created_at=now
                - timedelta(days=since.randrange(240, 2000), hours=since.randrange(24)),
            )
        )
        # a mix of balances: some patients cannot request online
        opening.append(rng.choice([points.OPENING_POINTS] * 8 + [40, 0]))
    session.add_all(patients)
    session.flush()
    for patient, balance in zip(patients, opening, strict=True):
        points.open_account(session, patient, balance)
    policies = {
        clinic.id: session.scalar(
            select(CancellationPolicy).where(
                CancellationPolicy.clinic_id == clinic.id, CancellationPolicy.service_id.is_(None)
            )
        )
        for clinic in clinics
    }

    appointments = _appointments(
        session, rng, providers, services, patients, policies, today, now, staff_user
    )
    _requests(session, rng, clinics, services, patients, appointments, policies, today, now)
    _notes(session, staff_user)
    # the package visits draw from their own generator, in the time the others left free,
    # and come after them: every other row is as it was before the demo booked packages
    packaged = random.Random(seed + 2)
    bundles = _package_visits(
        session, packaged, providers, appointments, patients, policies, today, now, staff_user
    )
    _proposal_links(session, appointments + bundles, now)
    _invitations(session, rng, patients, now)
    answered = _surveys(session, rng, appointments, now)
    answered += _surveys(session, packaged, bundles, now, share=0.5)
    _ledger(session, appointments + bundles, answered, policies)
    _outbox(session, rng, appointments, now)
    return DemoSummary(len(patients), len(appointments) + len(bundles), DEMO_PASSWORDS)


def _test_message(session: Session) -> None:
    """The set-up checklist's last step, done: a test message was sent."""
    session.add(
        Notification(
            channel=Channel.EMAIL,
            template=TEST_MESSAGE_TEMPLATE,
            to_address="owner@clinicdesk.example",
            subject="ClinicDesk test message",
            body="Message sending works.",
            status=DeliveryStatus.SENT,
            attempts=1,
            sent_at=utcnow(),
        )
    )


def _appointments(session, rng, providers, services, patients, policies, today, now, staff_user):
    """Each provider's days filled with the services they perform (core.practice.skills), one
    after another with the services' buffers kept free, around the weekly team meeting, with
    no patient in two visits at once and no room or laser used by more visits than it has."""
    listed = skills.listed_services(session, [provider.id for provider, _ in providers])
    needs = defaultdict(list)  # (clinic, service) -> the resources the service needs there
    for service_id, resource in session.execute(
        select(ServiceResource.service_id, Resource).join(
            Resource, Resource.id == ServiceResource.resource_id
        )
    ):
        needs[(resource.clinic_id, service_id)].append(resource)
    in_use = defaultdict(list)  # resource id -> (start, end) of the visits using it
    patient_busy = defaultdict(list)  # patient id -> (start, end) of their visits
    created = []
    for provider, clinic in providers:
        offered = [s for s in services if skills.performs(listed.get(provider.id), [s.id])]
        # the weekly team meeting, on the provider's first working day of the week, four weeks
        # either side of today (whichever day of the week the demo is loaded on)
        first_day = min(h.weekday for h in provider.working_hours)
        meetings = {
            today + timedelta(days=offset)
            for offset in range(-28, 29)
            if (today + timedelta(days=offset)).weekday() == first_day
        }
        for offset in range(-182, 29):
            day = today + timedelta(days=offset)
            hours = [h for h in provider.working_hours if h.weekday == day.weekday()]
            if not hours:
                continue
            cursor = datetime.combine(day, hours[0].starts)
            end_of_day = datetime.combine(day, hours[0].ends)
            meeting = (datetime.combine(day, time(13)), datetime.combine(day, time(13, 30)))
            while True:
                cursor += timedelta(minutes=rng.choice([0, 0, 15, 30, 45]))
                service = rng.choice(offered)
                finish = cursor + timedelta(minutes=service.duration_minutes)
                if finish > end_of_day:
                    break
                kept_until = finish + timedelta(minutes=service.buffer_after_minutes)
                if day in meetings and cursor < meeting[1] and kept_until > meeting[0]:
                    cursor = meeting[1]  # the team meeting: nobody is booked over it
                    continue
                if rng.random() < 0.55 or (offset > 7 and rng.random() < 0.4):
                    start = local_to_utc(day, cursor.time(), clinic.timezone)
                    end = start + timedelta(minutes=service.duration_minutes)
                    kept = (
                        start - timedelta(minutes=service.buffer_before_minutes),
                        end + timedelta(minutes=service.buffer_after_minutes),
                    )
                    patient = rng.choice(patients)
                    rooms = needs[(clinic.id, service.id)]
                    if not _overlapping(patient_busy[patient.id], start, end) and all(
                        len(_overlapping(in_use[r.id], *kept)) < r.quantity for r in rooms
                    ):
                        patient_busy[patient.id].append((start, end))
                        for resource in rooms:
                            in_use[resource.id].append(kept)
                        created.append(
                            _one(
                                rng,
                                provider,
                                clinic,
                                service,
                                patient,
                                start,
                                now,
                                staff_user,
                                policies[clinic.id],
                            )
                        )
                        cursor = kept_until  # the buffer after keeps the provider free
                        continue
                cursor = finish
        for day in sorted(meetings):  # an out-of-office block
            start = local_to_utc(day, time(13), clinic.timezone)
            created.append(
                Appointment(
                    clinic_id=clinic.id,
                    provider_id=provider.id,
                    kind=AppointmentKind.OUT_OF_OFFICE,
                    status=AppointmentStatus.SCHEDULED,
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                    notes="Team meeting",
                    allow_double_booking=True,
                    source=Source.STAFF,
                    created_by_user_id=staff_user,
                    booked_at=min(start - timedelta(days=30), now),
                    created_at=min(start - timedelta(days=30), now),
                )
            )
    session.add_all(created)
    session.flush()
    for appointment in created:
        if appointment.service_id:
            session.add(
                AppointmentService(appointment_id=appointment.id, service_id=appointment.service_id)
            )
    return created


def _overlapping(spans, start, end):
    return [(s, e) for s, e in spans if s < end and e > start]


PACKAGE_DAYS = 0.3  # the share of an able provider's working days with a package visit


def _package_visits(session, rng, providers, appointments, patients, policies, today, now, user):
    """A few visits booked as a package (about one working day in three of each provider who
    performs all its services), as booking makes them: its services one after another, the
    first's buffer before and the last's after, at a time the provider, the patient and the
    rooms the services need are free (around the visits booked already)."""
    packages = [
        package_services(session, package_id)
        for package_id in session.scalars(select(Package.id).order_by(Package.id))
    ]
    listed = skills.listed_services(session, [provider.id for provider, _ in providers])
    needs = defaultdict(list)  # (clinic, service) -> the resources the service needs there
    for service_id, resource in session.execute(
        select(ServiceResource.service_id, Resource).join(
            Resource, Resource.id == ServiceResource.resource_id
        )
    ):
        needs[(resource.clinic_id, service_id)].append(resource)
    busy, patient_busy, in_use = defaultdict(list), defaultdict(list), defaultdict(list)
    for a in appointments:
        kept = (
            a.start_at - timedelta(minutes=a.buffer_before_minutes or 0),
            a.end_at + timedelta(minutes=a.buffer_after_minutes or 0),
        )
        busy[a.provider_id].append(kept)
        if a.patient_id:
            patient_busy[a.patient_id].append((a.start_at, a.end_at))
        for resource in needs[(a.clinic_id, a.service_id)]:
            in_use[resource.id].append(kept)
    created = []
    for provider, clinic in providers:
        able = [
            (package, members)
            for package, members in packages
            if skills.performs(listed.get(provider.id), [m.id for m in members])
        ]
        if not able:
            continue
        for offset in range(-182, 29):
            day = today + timedelta(days=offset)
            hours = [h for h in provider.working_hours if h.weekday == day.weekday()]
            if not hours or rng.random() >= PACKAGE_DAYS:
                continue
            package, members = rng.choice(able)
            minutes = sum(m.duration_minutes for m in members)
            before, after = members[0].buffer_before_minutes, members[-1].buffer_after_minutes
            opens = datetime.combine(day, hours[0].starts) + timedelta(minutes=before)
            closes = datetime.combine(day, hours[0].ends) - timedelta(minutes=minutes)
            times = []
            while opens <= closes:
                times.append(opens)
                opens += timedelta(minutes=15)
            patient = rng.choice(patients)
            rooms = {r.id: r for m in members for r in needs[(clinic.id, m.id)]}.values()
            for at in rng.sample(times, len(times)):
                start = local_to_utc(day, at.time(), clinic.timezone)
                end = start + timedelta(minutes=minutes)
                kept = (start - timedelta(minutes=before), end + timedelta(minutes=after))
                if (
                    _overlapping(busy[provider.id], *kept)
                    or _overlapping(patient_busy[patient.id], start, end)
                    or any(len(_overlapping(in_use[r.id], *kept)) >= r.quantity for r in rooms)
                ):
                    continue
                busy[provider.id].append(kept)
                patient_busy[patient.id].append((start, end))
                for resource in rooms:
                    in_use[resource.id].append(kept)
                visit = _one(
                    rng,
                    provider,
                    clinic,
                    members[0],
                    patient,
                    start,
                    now,
                    user,
                    policies[clinic.id],
                    members,
                )
                visit.package_id = package.id
                created.append(visit)
                break
    session.add_all(created)
    session.flush()
    members_of = {package.id: members for package, members in packages}  # read once, above
    for visit in created:
        for position, service in enumerate(members_of[visit.package_id]):
            session.add(
                AppointmentService(
                    appointment_id=visit.id, service_id=service.id, position=position
                )
            )
    return created


def _one(rng, provider, clinic, service, patient, start, now, staff_user, policy, members=()):
    """One visit of `service`, or of a package's `members` one after another (the first's
    buffer before, the last's after)."""
    members = list(members) or [service]
    lead = timedelta(
        days=rng.choice([0, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45]), hours=rng.randrange(24)
    )
    booked = start - lead
    if booked > now:  # a visit weeks ahead booked "in the future" was booked in the last days
        booked = now - timedelta(hours=rng.randrange(1, 72))
    online = rng.random() < 0.35
    minutes = sum(m.duration_minutes for m in members)
    appointment = Appointment(
        clinic_id=clinic.id,
        provider_id=provider.id,
        patient_id=patient.id,
        service_id=service.id,
        mode=VisitMode.VIRTUAL
        if all(m.virtual_allowed for m in members) and rng.random() < 0.2
        else VisitMode.IN_PERSON,
        start_at=start,
        end_at=start + timedelta(minutes=minutes),
        buffer_before_minutes=members[0].buffer_before_minutes,
        buffer_after_minutes=members[-1].buffer_after_minutes,
        source=Source.ONLINE if online else Source.STAFF,
        created_by_user_id=None if online else staff_user,
        booked_at=booked,
        created_at=booked,
        sms_reminder=rng.random() < 0.6,
        status=AppointmentStatus.SCHEDULED,
    )
    # an online request is approved (or declined) before its time and not after now
    appointment.decided_at = (
        min(booked + timedelta(hours=rng.randrange(1, 30)), start, now) if online else None
    )
    roll = rng.random()
    if start + timedelta(minutes=minutes) < now:
        if roll < 0.10:
            _cancel(appointment, rng, policy, now)
        elif roll < 0.16:
            appointment.status, appointment.policy_id = AppointmentStatus.NO_SHOW, policy.id
        elif roll < 0.18 and online:
            appointment.status, appointment.decline_reason = (
                AppointmentStatus.DECLINED,
                "No availability that week",
            )
        else:
            appointment.status = AppointmentStatus.COMPLETED
            arrived = start - timedelta(minutes=rng.randrange(0, 20))
            appointment.checked_in_at = max(arrived, booked)
            appointment.completed_at = start + timedelta(minutes=minutes)
    elif start < now:
        appointment.status = AppointmentStatus.CHECKED_IN
        appointment.checked_in_at = max(start - timedelta(minutes=5), booked)
    elif roll < 0.05:
        _cancel(appointment, rng, policy, now)
    elif roll < 0.09:
        appointment.status = AppointmentStatus.TENTATIVE
    return appointment


def _cancel(appointment, rng, policy, now):
    """Cancelled with some notice, after it was booked and not after now (a visit ahead was
    cancelled some time since its booking); late when inside the policy's window."""
    notice = timedelta(hours=rng.choice([2, 6, 12, 20, 30, 48, 72, 120]))
    cancelled = max(appointment.start_at - notice, appointment.booked_at)
    if cancelled > now:
        cancelled = appointment.booked_at + (now - appointment.booked_at) * rng.random()
    appointment.status = AppointmentStatus.CANCELLED
    appointment.cancelled_at = cancelled
    appointment.cancelled_by = "patient" if rng.random() < 0.8 else "Max Manager"
    appointment.cancel_reason = rng.choice(REASONS)
    appointment.policy_id = policy.id
    appointment.late_cancellation = inside_window(
        appointment.start_at, cancelled, policy.window_hours
    )


def _requests(session, rng, clinics, services, patients, appointments, policies, today, now):
    """Open booking requests (some exact, some only a day and time of day) and change requests."""
    for i in range(14):
        clinic = clinics[i % 2]
        service = rng.choice(services)
        day = today + timedelta(days=rng.randrange(1, 20))
        asked = now - timedelta(hours=rng.randrange(1, 60))
        session.add(
            Appointment(
                clinic_id=clinic.id,
                patient_id=rng.choice(patients).id,
                service_id=service.id,
                status=AppointmentStatus.REQUESTED,
                requested_day=day,
                time_of_day=rng.choice(list(TimeOfDay)),
                source=Source.ONLINE if i % 3 else Source.STAFF,
                notes="Prefers a female provider" if i == 3 else "",
                created_at=asked,
                booked_at=asked,
            )
        )
    upcoming = [
        a
        for a in appointments
        if a.status == AppointmentStatus.SCHEDULED and a.patient_id and a.start_at > now
    ]
    for i, appointment in enumerate(rng.sample(upcoming, 10)):
        kind = ChangeKind.RESCHEDULE if i % 2 == 0 else ChangeKind.CANCEL
        # asked since the booking; the policy's window is judged when it was asked
        asked = max(now - timedelta(hours=rng.randrange(1, 40)), appointment.booked_at)
        policy = policies[appointment.clinic_id]
        inside = inside_window(appointment.start_at, asked, policy.window_hours)
        charged = inside and kind == ChangeKind.CANCEL
        session.add(
            ChangeRequest(
                appointment_id=appointment.id,
                kind=kind,
                original_start_at=appointment.start_at,
                requested_start_at=appointment.start_at + timedelta(days=rng.randrange(1, 6))
                if kind == ChangeKind.RESCHEDULE
                else None,
                reason=rng.choice(REASONS),
                inside_window=inside,
                fee_cents=policy.late_cancel_fee_cents if charged else 0,
                points=policy.points_deducted if charged else 0,
                created_at=asked,
            )
        )


def _notes(session: Session, staff_user: int) -> None:
    """Each notes text (a team meeting's, a request's) as a note, as booking writes it: by the
    staff user for what staff entered, else by "Demo", when the appointment was made."""
    session.flush()
    rows = [
        {
            "appointment_id": a.id,
            "author_user_id": staff_user if a.source == Source.STAFF else None,
            "author_name": DEMO_PASSWORDS["staff"][0] if a.source == Source.STAFF else "Demo",
            "written_at": a.created_at,
            "text": a.notes.strip(),
        }
        for a in session.scalars(select(Appointment).where(Appointment.notes != ""))
        if a.notes.strip()
    ]
    if rows:
        session.execute(insert(AppointmentNote), rows)


def _proposal_links(session, appointments, now):
    """Each proposed (tentative) visit's link for its patient to answer, as sending a proposal
    issues it (core.requests.decisions.send_proposal): a week, or until the proposed time. Without
    one, the queue rightly shows the proposal lapsed: its patient could not answer it."""
    for appointment in appointments:
        if appointment.status == AppointmentStatus.TENTATIVE:
            ttl = min(PROPOSAL_TTL, max(appointment.start_at - now, timedelta(hours=1)))
            issued = tokens.issue(session, "proposal", appointment.id, ttl)
            issued.row.created_at, issued.row.expires_at = now, now + ttl


def _invitations(session, rng, patients, now):
    """Invitations in every state, each living its 14 days from when it was sent: pending ones
    sent in the last days, expired ones longer ago, enrolments inside the 14 days."""
    states = [
        InvitationStatus.PENDING,
        InvitationStatus.ENROLLED,
        InvitationStatus.EXPIRED,
        InvitationStatus.REVOKED,
    ]
    life = timedelta(days=invitations.DEFAULT_EXPIRY_DAYS)
    eligible = [p for p in patients if p.email and p.consent_email]
    for i, patient in enumerate(eligible[:160]):
        status = states[i % 4] if i < 120 else InvitationStatus.ENROLLED
        if status == InvitationStatus.PENDING:  # still open
            sent = now - timedelta(days=rng.randrange(0, life.days - 1), hours=rng.randrange(24))
        elif status == InvitationStatus.EXPIRED:  # its 14 days are over
            sent = now - life - timedelta(days=rng.randrange(1, 45))
        else:
            sent = now - timedelta(days=rng.randrange(1, 60))
        token = tokens.issue(session, "enroll", patient.id, life)
        token.row.created_at, token.row.expires_at = sent, sent + life
        invitation = PortalInvitation(
            patient_id=patient.id,
            email=patient.email,
            status=status,
            token_id=token.row.id,
            sent_at=sent,
            expires_at=sent + life,
        )
        if status == InvitationStatus.ENROLLED:
            enrolled = sent + timedelta(days=rng.randrange(0, 10), hours=3)
            invitation.enrolled_at = min(enrolled, now - timedelta(minutes=5))  # never ahead
            patient.portal_enrolled_at = invitation.enrolled_at
            token.row.used_at = invitation.enrolled_at
        elif status == InvitationStatus.REVOKED:
            invitation.revoked_at, invitation.revoked_reason = (
                min(sent + timedelta(days=1), now),
                "Email changed",
            )
            token.row.revoked_at = invitation.revoked_at
        session.add(invitation)


def _surveys(session, rng, appointments, now, share=None):
    """Survey requests two hours after a completed visit (none yet for a visit just over) and
    the answers that came back before now; returns the answered visits. Asked after 600 of
    the visits, or after the `share` of them given; an answer records its visit's package."""
    answered = []
    completed = [
        a
        for a in appointments
        if a.status == AppointmentStatus.COMPLETED
        and a.patient_id
        and a.completed_at + SURVEY_DELAY <= now
    ]
    replies = []  # each answered request and its response, given the request's id at one flush
    asked = min(600, len(completed)) if share is None else round(share * len(completed))
    for appointment in rng.sample(completed, asked):
        sent = appointment.completed_at + SURVEY_DELAY
        request = FeedbackRequest(
            appointment_id=appointment.id,
            patient_id=appointment.patient_id,
            sent_at=sent,
            sent_on=to_local(sent, appointment.clinic.timezone).date(),
        )
        session.add(request)
        appointment.feedback_status = FeedbackStatus.PENDING
        replied = sent + timedelta(hours=rng.randrange(1, 48))
        if rng.random() < 0.6 and replied <= now:
            nps = min(10, max(0, round(rng.gauss(8, 2.2))))
            request.answered_at = replied
            appointment.feedback_status = FeedbackStatus.COLLECTED
            answered.append((replied, appointment))
            response = SurveyResponse(
                appointment_id=appointment.id,
                clinic_id=appointment.clinic_id,
                provider_id=appointment.provider_id,
                service_id=appointment.service_id,
                package_id=appointment.package_id,  # its answers are the package's figures
                submitted_at=replied,
                nps=nps,
                rating=min(5, max(1, round(nps / 2))),
                answers={
                    "timely": rng.randint(1, 5),
                    "courtesy": rng.randint(2, 5),
                    "explained": rng.randint(2, 5),
                },
                comment=rng.choice(COMMENTS),
            )
            replies.append((request, response))
    session.flush()
    for request, response in replies:
        response.feedback_request_id = request.id
    session.add_all(response for _, response in replies)
    return answered


def _ledger(session, appointments, answered, policies):
    """The fees and points the history moved, written in the order it happened as core writes
    them: a late cancellation or no-show costs its policy's fee and deducts its points as far
    as the balance goes (core.policy.cancellation), an answered survey earns the settings'
    points (core.payments.points.award_survey_points). Balances stay their ledgers' sums."""
    rules = get_settings(session)
    earns = rules.survey_points if rules.survey_points_enabled else 0
    happened = []  # (when, appointment, what: True a charge, False survey points)
    for a in appointments:
        if a.status == AppointmentStatus.NO_SHOW:  # recorded once the visit's time is over
            happened.append((a.end_at, a.id, a, True))
        elif a.status == AppointmentStatus.CANCELLED and a.late_cancellation:
            happened.append((a.cancelled_at, a.id, a, True))
    if earns > 0:
        happened += [(replied, a.id, a, False) for replied, a in answered]
    patients = {}
    for at, _, a, charge in sorted(happened, key=lambda event: event[:2]):
        patient = patients.setdefault(a.patient_id, session.get(Patient, a.patient_id))
        entries = []
        if charge:
            policy = policies[a.clinic_id]
            late = a.status == AppointmentStatus.CANCELLED
            fee = policy.late_cancel_fee_cents if late else policy.no_show_fee_cents
            kind = LedgerKind.LATE_CANCEL_FEE if late else LedgerKind.NO_SHOW_FEE
            if fee:
                entries.append(LedgerEntry(kind=kind, amount_cents=fee, policy_id=policy.id))
            if policy.points_deducted:
                taken = min(policy.points_deducted, max(0, patient.points_balance))
                patient.points_balance -= taken
                entries.append(
                    LedgerEntry(kind=LedgerKind.POINTS, points=taken, policy_id=policy.id)
                )
        else:
            patient.points_balance += earns
            entries.append(LedgerEntry(kind=LedgerKind.POINTS_EARNED, points=earns))
        for entry in entries:
            entry.patient_id, entry.appointment_id, entry.created_at = patient.id, a.id, at
        session.add_all(entries)


def _outbox(session, rng, appointments, now):
    """A recent history of delivered and failed confirmations, so the outbox is not empty."""
    recent = [
        a
        for a in appointments
        if a.patient_id
        and a.status == AppointmentStatus.SCHEDULED
        and a.booked_at > now - timedelta(days=10)
    ]
    for appointment in rng.sample(recent, min(25, len(recent))):
        patient = appointment.patient
        when = clinic_time(appointment.clinic, appointment.start_at, zone=True)
        queued = notify.queue_for_patient(
            session,
            patient,
            "appointment_scheduled",
            {
                "when": when,
                "clinic_name": appointment.clinic.name,
                "clinic_phone": appointment.clinic.phone,
                "where": notify.visit_place(
                    appointment.clinic, appointment.mode == VisitMode.VIRTUAL
                ),
                "service_name": treatment_of(appointment),  # a package by its name
                "provider_name": appointment.provider.name,
            },
            appointment_id=appointment.id,
        )
        for notification in queued.notifications:
            notification.created_at = appointment.booked_at
            notification.attempts = 1
            if rng.random() < 0.12:
                notification.status = DeliveryStatus.FAILED
                notification.permanent_failure = True  # a 5xx answer is not retried
                notification.stop_kind = StopKind.REFUSED
                notification.last_error = (
                    delivery.PERMANENT + "the mail server answered 550 mailbox unavailable"
                )
            else:
                notification.status, notification.sent_at = (
                    DeliveryStatus.SENT,
                    appointment.booked_at,
                )
