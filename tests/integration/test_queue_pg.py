"""The queue's away mark on a real PostgreSQL: the visit's services and buffers read in one
query for the page (core.requests.queue._with_timing)."""

from tests.unit.test_queue import (  # noqa: F401
    test_the_away_mark_counts_the_visits_buffers_as_the_booking_rule_does,
    test_the_away_mark_reads_the_whole_visit_of_several_services,
)
