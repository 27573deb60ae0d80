"""Unusable settings get one line naming them (core, CLI, page); the SQLite file and the data
folder are created readable by their owner only."""

import stat
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import cli
from core.kernel.config import load_settings
from core.kernel.errors import ConfigurationError
from core.startup import open_database

ROOT = Path(__file__).resolve().parents[2]
KEY = "k" * 40


def _cases(tmp_path: Path) -> list[tuple[dict[str, str], str]]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return [
        ({"DATABASE_URL": "postgresql+psycopg://u:p@db.example:5x32/clinic"}, "DATABASE_URL"),
        ({"DATABASE_URL": f"sqlite:///{blocker}/sub/clinic.db"}, "DATABASE_URL"),
        ({"CLINICDESK_DATA_DIR": str(blocker / "data"), "CLINICDESK_SECRET_KEY": ""}, "DATA_DIR"),
        ({"CLINICDESK_JOB_SECONDS": "every minute"}, "CLINICDESK_JOB_SECONDS"),
    ]


def _environment(tmp_path: Path, bad: dict[str, str]) -> dict[str, str]:
    return {"CLINICDESK_DATA_DIR": str(tmp_path / "data"), "CLINICDESK_SECRET_KEY": KEY, **bad}


def test_each_unusable_setting_is_one_error_naming_it(tmp_path):
    for bad, named in _cases(tmp_path):
        env = _environment(tmp_path, bad)
        with pytest.raises(ConfigurationError, match=named) as raised:
            open_database(load_settings(env, tmp_path / "none.toml"))
        assert "\n" not in str(raised.value)


def test_the_cli_prints_one_line_naming_the_setting(tmp_path, monkeypatch, capsys):
    for bad, named in _cases(tmp_path):
        for key, value in _environment(tmp_path, bad).items():
            monkeypatch.setenv(key, value)
        assert cli.main(["migrate"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and named in err
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("CLINICDESK_JOB_SECONDS", raising=False)


def test_the_page_shows_one_line_naming_the_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for bad, named in _cases(tmp_path):
        for key, value in _environment(tmp_path, bad).items():
            monkeypatch.setenv(key, value)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
        assert not at.exception
        assert len(at.error) == 1 and named in at.error[0].value
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("CLINICDESK_JOB_SECONDS", raising=False)


def test_the_database_file_and_data_folder_are_private(tmp_path):
    data = tmp_path / "fresh" / "data"
    settings = load_settings({"CLINICDESK_DATA_DIR": str(data)}, tmp_path / "none.toml")
    open_database(settings).dispose()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("clinicdesk.db", "secret_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    quiet = {"CLINICDESK_JOB_SECONDS": "0", "CLINICDESK_DATA_DIR": str(data)}
    assert load_settings(quiet, tmp_path / "none.toml").job_seconds == 0
