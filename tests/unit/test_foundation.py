"""Configuration, permissions, tokens, clock and start-up checks."""

import socket
from datetime import UTC, date, datetime, time, timedelta

import pytest

from core.kernel import tokens
from core.kernel.authz import MATRIX, Actor, Permission, ensure, matrix_markdown
from core.kernel.clock import local_day_bounds, local_days_bounds, local_to_utc
from core.kernel.config import load_settings
from core.kernel.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    LinkInvalid,
    PermissionDenied,
)
from core.kernel.money import format_moment
from core.messaging import visit_calendar
from core.startup import open_database
from db import migrate
from db.models import Role


def test_settings_come_from_environment_with_safe_defaults(tmp_path):
    settings = load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "none.toml")
    assert settings.database_url == f"sqlite:///{tmp_path}/clinicdesk.db"
    assert settings.idle_minutes == 480 and settings.smtp is None
    assert len(settings.secret_key) >= 32 and (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    again = load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "none.toml")
    assert again.secret_key == settings.secret_key


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SMTP_HOST": "mail", "SMTP_PORT": "abc"}, "SMTP_PORT"),
        ({"SMTP_HOST": "mail", "SMTP_SECURITY": "tls1"}, "SMTP_SECURITY"),
        ({"CLINICDESK_IDLE_MINUTES": "0"}, "CLINICDESK_IDLE_MINUTES"),
        ({"DATABASE_URL": "clinicdesk.db"}, "DATABASE_URL"),
        ({"SMS_PROVIDER": "pigeon"}, "SMS_PROVIDER"),
        ({"CLINICDESK_BASE_URL": "clinic.example"}, "CLINICDESK_BASE_URL"),
    ],
)
def test_malformed_settings_name_the_setting(tmp_path, env, named):
    with pytest.raises(ConfigurationError, match=named):
        load_settings({"CLINICDESK_DATA_DIR": str(tmp_path), **env}, tmp_path / "none.toml")


def test_the_settings_never_show_their_secrets(tmp_path):
    secrets = {
        "CLINICDESK_SECRET_KEY": "key-" + "k" * 40,
        "DATABASE_URL": "postgresql+psycopg://clinic:db-pass-123@db.example/clinic",
        "SMTP_HOST": "smtp.example.org",
        "SMTP_PASSWORD": "smtp-pass-123",
        "SMS_PROVIDER": "http",
        "SMS_HTTP_URL": "https://sms.example/send",
        "SMS_HTTP_TOKEN": "sms-token-123",
        "SMS_INBOUND_SECRET": "inbound-secret-123",
        "TWILIO_AUTH_TOKEN": "twilio-token-123",
        "STRIPE_SECRET_KEY": "sk_test_stripe123",
        "STRIPE_WEBHOOK_SECRET": "whsec_hook123",
    }
    settings = load_settings({"CLINICDESK_DATA_DIR": str(tmp_path), **secrets}, tmp_path / "x")
    assert settings.secret_key == secrets["CLINICDESK_SECRET_KEY"]  # read, only not shown
    shown = f"{settings!r} {settings} {settings.smtp!r} {settings.sms!r} {settings.stripe!r}"
    assert "smtp.example.org" in shown and "sms.example" in shown
    for name in ("k" * 40, "db-pass-123", "pass-123", "token-123", "secret-123", "stripe123"):
        assert name not in shown
    assert "hook123" not in shown


