"""The waitlist tests (the accept race included) again, on PostgreSQL; the risk tests' twin is
test_risk_pg."""

import threading
from datetime import timedelta

from sqlalchemy import select, update

from core.kernel.errors import Conflict
from core.waitlist import entries, offers
from core.waitlist.rules import Mode
from db.models import OfferStatus, OpeningStatus, SlotOpening, WaitlistOffer
from db.types import utcnow
from tests.support.locks import wait_until_a_writer_waits
from tests.unit.test_waitlist import *  # noqa: F403
from tests.unit.test_waitlist import (
    BASE,
    accept,
    booked,
    cancel,
    deliver,
    future_day,
    offer_links,
    process,
    rules,
    sent_to,
    waiting,
)


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
    wait_until_a_writer_waits(db)  # blocked on the opening
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


def test_a_decline_while_another_patient_accepts_waits_for_the_accept_and_is_told_taken(db, world):
    """First to accept: Ben accepts while Ann passes the time on. Her decline wrote her offer
    before it touched the opening, while the accept held the opening and then wrote her offer
    as taken: each waited for the other (a deadlock, one of them failing with a database
    error). Now declining locks the opening first, as accepting does, and reads her offer
    afresh: it waits for Ben's booking and tells her the time was taken."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=2)
    day = future_day()
    appointment_id = booked(db, world, day)
    waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    links = offer_links(db)
    held, go = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def accepting():  # Ben's accept, its opening locked first
        try:
            with db.write() as session:
                session.execute(select(SlotOpening).with_for_update()).all()
                held.set()
                go.wait(20)
                outcome["ben"] = offers.accept_offer(session, links["ben@example.org"]).id
        except Exception as error:  # noqa: BLE001 - the outcome is asserted below
            outcome["ben"] = error

    def declining():
        try:
            with db.write() as session:
                offers.decline_offer(session, links["ann@example.org"], base_url=BASE)
                outcome["ann"] = "declined"
        except Exception as error:  # noqa: BLE001
            outcome["ann"] = error

    ben = threading.Thread(target=accepting)
    ben.start()
    held.wait(10)
    ann = threading.Thread(target=declining)
    ann.start()
    wait_until_a_writer_waits(db)  # waits for the opening
    go.set()
    ben.join(30)
    ann.join(30)
    assert isinstance(outcome["ben"], int), outcome
    assert isinstance(outcome["ann"], Conflict) and str(outcome["ann"]) == offers.TAKEN
    with db.read() as session:
        states = dict(session.execute(select(WaitlistOffer.patient_id, WaitlistOffer.status)).all())
        opening = session.scalars(select(SlotOpening)).one()
    assert sorted(states.values()) == [OfferStatus.ACCEPTED, OfferStatus.TAKEN]
    assert opening.status == OpeningStatus.FILLED


def test_an_entry_withdrawn_while_another_patient_accepts_its_time_stays_withdrawn_untold(
    db, world
):
    """First to accept: Ann leaves the waitlist while Ben accepts the time offered to both.
    The accept read her offer as still out before her withdrawal was committed, then wrote it
    over as taken and told her the time was taken, after she had left. Now it reads the other
    offers locked (waiting for her withdrawal) and leaves hers withdrawn, telling her nothing."""
    rules(db, world, mode=Mode.FIRST_TO_ACCEPT, batch=2)
    day = future_day()
    appointment_id = booked(db, world, day)
    ann = waiting(db, world, day, name="Ann")
    waiting(db, world, day, name="Ben")
    cancel(db, world, appointment_id)
    process(db)
    links = offer_links(db)
    deliver(db)  # both offers reached their patients
    held, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def withdrawing():
        with db.write() as session:
            entries.withdraw(session, world.staff, ann)
            held.set()
            release.wait(20)

    def accepting():
        try:
            outcome["ben"] = accept(db, links["ben@example.org"])
        except Exception as error:  # noqa: BLE001 - the outcome is asserted below
            outcome["ben"] = error

    first = threading.Thread(target=withdrawing)
    first.start()
    held.wait(10)
    second = threading.Thread(target=accepting)
    second.start()
    # the accept reaches Ann's offer while her withdrawal is not committed
    wait_until_a_writer_waits(db)
    release.set()
    first.join(20)
    second.join(30)
    assert isinstance(outcome["ben"], int), outcome
    with db.read() as session:
        theirs = session.scalars(select(WaitlistOffer).order_by(WaitlistOffer.rank)).all()
        assert [o.status for o in theirs] == [OfferStatus.WITHDRAWN, OfferStatus.ACCEPTED]
    assert sent_to(db, "waitlist_taken") == []
