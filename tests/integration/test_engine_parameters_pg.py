"""Database errors carry no bound value on PostgreSQL either (psycopg quotes them otherwise)."""

from tests.unit.test_engine_parameters import test_a_database_error_carries_no_bound_value  # noqa: F401
