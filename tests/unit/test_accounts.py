"""Sign-in, lockout, sessions and the owner's user administration."""

import contextlib
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from core.kernel import accounts
from core.kernel.authz import CHOOSE_OWN_FIRST, Permission
from core.kernel.errors import AuthenticationFailed, Conflict, PermissionDenied, ValidationError
from db.models import (
    AppointmentStatus,
    AuditEvent,
    Clinic,
    Provider,
    Role,
    User,
    UserSession,
)
from db.types import utcnow
from tests.factories import PASSWORD, make_user, make_visit


def _sign_in(db, username, password):
    with db.write() as session:
        return accounts.sign_in(session, username, password)


def test_right_password_signs_in_and_records_it(db, world):
    result = _sign_in(db, "manager", PASSWORD)
    assert isinstance(result, accounts.SignedIn)
    assert result.actor.role == Role.MANAGER
    with db.read() as session:
        assert session.get(UserSession, result.session_id).ended_at is None
        assert session.query(AuditEvent).filter_by(action="sign_in").count() == 1


def test_a_sign_in_and_a_wrong_password_record_where_they_came_from(db, world):
    """'Who signed in as Fran?': before, the audit log named the account only, so people
    sharing a password, or someone guessing it, could not be told apart."""
    for password in ("not the password", PASSWORD):
        accounts.sign_in_in_steps(db.read, db.write, "staff", password, "203.0.113.7")
    with db.read() as session:
        said = dict(
            session.execute(
                select(AuditEvent.action, AuditEvent.details).where(
                    AuditEvent.action.in_(("sign_in_failed", "sign_in"))
                )
            ).all()
        )
    assert said == {
        "sign_in_failed": {"address": "203.0.113.7"},
        "sign_in": {"via": "password", "address": "203.0.113.7"},
    }


def test_wrong_password_and_unknown_user_get_the_same_message(db, world):
    wrong = _sign_in(db, "manager", "not the password")
    unknown = _sign_in(db, "nobody", "not the password")
    assert isinstance(wrong, AuthenticationFailed) and isinstance(unknown, AuthenticationFailed)
    assert str(wrong) == str(unknown) == accounts.SIGN_IN_FAILED


def test_five_failures_lock_the_account_for_fifteen_minutes(db, world):
    for _ in range(accounts.MAX_FAILURES):
        assert isinstance(_sign_in(db, "staff", "wrong password!"), AuthenticationFailed)
    locked = _sign_in(db, "staff", PASSWORD)
    assert isinstance(locked, AuthenticationFailed) and str(locked) == accounts.SIGN_IN_FAILED
    with db.write() as session:
        user = session.query(User).filter_by(username="staff").one()
        assert user.locked_until - utcnow() > timedelta(minutes=14)
        user.locked_until = utcnow() - timedelta(seconds=1)  # fifteen minutes later
    assert isinstance(_sign_in(db, "staff", PASSWORD), accounts.SignedIn)


def test_the_owner_unlocks_a_locked_colleague_who_keeps_their_password(db, world):
    """A colleague locked out by five wrong passwords knew their password all along: before,
    the owner could only reset it (a password the owner then knows, to be changed at once),
    and Users went on showing 'Locked until' a lock already over. Now the owner unlocks the
    account (audited), the colleague signs in with their own, and a lock that is over is
    shown as none."""
    for _ in range(accounts.MAX_FAILURES):
        _sign_in(db, "staff", "wrong password!")
    with db.write() as session:
        (row,) = [u for u in accounts.list_users(session, world.owner) if u.username == "staff"]
        assert row.locked_until - utcnow() > timedelta(minutes=14)
        with pytest.raises(PermissionDenied):
            accounts.unlock(session, world.manager, world.staff.user_id)
        accounts.unlock(session, world.owner, world.staff.user_id)
    with db.write() as session:
        staff = session.get(User, world.staff.user_id)
        assert staff.locked_until is None and staff.failed_attempts == 0
        assert not staff.password_change_due  # their password stays theirs
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "account_unlocked"))
        assert event.user_id == world.owner.user_id and event.entity_id == staff.id
        assert event.details == {"locked_until": row.locked_until.isoformat(timespec="seconds")}
        with pytest.raises(ValidationError, match="not locked, so nothing was changed"):
            accounts.unlock(session, world.owner, world.staff.user_id)
    assert isinstance(_sign_in(db, "staff", PASSWORD), accounts.SignedIn)
    with db.write() as session:  # a lock that is over (the row keeps its moment) is none
        session.get(User, world.staff.user_id).locked_until = utcnow() - timedelta(seconds=1)
    with db.write() as session:
        listed = accounts.list_users(session, world.owner)
        assert [u.locked_until for u in listed if u.username == "staff"] == [None]


