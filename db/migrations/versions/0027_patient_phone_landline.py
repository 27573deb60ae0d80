"""a landline on file is known to SQL: patients.phone_landline

A text never reaches a landline, but the rule that tells one (phonenumbers, in the countries of
the practice's clinics: core.kernel.phones.landline) ran in Python only, so the invitation lists
and counts took an old or imported record with text consent on a landline for one to invite by
text, until the send refused it. Each patient now records whether their phone is a landline for
the practice (kept by every write: core.patients.landlines), the status expression reads it,
and the portal tally's mobile bit (db/triggers.py) no longer counts a landline. The records
stored before are classified here by the rule as it is written now (frozen below), and the
tally is counted afresh. The triggers' statements are frozen copies (new, and 0019's for the
downgrade).

Revision ID: 0027
Revises: 0026
"""

from collections.abc import Sequence

import phonenumbers
import sqlalchemy as sa
from alembic import op
from babel import Locale, UnknownLocaleError

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
patients = sa.table(
    "patients",
    sa.column("id", sa.Integer),
    sa.column("phone", sa.String),
    sa.column("phone_landline", sa.Boolean),
)
clinics = sa.table(
    "clinics",
    sa.column("id", sa.Integer),
    sa.column("locale", sa.String),
    sa.column("active", sa.Boolean),
)

