"""The survey figures again on PostgreSQL (date_trunc buckets, ILIKE, casts)."""

from tests.unit.test_survey_analytics import *  # noqa: F403