def test_wrong_passwords_at_once_each_count_and_lock_the_account(db, world):
    """Twenty wrong passwords at the same moment, each in its own transaction: the first four
    are counted, the fifth locks the account, the other fifteen find it locked (PostgreSQL
    under-counted them: each added one to the count it had read)."""
    barrier = threading.Barrier(20)

    def attempt() -> None:
        with db.write() as session:
            barrier.wait(timeout=30)  # all begin before any counts (SQLite: at BEGIN)
            accounts.sign_in(session, "staff", "wrong password!")

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with db.read() as session:
        user = session.query(User).filter_by(username="staff").one()
        actions = dict(
            session.execute(
                select(AuditEvent.action, func.count())
                .where(AuditEvent.entity == "user", AuditEvent.entity_id == user.id)
                .where(AuditEvent.action != "user_created")
                .group_by(AuditEvent.action)
            ).all()
        )
    assert actions == {"sign_in_failed": 4, "account_locked": 1, "sign_in_refused_locked": 15}
    assert user.locked_until - utcnow() > timedelta(minutes=14) and user.failed_attempts == 0


def test_cookie_handoff_works_once_and_resumes_the_session(db, world):
    signed = _sign_in(db, "owner", PASSWORD)
    with db.write() as session:
        cookie = accounts.exchange_handoff(session, signed.handoff_code)
        assert cookie and accounts.exchange_handoff(session, signed.handoff_code) is None
    with db.write() as session:
        actor, session_id = accounts.resume_session(session, cookie, idle_minutes=480)
    assert actor.role == Role.OWNER and session_id == signed.session_id
    with db.write() as session:
        assert accounts.resume_session(session, "forged-cookie", 480) is None


def test_idle_session_ends_and_sign_out_ends_it_on_the_server(db, world):
    signed = _sign_in(db, "owner", PASSWORD)
    later = utcnow() + timedelta(minutes=481)
    with db.write() as session:
        assert accounts.touch_session(session, signed.session_id, 480, now=later) is None
    fresh = _sign_in(db, "owner", PASSWORD)
    with db.write() as session:
        assert accounts.touch_session(session, fresh.session_id, 480) is not None
        accounts.end_session(session, fresh.session_id)
    with db.write() as session:
        assert accounts.touch_session(session, fresh.session_id, 480) is None


def test_only_the_owner_manages_users(db, world):
    with db.write() as session, pytest.raises(PermissionDenied, match="manager"):
        accounts.create_user(session, world.manager, "newbie", "New Bie", "staff", PASSWORD)
    with db.write() as session:
        user = accounts.create_user(session, world.owner, "newbie", "New Bie", "staff", PASSWORD)
        assert user.role == Role.STAFF
    with db.write() as session, pytest.raises(Conflict, match="taken"):
        accounts.create_user(session, world.owner, "newbie", "Again", "staff", PASSWORD)


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("x", PASSWORD, "username"),
        ("good.name", "short", "at least 10"),
        ("good.name", "aaaaaaaaaa", "too easy to guess.*unrelated words"),
        ("good.name", "password123", "too easy to guess.*common"),
        ("good.name", "good.name.2024", "too easy to guess"),
        ("good.name", "qwertyuiop", "too easy to guess"),
        ("UPPER ok", PASSWORD, "username"),
    ],
)
def test_bad_user_input_says_what_to_fix(db, world, username, password, message):
    with db.write() as session, pytest.raises(ValidationError, match=message):
        accounts.create_user(session, world.owner, username, "Name", "staff", password)


@pytest.mark.parametrize(
    "email", ["ann@", "ann smith@example.org", "@example.org", "ann@localhost"]
)
def test_a_user_email_that_is_not_an_address_is_refused(db, world, email):
    """The email signs a colleague in through single sign-on: only an '@' was asked for, so
    'ann@' was stored and that colleague could never sign in with their organisation account."""
    with db.write() as session, pytest.raises(ValidationError, match="not a valid address"):
        accounts.create_user(session, world.owner, "ann", "Ann", "staff", PASSWORD, email)
    with db.write() as session:
        user = accounts.create_user(
            session, world.owner, "ann", "Ann", "staff", PASSWORD, " Ann@Example.ORG "
        )
        assert user.email == "ann@example.org"


