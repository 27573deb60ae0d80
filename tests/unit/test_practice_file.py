"""The practice file: export, import by name with a report, a bad file refused with
its line and nothing changed, the demo built from the file and the round trip.

Re-run on PostgreSQL by tests/integration/test_practice_pg.py."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core import cli, demo
from core.interchange import practice_file
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.kernel.errors import PermissionDenied, ValidationError
from core.policy import cancellation
from core.practice import checklist
from core.startup import install_session_rules, open_database
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Base,
    CancellationPolicy,
    Clinic,
    FeeBasis,
    Provider,
    Resource,
    Role,
    Service,
    ServiceDocument,
)
from db.types import utcnow
from tests.factories import make_patient, make_user
from tests.support.shared import built_once
from tests.support.templates import build_demo

DEMO_FILE = demo.PRACTICE_FILE.read_text()


def fresh(tmp_path, name: str) -> Database:
    database = Database(f"sqlite:///{tmp_path / name}")
    Base.metadata.create_all(database.engine)
    return database


@pytest.fixture
def demo_db(tmp_path_factory, tmp_path) -> Iterator[Database]:
    """The demo practice seeded as of today (a fixed day runs out of upcoming visits): a copy
    of the run's demo template (tests.support.templates: migrated with Alembic and seeded once
    a run, as the page tests' databases are), not a seeding of its own (33 s loaded). The
    PostgreSQL twin seeds its own database."""
    template = built_once(tmp_path_factory, "demo.db", build_demo)
    path = tmp_path / "demo.db"
    shutil.copyfile(template, path)
    database = Database(f"sqlite:///{path}")
    install_session_rules()
    yield database
    database.dispose()


def test_round_trip_of_the_demo_practice(demo_db, tmp_path):
    with demo_db.read() as session:
        exported = practice_file.export_practice(session, SYSTEM)
        assert checklist.checklist(session, SYSTEM).complete
    empty = fresh(tmp_path, "empty.db")
    with empty.write() as session:
        report = practice_file.import_practice(session, SYSTEM, exported)
    assert "created clinic Harbour Street Clinic" in report.lines
    with empty.read() as session:
        again = practice_file.export_practice(session, SYSTEM)
    assert again == exported
    body = DEMO_FILE[DEMO_FILE.index("format = 1") :]
    assert exported == body  # the kept demo file is exactly what the demo exports


def test_importing_the_same_file_again_changes_nothing(db):
    with db.write() as session:
        practice_file.import_practice(session, SYSTEM, DEMO_FILE)
    with db.read() as session:
        events = session.scalar(select(func.count()).select_from(AuditEvent))
    with db.write() as session:
        report = practice_file.import_practice(session, SYSTEM, DEMO_FILE)
    assert report.created == [] and report.updated == [] and report.unchanged > 20
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == events


def test_an_edited_file_updates_by_name_and_reports_it(db):
    with db.write() as session:
        practice_file.import_practice(session, SYSTEM, DEMO_FILE)
    edited = DEMO_FILE.replace(
        'name = "Blood test"\ncategory = "General"\nduration_minutes = 15',
        'name = "Blood test"\ncategory = "General"\nduration_minutes = 20',
    )
    edited = edited.replace("quantity = 3", "quantity = 4")
    with db.write() as session:
        report = practice_file.import_practice(session, SYSTEM, edited)
    assert report.updated == ["resource Treatment room (Lakeside Aesthetics)", "service Blood test"]
    with db.read() as session:
        assert (
            session.scalar(select(Service.duration_minutes).where(Service.name == "Blood test"))
            == 20
        )
        assert session.scalar(select(func.count()).select_from(Clinic)) == 2


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            ('timezone = "America/New_York"', 'timezone = "Moon/Base"'),
            "line 15 (clinics 'Lakeside Aesthetics'): 'Moon/Base' is not an IANA",
        ),
        (('resource = "Laser"', 'resource = "Lazer"'), "there is no resource 'Lazer'"),
        (('day = "Monday"', 'day = "Mon"'), "day must be one of Monday"),
        (("duration_minutes = 15", 'duration_minutes = "15"'), "duration_minutes must be int"),
        (("format = 1", "format = 1\n[[clinics"), "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_with_line_and_reason_and_nothing_changes(db, change, words):
    bad = DEMO_FILE.replace(*change, 1)
    with pytest.raises(ValidationError) as error, db.write() as session:
        practice_file.import_practice(session, SYSTEM, bad)
    assert words in str(error.value)
    with db.read() as session:
        for model in (Clinic, Provider, Service, Resource, ServiceDocument, AuditEvent):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_times_written_as_toml_times_are_read_as_the_quoted_ones(tmp_path):
    """TOML has its own times and dates (starts = 08:00:00, starts = 2027-01-04T09:00:00Z);
    an import of hours or time off written so stopped on a TypeError (a traceback on the page,
    nothing imported) instead of reading them as the quoted "08:00" does."""
    away = 'time_off = [{ starts = %s, ends = %s, reason = "Course" }]'
    quoted = DEMO_FILE.replace(
        "time_off = []", away % ('"2027-01-04T09:00:00Z"', '"2027-01-05T17:00:00Z"'), 1
    )
    native = quoted.replace('"2027-01-04T09:00:00Z"', "2027-01-04T09:00:00Z").replace(
        '"2027-01-05T17:00:00Z"', "2027-01-05T17:00:00Z"
    )
    native = re.sub(r'(starts|ends) = "(\d\d:\d\d)"', r"\1 = \2:00", native)
    assert "starts = 08:00:00, ends = 16:00:00" in native
    files = {}
    for name, text in (("quoted", quoted), ("native", native)):
        database = fresh(tmp_path, f"{name}.db")
        with database.write() as session:
            practice_file.import_practice(session, SYSTEM, text)
        with database.read() as session:
            files[name] = practice_file.export_practice(session, SYSTEM)
        database.dispose()
    assert files["native"] == files["quoted"]
    assert 'reason = "Course"' in files["native"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            ('{ clinic = "Harbour Street Clinic", resource = "Treatment room" },', '"Laser",'),
            "(services 'Botox treatment'): needs must be a list of tables "
            "like { clinic = …, resource = … }, not 'Laser'",
        ),
        (
            ('starts = "08:00"', 'starts = "8am"'),
            "(providers 'Dr Aisha Rahman'): starts must be a time of day as \"HH:MM\", not '8am'",
        ),
        (
            ("time_off = []", 'time_off = [{ starts = 2027, ends = "x" }]'),
            'starts must be a date and time as "2027-01-04T09:00:00Z", not 2027',
        ),
        (
            (
                "time_off = []",
                'time_off = [{ starts = "2027-01-04T09:00:00Z", '
                'ends = "2027-01-05T09:00:00Z", reason = 5 }]',
            ),
            "reason must be str, not 5",
        ),
        (
            ('services = [\n    "Consultation",\n    "Blood test",\n]', "services = [3, 4]"),
            "services must be a list of names in quotes, not 3",
        ),
        (
            ('clinics = [\n    "Harbour Street Clinic",\n]', "clinics = [1]"),
            "clinics must be a list of names in quotes, not 1",
        ),
        (
            ("questions = []", "questions = 5"),
            "questions must be list, not 5",
        ),
        (
            ("inside_window_needs_approval = true", 'inside_window_needs_approval = "no"'),
            "(policies 'Harbour Street Clinic'): inside_window_needs_approval must be bool, "
            "not 'no'",
        ),
    ],
)
def test_a_malformed_entry_inside_a_table_is_refused_with_its_line(db, change, words):
    """Entries inside a table (a service's needs and documents, a provider's clinics, services,
    hours and time off, a package's services) and policy values of the wrong kind stopped the
    import with a TypeError or AttributeError (a traceback; on PostgreSQL a number compared
    with a name)."""
    assert change[0] in DEMO_FILE
    bad = DEMO_FILE.replace(*change, 1)
    with pytest.raises(ValidationError) as error, db.write() as session:
        practice_file.import_practice(session, SYSTEM, bad)
    assert str(error.value).startswith("Nothing was imported. line ")
    assert words in str(error.value)
    with db.read() as session:
        for model in (Clinic, Provider, Service, Resource, ServiceDocument, AuditEvent):
            assert session.scalar(select(func.count()).select_from(model)) == 0


@pytest.mark.parametrize(
    ("change", "words", "typed"),
    [
        (
            ("[[providers]]", "[[provider]]"),
            ": [[provider]] is not part of a practice file; did you mean [[providers]]?",
            "[[provider]]",
        ),
        (
            ("buffer_before_minutes = 0", "buffer_before = 5"),
            "(services 'Consultation'): 'buffer_before' is not a key of [[services]]; "
            "did you mean 'buffer_before_minutes'?",
            "buffer_before = 5",
        ),
        (
            ('timezone = "America/New_York"', 'time_zone = "America/New_York"'),
            "(clinics 'Lakeside Aesthetics'): 'time_zone' is not a key of [[clinics]]; "
            "did you mean 'timezone'?",
            'time_zone = "America/New_York"',
        ),
        (
            (
                'clinic = "Harbour Street Clinic", day = "Monday"',
                'clinic = "Harbour Street Clinic", dya = "Monday"',
            ),
            "(providers 'Dr Aisha Rahman'): 'dya' is not a key of hours; did you mean 'day'?",
            'dya = "Monday"',
        ),
        (
            ("window_hours = 24", "window = 24"),
            "(policies 'Harbour Street Clinic'): 'window' is not a key of [[policies]]; "
            "did you mean 'window_hours'?",
            "window = 24",
        ),
        (
            ("required = true", "requried = true"),
            "'requried' is not a key of questions; did you mean 'required'?",
            "requried = true",
        ),
        (
            (
                'email = "harbour@clinicdesk.example"',
                'email = "harbour@clinicdesk.example"\nfax = ""',
            ),
            "'fax' is not a key of [[clinics]] (it may hold name, timezone, address, phone,",
            'fax = ""',
        ),
        (
            ("[templates]", "[templates.request_received]\nsubjet = 'Soon'\nbody = 'See you'"),
            "'subjet' is not a key of a template; did you mean 'subject'?",
            "subjet = 'Soon'",
        ),
        (
            ("[templates]", "[templates.request_recieved]\nsubject = 'Soon'\nbody = 'See you'"),
            "there is no message template 'request_recieved'; did you mean 'request_received'?",
            "[templates.request_recieved]",
        ),
        (
            ("[templates]", "[template]"),
            ": [template] is not part of a practice file; did you mean [templates]?",
            "[template]",
        ),
    ],
)
def test_an_unknown_table_or_key_is_refused_with_its_line_and_the_closest_key(
    db, change, words, typed
):
    """A table or key the file does not have was left out without a word: [[provider]]
    imported no provider, buffer_before = 5 left the service's buffer at 0."""
    assert change[0] in DEMO_FILE
    bad = DEMO_FILE.replace(*change, 1)
    with pytest.raises(ValidationError) as error, db.write() as session:
        practice_file.import_practice(session, SYSTEM, bad)
    message = str(error.value)
    assert message.startswith("Nothing was imported. line ") and words in message
    line = int(re.match(r"Nothing was imported. line (\d+)", message).group(1))
    assert typed in bad.splitlines()[line - 1]
    with db.read() as session:
        for model in (Clinic, Provider, Service, Resource, ServiceDocument, AuditEvent):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_a_clinic_phone_in_the_file_is_checked_and_kept_in_international_form(db):
    """The file's clinic phone went on file as typed, '123' or a digit short too."""
    bad = DEMO_FILE.replace('phone = "+1 212-555-0142"', 'phone = "555-014"', 1)
    with pytest.raises(ValidationError) as error, db.write() as session:
        practice_file.import_practice(session, SYSTEM, bad)
    assert str(error.value).startswith(
        "Nothing was imported. line 15 (clinics 'Lakeside Aesthetics'): '555-014' is not a "
        "phone number in United States: check its digits, or type it with its country code"
    )
    national = DEMO_FILE.replace('phone = "+1 212-555-0142"', 'phone = "(212) 555-0142"', 1)
    with db.write() as session:
        practice_file.import_practice(session, SYSTEM, national)
    with db.read() as session:
        phones = dict(session.execute(select(Clinic.name, Clinic.phone)).all())
    assert phones == {
        "Harbour Street Clinic": "+44 20 7946 0123",
        "Lakeside Aesthetics": "+1 212-555-0142",
    }


def test_staff_may_not_import(db, world):
    with db.write() as session, pytest.raises(PermissionDenied):
        practice_file.import_practice(session, world.staff, DEMO_FILE)


def test_an_export_of_the_practice_file_is_audited_with_who_and_how_many_entries(db, world):
    with db.write() as session:
        practice_file.import_practice(session, SYSTEM, DEMO_FILE)
    with db.write() as session:
        text = practice_file.export_practice(session, world.manager)
    data = practice_file.parse(text)
    entries = sum(len(data[table]) for table in practice_file.TABLES)
    with db.read() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).one()
    assert (event.entity, event.user_id, event.actor_label) == (
        "practice_file",
        world.manager.user_id,
        "Manager",
    )
    assert entries > 10 and event.details == {"rows": entries, "filters": {}}


