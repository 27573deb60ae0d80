"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-02 13:20:48.288242
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TRIGGERS = {'postgresql': ['CREATE FUNCTION patients_portal_tally() RETURNS trigger LANGUAGE plpgsql AS '
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
DROP_TRIGGERS = {'postgresql': ['DROP TRIGGER IF EXISTS patients_portal_tally_insert ON patients',
                'DROP TRIGGER IF EXISTS patients_portal_tally_update ON patients',
                'DROP TRIGGER IF EXISTS patients_portal_tally_delete ON patients',
                'DROP FUNCTION IF EXISTS patients_portal_tally()'],
 'sqlite': ['DROP TRIGGER IF EXISTS patients_portal_tally_insert',
            'DROP TRIGGER IF EXISTS patients_portal_tally_update',
            'DROP TRIGGER IF EXISTS patients_portal_tally_delete']}


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('cancellation_rollup_dirty',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('daynum', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_rollup_dirty'))
    )
    op.create_table('clinics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=250), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('external_ref', sa.String(length=120), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinics')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_clinics_external_ref')),
    sa.UniqueConstraint('name', name=op.f('uq_clinics_name'))
    )
    op.create_table('link_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('single_use', sa.Boolean(), nullable=False),
    sa.Column('expires_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('used_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_link_tokens_token_hash'))
    )
    with op.batch_alter_table('link_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_tokens_purpose_subject_id'), ['purpose', 'subject_id'], unique=False)

    op.create_table('packages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('price_cents', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('price_cents >= 0', name=op.f('ck_packages_price_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_packages')),
    sa.UniqueConstraint('name', name=op.f('uq_packages_name'))
    )
    op.create_table('patient_portal_tally',
    sa.Column('bucket', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('patients', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', name=op.f('pk_patient_portal_tally'))
    )
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_ref', sa.String(length=64), nullable=True),
    sa.Column('first_name', sa.String(length=80), nullable=False),
    sa.Column('last_name', sa.String(length=80), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('consent_email', sa.Boolean(), nullable=False),
    sa.Column('consent_sms', sa.Boolean(), nullable=False),
    sa.Column('consent_marketing', sa.Boolean(), nullable=False),
    sa.Column('reminders_enabled', sa.Boolean(), nullable=False),
    sa.Column('points_balance', sa.Integer(), nullable=False),
    sa.Column('card_on_file', sa.Boolean(), nullable=False),
    sa.Column('portal_enrolled_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('gender', sa.String(length=16), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_patients_external_ref'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_consent_email_email'), ['consent_email', 'email'], unique=False)
        batch_op.create_index(batch_op.f('ix_patients_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_patients_last_name_first_name'), ['last_name', 'first_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_patients_phone'), ['phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_patients_portal_enrolled_at'), ['portal_enrolled_at'], unique=False)

    op.create_table('rate_limit_hits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('at', db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_limit_hits'))
    )
    with op.batch_alter_table('rate_limit_hits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limit_hits_key_at'), ['key', 'at'], unique=False)

    op.create_table('risk_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trained_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('data_from', sa.Date(), nullable=True),
    sa.Column('data_until', sa.Date(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_models'))
    )
    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('price_cents', sa.Integer(), nullable=False),
    sa.Column('virtual_allowed', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('category', sa.String(length=80), nullable=False),
    sa.Column('buffer_before_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_after_minutes', sa.Integer(), nullable=False),
    sa.Column('online_allowed', sa.Boolean(), nullable=False),
    sa.CheckConstraint('duration_minutes > 0', name=op.f('ck_services_positive_duration')),
    sa.CheckConstraint('price_cents >= 0', name=op.f('ck_services_price_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services')),
    sa.UniqueConstraint('name', name=op.f('uq_services_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=120), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('role', sa.Enum('owner', 'manager', 'staff', name='role', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', db.types.UTCDateTime(), nullable=True),
    sa.Column('last_login_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', db.types.UTCDateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('from_status', sa.String(length=24), nullable=True),
    sa.Column('to_status', sa.String(length=24), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_audit_events_patient_id_patients')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audit_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action_at'), ['action', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_entity_entity_id'), ['entity', 'entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_patient_id_at'), ['patient_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_user_id_at'), ['user_id', 'at'], unique=False)

    op.create_table('cancellation_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('window_hours', sa.Integer(), nullable=False),
    sa.Column('late_cancel_fee_cents', sa.Integer(), nullable=False),
    sa.Column('no_show_fee_cents', sa.Integer(), nullable=False),
    sa.Column('points_deducted', sa.Integer(), nullable=False),
    sa.Column('inside_window_needs_approval', sa.Boolean(), nullable=False),
    sa.Column('outside_window_auto_accept', sa.Boolean(), nullable=False),
    sa.Column('online_cancel_allowed', sa.Boolean(), nullable=False),
    sa.Column('max_reschedules', sa.Integer(), nullable=False),
    sa.Column('policy_text', sa.Text(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.CheckConstraint('late_cancel_fee_cents >= 0', name=op.f('ck_cancellation_policies_late_fee_not_negative')),
    sa.CheckConstraint('no_show_fee_cents >= 0', name=op.f('ck_cancellation_policies_no_show_fee_not_negative')),
    sa.CheckConstraint('points_deducted >= 0', name=op.f('ck_cancellation_policies_points_not_negative')),
    sa.CheckConstraint('window_hours >= 0', name=op.f('ck_cancellation_policies_window_not_negative')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_cancellation_policies_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_cancellation_policies_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_cancellation_policies_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_policies'))
    )
    with op.batch_alter_table('cancellation_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cancellation_policies_clinic_id_service_id_effective_at'), ['clinic_id', 'service_id', 'effective_at'], unique=False)

    op.create_table('cancellation_rollups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('daynum', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('k1', sa.Integer(), nullable=False),
    sa.Column('k2', sa.Integer(), nullable=False),
    sa.Column('v0', sa.BigInteger(), nullable=False),
    sa.Column('v1', sa.BigInteger(), nullable=False),
    sa.Column('v2', sa.BigInteger(), nullable=False),
    sa.Column('v3', sa.BigInteger(), nullable=False),
    sa.Column('v4', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_cancellation_rollups_clinic_id_clinics')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_rollups'))
    )
    with op.batch_alter_table('cancellation_rollups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cancellation_rollups_clinic_id_daynum_kind'), ['clinic_id', 'daynum', 'kind'], unique=False)
        batch_op.create_index('ix_cancellation_rollups_read', ['clinic_id', 'kind', 'daynum', 'k1', 'k2', 'v0', 'v1', 'v2', 'v3', 'v4'], unique=False)

    op.create_table('import_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('what', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=True),
    sa.Column('started_by_user_id', sa.Integer(), nullable=True),
    sa.Column('started_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('finished_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_import_batches_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['started_by_user_id'], ['users.id'], name=op.f('fk_import_batches_started_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batches'))
    )
    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_batches_fingerprint_finished_at'), ['fingerprint', 'finished_at'], unique=False)

    op.create_table('notification_templates',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=250), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_user_id'], ['users.id'], name=op.f('fk_notification_templates_updated_by_user_id_users')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_notification_templates'))
    )
    op.create_table('package_services',
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['package_id'], ['packages.id'], name=op.f('fk_package_services_package_id_packages')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_package_services_service_id_services')),
    sa.PrimaryKeyConstraint('package_id', 'service_id', name=op.f('pk_package_services'))
    )
    op.create_table('portal_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('status', sa.Enum('pending', 'enrolled', 'expired', 'revoked', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('expires_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('enrolled_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('revoked_reason', sa.String(length=200), nullable=True),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_portal_invitations_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_portal_invitations_patient_id_patients')),
    sa.ForeignKeyConstraint(['token_id'], ['link_tokens.id'], name=op.f('fk_portal_invitations_token_id_link_tokens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_invitations'))
    )
    with op.batch_alter_table('portal_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_invitations_patient_id_status'), ['patient_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_portal_invitations_status_expires_at'), ['status', 'expires_at'], unique=False)

    op.create_table('portal_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('ended_at', db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_portal_sessions_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_sessions_token_hash'))
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_patient_id'), ['patient_id'], unique=False)

    op.create_table('providers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=80), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('colour', sa.String(length=9), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('external_ref', sa.String(length=120), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_providers_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_providers')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_providers_external_ref'))
    )
    op.create_table('resources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.Enum('room', 'equipment', name='resource_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('quantity >= 1', name=op.f('ck_resources_quantity_positive')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_resources_clinic_id_clinics')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources')),
    sa.UniqueConstraint('clinic_id', 'name', name=op.f('uq_resources_clinic_id_name'))
    )
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_clinic_id'), ['clinic_id'], unique=False)

    op.create_table('service_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('questionnaire', 'consent', 'instructions', name='document_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('questions', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_service_documents_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_documents')),
    sa.UniqueConstraint('service_id', 'kind', 'version', name=op.f('uq_service_documents_service_id_kind_version'))
    )
    with op.batch_alter_table('service_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_documents_service_id'), ['service_id'], unique=False)

    op.create_table('settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_user_id'], ['users.id'], name=op.f('fk_settings_updated_by_user_id_users')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_settings'))
    )
    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('handoff_hash', sa.String(length=64), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('ended_at', db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    sa.UniqueConstraint('handoff_hash', name=op.f('uq_user_sessions_handoff_hash')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_sessions_token_hash'))
    )
    op.create_table('appointments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('package_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('appointment', 'out_of_office', name='kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('mode', sa.Enum('in_person', 'virtual', name='mode', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('status', sa.Enum('requested', 'tentative', 'scheduled', 'checked_in', 'completed', 'no_show', 'declined', 'cancelled', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('start_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('end_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('buffer_before_minutes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('buffer_after_minutes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('requested_day', sa.Date(), nullable=True),
    sa.Column('time_of_day', sa.Enum('early_morning', 'morning', 'afternoon', 'evening', name='time_of_day', native_enum=False, create_constraint=True, length=24), nullable=True),
    sa.Column('source', sa.Enum('online', 'staff', 'import', name='source', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('allow_double_booking', sa.Boolean(), nullable=False),
    sa.Column('outside_hours_override', sa.Boolean(), nullable=False),
    sa.Column('sms_reminder', sa.Boolean(), nullable=False),
    sa.Column('booked_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('decided_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('checked_in_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('completed_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('cancelled_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('cancelled_by', sa.String(length=120), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('decline_reason', sa.Text(), nullable=True),
    sa.Column('late_cancellation', sa.Boolean(), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.Column('reschedule_count', sa.Integer(), nullable=False),
    sa.Column('feedback_status', sa.Enum('none', 'pending', 'collected', name='feedback_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('external_ref', sa.String(length=64), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('import_batch_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('end_at IS NULL OR start_at < end_at', name=op.f('ck_appointments_start_before_end')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_appointments_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_appointments_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['import_batch_id'], ['import_batches.id'], name=op.f('fk_appointments_import_batch_id_import_batches')),
    sa.ForeignKeyConstraint(['package_id'], ['packages.id'], name=op.f('fk_appointments_package_id_packages')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_appointments_patient_id_patients')),
    sa.ForeignKeyConstraint(['policy_id'], ['cancellation_policies.id'], name=op.f('fk_appointments_policy_id_cancellation_policies')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_appointments_provider_id_providers')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_appointments_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_appointments_external_ref'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointments_clinic_id_start_at_status'), ['clinic_id', 'start_at', 'status'], unique=False)
        batch_op.create_index('ix_appointments_feedback_day', ['status', 'feedback_status', 'start_at', 'clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_patient_id_start_at'), ['patient_id', 'start_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_provider_id_start_at'), ['provider_id', 'start_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_status_created_at'), ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_status_start_at'), ['status', 'start_at'], unique=False)

    op.create_table('provider_clinics',
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_provider_clinics_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_clinics_provider_id_providers')),
    sa.PrimaryKeyConstraint('provider_id', 'clinic_id', name=op.f('pk_provider_clinics'))
    )
    op.create_table('provider_services',
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_services_provider_id_providers')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_provider_services_service_id_services')),
    sa.PrimaryKeyConstraint('provider_id', 'service_id', name=op.f('pk_provider_services'))
    )
    op.create_table('service_resources',
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['resource_id'], ['resources.id'], name=op.f('fk_service_resources_resource_id_resources')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_service_resources_service_id_services')),
    sa.PrimaryKeyConstraint('service_id', 'resource_id', name=op.f('pk_service_resources'))
    )
    op.create_table('time_off',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('ends_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.CheckConstraint('starts_at < ends_at', name=op.f('ck_time_off_starts_before_ends')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_time_off_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_time_off'))
    )
    with op.batch_alter_table('time_off', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_time_off_provider_id_starts_at'), ['provider_id', 'starts_at'], unique=False)

    op.create_table('working_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('starts', sa.Time(), nullable=False),
    sa.Column('ends', sa.Time(), nullable=False),
    sa.CheckConstraint('starts < ends', name=op.f('ck_working_hours_starts_before_ends')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_working_hours_weekday_range')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_working_hours_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_working_hours_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_working_hours'))
    )
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_working_hours_provider_id_clinic_id_weekday'), ['provider_id', 'clinic_id', 'weekday'], unique=False)

    op.create_table('appointment_confirmations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('start_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('confirmed_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('channel', sa.String(length=24), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_confirmations_appointment_id_appointments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_confirmations'))
    )
    with op.batch_alter_table('appointment_confirmations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointment_confirmations_appointment_id_start_at'), ['appointment_id', 'start_at'], unique=False)

    op.create_table('appointment_services',
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_services_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_appointment_services_service_id_services')),
    sa.PrimaryKeyConstraint('appointment_id', 'service_id', name=op.f('pk_appointment_services'))
    )
    op.create_table('change_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('reschedule', 'cancel', name='kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('status', sa.Enum('open', 'approved', 'denied', 'proposed', 'withdrawn', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('original_start_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('requested_start_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('requested_day', sa.Date(), nullable=True),
    sa.Column('time_of_day', sa.Enum('early_morning', 'morning', 'afternoon', 'evening', name='time_of_day', native_enum=False, create_constraint=True, length=24), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('inside_window', sa.Boolean(), nullable=False),
    sa.Column('fee_cents', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('decided_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('decided_by_user_id', sa.Integer(), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_change_requests_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['decided_by_user_id'], ['users.id'], name=op.f('fk_change_requests_decided_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_requests'))
    )
    with op.batch_alter_table('change_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_change_requests_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_change_requests_status_created_at'), ['status', 'created_at'], unique=False)

    op.create_table('clinic_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('emailed', sa.Boolean(), nullable=False),
    sa.Column('digested_at', db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_clinic_events_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_clinic_events_clinic_id_clinics')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic_events'))
    )
    with op.batch_alter_table('clinic_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clinic_events_clinic_id_digested_at_created_at'), ['clinic_id', 'digested_at', 'created_at'], unique=False)

    op.create_table('feedback_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('sent_on', sa.Date(), nullable=False),
    sa.Column('answered_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_feedback_requests_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_feedback_requests_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_feedback_requests_patient_id_patients')),
    sa.ForeignKeyConstraint(['token_id'], ['link_tokens.id'], name=op.f('fk_feedback_requests_token_id_link_tokens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_requests')),
    sa.UniqueConstraint('appointment_id', 'sent_on', name=op.f('uq_feedback_requests_appointment_id_sent_on'))
    )
    op.create_table('form_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('questionnaire', 'consent', 'instructions', name='document_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('times_sent', sa.Integer(), nullable=False),
    sa.Column('completed_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('answers', sa.JSON(), nullable=True),
    sa.Column('signed_name', sa.String(length=200), nullable=True),
    sa.Column('signed_on', sa.Date(), nullable=True),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_form_requests_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['document_id'], ['service_documents.id'], name=op.f('fk_form_requests_document_id_service_documents')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_form_requests_patient_id_patients')),
    sa.ForeignKeyConstraint(['token_id'], ['link_tokens.id'], name=op.f('fk_form_requests_token_id_link_tokens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_requests')),
    sa.UniqueConstraint('appointment_id', 'document_id', name=op.f('uq_form_requests_appointment_id_document_id'))
    )
    with op.batch_alter_table('form_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_requests_patient_id'), ['patient_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('late_cancel_fee', 'no_show_fee', 'points', 'points_earned', 'points_spent', 'points_adjusted', 'points_refunded', name='kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('waived_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('waived_by_user_id', sa.Integer(), nullable=True),
    sa.Column('waive_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_ledger_entries_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_ledger_entries_patient_id_patients')),
    sa.ForeignKeyConstraint(['policy_id'], ['cancellation_policies.id'], name=op.f('fk_ledger_entries_policy_id_cancellation_policies')),
    sa.ForeignKeyConstraint(['waived_by_user_id'], ['users.id'], name=op.f('fk_ledger_entries_waived_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_patient_id'), ['patient_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.Enum('email', 'sms', name='channel', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('to_address', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=250), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('attachment_name', sa.String(length=120), nullable=True),
    sa.Column('attachment', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.Enum('queued', 'sent', 'failed', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('sent_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('permanent_failure', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_notifications_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_notifications_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)

    op.create_table('reminders_sent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('offset_minutes', sa.Integer(), nullable=False),
    sa.Column('start_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('queued_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('channels', sa.String(length=40), nullable=False),
    sa.Column('skipped', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_reminders_sent_appointment_id_appointments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminders_sent')),
    sa.UniqueConstraint('appointment_id', 'offset_minutes', 'start_at', name=op.f('uq_reminders_sent_appointment_id_offset_minutes_start_at'))
    )
    op.create_table('request_flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('flag', sa.String(length=300), nullable=False),
    sa.Column('typed_name', sa.String(length=170), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_request_flags_appointment_id_appointments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_flags')),
    sa.UniqueConstraint('appointment_id', name=op.f('uq_request_flags_appointment_id'))
    )
    op.create_table('risk_scores',
    sa.Column('appointment_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('scored_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_risk_scores_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['model_id'], ['risk_models.id'], name=op.f('fk_risk_scores_model_id_risk_models')),
    sa.PrimaryKeyConstraint('appointment_id', name=op.f('pk_risk_scores'))
    )
    op.create_table('slot_openings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('start_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('end_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'offering', 'filled', 'unfilled', 'closed', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('by_hand', sa.Boolean(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('processed_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('filled_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('filled_appointment_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('start_at < end_at', name=op.f('ck_slot_openings_start_before_end')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_slot_openings_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_slot_openings_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['filled_appointment_id'], ['appointments.id'], name=op.f('fk_slot_openings_filled_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_slot_openings_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slot_openings'))
    )
    with op.batch_alter_table('slot_openings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slot_openings_clinic_id_created_at'), ['clinic_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_slot_openings_status_created_at'), ['status', 'created_at'], unique=False)

    op.create_table('sms_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('provider_ref', sa.String(length=64), nullable=True),
    sa.Column('from_number', sa.String(length=40), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('handled_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('handled_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_sms_replies_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['handled_by_user_id'], ['users.id'], name=op.f('fk_sms_replies_handled_by_user_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_sms_replies_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_replies')),
    sa.UniqueConstraint('provider_ref', name=op.f('uq_sms_replies_provider_ref'))
    )
    with op.batch_alter_table('sms_replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_replies_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_replies_handled_at_received_at'), ['handled_at', 'received_at'], unique=False)

    op.create_table('waitlist_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('earliest', sa.Date(), nullable=False),
    sa.Column('latest', sa.Date(), nullable=False),
    sa.Column('weekdays', sa.String(length=7), nullable=False),
    sa.Column('windows', sa.String(length=80), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('waiting', 'booked', 'withdrawn', 'expired', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('request_appointment_id', sa.Integer(), nullable=True),
    sa.Column('booked_appointment_id', sa.Integer(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', db.types.UTCDateTime(), nullable=True),
    sa.CheckConstraint('earliest <= latest', name=op.f('ck_waitlist_entries_earliest_before_latest')),
    sa.ForeignKeyConstraint(['booked_appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_entries_booked_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_waitlist_entries_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_waitlist_entries_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_waitlist_entries_patient_id_patients')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_waitlist_entries_provider_id_providers')),
    sa.ForeignKeyConstraint(['request_appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_entries_request_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_waitlist_entries_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries'))
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_entries_clinic_id_status_latest'), ['clinic_id', 'status', 'latest'], unique=False)
        batch_op.create_index(batch_op.f('ix_waitlist_entries_patient_id_status'), ['patient_id', 'status'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('ledger_entry_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('provider_ref', sa.String(length=255), nullable=True),
    sa.Column('provider_customer', sa.String(length=255), nullable=True),
    sa.Column('refund_of_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recorded_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('paid_at', db.types.UTCDateTime(), nullable=True),
    sa.CheckConstraint('amount_cents >= 0', name=op.f('ck_payments_amount_not_negative')),
    sa.CheckConstraint('points >= 0', name=op.f('ck_payments_points_not_negative')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_payments_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'], name=op.f('fk_payments_ledger_entry_id_ledger_entries')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_payments_patient_id_patients')),
    sa.ForeignKeyConstraint(['recorded_by_user_id'], ['users.id'], name=op.f('fk_payments_recorded_by_user_id_users')),
    sa.ForeignKeyConstraint(['refund_of_id'], ['payments.id'], name=op.f('fk_payments_refund_of_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('provider_ref', name=op.f('uq_payments_provider_ref'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_patient_id_created_at'), ['patient_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_status_created_at'), ['status', 'created_at'], unique=False)

    op.create_table('survey_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feedback_request_id', sa.Integer(), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('clinic_id', sa.Integer(), nullable=True),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('submitted_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('nps', sa.Integer(), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('answers', sa.JSON(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('external_ref', sa.String(length=64), nullable=True),
    sa.CheckConstraint('nps IS NULL OR nps BETWEEN 0 AND 10', name=op.f('ck_survey_responses_nps_range')),
    sa.CheckConstraint('rating IS NULL OR rating BETWEEN 1 AND 5', name=op.f('ck_survey_responses_rating_range')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_survey_responses_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_survey_responses_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['feedback_request_id'], ['feedback_requests.id'], name=op.f('fk_survey_responses_feedback_request_id_feedback_requests')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_survey_responses_provider_id_providers')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_survey_responses_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_responses')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_survey_responses_external_ref')),
    sa.UniqueConstraint('feedback_request_id', name=op.f('uq_survey_responses_feedback_request_id'))
    )
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_responses_clinic_id_submitted_at'), ['clinic_id', 'submitted_at'], unique=False)
        batch_op.create_index('ix_survey_responses_figures', ['submitted_at', 'service_id', 'provider_id', 'clinic_id', 'nps', 'rating'], unique=False)
        batch_op.create_index('ix_survey_responses_nps_day', ['nps', 'submitted_at', 'clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_responses_provider_id_submitted_at'), ['provider_id', 'submitted_at'], unique=False)
        batch_op.create_index('ix_survey_responses_rating_day', ['rating', 'submitted_at', 'clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_responses_submitted_at'), ['submitted_at'], unique=False)

    op.create_table('waitlist_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opening_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('start_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sent', 'accepted', 'taken', 'declined', 'expired', 'withdrawn', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('expires_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('answered_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_offers_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['entry_id'], ['waitlist_entries.id'], name=op.f('fk_waitlist_offers_entry_id_waitlist_entries')),
    sa.ForeignKeyConstraint(['opening_id'], ['slot_openings.id'], name=op.f('fk_waitlist_offers_opening_id_slot_openings')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_waitlist_offers_patient_id_patients')),
    sa.ForeignKeyConstraint(['token_id'], ['link_tokens.id'], name=op.f('fk_waitlist_offers_token_id_link_tokens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_offers')),
    sa.UniqueConstraint('opening_id', 'entry_id', name=op.f('uq_waitlist_offers_opening_id_entry_id'))
    )
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_offers_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_waitlist_offers_status_expires_at'), ['status', 'expires_at'], unique=False)

    op.create_table('payment_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('received_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_events_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_payment_events_event_id'))
    )
    # ### end Alembic commands ###
    # db/triggers.py, copied by db.regen_initial
    for statement in TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_table('payment_events')
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waitlist_offers_status_expires_at'))
        batch_op.drop_index(batch_op.f('ix_waitlist_offers_entry_id'))

    op.drop_table('waitlist_offers')
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_responses_submitted_at'))
        batch_op.drop_index('ix_survey_responses_rating_day')
        batch_op.drop_index(batch_op.f('ix_survey_responses_provider_id_submitted_at'))
        batch_op.drop_index('ix_survey_responses_nps_day')
        batch_op.drop_index('ix_survey_responses_figures')
        batch_op.drop_index(batch_op.f('ix_survey_responses_clinic_id_submitted_at'))

    op.drop_table('survey_responses')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_status_created_at'))
        batch_op.drop_index(batch_op.f('ix_payments_patient_id_created_at'))
        batch_op.drop_index(batch_op.f('ix_payments_appointment_id'))

    op.drop_table('payments')
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waitlist_entries_patient_id_status'))
        batch_op.drop_index(batch_op.f('ix_waitlist_entries_clinic_id_status_latest'))

    op.drop_table('waitlist_entries')
    with op.batch_alter_table('sms_replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_replies_handled_at_received_at'))
        batch_op.drop_index(batch_op.f('ix_sms_replies_appointment_id'))

    op.drop_table('sms_replies')
    with op.batch_alter_table('slot_openings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slot_openings_status_created_at'))
        batch_op.drop_index(batch_op.f('ix_slot_openings_clinic_id_created_at'))

    op.drop_table('slot_openings')
    op.drop_table('risk_scores')
    op.drop_table('request_flags')
    op.drop_table('reminders_sent')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_status_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_notifications_patient_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_patient_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_appointment_id'))

    op.drop_table('ledger_entries')
    with op.batch_alter_table('form_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_requests_patient_id'))

    op.drop_table('form_requests')
    op.drop_table('feedback_requests')
    with op.batch_alter_table('clinic_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clinic_events_clinic_id_digested_at_created_at'))

    op.drop_table('clinic_events')
    with op.batch_alter_table('change_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_change_requests_status_created_at'))
        batch_op.drop_index(batch_op.f('ix_change_requests_appointment_id'))

    op.drop_table('change_requests')
    op.drop_table('appointment_services')
    with op.batch_alter_table('appointment_confirmations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointment_confirmations_appointment_id_start_at'))

    op.drop_table('appointment_confirmations')
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_working_hours_provider_id_clinic_id_weekday'))

    op.drop_table('working_hours')
    with op.batch_alter_table('time_off', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_time_off_provider_id_starts_at'))

    op.drop_table('time_off')
    op.drop_table('service_resources')
    op.drop_table('provider_services')
    op.drop_table('provider_clinics')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointments_status_start_at'))
        batch_op.drop_index(batch_op.f('ix_appointments_status_created_at'))
        batch_op.drop_index(batch_op.f('ix_appointments_provider_id_start_at'))
        batch_op.drop_index(batch_op.f('ix_appointments_patient_id_start_at'))
        batch_op.drop_index('ix_appointments_feedback_day')
        batch_op.drop_index(batch_op.f('ix_appointments_clinic_id_start_at_status'))

    op.drop_table('appointments')
    op.drop_table('user_sessions')
    op.drop_table('settings')
    with op.batch_alter_table('service_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_documents_service_id'))

    op.drop_table('service_documents')
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resources_clinic_id'))

    op.drop_table('resources')
    op.drop_table('providers')
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_patient_id'))

    op.drop_table('portal_sessions')
    with op.batch_alter_table('portal_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_invitations_status_expires_at'))
        batch_op.drop_index(batch_op.f('ix_portal_invitations_patient_id_status'))

    op.drop_table('portal_invitations')
    op.drop_table('package_services')
    op.drop_table('notification_templates')
    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_batches_fingerprint_finished_at'))

    op.drop_table('import_batches')
    with op.batch_alter_table('cancellation_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_rollups_read')
        batch_op.drop_index(batch_op.f('ix_cancellation_rollups_clinic_id_daynum_kind'))

    op.drop_table('cancellation_rollups')
    with op.batch_alter_table('cancellation_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cancellation_policies_clinic_id_service_id_effective_at'))

    op.drop_table('cancellation_policies')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_user_id_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_patient_id_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_entity_entity_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action_at'))

    op.drop_table('audit_events')
    op.drop_table('users')
    op.drop_table('services')
    op.drop_table('risk_models')
    with op.batch_alter_table('rate_limit_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limit_hits_key_at'))

    op.drop_table('rate_limit_hits')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_portal_enrolled_at'))
        batch_op.drop_index(batch_op.f('ix_patients_phone'))
        batch_op.drop_index(batch_op.f('ix_patients_last_name_first_name'))
        batch_op.drop_index(batch_op.f('ix_patients_email'))
        batch_op.drop_index(batch_op.f('ix_patients_consent_email_email'))

    op.drop_table('patients')
    op.drop_table('patient_portal_tally')
    op.drop_table('packages')
    with op.batch_alter_table('link_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_tokens_purpose_subject_id'))

    op.drop_table('link_tokens')
    op.drop_table('clinics')
    op.drop_table('cancellation_rollup_dirty')
    # ### end Alembic commands ###
