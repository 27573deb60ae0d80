"""Signed patient links: 256 random bits, stored as a SHA-256 hash, single purpose, expiring.

The raw token exists only in the link sent to the patient. Lookup is by hash (an index seek on a
value an attacker cannot choose), and the final comparison is constant-time.

Kept for KEEP past expiry, so a dead link is still explained for a while ("this code was used
already at …", "a newer proposal replaced this"); then housekeeping (core.practice.housekeeping)
deletes the tokens of the PRUNABLE purposes, which no table points at, and a link that old gets
the same "no longer valid" as any other dead link. The others (enrolment, survey, form and
waitlist-offer links) stay while the invitation, survey request, form or offer they were sent
for points at them: as long as those records, one row each.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from core.kernel.errors import LinkInvalid
from db.models import LinkToken
from db.types import utcnow

PURPOSES = (
    "enroll",
    "proposal",
    "change",
    "survey",
    "check_in",
    "booking",
    "confirm",
    "form",
    "portal",
    "waitlist_offer",
    "visit_forms",
)

# the purposes no row points at (by a foreign key): deleted KEEP after they expire
PRUNABLE = ("proposal", "change", "check_in", "booking", "confirm", "portal", "visit_forms")
KEEP = timedelta(days=30)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    raw: str
    row: LinkToken


def issue(
    session: Session, purpose: str, subject_id: int, ttl: timedelta, *, single_use: bool = True
) -> IssuedToken:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    raw = secrets.token_urlsafe(32)
    row = LinkToken(
        token_hash=hash_token(raw),
        purpose=purpose,
        subject_id=subject_id,
        single_use=single_use,
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    session.flush()
    return IssuedToken(raw, row)


def find(session: Session, raw: str | None, purpose: str | tuple[str, ...]) -> LinkToken | None:
    """The token of `purpose` for `raw`, live or not (a dead link is explained from it), or
    None for text that is no such link. `purpose` may be several a link may have (one read:
    the token's own purpose says which it is)."""
    if not raw or len(raw) > 128:
        return None
    purposes = (purpose,) if isinstance(purpose, str) else purpose
    digest = hash_token(raw)
    row = session.scalar(select(LinkToken).where(LinkToken.token_hash == digest))
    if row is None or row.purpose not in purposes:
        return None
    if not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


def verify(
    session: Session,
    raw: str | None,
    purpose: str | tuple[str, ...],
    *,
    now: datetime | None = None,
) -> LinkToken:
    """The live token for `raw` (of `purpose`, or of one of several: `find`), or LinkInvalid
    (same message whatever is wrong)."""
    row = find(session, raw, purpose)
    now = now or utcnow()
    if (
        row is None
        or row.revoked_at is not None
        or (row.single_use and row.used_at is not None)
        or row.expires_at <= now
    ):
        raise LinkInvalid()
    return row


def consume(session: Session, token: LinkToken) -> None:
    """Mark a single-use token used; a concurrent second use finds nothing to update."""
    done = session.execute(
        update(LinkToken)
        .where(LinkToken.id == token.id, LinkToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if done.rowcount != 1:
        raise LinkInvalid()
    session.expire(token)


def revoke(session: Session, token_id: int) -> None:
    session.execute(
        update(LinkToken)
        .where(LinkToken.id == token_id, LinkToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def link(base_url: str, purpose: str, raw: str) -> str:
    """The patient-facing address of a token: the app's public page reads `t` and `p`."""
    return f"{base_url}/patient?p={purpose}&t={raw}"


def stale(now: datetime):
    """SQL: the tokens of PRUNABLE purposes expired longer than KEEP ago (used, revoked or not:
    none can open anything, and a link that old needs no explanation of why)."""
    return and_(LinkToken.purpose.in_(PRUNABLE), LinkToken.expires_at < now - KEEP)
