"""The waitlist: entries (who waits for what), freed slots matched, ranked and offered through
signed links, the accept that books through the life cycle, and the refill figures.

Owns waitlist_entries, slot_openings (rows queued by core.scheduling.openings) and
waitlist_offers. Imports core.requests, core.scheduling and the packages below them; the portal,
analytics, the jobs and the CLI call it.
"""
