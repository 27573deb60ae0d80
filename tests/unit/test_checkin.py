"""Check-in by code (scanner text or camera picture) and the Today board.

Re-run on PostgreSQL by tests/integration/test_calendar_pg.py."""

from __future__ import annotations

import io
import threading
import time as time_module
from datetime import time, timedelta

import pytest
from PIL import Image
from sqlalchemy import select, update

from core.kernel import tokens
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import DomainError, InvalidTransition, PermissionDenied, ValidationError
from core.kernel.money import clinic_time
from core.scheduling import appointments, checkin, codes, moves, today, visits
from core.scheduling.states import Action
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    LinkToken,
    Package,
    Provider,
    ProviderClinic,
    Service,
    TimeOff,
)
from db.types import utcnow
from tests.factories import make_visit

S = AppointmentStatus
TZ = "Europe/London"


def scheduled_start():
    """In two hours, but on the clinic's today (check-in is open that day only)."""
    midnight = local_to_utc(to_local(utcnow(), TZ).date() + timedelta(days=1), time(0), TZ)
    return min(utcnow() + timedelta(hours=2), midnight - timedelta(minutes=1))


def scheduled(db, world, start=None, minutes=30) -> int:
    start = start or scheduled_start()
    with db.write() as session:
        row = make_visit(
            session,
            world,
            status=S.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=minutes),
        )
        return row.id


def code_for(db, world, appointment_id) -> str:
    with db.write() as session:
        code, png = checkin.issue_code_for(session, world.staff, appointment_id)
    assert png.startswith(b"\x89PNG") and code.startswith(codes.CODE_PREFIX)
    return code


def scan(db, actor, code, **extra):
    with db.write() as session:
        return checkin.check_in_by_code(session, actor, code, **extra)


def test_a_code_checks_the_patient_in_once(db, world):
    appointment_id = scheduled(db, world)
    code = code_for(db, world, appointment_id)
    outcome = scan(db, world.staff, f"  {code}\n")
    assert outcome.status == S.CHECKED_IN
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert row.status == S.CHECKED_IN and row.checked_in_at is not None
    with pytest.raises(ValidationError, match="used already .* a code works once"):
        scan(db, world.staff, code)


def test_the_raw_token_without_prefix_works_too(db, world):
    code = code_for(db, world, scheduled(db, world))
    assert scan(db, world.staff, code.removeprefix(codes.CODE_PREFIX)).status == S.CHECKED_IN


@pytest.mark.parametrize("code", ["", "hello world", "CDCHK:nope", "x" * 300])
def test_wrong_codes_get_a_clear_message(db, world, code):
    with pytest.raises(ValidationError, match="not a ClinicDesk check-in code"):
        scan(db, world.staff, code)


def test_foreign_codes_are_refused(db, world):
    appointment_id = scheduled(db, world)
    with db.write() as session:
        survey = tokens.issue(session, "survey", appointment_id, timedelta(days=1)).raw
        other = Clinic(name="Other", timezone=TZ)
        session.add(other)
        session.flush()
        other_id = other.id
    with pytest.raises(ValidationError, match="not a check-in code"):
        scan(db, world.staff, survey)
    fresh = code_for(db, world, appointment_id)
    with pytest.raises(ValidationError, match="at Test Clinic, not at this clinic"):
        scan(db, world.staff, fresh, clinic_id=other_id)
    with db.read() as session:  # nothing was consumed by the refusals
        assert session.get(Appointment, appointment_id).status == S.SCHEDULED
    assert scan(db, world.staff, fresh, clinic_id=world.clinic_id).status == S.CHECKED_IN


def test_a_cancelled_appointment_is_not_checked_in_and_the_code_stays_unused(db, world):
    appointment_id = scheduled(db, world)
    code = code_for(db, world, appointment_id)
    with db.write() as session:
        moves.cancel_appointment(session, world.staff, appointment_id, reason="Ill")
    with pytest.raises(InvalidTransition, match="cancelled appointment cannot be checked in"):
        scan(db, world.staff, code)
    with db.read() as session:
        token = session.scalar(select(LinkToken).where(LinkToken.purpose == "check_in"))
        assert token.used_at is None


