"""Migration 0017 on PostgreSQL: a message failed for good keeps its reason as a column."""

from tests.unit.test_notify import (  # noqa: F401
    test_the_migration_gives_messages_stopped_before_it_their_reason_from_their_words,
)