def test_cli_export_and_import(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    source = tmp_path / "practice.toml"
    source.write_text(DEMO_FILE)
    assert cli.main(["import-practice", str(source)]) == 0
    assert "created service Laser hair removal" in capsys.readouterr().out
    out = tmp_path / "out.toml"
    assert cli.main(["export-practice", str(out)]) == 0
    assert out.read_text() == DEMO_FILE[DEMO_FILE.index("format = 1") :]
    assert cli.main(["export-practice", str(tmp_path / "no folder" / "out.toml")]) == 2
    assert "cannot write" in capsys.readouterr().err
    database = open_database(load_settings(), migrate=False)  # one export audited, not two
    with database.read() as session:
        exports = session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).all()
    database.dispose()
    assert [(e.entity, e.actor_label) for e in exports] == [("practice_file", "System")]
    source.write_text(DEMO_FILE.replace('currency = "USD"', 'currency = "XYZ"'))
    assert cli.main(["import-practice", str(source)]) == 2
    assert "'XYZ' is not a currency code" in capsys.readouterr().err


def test_a_file_with_a_provider_linked_to_an_account_opens_a_new_site(db):
    linked = DEMO_FILE.replace('user = ""', 'user = "ada"', 1)  # Dr Aisha Rahman's account
    with db.write() as session:
        report = practice_file.import_practice(session, SYSTEM, linked)
    said = (
        "provider Dr Aisha Rahman: there is no user account 'ada' here, so no account is "
        "linked; create it on Users and link it on Providers."
    )
    assert report.warnings == [said] and f"warning: {said}" in report.lines
    with db.read() as session:
        aisha = session.scalar(select(Provider).where(Provider.name == "Dr Aisha Rahman"))
        assert aisha.user_id is None
        assert session.scalar(select(func.count()).select_from(Provider)) == 6
    with db.write() as session:  # linked here to this site's own account: the link stays
        aisha = session.scalar(select(Provider).where(Provider.name == "Dr Aisha Rahman"))
        aisha.user_id = mine = make_user(session, "aisha", Role.STAFF).user_id
    with db.write() as session:
        report = practice_file.import_practice(session, SYSTEM, linked)
    assert "their link to an account is kept" in report.warnings[0]
    with db.read() as session:
        assert (
            session.scalar(select(Provider.user_id).where(Provider.name == "Dr Aisha Rahman"))
            == mine
        )


