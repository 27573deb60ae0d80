"""The import and interchange tests again, on a real PostgreSQL."""

from tests.unit.test_imports import *  # noqa: F403
from tests.unit.test_interchange import *  # noqa: F403
