"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-02 11:52:35.247400
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

    op.create_table('providers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=80), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('colour', sa.String(length=9), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('external_ref', sa.String(length=120), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_providers')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_providers_external_ref'))
    )
    op.create_table('rate_limit_hits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('at', db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_limit_hits'))
    )
    with op.batch_alter_table('rate_limit_hits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limit_hits_key_at'), ['key', 'at'], unique=False)

    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('price_cents', sa.Integer(), nullable=False),
    sa.Column('virtual_allowed', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
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

    op.create_table('notification_templates',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=250), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_user_id'], ['users.id'], name=op.f('fk_notification_templates_updated_by_user_id_users')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_notification_templates'))
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

    op.create_table('settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_user_id'], ['users.id'], name=op.f('fk_settings_updated_by_user_id_users')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_settings'))
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

    op.create_table('appointments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('appointment', 'out_of_office', name='kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('mode', sa.Enum('in_person', 'virtual', name='mode', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('status', sa.Enum('requested', 'tentative', 'scheduled', 'checked_in', 'completed', 'no_show', 'declined', 'cancelled', name='status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('start_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('end_at', db.types.UTCDateTime(), nullable=True),
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
    sa.CheckConstraint('end_at IS NULL OR start_at < end_at', name=op.f('ck_appointments_start_before_end')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_appointments_clinic_id_clinics')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_appointments_created_by_user_id_users')),
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
    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('late_cancel_fee', 'no_show_fee', 'points', name='kind', native_enum=False, create_constraint=True, length=24), nullable=False),
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
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_notifications_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_notifications_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)

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

    # ### end Alembic commands ###
    # db/triggers.py, copied by db.regen_initial
    for statement in TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_responses_submitted_at'))
        batch_op.drop_index('ix_survey_responses_rating_day')
        batch_op.drop_index(batch_op.f('ix_survey_responses_provider_id_submitted_at'))
        batch_op.drop_index('ix_survey_responses_nps_day')
        batch_op.drop_index('ix_survey_responses_figures')
        batch_op.drop_index(batch_op.f('ix_survey_responses_clinic_id_submitted_at'))

    op.drop_table('survey_responses')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_status_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_notifications_patient_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_patient_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_appointment_id'))

    op.drop_table('ledger_entries')
    op.drop_table('feedback_requests')
    with op.batch_alter_table('change_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_change_requests_status_created_at'))
        batch_op.drop_index(batch_op.f('ix_change_requests_appointment_id'))

    op.drop_table('change_requests')
    op.drop_table('appointment_services')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointments_status_start_at'))
        batch_op.drop_index(batch_op.f('ix_appointments_status_created_at'))
        batch_op.drop_index(batch_op.f('ix_appointments_provider_id_start_at'))
        batch_op.drop_index(batch_op.f('ix_appointments_patient_id_start_at'))
        batch_op.drop_index('ix_appointments_feedback_day')
        batch_op.drop_index(batch_op.f('ix_appointments_clinic_id_start_at_status'))

    op.drop_table('appointments')
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_working_hours_provider_id_clinic_id_weekday'))

    op.drop_table('working_hours')
    op.drop_table('user_sessions')
    with op.batch_alter_table('time_off', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_time_off_provider_id_starts_at'))

    op.drop_table('time_off')
    op.drop_table('settings')
    with op.batch_alter_table('portal_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_invitations_status_expires_at'))
        batch_op.drop_index(batch_op.f('ix_portal_invitations_patient_id_status'))

    op.drop_table('portal_invitations')
    op.drop_table('notification_templates')
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
    with op.batch_alter_table('rate_limit_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limit_hits_key_at'))

    op.drop_table('rate_limit_hits')
    op.drop_table('providers')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_portal_enrolled_at'))
        batch_op.drop_index(batch_op.f('ix_patients_phone'))
        batch_op.drop_index(batch_op.f('ix_patients_last_name_first_name'))
        batch_op.drop_index(batch_op.f('ix_patients_email'))
        batch_op.drop_index(batch_op.f('ix_patients_consent_email_email'))

    op.drop_table('patients')
    op.drop_table('patient_portal_tally')
    with op.batch_alter_table('link_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_tokens_purpose_subject_id'))

    op.drop_table('link_tokens')
    op.drop_table('clinics')
    op.drop_table('cancellation_rollup_dirty')
    # ### end Alembic commands ###
