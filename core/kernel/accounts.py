"""Staff accounts: argon2 passwords, lockout, server-side sessions, and the owner's user admin."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from core.kernel import audit, locks
from core.kernel.authz import SYSTEM, Actor, Permission, ensure
from core.kernel.errors import AuthenticationFailed, Conflict, NotFound, ValidationError
from core.kernel.text import clean
from core.kernel.tokens import hash_token
from db.models import OCCUPYING, Appointment, Clinic, Provider, Role, User, UserSession
from db.types import utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
HANDOFF_TTL = timedelta(minutes=2)
TOUCH_EVERY = timedelta(seconds=30)  # how often activity is written to a session row
# a session not seen for this long is deleted by housekeeping (core.practice.housekeeping):
# longer than the longest idle limit (7 days, core.kernel.config), so it has ended, whether or
# not a request came to end it; who signed in and out, and when, stays in the audit events
SESSION_KEEP = timedelta(days=30)
MIN_PASSWORD = 10
MIN_STRENGTH = 3  # zxcvbn score 0..4: 3 is "safely unguessable" for an online attack
SIGN_IN_FAILED = (
    "Unknown username or wrong password, or the account is locked after too many failed "
    "attempts. Check both and try again. A locked account opens again 15 minutes after the "
    "last wrong password; the practice owner sees on Users whether it is locked, and can "
    "unlock it at once or reset a forgotten password."
)
CHOOSE_BETTER = (
    "Choose a longer one: three or four unrelated words, or a sentence only you would write, "
    "is strong and easy to remember."
)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")

# OWASP's Argon2id setting of 46 MiB, one pass, one lane (Password Storage Cheat Sheet), not
# argon2-cffi's RFC 9106 default (64 MiB, three passes, four lanes): 57 ms of one core per check
# here instead of 190 ms of CPU over both, so twenty desks signing in at once do not stall every
# page on a 2-core server (bench/README.md). Above glibc's 32 MiB mmap limit, each check's memory
# goes back to the system (OWASP's 19 MiB variant stayed in the heap: 6-10 MB more per session).
# Older hashes are rehashed at their next sign-in.
HASHING = PasswordHasher(time_cost=1, memory_cost=47104, parallelism=1)
_hasher = HASHING
# an unknown or inactive account's password is verified against this dummy's hash, so its
# sign-in takes as long as a wrong password's: hashed at the first such sign-in, not at import
# (57 ms in every process, each test worker and CLI command, signing anyone in or not)
_STAND_IN = "not a real password, used to keep timing even"
_dummy_hash: str | None = None
_dummy_hasher = HASHING  # the setting it is hashed with: the one configured
_dummy_lock = threading.Lock()


def configure_hashing(hasher: PasswordHasher) -> None:
    """Set the argon2 cost: the app keeps the setting above; the test suite asks for a cheap one
    (hashes carry their own parameters, so either verifies the other's)."""
    global _hasher, _dummy_hash, _dummy_hasher
    with _dummy_lock:
        _hasher = _dummy_hasher = hasher
        _dummy_hash = None


def _dummy() -> str:
    """The dummy's hash, made once at the first need: sign-ins at the same moment (the app's
    sessions run on threads) wait for the one hashing it. That first sign-in of an unknown
    account in a process hashes and verifies (twice the time), once."""
    global _dummy_hash
    dummy = _dummy_hash
    if dummy is None:
        with _dummy_lock:
            dummy = _dummy_hash
            if dummy is None:
                dummy = _dummy_hash = _dummy_hasher.hash(_STAND_IN)
    return dummy


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    display_name: str
    email: str | None
    role: Role
    active: bool
    locked_until: datetime | None
    last_login_at: datetime | None


@dataclass(frozen=True)
class SignedIn:
    actor: Actor
    session_id: int
    handoff_code: str  # exchanged once by the browser for the HttpOnly session cookie


def actor_of(user: User) -> Actor:
    return Actor(
        user_id=user.id,
        name=user.display_name,
        role=user.role,
        password_change_due=user.password_change_due,
    )


# ---------------------------------------------------------------- passwords and users


def check_password_strength(password: str, *, user_inputs: tuple[str, ...] = ()) -> None:
    """A minimum length, then zxcvbn's estimate (which knows common passwords, repeats,
    keyboard walks, dates and the person's own name); the message says how to do better."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"The password must have at least {MIN_PASSWORD} characters. {CHOOSE_BETTER}"
        )
    # zxcvbn's cost grows with the length; a long enough prefix decides the score
    verdict = zxcvbn(password[:64], user_inputs=[i for i in user_inputs if i])
    if verdict["score"] < MIN_STRENGTH:
        feedback = verdict["feedback"]
        hints = " ".join([feedback.get("warning") or "", *feedback.get("suggestions", [])])
        raise ValidationError(
            f"This password is too easy to guess. {hints.strip()} {CHOOSE_BETTER}".replace(
                "  ", " "
            )
        )


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def create_user(
    session: Session,
    actor: Actor,
    username: str,
    display_name: str,
    role: Role | str,
    password: str,
    email: str | None = None,
) -> User:
    """A colleague's account, with a first password the owner gives them: they choose their
    own at their first sign-in, before anything else (`User.password_change_due`)."""
    ensure(actor, Permission.USERS_MANAGE)
    user = insert_user(session, actor, username, display_name, role, password, email)
    user.password_change_due = True
    return user


FIRST_OWNER = "clinicdesk:first-owner"  # the lock the first-run form's check takes


def create_first_owner(
    session: Session, username: str, display_name: str, password: str, email: str | None = None
) -> User:
    """The first-run screen: allowed only while there is no user at all (two first-run forms
    sent at once: the second waits for the first and is told to sign in)."""
    locks.hold(session, FIRST_OWNER)
    if count_users(session):
        raise Conflict("An owner account exists already. Sign in instead.")
    return insert_user(session, SYSTEM, username, display_name, Role.OWNER, password, email)


def insert_user(session, actor, username, display_name, role, password, email) -> User:
    username = clean(username, field="username", limit=64).strip().lower()
    display_name = clean(display_name, field="name", limit=120)
    email = clean(email, field="email address", limit=254)
    if not USERNAME.match(username):
        raise ValidationError(
            "The username must be 2 to 63 characters: lower-case letters, digits, dot, dash "
            "or underscore, starting with a letter or digit."
        )
    if not display_name.strip():
        raise ValidationError("Enter the person's name as colleagues should see it.")
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(f"Role must be one of {', '.join(r.value for r in Role)}.") from None
    check_password_strength(password, user_inputs=(username, display_name, email or ""))
    email = (email or "").strip().lower() or None
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise ValidationError(f"The email address is not a valid address: {error}") from None
    user = User(
        username=username,
        display_name=display_name.strip(),
        email=email,
        role=role,
        password_hash=_hasher.hash(password),
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise Conflict(f"The username {username!r} or that email address is taken.") from None
    audit.record(
        session,
        actor,
        "user_created",
        "user",
        user.id,
        to_status=role.value,
        details={"username": username},
    )
    return user


def list_users(session: Session, actor: Actor, *, now: datetime | None = None) -> list[UserRow]:
    """Everyone's account; `locked_until` only while the lock holds (a lock that is over
    is no lock, though the row keeps its moment until the next sign-in)."""
    ensure(actor, Permission.USERS_MANAGE)
    now = now or utcnow()
    users = session.scalars(select(User).order_by(User.active.desc(), User.username))
    return [
        UserRow(
            u.id,
            u.username,
            u.display_name,
            u.email,
            u.role,
            u.active,
            u.locked_until if u.locked_until and u.locked_until > now else None,
            u.last_login_at,
        )
        for u in users
    ]


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no user #{user_id}.")
    return user


def _keep_an_owner(session: Session, user: User) -> None:
    """Refuse to remove the last active owner. The active owners' rows are locked (FOR UPDATE)
    before they are counted, so two owners removing each other at once are taken in turn and
    the second finds itself the last one (each counting the other left none)."""
    owners = session.scalars(
        select(User.id)
        .where(User.role == Role.OWNER, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    others = [i for i in owners if i != user.id]
    if user.role == Role.OWNER and not others:
        raise ValidationError("This is the last active owner: make another owner first.")


def set_active(session: Session, actor: Actor, user_id: int, active: bool) -> list[str]:
    """Deactivate a colleague who leaves (every session of theirs ends at once: they can do
    nothing more), or reactivate one who comes back. Returns, for a deactivation, what still
    goes on in their name and where to change it: the provider record linked to their account
    (still offered for bookings) and a clinic inbox that is their address (it keeps receiving
    the clinic's notifications, patients' names in them)."""
    ensure(actor, Permission.USERS_MANAGE)
    user = _user(session, user_id)
    if user.active == active:  # a second press, or a page drawn before the change
        state = "active" if active else "deactivated"
        raise ValidationError(
            f"{user.display_name} is {state} already, so nothing was changed. Choose "
            f"{'Deactivate' if active else 'Reactivate'} to change it."
        )
    if not active:
        if user.id == actor.user_id:
            raise ValidationError(
                "You cannot deactivate your own account: it would sign you out at once. "
                "Another owner can (make one first if you are the only one)."
            )
        _keep_an_owner(session, user)
        end_all_sessions(session, user.id)
    user.active = active
    audit.record(
        session,
        actor,
        "user_activated" if active else "user_deactivated",
        "user",
        user.id,
        details={"username": user.username},
    )
    return [] if active else _left_in_their_name(session, user)


def _left_in_their_name(session: Session, user: User) -> list[str]:
    notes = []
    providers = session.execute(
        select(Provider.id, Provider.name)
        .where(Provider.user_id == user.id, Provider.active.is_(True))
        .order_by(Provider.name)
    ).all()
    for provider_id, name in providers:
        ahead = session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.provider_id == provider_id,
                Appointment.status.in_(OCCUPYING),
                Appointment.start_at > utcnow(),
            )
        )
        notes.append(
            f"Their provider record, {name}, is still active and offered for bookings ({ahead} "
            f"visit{'' if ahead == 1 else 's'} ahead). If they no longer see patients, move "
            "those visits and deactivate it on Providers."
        )
    if user.email:
        clinics = session.scalars(
            select(Clinic.name)
            .where(func.lower(Clinic.email) == user.email.lower(), Clinic.active.is_(True))
            .order_by(Clinic.name)
        ).all()
        for name in clinics:
            notes.append(
                f"The inbox of {name} is their address, {user.email}: it still receives the "
                "clinic's notifications, patients' names in them. Set another on Clinics and "
                "rooms."
            )
    return notes


def change_role(session: Session, actor: Actor, user_id: int, role: Role | str) -> None:
    ensure(actor, Permission.USERS_MANAGE)
    user = _user(session, user_id)
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(f"Role must be one of {', '.join(r.value for r in Role)}.") from None
    if role == user.role:  # nothing to change: their sessions are not ended for it
        raise ValidationError(
            f"{user.display_name} is {role.value} already; choose another role to change it."
        )
    if role != Role.OWNER:
        _keep_an_owner(session, user)
    if user.id == actor.user_id:
        raise ValidationError(
            "You cannot change your own role: it would sign you out at once. Another owner "
            "can change it for you."
        )
    old = user.role
    user.role = role
    end_all_sessions(session, user.id)  # the navigation must be rebuilt for the new role
    audit.record(
        session,
        actor,
        "user_role_changed",
        "user",
        user.id,
        from_status=old.value,
        to_status=role.value,
    )


def unlock(session: Session, actor: Actor, user_id: int, *, now: datetime | None = None) -> None:
    """The owner opens a colleague's account locked after wrong passwords (they call: "it says
    wrong password, and I know it is right"), keeping their password: no reset, nothing the
    owner then knows. The count of wrong passwords starts again from nought."""
    ensure(actor, Permission.USERS_MANAGE)
    now = now or utcnow()
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"There is no user #{user_id}.")
    if not user.locked_until or user.locked_until <= now:
        raise ValidationError(
            f"{user.display_name}'s account is not locked, so nothing was changed. If they "
            "cannot sign in, their password may be wrong: reset it."
        )
    until = user.locked_until
    user.locked_until = None
    user.failed_attempts = 0
    audit.record(
        session,
        actor,
        "account_unlocked",
        "user",
        user.id,
        details={"locked_until": until.isoformat(timespec="seconds")},
    )


def reset_password(session: Session, actor: Actor, user_id: int, new_password: str) -> None:
    """The owner sets a new password for a colleague who forgot theirs: the colleague chooses
    their own at their next sign-in (not the owner resetting their own)."""
    ensure(actor, Permission.USERS_MANAGE)
    user = _user(session, user_id)
    _reset(session, actor, user, new_password)
    user.password_change_due = user.id != actor.user_id


def reset_password_at_console(session: Session, username: str, new_password: str) -> User:
    """`python -m core.cli reset-password`: whoever runs it holds the server, so it needs no
    signed-in owner (the one way back in for an owner who forgot theirs)."""
    name = clean(username, field="username", limit=64).strip().lower()
    user = session.scalar(select(User).where(User.username == name)) if name else None
    if user is None:
        raise NotFound(f"There is no account {name!r}; check the username (Users lists them).")
    _reset(session, SYSTEM, user, new_password, via="command line")
    return user


def _reset(session: Session, actor: Actor, user: User, new_password: str, via: str = "") -> None:
    check_password_strength(
        new_password or "", user_inputs=(user.username, user.display_name, user.email or "")
    )
    user.password_hash = _hasher.hash(new_password)
    user.password_change_due = False  # the console's holder types their own (reset_password)
    user.failed_attempts = 0
    user.locked_until = None
    end_all_sessions(session, user.id)
    details = {"via": via} if via else None
    audit.record(session, actor, "password_reset", "user", user.id, details=details)


LOCKED = (
    "Too many wrong passwords: the account is locked for 15 minutes, so nothing was changed. "
    "Try again then, or ask the practice owner to unlock it on Users."
)
NOT_CURRENT = (
    "That is not your current password, so nothing was changed. Type the one you signed in "
    "with; if you have forgotten it, sign out and ask the owner to reset it."
)


def change_own_password(
    read: Callable[[], ContextManager[Session]],
    write: Callable[[], ContextManager[Session]],
    actor: Actor,
    current_password: str,
    new_password: str,
    *,
    keep_session_id: int | None = None,
) -> AuthenticationFailed | None:
    """Any signed-in person changes their own password (after the owner's reset, say): the
    current one first, then a new one as strong as a reset's. Every other session of theirs
    ends (`keep_session_id`, the one asking, goes on). A wrong current password is counted
    as a failed sign-in (returned, not raised, so the count is kept): after MAX_FAILURES the
    account locks as it does at sign-in, so an unattended desk cannot be used to guess it.

    As at sign-in, the slow part (argon2 both ways, the strength check) runs between a read
    (Database.read) and a short write (Database.write); a password changed in between (in
    another tab) is checked again."""
    if actor.user_id is None:
        raise ValidationError("Sign in to change your password.")
    for _ in range(3):
        with read() as session:
            user = _user(session, actor.user_id)
            seen, locked_until = user.password_hash, user.locked_until
            known = (user.username, user.display_name, user.email or "")
        if locked_until and locked_until > utcnow():
            return AuthenticationFailed(LOCKED)
        right = _verify(seen, current_password or "")
        if right:
            if new_password == current_password:
                raise ValidationError("The new password is the current one; choose another.")
            check_password_strength(new_password or "", user_inputs=known)
            new_hash = _hasher.hash(new_password)
        with write() as session:
            user = session.get(User, actor.user_id, with_for_update=True)
            if user is None:
                raise NotFound(f"There is no user #{actor.user_id}.")
            if user.password_hash != seen:
                continue  # changed meanwhile: the current password is checked against it
            now = utcnow()
            if user.locked_until and user.locked_until > now:
                return AuthenticationFailed(LOCKED)
            if not right:
                _count_failure(session, user, now)
                return AuthenticationFailed(NOT_CURRENT)
            user.password_hash, user.password_change_due = new_hash, False
            others = [UserSession.user_id == user.id, UserSession.ended_at.is_(None)]
            if keep_session_id is not None:
                others.append(UserSession.id != keep_session_id)
            session.execute(update(UserSession).where(*others).values(ended_at=now))
            user.failed_attempts = 0
            audit.record(session, actor, "password_changed", "user", user.id)
            return None
    return AuthenticationFailed(NOT_CURRENT)


# ---------------------------------------------------------------- signing in


@dataclass(frozen=True)
class Attempt:
    """The outcome of checking a password, computed outside any write transaction."""

    user_id: int | None
    checked_hash: str | None  # the hash the password was verified against
    password_ok: bool
    new_hash: str | None = None  # a rehash with current parameters, when one is due


def check_credentials(session: Session, username: str, password: str) -> Attempt:
    """Verify the password in a read-only session: exactly one argon2 verification whatever
    the account (a dummy hash for an unknown or inactive one), so neither the answer nor its
    time tells an unknown user from a wrong password or a locked account. Run it outside any
    write transaction: the hashing is the slow part and must not hold SQLite's write lock."""
    try:  # an impossible username is just an unknown one (same answer, same work)
        name = clean(username, field="username", limit=64).strip().lower()
    except ValidationError:
        name = ""
    user = session.scalar(select(User).where(User.username == name)) if name else None
    if user is None or not user.active:
        _verify(_dummy(), password)
        return Attempt(None, None, False)
    ok = _verify(user.password_hash, password)
    new_hash = (
        _hasher.hash(password) if ok and _hasher.check_needs_rehash(user.password_hash) else None
    )
    return Attempt(user.id, user.password_hash, ok, new_hash)


def finish_sign_in(
    session: Session, attempt: Attempt, *, now: datetime | None = None, address: str = ""
) -> SignedIn | AuthenticationFailed:
    """The short write after check_credentials: count a failure (locking after MAX_FAILURES) or
    start the session. Every failure returns the one SIGN_IN_FAILED message, also for a locked
    account; it is returned, not raised, so the caller's transaction commits the count."""
    now = now or utcnow()
    user = session.get(User, attempt.user_id) if attempt.user_id is not None else None
    if user is None or not user.active:
        return AuthenticationFailed(SIGN_IN_FAILED)
    if user.locked_until and user.locked_until > now:
        audit.record(session, SYSTEM, "sign_in_refused_locked", "user", user.id)
        return AuthenticationFailed(SIGN_IN_FAILED)
    if attempt.password_ok and user.password_hash != attempt.checked_hash:
        # changed since the check: a concurrent sign-in's rehash (same password) or a new
        # password. Hashing again here would hold the write lock: the caller checks again.
        return RECHECK
    if not attempt.password_ok:
        return _count_failure(session, user, now, address)
    user.failed_attempts = 0
    user.locked_until = None
    user.last_login_at = now
    if attempt.new_hash:
        user.password_hash = attempt.new_hash
    return start_session(session, user, address=address)


def _count_failure(
    session: Session, user: User, now: datetime, address: str = ""
) -> AuthenticationFailed:
    """One more failure, counted in the database itself (failed_attempts + 1, read back), not
    from the row read before: parallel wrong passwords each count, in turn on the row's lock,
    and the one that reaches MAX_FAILURES locks the account. A failure that finds the account
    locked by then is refused as locked, not counted."""
    unlocked = or_(User.locked_until.is_(None), User.locked_until <= now)
    count = session.execute(
        update(User)
        .where(User.id == user.id, unlocked)
        .values(failed_attempts=User.failed_attempts + 1)
        .returning(User.failed_attempts),
        execution_options={"synchronize_session": False},
    ).scalar()
    if count is None:
        action = "sign_in_refused_locked"
    elif count >= MAX_FAILURES:
        session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_attempts=0, locked_until=now + LOCKOUT),
            execution_options={"synchronize_session": False},
        )
        action = "account_locked"
    else:
        action = "sign_in_failed"
    session.expire(user, ["failed_attempts", "locked_until"])
    audit.record(session, SYSTEM, action, "user", user.id, details=_from(address))
    return AuthenticationFailed(SIGN_IN_FAILED)


