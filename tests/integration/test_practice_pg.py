"""The practice set-up and practice-file tests, the one-laser race included, again on a real
PostgreSQL."""

from tests.unit.test_practice import *  # noqa: F403
from tests.unit.test_practice_file import *  # noqa: F403
