"""The command line: `python -m core.cli COMMAND`; `--help` lists every command.

Each command imports the services it runs when it runs: the no-show model's fit starts this as
a child process at low priority (`train-risk`), and importing every command's services (the
demo, the jobs, FHIR, the password hasher) made a small practice's fit take 5.2 s of CPU, not
3.8 s."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time

from core.interchange import imports
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.kernel.errors import DatabaseUnavailable, DomainError
from core.kernel.exports import record_export
from core.startup import open_database
from db.models import Role


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database schema up to date")
    seed = commands.add_parser("seed-demo", help="load demo data into an empty database")
    seed.add_argument("--if-empty", action="store_true", help="do nothing when data exists")
    user = commands.add_parser("create-user", help="create a staff account")
    user.add_argument("username")
    user.add_argument("--name", required=True, help="name as colleagues see it")
    user.add_argument("--role", choices=[r.value for r in Role], required=True)
    user.add_argument("--email")
    user.add_argument("--password", help="read from the terminal when omitted")
    reset = commands.add_parser(
        "reset-password", help="set a new password for an account (an owner who forgot theirs)"
    )
    reset.add_argument("username")
    reset.add_argument("--password", help="read from the terminal when omitted")
    send = commands.add_parser("send-notifications", help="deliver queued messages")
    send.add_argument("--loop", action="store_true", help="keep sending every --every seconds")
    send.add_argument("--every", type=float, default=30.0)
    run_jobs = commands.add_parser("run-jobs", help="run every periodic job (sender included)")
    run_jobs.add_argument("--loop", action="store_true", help="repeat every --every seconds")
    run_jobs.add_argument("--every", type=float, default=30.0)
    _add_data_commands(commands)
    export = commands.add_parser("export-practice", help="write the practice set-up (TOML)")
    export.add_argument("file", help="the .toml file to write")
    apply = commands.add_parser("import-practice", help="apply a practice set-up file (TOML)")
    apply.add_argument("file", help="the .toml file to read")
    _add_risk_commands(commands)
    backup = commands.add_parser("backup", help="write a checked backup of the database")
    backup.add_argument(
        "--out",
        help="file to write, replaced if it exists (default: a new file in DATA_DIR/backups)",
    )
    restore = commands.add_parser("restore", help="put a SQLite backup in place of the database")
    restore.add_argument("file", help="the backup (.db) to restore")
    restore.add_argument(
        "--replace", action="store_true", help="replace a database that holds data (kept beside)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _migrate(args) -> int:
    open_database(load_settings(), migrate=True)
    print("The database schema is up to date.")
    return 0


def _seed(args) -> int:
    from core import demo
    from core.kernel import accounts

    database = open_database(load_settings(), migrate=True)
    with database.read() as session:
        if accounts.count_users(session) and args.if_empty:
            print("The database has data already; no demo data added. Demo accounts, if loaded:")
            _print_accounts(demo.DEMO_PASSWORDS)
            return 0
    with database.write() as session:
        summary = demo.seed_demo(session)
    print(f"Demo data loaded: {summary.patients} patients, {summary.appointments} appointments.")
    _print_accounts(summary.accounts)
    return 0


def _print_accounts(accounts_: dict) -> None:
    print("Demo accounts (username / password / role):")
    for username, (_, role, password) in accounts_.items():
        print(f"  {username:<8} {password:<18} {role.value}")


def _create_user(args) -> int:
    from core.kernel import accounts

    database = open_database(load_settings(), migrate=True)
    password = args.password or getpass.getpass("Password (10 characters or more): ")
    with database.write() as session:
        user = accounts.insert_user(
            session, SYSTEM, args.username, args.name, args.role, password, args.email
        )
    print(f"Created {user.role.value} account {user.username!r}.")
    return 0


def _reset_password(args) -> int:
    from core.kernel import accounts

    database = open_database(load_settings())
    password = args.password or getpass.getpass("New password (10 characters or more): ")
    with database.write() as session:
        user = accounts.reset_password_at_console(session, args.username, password)
    print(f"New password set for {user.username!r}; their sessions are ended. Sign in with it.")
    return 0


def _send(args) -> int:
    from core.messaging import delivery

    settings = load_settings()
    database = open_database(settings)
    transports = delivery.transports(settings)
    while True:
        report = delivery.send_due(database.write, transports)
        if report.sent or report.failed or report.retrying or report.held or not args.loop:
            print(
                f"sent {report.sent}, retrying {report.retrying}, failed {report.failed}, "
                f"waiting for a transport {report.waiting}, held for quiet hours {report.held}"
            )
        if not args.loop:
            return 0
        time.sleep(args.every)


def _run_jobs(args) -> int:
    from core import jobs

    settings = load_settings()
    database = open_database(settings)
    while True:
        try:
            jobs.run_due(database, settings)
        except DatabaseUnavailable as exc:
            if not args.loop:
                raise
            print(f"error: {exc}", file=sys.stderr)  # one line a round until it is back
        if not args.loop:
            return 0
        time.sleep(args.every)


def _add_data_commands(commands) -> None:
    """import-appointments, import-surveys, import-fhir, export-fhir, export-ical, stats."""
    from datetime import date

    appointments = commands.add_parser("import-appointments", help="import appointments (CSV)")
    appointments.add_argument("file")
    appointments.add_argument(
        "--preset", choices=sorted(imports.APPOINTMENT_PRESETS), default="kaggle-noshow"
    )
    appointments.add_argument("--clinic", default=imports.KAGGLE_CLINIC[0])
    appointments.add_argument("--timezone", default=imports.KAGGLE_CLINIC[1])
    appointments.add_argument(
        "--provider",
        type=_provider_choice,
        help="the provider id the visits were with (the file names none), or 'none' to import "
        "them without a provider (the preset's choice when not given)",
    )
    surveys = commands.add_parser("import-surveys", help="import survey responses (CSV)")
    surveys.add_argument("file")
    surveys.add_argument("--preset", choices=sorted(imports.SURVEY_PRESETS), default="nhs-fft")
    for command in (appointments, surveys):
        command.add_argument(
            "--encoding", help="the file's encoding (default: UTF-8, else guessed and reported)"
        )
        command.add_argument(
            "--date-order",
            choices=["day-first", "month-first"],
            help="how the file writes 05/06/2024: day-first (5 June) or month-first (May 6); "
            "ISO dates need neither",
        )
    fhir_in = commands.add_parser("import-fhir", help="import FHIR R4 Appointment resources")
    fhir_in.add_argument("files", nargs="+")
    fhir_out = commands.add_parser("export-fhir", help="write a FHIR R4 Bundle of appointments")
    fhir_out.add_argument("--out", help="file to write (default: standard output)")
    fhir_out.add_argument("--limit", type=int, default=5000)
    ical = commands.add_parser("export-ical", help="write a provider's iCalendar feed")
    ical.add_argument("--provider", type=int, required=True, help="provider id")
    ical.add_argument("--out", help="file to write (default: standard output)")
    stats = commands.add_parser("stats", help="print the no-show and cancellation figures")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument("--since", type=date.fromisoformat, help="first day (YYYY-MM-DD)")
    stats.add_argument("--until", type=date.fromisoformat, help="last day (YYYY-MM-DD)")
    stats.add_argument("--clinic", type=int, help="clinic id (default: all clinics)")


def _provider_choice(text: str) -> int | str:
    if text.strip().lower() == imports.WITHOUT_PROVIDER:
        return imports.WITHOUT_PROVIDER
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is neither a provider id nor 'none'")
    return int(text)


def _data_command(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from core.analytics import stats
    from core.interchange import standards as interchange

    database = open_database(load_settings())

    def report(result) -> int:
        for note in getattr(result, "notes", []):
            print(f"note: {note}")
        print(result.summary)
        for problem in result.problems[:50]:
            print(f"  row {problem.row}: {problem.reason}")
        if result.problem_count > 50:
            print(f"  … and {result.problem_count - 50} more")
        for warning in getattr(result, "warnings", [])[:50]:
            print(f"  row {warning.row} (imported): {warning.reason}")
        if getattr(result, "warning_count", 0) > 50:
            print(f"  … and {result.warning_count - 50} more warnings")
        return 0

    def out(content: bytes) -> None:
        if args.out:
            write_private(args.out, content)
            print(f"Wrote {args.out} ({len(content):,} bytes).", file=sys.stderr)
        else:
            sys.stdout.buffer.write(content)

    if args.command == "import-appointments":  # saved in chunks, each its own transaction
        preset = imports.APPOINTMENT_PRESETS[args.preset]
        return report(
            imports.import_appointments(
                database.write,
                SYSTEM,
                args.file,
                replace(
                    preset,
                    date_order=args.date_order,
                    provider=preset.provider if args.provider is None else args.provider,
                ),
                clinic_name=args.clinic,
                timezone=args.timezone,
                encoding=args.encoding,
            )
        )
    with database.write() as session:
        if args.command == "import-surveys":
            return report(
                imports.import_surveys(
                    session,
                    SYSTEM,
                    args.file,
                    replace(imports.SURVEY_PRESETS[args.preset], date_order=args.date_order),
                    encoding=args.encoding,
                )
            )
        if args.command == "import-fhir":
            return report(interchange.import_fhir(session, SYSTEM, [Path(f) for f in args.files]))
        if args.command == "export-fhir":
            bundle = interchange.export_fhir(session, SYSTEM, limit=args.limit)
            out(bundle.content)
            return 0
        if args.command == "export-ical":
            out(interchange.export_ical(session, SYSTEM, args.provider).content)
            return 0
    with database.read() as session:
        result = stats.figures(
            session, SYSTEM, since=args.since, until=args.until, clinic_id=args.clinic
        )
        print(stats.render(result, as_json=args.json))
    return 0


def _practice_file(args) -> int:
    """export-practice FILE / import-practice FILE (all or nothing, with a report)."""
    from pathlib import Path

    from core.interchange import practice_file

    database = open_database(load_settings(), migrate=True)
    if args.command == "export-practice":
        try:  # written inside the transaction: the export is audited only once the file is
            with database.write() as session:
                text = practice_file.export_practice(session, SYSTEM)
                Path(args.file).write_text(text, encoding="utf-8")
        except OSError as error:
            print(f"error: cannot write {args.file}: {error.strerror}", file=sys.stderr)
            return 2
        print(f"Wrote {args.file}.")
        return 0
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as error:
        print(f"error: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as error:
        print(
            f"error: {args.file} is not UTF-8 (byte {error.start:,}); save it as UTF-8 and "
            "import it again.",
            file=sys.stderr,
        )
        return 2
    with database.write() as session:
        report = practice_file.import_practice(session, SYSTEM, text)
    for line in report.lines:
        print(line)
    return 0


def _add_risk_commands(commands) -> None:
    train = commands.add_parser("train-risk", help="train the no-show risk model")
    train.add_argument("--until", type=_day, help="train on days before (default: today)")
    score = commands.add_parser("score-risk", help="write no-show probabilities as CSV")
    score.add_argument("--from", dest="since", type=_day, required=True)
    score.add_argument("--until", type=_day, help="first day not scored")
    score.add_argument("--out", required=True, help="CSV file to write")


def _day(text: str):
    """A command line date, or argparse's error saying how to write one."""
    from datetime import date

    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write it as YYYY-MM-DD, like 2026-05-20"
        ) from None


