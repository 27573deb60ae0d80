"""Retrain now on PostgreSQL: two servers' clicks at once start one fit."""

import contextlib
import threading

from core.analytics import risk_jobs
from core.kernel.config import Settings
from core.kernel.errors import Conflict
from db.engine import Database
from tests.unit.test_risk import history, own_fits  # noqa: F401 (a fixture)


def test_two_clicks_at_once_start_one_fit(db, world, tmp_path, own_fits, monkeypatch):  # noqa: F811
    """Both read the claim before either has written it (the first claim ever, so no row to
    lock yet; with it in place the second waits on the first's lock): one starts the fit, the
    other is told a fit is running."""
    history(db, world, patients=30, days=40)
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path)
    monkeypatch.setattr(risk_jobs, "TRAIN", ("-c", "import time; time.sleep(60)"))
    both_there = threading.Barrier(2, timeout=3)
    real = risk_jobs._running  # noqa: SLF001

    def running(*args):  # each click, having read the claim, waits for the other to read it
        with contextlib.suppress(threading.BrokenBarrierError):  # it waits on this one's lock
            both_there.wait()
        return real(*args)

    monkeypatch.setattr(risk_jobs, "_running", running)
    servers = [Database(db.url), Database(db.url)]
    assert all(server.reachable() for server in servers)  # connected before either clicks
    started, refused, errors = [], [], []

    def click(database):
        try:
            started.append(risk_jobs.train_now(database.write, world.manager, settings))
        except Conflict as refusal:
            refused.append(str(refusal))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=click, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for server in servers:
        server.dispose()
    assert errors == []
    assert len(started) == 1 and risk_jobs.training()
    [said] = refused
    assert said.startswith("A fit is already running (started at ")
