"""ClinicDesk's data model: typed SQLAlchemy 2 models for every entity of the practice.

All timestamps are UTC (`UTCDateTime`); each clinic carries its IANA time zone for display.
Nothing clinical is deleted: statuses and timestamps record what happened.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Time,
    UniqueConstraint,
    and_,
    event,
    false,
    func,
    literal,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db import triggers
from db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK constraint, values stored as text."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


# ---------------------------------------------------------------- vocabularies


class Role(enum.StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    STAFF = "staff"


class AppointmentStatus(enum.StrEnum):
    REQUESTED = "requested"
    TENTATIVE = "tentative"
    SCHEDULED = "scheduled"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    DECLINED = "declined"
    CANCELLED = "cancelled"


# the statuses whose appointment holds its provider's (and rooms') time
OCCUPYING = (AppointmentStatus.TENTATIVE, AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN)


class AppointmentKind(enum.StrEnum):
    APPOINTMENT = "appointment"
    OUT_OF_OFFICE = "out_of_office"


class VisitMode(enum.StrEnum):
    IN_PERSON = "in_person"
    VIRTUAL = "virtual"


class TimeOfDay(enum.StrEnum):
    EARLY_MORNING = "early_morning"
    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"


class Source(enum.StrEnum):
    ONLINE = "online"
    STAFF = "staff"
    IMPORT = "import"


class FeedbackStatus(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"
    COLLECTED = "collected"


class ChangeKind(enum.StrEnum):
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"


class ChangeStatus(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    DENIED = "denied"
    PROPOSED = "proposed"
    WITHDRAWN = "withdrawn"


class InvitationStatus(enum.StrEnum):
    PENDING = "pending"
    ENROLLED = "enrolled"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class StopKind(enum.StrEnum):
    """Why a message failed for good (Notification.stop_kind), which decides what a retry may do."""

    REFUSED = "refused"  # the provider refused it (5xx, invalid address): retry once corrected
    CONSENT = "consent"  # consent withdrawn since it was queued: retry checks consent again
    PURPOSE = "purpose"  # stopped by ClinicDesk for a reason that still stands: never retried


class LedgerKind(enum.StrEnum):
    LATE_CANCEL_FEE = "late_cancel_fee"
    NO_SHOW_FEE = "no_show_fee"
    POINTS = "points"  # points deducted by the policy (points > 0 = taken away)
    POINTS_EARNED = "points_earned"  # points added (a survey answered)
    POINTS_SPENT = "points_spent"  # points used to prepay an appointment
    POINTS_ADJUSTED = "points_adjusted"  # staff correction, signed, with a reason
    POINTS_REFUNDED = "points_refunded"  # prepaid points given back
    POINTS_OPENING = "points_opening"  # a new patient's starting balance, signed


class FeeBasis(enum.StrEnum):
    """How a cancellation-policy fee is set: a fixed amount, or a whole percentage of the
    visit's price (core.policy.cancellation.Fee)."""

    FIXED = "fixed"
    PERCENT = "percent"