def _unwritable(path: str) -> str | None:
    """Why `path` cannot be written (checked before minutes of scoring), else None."""
    from pathlib import Path

    target = Path(path)
    folder = target.parent
    if target.is_dir():
        return f"{path} is a folder: give a file name, like {target / 'scores.csv'}"
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if not os.access(target if target.exists() else folder, os.W_OK):
        return f"{path} cannot be written here (permission denied)"
    return None


def _risk_command(args) -> int:
    from core.analytics import risk_jobs, risk_model

    if args.command == "score-risk":
        if args.until is not None and args.until <= args.since:
            print(
                f"error: --until ({args.until}) must be after --from ({args.since}): it is "
                "the first day not scored.",
                file=sys.stderr,
            )
            return 2
        if why := _unwritable(args.out):
            print(f"error: cannot write the scores: {why}.", file=sys.stderr)
            return 2
    database = open_database(load_settings())
    if args.command == "train-risk":
        # the fit reads for minutes on a large practice: outside a write transaction, which on
        # SQLite would hold every other writer off; the model is then stored in a short one.
        # Started by the jobs or Retrain now, it holds their claim so no other fit starts.
        with risk_jobs.holding_claim(database, os.environ.get(risk_jobs.FIT_SINCE)):
            with database.read() as session:
                model = risk_model.learn(session, SYSTEM, until=args.until)
            with database.write() as session:
                print(risk_model.save(session, SYSTEM, model).summary)
        return 0
    with database.read() as session:
        scored = risk_model.score(session, SYSTEM, since=args.since, until=args.until)
    try:
        with database.write() as session:  # audited only once the file is written
            filters = {"since": args.since, "until": args.until}
            record_export(session, SYSTEM, "risk_scores", len(scored), filters)
            write_private(args.out, risk_model.scores_csv(scored))
    except OSError as error:
        print(f"error: cannot write the scores to {args.out}: {error.strerror}.", file=sys.stderr)
        return 2
    print(f"Wrote {len(scored):,} probabilities to {args.out}.")
    return 0