def test_role_change_deactivation_and_reset_end_sessions_and_keep_an_owner(db, world):
    signed = _sign_in(db, "staff", PASSWORD)
    with db.write() as session:
        accounts.change_role(session, world.owner, world.staff.user_id, Role.MANAGER)
    with db.write() as session:
        assert accounts.touch_session(session, signed.session_id, 480) is None
        with pytest.raises(ValidationError, match="last active owner"):
            accounts.change_role(session, world.owner, world.owner.user_id, Role.STAFF)
    with db.write() as session, pytest.raises(ValidationError, match="own account"):
        accounts.set_active(session, world.owner, world.owner.user_id, False)
    with db.write() as session:
        accounts.set_active(session, world.owner, world.manager.user_id, False)
        accounts.reset_password(session, world.owner, world.staff.user_id, "a brand new password")
    assert isinstance(_sign_in(db, "manager", PASSWORD), AuthenticationFailed)
    assert isinstance(_sign_in(db, "staff", "a brand new password"), accounts.SignedIn)


def test_deactivating_says_what_still_goes_on_in_their_name(db, world):
    """Before, 'Deactivated.' was all the owner heard: the leaver's provider record went on
    being offered for bookings, with their visits ahead, and a clinic inbox that was their
    address went on receiving the clinic's notifications. A second press deactivated them
    again (audited twice) instead of saying so."""
    with db.write() as session:
        session.get(Provider, world.provider_id).user_id = world.manager.user_id
        session.get(Clinic, world.clinic_id).email = "Manager@Example.org"
        start = utcnow() + timedelta(days=2)
        for days in (0, 1, -9):  # two visits ahead, one past
            make_visit(
                session,
                world,
                status=AppointmentStatus.SCHEDULED,
                start_at=start + timedelta(days=days),
                end_at=start + timedelta(days=days, minutes=30),
            )
    with db.write() as session:
        notes = accounts.set_active(session, world.owner, world.manager.user_id, False)
    assert notes == [
        "Their provider record, Dr Test, is still active and offered for bookings (2 visits "
        "ahead). If they no longer see patients, move those visits and deactivate it on "
        "Providers.",
        "The inbox of Test Clinic is their address, manager@example.org: it still receives the "
        "clinic's notifications, patients' names in them. Set another on Clinics and rooms.",
    ]
    with db.write() as session, pytest.raises(ValidationError) as refused:
        accounts.set_active(session, world.owner, world.manager.user_id, False)
    assert str(refused.value) == (
        "Manager is deactivated already, so nothing was changed. Choose Reactivate to change it."
    )
    with db.write() as session:
        assert accounts.set_active(session, world.owner, world.manager.user_id, True) == []
        assert accounts.set_active(session, world.owner, world.staff.user_id, False) == []
    with db.read() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action.like("user_%activated"))
            .order_by(AuditEvent.id)
        ).all()
    assert actions == ["user_deactivated", "user_activated", "user_deactivated"]


def test_an_owner_cannot_change_their_own_role(db, world):
    """Before, an owner demoting themself (another owner there) went through and was signed
    out at once, told their session had ended 'so nothing was done'."""
    with db.write() as session:
        second = make_user(session, "owner2", Role.OWNER)
    with db.write() as session, pytest.raises(ValidationError) as refused:
        accounts.change_role(session, world.owner, world.owner.user_id, Role.MANAGER)
    assert str(refused.value) == (
        "You cannot change your own role: it would sign you out at once. Another owner can "
        "change it for you."
    )
    with db.write() as session:  # the other owner can, and the audit says who did
        accounts.change_role(session, second, world.owner.user_id, Role.MANAGER)
    with db.read() as session:
        assert session.get(User, world.owner.user_id).role == Role.MANAGER
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "user_role_changed"))
        assert (event.user_id, event.from_status, event.to_status) == (
            second.user_id,
            "owner",
            "manager",
        )


def test_choosing_the_role_a_person_has_changes_nothing(db, world):
    """Before, pressing Change role with the role they had signed the person out (every
    session ended) and audited a change from staff to staff."""
    signed = _sign_in(db, "staff", PASSWORD)
    with db.write() as session, pytest.raises(ValidationError) as refused:
        accounts.change_role(session, world.owner, world.staff.user_id, "staff")
    assert str(refused.value) == "Staff is staff already; choose another role to change it."
    with db.write() as session:
        assert accounts.touch_session(session, signed.session_id, 480) is not None
        assert not session.scalar(
            select(AuditEvent.id).where(AuditEvent.action == "user_role_changed")
        )