# ---------------------------------------------------------------- practice


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))  # IANA name, e.g. "Europe/London"
    address: Mapped[str] = mapped_column(String(250), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    external_ref: Mapped[str | None] = mapped_column(String(120), unique=True)
    locale: Mapped[str] = mapped_column(String(16), default="en-GB")
    currency: Mapped[str] = mapped_column(String(3), default="GBP")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(80), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    colour: Mapped[str] = mapped_column(String(9), default="#4c78a8")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_ref: Mapped[str | None] = mapped_column(String(120), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # their sign-in

    working_hours: Mapped[list[WorkingHours]] = relationship(
        back_populates="provider", cascade="all, delete-orphan"
    )


class WorkingHours(Base):
    """One weekly working period of a provider at a clinic (weekday 0 = Monday), clinic-local."""

    __tablename__ = "working_hours"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("starts < ends", name="starts_before_ends"),
        Index(None, "provider_id", "clinic_id", "weekday"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    weekday: Mapped[int] = mapped_column(Integer)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)

    provider: Mapped[Provider] = relationship(back_populates="working_hours")


class TimeOff(Base):
    __tablename__ = "time_off"
    __table_args__ = (
        CheckConstraint("starts_at < ends_at", name="starts_before_ends"),
        Index(None, "provider_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("duration_minutes > 0", name="positive_duration"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    virtual_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # set-up: category, buffers around a visit, booking online
    category: Mapped[str] = mapped_column(String(80), default="")
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    online_allowed: Mapped[bool] = mapped_column(Boolean, default=True)


# ---------------------------------------------------------------- patients


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        Index(None, "last_name", "first_name"),
        Index(None, "email"),
        Index(None, "phone"),
        # portal status counts from indexes alone (core.patients.invitations.status_counts)
        Index(None, "portal_enrolled_at"),
        Index(None, "consent_email", "email"),
        Index(None, "merged_into_id"),  # the few merged duplicates, left out of the counts
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    # the phone is a landline for the practice (core.kernel.phones.landline in its clinics'
    # countries), kept by every write (core.patients.landlines): SQL can tell who gets texts
    phone_landline: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # the postal address (letters, invoices, insurers, FHIR); each part optional, never searched
    address_line1: Mapped[str | None] = mapped_column(String(120))
    address_line2: Mapped[str | None] = mapped_column(String(120))
    city: Mapped[str | None] = mapped_column(String(80))
    postcode: Mapped[str | None] = mapped_column(String(12))
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2 (GB, DE)
    # the names and email as searched (core.kernel.text.search_text): case and accents aside
    search_text: Mapped[str] = mapped_column(String(500), default="", server_default="")
    consent_email: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    reminders_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # the sum of the patient's ledger: a new patient's balance opens with a ledger entry
    # (core.payments.points.open_account), never from a column default
    points_balance: Mapped[int] = mapped_column(Integer, default=0)
    card_on_file: Mapped[bool] = mapped_column(Boolean, default=False)
    portal_enrolled_at: Mapped[datetime | None]
    gender: Mapped[str | None] = mapped_column(String(16))
    extra: Mapped[dict[str, Any] | None]  # imported attributes kept as patient data
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # a duplicate merged into another record (core.patients.merge): kept, never deleted, but
    # left out of search and lists and refused by booking, messages and invitations
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    merged_at: Mapped[datetime | None]

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class PatientPortalTally(Base):
    """Patients per (enrolled, has email, consented) bucket, kept by triggers (db/triggers.py)
    so the portal status counts never count the patient table."""

    __tablename__ = "patient_portal_tally"

    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    patients: Mapped[int] = mapped_column(BigInteger, default=0)


event.listen(Base.metadata, "after_create", triggers.install)


# ---------------------------------------------------------------- appointments


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("end_at IS NULL OR start_at < end_at", name="start_before_end"),
        # a provider's visits by time (calendar, availability, double booking); with their
        # state and clinic, so a provider's survey funnel counts its range without the table
        # (migration 0030, replacing the (provider_id, start_at) index it starts with)
        Index(
            "ix_appointments_provider_day",
            "provider_id",
            "start_at",
            "status",
            "feedback_status",
            "clinic_id",
        ),
        Index(None, "status", "start_at"),
        # covering index: the survey response funnel counts each feedback state as one range
        Index("ix_appointments_feedback_day", "status", "feedback_status", "start_at", "clinic_id"),
        Index(None, "patient_id", "start_at"),
        Index(None, "status", "created_at"),
        # (clinic_id, start_at) ranges; status is checked in the index (analytics, calendar)
        Index(None, "clinic_id", "start_at", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))  # the first service
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id"))  # booked as one
    kind: Mapped[AppointmentKind] = mapped_column(
        str_enum(AppointmentKind, "kind"), default=AppointmentKind.APPOINTMENT
    )
    mode: Mapped[VisitMode] = mapped_column(
        str_enum(VisitMode, "mode"), default=VisitMode.IN_PERSON
    )
    status: Mapped[AppointmentStatus] = mapped_column(str_enum(AppointmentStatus, "status"))
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    # the services' buffers when placed: provider and rooms stay free this long around the visit
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requested_day: Mapped[date | None] = mapped_column(Date)
    time_of_day: Mapped[TimeOfDay | None] = mapped_column(str_enum(TimeOfDay, "time_of_day"))
    source: Mapped[Source] = mapped_column(str_enum(Source, "source"), default=Source.STAFF)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    notes: Mapped[str] = mapped_column(Text, default="")
    allow_double_booking: Mapped[bool] = mapped_column(Boolean, default=False)
    outside_hours_override: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_reminder: Mapped[bool] = mapped_column(Boolean, default=False)
    booked_at: Mapped[datetime] = mapped_column(default=utcnow)  # when the patient booked
    decided_at: Mapped[datetime | None]  # when a request was approved or declined
    checked_in_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(120))  # "patient" or a user's name
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    late_cancellation: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("cancellation_policies.id"))
    reschedule_count: Mapped[int] = mapped_column(Integer, default=0)
    feedback_status: Mapped[FeedbackStatus] = mapped_column(
        str_enum(FeedbackStatus, "feedback_status"), default=FeedbackStatus.NONE
    )
    external_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # set on imported rows; analytics ignore them until the batch is finished
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))
    # what a booking request's patient asked while a proposal holds its time and provider
    # (core.requests.decisions: kept by propose_time, given back when the proposal is let go,
    # forgotten at any other end of it): an exact time or none, the provider or any; ask_kept
    # says one is kept, as both may be none. Database defaults only, as phone_landline's
    ask_kept: Mapped[bool] = mapped_column(Boolean, server_default=false())
    asked_start_at: Mapped[datetime | None]
    asked_provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))

    __mapper_args__ = {"version_id_col": version}

    patient: Mapped[Patient | None] = relationship()
    provider: Mapped[Provider | None] = relationship(foreign_keys=[provider_id])
    clinic: Mapped[Clinic] = relationship()
    service: Mapped[Service | None] = relationship()
    package: Mapped[Package | None] = relationship()
    services: Mapped[list[AppointmentService]] = relationship(
        cascade="all, delete-orphan", order_by="AppointmentService.position"
    )