def _moved(db, world, appointment_id, start) -> None:
    """The visit moved to `start` as the desk moves it (its code stays the one first sent)."""
    with db.write() as session:
        moves.reschedule(
            session,
            world.staff,
            appointment_id,
            start_at=start,
            allow_double_booking=True,
            outside_hours_override=True,
        )


def test_a_visit_moved_to_a_later_day_is_checked_in_by_the_code_it_was_sent(db, world):
    """The confirmation's code expires a day after the visit's first time; moved since to
    today, the patient's code works today (it said "expired … mark them arrived by hand")."""
    appointment_id = scheduled(db, world, utcnow() + timedelta(days=3))
    code = code_for(db, world, appointment_id)
    with db.write() as session:  # sent for a visit at an earlier time, over since
        first = utcnow() - timedelta(days=2)
        session.execute(update(LinkToken).values(expires_at=first + timedelta(days=1)))
    _moved(db, world, appointment_id, scheduled_start())
    outcome = scan(db, world.staff, code, clinic_id=world.clinic_id)
    assert outcome.status == S.CHECKED_IN
    with pytest.raises(ValidationError, match="used already"):
        scan(db, world.staff, code)


def test_a_visit_moved_two_months_on_keeps_its_code_past_the_first_times_pruning(db, world):
    """Housekeeping deletes check-in codes 30 days after they expire; a code kept the expiry of
    the visit's first time, so a visit moved two months on lost it before its day ("not a
    ClinicDesk check-in code"). The expiry now follows the visit."""
    appointment_id = scheduled(db, world, utcnow() + timedelta(days=3))
    code_for(db, world, appointment_id)
    later = utcnow().replace(microsecond=0) + timedelta(days=60)
    _moved(db, world, appointment_id, later)
    with db.read() as session:
        token = session.scalar(select(LinkToken).where(LinkToken.purpose == "check_in"))
        assert token.expires_at == later + timedelta(days=1)
        pruned_then = utcnow() + timedelta(days=40)  # past the first time's expiry and keep
        assert not session.scalar(select(LinkToken.id).where(tokens.stale(pruned_then)))


def test_yesterdays_expired_code_names_the_visits_day_not_a_check_in_that_refuses(db, world):
    """A past visit's code, expired: the desk hears it can no longer be checked in and what to
    do instead (it said "mark them arrived by hand", which the visit's day then refuses)."""
    yesterday = local_to_utc(to_local(utcnow(), TZ).date() - timedelta(days=1), time(11), TZ)
    appointment_id = scheduled(db, world, yesterday)
    code = code_for(db, world, appointment_id)
    with db.write() as session:
        session.execute(update(LinkToken).values(expires_at=utcnow() - timedelta(minutes=1)))
    with pytest.raises(ValidationError) as refused:
        scan(db, world.staff, code)
    assert "can no longer be checked in. Record the visit as completed or a no-show" in str(
        refused.value
    )
    assert "arrived by hand" not in str(refused.value)
    # what it says holds: a by-hand check-in is refused too
    with db.write() as session, pytest.raises(InvalidTransition, match="no longer be checked in"):
        visits.check_in(session, world.staff, appointment_id)


def test_a_code_for_another_day_is_refused_and_stays_usable_on_the_day(db, world):
    day = to_local(utcnow(), TZ).date() + timedelta(days=3)
    appointment_id = scheduled(db, world, local_to_utc(day, time(11), TZ))
    code = code_for(db, world, appointment_id)
    saturday = local_to_utc(day - timedelta(days=3), time(10), TZ)
    with pytest.raises(
        ValidationError, match=r"This code is for .*11:00; check-in opens on the day"
    ):
        scan(db, world.staff, code, now=saturday)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.SCHEDULED
        assert session.scalar(select(LinkToken.used_at)) is None
    # the manual check-in is refused the same way
    with db.write() as session, pytest.raises(InvalidTransition, match="check-in opens on the day"):
        visits.check_in(session, world.staff, appointment_id, now=saturday)
    # the day after, too late
    with db.write() as session, pytest.raises(InvalidTransition, match="no longer be checked in"):
        visits.check_in(
            session,
            world.staff,
            appointment_id,
            now=local_to_utc(day, time(9), TZ) + timedelta(days=1),
        )
    # on the day itself, before the time, the code works
    on_the_day = local_to_utc(day, time(8, 30), TZ)
    assert scan(db, world.staff, code, now=on_the_day).status == S.CHECKED_IN