def test_secrets_file_is_read_and_environment_wins(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[smtp]\nhost = "smtp.example.org"\nport = 587\nsecurity = "starttls"\n')
    settings = load_settings({"CLINICDESK_DATA_DIR": str(tmp_path), "SMTP_PORT": "2525"}, secrets)
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == (
        "smtp.example.org",
        2525,
        "starttls",
    )


def test_unreachable_database_is_one_clear_line(tmp_path):
    settings = load_settings(
        {
            "CLINICDESK_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql+psycopg://u:secret@127.0.0.1:9/x",
        },
        tmp_path / "none.toml",
    )
    with pytest.raises(DatabaseUnavailable) as failure:
        open_database(settings)
    message = str(failure.value)
    assert "\n" not in message and "secret" not in message and "DATABASE_URL" in message


def test_a_silent_database_host_fails_after_the_connect_timeout(tmp_path):
    """A host that accepts the connection and never answers (a firewall, a hung server) must
    not hang start-up: the configured connect timeout ends it with the one-line message."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = load_settings(
            {
                "CLINICDESK_DATA_DIR": str(tmp_path),
                "DATABASE_URL": f"postgresql+psycopg://u:secret@127.0.0.1:{port}/x",
                "CLINICDESK_DB_CONNECT_TIMEOUT": "1",
            },
            tmp_path / "none.toml",
        )
        assert settings.connect_timeout == 1
        with pytest.raises(DatabaseUnavailable, match="Cannot open the database"):
            open_database(settings)


def test_sqlite_is_migrated_on_start(tmp_path):
    settings = load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "none.toml")
    database = open_database(settings)
    assert migrate.is_current(database.engine)
    assert migrate.current_revision(database.engine) == migrate.head_revision()


def test_visit_files_name_the_configured_sender_as_their_organizer(tmp_path):
    """A visit's calendar file names the address its email goes from (SMTP_FROM) as its
    ORGANIZER: mail programs compare the two. open_database hands it to every session."""
    env = {"CLINICDESK_DATA_DIR": str(tmp_path), "SMTP_HOST": "127.0.0.1"}
    sender = "Harbour Desk <desk@harbour.example>"
    configured = open_database(load_settings(env | {"SMTP_FROM": sender}, tmp_path / "none.toml"))
    with configured.read() as session:
        assert session.info[visit_calendar.SENDER] == sender
    without = open_database(
        load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "none.toml")
    )
    with without.read() as session:
        assert session.info[visit_calendar.SENDER] == visit_calendar.DEFAULT_SENDER


def test_matrix_follows_the_design():
    assert MATRIX[Role.OWNER] == frozenset(Permission)
    assert Permission.USERS_MANAGE not in MATRIX[Role.MANAGER]
    assert Permission.QUEUE_WORK in MATRIX[Role.MANAGER]
    assert Permission.QUEUE_WORK not in MATRIX[Role.STAFF]
    assert Permission.INVITATIONS_SEND in MATRIX[Role.STAFF]
    assert MATRIX[Role.STAFF] < MATRIX[Role.MANAGER] < MATRIX[Role.OWNER]
    assert matrix_markdown().count("\n") == len(Permission) + 1


def test_ensure_names_the_role_and_the_action():
    staff = Actor(1, "Sam", Role.STAFF)
    with pytest.raises(PermissionDenied, match=r"staff.*manage user accounts"):
        ensure(staff, Permission.USERS_MANAGE)
    with pytest.raises(PermissionDenied, match="a patient"):
        ensure(Actor(None, "Patient"), Permission.APPOINTMENTS_READ)


def test_tokens_are_hashed_single_purpose_expiring_and_single_use(db):
    with db.write() as session:
        issued = tokens.issue(session, "enroll", 7, timedelta(days=1))
        assert issued.row.token_hash != issued.raw and len(issued.raw) >= 43  # 256 bits
        assert tokens.verify(session, issued.raw, "enroll").subject_id == 7
        for raw, purpose in (
            (issued.raw, "survey"),
            (issued.raw[:-1] + "x", "enroll"),
            ("", "enroll"),
        ):
            with pytest.raises(LinkInvalid):
                tokens.verify(session, raw, purpose)
        with pytest.raises(LinkInvalid):
            tokens.verify(session, issued.raw, "enroll", now=datetime.now(UTC) + timedelta(days=2))
        tokens.consume(session, tokens.verify(session, issued.raw, "enroll"))
        with pytest.raises(LinkInvalid):
            tokens.verify(session, issued.raw, "enroll")


def test_clinic_local_times_across_daylight_saving():
    # London springs forward on 29 March 2026: the local day is 23 hours long
    start, end = local_day_bounds(date(2026, 3, 29), "Europe/London")
    assert end - start == timedelta(hours=23)
    # a range of local days: from the first day's midnight to the midnight after the last
    assert local_days_bounds(date(2026, 3, 28), date(2026, 3, 29), "Europe/London") == (
        datetime(2026, 3, 28, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 23, 0, tzinfo=UTC),
    )
    # New York falls back on 1 November 2026: 01:30 happens twice; we take the first
    assert local_to_utc(date(2026, 11, 1), time(1, 30), "America/New_York") == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    assert (
        format_moment(datetime(2026, 7, 1, 8, 30, tzinfo=UTC), "Europe/London", "en-GB")
        == "Wed, 1 Jul 2026, 09:30"
    )


def test_the_migrations_create_the_triggers_the_models_do():
    """Each migration that (re)creates the triggers holds a frozen copy of db/triggers.py: the
    newest copy must not drift from it, so a migrated database and a created one agree."""
    from db import triggers
    from db.regen_initial import VERSIONS

    frozen: dict = {}
    for path in sorted(VERSIONS.glob("0*.py")):
        if "\nTRIGGERS = " in path.read_text():
            frozen = {}
            exec(compile(path.read_text(), str(path), "exec"), frozen)  # noqa: S102 (our own)
    assert frozen["TRIGGERS"] == triggers.CREATE and frozen["DROP_TRIGGERS"] == triggers.DROP