class AppointmentNote(Base):
    """One note on an appointment, as written: who wrote it (their name then; no user for a
    patient or the system), when, and the text. Append-only: a new note never replaces one,
    and `Appointment.notes` keeps the latest text for the lists (core.scheduling.notes)."""

    __tablename__ = "appointment_notes"
    __table_args__ = (Index(None, "appointment_id", "written_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(120))  # as it was then; "Earlier note"
    written_at: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)  # as typed; escape on display


class AppointmentService(Base):
    __tablename__ = "appointment_services"
    # the second and later services of a visit (few rows): which of many visits have more than
    # one, without handing their ids over (core.practice.treatment.more_services)
    __table_args__ = (
        Index(
            "ix_appointment_services_more",
            "appointment_id",
            sqlite_where=text("position > 0"),
            postgresql_where=text("position > 0"),
        ),
    )

    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    service: Mapped[Service] = relationship()


class ChangeRequest(Base):
    """A patient's request to reschedule or cancel an existing appointment."""

    __tablename__ = "change_requests"
    __table_args__ = (Index(None, "status", "created_at"), Index(None, "appointment_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    kind: Mapped[ChangeKind] = mapped_column(str_enum(ChangeKind, "kind"))
    status: Mapped[ChangeStatus] = mapped_column(
        str_enum(ChangeStatus, "status"), default=ChangeStatus.OPEN
    )
    original_start_at: Mapped[datetime | None]
    # the booking's provider when the practice proposed another time: while the proposal waits
    # (status proposed) the original time stays held for it (core.scheduling.availability.held)
    original_provider_id: Mapped[int | None] = mapped_column(Integer)
    requested_start_at: Mapped[datetime | None]
    requested_day: Mapped[date | None] = mapped_column(Date)
    time_of_day: Mapped[TimeOfDay | None] = mapped_column(str_enum(TimeOfDay, "time_of_day"))
    reason: Mapped[str] = mapped_column(Text, default="")
    inside_window: Mapped[bool] = mapped_column(Boolean, default=False)
    fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    appointment: Mapped[Appointment] = relationship()


# ---------------------------------------------------------------- policy and ledger


class CancellationPolicy(Base):
    """One version of a clinic's (or a clinic-service override's) cancellation policy."""

    __tablename__ = "cancellation_policies"
    __table_args__ = (
        CheckConstraint("window_hours >= 0", name="window_not_negative"),
        CheckConstraint("late_cancel_fee_cents >= 0", name="late_fee_not_negative"),
        CheckConstraint("no_show_fee_cents >= 0", name="no_show_fee_not_negative"),
        CheckConstraint("late_cancel_fee_percent BETWEEN 0 AND 100", name="late_fee_percent_range"),
        CheckConstraint("no_show_fee_percent BETWEEN 0 AND 100", name="no_show_fee_percent_range"),
        CheckConstraint("points_deducted >= 0", name="points_not_negative"),
        Index(None, "clinic_id", "service_id", "effective_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    version: Mapped[int] = mapped_column(Integer)
    effective_at: Mapped[datetime]
    window_hours: Mapped[int] = mapped_column(Integer, default=24)
    # each fee is a fixed amount (its _cents) or a whole percentage of the visit's price (its
    # _percent), as its _basis says; the other value is kept, unused, for switching back
    late_cancel_fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    no_show_fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    late_cancel_fee_basis: Mapped[FeeBasis] = mapped_column(
        str_enum(FeeBasis, "late_fee_basis"), default=FeeBasis.FIXED, server_default="fixed"
    )
    late_cancel_fee_percent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    no_show_fee_basis: Mapped[FeeBasis] = mapped_column(
        str_enum(FeeBasis, "no_show_fee_basis"), default=FeeBasis.FIXED, server_default="fixed"
    )
    no_show_fee_percent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    points_deducted: Mapped[int] = mapped_column(Integer, default=0)
    inside_window_needs_approval: Mapped[bool] = mapped_column(Boolean, default=True)
    outside_window_auto_accept: Mapped[bool] = mapped_column(Boolean, default=False)
    online_cancel_allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    max_reschedules: Mapped[int] = mapped_column(Integer, default=2)
    policy_text: Mapped[str] = mapped_column(Text)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CancellationRollup(Base):
    """Maintained sums behind the cancellation analytics (core.analytics.cancellation_rollups):
    one row per clinic, clinic-local day (days since 1970-01-01), kind and key; derived, rebuilt
    at will."""

    __tablename__ = "cancellation_rollups"
    __table_args__ = (
        Index(None, "clinic_id", "daynum", "kind"),
        # covering index for the reads: each kind of a clinic's range is one index range
        Index(
            "ix_cancellation_rollups_read",
            "clinic_id",
            "kind",
            "daynum",
            "k1",
            "k2",
            "v0",
            "v1",
            "v2",
            "v3",
            "v4",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    daynum: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    k1: Mapped[int] = mapped_column(Integer, default=0)
    k2: Mapped[int] = mapped_column(Integer, default=0)
    v0: Mapped[int] = mapped_column(BigInteger, default=0)
    v1: Mapped[int] = mapped_column(BigInteger, default=0)
    v2: Mapped[int] = mapped_column(BigInteger, default=0)
    v3: Mapped[int] = mapped_column(BigInteger, default=0)
    v4: Mapped[int] = mapped_column(BigInteger, default=0)


class CancellationRollupDirty(Base):
    """A clinic-local day whose roll-up rows must be recomputed (written with the change)."""

    __tablename__ = "cancellation_rollup_dirty"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(Integer)
    daynum: Mapped[int] = mapped_column(Integer)


class LedgerEntry(Base):
    """A fee assessed on a patient, or a change of their points balance (the points entries
    add up to it); waivers keep the entry."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index(None, "patient_id"), Index(None, "appointment_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    kind: Mapped[LedgerKind] = mapped_column(str_enum(LedgerKind, "kind"))
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(Integer, default=0)
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("cancellation_policies.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    waived_at: Mapped[datetime | None]
    waived_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    waive_reason: Mapped[str | None] = mapped_column(Text)


# ---------------------------------------------------------------- patient links


class LinkToken(Base):
    """A signed patient link: only the SHA-256 of the random token is stored."""

    __tablename__ = "link_tokens"
    __table_args__ = (Index(None, "purpose", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int] = mapped_column(Integer)  # the row the purpose refers to
    single_use: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PortalInvitation(Base):
    __tablename__ = "portal_invitations"
    __table_args__ = (Index(None, "patient_id", "status"), Index(None, "status", "expires_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    # the address it went to: an email address, or the mobile number of one sent by text
    # (core.patients.invitations.channel_of tells them apart)
    email: Mapped[str] = mapped_column(String(254))
    status: Mapped[InvitationStatus] = mapped_column(
        str_enum(InvitationStatus, "status"), default=InvitationStatus.PENDING
    )
    token_id: Mapped[int | None] = mapped_column(ForeignKey("link_tokens.id"))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    enrolled_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(200))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship()


class RateLimitHit(Base):
    """One attempt at a rate-limited public action (e.g. a booking request), keyed by a hashed
    IP address or contact; kept in the database so the limit holds across app instances."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (Index(None, "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(96))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackRequest(Base):
    __tablename__ = "feedback_requests"
    __table_args__ = (UniqueConstraint("appointment_id", "sent_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("link_tokens.id"))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_on: Mapped[date] = mapped_column(Date)  # clinic-local day: one request per day
    answered_at: Mapped[datetime | None]
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (
        CheckConstraint("nps IS NULL OR nps BETWEEN 0 AND 10", name="nps_range"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        Index(None, "clinic_id", "submitted_at"),
        Index(None, "submitted_at"),
        # covering index: survey analytics aggregate a date range without reading the table
        # (by service, a package's answers are its own group: package_id is read there too;
        # with a service, its look-up of the answers' visits and the visits it found read
        # appointment_id, migration 0030)
        Index(
            "ix_survey_responses_figures",
            "submitted_at",
            "service_id",
            "package_id",
            "provider_id",
            "clinic_id",
            "nps",
            "rating",
            "appointment_id",
        ),
        # one provider's figures: its range of this index, read without the table; with a
        # service, its look-up of the visits and the visits it found (appointment_id); id is
        # the order of its comments after the time; migration 0029
        Index(
            "ix_survey_responses_provider_figures",
            "provider_id",
            "submitted_at",
            "id",
            "service_id",
            "package_id",
            "clinic_id",
            "nps",
            "rating",
            "appointment_id",
        ),
        # the overview counts each NPS bucket / star rating as one index range
        Index("ix_survey_responses_nps_day", "nps", "submitted_at", "clinic_id"),
        Index("ix_survey_responses_rating_day", "rating", "submitted_at", "clinic_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("feedback_requests.id"), unique=True
    )
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    # the package the visit was booked as (its answers are the package's, not its first service's)
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id"))
    submitted_at: Mapped[datetime]
    nps: Mapped[int | None] = mapped_column(Integer)
    rating: Mapped[int | None] = mapped_column(Integer)
    answers: Mapped[dict[str, Any] | None]
    comment: Mapped[str] = mapped_column(Text, default="")  # stored as typed; escape on display
    source: Mapped[str] = mapped_column(String(16), default="link")
    external_ref: Mapped[str | None] = mapped_column(String(64), unique=True)


# ---------------------------------------------------------------- notifications


def address_key(address):
    """An address as the outbox's search looks it up (ix_notifications_address_key): lower
    case, without the separators a phone number is typed with (space - ( ) . +), so an email
    typed in any case, or a number typed in any form, is one key whichever way it was stored
    (core.messaging.notify reads a typed number's forms; an email's key it checks again)."""
    for char in (" ", "-", "(", ")", ".", "+"):  # literals: an index matches no parameter
        address = func.replace(
            address, literal(char, literal_execute=True), literal("", literal_execute=True)
        )
    return func.lower(address)


class Notification(Base):
    """The outbox: written in the same transaction as the change that causes it."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "patient_id"),
        # the Notifications page's template filter (core.messaging.notify.list_outbox): a
        # page is the template's range read back from its newest (a status checked in it),
        # the counts by status that range alone (migration 0032)
        Index(None, "template", "id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, "channel"))
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(250), default="")
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, "status"), default=DeliveryStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # the sender holding the claim (its lease is next_attempt_at); a permanent
    # failure (5xx, invalid address) is not retried until a person asks
    claim_token: Mapped[str | None] = mapped_column(String(32))
    permanent_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_kind: Mapped[StopKind | None] = mapped_column(str_enum(StopKind, "stop_kind"))
    # the survey request or waitlist offer the message is about (core.messaging.quiet reads
    # them; no foreign key, so SQLite can drop the columns again, as clinic_events.email_id)
    feedback_request_id: Mapped[int | None] = mapped_column(Integer)
    waitlist_offer_id: Mapped[int | None] = mapped_column(Integer)
    # the email's files in order (core.messaging.attachments); a text message has none
    attachments: Mapped[list[NotificationAttachment]] = relationship(
        order_by="NotificationAttachment.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


Index("ix_notifications_address_key", address_key(Notification.to_address))


class NotificationAttachment(Base):
    """One file an email carries (the check-in QR code, the visit's .ics). Its bytes are
    dropped once the email is sent; its name and type stay, to say what was sent."""

    __tablename__ = "notification_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120))
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)


class NotificationTemplate(Base):
    """An edited template; keys absent here use the built-in text in core.messaging.notify."""

    __tablename__ = "notification_templates"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(250), default="")
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


# ---------------------------------------------------------------- staff, audit, settings


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    password_hash: Mapped[str] = mapped_column(String(200))
    # the password was chosen by someone else (the owner's new account or reset): its holder
    # chooses their own before anything else (core.kernel.authz.ensure refuses until then)
    password_change_due: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSession(Base):
    """A signed-in browser: the cookie carries a random token, the row only its hash."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index(None, "at"),
        Index(None, "entity", "entity_id"),
        Index(None, "patient_id", "at"),
        Index(None, "user_id", "at"),
        Index(None, "action", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))  # user's name, "Patient (link)", "System"
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None]


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


# ---------------------------------------------------------------- import batches


class ImportBatch(Base):
    """One import of a file, saved in chunks (each its own short transaction). Its
    appointments are left out of the analytics until `finished_at` is set; importing the same
    file into the same clinic again resumes an unfinished batch."""

    __tablename__ = "import_batches"
    __table_args__ = (Index(None, "fingerprint", "finished_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    what: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of file, mapping and clinic
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"))
    started_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    summary: Mapped[str | None] = mapped_column(Text)


# ---------------------------------------------------------------- public booking form


class RequestFlag(Base):
    """Why a public booking request needs a person's look before it is trusted: its email or
    phone belongs to a known patient but the typed name or date of birth does not ("check
    identity"), a new record's name and perhaps date of birth match a patient on file ("maybe
    a known patient"), or the patient may not book online. The request waits in the queue with
    the flag shown until the desk handles it (core.requests.flags); the answer to the person who
    typed it is the same as for any request."""

    __tablename__ = "request_flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), unique=True)
    flag: Mapped[str] = mapped_column(String(300))
    typed_name: Mapped[str] = mapped_column(String(170), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # what was typed, for the desk's one-click actions (core.requests.flags); None on flags
    # stored before migration 0024
    typed_birth: Mapped[date | None] = mapped_column(Date)
    typed: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # names, email, phone, consents
    known_ids: Mapped[list[int] | None] = mapped_column(JSON)  # "maybe a known patient": who
    handled_at: Mapped[datetime | None]  # handled flags are not shown; the audit keeps them
    handled_by: Mapped[str | None] = mapped_column(String(120))


# ---------------------------------------------------------------- service documents


class DocumentKind(enum.StrEnum):
    QUESTIONNAIRE = "questionnaire"
    CONSENT = "consent"
    INSTRUCTIONS = "instructions"


class ServiceDocument(Base):
    """A questionnaire, consent text or pre-treatment instructions attached to a service.
    Versioned: an edit adds a row with version + 1 and deactivates the previous one, so answers
    and signatures keep pointing at the exact text the patient saw."""

    __tablename__ = "service_documents"
    __table_args__ = (UniqueConstraint("service_id", "kind", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    kind: Mapped[DocumentKind] = mapped_column(str_enum(DocumentKind, "document_kind"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    # questionnaire only: [{"key": str, "label": str, "type": "text" | "yes_no" | "choice" |
    # "number", "options": [str], "required": bool}]
    questions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")


# ---------------------------------------------------------------- practice set-up


class ResourceKind(enum.StrEnum):
    ROOM = "room"
    EQUIPMENT = "equipment"


class ProviderClinic(Base):
    """A clinic a provider works at."""

    __tablename__ = "provider_clinics"

    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), primary_key=True)


class ProviderService(Base):
    """A service a provider performs."""

    __tablename__ = "provider_services"

    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)


class Resource(Base):
    """A room or a piece of equipment at one clinic; `quantity` of them can be used at once."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("clinic_id", "name"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[ResourceKind] = mapped_column(str_enum(ResourceKind, "resource_kind"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ServiceResource(Base):
    """A resource a service needs (at the resource's clinic) for its whole duration."""

    __tablename__ = "service_resources"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)


class Package(Base):
    """Services booked together: the durations add up, one price."""

    __tablename__ = "packages"
    __table_args__ = (CheckConstraint("price_cents >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PackageService(Base):
    __tablename__ = "package_services"

    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


# ---------------------------------------------------------------- reminders, replies,
# clinic notices and forms after booking


class ReminderSent(Base):
    """One reminder queued for an appointment at one offset, for the start time it reminded of:
    the unique key makes the job queue each reminder once, and a moved appointment (new start)
    is reminded again for its new time."""

    __tablename__ = "reminders_sent"
    __table_args__ = (UniqueConstraint("appointment_id", "offset_minutes", "start_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    offset_minutes: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime]
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    channels: Mapped[str] = mapped_column(String(40), default="")  # "email,sms"; "" = none usable
    skipped: Mapped[str] = mapped_column(Text, default="")  # why a channel was not used


class AppointmentConfirmation(Base):
    """The patient confirmed the appointment for the start time it had then (a move needs a new
    confirmation)."""

    __tablename__ = "appointment_confirmations"
    __table_args__ = (Index(None, "appointment_id", "start_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    start_at: Mapped[datetime]
    confirmed_at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(24))  # "email link", "SMS link", "SMS reply"


class SmsReply(Base):
    """A text message a patient sent back: confirmed, asked to cancel, or left for staff, and the
    answer texted back to it."""

    __tablename__ = "sms_replies"
    __table_args__ = (Index(None, "handled_at", "received_at"), Index(None, "appointment_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    provider_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    from_number: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # stored as typed; escape on display
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    outcome: Mapped[str] = mapped_column(String(24))  # confirmed, cancel_requested, inbox, …
    note: Mapped[str] = mapped_column(Text, default="")
    # what ClinicDesk texted back at once, in the webhook's response ("" for nothing)
    answer: Mapped[str] = mapped_column(Text, default="")
    handled_at: Mapped[datetime | None]
    handled_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ClinicEvent(Base):
    """Something the clinic's inbox hears of: emailed at once or gathered into the daily digest."""

    __tablename__ = "clinic_events"
    __table_args__ = (Index(None, "clinic_id", "digested_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    event: Mapped[str] = mapped_column(String(32))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    summary: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    emailed: Mapped[bool] = mapped_column(Boolean, default=False)  # sent on its own
    # that email (notifications.id; no foreign key, so SQLite can drop the column again)
    email_id: Mapped[int | None] = mapped_column(Integer)
    digested_at: Mapped[datetime | None]  # included in a daily digest


class FormRequest(Base):
    """A service document sent to the patient for one appointment, and the answer: the
    questionnaire's answers or the consent's signature (typed name, date, time, client
    address). Never deleted; a resend issues a fresh link."""

    __tablename__ = "form_requests"
    __table_args__ = (
        UniqueConstraint("appointment_id", "document_id"),
        Index(None, "patient_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("service_documents.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[DocumentKind] = mapped_column(str_enum(DocumentKind, "document_kind"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("link_tokens.id"))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    times_sent: Mapped[int] = mapped_column(Integer, default=1)
    completed_at: Mapped[datetime | None]
    answers: Mapped[dict[str, Any] | None]
    signed_name: Mapped[str | None] = mapped_column(String(200))
    signed_on: Mapped[date | None] = mapped_column(Date)
    client_address: Mapped[str | None] = mapped_column(String(64))

    document: Mapped[ServiceDocument] = relationship()


# ---------------------------------------------------------------- portal and payments


class PortalSession(Base):
    """A patient's signed-in portal browser: the HttpOnly cookie carries a random token, the row
    only its hash. Separate from staff sessions: it never grants a staff page."""

    __tablename__ = "portal_sessions"
    __table_args__ = (Index(None, "patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class Payment(Base):
    """Money or points moving for an appointment, in integer cents. A refund is its own row
    (negative direction by kind), pointing at the payment it gives back."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        CheckConstraint("points >= 0", name="points_not_negative"),
        Index(None, "appointment_id"),
        Index(None, "patient_id", "created_at"),
        Index(None, "status", "created_at"),
        Index(None, "status", "paid_at"),  # the cash-up and export: money moved on days
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    kind: Mapped[str] = mapped_column(String(16))  # prepayment, deposit, fee, refund
    method: Mapped[str] = mapped_column(String(16))  # points, card, cash, stripe
    status: Mapped[str] = mapped_column(String(16))  # pending, paid, refund_due, refunded, failed
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))  # the clinic's, as when it was paid
    provider_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    provider_customer: Mapped[str | None] = mapped_column(String(255))  # card on file
    refund_of_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    note: Mapped[str] = mapped_column(Text, default="")  # as staff typed it or the code wrote it
    # a refund sent through the provider: how often it was sent and what the provider last said
    refund_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # since when a refund may have been made by the provider (sent with no answer recorded
    # yet, or its look-up refused): not handed back at the desk until the refund job has
    # settled it; None once the provider answers
    unanswered_at: Mapped[datetime | None]
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]


class PaymentEvent(Base):
    """A payment provider's webhook event, kept by its id so each is applied once."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))


# ---------------------------------------------------------------- waitlist and risk


class WaitlistStatus(enum.StrEnum):
    WAITING = "waiting"  # matches freed slots
    BOOKED = "booked"  # accepted an offer (or was booked by staff)
    WITHDRAWN = "withdrawn"  # removed by staff or the patient
    EXPIRED = "expired"  # its date range passed


class OpeningStatus(enum.StrEnum):
    PENDING = "pending"  # queued by a transition; the jobs loop has not looked yet
    OFFERING = "offering"  # offers are out
    FILLED = "filled"  # a waitlisted patient took it
    UNFILLED = "unfilled"  # nobody matched, or every offer lapsed
    CLOSED = "closed"  # the slot is gone (booked otherwise, passed, too close to start)


class OfferStatus(enum.StrEnum):
    QUEUED = "queued"  # ranked, waiting its turn (one-at-a-time mode)
    SENT = "sent"
    ACCEPTED = "accepted"
    TAKEN = "taken"  # someone else accepted first; the patient was told
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # the slot went another way before this offer was answered


class OfferMode(enum.StrEnum):
    """How the waitlist offers a freed time (the practice's rule, core.waitlist.rules.Mode;
    each offer keeps the one it went out in)."""

    ONE_AT_A_TIME = "one_at_a_time"  # one patient holds the slot for `hold_minutes`, then the next
    FIRST_TO_ACCEPT = "first_to_accept"  # `batch` patients at once; the first to accept wins


class WaitlistEntry(Base):
    """A patient waiting for a slot: service (or package: its services, service_id its first),
    clinic, provider (or any), dates, weekdays and time-of-day windows. Entries are never
    deleted; their status records what happened."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint("earliest <= latest", name="earliest_before_latest"),
        Index(None, "clinic_id", "status", "latest"),
        Index(None, "patient_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id"))  # booked as one
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))  # None: any
    earliest: Mapped[date] = mapped_column(Date)  # clinic-local days, inclusive
    latest: Mapped[date] = mapped_column(Date)
    weekdays: Mapped[str] = mapped_column(String(7), default="01234")  # 0 = Monday
    windows: Mapped[str] = mapped_column(String(80), default="")  # TimeOfDay values; "" = any
    note: Mapped[str] = mapped_column(Text, default="")  # as typed: escape on display
    status: Mapped[WaitlistStatus] = mapped_column(
        str_enum(WaitlistStatus, "status"), default=WaitlistStatus.WAITING
    )
    source: Mapped[str] = mapped_column(String(16), default="staff")  # staff, request, portal
    request_appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    booked_appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]

    patient: Mapped[Patient] = relationship()
    service: Mapped[Service] = relationship()
    package: Mapped[Package | None] = relationship()


class SlotOpening(Base):
    """Time a transition freed (or added) for a provider at a clinic, queued in the same
    transaction by core.scheduling.openings; the waitlist job offers it."""

    __tablename__ = "slot_openings"
    __table_args__ = (
        CheckConstraint("start_at < end_at", name="start_before_end"),
        Index(None, "status", "created_at"),
        Index(None, "clinic_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(24))  # cancelled, moved, declined, hours, time_off
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    status: Mapped[OpeningStatus] = mapped_column(
        str_enum(OpeningStatus, "status"), default=OpeningStatus.PENDING
    )
    by_hand: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    filled_at: Mapped[datetime | None]
    filled_appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class WaitlistOffer(Base):
    """One slot offered to one waitlisted patient through a signed link."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (
        UniqueConstraint("opening_id", "entry_id"),
        Index(None, "status", "expires_at"),
        Index(None, "entry_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("slot_openings.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("waitlist_entries.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    rank: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime]  # the slot offered (within the opening)
    status: Mapped[OfferStatus] = mapped_column(
        str_enum(OfferStatus, "status"), default=OfferStatus.QUEUED
    )
    token_id: Mapped[int | None] = mapped_column(ForeignKey("link_tokens.id"))
    sent_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # the hold's end (the link lapses then, either mode)
    # the mode it went out in (its words, and whether it holds the time alone); None while queued
    mode: Mapped[OfferMode | None] = mapped_column(str_enum(OfferMode, "mode"))
    answered_at: Mapped[datetime | None]
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))

    entry: Mapped[WaitlistEntry] = relationship()
    opening: Mapped[SlotOpening] = relationship()


class RiskModel(Base):
    """A trained no-show model (core.analytics.risk_model) and what it was trained and
    validated on. The newest row is the one in use."""

    __tablename__ = "risk_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    trained_at: Mapped[datetime] = mapped_column(default=utcnow)
    data_from: Mapped[date | None] = mapped_column(Date)
    data_until: Mapped[date | None] = mapped_column(Date)  # exclusive: days before this
    rows: Mapped[int] = mapped_column(Integer, default=0)
    features: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any] | None]
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class RiskScore(Base):
    """An upcoming appointment's predicted no-show probability (scored by the jobs loop)."""

    __tablename__ = "risk_scores"

    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id"), primary_key=True, autoincrement=False
    )
    model_id: Mapped[int] = mapped_column(ForeignKey("risk_models.id"))
    probability: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the visit as it was scored: a move (another time or provider) makes the score another
    # visit's, while a note or a payment does not
    start_at: Mapped[datetime | None]
    provider_id: Mapped[int | None] = mapped_column(Integer)

    @staticmethod
    def describes_visit():
        """SQL (with Appointment joined): the score was made for the visit as it stands now, its
        start and provider; until the daily run scores a moved visit again it has no score."""
        return and_(
            RiskScore.start_at == Appointment.start_at,
            RiskScore.provider_id.is_not_distinct_from(Appointment.provider_id),
        )


class RiskCall(Base):
    """A reminder call made from the call list (core.analytics.risk_scores.record_call): its
    outcome, an optional note, who made it and when, for the start the visit had then (a move
    makes it a visit to call again, as it voids a confirmation)."""

    __tablename__ = "risk_calls"
    __table_args__ = (Index(None, "appointment_id", "start_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    start_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(24))  # reached, message, no_answer
    note: Mapped[str] = mapped_column(String(500), default="")  # as typed; escape on display
    called_at: Mapped[datetime] = mapped_column(default=utcnow)
    called_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class JobRun(Base):
    """A background job's health (core.practice.job_health), one row per job that has failed.
    The jobs loop writes it only when the job starts failing, at most every few minutes while it
    keeps failing, and when it works again: a healthy loop writes nothing."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_ok_at: Mapped[datetime | None]  # when it last worked, as far as the loop recorded
    failing_since: Mapped[datetime | None]  # None while it works
    last_failed_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(500), default="", server_default="")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