def _from(address: str) -> dict[str, str] | None:
    """Where a sign-in came from, for the audit log (the browser's network address)."""
    return {"address": address[:64]} if address else None


RECHECK = AuthenticationFailed("The password hash changed during sign-in; check again.")


def sign_in(session: Session, username: str, password: str) -> SignedIn | AuthenticationFailed:
    """check_credentials and finish_sign_in in one session (the CLI and tests)."""
    result = finish_sign_in(session, check_credentials(session, username, password))
    return AuthenticationFailed(SIGN_IN_FAILED) if result is RECHECK else result


def sign_in_in_steps(
    read: Callable[[], ContextManager[Session]],
    write: Callable[[], ContextManager[Session]],
    username: str,
    password: str,
    address: str = "",
) -> SignedIn | AuthenticationFailed:
    """The app's sign-in: the slow hashing in read sessions, only the bookkeeping in short
    writes (Database.read, Database.write). When the hash changed between the two (another
    sign-in stored a rehash, or the password was changed) the password is checked again."""
    for _ in range(3):
        with read() as session:
            attempt = check_credentials(session, username, password)
        with write() as session:
            result = finish_sign_in(session, attempt, address=address)
        if result is not RECHECK:
            return result
    return AuthenticationFailed(SIGN_IN_FAILED)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class SignInAgain(AuthenticationFailed):
    """The organisation sign-in the browser holds has been used: it asks to be done again."""


