"""The foundation's service tests again, on a real PostgreSQL, plus its migration path."""

import uuid

import pytest

from core.kernel.config import load_settings
from core.kernel.errors import DatabaseUnavailable
from core.startup import open_database
from db import migrate
from tests.unit.test_accounts import *  # noqa: F403
from tests.unit.test_notify import *  # noqa: F403


def test_postgres_is_migrated_by_command_and_refused_when_out_of_date(temp_postgres, tmp_path):
    url = temp_postgres.create_database(f"m_{uuid.uuid4().hex[:10]}")
    settings = load_settings(
        {"DATABASE_URL": url, "CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "none.toml"
    )
    with pytest.raises(DatabaseUnavailable, match="core.cli migrate"):
        open_database(settings)
    database = open_database(settings, migrate=True)
    assert migrate.is_current(database.engine)
    database.dispose()
    open_database(settings).dispose()  # now it starts