# db/triggers.py as of this revision
TRIGGERS = {'postgresql': ['CREATE FUNCTION patients_portal_tally() RETURNS trigger LANGUAGE plpgsql AS '
                '$$\n'
                'BEGIN\n'
                "    IF TG_OP = 'INSERT' THEN\n"
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN n.portal_enrolled_at IS NULL THEN 0 ELSE '
                "16 END + CASE WHEN COALESCE(n.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
                "n.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(n.phone, '') = '' OR "
                'n.phone_landline THEN 0 ELSE 2 END + CASE WHEN n.consent_sms THEN 1 ELSE 0 '
                'END), 1 FROM new_rows n) AS changes (bucket, delta) GROUP BY bucket HAVING '
                'sum(delta) <> 0 ORDER BY bucket ON CONFLICT (bucket) DO UPDATE SET patients = '
                'patient_portal_tally.patients + EXCLUDED.patients;\n'
                "    ELSIF TG_OP = 'DELETE' THEN\n"
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN o.portal_enrolled_at IS NULL THEN 0 ELSE '
                "16 END + CASE WHEN COALESCE(o.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
                "o.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(o.phone, '') = '' OR "
                'o.phone_landline THEN 0 ELSE 2 END + CASE WHEN o.consent_sms THEN 1 ELSE 0 '
                'END), -1 FROM old_rows o) AS changes (bucket, delta) GROUP BY bucket HAVING '
                'sum(delta) <> 0 ORDER BY bucket ON CONFLICT (bucket) DO UPDATE SET patients = '
                'patient_portal_tally.patients + EXCLUDED.patients;\n'
                '    ELSE\n'
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN o.portal_enrolled_at IS NULL THEN 0 ELSE '
                "16 END + CASE WHEN COALESCE(o.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
                "o.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(o.phone, '') = '' OR "
                'o.phone_landline THEN 0 ELSE 2 END + CASE WHEN o.consent_sms THEN 1 ELSE 0 '
                'END), -1 FROM old_rows o UNION ALL SELECT (CASE WHEN n.portal_enrolled_at IS '
                "NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(n.email, '') = '' THEN 0 ELSE 8 "
                'END + CASE WHEN n.consent_email THEN 4 ELSE 0 END + CASE WHEN '
                "COALESCE(n.phone, '') = '' OR n.phone_landline THEN 0 ELSE 2 END + CASE WHEN "
                'n.consent_sms THEN 1 ELSE 0 END), 1 FROM new_rows n) AS changes (bucket, '
                'delta) GROUP BY bucket HAVING sum(delta) <> 0 ORDER BY bucket ON CONFLICT '
                '(bucket) DO UPDATE SET patients = patient_portal_tally.patients + '
                'EXCLUDED.patients;\n'
                '    END IF;\n'
                '    RETURN NULL;\n'
                'END\n'
                '$$',
                'CREATE TRIGGER patients_portal_tally_insert AFTER INSERT ON patients '
                'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION '
                'patients_portal_tally()',
                'CREATE TRIGGER patients_portal_tally_update AFTER UPDATE ON patients '
                'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT '
                'EXECUTE FUNCTION patients_portal_tally()',
                'CREATE TRIGGER patients_portal_tally_delete AFTER DELETE ON patients '
                'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION '
                'patients_portal_tally()'],
 'sqlite': ['CREATE TRIGGER patients_portal_tally_insert AFTER INSERT ON patients BEGIN INSERT '
            'INTO patient_portal_tally (bucket, patients) VALUES ((CASE WHEN '
            'NEW.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(NEW.email, '
            "'') = '' THEN 0 ELSE 8 END + CASE WHEN NEW.consent_email THEN 4 ELSE 0 END + CASE "
            "WHEN COALESCE(NEW.phone, '') = '' OR NEW.phone_landline THEN 0 ELSE 2 END + CASE "
            'WHEN NEW.consent_sms THEN 1 ELSE 0 END), 1) ON CONFLICT (bucket) DO UPDATE SET '
            'patients = patient_portal_tally.patients + 1; END',
            'CREATE TRIGGER patients_portal_tally_update AFTER UPDATE OF portal_enrolled_at, '
            'email, consent_email, phone, phone_landline, consent_sms ON patients WHEN (CASE '
            'WHEN OLD.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN '
            "COALESCE(OLD.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN OLD.consent_email THEN "
            "4 ELSE 0 END + CASE WHEN COALESCE(OLD.phone, '') = '' OR OLD.phone_landline THEN "
            '0 ELSE 2 END + CASE WHEN OLD.consent_sms THEN 1 ELSE 0 END) <> (CASE WHEN '
            'NEW.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(NEW.email, '
            "'') = '' THEN 0 ELSE 8 END + CASE WHEN NEW.consent_email THEN 4 ELSE 0 END + CASE "
            "WHEN COALESCE(NEW.phone, '') = '' OR NEW.phone_landline THEN 0 ELSE 2 END + CASE "
            'WHEN NEW.consent_sms THEN 1 ELSE 0 END) BEGIN UPDATE patient_portal_tally SET '
            'patients = patients - 1 WHERE bucket = (CASE WHEN OLD.portal_enrolled_at IS NULL '
            "THEN 0 ELSE 16 END + CASE WHEN COALESCE(OLD.email, '') = '' THEN 0 ELSE 8 END + "
            "CASE WHEN OLD.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(OLD.phone, '') "
            "= '' OR OLD.phone_landline THEN 0 ELSE 2 END + CASE WHEN OLD.consent_sms THEN 1 "
            'ELSE 0 END); INSERT INTO patient_portal_tally (bucket, patients) VALUES ((CASE '
            'WHEN NEW.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN '
            "COALESCE(NEW.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN NEW.consent_email THEN "
            "4 ELSE 0 END + CASE WHEN COALESCE(NEW.phone, '') = '' OR NEW.phone_landline THEN "
            '0 ELSE 2 END + CASE WHEN NEW.consent_sms THEN 1 ELSE 0 END), 1) ON CONFLICT '
            '(bucket) DO UPDATE SET patients = patient_portal_tally.patients + 1; END',
            'CREATE TRIGGER patients_portal_tally_delete AFTER DELETE ON patients BEGIN UPDATE '
            'patient_portal_tally SET patients = patients - 1 WHERE bucket = (CASE WHEN '
            'OLD.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(OLD.email, '
            "'') = '' THEN 0 ELSE 8 END + CASE WHEN OLD.consent_email THEN 4 ELSE 0 END + CASE "
            "WHEN COALESCE(OLD.phone, '') = '' OR OLD.phone_landline THEN 0 ELSE 2 END + CASE "
            'WHEN OLD.consent_sms THEN 1 ELSE 0 END); END']}
BUCKET = "(CASE WHEN patients.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(patients.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN patients.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(patients.phone, '') = '' OR patients.phone_landline THEN 0 ELSE 2 END + CASE WHEN patients.consent_sms THEN 1 ELSE 0 END)"

