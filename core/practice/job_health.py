"""The background jobs' health: which job is failing, since when, how often, its last error,
and what that means for the practice. The jobs loop (core.jobs) records each round here;
owners and managers read it (the Practice set-up page, the banner on every page).

Cheap by design: the loop reads the table once a round (`states`) and writes only what changed
(`changes`): a job that starts failing, one still failing at most every EVERY, one working
again. A healthy loop writes nothing. Several processes run the loop at once: the first failure
is an upsert (no error when two insert one job's row), counts are added in SQL.

Owns: the job_runs table. May import core.kernel and db only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import utcnow
from core.kernel.text import clean
from db.models import JobRun

EVERY = timedelta(minutes=5)  # a job failing round after round is written at most this often
BANNER_AFTER = timedelta(minutes=15)  # failing longer than this: a banner on every staff page
ERROR_LENGTH = 500
RISK_FIT = "risk_fit"  # the weekly fit's child process (core.analytics.risk_jobs), by its exit

# each job (its function's name in core.jobs.JOBS) in the practice's words: what it is, and
# what is not happening while it fails
EFFECTS: dict[str, tuple[str, str]] = {
    "feedback_job": ("Survey requests", "survey requests after visits are not being queued"),
    "reminders_job": ("Reminders", "reminders are not being queued"),
    "forms_job": ("Forms after booking", "the forms due after booking are not being queued"),
    "digest_job": ("Clinic digests", "the clinics' daily digests are not being queued"),
    "lapse_job": (
        "Lapsed proposals",
        "proposed times nobody answered keep holding their slots, and their requests wait",
    ),
    "offer_job": (
        "Waitlist offers",
        "freed slots are not being offered to the waitlist, nor lapsed offers passed on",
    ),
    "deliver_notifications": ("Email and text delivery", "emails and texts are not going out"),
    "expire_job": ("Portal invitations", "portal invitations past their expiry stay pending"),
    "refresh_job": (
        "Cancellation analytics",
        "the cancellation analytics are not being brought up to date",
    ),
    "refunds_job": (
        "Card refunds and charges",
        "card refunds due are not being sent to the card provider, and fee charges to the "
        "card on file it left unfinished, or cut off before it answered, are not being "
        "finished (it is not asked how they stand), so those fees cannot be taken at the desk "
        "either",
    ),
    "retrain_job": ("No-show model", "the no-show model is not being refreshed"),
    RISK_FIT: ("No-show model fit", "the no-show model is not being refreshed"),
    "backup_job": ("Nightly backup", "the database is not being backed up"),
    "score_job": (
        "No-show scoring",
        "upcoming visits are not being scored for no-show risk (badges, call list)",
    ),
    "housekeeping_job": (
        "Housekeeping",
        "expired sessions and links, old rate-limit counts and old payment events are not "
        "being deleted, so the database keeps growing",
    ),
}


@dataclass(frozen=True)
class State:
    """A job's row as the round read it."""

    failing_since: datetime | None
    last_failed_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    """One run of a job in a round: `error` is None when it worked."""

    job: str
    started: datetime
    finished: datetime
    error: str | None = None


@dataclass
class Tally:
    """What one process knows about one database's jobs and has not written: failures since
    the last write (added to the count at the next), when each job last worked."""

    unwritten: dict[str, int] = field(default_factory=dict)
    last_ok: dict[str, datetime] = field(default_factory=dict)

    def written(self, found: list[Change]) -> None:
        """`found` is stored: its failures are counted in the table now."""
        for change in found:
            self.unwritten.pop(change.job, None)


@dataclass(frozen=True)
class Change:
    job: str
    failed: bool
    at: datetime  # the run's end (a failure) or its start (working again: older failures clear)
    error: str = ""
    failures: int = 0
    last_ok_at: datetime | None = None


def error_line(exc: BaseException) -> str:
    """The error's first line, with its type, without control characters (PostgreSQL stores
    no NUL), cut to what the table keeps."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return (clean(text, field="error") or "")[:ERROR_LENGTH]


def states(session: Session) -> dict[str, State]:
    """The loop's one read a round (a row per job that has ever failed)."""
    rows = session.execute(select(JobRun.job, JobRun.failing_since, JobRun.last_failed_at))
    return {job: State(since, last) for job, since, last in rows}


