"""Hourly limits on the public forms (booking requests, portal sign-in links), counted in
rate_limit_hits rows keyed by a hashed address, link, clinic or client.

A hit counts for WINDOW only; housekeeping (core.practice.housekeeping) deletes hits older than
KEEP, which count for nothing (a day's hits are kept for a look at a burst of requests)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.kernel import locks
from db.models import RateLimitHit

WINDOW = timedelta(hours=1)  # what a limit counts: the hits of the last hour
KEEP = timedelta(days=1)  # hits older than this count for nothing and are deleted


def over_limit(session: Session, limits: dict[str, int], now: datetime) -> bool:
    """Whether any key has had its hour's share (`limits`: key → hits allowed an hour). On
    PostgreSQL each key is locked first (a lock held until the transaction ends, taken in one
    order so two requests never wait on each other): under READ COMMITTED, requests that count
    at the same moment would all see room and all be let in. SQLite needs none: a writing
    transaction holds the database's write lock."""
    locks.hold(session, *limits)
    counts = session.execute(
        select(RateLimitHit.key, func.count())
        .where(RateLimitHit.key.in_(list(limits)), RateLimitHit.at > now - WINDOW)
        .group_by(RateLimitHit.key)
    ).all()
    return any(n >= limits[key] for key, n in counts)


def hit(session: Session, keys: Iterable[str], now: datetime) -> None:
    """Count one request against each key."""
    session.add_all([RateLimitHit(key=key, at=now) for key in keys])


def stale(now: datetime):
    """SQL: the hits no limit counts any more (older than KEEP, well past WINDOW)."""
    return RateLimitHit.at < now - KEEP
