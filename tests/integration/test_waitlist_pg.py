"""The waitlist tests (the accept race included) and the risk tests again, on PostgreSQL."""

import threading
from datetime import timedelta

from sqlalchemy import select, update

from core.waitlist import offers
from core.waitlist.rules import Mode
from db.models import OfferStatus, SlotOpening, WaitlistOffer
from db.types import utcnow
from tests.unit.test_risk import *  # noqa: F403
from tests.unit.test_waitlist import *  # noqa: F403
from tests.unit.test_waitlist import BASE, booked, cancel, future_day, process, rules, waiting


def test_expiring_offers_locks_the_opening_before_its_offers_as_accepting_does(db, world):
    """Accepting locks the opening, then writes the other offers of it ("taken"); the jobs
    loop's expire_offers wrote a lapsed offer first, then the opening: with Ben accepting while
    Ann's hold lapsed, each held what the other waited for (a deadlock). Now expiring waits for
    the opening before it touches an offer: while an accept holds the opening, Ann's offer
    stays free for it."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=3)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    with db.write() as session:
        ann = session.scalar(select(WaitlistOffer.id).order_by(WaitlistOffer.rank).limit(1))
        session.execute(  # her hold has just lapsed
            update(WaitlistOffer)
            .where(WaitlistOffer.id == ann)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    held, release = threading.Event(), threading.Event()

    def accepting():  # an accept's first step: the opening locked
        with db.write() as session:
            session.execute(select(SlotOpening).with_for_update()).all()
            held.set()
            release.wait(20)

    def expiring():
        with db.write() as session:
            offers.expire_offers(session, base_url=BASE)

    first = threading.Thread(target=accepting)
    first.start()
    held.wait(10)
    jobs = threading.Thread(target=expiring)
    jobs.start()
    jobs.join(1)  # blocked on the opening
    try:
        with db.write() as session:  # the accept would now write Ann's offer: not locked
            session.execute(
                select(WaitlistOffer.id).where(WaitlistOffer.id == ann).with_for_update(nowait=True)
            ).all()
    finally:
        release.set()
        first.join(20)
        jobs.join(20)
    with db.read() as session:
        assert session.get(WaitlistOffer, ann).status == OfferStatus.EXPIRED
