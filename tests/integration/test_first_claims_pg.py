"""A settings row's first use by two servers at once, on PostgreSQL: on a new practice every
server's jobs loop makes the same claim rows (the daily scoring's, the roll-ups' state, each
clinic's digest marker) in its first round. The second waits for the first and reads its row;
before, its plain INSERT failed with a duplicate key and the job was recorded as failed."""

import dataclasses
import threading
import time
from datetime import UTC, datetime

import pytest

from core.analytics import cancellation_rollups, risk_jobs
from core.feedback.surveys import save_survey_settings, survey_settings
from core.kernel.locks import setting_row
from core.messaging.preferences import PreferencesForm, preferences, save_preferences
from core.patients.invitations import get_expiry_days, set_expiry_days
from core.requests.queue import set_stale_hours, stale_hours
from core.waitlist.rules import get_rules, set_rules
from db.engine import Database


def second_while_first_is_open(db, first, second):
    """Run `first` in a transaction left open, then `second` in another server's transaction
    (it waits on the first's new row), commit the first: `second`'s result, or its error."""
    other = Database(db.url)
    assert other.reachable()
    out = {}

    def run():
        try:
            with other.write() as session:
                out["result"] = second(session)
        except Exception as error:  # noqa: BLE001 - the failure is what the test reports
            out["error"] = error

    with db.write() as session:
        out["first"] = first(session)
        waiting = threading.Thread(target=run)
        waiting.start()
        time.sleep(0.5)  # the second is waiting on the first's uncommitted row
        assert waiting.is_alive()
    waiting.join(timeout=30)
    other.dispose()
    assert "error" not in out, out["error"]
    return out["first"], out["result"]


def test_the_second_maker_of_a_settings_row_reads_the_first_ones(db):
    def make(session):
        row = setting_row(session, "first_use", {"by": "second"})
        return dict(row.value)

    def make_and_write(session):
        row = setting_row(session, "first_use", {"by": "first"})
        row.value = {"by": "first", "written": True}
        return dict(row.value)

    first, second = second_while_first_is_open(db, make_and_write, make)
    assert second == first == {"by": "first", "written": True}


@pytest.mark.parametrize(
    "job",
    [
        lambda s: risk_jobs._claim(s, "risk_scoring", risk_jobs.SCORE_LEASE, datetime.now(UTC)),  # noqa: SLF001
        cancellation_rollups.refresh,
    ],
    ids=["daily scoring's claim", "roll-ups' state"],
)
def test_two_servers_first_rounds_at_once_both_go_on(db, job):
    first, second = second_while_first_is_open(db, job, job)
    if first is True:  # a claim: the first has it, the second is told it is taken
        assert second is False


SAVES = {  # a first save of each settings form: (save it with n, read back what is stored)
    "invitation expiry": (
        lambda s, a, w, n: set_expiry_days(s, a, n),
        lambda s, w: get_expiry_days(s),
    ),
    "stale requests": (
        lambda s, a, w, n: set_stale_hours(s, a, n),
        lambda s, w: stale_hours(s),
    ),
    "waitlist rules": (
        lambda s, a, w, n: set_rules(s, a, dataclasses.replace(get_rules(s), batch=n)),
        lambda s, w: get_rules(s).batch,
    ),
    "survey settings": (
        lambda s, a, w, n: save_survey_settings(
            s, a, auto=True, delay_hours=n, questions=["How was it?"]
        ),
        lambda s, w: survey_settings(s).delay_hours,
    ),
    "message preferences": (
        lambda s, a, w, n: save_preferences(s, a, w.clinic_id, PreferencesForm(digest_hour=n)),
        lambda s, w: preferences(s, w.clinic_id).digest_hour,
    ),
}


@pytest.mark.parametrize("form", SAVES)
def test_two_first_saves_of_a_setting_at_once_both_go_through(db, world, form):
    """Before, the second's save failed with a database error; now it waits and is the one kept
    (the later save wins, as with any save)."""
    save, read = SAVES[form]
    second_while_first_is_open(
        db,
        lambda session: save(session, world.owner, world, 3),
        lambda session: save(session, world.owner, world, 5),
    )
    with db.read() as session:
        assert read(session, world) == 5