# ---------------------------------------------------------------- fees as a share of the price

FIXED_LATE = "late_cancel_fee_cents = 2500\n"


def _policy_rows(session):
    return session.scalars(select(CancellationPolicy).order_by(CancellationPolicy.id)).all()


def test_a_percentage_fee_makes_the_round_trip_and_old_files_keep_fixed_fees(db, tmp_path):
    """A policy whose fees are shares of the visit's price is written as its percentages and
    read back as them; the demo file, written before percentages, still imports as fixed fees."""
    with db.write() as session:
        practice_file.import_practice(session, SYSTEM, DEMO_FILE)  # no percentage keys in it
        rows = _policy_rows(session)
        assert {(r.late_cancel_fee_basis, r.no_show_fee_basis) for r in rows} == {
            (FeeBasis.FIXED, FeeBasis.FIXED)
        }
        harbour = rows[0]
        cancellation.save_policy(
            session,
            SYSTEM,
            **{f: getattr(harbour, f) for f in practice_file.POLICY_FIELDS},
            clinic_id=harbour.clinic_id,
            late_cancel_fee_basis="percent",
            late_cancel_fee_percent=50,
            no_show_fee_basis="percent",
            no_show_fee_percent=100,
        )
    with db.read() as session:
        exported = practice_file.export_practice(session, SYSTEM)
    harbour_entry = exported[exported.index("[[policies]]") :].split("[[policies]]")[1]
    assert "late_cancel_fee_percent = 50\n" in harbour_entry
    assert "no_show_fee_percent = 100\n" in harbour_entry
    assert "late_cancel_fee_cents" not in harbour_entry  # the share, not an unused amount
    empty = fresh(tmp_path, "percent.db")
    with empty.write() as session:
        practice_file.import_practice(session, SYSTEM, exported)
        first = _policy_rows(session)[0]
        assert (first.late_cancel_fee_basis, first.late_cancel_fee_percent) == (
            FeeBasis.PERCENT,
            50,
        )
        assert (first.no_show_fee_basis, first.no_show_fee_percent) == (FeeBasis.PERCENT, 100)
    with empty.read() as session:
        assert practice_file.export_practice(session, SYSTEM) == exported
    with empty.write() as session:  # the same file again changes nothing
        report = practice_file.import_practice(session, SYSTEM, exported)
        assert report.updated == [] and report.created == []
    with empty.write() as session:  # a file stating a fixed fee makes it fixed again
        report = practice_file.import_practice(session, SYSTEM, DEMO_FILE)
        assert report.updated == ["policy Harbour Street Clinic"]
        newest = session.scalars(
            select(CancellationPolicy).order_by(CancellationPolicy.id.desc())
        ).first()
        assert (newest.late_cancel_fee_basis, newest.late_cancel_fee_cents) == (
            FeeBasis.FIXED,
            2500,
        )