def test_a_code_for_a_patient_checked_in_by_hand_says_so_and_by_whom(db, world):
    """Checked in by hand at one desk, then the code scanned at another: the desk hears who
    did it and when (it read "A checked-in appointment cannot be checked in. What it allows:
    undo the check-in, complete")."""
    appointment_id = scheduled(db, world)
    code = code_for(db, world, appointment_id)
    with db.write() as session:
        visits.check_in(session, world.manager, appointment_id)
        row = session.get(Appointment, appointment_id)
        arrived = clinic_time(row.clinic, row.checked_in_at)
    with pytest.raises(ValidationError) as refused:
        scan(db, world.staff, code, clinic_id=world.clinic_id)
    said = str(refused.value)
    assert said.startswith(f"Alex Morgan is checked in already (at {arrived}, by ")
    assert f"by {world.manager.label}); nothing more to do" in said and "undo" not in said
    with db.read() as session:  # nothing was used or changed
        assert session.scalar(select(LinkToken.used_at)) is None
        assert session.get(Appointment, appointment_id).status == S.CHECKED_IN


def test_a_code_scanned_while_another_desk_checks_the_patient_in_says_so(db, world):
    """The desk's check-in by hand commits while the scan is under way: the scan waits for it
    and says the patient is checked in already, by whom (on PostgreSQL it read the visit as
    scheduled, then met the bare "cannot be checked in" refusal)."""
    appointment_id = scheduled(db, world)
    code = code_for(db, world, appointment_id)
    in_hand, results = threading.Event(), []

    def by_hand():
        with db.write() as session:
            visits.check_in(session, world.manager, appointment_id)
            in_hand.set()
            time_module.sleep(0.5)  # the scan starts meanwhile and waits for this commit

    def scanning():
        in_hand.wait(10)
        try:
            scan(db, world.staff, code, clinic_id=world.clinic_id)
            results.append("checked in")
        except DomainError as error:
            results.append(str(error))

    threads = [threading.Thread(target=by_hand), threading.Thread(target=scanning)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    [said] = results
    assert said.startswith("Alex Morgan is checked in already") and world.manager.label in said


def test_a_mistaken_check_in_can_be_undone_and_is_audited(db, world):
    appointment_id = scheduled(db, world)
    scan(db, world.staff, code_for(db, world, appointment_id))
    with db.read() as session:
        detail = appointments.get_appointment_detail(session, world.staff, appointment_id)
    assert Action.UNDO_CHECK_IN in detail.actions
    with db.write() as session:
        outcome = visits.undo_check_in(session, world.staff, appointment_id)
    assert outcome.status == S.SCHEDULED and outcome.notified == []
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert row.status == S.SCHEDULED and row.checked_in_at is None
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.entity_id == appointment_id)
        ).all()[-1]
        assert (event.action, event.from_status, event.to_status) == (
            "undo_check_in",
            "checked_in",
            "scheduled",
        )
    with db.write() as session, pytest.raises(InvalidTransition, match="cannot be reset"):
        visits.undo_check_in(session, world.staff, appointment_id)
    with db.write() as session:  # and it can be checked in again by hand
        assert visits.check_in(session, world.staff, appointment_id).status == S.CHECKED_IN


def test_check_in_needs_permission(db, world):
    from core.kernel.authz import patient_actor

    code = code_for(db, world, scheduled(db, world))
    with pytest.raises(PermissionDenied):
        scan(db, patient_actor("Alex"), code)


