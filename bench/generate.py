"""A deterministic large group practice for the benchmark.

`python -m bench.generate [--appointments 1000000 --patients 200000 --responses 300000
 --out bench/data/bench.db | --url postgresql+psycopg://…]`

The database is migrated with Alembic and seeded with the demo data first (users owner /
manager / staff with the demo passwords, two clinics, services, policies), then gets two more
clinics, enough providers for the volume (Mon–Fri 08:00–18:00, about 15 visits a day each),
and over five years (4.9 years back, 8 weeks ahead):

- appointments packed into each provider's day without overlaps (services of 15–60 minutes,
  random gaps), about 90% of the possible visits kept;
- lead time: 15% same-day, the rest log-normal around a week (cap 180 days);
- past: completed ~78%, no-show ~5% with an SMS reminder and ~9% without, cancelled ~13%
  (notice a random share of the lead time, late when under 24 h), declined 1%;
- future: scheduled ~88%, cancelled ~8%, tentative 2%, open requests 2% (day + time of day);
- 40% booked online, decided 0–2 days after the request;
- patients chosen with a skew (some come often), SMS reminders for 60%;
- points balances (100, some 80, 60 or 0), each opened by its ledger entry as core opens one;
- fees for late cancellations and no-shows (10% waived), open change requests on future visits;
- survey responses on completed visits (NPS 0–10, rating 1–5, some comments);
- about a third of the visits of a package's first service that have room for the rest of it
  before the provider's next visit are booked as the package (its services listed in order,
  their answers recording it), drawn from a generator of their own: every other value is as
  it was before the generator booked packages.

Everything is computed with numpy from one seed and bulk-inserted as plain rows, so the same
arguments always give the same data. SQLite: about 2–4 minutes for 1M appointments here.
"""

from __future__ import annotations

import argparse
import math
import time
from array import array
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import column, func, select, table, text

from core import demo
from core.kernel.config import load_settings
from core.kernel.text import search_text
from core.practice.packages import package_services
from core.startup import open_database
from db.models import Clinic, Package, Provider, Service, Setting, WorkingHours

SEED = 8_2026
GENERATED_KEY = "bench_generated"  # a setting: what the generator left (see bench.run.reset)
YEARS_BACK_DAYS = 1_790
DAYS_AHEAD = 56
DAY_START, DAY_END = 8 * 60, 18 * 60
VISITS_PER_DAY = 14.8
PACKAGE_SHARE = 0.3  # of the visits of a package's first service with room for the rest
KEEP = 0.9
CHUNK = 20_000
EXTRA_CLINICS = [
    ("Riverside Medical Centre", "Europe/London"),
    ("Parkview Practice", "Europe/Berlin"),
]
FIRST = demo.FIRST
LAST = demo.LAST


def providers_for(appointments: int) -> int:
    """Providers needed for `appointments` over the full five years."""
    working_days = (YEARS_BACK_DAYS + DAYS_AHEAD) * 5 / 7
    return max(4, math.ceil(appointments / (working_days * VISITS_PER_DAY * KEEP)))


def days_back_for(appointments: int, providers: int) -> int:
    """History length (days before today) that holds `appointments` at the usual density."""
    days = math.ceil(appointments / (providers * VISITS_PER_DAY * KEEP) * 7 / 5) + 7
    return min(YEARS_BACK_DAYS, max(days - DAYS_AHEAD, 28))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _plain(name: str, *names: str):
    """A lightweight table: no type processing, values go to the driver as they are."""
    return table(name, *[column(n) for n in names])


