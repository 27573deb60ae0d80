"""the portal tally also counts the mobile number and its consent to text messages

Portal invitations go by text message to a patient who has a mobile and agreed to texts but no
email they agreed to: the portal status counts must tell those patients apart from the ones
nobody can invite. The tally the database keeps per patient bucket (db/triggers.py) gains two
bits, has a mobile and consented to texts (32 buckets), and is counted afresh from the patients.
The triggers' statements are frozen copies (new and, for the downgrade, those of 0001).

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# db/triggers.py as of this revision
TRIGGERS = {'postgresql': ['CREATE FUNCTION patients_portal_tally() RETURNS trigger LANGUAGE plpgsql AS '
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
BUCKET = "(CASE WHEN patients.portal_enrolled_at IS NULL THEN 0 ELSE 16 END + CASE WHEN COALESCE(patients.email, '') = '' THEN 0 ELSE 8 END + CASE WHEN patients.consent_email THEN 4 ELSE 0 END + CASE WHEN COALESCE(patients.phone, '') = '' THEN 0 ELSE 2 END + CASE WHEN patients.consent_sms THEN 1 ELSE 0 END)"

# as 0001 created them
OLD_TRIGGERS = {'postgresql': ['CREATE FUNCTION patients_portal_tally() RETURNS trigger LANGUAGE plpgsql AS '
                '$$\n'
                'BEGIN\n'
                "    IF TG_OP = 'INSERT' THEN\n"
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN n.portal_enrolled_at IS NULL THEN 0 ELSE 4 '
                "END + CASE WHEN COALESCE(n.email, '') = '' THEN 0 ELSE 2 END + CASE WHEN "
                'n.consent_email THEN 1 ELSE 0 END), 1 FROM new_rows n) AS changes (bucket, '
                'delta) GROUP BY bucket HAVING sum(delta) <> 0 ORDER BY bucket ON CONFLICT '
                '(bucket) DO UPDATE SET patients = patient_portal_tally.patients + '
                'EXCLUDED.patients;\n'
                "    ELSIF TG_OP = 'DELETE' THEN\n"
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN o.portal_enrolled_at IS NULL THEN 0 ELSE 4 '
                "END + CASE WHEN COALESCE(o.email, '') = '' THEN 0 ELSE 2 END + CASE WHEN "
                'o.consent_email THEN 1 ELSE 0 END), -1 FROM old_rows o) AS changes (bucket, '
                'delta) GROUP BY bucket HAVING sum(delta) <> 0 ORDER BY bucket ON CONFLICT '
                '(bucket) DO UPDATE SET patients = patient_portal_tally.patients + '
                'EXCLUDED.patients;\n'
                '    ELSE\n'
                '        INSERT INTO patient_portal_tally (bucket, patients) SELECT bucket, '
                'sum(delta) FROM (SELECT (CASE WHEN o.portal_enrolled_at IS NULL THEN 0 ELSE 4 '
                "END + CASE WHEN COALESCE(o.email, '') = '' THEN 0 ELSE 2 END + CASE WHEN "
                'o.consent_email THEN 1 ELSE 0 END), -1 FROM old_rows o UNION ALL SELECT (CASE '
                'WHEN n.portal_enrolled_at IS NULL THEN 0 ELSE 4 END + CASE WHEN '
                "COALESCE(n.email, '') = '' THEN 0 ELSE 2 END + CASE WHEN n.consent_email THEN "
                '1 ELSE 0 END), 1 FROM new_rows n) AS changes (bucket, delta) GROUP BY bucket '
                'HAVING sum(delta) <> 0 ORDER BY bucket ON CONFLICT (bucket) DO UPDATE SET '
                'patients = patient_portal_tally.patients + EXCLUDED.patients;\n'
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
            'NEW.portal_enrolled_at IS NULL THEN 0 ELSE 4 END + CASE WHEN COALESCE(NEW.email, '
            "'') = '' THEN 0 ELSE 2 END + CASE WHEN NEW.consent_email THEN 1 ELSE 0 END), 1) "
            'ON CONFLICT (bucket) DO UPDATE SET patients = patient_portal_tally.patients + 1; '
            'END',
            'CREATE TRIGGER patients_portal_tally_update AFTER UPDATE OF portal_enrolled_at, '
            'email, consent_email ON patients WHEN (CASE WHEN OLD.portal_enrolled_at IS NULL '
            "THEN 0 ELSE 4 END + CASE WHEN COALESCE(OLD.email, '') = '' THEN 0 ELSE 2 END + "
            'CASE WHEN OLD.consent_email THEN 1 ELSE 0 END) <> (CASE WHEN '
            'NEW.portal_enrolled_at IS NULL THEN 0 ELSE 4 END + CASE WHEN COALESCE(NEW.email, '
            "'') = '' THEN 0 ELSE 2 END + CASE WHEN NEW.consent_email THEN 1 ELSE 0 END) BEGIN "
            'UPDATE patient_portal_tally SET patients = patients - 1 WHERE bucket = (CASE WHEN '
            'OLD.portal_enrolled_at IS NULL THEN 0 ELSE 4 END + CASE WHEN COALESCE(OLD.email, '
            "'') = '' THEN 0 ELSE 2 END + CASE WHEN OLD.consent_email THEN 1 ELSE 0 END); "
            'INSERT INTO patient_portal_tally (bucket, patients) VALUES ((CASE WHEN '
            'NEW.portal_enrolled_at IS NULL THEN 0 ELSE 4 END + CASE WHEN COALESCE(NEW.email, '
            "'') = '' THEN 0 ELSE 2 END + CASE WHEN NEW.consent_email THEN 1 ELSE 0 END), 1) "
            'ON CONFLICT (bucket) DO UPDATE SET patients = patient_portal_tally.patients + 1; '
            'END',
            'CREATE TRIGGER patients_portal_tally_delete AFTER DELETE ON patients BEGIN UPDATE '
            'patient_portal_tally SET patients = patients - 1 WHERE bucket = (CASE WHEN '
            'OLD.portal_enrolled_at IS NULL THEN 0 ELSE 4 END + CASE WHEN COALESCE(OLD.email, '
            "'') = '' THEN 0 ELSE 2 END + CASE WHEN OLD.consent_email THEN 1 ELSE 0 END); END"]}
OLD_BUCKET = "(CASE WHEN patients.portal_enrolled_at IS NULL THEN 0 ELSE 4 END + CASE WHEN COALESCE(patients.email, '') = '' THEN 0 ELSE 2 END + CASE WHEN patients.consent_email THEN 1 ELSE 0 END)"


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
    _install(TRIGGERS, BUCKET)


def downgrade() -> None:
    _install(OLD_TRIGGERS, OLD_BUCKET)