def test_qr_pictures_decode_to_the_code():
    png = codes.qr_png("CDCHK:abc123")
    assert checkin.decode_qr(png) == "CDCHK:abc123"
    # a camera shot: JPEG, larger, on a grey background
    shot = Image.new("RGB", (900, 700), (200, 200, 200))
    shot.paste(Image.open(io.BytesIO(png)).convert("RGB").resize((400, 400)), (250, 150))
    buffer = io.BytesIO()
    shot.save(buffer, format="JPEG", quality=85)
    assert checkin.decode_qr(buffer.getvalue()) == "CDCHK:abc123"


def test_pictures_without_a_code_get_a_clear_message():
    blank = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(blank, format="PNG")
    with pytest.raises(ValidationError, match="No QR code found"):
        checkin.decode_qr(blank.getvalue())
    with pytest.raises(ValidationError, match="not a picture"):
        checkin.decode_qr(b"not an image at all")
    with pytest.raises(ValidationError, match="empty"):
        checkin.decode_qr(b"")


def test_camera_picture_to_check_in(db, world):
    appointment_id = scheduled(db, world)
    code = code_for(db, world, appointment_id)
    text = checkin.decode_qr(codes.qr_png(code))
    assert scan(db, world.staff, text).status == S.CHECKED_IN


# ---------------------------------------------------------------- the Today board


def test_today_board_stages_waiting_time_and_allowed_actions(db, world):
    now = utcnow().replace(microsecond=0)
    local_now = to_local(now, TZ)
    if local_now.hour < 3 or local_now.hour > 20:  # keep every time on the same local day
        now = local_to_utc(local_now.date(), time(12), TZ)
    expected = scheduled(db, world, now + timedelta(hours=1))
    late = scheduled(db, world, now - timedelta(minutes=10))
    waiting = scheduled(db, world, now + timedelta(minutes=30))
    seen = scheduled(db, world, now - timedelta(minutes=5))
    with db.write() as session:
        for ident, arrived in (
            (waiting, now - timedelta(minutes=12)),
            (seen, now - timedelta(minutes=20)),
        ):
            row = session.get(Appointment, ident)
            row.status, row.checked_in_at = S.CHECKED_IN, arrived
    with db.read() as session:
        rows = {r.id: r for r in today.list_today(session, world.staff, world.clinic_id, now=now)}
    assert rows[expected].stage == "Expected"
    assert not rows[expected].can_complete and not rows[expected].can_no_show
    assert rows[late].stage == "Not arrived yet" and rows[late].can_no_show
    assert rows[waiting].stage == "Waiting" and rows[waiting].waited_minutes == 12
    assert not rows[waiting].can_complete and not rows[waiting].can_no_show
    assert rows[seen].stage == "With provider" and rows[seen].waited_minutes == 15
    assert rows[seen].can_complete and not rows[seen].can_check_in
    counts = today.stage_counts(list(rows.values()))
    assert counts["Waiting"] == 1 and counts["With provider"] == 1 and counts["Expected"] == 1


def test_today_board_names_a_package_visit_by_the_package(db, world):
    now = local_to_utc(to_local(utcnow(), TZ).date(), time(12), TZ)
    plain = scheduled(db, world, now + timedelta(hours=1))
    glow = scheduled(db, world, now + timedelta(hours=2))
    tomorrow = scheduled(db, world, now + timedelta(days=1))
    with db.write() as session:
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        package = Package(name="Glow", price_cents=12000)
        session.add_all([peel, package])
        session.flush()
        for ident in (glow, tomorrow):
            session.add_all(
                [
                    AppointmentService(appointment_id=ident, service_id=world.service_id),
                    AppointmentService(appointment_id=ident, service_id=peel.id, position=1),
                ]
            )
            session.get(Appointment, ident).package_id = package.id
    with db.read() as session:
        rows = {r.id: r for r in today.list_today(session, world.staff, world.clinic_id, now=now)}
        calls = today.call_list(session, world.staff, world.clinic_id, now=now)
    assert rows[plain].service == "Consultation"
    assert rows[glow].service == "Glow (Consultation + Peel)"
    assert [c.service for c in calls if c.id == tomorrow] == ["Glow (Consultation + Peel)"]


