"""The stored scores as staff meet them (badges, call list, overbooking), on PostgreSQL."""

from tests.unit.test_risk_scores import *  # noqa: F403
