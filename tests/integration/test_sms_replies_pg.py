"""The two-way SMS tests again on PostgreSQL, and two desks marking one reply at once."""

import threading
import time

from core.portal import replies
from db.engine import Database
from db.models import SmsReply
from tests.unit.test_sms_replies import *  # noqa: F403


def test_two_desks_marking_one_reply_at_once_one_does(db, world):
    """The second waits for the first's lock and is told; before, both went through and the
    second's handler and note replaced the first's."""
    with db.write() as session:
        reply = replies.receive_sms(session, from_number="07700 900123", body="Parking?")
    other, out = Database(db.url), {}

    def second():
        try:
            with other.write() as session:
                replies.mark_handled(session, world.staff, reply.reply_id, "Rang back.")
        except Exception as error:  # noqa: BLE001 - the refusal is what the test reads
            out["error"] = error

    with db.write() as session:
        replies.mark_handled(session, world.manager, reply.reply_id, "Told her: level 2.")
        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(0.5)  # the second waits on the first's uncommitted mark
        assert waiting.is_alive()
    waiting.join(timeout=30)
    other.dispose()
    assert "already marked handled by" in str(out.get("error")), out
    with db.read() as session:
        stored = session.get(SmsReply, reply.reply_id)
        assert stored.note.endswith("\nTold her: level 2.")
        assert stored.handled_by_user_id == world.manager.user_id