# as 0019 created them
OLD_TRIGGERS = {'postgresql': ['CREATE FUNCTION patients_portal_tally() RETURNS trigger LANGUAGE plpgsql AS '
                '$$\n'
                'BEGIN\n'
                "    IF TG_OP = 'INSERT' THEN\n"
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN n.portal_enrolled_at IS NULL THEN 0 ELSE '
                "16 END + CASE WHEN COALESCE(n.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
                "n.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(n.phone, '') = '' THEN "
                '0 ELSE 2 END + CASE WHEN n.consent_sms THEN 1 ELSE 0 END), 1 FROM new_rows n) '
                'AS changes (bucket, delta) GROUP BY bucket HAVING sum(delta) <> 0 ORDER BY '
                'bucket ON CONFLICT (bucket) DO UPDATE SET patients = '
                'patient_portal_tally.patients + EXCLUDED.patients;\n'
                "    ELSIF TG_OP = 'DELETE' THEN\n"
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN o.portal_enrolled_at IS NULL THEN 0 ELSE '
                "16 END + CASE WHEN COALESCE(o.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
                "o.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(o.phone, '') = '' THEN "
                '0 ELSE 2 END + CASE WHEN o.consent_sms THEN 1 ELSE 0 END), -1 FROM old_rows '
                'o) AS changes (bucket, delta) GROUP BY bucket HAVING sum(delta) <> 0 ORDER BY '
                'bucket ON CONFLICT (bucket) DO UPDATE SET patients = '
                'patient_portal_tally.patients + EXCLUDED.patients;\n'
                '    ELSE\n'
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN o.portal_enrolled_at IS NULL THEN 0 ELSE '
                "16 END + CASE WHEN COALESCE(o.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
                "o.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(o.phone, '') = '' THEN "
                '0 ELSE 2 END + CASE WHEN o.consent_sms THEN 1 ELSE 0 END), -1 FROM old_rows o '
                'UNION ALL SELECT (CASE WHEN n.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + '
                "CASE WHEN COALESCE(n.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
                "n.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(n.phone, '') = '' THEN "
                '0 ELSE 2 END + CASE WHEN n.consent_sms THEN 1 ELSE 0 END), 1 FROM new_rows n) '
                'AS changes (bucket, delta) GROUP BY bucket HAVING sum(delta) <> 0 ORDER BY '
                'bucket ON CONFLICT (bucket) DO UPDATE SET patients = '
                'patient_portal_tally.patients + EXCLUDED.patients;\n'
                '    END IF;\n'
                '    RETURN NULL;\n'
                'END\n'
                '$$',
                'CREATE TRIGGER patients_portal_tally_insert AFTER INSERT ON patients '
                'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION '
                'patients_portal_tally()',
                'CREATE TRIGGER patients_portal_tally_update AFTER UPDATE ON patients '
                'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT '
                'EXECUTE FUNCTION patients_portal_tally()',
                'CREATE TRIGGER patients_portal_tally_delete AFTER DELETE ON patients '
                'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION '
                'patients_portal_tally()'],
 'sqlite': ['CREATE TRIGGER patients_portal_tally_insert AFTER INSERT ON patients BEGIN INSERT '
            'INTO patient_portal_tally (bucket, patients) VALUES ((CASE WHEN '
            'NEW.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(NEW.email, '
            "'') = '' THEN 0 ELSE 8 END + CASE WHEN NEW.consent_email THEN 4 ELSE 0 END + CASE "
            "WHEN COALESCE(NEW.phone, '') = '' THEN 0 ELSE 2 END + CASE WHEN NEW.consent_sms "
            'THEN 1 ELSE 0 END), 1) ON CONFLICT (bucket) DO UPDATE SET patients = '
            'patient_portal_tally.patients + 1; END',
            'CREATE TRIGGER patients_portal_tally_update AFTER UPDATE OF portal_enrolled_at, '
            'email, consent_email, phone, consent_sms ON patients WHEN (CASE WHEN '
            'OLD.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(OLD.email, '
            "'') = '' THEN 0 ELSE 8 END + CASE WHEN OLD.consent_email THEN 4 ELSE 0 END + CASE "
            "WHEN COALESCE(OLD.phone, '') = '' THEN 0 ELSE 2 END + CASE WHEN OLD.consent_sms "
            'THEN 1 ELSE 0 END) <> (CASE WHEN NEW.portal_enrolled_at IS NULL THEN 0 ELSE 16 '
            "END + CASE WHEN COALESCE(NEW.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN "
            "NEW.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(NEW.phone, '') = '' THEN "
            '0 ELSE 2 END + CASE WHEN NEW.consent_sms THEN 1 ELSE 0 END) BEGIN UPDATE '
            'patient_portal_tally SET patients = patients - 1 WHERE bucket = (CASE WHEN '
            'OLD.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(OLD.email, '
            "'') = '' THEN 0 ELSE 8 END + CASE WHEN OLD.consent_email THEN 4 ELSE 0 END + CASE "
            "WHEN COALESCE(OLD.phone, '') = '' THEN 0 ELSE 2 END + CASE WHEN OLD.consent_sms "
            'THEN 1 ELSE 0 END); INSERT INTO patient_portal_tally (bucket, patients) VALUES '
            '((CASE WHEN NEW.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN '
            "COALESCE(NEW.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN NEW.consent_email THEN "
            "4 ELSE 0 END + CASE WHEN COALESCE(NEW.phone, '') = '' THEN 0 ELSE 2 END + CASE "
            'WHEN NEW.consent_sms THEN 1 ELSE 0 END), 1) ON CONFLICT (bucket) DO UPDATE SET '
            'patients = patient_portal_tally.patients + 1; END',
            'CREATE TRIGGER patients_portal_tally_delete AFTER DELETE ON patients BEGIN UPDATE '
            'patient_portal_tally SET patients = patients - 1 WHERE bucket = (CASE WHEN '
            'OLD.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(OLD.email, '
            "'') = '' THEN 0 ELSE 8 END + CASE WHEN OLD.consent_email THEN 4 ELSE 0 END + CASE "
            "WHEN COALESCE(OLD.phone, '') = '' THEN 0 ELSE 2 END + CASE WHEN OLD.consent_sms "
            'THEN 1 ELSE 0 END); END']}