SIGN_IN_AGAIN = (
    "Your ClinicDesk session has ended (it was left idle too long, you signed out, or the "
    "owner changed your account). To carry on, press 'Sign in with your organisation account'."
)


def user_for_email(session: Session, email: str | None, verified: object = None) -> User:
    """OIDC sign-in: the active local user with this email address. An address the identity
    provider says it has not verified (`verified`: its email_verified claim, False or "false")
    signs nobody in: anyone may put a staff member's address on an account there (some
    providers let a user set any address), and would sign in as them. A provider that sends
    no such claim (None) is trusted as configured."""
    if str(verified).strip().lower() == "false":  # False, or the claim as text
        raise AuthenticationFailed(
            "Your organisation account's email address is not verified, so it cannot sign you "
            "in here. Verify it with your organisation, or sign in with your ClinicDesk password."
        )
    address = (clean(email, field="email address") or "").strip().lower()
    user = session.scalar(select(User).where(User.email == address)) if address else None
    if user is None:
        raise AuthenticationFailed(
            "Your account is not set up in ClinicDesk. Ask the practice owner to add your email."
        )
    if not user.active:  # the organisation has said who they are: they may be told
        raise AuthenticationFailed(
            "Your ClinicDesk account is deactivated, so it cannot sign you in. If you work "
            "here again, ask the practice owner to reactivate it."
        )
    return user