def test_today_flags_visits_left_booked_with_a_provider_on_time_off(db, world):
    """Dr Test leaves at noon: the visits still to be seen in that time (one only partly) are
    flagged, named with what to do; the morning's, a done one and another provider's are not."""
    day = to_local(utcnow(), TZ).date()
    now = local_to_utc(day, time(7, 30), TZ)

    def at(hour, minute=0):
        return local_to_utc(day, time(hour, minute), TZ)

    morning, overlapping, afternoon = (
        scheduled(db, world, at(9)),
        scheduled(db, world, at(11, 45)),
        scheduled(db, world, at(14)),
    )
    with db.write() as session:
        done = make_visit(session, world, status=S.COMPLETED, start_at=at(13), end_at=at(13, 30)).id
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        elsewhere = make_visit(session, world, status=S.SCHEDULED, start_at=at(15), end_at=at(16))
        elsewhere.provider_id = other.id
        elsewhere = elsewhere.id
        session.add(TimeOff(provider_id=world.provider_id, starts_at=at(12), ends_at=at(17)))
    with db.read() as session:
        rows = today.list_today(session, world.staff, world.clinic_id, now=now)
    away = {r.id for r in rows if r.away}
    assert away == {overlapping, afternoon}
    assert {morning, done, elsewhere} <= {r.id for r in rows}
    said = today.away_warning(rows)
    assert said.startswith("2 visits are still booked with a provider on time off (11:45 ")
    assert "Alex Morgan with Dr Test; 14:00 Alex Morgan with Dr Test)" in said
    assert "cancel it as the practice (no fee), on the Calendar" in said
    assert today.away_warning([r for r in rows if r.id == morning]) == ""


def test_today_board_shows_only_the_clinic_local_day(db, world):
    now = local_to_utc(to_local(utcnow(), TZ).date(), time(12), TZ)
    tomorrow = scheduled(db, world, now + timedelta(days=1))
    todays = scheduled(db, world, now + timedelta(hours=3))
    with db.read() as session:
        ids = [r.id for r in today.list_today(session, world.staff, world.clinic_id, now=now)]
    assert todays in ids and tomorrow not in ids


def test_a_provider_who_signs_in_lands_on_the_clinic_where_they_work_today(db, world):
    """README: a provider who signs in sees their own day first. Dr Test (linked to the staff
    account) works at Test Clinic (London, hours every day) and at Lakeside (New York, first
    by name): they land where a patient of theirs is still to be seen today, else where they
    saw patients today, else where their hours fall today; a user with no provider record
    lands nowhere in particular."""
    now = local_to_utc(to_local(utcnow(), TZ).date(), time(12), TZ)  # 7:00 in New York
    with db.write() as session:
        lakeside = Clinic(name="Lakeside", timezone="America/New_York", phone="", email="")
        session.add(lakeside)
        session.flush()
        lakeside = lakeside.id
        session.add(ProviderClinic(provider_id=world.provider_id, clinic_id=lakeside))
        session.get(Provider, world.provider_id).user_id = world.staff.user_id

    def home():
        with db.read() as session:
            return today.own_day(session, world.staff, now=now)

    own = home()
    assert (own.provider_id, own.clinic_id) == (world.provider_id, world.clinic_id)  # hours
    assert set(own.clinic_ids) == {world.clinic_id, lakeside}
    with db.write() as session:  # their New York patient at 10:00 there: that is their day
        start = now + timedelta(hours=3)
        visit = make_visit(
            session, world, status=S.SCHEDULED, start_at=start, end_at=start + timedelta(hours=1)
        )
        visit.clinic_id = lakeside
        visit = visit.id
    assert home().clinic_id == lakeside
    with db.write() as session:  # seen already: where they saw patients comes before hours
        session.get(Appointment, visit).status = S.COMPLETED
    assert home().clinic_id == lakeside
    scheduled(db, world, now + timedelta(hours=4))  # a London patient still to come
    assert home().clinic_id == world.clinic_id
    with db.read() as session:
        assert today.own_day(session, world.manager, now=now) is None