DROP_TRIGGERS = {'postgresql': ['DROP TRIGGER IF EXISTS patients_portal_tally_insert ON patients',
                'DROP TRIGGER IF EXISTS patients_portal_tally_update ON patients',
                'DROP TRIGGER IF EXISTS patients_portal_tally_delete ON patients',
                'DROP FUNCTION IF EXISTS patients_portal_tally()'],
 'sqlite': ['DROP TRIGGER IF EXISTS patients_portal_tally_insert',
            'DROP TRIGGER IF EXISTS patients_portal_tally_update',
            'DROP TRIGGER IF EXISTS patients_portal_tally_delete']}
OLD_BUCKET = "(CASE WHEN patients.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(patients.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN patients.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(patients.phone, '') = '' THEN 0 ELSE 2 END + CASE WHEN patients.consent_sms THEN 1 ELSE 0 END)"



# core.kernel.phones as of this revision: a clinic's country, and a number read in each of
# the practice's is a landline when every reading of it is a valid fixed line (one possible
# but not placed may be a mobile)
def _region(locale: str | None) -> str:
    try:
        territory = Locale.parse((locale or "en-GB").replace("-", "_")).territory
    except (UnknownLocaleError, ValueError):
        territory = None
    return territory or "GB"


def _landline(phone: str, regions: tuple[str, ...]) -> bool:
    kinds = set()
    for region in regions:
        try:
            number = phonenumbers.parse(phone, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            kinds.add(phonenumbers.number_type(number))
        elif phonenumbers.is_possible_number(number):
            return False
    return kinds == {phonenumbers.PhoneNumberType.FIXED_LINE}


def _install(create: dict, bucket: str) -> None:
    dialect = op.get_bind().dialect.name
    for statement in DROP_TRIGGERS.get(dialect, []):
        op.execute(statement)
    for statement in create.get(dialect, []):
        op.execute(statement)
    op.execute("DELETE FROM patient_portal_tally")
    op.execute(
        "INSERT INTO patient_portal_tally (bucket, patients) "
        f"SELECT {bucket}, count(*) FROM patients GROUP BY {bucket}"
    )


def upgrade() -> None:
    op.add_column(
        "patients",
        sa.Column("phone_landline", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    bind = op.get_bind()
    locales = bind.scalars(
        sa.select(clinics.c.locale).where(clinics.c.active.is_(True)).order_by(clinics.c.id)
    )
    regions = tuple(dict.fromkeys(_region(locale) for locale in locales if locale)) or ("GB",)
    last = 0
    while True:
        rows = bind.execute(
            sa.select(patients.c.id, patients.c.phone)
            .where(patients.c.id > last, patients.c.phone.is_not(None), patients.c.phone != "")
            .order_by(patients.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        landlines = [{"pid": pid} for pid, phone in rows if _landline(phone, regions)]
        if landlines:
            bind.execute(
                patients.update()
                .where(patients.c.id == sa.bindparam("pid"))
                .values(phone_landline=True),
                landlines,
            )
        last = rows[-1][0]
    _install(TRIGGERS, BUCKET)


def downgrade() -> None:
    _install(OLD_TRIGGERS, OLD_BUCKET)
    # SQLite 3.35+ drops a plain column in place: a batch copy of patients would drop the
    # triggers on it (db/triggers.py) and trip the foreign keys that point at it
    op.execute("ALTER TABLE patients DROP COLUMN phone_landline")
