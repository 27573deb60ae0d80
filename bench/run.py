"""`make bench` / `python -m bench.run`: ClinicDesk at the size of a large group practice.

Prints one table and writes bench/results.json (git-ignored). Generates the databases first when
they are missing (bench/data/bench.db with 1M appointments; bench/data/small-100000-57.db with
100k at the same providers and density, a shorter history, for the memory comparison). The
same figures are measured on a throwaway PostgreSQL too when its server binaries are installed
(`make postgres`; `--no-pg` to skip, `--pg` to insist).

Figures
- page: each page's server-side AppTest run (app.py, signed in as the owner), median of
  `--page-repeat` runs (default 11: a page's run is ~15 ms, so its median needs more samples
  than the core figures) with Streamlit's data cache cleared before each (a first visit), beside the
  empty page's runs interleaved with them in the same process (the app's shell — page config,
  database check, signed-in session, navigation — around a page with only a title; a bare
  one-line Streamlit script's run is printed too); target ≤ 4×.
- memory: tracemalloc peak of one page run at 100k and at 1M appointments; target: the 1M
  peak within 1.5× the 100k peak (memory does not grow with the table).
- core: calendar week (core.scheduling.calendar.window_events, ≤ 30 ms), slot suggestions
  (core.scheduling.availability.suggest_slots for a provider with years of bookings, ≤ 50 ms), queue
  (core.requests.queue counts + first page), analytics (compute_figures, the rates by provider
  and service from the roll-ups and from the appointments, survey dashboard).
- naive: the same cancellation figures computed by reading the appointments table into pandas
  and grouping there, against compute_figures; target ≥ 15× slower.
- import: the Kaggle no-show file (110,527 rows) into a fresh SQLite; target ≤ 60 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import risk
from core.analytics import breakdowns, cancellation_rollups, surveys
from core.analytics import cancellations as analytics
from core.kernel import accounts
from core.requests import queue
from core.scheduling import availability, calendar

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results.json"
SECRET = "b" * 40
TARGETS = {
    "page_ratio": 4.0,
    "naive_ratio": 15.0,
    "calendar_ms": 30.0,
    "slots_ms": 50.0,
    "import_s": 60.0,
    "memory_growth": 1.5,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median_ms(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# ---------------------------------------------------------------- databases


def ensure_sqlite(
    path: Path, appointments: int, patients: int, responses: int, providers: int | None = None
) -> str:
    if path.exists() and not schema_matches(f"sqlite:///{path}"):
        log(f"{path} was generated with an older schema: generating it again")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    if not path.exists():
        from bench import generate

        log(f"generating {path} ({appointments:,} appointments) — first run only")
        generate.main(
            [
                "--appointments",
                str(appointments),
                "--patients",
                str(patients),
                "--responses",
                str(responses),
                "--out",
                str(path),
            ]
            + (["--providers", str(providers)] if providers else [])
        )
    create_missing_indexes(f"sqlite:///{path}")
    return f"sqlite:///{path}"


def create_missing_indexes(url: str) -> None:
    """Indexes added to the models after the file was generated (the pre-release migration is
    regenerated in place, so the file claims to be at head without them): created here, and
    analysed as bench.generate analyses the rest (an index without statistics beside ones with
    them misleads SQLite's planner)."""
    from sqlalchemy import create_engine, inspect

    from db.models import Base

    engine = create_engine(url)
    try:
        found = inspect(engine)
        for name, tbl in Base.metadata.tables.items():
            have = {i["name"] for i in found.get_indexes(name)}
            for index in tbl.indexes:
                if index.name not in have:
                    log(f"creating the missing index {index.name} in {url}")
                    index.create(engine)
                    if engine.dialect.name == "sqlite":
                        with engine.begin() as conn:
                            conn.exec_driver_sql(f'ANALYZE "{index.name}"')
    finally:
        engine.dispose()


def schema_matches(url: str) -> bool:
    """Whether the database has every table and column of the current models (the pre-release
    migration is regenerated in place, so a stale file can claim to be at head)."""
    from sqlalchemy import create_engine, inspect

    from db.models import Base

    engine = create_engine(url)
    try:
        found = inspect(engine)
        tables = set(found.get_table_names())
        for name, tbl in Base.metadata.tables.items():
            if name not in tables:
                return False
            if {c.name for c in tbl.columns} - {c["name"] for c in found.get_columns(name)}:
                return False
        return True
    finally:
        engine.dispose()


def open_db(url: str):
    from core.kernel.config import load_settings
    from core.startup import open_database

    return open_database(
        load_settings(
            {"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": SECRET, "CLINICDESK_DATA_DIR": str(DATA)}
        ),
        migrate=True,
    )


def reset(url: str) -> tuple[int, int]:
    """Put the database back as the generator left it where earlier bench runs changed it, so
    every run finds the same queue and audit log: the requests their sessions declined
    ("Bench session …") go back in the queue (through the ORM, so their days are marked for
    the cancellation roll-ups' refresh), and the audit events written since the generator's
    last are dropped (a bench fixture, not a practice's log). Returns both counts."""
    from sqlalchemy import delete, select

    from bench.generate import GENERATED_KEY
    from db.models import Appointment, AppointmentStatus, AuditEvent, Setting

    S = AppointmentStatus
    database = open_db(url)
    try:
        with database.write() as session:
            declined = session.scalars(
                select(Appointment).where(
                    Appointment.status == S.DECLINED,
                    Appointment.decline_reason.like("Bench session %"),
                )
            ).all()
            for appointment in declined:
                appointment.status = S.REQUESTED if appointment.start_at is None else S.TENTATIVE
                appointment.decided_at = appointment.decline_reason = None
            mark = session.get(Setting, GENERATED_KEY)
            dropped = 0
            if mark is not None:  # databases generated before the mark keep their events
                last = mark.value["audit_event_id"]
                dropped = session.execute(delete(AuditEvent).where(AuditEvent.id > last)).rowcount
    finally:
        database.dispose()
    return len(declined), dropped


def owner_actor(database):
    from sqlalchemy import select

    from db.models import User

    with database.read() as session:
        return accounts.actor_of(session.scalar(select(User).where(User.username == "owner")))


# ---------------------------------------------------------------- core queries


def core_figures(url: str, repeat: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from db.models import Appointment, AppointmentStatus, Clinic, Provider

    database = open_db(url)
    owner = owner_actor(database)
    out: dict[str, Any] = {}
    with database.read() as session:
        busiest = session.execute(
            select(Appointment.clinic_id, func.count())
            .group_by(Appointment.clinic_id)
            .order_by(func.count().desc())
            .limit(1)
        ).first()[0]
        tz = session.get(Clinic, busiest).timezone
        provider_id = session.scalar(
            select(Provider.id).where(Provider.name.like("Dr Bench%")).order_by(Provider.id)
        )
        span = session.execute(
            select(func.min(Appointment.start_at), func.max(Appointment.start_at))
        ).one()
        bookings = session.scalar(
            select(func.count()).where(
                Appointment.provider_id == provider_id,
                Appointment.status.in_([AppointmentStatus.SCHEDULED, AppointmentStatus.COMPLETED]),
            )
        )
    out["context"] = {
        "clinic_id": busiest,
        "provider_id": provider_id,
        "provider_bookings": bookings,
        "first": str(span[0]),
        "last": str(span[1]),
    }
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday() + 7)  # last week: a full one

    from core.kernel.clock import local_to_utc

    start = local_to_utc(monday, datetime.min.time(), tz)
    end = local_to_utc(monday + timedelta(days=7), datetime.min.time(), tz)

    def week():
        with database.read() as session:
            return calendar.window_events(session, owner, clinic_id=busiest, start=start, end=end)

    events = len(week())
    out["calendar_week_ms"] = median_ms(week, repeat * 4)
    out["calendar_week_events"] = events
    clinic_of = _provider_clinic(database, provider_id)

    def slots():
        with database.read() as session:
            return availability.suggest_slots(
                session,
                clinic_id=clinic_of,
                duration_minutes=30,
                day=today + timedelta(days=1),
                provider_id=provider_id,
            )

    out["slot_suggestions"] = len(slots())
    out["slots_ms"] = median_ms(slots, repeat * 4)

    def work():
        with database.read() as session:
            counts = queue.queue_counts(session, owner)
            for kind in queue.QueueKind:
                queue.list_queue(session, owner, kind)
            return counts

    out["queue_counts"] = {str(k): v for k, v in work().items()}
    out["queue_ms"] = median_ms(work, repeat * 2)
    filters = analytics.AnalyticsFilters(start=today - timedelta(days=365), end=today)

    def ours():
        with database.read() as session:
            return analytics.compute_figures(session, owner, filters)

    # changes that the jobs loop has not yet folded into the roll-ups (the browser runs' declines,
    # say) send their days to the appointments: timed once as it is, then refreshed as the jobs
    # loop would within its interval, so the figure below is the steady state
    with database.read() as session:
        lagging = not cancellation_rollups.is_fresh(session)
    if lagging:
        out["analytics_lagging_ms"] = median_ms(ours, 1)
        with database.write() as session:
            out["rollup_days_refreshed"] = cancellation_rollups.refresh(session)
    result = ours()
    out["analytics_ms"] = median_ms(ours, repeat)
    naive_result, naive_ms = naive_analytics(database, filters, tz)
    out["naive_analytics_ms"] = naive_ms
    out["naive_ratio"] = naive_ms / out["analytics_ms"]
    out["analytics_check"] = {
        "ours_no_shows": result.totals.no_shows,
        "naive_no_shows": naive_result["no_shows"],
        "ours_booked": result.totals.booked,
        "naive_booked": naive_result["booked"],
    }

    def rates(use_rollups: bool):
        def run():
            with database.read() as session:
                for group in breakdowns.GROUPS:
                    breakdowns.rates_by(session, owner, filters, group, use_rollups=use_rollups)

        return run

    out["rates_ms"] = median_ms(rates(True), repeat)
    out["rates_direct_ms"] = median_ms(rates(False), repeat)
    with database.read() as session:  # all clinics, each on its own days, as the page asks
        zones = tuple((i, tz) for i, tz in session.execute(select(Clinic.id, Clinic.timezone)))
    f = surveys.filter_for_days(today - timedelta(days=365), today, tz, None, zones)

    def dashboard():
        with database.read() as session:
            return surveys.get_dashboard(session, owner, f)

    out["survey_ms"] = median_ms(dashboard, repeat)
    database.dispose()
    return out


def _provider_clinic(database, provider_id: int) -> int:
    from sqlalchemy import select

    from db.models import WorkingHours

    with database.read() as session:
        return session.scalar(
            select(WorkingHours.clinic_id).where(WorkingHours.provider_id == provider_id)
        )


def naive_analytics(database, filters, tz: str) -> tuple[dict[str, Any], float]:
    """The naive way: the whole appointments table into pandas, filtered and grouped there."""
    import pandas as pd

    def run() -> dict[str, Any]:
        with database.engine.connect() as conn:
            frame = pd.read_sql_table("appointments", conn)
        start = pd.to_datetime(frame["start_at"], utc=True).dt.tz_convert(tz)
        day = start.dt.date
        frame = frame[
            (day >= filters.start) & (day <= filters.end) & (frame["kind"] == "appointment")
        ]
        start = start.loc[frame.index]
        booked = frame["status"].isin(
            ["scheduled", "checked_in", "completed", "no_show", "cancelled"]
        )
        frame = frame.assign(
            booked=booked,
            no_show=frame["status"] == "no_show",
            attended=frame["status"].isin(["completed", "checked_in"]),
            cancelled=frame["status"] == "cancelled",
            late=(frame["status"] == "cancelled") & frame["late_cancellation"].astype(bool),
            weekday=start.dt.day_of_week,
            hour=start.dt.hour,
            lead=(
                pd.to_datetime(frame["start_at"], utc=True)
                - pd.to_datetime(frame["booked_at"], utc=True)
            ).dt.total_seconds()
            // 86400,
        )
        sums = ["booked", "no_show", "attended", "cancelled", "late"]
        frame.groupby("weekday")[sums].sum()
        frame.groupby("hour")[sums].sum()
        frame.groupby(["weekday", "hour"])[sums].sum()
        frame.groupby("sms_reminder")[sums].sum()
        frame.groupby(pd.cut(frame["lead"], [-1, 1, 3, 7, 14, 30, 10**6]), observed=False)[
            sums
        ].sum()
        frame.groupby(start.dt.tz_localize(None).dt.to_period("W"))[sums].sum()
        return {"booked": int(frame["booked"].sum()), "no_shows": int(frame["no_show"].sum())}

    started = time.perf_counter()
    result = run()
    first = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    run()
    second = (time.perf_counter() - started) * 1000
    return result, min(first, second)


# ---------------------------------------------------------------- pages


BARE_PAGE = "import streamlit as st\n\nst.title('Empty page')\n"
# the app's shell (page config, database check, signed-in session, navigation) around a page
# with nothing on it: what every page pays before its own work; the ratios are against this
EMPTY_PAGE = """
import streamlit as st

from core.kernel import accounts
from ui import auth
from ui.context import database

st.set_page_config(page_title="ClinicDesk", layout="wide")
with database().read() as session:
    accounts.count_users(session)
actor = auth.current_actor()
assert actor is not None, "not signed in"


def empty():
    st.title("Empty page")


st.navigation([st.Page(empty, title="Empty", default=True)], position="sidebar").run()
"""


def page_specs() -> list[Any]:
    from ui.navigation import PAGES

    return [p for p in PAGES if p.path.exists() and not p.hidden]


def signed_in_session(url: str) -> int:
    from sqlalchemy import select

    from db.models import User

    database = open_db(url)
    with database.write() as session:
        user = session.scalar(select(User).where(User.username == "owner"))
        session_id = accounts.start_session(session, user).session_id
    database.dispose()
    return session_id


def page_runs(url: str, repeat: int, memory: bool) -> dict[str, Any]:
    """Cold (cache cleared) runs of each page through app.py, and the empty page's runs."""
    import streamlit as st
    from streamlit.logger import set_log_level
    from streamlit.testing.v1 import AppTest

    os.environ.update(
        {"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": SECRET, "CLINICDESK_DATA_DIR": str(DATA)}
    )
    os.chdir(ROOT)
    database = open_db(url)  # the roll-ups caught up, as the jobs loop keeps them in a practice
    cancellation_rollups.refresh_job(database, None)
    database.dispose()
    session_id = signed_in_session(url)
    results: dict[str, Any] = {}

    def timed(at) -> float:
        st.cache_data.clear()
        gc.collect()
        started = time.perf_counter()
        at.run()
        return (time.perf_counter() - started) * 1000

    bare = AppTest.from_string(BARE_PAGE, default_timeout=60)
    bare.run()
    # bare-mode runs warn each time (no runtime); the first run set the level from the config
    set_log_level("error")
    results["bare_ms"] = statistics.median(timed(bare) for _ in range(repeat * 2))
    empty = AppTest.from_string(EMPTY_PAGE, default_timeout=60)
    empty.session_state["auth_session_id"] = session_id
    empty.run()
    if empty.exception:
        raise RuntimeError(f"the empty page failed: {empty.exception[0].value}")
    results["empty_ms"] = statistics.median(timed(empty) for _ in range(repeat * 2))
    for spec in page_specs():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.session_state["auth_session_id"] = session_id
        at.run()
        at.switch_page(str(spec.path.relative_to(ROOT)))
        at.run()  # the first visit: also warms the engine, imports and cache_resource
        errors = [getattr(e, "message", "") or e.value for e in at.exception]
        errors += [e.value for e in at.error]
        runs, baseline = [], []
        for _ in range(repeat):  # interleaved with the empty page: the same machine load
            baseline.append(timed(empty))
            runs.append(timed(at))
        entry: dict[str, Any] = {
            "median_ms": statistics.median(runs),
            "empty_ms": statistics.median(baseline),
            "ratio": statistics.median(runs) / statistics.median(baseline),
            "errors": [str(e)[:200] for e in errors],
        }
        if memory:
            st.cache_data.clear()
            gc.collect()
            tracemalloc.start()
            at.run()
            entry["peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
        results[spec.file] = entry
        log(
            f"  {spec.file}: {entry['median_ms']:.0f} ms, {entry['ratio']:.1f}× the empty page"
            + (f" (ERROR: {errors[0]})" if errors else "")
        )
    return results


# ---------------------------------------------------------------- import throughput


def import_throughput() -> dict[str, Any]:
    from core.interchange import imports
    from core.kernel.authz import SYSTEM

    if not imports.NOSHOW_FILE.exists():
        log("skipping import: the no-show file is not at " + str(imports.NOSHOW_FILE))
        return {}
    with tempfile.TemporaryDirectory() as folder:
        database = open_db(f"sqlite:///{folder}/import.db")
        started = time.perf_counter()
        report = imports.import_appointments(
            database.write, SYSTEM, imports.NOSHOW_FILE, imports.KAGGLE_NOSHOW
        )
        seconds = time.perf_counter() - started
        database.dispose()
    return {
        "rows": report.rows_read,
        "created": report.created,
        "seconds": seconds,
        "rows_per_s": report.rows_read / seconds,
    }


# ---------------------------------------------------------------- report


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "MISS")


def table(results: dict[str, Any]) -> str:
    lines = [f"ClinicDesk benchmark — {results['when']} — {results['machine']}", ""]
    for backend, r in results["backends"].items():
        core = r.get("core", {})
        ctx = core.get("context", {})
        lines.append(f"== {backend}: {r['size']} ==")
        lines.append(f"{'figure':<44}{'value':>14}  {'target':>12}  result")

        def row(name, value, target="", ok=None, unit=""):
            text = "skipped" if value is None else f"{value:,.1f}{unit}"
            lines.append(
                f"{name:<44}{text:>14}  {target:>12}  "
                f"{verdict(ok) if value is not None else 'skipped'}"
            )

        cal = core.get("calendar_week_ms")
        row(
            f"calendar week ({core.get('calendar_week_events', 0)} events)",
            cal,
            "≤ 30 ms",
            None if cal is None else cal <= TARGETS["calendar_ms"],
            " ms",
        )
        sl = core.get("slots_ms")
        row(
            f"slot suggestions ({ctx.get('provider_bookings', 0):,} bookings)",
            sl,
            "≤ 50 ms",
            None if sl is None else sl <= TARGETS["slots_ms"],
            " ms",
        )
        row("queue (counts + every kind's first page)", core.get("queue_ms"), "", None, " ms")
        row("cancellation analytics, 1 year", core.get("analytics_ms"), "", None, " ms")
        if "analytics_lagging_ms" in core:
            days = core.get("rollup_days_refreshed")
            row(
                f"  before the roll-ups' refresh ({days} days)",
                core["analytics_lagging_ms"],
                "",
                None,
                " ms",
            )
        row("  naive: table into pandas", core.get("naive_analytics_ms"), "", None, " ms")
        nr = core.get("naive_ratio")
        row(
            "  naive ÷ ours", nr, "≥ 15×", None if nr is None else nr >= TARGETS["naive_ratio"], "×"
        )
        row("rates by provider and service, 1 year", core.get("rates_ms"), "", None, " ms")
        row("  from the appointments", core.get("rates_direct_ms"), "", None, " ms")
        row("survey analytics dashboard, 1 year", core.get("survey_ms"), "", None, " ms")
        pages = r.get("pages", {})
        empty = pages.get("empty_ms")
        if empty:
            row("bare Streamlit page run", pages.get("bare_ms"), "", None, " ms")
            row("app's empty page run (baseline)", empty, "", None, " ms")
        for name, p in pages.items():
            if not isinstance(p, dict):
                continue
            ratio = p["ratio"]
            label = f"page {name}" + (" (ERROR)" if p["errors"] else "")
            lines.append(
                f"{label:<44}{p['median_ms']:>11,.0f} ms  {'≤ 4× empty':>12}  "
                f"{ratio:5.1f}× of {p['empty_ms']:.0f} ms "
                f"{verdict(ratio <= TARGETS['page_ratio'] and not p['errors'])}"
            )
        for name, m in r.get("memory", {}).items():
            lines.append(
                f"{'memory ' + name:<44}{m['large_mb']:>10,.1f} MB  {'≤ 1.5× small':>12}  "
                f"{m['growth']:5.2f}× of {m['small_mb']:.1f} MB "
                f"{verdict(m['growth'] <= TARGETS['memory_growth'])}"
                f"  (run {m['small_ms']:,.0f} → {m['large_ms']:,.0f} ms)"
            )
        lines.append("")
    imp = results.get("import")
    if imp:
        lines.append(
            f"import of the no-show file: {imp['rows']:,} rows in {imp['seconds']:.1f} s "
            f"({imp['rows_per_s']:,.0f} rows/s), "
            f"target ≤ 60 s: {verdict(imp['seconds'] <= TARGETS['import_s'])}"
        )
    fit = results.get("risk_training")
    if fit:
        lines.append(
            f"no-show model fitted on {fit['rows']:,} visits in {fit['seconds']:.0f} s, "
            f"peak {fit['peak_mib']:,.0f} MiB (traced), time-split ROC-AUC {fit['roc_auc']:.3f} "
            f"(lead time alone {fit['baseline_roc_auc']:.3f}); target: fits 2 CPUs and 24 GiB"
        )
    return "\n".join(lines)


def run_backend(url: str, small_url: str | None, args, label: str) -> dict[str, Any]:
    log(f"{label}: core queries")
    out: dict[str, Any] = {"core": core_figures(url, args.repeat)}
    log(f"{label}: pages")
    large = page_runs(url, args.page_repeat, memory=small_url is not None)
    out["pages"] = large
    if small_url is not None:
        log(f"{label}: pages at the small size (memory)")
        small = page_runs(small_url, 1, memory=True)
        out["memory"] = {
            name: {
                "small_mb": small[name]["peak_mb"],
                "large_mb": p["peak_mb"],
                "growth": p["peak_mb"] / max(small[name]["peak_mb"], 0.01),
                "small_ms": small[name]["median_ms"],
                "large_ms": p["median_ms"],
            }
            for name, p in large.items()
            if isinstance(p, dict) and name in small
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--responses", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per core figure")
    parser.add_argument("--page-repeat", type=int, default=11, help="runs per page")
    parser.add_argument(
        "--pg",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also on a throwaway PostgreSQL (default: when its binaries exist)",
    )
    parser.add_argument("--no-pages", action="store_true", help="core figures only")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    size = (
        f"{args.appointments:,} appointments, {args.patients:,} patients, "
        f"{args.responses:,} responses"
    )
    big = DATA / ("bench.db" if args.appointments == 1_000_000 else f"bench-{args.appointments}.db")
    url = ensure_sqlite(big, args.appointments, args.patients, args.responses)
    small_n = max(args.appointments // 10, 10_000)
    from bench.generate import providers_for

    providers = providers_for(args.appointments)  # the same providers: same density per week
    small_url = ensure_sqlite(
        DATA / f"small-{small_n}-{providers}.db",
        small_n,
        args.patients // 10,
        args.responses // 10,
        providers,
    )
    for database_url in (url, small_url):
        back, dropped = reset(database_url)
        log(f"reset: {back} requests back in the queue, {dropped} audit events dropped")
    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "targets": TARGETS,
        "backends": {},
    }
    backend = {"size": size}
    if args.no_pages:
        backend["core"] = core_figures(url, args.repeat)
    else:
        backend |= run_backend(url, small_url, args, "SQLite")
    results["backends"]["SQLite"] = backend
    log("import throughput")
    results["import"] = import_throughput()
    results["risk_training"] = risk.risk_training(url)
    if args.pg is None:
        try:
            from tests.support.postgres import postgres_available
        except ImportError:
            args.pg = False
        else:
            args.pg = postgres_available()
        if not args.pg:
            log("PostgreSQL: no server binaries here (make postgres), so SQLite only")
    if args.pg:
        results["backends"]["PostgreSQL"] = postgres(args, size)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    print(f"\n(wrote {RESULTS.relative_to(ROOT)})")
    return 0


def postgres(args, size: str) -> dict[str, Any]:
    try:
        from tests.support.postgres import TempPostgres, postgres_available
    except ImportError as exc:
        log(f"skipping PostgreSQL: {exc}")
        return {"size": size, "skipped": str(exc)}
    if not postgres_available():
        log("skipping PostgreSQL: no server binaries (run scripts/ensure-postgres-binaries)")
        return {"size": size, "skipped": "no PostgreSQL binaries"}
    from bench import generate

    with TempPostgres() as server:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        url = server.create_database(name)
        log(f"PostgreSQL: generating {args.appointments:,} appointments")
        generate.generate(
            url, appointments=args.appointments, patients=args.patients, responses=args.responses
        )
        small = server.create_database(name + "_small")
        generate.generate(
            small,
            appointments=max(args.appointments // 10, 10_000),
            patients=args.patients // 10,
            responses=args.responses // 10,
            providers=generate.providers_for(args.appointments),
        )
        if args.no_pages:
            return {"size": size, "core": core_figures(url, args.repeat)}
        return {"size": size} | run_backend(url, small, args, "PostgreSQL")


if __name__ == "__main__":
    raise SystemExit(main())
