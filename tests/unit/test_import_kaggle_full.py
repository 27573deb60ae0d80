"""The whole Kaggle no-show file (found beside the repository, ../shared/data), and the CLI's
one line for a file that is not there."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from core import cli
from core.analytics import stats
from core.interchange import imports
from core.kernel.authz import SYSTEM
from db.engine import Database
from db.models import Appointment, ImportBatch, Patient

ROOT = Path(__file__).resolve().parents[2]


def test_the_whole_kaggle_file_imports_every_appointment_with_six_warnings(db, world):
    assert imports.NOSHOW_FILE.parts[-4:-2] == ("shared", "data")
    report = imports.import_appointments(
        db.write, world.owner, imports.NOSHOW_FILE, imports.KAGGLE_NOSHOW
    )
    assert (report.rows_read, report.created, report.problem_count) == (110_527, 110_527, 0)
    assert (report.patients_created, report.warning_count) == (62_299, 6)
    assert sum("after the appointment day" in w.reason for w in report.warnings) == 5
    assert sum(w.reason.startswith("age -1 ") for w in report.warnings) == 1
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 110_527
        assert session.scalar(select(func.count()).select_from(Patient)) == 62_299 + 1
        assert session.scalar(select(ImportBatch.finished_at)) is not None


def test_the_cli_says_one_line_for_a_missing_file_or_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    for target, words in ((tmp_path / "nope.csv", "There is no file"), (tmp_path, "a folder")):
        assert cli.main(["import-appointments", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err


def test_an_import_killed_part_way_is_finished_by_running_it_again(tmp_path):
    """A real process killed with SIGKILL between chunks: its rows stay out of the analytics,
    and the same command again finishes the import without duplicates. The file's first
    5,000 rows: five chunks (imports.CHUNK), so the kill, sent as soon as the first chunk is
    seen, lands with four still to save, and the second run both takes in the killed run's
    rows and saves new ones; the size is not what the test is about (20,000 rows took half as
    long again: most of the time is the two processes' start)."""
    rows = 5_000
    assert rows >= 5 * imports.CHUNK
    with open(imports.NOSHOW_FILE, "rb") as handle:
        lines = [line for _, line in zip(range(rows + 1), handle, strict=False)]
    source = tmp_path / "slice.csv"
    source.write_bytes(b"".join(lines))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'kill.db'}",
        "CLINICDESK_DATA_DIR": str(tmp_path),
        "CLINICDESK_SECRET_KEY": "k" * 40,
    }
    command = [sys.executable, "-m", "core.cli", "import-appointments", str(source)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    database = Database(env["DATABASE_URL"])
    try:
        while process.poll() is None and _saved(database) == 0:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 0 < _saved(database) < rows  # killed part-way
        assert _counted(database) == 0
        again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert "note: Resumed import #1" in again.stdout
        assert f"{rows:,} appointments imported, 0 already imported" in again.stdout
        assert _saved(database) == rows and _counted(database) == rows
    finally:
        process.kill()
        database.dispose()


def _saved(database: Database) -> int:
    try:
        with database.read() as session:
            return session.scalar(select(func.count()).select_from(Appointment))
    except OperationalError:  # the command has not created the tables yet
        return 0


def _counted(database: Database) -> int:
    with database.read() as session:
        totals = stats.plain(stats.figures(session, SYSTEM))["totals"]
    return totals["no_shows"] + totals["attended"]
