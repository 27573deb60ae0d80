"""The whole Kaggle no-show file (found beside the repository, ../shared/data), and the CLI's
one line for a file that is not there."""

from sqlalchemy import func, select

from core import cli
from core.interchange import imports
from db.models import Appointment, ImportBatch, Patient


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
