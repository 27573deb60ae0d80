"""Triggers that keep patient_portal_tally current: how many patients fall in each bucket of
(enrolled, has an email address, consented to email, has a mobile number, consented to text
messages). The portal status counts read these 32 rows instead of counting the patient table,
so they cost the same at any size, and the database keeps them right whatever writes the
patients (the app, an import, COPY).

A mobile is a phone on file that is not a landline for the practice (patients.phone_landline,
core.patients.landlines): no text reaches a landline, so a patient with one only is nobody
to invite by text.

Created with the tables (metadata after_create, used by tests) and by the migrations, each with
a frozen copy of these statements: the initial one (db.regen_initial), 0019, which added the
mobile and its consent when invitations began to go by text message, and 0027, which stopped
counting a landline as a mobile.
"""

from __future__ import annotations

ENROLLED, HAS_EMAIL, CONSENTED, HAS_PHONE, SMS_CONSENTED = 16, 8, 4, 2, 1
BUCKETS = range(32)


def bucket(
    enrolled: bool,
    has_email: bool,
    consented: bool,
    has_phone: bool = False,
    sms_consented: bool = False,
) -> int:
    return (
        ENROLLED * enrolled
        + HAS_EMAIL * has_email
        + CONSENTED * consented
        + HAS_PHONE * has_phone
        + SMS_CONSENTED * sms_consented
    )


def bucket_sql(row: str) -> str:
    """A patient row's bucket in SQL (`row`: the table or the trigger's row name)."""
    return (
        f"(CASE WHEN {row}.portal_enrolled_at IS NULL THEN 0 ELSE {ENROLLED} END"
        f" + CASE WHEN COALESCE({row}.email, '') = '' THEN 0 ELSE {HAS_EMAIL} END"
        f" + CASE WHEN {row}.consent_email THEN {CONSENTED} ELSE 0 END"
        f" + CASE WHEN COALESCE({row}.phone, '') = '' OR {row}.phone_landline THEN 0"
        f" ELSE {HAS_PHONE} END"
        f" + CASE WHEN {row}.consent_sms THEN {SMS_CONSENTED} ELSE 0 END)"
    )


def _add(value: str) -> str:
    return (
        f"INSERT INTO patient_portal_tally (bucket, patients) VALUES ({value}, 1) "
        f"ON CONFLICT (bucket) DO UPDATE SET patients = patient_portal_tally.patients + 1"
    )


def _apply_deltas(rows_sql: str) -> str:
    """Add the (bucket, ±1) rows of a statement to the tally, one upsert per bucket."""
    return (
        f"INSERT INTO patient_portal_tally (bucket, patients) "
        f"SELECT bucket, sum(delta) FROM ({rows_sql}) AS changes (bucket, delta) "
        f"GROUP BY bucket HAVING sum(delta) <> 0 ORDER BY bucket "
        f"ON CONFLICT (bucket) DO UPDATE "
        f"SET patients = patient_portal_tally.patients + EXCLUDED.patients"
    )


def _remove(value: str) -> str:
    return f"UPDATE patient_portal_tally SET patients = patients - 1 WHERE bucket = {value}"


_WATCHED = "portal_enrolled_at, email, consent_email, phone, phone_landline, consent_sms"

CREATE = {
    "sqlite": [
        f"CREATE TRIGGER patients_portal_tally_insert AFTER INSERT ON patients "
        f"BEGIN {_add(bucket_sql('NEW'))}; END",
        f"CREATE TRIGGER patients_portal_tally_update AFTER UPDATE OF {_WATCHED} ON patients "
        f"WHEN {bucket_sql('OLD')} <> {bucket_sql('NEW')} "
        f"BEGIN {_remove(bucket_sql('OLD'))}; {_add(bucket_sql('NEW'))}; END",
        f"CREATE TRIGGER patients_portal_tally_delete AFTER DELETE ON patients "
        f"BEGIN {_remove(bucket_sql('OLD'))}; END",
    ],
    # per statement, from its transition tables: one upsert per bucket however many rows a
    # statement (or a COPY) writes, where per-row updates of one tally row would pile up row
    # versions in the transaction; buckets are written in ascending order (no deadlocks)
    "postgresql": [
        f"""CREATE FUNCTION patients_portal_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_apply_deltas(f"SELECT {bucket_sql('n')}, 1 FROM new_rows n")};
    ELSIF TG_OP = 'DELETE' THEN
        {_apply_deltas(f"SELECT {bucket_sql('o')}, -1 FROM old_rows o")};
    ELSE
        {
            _apply_deltas(
                f"SELECT {bucket_sql('o')}, -1 FROM old_rows o UNION ALL "
                f"SELECT {bucket_sql('n')}, 1 FROM new_rows n"
            )
        };
    END IF;
    RETURN NULL;
END
$$""",
        "CREATE TRIGGER patients_portal_tally_insert AFTER INSERT ON patients "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION patients_portal_tally()",
        # transition tables rule out a column list: every UPDATE of patients runs it, and a
        # change that moves no patient between buckets writes nothing
        "CREATE TRIGGER patients_portal_tally_update AFTER UPDATE ON patients "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION patients_portal_tally()",
        "CREATE TRIGGER patients_portal_tally_delete AFTER DELETE ON patients "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION patients_portal_tally()",
    ],
}

DROP = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS patients_portal_tally_insert",
        "DROP TRIGGER IF EXISTS patients_portal_tally_update",
        "DROP TRIGGER IF EXISTS patients_portal_tally_delete",
    ],
    "postgresql": [
        "DROP TRIGGER IF EXISTS patients_portal_tally_insert ON patients",
        "DROP TRIGGER IF EXISTS patients_portal_tally_update ON patients",
        "DROP TRIGGER IF EXISTS patients_portal_tally_delete ON patients",
        "DROP FUNCTION IF EXISTS patients_portal_tally()",
    ],
}


def install(target, connection, **_) -> None:
    """metadata after_create: the triggers, once every table exists."""
    for statement in CREATE.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)