def generate(
    url: str,
    *,
    appointments: int = 1_000_000,
    patients: int = 200_000,
    responses: int = 300_000,
    seed: int = SEED,
    today: date | None = None,
    providers: int | None = None,
    demo_seeded: bool = False,
) -> dict[str, Any]:
    """Fill an empty database. `providers` fixes the number of providers; the history then
    covers as many days as the volume needs at the usual density (the benchmark's small
    database uses the large one's providers, so a week or a queue looks the same in both and
    only the tables' size differs). `demo_seeded`: the database holds the demo practice,
    seeded on `today` and nothing else yet (a copy of one seeded database, such as the test
    runs' template), and is filled from there instead of seeding the demo again."""
    started = time.perf_counter()
    settings = load_settings(
        {
            "DATABASE_URL": url,
            "CLINICDESK_SECRET_KEY": "b" * 40,
            "CLINICDESK_DATA_DIR": str(Path(url.split("///")[-1]).parent),
        }
    )
    database = open_database(settings, migrate=True)
    today = today or datetime.now(UTC).date()
    now = datetime.now(UTC).replace(tzinfo=None)
    with database.write() as session:
        has_data = bool(session.scalar(select(func.count()).select_from(Clinic)))
        if not demo_seeded:
            if has_data:
                raise SystemExit("The target database has data already; give an empty one.")
            demo.seed_demo(session, today=today)
        elif not has_data or session.get(Setting, GENERATED_KEY) is not None:
            raise SystemExit("Give a database holding the demo practice only.")
        clinics = list(session.scalars(select(Clinic).order_by(Clinic.id)))
        for name, tz in EXTRA_CLINICS:
            clinic = Clinic(name=name, timezone=tz)
            session.add(clinic)
            clinics.append(clinic)
        session.flush()
        services = list(session.scalars(select(Service).order_by(Service.id)))
        n_providers = providers or providers_for(appointments)
        days_back = days_back_for(appointments, n_providers)
        providers = []
        for i in range(n_providers):
            clinic = clinics[i % len(clinics)]
            provider = Provider(
                name=f"Dr Bench {i + 1:03d}", title="Dr", email=f"bench{i + 1}@clinicdesk.example"
            )
            for weekday in range(5):
                provider.working_hours.append(
                    WorkingHours(
                        clinic_id=clinic.id, weekday=weekday, starts=dt_time(8), ends=dt_time(18)
                    )
                )
            session.add(provider)
            providers.append((provider, clinic))
        session.flush()
        provider_ids = np.array([p.id for p, _ in providers])
        provider_clinic = np.array([i % len(clinics) for i in range(n_providers)])
        clinic_ids = np.array([c.id for c in clinics])
        clinic_tz = [c.timezone for c in clinics]
        service_ids = np.array([s.id for s in services])
        durations = np.array([s.duration_minutes for s in services])
        index = {s.id: i for i, s in enumerate(services)}
        packages = []  # (package id, its services' indexes in booking order)
        for package_id in session.scalars(select(Package.id).order_by(Package.id)):
            members = package_services(session, package_id)[1]
            packages.append((package_id, [index[m.id] for m in members]))
        first_patient = (
            session.scalar(select(func.max(text("id"))).select_from(text("patients"))) + 1
        )
        first_appointment = (
            session.scalar(select(func.max(text("id"))).select_from(text("appointments"))) + 1
        )
    log(f"demo data and {n_providers} providers in {len(clinics)} clinics")

    rng = np.random.default_rng(seed)
    dialect = database.dialect
    with database.engine.begin() as conn:
        if dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size=-200000")
        t = time.perf_counter()
        _patients(conn, rng, patients, first_patient, now, dialect)
        log(f"{patients:,} patients in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        done = _appointments(
            conn,
            rng,
            appointments,
            today,
            days_back,
            now,
            dialect,
            provider_ids,
            provider_clinic,
            clinic_ids,
            clinic_tz,
            service_ids,
            durations,
            first_patient,
            patients,
            first_appointment,
            packages,
            np.random.default_rng(seed + 1),
        )
        log(f"{appointments:,} appointments in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        _responses(conn, rng, responses, done, dialect)
        log(f"{responses:,} survey responses in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    with database.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    log(f"ANALYZE in {time.perf_counter() - t:.1f} s")
    _build_rollups(database)
    _mark_generated(database)
    database.dispose()
    seconds = time.perf_counter() - started
    log(f"done in {seconds:.0f} s")
    return {
        "appointments": appointments,
        "patients": patients,
        "responses": responses,
        "providers": n_providers,
        "clinics": len(clinics),
        "seconds": round(seconds, 1),
        "bench_provider_id": int(provider_ids[0]),
    }


def _mark_generated(database) -> None:
    """Note the last audit event the generator wrote: the benches' resets (bench.run) drop
    the events their own runs add after it."""
    from sqlalchemy import func, select

    from db.models import AuditEvent

    with database.write() as session:
        last = session.scalar(select(func.max(AuditEvent.id))) or 0
        session.add(Setting(key=GENERATED_KEY, value={"audit_event_id": last}))


def _build_rollups(database) -> None:
    """Maintained roll-ups, as the periodic job would have left them (when the module exists)."""
    try:
        from core.analytics import cancellation_rollups
    except ImportError:
        return
    t = time.perf_counter()
    with database.write() as session:
        cancellation_rollups.rebuild(session)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    log(f"cancellation roll-ups built in {time.perf_counter() - t:.1f} s")


def _stamp(values: np.ndarray, dialect: str) -> list:
    """datetime64[s] → what the driver stores for UTCDateTime (naive UTC)."""
    if dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME text format, so comparisons hold
        out = np.datetime_as_string(values.astype("datetime64[us]"), unit="us")
        out = np.char.replace(out, "T", " ")
        result = out.tolist()
        mask = np.isnat(values)
        if mask.any():
            for i in np.flatnonzero(mask):
                result[i] = None
        return result
    return [None if v is None else v for v in values.astype("datetime64[us]").tolist()]


def _insert(conn, tbl, columns: dict[str, list], total: int) -> None:
    names = list(columns)
    if conn.dialect.name == "postgresql":  # COPY: ten times faster than INSERTs
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {tbl.name} ({', '.join(names)}) FROM STDIN") as copy:
            for values in zip(*(columns[n] for n in names), strict=True):
                copy.write_row(values)
        if "id" in names:  # explicit ids: move the sequence past them
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{tbl.name}', 'id'), "
                f"(SELECT max(id) FROM {tbl.name}))"
            )
        return
    for start in range(0, total, CHUNK):
        rows = [
            dict(zip(names, values, strict=True))
            for values in zip(*(columns[n][start : start + CHUNK] for n in names), strict=True)
        ]
        conn.execute(tbl.insert(), rows)


def _patients(conn, rng, n, first_id, now, dialect) -> None:
    ids = np.arange(first_id, first_id + n)
    first = rng.integers(0, len(FIRST), n)
    last = rng.integers(0, len(LAST), n)
    has_email = rng.random(n) > 0.08
    birth = np.datetime64("1935-01-01") + rng.integers(0, 365 * 85, n).astype("timedelta64[D]")
    created = np.datetime64(now.replace(microsecond=0)) - rng.integers(
        0, 5 * 365 * 86400, n
    ).astype("timedelta64[s]")
    first_names = [FIRST[i] for i in first]
    last_names = [LAST[i] for i in last]
    emails = [
        f"{f}.{s}.{i}@patients.example".lower() if e else None
        for f, s, i, e in zip(first_names, last_names, ids, has_email, strict=True)
    ]
    cols = {
        "id": ids.tolist(),
        "external_ref": [f"BENCH-{i}" for i in ids],
        "first_name": first_names,
        "last_name": last_names,
        "date_of_birth": birth.astype("datetime64[D]").astype(str).tolist()
        if dialect == "sqlite"
        else birth.astype("datetime64[D]").tolist(),
        "email": emails,
        "phone": [f"07{i:09d}" for i in ids],
        "search_text": [
            search_text(f, s, e) for f, s, e in zip(first_names, last_names, emails, strict=True)
        ],
        "consent_email": (has_email & (rng.random(n) > 0.1)).tolist(),
        "consent_sms": (rng.random(n) > 0.3).tolist(),
        "consent_marketing": (rng.random(n) > 0.7).tolist(),
        "reminders_enabled": (rng.random(n) > 0.15).tolist(),
        # drawn here, in the order of the columns, so the same seed still gives the same data
        "points_balance": (balance := rng.choice([100, 100, 100, 100, 80, 60, 0], n)).tolist(),
        "card_on_file": (rng.random(n) > 0.5).tolist(),
        "created_at": _stamp(created, dialect),
        "updated_at": _stamp(created, dialect),
    }
    _insert(conn, _plain("patients", *cols), cols, n)
    # each balance opens with its ledger entry, as core.payments.points.open_account writes it
    # (none for a zero balance), so every patient's ledger adds up to their balance
    opened = balance > 0
    ledger = {
        "patient_id": ids[opened].tolist(),
        "kind": ["points_opening"] * int(opened.sum()),
        "amount_cents": [0] * int(opened.sum()),
        "points": balance[opened].tolist(),
        "created_at": _stamp(created[opened], dialect),
    }
    _insert(conn, _plain("ledger_entries", *ledger), ledger, int(opened.sum()))


def _slots(rng, n_providers, durations, n_days, weekday0):
    """Every provider's packed days: (provider index, day index, start minute, service index)."""
    prov, day, minute, service = array("i"), array("i"), array("h"), array("b")
    gaps = np.array([0, 0, 0, 15, 30])
    weights = np.array([14, 12, 8, 4, 3, 4, 6, 5, 6, 5], dtype=float)[: len(durations)]
    weights /= weights.sum()
    pool_n = 4_000_000
    svc_pool = rng.choice(len(durations), pool_n, p=weights).tolist()  # lists: fast to index
    gap_pool = gaps[rng.integers(0, len(gaps), pool_n)].tolist()
    k = 0
    for d in range(n_days):
        if (weekday0 + d) % 7 >= 5:
            continue
        for p in range(n_providers):
            cursor = DAY_START
            while True:
                if k >= pool_n:
                    k = 0
                cursor += gap_pool[k]
                s = svc_pool[k]
                k += 1
                finish = cursor + durations[s]
                if finish > DAY_END:
                    break
                prov.append(p)
                day.append(d)
                minute.append(cursor)
                service.append(s)
                cursor = finish
    return (
        np.frombuffer(prov, dtype=np.int32),
        np.frombuffer(day, dtype=np.int32),
        np.frombuffer(minute, dtype=np.int16),
        np.frombuffer(service, dtype=np.int8),
    )


def _appointments(
    conn,
    rng,
    n,
    today,
    days_back,
    now,
    dialect,
    provider_ids,
    provider_clinic,
    clinic_ids,
    clinic_tz,
    service_ids,
    durations,
    first_patient,
    n_patients,
    first_id,
    packages,
    bundle_rng,
):
    first_day = today - timedelta(days=days_back)
    n_days = days_back + DAYS_AHEAD
    prov, day, minute, service = _slots(
        rng, len(provider_ids), durations.tolist(), n_days, first_day.weekday()
    )
    if len(prov) < n:
        raise SystemExit(f"only {len(prov):,} slots for {n:,} appointments")
    keep = np.sort(rng.choice(len(prov), n, replace=False))
    prov, day, minute, service = prov[keep], day[keep], minute[keep].astype(np.int64), service[keep]
    clinic_index = provider_clinic[prov]
    local = (np.datetime64(first_day) + day.astype("timedelta64[D]")).astype("datetime64[s]") + (
        minute * 60
    ).astype("timedelta64[s]")
    start = np.empty(n, dtype="datetime64[s]")
    for c, tz in enumerate(clinic_tz):
        mask = clinic_index == c
        if mask.any():
            converted = (
                pd.DatetimeIndex(local[mask])
                .tz_localize(tz, ambiguous=False, nonexistent="shift_forward")
                .tz_convert("UTC")
                .tz_localize(None)
            )
            start[mask] = converted.values.astype("datetime64[s]")
    package, dur = _packages(bundle_rng, packages, prov, day, minute, service, durations)
    end = start + (dur * 60).astype("timedelta64[s]")
    now64 = np.datetime64(now.replace(microsecond=0), "s")
    past = start < now64

    # lead time: 15% same day (booked 0.5–6 h before), the rest log-normal around a week
    same_day = rng.random(n) < 0.15
    lead = np.where(
        same_day,
        rng.uniform(0.5, 6, n) * 3600,
        np.minimum(rng.lognormal(math.log(7), 0.9, n), 180) * 86400 + rng.uniform(0, 86400, n),
    )
    lead = lead.astype(np.int64)
    booked = start - lead.astype("timedelta64[s]")
    # a visit weeks ahead booked "in the future" was booked in the last days instead
    recent = now64 - rng.integers(600, 3 * 86400, n).astype("timedelta64[s]")
    booked = np.where(booked > now64, np.minimum(recent, start), booked)
    lead = (start - booked).astype(np.int64)
    sms = rng.random(n) < 0.6
    online = rng.random(n) < 0.4
    u = rng.random(n)
    no_show_p = np.where(sms, 0.05, 0.09)
    status = np.full(n, "completed", dtype=object)
    status[past & (u < no_show_p)] = "no_show"
    status[past & (u >= no_show_p) & (u < no_show_p + 0.13)] = "cancelled"
    status[past & (u >= no_show_p + 0.13) & (u < no_show_p + 0.14)] = "declined"
    fu = rng.random(n)
    status[~past] = "scheduled"
    status[~past & (fu < 0.08)] = "cancelled"
    status[~past & (fu >= 0.08) & (fu < 0.10)] = "tentative"
    requested = ~past & (fu >= 0.10) & (fu < 0.12)
    status[requested] = "requested"
    cancelled = status == "cancelled"
    notice = (lead * rng.random(n)).astype(np.int64)
    cancelled_at = np.where(
        cancelled, start - notice.astype("timedelta64[s]"), np.datetime64("NaT")
    )
    cancelled_at = np.where(cancelled & (cancelled_at > now64), now64, cancelled_at)
    late = cancelled & (notice < 86400)
    completed = status == "completed"
    decided = np.where(
        online & (status != "requested"),
        booked + rng.integers(600, 2 * 86400, n).astype("timedelta64[s]"),
        np.datetime64("NaT"),
    )
    decided = np.where(decided > start, start, decided)
    decided = np.where(decided > now64, now64, decided)
    # patients: a skew, so some come often
    patient = first_patient + np.floor(n_patients * rng.random(n) ** 1.6).astype(np.int64)
    reasons = np.array(demo.REASONS, dtype=object)[rng.integers(0, len(demo.REASONS), n)]
    tod = np.array(["early_morning", "morning", "afternoon", "evening"], dtype=object)[
        np.clip((minute - DAY_START) // 150, 0, 3)
    ]
    nat = np.datetime64("NaT")
    start_col = np.where(requested, nat, start)
    end_col = np.where(requested, nat, end)
    day_col = (np.datetime64(first_day) + day.astype("timedelta64[D]")).astype("datetime64[D]")
    ids = np.arange(first_id, first_id + n)
    created = booked
    cols: dict[str, list] = {
        "id": ids.tolist(),
        "clinic_id": clinic_ids[clinic_index].tolist(),
        "provider_id": np.where(requested, -1, provider_ids[prov]).tolist(),
        "patient_id": patient.tolist(),
        "service_id": service_ids[service].tolist(),
        "package_id": [None if p < 0 else p for p in package.tolist()],
        "kind": ["appointment"] * n,
        "mode": ["in_person"] * n,
        "status": status.tolist(),
        "start_at": _stamp(start_col, dialect),
        "end_at": _stamp(end_col, dialect),
        "requested_day": [
            d if r else None
            for d, r in zip(
                day_col.astype(str).tolist() if dialect == "sqlite" else day_col.tolist(),
                requested,
                strict=True,
            )
        ],
        "time_of_day": np.where(requested, tod, None).tolist(),
        "source": np.where(online, "online", "staff").tolist(),
        "notes": [""] * n,
        "allow_double_booking": [False] * n,
        "outside_hours_override": [False] * n,
        "sms_reminder": sms.tolist(),
        "booked_at": _stamp(booked, dialect),
        "decided_at": _stamp(decided, dialect),
        "checked_in_at": _stamp(
            np.where(completed, start - np.timedelta64(300, "s"), nat), dialect
        ),
        "completed_at": _stamp(np.where(completed, end, nat), dialect),
        "cancelled_at": _stamp(cancelled_at, dialect),
        "cancelled_by": np.where(
            cancelled, np.where(rng.random(n) < 0.8, "patient", "Max Manager"), None
        ).tolist(),
        "cancel_reason": np.where(cancelled, reasons, None).tolist(),
        "decline_reason": np.where(status == "declined", "No suitable slot", None).tolist(),
        "late_cancellation": late.tolist(),
        "reschedule_count": (rng.random(n) < 0.05).astype(int).tolist(),
        "feedback_status": ["none"] * n,
        "created_at": _stamp(created, dialect),
        "updated_at": _stamp(np.where(cancelled, cancelled_at, created), dialect),
        "version": [1] * n,
    }
    cols["provider_id"] = [None if p == -1 else p for p in cols["provider_id"]]
    _insert(conn, _plain("appointments", *cols), cols, n)
    packaged = np.flatnonzero(package >= 0)
    listed: dict[str, list] = {"appointment_id": [], "service_id": [], "position": []}
    services_of = dict(packages)
    for i in packaged.tolist():  # a package's services, in order (as booking lists them)
        members = services_of[int(package[i])]
        listed["appointment_id"] += [int(ids[i])] * len(members)
        listed["service_id"] += [int(service_ids[m]) for m in members]
        listed["position"] += list(range(len(members)))
    _insert(conn, _plain("appointment_services", *listed), listed, len(listed["appointment_id"]))

    # fees: late cancellations and no-shows, 10% waived
    fee_rows = np.flatnonzero(late | (status == "no_show"))
    m = len(fee_rows)
    waived = rng.random(m) < 0.1
    is_late = late[fee_rows]
    fee_time = np.where(is_late, cancelled_at[fee_rows], end[fee_rows])
    fee_cols = {
        "patient_id": patient[fee_rows].tolist(),
        "appointment_id": ids[fee_rows].tolist(),
        "kind": np.where(is_late, "late_cancel_fee", "no_show_fee").tolist(),
        "amount_cents": np.where(is_late, 2500, 4000).tolist(),
        "points": np.where(is_late, 20, 0).tolist(),
        "created_at": _stamp(fee_time, dialect),
        "waived_at": _stamp(np.where(waived, fee_time + np.timedelta64(86400, "s"), nat), dialect),
        "waive_reason": np.where(waived, "Goodwill", None).tolist(),
    }
    _insert(conn, _plain("ledger_entries", *fee_cols), fee_cols, m)

    # a few open change requests on future visits
    future_booked = np.flatnonzero(~past & (status == "scheduled"))
    picked = future_booked[rng.random(len(future_booked)) < 0.01]
    kinds = np.where(rng.random(len(picked)) < 0.5, "reschedule", "cancel")
    cr_cols = {
        "appointment_id": ids[picked].tolist(),
        "kind": kinds.tolist(),
        "status": ["open"] * len(picked),
        "original_start_at": _stamp(start[picked], dialect),
        "requested_start_at": _stamp(
            np.where(kinds == "reschedule", start[picked] + np.timedelta64(7 * 86400, "s"), nat),
            dialect,
        ),
        "reason": np.array(demo.REASONS, dtype=object)[
            rng.integers(0, len(demo.REASONS), len(picked))
        ].tolist(),
        "inside_window": [False] * len(picked),
        "fee_cents": [0] * len(picked),
        "points": [0] * len(picked),
        "created_at": _stamp(
            np.full(len(picked), now64)
            - rng.integers(600, 3 * 86400, len(picked)).astype("timedelta64[s]"),
            dialect,
        ),
        "version": [1] * len(picked),
    }
    _insert(conn, _plain("change_requests", *cr_cols), cr_cols, len(picked))
    done = np.flatnonzero(completed)
    return {
        "ids": ids[done],
        "end": end[done],
        "clinic": clinic_ids[clinic_index[done]],
        "provider": provider_ids[prov[done]],
        "service": service_ids[service[done]],
        "package": package[done],
    }


def _packages(rng, packages, prov, day, minute, service, durations):
    """Which visits are booked as a package (its id, -1 for none) and every visit's minutes:
    PACKAGE_SHARE of those of a package's first service whose package ends before the
    provider's next visit (or the day's end) is booked as it."""
    n = len(prov)
    following = np.full(n, DAY_END, dtype=np.int64)  # the provider's next visit that day
    same = (prov[1:] == prov[:-1]) & (day[1:] == day[:-1])
    following[:-1] = np.where(same, minute[1:], DAY_END)
    package = np.full(n, -1, dtype=np.int64)
    dur = durations[service].astype(np.int64)
    draw = rng.random(n)
    for package_id, members in packages:
        length = int(durations[members].sum())
        fits = (service == members[0]) & (minute + length <= following) & (package < 0)
        chosen = fits & (draw < PACKAGE_SHARE)
        package[chosen], dur[chosen] = package_id, length
    return package, dur


def _responses(conn, rng, n, done, dialect) -> None:
    if n > len(done["ids"]):
        raise SystemExit(f"only {len(done['ids']):,} completed visits for {n:,} responses")
    pick = np.sort(rng.choice(len(done["ids"]), n, replace=False))
    nps = np.clip(np.round(rng.normal(8.3, 1.9, n)), 0, 10).astype(int)
    rating = np.clip(np.round(1 + nps * 0.4 + rng.normal(0, 0.5, n)), 1, 5).astype(int)
    comments = np.array(demo.COMMENTS, dtype=object)[rng.integers(0, len(demo.COMMENTS), n)]
    submitted = done["end"][pick] + rng.integers(3600, 5 * 86400, n).astype("timedelta64[s]")
    cols = {
        "appointment_id": done["ids"][pick].tolist(),
        "clinic_id": done["clinic"][pick].tolist(),
        "provider_id": done["provider"][pick].tolist(),
        "service_id": done["service"][pick].tolist(),
        "package_id": [None if p < 0 else p for p in done["package"][pick].tolist()],
        "submitted_at": _stamp(submitted, dialect),
        "nps": nps.tolist(),
        "rating": rating.tolist(),
        "comment": np.where(rng.random(n) < 0.35, comments, "").tolist(),
        "source": ["link"] * n,
    }
    _insert(conn, _plain("survey_responses", *cols), cols, n)
    conn.execute(
        text(
            "UPDATE appointments SET feedback_status = 'collected' WHERE id IN "
            "(SELECT appointment_id FROM survey_responses WHERE source = 'link' "
            "AND appointment_id IS NOT NULL)"
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--responses", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--providers", type=int, help="default: what five years need")
    parser.add_argument("--out", default="bench/data/bench.db", help="SQLite file (replaced)")
    parser.add_argument("--url", help="a database URL instead of --out (must be empty)")
    args = parser.parse_args(argv)
    url = args.url
    if not url:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    result = generate(
        url,
        appointments=args.appointments,
        patients=args.patients,
        responses=args.responses,
        seed=args.seed,
        providers=args.providers,
    )
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