def single_sign_on(
    session: Session,
    email: str | None,
    verified: object = None,
    issued_at: object = None,
    *,
    address: str = "",
    now: datetime | None = None,
) -> SignedIn:
    """Start a session for the person the identity provider signed in (`issued_at`: its ID
    token's `iat`, seconds since 1970). One organisation sign-in starts one ClinicDesk session:
    the browser keeps that identity for weeks, so once a session it started has ended (idle
    too long, signed out, or ended by the owner's change) it would otherwise start a new one
    at once, and the idle sign-out would never sign anyone out. The person signs in with their
    organisation again instead (one press; their organisation may not even ask anything)."""
    user = user_for_email(session, email, verified)
    since = _epoch(issued_at)
    if since is not None:
        started = session.scalar(
            select(func.max(UserSession.created_at)).where(UserSession.user_id == user.id)
        )
        if started is not None and started >= since:  # this identity started one already
            raise SignInAgain(SIGN_IN_AGAIN)
    if user.password_change_due:
        _retire_owners_password(session, user)
    user.last_login_at = now or utcnow()
    return start_session(session, user, via="oidc", address=address)


def _retire_owners_password(session: Session, user: User) -> None:
    """A colleague with a password the owner chose (a first one, a reset) who signs in with
    their organisation account: they were asked for that password before anything else, and
    may never have been given it. Their organisation has said who they are, so they are not
    asked; the owner's password, which the owner knows, stops working instead (replaced by a
    random one nobody holds, hashed like any other so a sign-in with it takes as long). To
    sign in with a password later, they ask the owner for a reset and then choose their own.
    A session started with that password (by whoever knew it) ends: it may do nothing while
    the password is due, and would otherwise be allowed everything from now on."""
    user.password_hash = _hasher.hash(secrets.token_urlsafe(32))
    user.password_change_due = False
    user.failed_attempts = 0
    end_all_sessions(session, user.id)
    audit.record(
        session, actor_of(user), "owners_password_retired", "user", user.id, details={"via": "oidc"}
    )