@pytest.mark.parametrize(
    ("replacement", "words"),
    [
        (
            "late_cancel_fee_percent = 150\n",
            "late-cancellation fee as a percentage of the visit's price must be a whole number "
            "from 0 to 100 (50 for half the price), not 150.",
        ),
        ("late_cancel_fee_percent = 50.5\n", "late_cancel_fee_percent must be int, not 50.5"),
        (
            FIXED_LATE + "late_cancel_fee_percent = 50\n",
            "give late_cancel_fee_cents (a fixed amount) or late_cancel_fee_percent (a "
            "percentage of the visit's price), not both",
        ),
    ],
)
def test_a_bad_percentage_in_the_file_is_refused_with_its_line(db, replacement, words):
    bad = DEMO_FILE.replace(FIXED_LATE, replacement, 1)
    with pytest.raises(ValidationError) as error, db.write() as session:
        practice_file.import_practice(session, SYSTEM, bad)
    assert "(policies 'Harbour Street Clinic')" in str(error.value)
    assert words in str(error.value)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(CancellationPolicy)) == 0


def test_an_import_that_changes_the_practice_is_audited_with_who_and_what(db, world):
    with db.write() as session:
        report = practice_file.import_practice(session, world.owner, DEMO_FILE)
    with db.read() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "import")).one()
    assert (event.entity, event.user_id) == ("practice_file", world.owner.user_id)
    assert event.details["created"] == report.created and len(report.created) > 10
    assert event.message.startswith(f"{len(report.created)} created, ")