def test_a_person_changes_their_own_password_after_a_reset(db, world):
    """The owner resets a forgotten password; its owner then chooses their own: the current
    one first, a weak or unchanged new one refused, other sessions ended, audited."""
    with db.write() as session:
        accounts.reset_password(session, world.owner, world.staff.user_id, "tangerine quarry 1")
    here = _sign_in(db, "staff", "tangerine quarry 1")
    elsewhere = _sign_in(db, "staff", "tangerine quarry 1")
    wrong = accounts.change_own_password(  # counted as a failed sign-in: returned, kept
        db.read, db.write, world.staff, "wrong one here", "lantern orchard pebble"
    )
    assert isinstance(wrong, AuthenticationFailed) and "not your current password" in str(wrong)
    with db.read() as session:
        assert session.get(User, world.staff.user_id).failed_attempts == 1
    cases = [
        ("tangerine quarry 1", "tangerine quarry 1", "is the current one"),
        ("tangerine quarry 1", "password12", "too easy to guess"),
    ]
    for current, new, words in cases:
        with pytest.raises(ValidationError, match=words):
            accounts.change_own_password(
                db.read, db.write, world.staff, current, new, keep_session_id=here.session_id
            )
    assert (
        accounts.change_own_password(
            db.read,
            db.write,
            world.staff,
            "tangerine quarry 1",
            "lantern orchard pebble rowing",
            keep_session_id=here.session_id,
        )
        is None
    )
    with db.write() as session:
        assert accounts.touch_session(session, here.session_id, 480) is not None
        assert accounts.touch_session(session, elsewhere.session_id, 480) is None
    assert isinstance(_sign_in(db, "staff", "tangerine quarry 1"), AuthenticationFailed)
    assert isinstance(_sign_in(db, "staff", "lantern orchard pebble rowing"), accounts.SignedIn)
    with db.read() as session:
        stored = session.get(User, world.staff.user_id).password_hash
        assert stored.startswith("$argon2id$") and "lantern" not in stored
        assert (
            session.scalar(
                select(AuditEvent.entity_id).where(AuditEvent.action == "password_changed")
            )
            == world.staff.user_id
        )


def test_a_password_the_owner_chose_allows_nothing_until_its_holder_chooses_their_own(db, world):
    """The owner gives a new colleague their first password, and resets a forgotten one: the
    owner knows both, and before, they stayed the colleague's until the colleague thought to
    change them. Signed in with one, the colleague may do nothing (core refuses, whatever the
    role) until they choose their own. The owner's own reset is theirs, and accounts made
    otherwise (the first owner, the command line, the world's users) are not flagged."""
    from core.patients import records

    with db.write() as session:
        made = accounts.create_user(
            session, world.owner, "fran", "Fran Desk", "manager", "violet harbour kettle", None
        )
        assert made.password_change_due
    fran = _sign_in(db, "fran", "violet harbour kettle").actor
    assert fran.password_change_due and not fran.can(Permission.PATIENTS_READ)
    with db.write() as session, pytest.raises(PermissionDenied) as refused:
        records.update_patient(session, fran, world.patient_id, first_name="Mallory")
    assert str(refused.value) == CHOOSE_OWN_FIRST
    accounts.change_own_password(
        db.read, db.write, fran, "violet harbour kettle", "lantern orchard pebble rowing"
    )
    fran = _sign_in(db, "fran", "lantern orchard pebble rowing").actor
    assert not fran.password_change_due and fran.can(Permission.PATIENTS_READ)
    with db.write() as session:  # a reset by the owner: due again; the owner's own: not
        accounts.reset_password(session, world.owner, fran.user_id, "tangerine quarry whisper")
        accounts.reset_password(session, world.owner, world.owner.user_id, "ochre fjord lantern")
    with db.read() as session:
        assert session.get(User, fran.user_id).password_change_due
        assert not session.get(User, world.owner.user_id).password_change_due
        assert not session.scalar(
            select(func.count()).where(User.password_change_due, User.id != fran.user_id)
        )


def test_two_owners_removing_each_other_at_once_leave_one_owner(db, world, monkeypatch):
    """Each owner deactivates (or demotes) the other at the same moment: on PostgreSQL each
    counted the other as the remaining active owner, both went through, and the practice was
    left with no owner (nobody could manage accounts or the policy again)."""
    with db.write() as session:
        second = make_user(session, "owner2", Role.OWNER)
    first = world.owner
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    counted = accounts._keep_an_owner

    def count_then_wait(session, user) -> None:
        counted(session, user)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=3)  # until the other has counted too, or waits for this one

    monkeypatch.setattr(accounts, "_keep_an_owner", count_then_wait)

    def remove(actor, user_id, change) -> None:
        try:
            with db.write() as session:
                change(session, actor, user_id)
            outcomes.append("done")
        except ValidationError as error:
            outcomes.append(str(error))

    threads = [
        threading.Thread(
            target=remove,
            args=(first, second.user_id, lambda s, a, u: accounts.set_active(s, a, u, False)),
        ),
        threading.Thread(
            target=remove,
            args=(second, first.user_id, lambda s, a, u: accounts.change_role(s, a, u, "staff")),
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == [
        "This is the last active owner: make another owner first.",
        "done",
    ]
    with db.read() as session:
        owners = session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.OWNER, User.active.is_(True))
        )
    assert owners == 1


