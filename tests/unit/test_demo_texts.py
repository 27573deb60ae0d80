"""What the demo writes for a visit names it as the app does: a package by its name with its
services (core.practice.treatment), not the package's first service."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from core import demo
from db.models import (
    AppointmentService,
    AppointmentStatus,
    Notification,
    Package,
    Service,
)
from db.types import utcnow
from tests.factories import make_visit


def test_the_demos_confirmations_name_a_package_visit_as_the_package(db, world):
    now = utcnow()
    with db.write() as session:
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        glow = Package(name="Glow", price_cents=12000)
        session.add_all([peel, glow])
        session.flush()
        start = now + timedelta(days=2)
        visit = make_visit(
            session,
            world,
            package_id=glow.id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=60),
            booked_at=now - timedelta(days=1),
        )
        session.add_all(
            [
                AppointmentService(appointment_id=visit.id, service_id=world.service_id),
                AppointmentService(appointment_id=visit.id, service_id=peel.id, position=1),
            ]
        )
        session.flush()
        demo._outbox(session, random.Random(1), [visit], now)
    with db.read() as session:
        bodies = session.scalars(select(Notification.body)).all()
    assert bodies and all("Glow (Consultation + Peel)" in body for body in bodies)
