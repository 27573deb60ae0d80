"""Housekeeping: once a day, delete the rows that no longer serve anyone and would otherwise
grow for as long as the practice runs. Everything else is kept (see below for why).

Deleted (RULES, each with its reason):

- rate_limit_hits a day old: a limit counts the last hour's hits (core.kernel.rate_limits).
- user_sessions and portal_sessions not seen for 30 days: both idle limits are far shorter
  (at most 7 days for staff, a day for the portal), so they have ended; only their hashed
  tokens were left. Sign-ins and sign-outs stay in the audit events.
- link_tokens of the purposes no row points at, 30 days past their expiry
  (core.kernel.tokens.PRUNABLE): reminders' confirm and change links, check-in codes, proposals,
  booking links, portal sign-in links and a visit's forms links. For 30 days a dead link still
  says why it is dead.
- payment_events 400 days old: the provider retries an event for days (Stripe: three), and
  refuses to sign an old one again (five minutes' tolerance), so a year and a month covers
  idempotency and a card dispute's window; the payment itself and its audit events stay.
- risk_models' payload (the fitted model, the largest value in the table) once another model has
  replaced it for 30 days: only the newest is ever loaded. The row, its dates and metrics stay
  (the scores point at it).

Kept, on purpose: appointments and everything about a visit (nothing clinical is deleted);
audit_events (the audit); notifications (what was sent to whom and when, the body included: the
patient's correspondence and the practice's evidence of a fee warning or a reminder);
slot_openings and waitlist offers (the refill rate counts them); survey answers, forms,
payments, the ledger, change requests, SMS replies, calls, confirmations and reminders sent
(each one row per thing that happened to a patient); the link tokens an invitation, survey
request, form or waitlist offer points at (one each, as long as it). cancellation_rollup_dirty
needs nothing: the roll-up refresh deletes each row it applies.

Bounded: a round deletes at most BATCH rows in one short transaction, so a first run on a
database years old never holds SQLite's write lock for long; an unfinished pass carries on at
the next round of the jobs loop. A finished pass is recorded in `settings` (CLAIM), read and
written with the row locked (core.kernel.locks.setting_row), so across several servers the
practice is swept once a day. The newest row of each table is never deleted: SQLite gives a
new row the highest id plus one, and a browser still holding a deleted session's id must never
find someone else's new session under it.

Owns no table. May import core.kernel and db only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.kernel import accounts, rate_limits, tokens
from core.kernel.clock import utcnow
from core.kernel.config import Settings
from core.kernel.locks import setting_row
from db.engine import Database
from db.models import LinkToken, PaymentEvent, PortalSession, RateLimitHit, RiskModel, UserSession

log = logging.getLogger("clinicdesk.housekeeping")

BATCH = 5_000  # rows a round changes at most, in one transaction
EVERY = timedelta(days=1)  # a finished pass holds the next off this long
SKEW = timedelta(minutes=10)  # a pass recorded further ahead was written by a clock set wrong
CLAIM = "housekeeping"  # settings row: {"done": when the last pass finished}
PORTAL_SESSION_KEEP = timedelta(days=30)  # as staff sessions (accounts.SESSION_KEEP)
PAYMENT_EVENT_KEEP = timedelta(days=400)
RISK_PAYLOAD_KEEP = timedelta(days=30)


@dataclass(frozen=True)
class Rule:
    """What goes from one table: `stale(now)` picks the rows; `clear`, if given, is what an
    UPDATE sets instead of deleting them (and `stale` must then leave out rows already done)."""

    table: Any
    stale: Callable[[datetime], Any]
    why: str
    clear: dict[str, Any] | None = None


def _superseded_payload(now: datetime):
    newer = (
        select(func.max(RiskModel.id))
        .where(RiskModel.trained_at < now - RISK_PAYLOAD_KEEP)
        .scalar_subquery()
    )
    return (RiskModel.id < newer) & (func.length(RiskModel.payload) > 0)


RULES: tuple[Rule, ...] = (
    Rule(RateLimitHit, rate_limits.stale, "hits no limit counts any more"),
    Rule(UserSession, accounts.stale_sessions, "staff sessions ended long ago"),
    Rule(
        PortalSession,
        lambda now: PortalSession.last_seen_at < now - PORTAL_SESSION_KEEP,
        "portal sessions ended long ago",
    ),
    Rule(LinkToken, tokens.stale, "patient links dead for a month that nothing points at"),
    Rule(
        PaymentEvent,
        lambda now: PaymentEvent.received_at < now - PAYMENT_EVENT_KEEP,
        "payment webhook events past idempotency and a dispute's window",
    ),
    Rule(
        RiskModel,
        _superseded_payload,
        "fitted no-show models replaced a month ago (never loaded again)",
        clear={"payload": b""},
    ),
)


@dataclass
class Sweep:
    """One round's work: rows changed per table, and whether the day's pass is finished."""

    changed: dict[str, int] = field(default_factory=dict)
    finished: bool = False


def sweep(session: Session, now: datetime, batch: int = BATCH) -> Sweep | None:
    """One round of the day's pass in the caller's transaction: at most `batch` rows, the
    rules in order. None when a pass finished less than EVERY ago (a pass recorded in the
    future, by a clock set ahead and put right, does not hold the next one off)."""
    row = setting_row(session, CLAIM)
    done = (row.value or {}).get("done")
    if done and -SKEW <= now - datetime.fromisoformat(done) < EVERY:
        return None
    result = Sweep()
    room = batch
    for rule in RULES:
        if room <= 0:
            break
        count = _apply(session, rule, now, room)
        result.changed[rule.table.__tablename__] = count
        room -= count
    result.finished = room > 0
    if result.finished:
        row.value = {"done": now.isoformat()}
    return result


def _apply(session: Session, rule: Rule, now: datetime, limit: int) -> int:
    """Up to `limit` of the rule's rows, never the table's newest (its id stays the highest)."""
    key = rule.table.id
    newest = select(func.max(key)).scalar_subquery()
    picked = select(key).where(rule.stale(now), key < newest).limit(limit)
    if rule.clear is None:
        statement = delete(rule.table).where(key.in_(picked))
    else:
        statement = update(rule.table).where(key.in_(picked)).values(**rule.clear)
    done = session.execute(statement.execution_options(synchronize_session=False))
    return done.rowcount


def housekeeping_job(database: Database, settings: Settings) -> None:
    """Periodic job (core.jobs): a round of the day's pass, when one is due."""
    with database.write() as session:
        result = sweep(session, utcnow())
    if result is not None and any(result.changed.values()):
        log.info("housekeeping: %s", ", ".join(f"{n} {t}" for t, n in result.changed.items() if n))