def changes(
    before: dict[str, State], outcomes: list[Outcome], tally: Tally, now: datetime
) -> list[Change]:
    """What the round must write: nothing for a job working as before, nor for one that failed
    again less than EVERY after its last recorded failure (counted in `tally` meanwhile)."""
    found: list[Change] = []
    for outcome in outcomes:
        state = before.get(outcome.job)
        failing = state is not None and state.failing_since is not None
        if outcome.error is None:
            tally.last_ok[outcome.job] = outcome.finished
            tally.unwritten.pop(outcome.job, None)
            if failing:
                found.append(Change(outcome.job, False, outcome.started))
            continue
        count = tally.unwritten[outcome.job] = tally.unwritten.get(outcome.job, 0) + 1
        last = state.last_failed_at if failing and state else None
        if failing and last is not None and now - last < EVERY:
            continue
        found.append(
            Change(
                outcome.job,
                True,
                outcome.finished,
                outcome.error,
                count,
                tally.last_ok.get(outcome.job),
            )
        )
    return found


def apply(session: Session, found: list[Change]) -> None:
    """Write `found` in the caller's transaction (then `Tally.written`)."""
    for change in found:
        if change.failed:
            session.execute(_failure(session.get_bind().dialect.name, change))
        else:  # only failures recorded before this run began: a newer one stands
            session.execute(
                update(JobRun)
                .where(
                    JobRun.job == change.job,
                    JobRun.failing_since.is_not(None),
                    JobRun.last_failed_at < change.at,
                )
                .values(failing_since=None, failures=0, last_ok_at=change.at)
            )


def _failure(dialect: str, change: Change):
    """One statement for a first failure and a later one: an upsert, so two processes inserting
    one job's first row at once both succeed (the second adds its count to the first's)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(JobRun).values(
        job=change.job,
        failing_since=change.at,
        last_failed_at=change.at,
        last_error=change.error,
        failures=change.failures,
        last_ok_at=change.last_ok_at,
    )
    row, new = JobRun.__table__.c, statement.excluded
    newer = row.last_failed_at.is_(None) | (new.last_failed_at > row.last_failed_at)
    return statement.on_conflict_do_update(
        index_elements=[row.job],
        set_={
            "failing_since": case(
                (row.failing_since.is_(None), new.failing_since), else_=row.failing_since
            ),
            "failures": case(
                (row.failing_since.is_(None), new.failures), else_=row.failures + new.failures
            ),
            "last_failed_at": case((newer, new.last_failed_at), else_=row.last_failed_at),
            "last_error": case((newer, new.last_error), else_=row.last_error),
            "last_ok_at": case(
                (row.last_ok_at.is_(None), new.last_ok_at),
                (new.last_ok_at > row.last_ok_at, new.last_ok_at),
                else_=row.last_ok_at,
            ),
        },
    )


@dataclass(frozen=True)
class FailingJob:
    """A job failing now, in the practice's words."""

    job: str
    label: str
    effect: str  # what is not happening while it fails
    since: datetime
    last_failed_at: datetime | None
    failures: int
    error: str  # the last error's first line, as the job raised it (show it as text)
    last_ok_at: datetime | None


def failing_jobs(
    session: Session,
    actor: Actor,
    longer_than: timedelta = timedelta(0),
    now: datetime | None = None,
) -> list[FailingJob]:
    """The jobs failing now (for longer than `longer_than`), the longest-failing first. Owners
    and managers: whoever sets the practice up."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    query = select(JobRun).where(JobRun.failing_since.is_not(None), JobRun.job.in_(list(EFFECTS)))
    if longer_than:
        query = query.where(JobRun.failing_since < (now or utcnow()) - longer_than)
    return [
        FailingJob(
            row.job,
            *EFFECTS[row.job],
            since=row.failing_since,
            last_failed_at=row.last_failed_at,
            failures=row.failures,
            error=row.last_error,
            last_ok_at=row.last_ok_at,
        )
        for row in session.scalars(query.order_by(JobRun.failing_since, JobRun.job))
    ]