def _backup(args) -> int:
    """A checked backup (core.practice.backups), audited as an export."""
    from pathlib import Path

    from core.kernel.clock import utcnow
    from core.kernel.config import ensure_private_folder
    from core.practice import backups

    settings = load_settings()
    database = open_database(settings)
    if args.out:
        out = Path(args.out)
    else:
        folder = Path(settings.data_dir) / backups.FOLDER
        ensure_private_folder(folder, "CLINICDESK_DATA_DIR")
        out = folder / backups.manual_name(utcnow(), database.dialect)
    try:
        made = backups.take_backup(database, SYSTEM, out, replace=bool(args.out))
    except OSError as error:
        print(f"error: cannot write the backup to {out}: {error.strerror}.", file=sys.stderr)
        return 2
    checked = (
        f"integrity checked, schema at revision {made.revision}; "
        f"{made.patients:,} patients, {made.appointments:,} appointments"
        if made.revision
        else f"pg_dump custom format, read back with pg_restore; {made.patients:,} patients"
    )
    print(f"Wrote the backup {made.path} ({made.size:,} bytes; {checked}).")
    return 0


def _restore(args) -> int:
    """Put a SQLite backup in place of the database (PostgreSQL: pg_restore, see README)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from core.practice import backups

    settings = load_settings()
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        print(
            "error: restore puts back a SQLite backup; on PostgreSQL restore a pg_dump file "
            "with pg_restore (README, Backups).",
            file=sys.stderr,
        )
        return 2
    try:
        done = backups.restore_sqlite(Path(args.file), Path(url.database), replace=args.replace)
    except OSError as error:
        print(f"error: cannot restore {args.file}: {error.strerror}.", file=sys.stderr)
        return 2
    held = done.contents
    print(
        f"Restored {done.source} into {done.target}: {held.patients:,} patients, "
        f"{held.appointments:,} appointments, {held.users:,} accounts."
    )
    if done.kept:
        print(f"The database it replaced is kept as {done.kept}.")
    database = open_database(settings, migrate=True)  # a backup by an older version: upgraded
    with database.write() as session:
        backups.record_restore(session, SYSTEM, done)
    if done.migrated:
        print(f"Its schema (revision {held.revision}) was brought up to date.")
    return 0


def write_private(path: str, content: bytes) -> None:
    """Write an export readable by its owner only, as the data folder is: it holds patient
    data (a file already there is narrowed too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(content)


COMMANDS = {
    "migrate": _migrate,
    "export-practice": _practice_file,
    "import-practice": _practice_file,
    "train-risk": _risk_command,
    "score-risk": _risk_command,
    "seed-demo": _seed,
    "create-user": _create_user,
    "reset-password": _reset_password,
    "send-notifications": _send,
    "run-jobs": _run_jobs,
    "backup": _backup,
    "restore": _restore,
}
COMMANDS.update(
    dict.fromkeys(
        [
            "import-appointments",
            "import-surveys",
            "import-fhir",
            "export-fhir",
            "export-ical",
            "stats",
        ],
        _data_command,
    )
)

if __name__ == "__main__":
    sys.exit(main())