def test_first_owner_only_on_an_empty_database(db):
    with db.write() as session:
        owner = accounts.create_first_owner(session, "boss", "The Boss", PASSWORD)
        assert owner.role == Role.OWNER
    with db.write() as session, pytest.raises(Conflict):
        accounts.create_first_owner(session, "second", "Second", PASSWORD)


def test_two_first_run_forms_sent_at_once_make_one_owner(db, monkeypatch):
    """Two visitors send the first-run form at the same moment: on PostgreSQL each counted no
    user, both became owners of a practice neither should share. Now the second waits for the
    first and is told an owner exists."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    counted = accounts.count_users

    def count_then_wait(session) -> int:
        n = counted(session)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=3)  # until the other has counted too, or waits for this one
        return n

    monkeypatch.setattr(accounts, "count_users", count_then_wait)

    def first_run(username) -> None:
        try:
            with db.write() as session:
                accounts.create_first_owner(session, username, username.title(), PASSWORD)
            outcomes.append("done")
        except Conflict as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=first_run, args=(name,)) for name in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["An owner account exists already. Sign in instead.", "done"]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_passwords_are_stored_as_argon2_hashes(db, world):
    with db.read() as session:
        stored = session.query(User).filter_by(username="owner").one().password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_single_sign_on_maps_an_email_to_an_active_local_user(db, world):
    with db.write() as session:
        user = accounts.user_for_email(session, " Manager@Example.org ")
        assert user.role == Role.MANAGER
        with pytest.raises(AuthenticationFailed, match="not set up"):
            accounts.user_for_email(session, "stranger@example.org")
        accounts.set_active(session, world.owner, world.manager.user_id, False)
    with db.write() as session, pytest.raises(AuthenticationFailed):
        accounts.user_for_email(session, "manager@example.org")


@pytest.mark.parametrize("verified", [False, "false", "FALSE"])
def test_single_sign_on_refuses_an_email_the_provider_has_not_verified(db, world, verified):
    """Some identity providers let a user put any address on their account: an unverified
    claim of the manager's address signed its holder in as the manager. Nothing is started."""
    with db.write() as session, pytest.raises(AuthenticationFailed, match="not verified"):
        accounts.user_for_email(session, "manager@example.org", verified)
    with db.write() as session:  # a verified address, or a provider that sends no claim
        assert accounts.user_for_email(session, "manager@example.org", True).role == Role.MANAGER
        assert accounts.user_for_email(session, "manager@example.org", "true").role == Role.MANAGER
        assert accounts.user_for_email(session, "manager@example.org").role == Role.MANAGER


def test_one_organisation_sign_in_starts_one_session(db, world):
    """The browser keeps the identity provider's sign-in for weeks: before, once a session it
    had started ended (idle too long, signed out, ended by the owner's change), the next page
    started another at once, so the idle sign-out never signed a single-sign-on user out. Now
    an organisation sign-in starts one session; after it, the person signs in there again."""
    signed_in_there = int((utcnow() - timedelta(minutes=1)).timestamp())
    with db.write() as session:
        first = accounts.single_sign_on(session, "manager@example.org", True, signed_in_there)
        assert first.actor.role == Role.MANAGER
        assert session.get(User, world.manager.user_id).last_login_at is not None
    later = utcnow() + timedelta(minutes=481)
    with db.write() as session:  # left idle: the session ends
        assert accounts.touch_session(session, first.session_id, 480, now=later) is None
    with db.write() as session, pytest.raises(accounts.SignInAgain) as refused:
        accounts.single_sign_on(session, "manager@example.org", True, str(signed_in_there))
    assert "press 'Sign in with your organisation account'" in str(refused.value)
    with db.write() as session:  # signed in there again: a new session
        again = accounts.single_sign_on(session, "manager@example.org", True, utcnow().timestamp())
        assert accounts.touch_session(session, again.session_id, 480) is not None
        accounts.set_active(session, world.owner, world.manager.user_id, False)
    with db.write() as session, pytest.raises(AuthenticationFailed, match="deactivated"):
        accounts.single_sign_on(session, "manager@example.org", True, utcnow().timestamp() + 5)