def _epoch(value: object) -> datetime | None:
    """An ID token's time claim (seconds since 1970, maybe as text) as a moment; None if absent
    or unreadable (OIDC requires `iat`, so only a provider outside the standard sends none)."""
    try:
        return datetime.fromtimestamp(float(str(value)), UTC) if value is not None else None
    except (ValueError, OverflowError, OSError):
        return None


def start_session(
    session: Session, user: User, via: str = "password", address: str = ""
) -> SignedIn:
    handoff = secrets.token_urlsafe(32)
    row = UserSession(
        user_id=user.id,
        token_hash=hash_token(secrets.token_urlsafe(32)),  # replaced when the cookie is set
        handoff_hash=hash_token(handoff),
    )
    session.add(row)
    session.flush()
    details = {"via": via} | (_from(address) or {})
    audit.record(session, actor_of(user), "sign_in", "user", user.id, details=details)
    return SignedIn(actor_of(user), row.id, handoff)


def exchange_handoff(session: Session, code: str, *, now: datetime | None = None) -> str | None:
    """Swap a fresh one-time handoff code for the raw cookie token (None if not valid)."""
    now = now or utcnow()
    row = session.scalar(select(UserSession).where(UserSession.handoff_hash == hash_token(code)))
    if row is None or row.ended_at is not None or row.created_at + HANDOFF_TTL < now:
        return None
    cookie = secrets.token_urlsafe(32)
    row.token_hash = hash_token(cookie)
    row.handoff_hash = None
    return cookie


