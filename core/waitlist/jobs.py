"""The waitlist's periodic work for the jobs loop (core.jobs)."""

from __future__ import annotations

from core.kernel.config import Settings
from core.waitlist import entries, offers
from db.engine import Database


def offer_job(database: Database, settings: Settings) -> None:
    """Pending openings → ranked offers; lapsed offers → the next in line; past entries expire."""
    with database.write() as session:
        offers.expire_offers(session, base_url=settings.base_url)
    with database.write() as session:
        offers.process_openings(session, base_url=settings.base_url)
    with database.write() as session:
        entries.expire_entries(session)
