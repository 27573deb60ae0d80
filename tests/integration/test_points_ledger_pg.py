"""The points ledger's opening entries, their backfill migration and its writers again, on
PostgreSQL: two changes of one balance at once both count."""

from tests.unit.test_points_ledger import *  # noqa: F403