def resume_session(
    session: Session, cookie: str | None, idle_minutes: int, *, now: datetime | None = None
) -> tuple[Actor, int] | None:
    """The signed-in actor for a session cookie, or None (ended, idle too long, user inactive)."""
    if not cookie:
        return None
    row = session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(cookie)))
    if row is None:
        return None
    return _alive(session, row, idle_minutes, now or utcnow())


def touch_session(
    session: Session, session_id: int, idle_minutes: int, *, now: datetime | None = None
) -> Actor | None:
    """Keep a session alive on activity; None once it has ended or gone idle."""
    row = session.get(UserSession, session_id)
    alive = _alive(session, row, idle_minutes, now or utcnow()) if row else None
    return alive[0] if alive else None


def peek_session(
    session: Session, session_id: int, idle_minutes: int, *, now: datetime | None = None
) -> Actor | None:
    """The actor of a live session that needs no write right now (seen within TOUCH_EVERY);
    None means: call touch_session in a write transaction to renew or end it."""
    now = now or utcnow()
    row = session.execute(  # every run of every page asks: one query for session and user
        select(UserSession.last_seen_at, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None), User.active)
    ).first()
    if row is None or now - row.last_seen_at > TOUCH_EVERY:
        return None
    return actor_of(row.User)


def _alive(session: Session, row: UserSession, idle_minutes: int, now: datetime):
    user = row.user
    if row.ended_at is not None or not user.active:
        return None
    if row.last_seen_at + timedelta(minutes=idle_minutes) < now:
        row.ended_at = now
        audit.record(session, SYSTEM, "session_expired", "user", user.id)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return actor_of(user), row.id


def end_session(session: Session, session_id: int) -> None:
    row = session.get(UserSession, session_id)
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        audit.record(session, actor_of(row.user), "sign_out", "user", row.user_id)


def stale_sessions(now: datetime):
    """SQL: the sessions nobody can use any more and nothing reads (not seen for SESSION_KEEP):
    deleting them signs nobody in or out, a cookie naming one resumes nothing, as before."""
    return UserSession.last_seen_at < now - SESSION_KEEP


def end_all_sessions(session: Session, user_id: int) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