def test_a_file_saved_with_a_byte_order_mark_or_not_in_utf8(tmp_path, monkeypatch, capsys):
    """Notepad's "UTF-8 with BOM" imports; a file in another encoding gets one line saying
    what to do, not a traceback."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    source = tmp_path / "practice.toml"
    source.write_bytes(DEMO_FILE.encode("utf-8-sig"))
    assert cli.main(["import-practice", str(source)]) == 0
    assert "created service Laser hair removal" in capsys.readouterr().out
    source.write_bytes(DEMO_FILE.replace("Harbour", "Hârbour").encode("cp1252"))
    assert cli.main(["import-practice", str(source)]) == 2
    assert "is not UTF-8 (byte " in capsys.readouterr().err


CANNOT_CONFIRM = {  # what the file changes (a pattern and its replacement): what is said
    "time zone": (
        ('timezone = "America/New_York"', 'timezone = "America/Chicago"'),
        "line 15 (clinics 'Lakeside Aesthetics'): the file changes its time zone to "
        "America/Chicago.",
    ),
    "currency": (
        ('currency = "USD"\nactive = true', 'currency = "CAD"\nactive = true'),
        "line 15 (clinics 'Lakeside Aesthetics'): the file changes its currency to CAD. "
        "Lakeside Aesthetics charges in USD.",
    ),
    "clinic": (
        ('currency = "USD"\nactive = true', 'currency = "USD"\nactive = false'),
        "line 15 (clinics 'Lakeside Aesthetics'): the file deactivates it.",
    ),
    "service": (
        (r'(name = "Consultation"\n(?:(?!\[\[).*\n)*?)active = true', r"\1active = false"),
        "(services 'Consultation'): the file deactivates it.",
    ),
    "service price": (
        (r'(name = "Consultation"\n(?:(?!\[\[).*\n)*?)price_cents = 6000', r"\1price_cents = 8000"),
        "(services 'Consultation'): the file changes its price, length, buffers or rooms. "
        "Consultation is booked in 1 upcoming visit",
    ),
    "policy": (  # the visit three days ahead falls inside a four-day window
        (
            'clinic = "Lakeside Aesthetics"\nservice = ""\nwindow_hours = 24',
            'clinic = "Lakeside Aesthetics"\nservice = ""\nwindow_hours = 96',
        ),
        "the file makes its terms harder for visits booked ahead. The new version applies to "
        "the visit booked ahead at Lakeside Aesthetics",
    ),
}


def test_a_file_cannot_confirm_what_the_set_up_asks_to_confirm(db):
    """A new time zone or currency, or a deactivation, for a clinic or service with visits
    booked ahead is refused by the set-up pages until confirmed. Before, a file did it silently
    (a deactivation, a currency), or was refused with 'Confirm to change the time zone anyway',
    which a file cannot do. Now it is refused with what it would do and where to do it; nothing
    changes. (The demo's set-up and one visit booked ahead at Lakeside, a consultation, for
    each case: each refused import is rolled back.)"""
    with db.write() as session:
        practice_file.import_practice(session, SYSTEM, DEMO_FILE)
        lakeside = session.scalar(select(Clinic).where(Clinic.name == "Lakeside Aesthetics"))
        start = utcnow().replace(microsecond=0) + timedelta(days=3)
        session.add(
            Appointment(
                clinic_id=lakeside.id,
                provider_id=session.scalar(select(Provider.id).order_by(Provider.id)),
                patient_id=make_patient(session).id,
                service_id=session.scalar(select(Service.id).where(Service.name == "Consultation")),
                status=AppointmentStatus.SCHEDULED,
                start_at=start,
                end_at=start + timedelta(minutes=30),
            )
        )
    with db.read() as session:
        before = session.scalars(select(Clinic.timezone).order_by(Clinic.id)).all()
    for case, (change, words) in CANNOT_CONFIRM.items():
        edited = re.sub(*change, DEMO_FILE, count=1)
        assert edited != DEMO_FILE, case
        with pytest.raises(ValidationError) as refused, db.write() as session:
            practice_file.import_practice(session, SYSTEM, edited)
        said = str(refused.value)
        assert words in said, (case, said)
        assert "A file cannot confirm this" in said and "then import the file again" in said
        assert "Confirm to" not in said
        with db.read() as session:
            assert session.scalars(select(Clinic.timezone).order_by(Clinic.id)).all() == before
            assert "CAD" not in session.scalars(select(Clinic.currency)).all()
            assert all(session.scalars(select(Clinic.active)))
            assert session.scalar(select(Service.active).where(Service.name == "Consultation"))
            consultation = select(Service.price_cents).where(Service.name == "Consultation")
            assert session.scalar(consultation) == 6000