def test_an_organisation_sign_in_is_not_asked_for_the_password_the_owner_chose(db, world):
    """A colleague the owner added with a first password, who signs in with their
    organisation account: before, they saw only 'Choose your own password', asking for the
    owner's password they had never been given or needed, and core refused them everything.
    Now their organisation has said who they are: they carry on, and the owner's password
    (which the owner knows) stops working; a session started with it ends (audited)."""
    with db.write() as session:
        accounts.create_user(
            session, world.owner, "fran", "Fran Desk", "staff", "violet harbour kettle",
            "fran@example.org",
        )  # fmt: skip
    with_password = _sign_in(db, "fran", "violet harbour kettle")
    assert with_password.actor.password_change_due
    with db.write() as session:
        signed = accounts.single_sign_on(session, "fran@example.org", True)
    assert not signed.actor.password_change_due
    assert signed.actor.can(Permission.PATIENTS_READ)
    with db.write() as session:
        assert accounts.touch_session(session, signed.session_id, 480) is not None
        assert accounts.touch_session(session, with_password.session_id, 480) is None
        assert not session.get(User, signed.actor.user_id).password_change_due
        retired = session.scalar(
            select(AuditEvent).where(AuditEvent.action == "owners_password_retired")
        )
        assert retired.entity_id == signed.actor.user_id
    refused = _sign_in(db, "fran", "violet harbour kettle")
    assert isinstance(refused, AuthenticationFailed)


class _CountingHasher(type(accounts._hasher)):
    verifications = 0

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        type(self).verifications += 1
        return super().verify(hash, password)


