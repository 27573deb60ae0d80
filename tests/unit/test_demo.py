"""The demo's portal invitations tell a story that could have happened: nothing enrolled ahead
of now or before it was sent, and an expired invitation's time is over."""

from __future__ import annotations

from sqlalchemy import select

from core import demo
from db.models import InvitationStatus, PortalInvitation
from db.types import utcnow


def test_the_demos_invitations_happened_in_order_and_not_ahead_of_now(db):
    with db.write() as session:
        demo.seed_demo(session)
    now = utcnow()
    with db.read() as session:
        rows = session.scalars(select(PortalInvitation)).all()
    by = {status: [r for r in rows if r.status == status] for status in InvitationStatus}
    assert all(by[s] for s in InvitationStatus)  # every state is shown
    for r in rows:
        assert r.sent_at <= now
    for r in by[InvitationStatus.ENROLLED]:
        assert r.sent_at <= r.enrolled_at <= now
    for r in by[InvitationStatus.EXPIRED]:
        assert r.expires_at <= now
    for r in by[InvitationStatus.PENDING]:
        assert r.expires_at > now
    for r in by[InvitationStatus.REVOKED]:
        assert r.sent_at <= r.revoked_at <= now
