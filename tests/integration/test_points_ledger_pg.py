"""The points ledger's opening entries and their backfill migration again, on PostgreSQL."""

from tests.unit.test_points_ledger import *  # noqa: F403