def test_unknown_wrong_and_locked_get_one_answer_and_one_verification_each(db, world, monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", _CountingHasher())
    with db.write() as session:
        session.query(User).filter_by(username="staff").one().locked_until = utcnow() + (
            timedelta(minutes=10)
        )
    answers = {}
    for case, (username, password) in {
        "unknown": ("nobody", PASSWORD),
        "wrong": ("manager", "not the password"),
        "locked, right password": ("staff", PASSWORD),
        "locked, wrong password": ("staff", "not the password"),
    }.items():
        before = _CountingHasher.verifications
        answers[case] = str(_sign_in(db, username, password))
        assert _CountingHasher.verifications - before == 1, case
    assert set(answers.values()) == {accounts.SIGN_IN_FAILED}


def test_the_password_is_checked_in_a_read_session_without_the_write_lock(db, world):
    with db.read() as session:
        attempt = accounts.check_credentials(session, "manager", PASSWORD)
        assert not session.new and not session.dirty
    # a writer can take the lock while nothing of the sign-in holds it
    with db.write() as session:
        result = accounts.finish_sign_in(session, attempt)
    assert isinstance(result, accounts.SignedIn)


def test_a_password_changed_between_check_and_finish_does_not_sign_in(db, world):
    with db.read() as session:
        attempt = accounts.check_credentials(session, "staff", PASSWORD)
    with db.write() as session:
        accounts.reset_password(session, world.owner, world.staff.user_id, "a brand new password")
    with db.write() as session:  # the hash changed since the check: check again
        assert accounts.finish_sign_in(session, attempt) is accounts.RECHECK
    result = accounts.sign_in_in_steps(db.read, db.write, "staff", PASSWORD)
    assert isinstance(result, AuthenticationFailed) and result is not accounts.RECHECK


def test_concurrent_sign_ins_survive_a_rehash_by_the_first_of_them(db, world):
    # two sign-ins checked at once; the first to finish stores a fresh hash (same password)
    with db.read() as session:
        first = accounts.check_credentials(session, "staff", PASSWORD)
        second = accounts.check_credentials(session, "staff", PASSWORD)
    with db.write() as session:
        assert isinstance(accounts.finish_sign_in(session, first), accounts.SignedIn)
        rehash = PasswordHasher(time_cost=1, memory_cost=64).hash(PASSWORD)
        session.get(User, world.staff.user_id).password_hash = rehash  # as the first stores it
    with db.write() as session:  # no failure counted: the app checks again
        assert accounts.finish_sign_in(session, second) is accounts.RECHECK
        assert session.get(User, world.staff.user_id).failed_attempts == 0
    result = accounts.sign_in_in_steps(db.read, db.write, "staff", PASSWORD)
    assert isinstance(result, accounts.SignedIn)


def test_the_app_hashes_with_owasps_setting_and_upgrades_an_older_hash_at_sign_in(db, world):
    """The app's setting is Argon2id at 46 MiB, one pass, one lane; a hash stored at
    argon2-cffi's defaults (64 MiB, three passes, four lanes: the setting before) still signs
    in and is stored again at the app's setting."""
    assert accounts.HASHING.hash(PASSWORD).startswith("$argon2id$v=19$m=47104,t=1,p=1$")
    with db.write() as session:
        session.get(User, world.staff.user_id).password_hash = PasswordHasher().hash(PASSWORD)
    test_setting = accounts._hasher
    accounts.configure_hashing(accounts.HASHING)
    try:
        assert isinstance(_sign_in(db, "staff", PASSWORD), accounts.SignedIn)
    finally:
        accounts.configure_hashing(test_setting)
    with db.read() as session:
        stored = session.get(User, world.staff.user_id).password_hash
    assert stored.startswith("$argon2id$v=19$m=47104,t=1,p=1$")
    assert accounts.HASHING.verify(stored, PASSWORD)


def test_a_run_peeks_at_a_live_session_without_writing(db, world):
    """peek_session, asked on every run: the actor while the session is live and was seen
    lately; None (touch_session decides) once it is stale, ended, or its user deactivated."""
    signed = _sign_in(db, "manager", PASSWORD)
    with db.read() as session:
        actor = accounts.peek_session(session, signed.session_id, 480)
        assert (actor.user_id, actor.role) == (world.manager.user_id, Role.MANAGER)
        later = utcnow() + accounts.TOUCH_EVERY + timedelta(seconds=1)
        assert accounts.peek_session(session, signed.session_id, 480, now=later) is None
        assert accounts.peek_session(session, signed.session_id + 1000, 480) is None
    with db.write() as session:
        accounts.set_active(session, world.owner, world.manager.user_id, False)
    with db.read() as session:
        assert accounts.peek_session(session, signed.session_id, 480) is None
    staff = _sign_in(db, "staff", PASSWORD)
    with db.write() as session:
        accounts.end_session(session, staff.session_id)
    with db.read() as session:
        assert accounts.peek_session(session, staff.session_id, 480) is None


def test_changing_a_password_hashes_outside_the_write_and_rechecks_a_change_meanwhile(
    db, world, monkeypatch
):
    """As at sign-in, argon2 runs while no write transaction is open (before: inside it,
    holding SQLite's one write lock for the hashing). A password changed in another tab
    between the check and the write is checked again: the old one no longer changes it."""
    writing = []

    @contextlib.contextmanager
    def write():
        writing.append(True)
        try:
            with db.write() as session:
                yield session
        finally:
            writing.pop()

    class Watched:
        def __init__(self, hasher):
            self.hasher, self.in_write = hasher, []

        def hash(self, password):
            self.in_write.append(bool(writing))
            return self.hasher.hash(password)

        def verify(self, stored, password):
            self.in_write.append(bool(writing))
            return self.hasher.verify(stored, password)

        def __getattr__(self, name):  # the rest (check_needs_rehash) as it is
            return getattr(self.hasher, name)

    watched = Watched(accounts._hasher)
    monkeypatch.setattr(accounts, "_hasher", watched)
    done = accounts.change_own_password(
        db.read, write, world.staff, PASSWORD, "lantern orchard pebble rowing"
    )
    assert done is None and watched.in_write and not any(watched.in_write)

    reads = []

    @contextlib.contextmanager
    def read_then_another_tab():
        with db.read() as session:
            yield session
        if not reads:  # the other tab changes it once the first check has read the row
            assert (
                accounts.change_own_password(
                    db.read,
                    db.write,
                    world.staff,
                    "lantern orchard pebble rowing",
                    "quartz meadow 7",
                )
                is None
            )
        reads.append(True)

    said = accounts.change_own_password(
        read_then_another_tab,
        db.write,
        world.staff,
        "lantern orchard pebble rowing",
        "velvet harbour crane 42",
    )
    assert isinstance(said, AuthenticationFailed) and "not your current password" in str(said)
    assert len(reads) == 2  # checked again against the password the other tab set
    assert isinstance(_sign_in(db, "staff", "quartz meadow 7"), accounts.SignedIn)


def test_guessing_the_current_password_locks_the_account(db, world):
    """An unattended desk cannot be used to guess its user's password through Change your
    password: wrong ones count as failed sign-ins and lock the account, which then refuses
    even the right one until the lock ends."""
    for _ in range(accounts.MAX_FAILURES):
        said = accounts.change_own_password(
            db.read, db.write, world.staff, "a wrong guess", "lantern orchard pebble"
        )
        assert isinstance(said, AuthenticationFailed)
    said = accounts.change_own_password(
        db.read, db.write, world.staff, PASSWORD, "lantern orchard pebble rowing"
    )
    assert isinstance(said, AuthenticationFailed) and "locked for 15 minutes" in str(said)
    assert isinstance(_sign_in(db, "staff", PASSWORD), AuthenticationFailed)
    with db.read() as session:
        assert session.scalar(select(AuditEvent.id).where(AuditEvent.action == "account_locked"))


def test_an_owner_who_forgot_their_password_resets_it_at_the_console(tmp_path, monkeypatch, capsys):
    """The only owner forgets their password: nobody could reset it in the app, and the
    command line had no way either. `reset-password` sets one (as strong as any), ends their
    sessions and is audited."""
    from core import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    created = ["create-user", "bea", "--name", "Bea Boss", "--role", "owner"]
    assert cli.main([*created, "--password", "correct horse battery"]) == 0
    assert cli.main(["reset-password", "bea", "--password", "password12"]) == 2
    assert "too easy to guess" in capsys.readouterr().err
    assert cli.main(["reset-password", "nobody", "--password", "lantern orchard pebble"]) == 2
    assert "There is no account 'nobody'" in capsys.readouterr().err
    assert cli.main(["reset-password", "Bea", "--password", "lantern orchard pebble"]) == 0
    assert "New password set for 'bea'" in capsys.readouterr().out
    from core.kernel.config import load_settings
    from core.startup import open_database

    database = open_database(load_settings())
    with database.write() as session:
        assert isinstance(
            accounts.sign_in(session, "bea", "lantern orchard pebble"), accounts.SignedIn
        )
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "password_reset"))
        assert event.details == {"via": "command line"}
    database.dispose()


