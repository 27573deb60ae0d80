"""`python -m core.cli COMMAND`: migrate, seed-demo, create-user, send-notifications."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time

from core import accounts, demo, jobs, notify
from core.authz import SYSTEM
from core.config import load_settings
from core.errors import DomainError
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
    send = commands.add_parser("send-notifications", help="deliver queued messages")
    send.add_argument("--loop", action="store_true", help="keep sending every --every seconds")
    send.add_argument("--every", type=float, default=30.0)
    run_jobs = commands.add_parser("run-jobs", help="run every periodic job (sender included)")
    run_jobs.add_argument("--loop", action="store_true", help="repeat every --every seconds")
    run_jobs.add_argument("--every", type=float, default=30.0)
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
    database = open_database(load_settings(), migrate=True)
    password = args.password or getpass.getpass("Password (10 characters or more): ")
    with database.write() as session:
        user = accounts._insert_user(session, SYSTEM, args.username, args.name, args.role,
                                     password, args.email)  # fmt: skip
    print(f"Created {user.role.value} account {user.username!r}.")
    return 0


def _send(args) -> int:
    settings = load_settings()
    database = open_database(settings)
    transports = notify.transports(settings)
    while True:
        report = notify.send_due(database.write, transports)
        if report.sent or report.failed or report.retrying or not args.loop:
            print(f"sent {report.sent}, retrying {report.retrying}, failed {report.failed}")
        if not args.loop:
            return 0
        time.sleep(args.every)


def _run_jobs(args) -> int:
    settings = load_settings()
    database = open_database(settings)
    while True:
        jobs.run_due(database, settings)
        if not args.loop:
            return 0
        time.sleep(args.every)


COMMANDS = {"migrate": _migrate, "seed-demo": _seed, "create-user": _create_user,
            "send-notifications": _send, "run-jobs": _run_jobs}  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