def test_the_migration_flags_no_existing_account(db, world):
    """0018 adds the flag: accounts from before it are not asked for a new password (whether
    their holders chose theirs is not known), and a sign-in goes on as before."""
    from alembic import command
    from sqlalchemy import inspect

    from db import migrate

    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0017")
    assert "password_change_due" not in {c["name"] for c in inspect(db.engine).get_columns("users")}
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(User)) > 0
        assert not session.scalar(select(func.count()).where(User.password_change_due))
    assert not _sign_in(db, "staff", PASSWORD).actor.password_change_due


def test_importing_accounts_hashes_no_password():
    """Before, the module hashed its dummy password as it was imported: 57 ms of argon2 in
    every process that imported it (each test worker, each CLI command), signing in or not."""
    code = (
        "import argon2\n"
        "made = []\n"
        "hash_it = argon2.PasswordHasher.hash\n"
        "argon2.PasswordHasher.hash = lambda self, *a: made.append(1) or hash_it(self, *a)\n"
        "from core.kernel import accounts\n"
        "print(len(made))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "0"


class _Recording(PasswordHasher):
    """The test suite's cheap setting, recording what is hashed and what is verified against;
    a slow hash, so sign-ins at once all come while the first is hashing."""

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.hashed, self.checked = [], []

    def hash(self, password, *, salt=None):
        self.hashed.append(password)
        time.sleep(0.05)
        return super().hash(password, salt=salt)

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        self.checked.append(hash)
        return super().verify(hash, password)


def test_an_unknown_user_is_checked_against_one_dummy_hash_made_at_first_need(db, world):
    """The dummy hash that keeps an unknown user's sign-in as slow as a wrong password is made
    when the first such sign-in needs it, not when the hashing is set (nor at import), once
    however many sign-ins need it at the same moment (the app's sessions run on threads)."""
    before, recording = accounts._hasher, _Recording()
    accounts.configure_hashing(recording)
    try:
        assert recording.hashed == []
        start = threading.Barrier(6)
        answers = []

        def unknown() -> None:
            start.wait()
            with db.read() as session:
                answers.append(accounts.check_credentials(session, "nobody", PASSWORD))

        threads = [threading.Thread(target=unknown) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [accounts.Attempt(None, None, False)] * 6
        assert len(recording.hashed) == 1 and recording.hashed[0] != PASSWORD
        (dummy,) = set(recording.checked)
        assert len(recording.checked) == 6 and dummy.startswith("$argon2id$")
        with db.read() as session:
            assert accounts.check_credentials(session, "manager", "not it").password_ok is False
            known = session.scalar(select(User.password_hash).where(User.username == "manager"))
        assert recording.checked[-1] == known and len(recording.hashed) == 1
    finally:
        accounts.configure_hashing(before)
