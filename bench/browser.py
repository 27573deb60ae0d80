"""Speed as the user feels it: real Chromium against `streamlit run` on the bench database.

    python -m bench.browser [--appointments 1000000] [--repeat 5] [--sessions 1,10,20]
    python -m bench.browser --scale-out [--appointments 20000] [--sessions 20]

1. Pages: signed in as the owner, for every page the time from the click on its sidebar link
   to the page settled — Streamlit's script state back to notRunning, no stale element
   left, no element still loading its code (a skeleton), every chart drawn (ECharts no longer
   busy, its canvas present) — as the median of
   `--repeat` visits, each right after a visit to the empty page (bench/browser_empty.py, a
   title only, registered like any page), whose own time is measured the same way in the same
   run. The first (cold-cache) visit of each page is printed beside it. Target: every page
   ≤ 2× empty. Then, measured the same way, Streamlit alone drawing the elements of the
   Cancellations and Surveys dashboards, the Waitlist and the Calendar with fixed values
   (bench/browser_floor*.py): the part of those pages' time that is Streamlit's (and
   FullCalendar's), whatever ClinicDesk does.
2. Concurrency: 1, 10 and 20 browser sessions at once, each signing in as the manager and
   working queue → decide (declines one request, a different row per session) → calendar →
   today; p50 and p95 per step, errors (a timeout, an exception box or "Something went
   wrong"; a domain refusal such as a request already decided is counted apart), and the
   server's resident memory per extra session. Targets: 0 errors at 20 sessions on one SQLite
   process, p95 page switch ≤ 3× the single session's p95, < 15 MB per extra session.

3. Scale-out (`--scale-out`, instead of 1 and 2): the concurrency run through nginx
   (deploy/nginx.conf) in front of two processes on one throwaway PostgreSQL, both running the
   jobs loop against a loopback SMTP server (bench/scaleout.py): besides the figures of 2, how
   the sessions spread over the processes, whether each browser stayed on one, and whether
   every email queued (the declines' among them) reached the SMTP server exactly once.
   Targets: 0 errors at 20 sessions, no browser on two processes, no message twice or lost.

The database is bench.run's (generated when missing; `--appointments 20000` for a quick try).
Results go to bench/browser-results.json (a scale-out run under "scale_out"). Timings are never
asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from playwright.async_api import Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import func, select

from bench import floors, scaleout
from bench.run import DATA, ROOT, SECRET, ensure_sqlite, log, reset
from core.kernel.clock import local_days_bounds, local_today
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import Appointment, Clinic
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, StreamlitServer
from ui.navigation import PAGES

SETTLED = """(path) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (!location.pathname.endsWith('/' + path)) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  if (!document.querySelector('[data-testid="stMain"] h1')) return false;
  // an element whose code is still loading (a first chart, say) stands in as a skeleton
  if (document.querySelector('[data-testid="stMain"] [data-testid="stSkeleton"]')) return false;
  // a component (the calendar) has drawn once its frame's root holds what it draws
  for (const frame of document.querySelectorAll('[data-testid="stCustomComponentV1"]')) {
    const root = frame.contentDocument && frame.contentDocument.getElementById('root');
    if (!root || !root.firstElementChild) return false;
  }
  for (const chart of document.querySelectorAll('[data-testid="stEChartsChart"]')) {
    if (chart.getAttribute('aria-busy') !== 'false' || !chart.querySelector('canvas')) return false;
  }
  return true;
}"""
ERRORS = '[data-testid="stException"]'
PANEL = '[data-testid="stMain"] h3'  # the queue's decision panel: "#id · patient"
TOLD = "is no longer waiting"  # the panel's word when another desk decided its request
TIMEOUT_MS = 120_000
EMPTY = floors.url_path(floors.EMPTY_FILE)
# the floors by path: their sidebar title and the page each copies
FLOORS = {floors.url_path(file): (title, copied) for file, title, copied in floors.FLOORS}
FAILURES = DATA / "browser-failures"  # a screenshot of each failed session (git-ignored data)


def _processes(pids: list[int]) -> Iterator[tuple[Path, list[str], bool]]:
    """Every process: its /proc folder, its stat fields after the command name, and whether it
    is one of the servers' (`pids` and their process groups)."""
    groups = {os.getpgid(pid) for pid in pids}
    for task in Path("/proc").iterdir():
        if not task.name.isdigit():
            continue
        try:
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield task, stat, int(task.name) in pids or int(stat[2]) in groups


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the servers' processes and their children, in MB."""
    total = 0
    for task, _, server in _processes(pids):
        with contextlib.suppress(OSError):
            status = (task / "status").read_text() if server else ""
            total += sum(int(v.split()[1]) for v in status.splitlines() if v.startswith("VmRSS:"))
    return total / 1024


def cpu_seconds(pids: list[int]) -> dict[tuple[str, int], float]:
    """CPU seconds used so far by each process of the servers (and their children) and of the
    benchmark's Chromium: the browsers run on the server's CPUs here, which a practice's front
    desk does not, so each round reports how the CPU time was shared (`cpu_used`)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for task, stat, server in _processes(pids):
        seconds = (int(stat[11]) + int(stat[12])) / tick  # utime and stime
        if server:
            used["server", int(task.name)] = seconds
        else:
            with contextlib.suppress(OSError):
                if b"chromium" in (task / "cmdline").read_bytes():  # the browser and its helpers
                    used["browsers", int(task.name)] = seconds
    return used


def cpu_used(before: dict, after: dict, who: str) -> float:
    """CPU seconds used between the two readings by the processes alive at the second (a
    round's browser processes live until its contexts close, after the reading)."""
    return sum(s - before.get(key, 0) for key, s in after.items() if key[0] == who)


async def sign_in(page: Page, url: str, user: str) -> None:
    await page.goto(url, timeout=TIMEOUT_MS)  # 10–20 page loads at once: not the 30 s default
    await page.get_by_label("Username").fill(user)
    await page.get_by_label("Password", exact=True).fill(f"{user}-demo-pass")
    async with page.expect_response("**/_clinicdesk/session"):
        await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("Signed in as").wait_for(timeout=TIMEOUT_MS)
    await page.wait_for_function(SETTLED, arg="today", timeout=TIMEOUT_MS)


async def click_page(page: Page, title: str, path: str) -> float:
    """ms from the click on the sidebar link to the page settled."""
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
    started = time.perf_counter()
    await link.click()
    await page.wait_for_function(SETTLED, arg=path, timeout=TIMEOUT_MS, polling=20)
    return (time.perf_counter() - started) * 1000


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def pages_run(browser, url: str, repeat: int) -> dict:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await sign_in(page, url, "owner")
    shown = [(p.title, p.url_path) for p in PAGES if not p.hidden and p.path.exists()]
    results = {}
    empty: list[float] = []
    floor_pages = [(title, path) for path, (title, _) in FLOORS.items()]
    for title, path in [*shown, *floor_pages]:
        await click_page(page, "Empty page", EMPTY)
        first = await click_page(page, title, path)  # cold caches: first visit
        times, errors = [], await page.locator(ERRORS).count()
        for _ in range(repeat):
            empty.append(await click_page(page, "Empty page", EMPTY))
            times.append(await click_page(page, title, path))
            errors += await page.locator(ERRORS).count()  # a failed page settles fast
        results[path] = {"first_ms": first, "median_ms": _median(times), "errors": errors}
        log(f"  {path:28} first {first:7.0f} ms · median {_median(times):7.0f} ms")
    await context.close()
    base = _median(empty)
    for figures in results.values():
        figures["ratio"] = figures["median_ms"] / base
    measured_floors = {path: results.pop(path) for path in FLOORS}
    return {"empty_ms": base, "pages": results, "floors": measured_floors}


STEPS = ("sign_in", "queue", "decide", "calendar", "today")


class PanelMoved(Exception):
    """The queue's decision panel shows another request than the one being decided."""


async def click_for(page: Page, target, expected, heading: str, tries: int = 3) -> int:
    """Click `target` on the queue until `expected` shows; how many clicks were lost. Under
    load a click can reach a widget that a pending rerun then replaces: when the page has
    settled without the outcome, the click is repeated (counted, never silently). PanelMoved
    when the panel now shows another request than `heading`."""
    for attempt in range(tries):
        with contextlib.suppress(PlaywrightTimeout):
            await target.click(timeout=30_000)
            if await shown_or_moved(page, expected, heading):
                return attempt
        await page.wait_for_function(SETTLED, arg="queue", timeout=TIMEOUT_MS, polling=20)
        if await expected.count():
            return attempt
        if await page.locator(PANEL).first.inner_text() != heading:
            raise PanelMoved(heading)
    raise PlaywrightTimeout(f"no {expected} after {tries} clicks on {target}")


async def shown_or_moved(page: Page, expected, heading: str) -> bool:
    """Wait until `expected` shows (True) or the decision panel shows another request than
    `heading` (False: the queue moved under the click, as a person at the desk sees at once)."""
    moved = page.locator(PANEL).first.filter(has_not_text=re.compile(f"^{re.escape(heading)}$"))
    await expected.first.or_(moved).first.wait_for(timeout=30_000)
    return await expected.count() > 0


async def decline_shown(page: Page, index: int, out: dict) -> bool:
    """Decline the request the panel shows. When another session decides it first, the panel
    says so ("no longer waiting") and shows the next request, which the session then declines,
    as a person would (counted); a panel that moves without saying why is an error. Three
    moves in a row are counted as a refusal (True)."""
    choice = page.locator('[class*="st-key-queue_requests_"][class*="_choice"]').first
    reason = page.locator('[class*="st-key-queue_requests_"][class*="_reason"] input').first
    decline = choice.get_by_text("Decline", exact=True)  # the radio's label: its input is hidden
    go = page.locator('[class*="st-key-queue_requests_"][class*="_go"] button').first
    outcome = page.get_by_text("Declined.").or_(page.get_by_test_id("stAlertContentError"))
    told = page.get_by_text(TOLD, exact=False)
    for _ in range(3):
        heading = await page.locator(PANEL).first.inner_text()
        try:
            out["clicks_again"] += await click_for(page, decline, reason, heading)
            await reason.fill(f"Bench session {index}")
            out["clicks_again"] += await click_for(page, go, outcome, heading)
            return False
        except PanelMoved:
            out["panel_moved"] += 1
            if not await told.count():
                raise
    out["refused"] += 1
    out["refusals"].append(f"session {index}: the queue moved under it three times, each told")
    return True


async def one_session(browser, url: str, index: int, out: dict) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)  # 20 sessions at once: not the 30 s default either
    page = await context.new_page()
    try:
        started = time.perf_counter()
        await sign_in(page, url, "manager")
        out["sign_in"].append((time.perf_counter() - started) * 1000)
        out["queue"].append(await click_page(page, "Request queue", "queue"))
        table = page.locator('[data-testid="stDataFrame"]').first
        started = time.perf_counter()
        await table.wait_for(timeout=TIMEOUT_MS)
        # decide: the row this session works on (a canvas grid: click its row by position,
        # once the grid has drawn it: its accessible cell exists; a click before is lost).
        # Never the first row, which the panel shows already: a click on another moves the
        # panel, so the bench sees the click's rerun, which can begin seconds later under load
        # (a late rerun on the first row moved the panel on under the decision)
        row = 1 + index % 8
        cells = table.locator(f'tr[aria-rowindex="{row + 2}"] > *')
        await cells.first.wait_for(state="attached")
        box = await table.bounding_box()
        if box:
            clicked = await cells.first.inner_text()  # the request's number
            await page.mouse.click(box["x"] + 20, box["y"] + 35 * (1 + row) + 17)
            # the panel shows the clicked request, or says it has gone; a click the grid lost
            # leaves the panel where it was, and its request is declined instead (a rerun
            # that swallows a later click is handled by click_for)
            picked = page.locator(PANEL).first.filter(has_text=re.compile(f"^#{clicked} ·"))
            told = page.get_by_text(TOLD, exact=False)
            with contextlib.suppress(PlaywrightTimeout):
                await picked.or_(told).first.wait_for(timeout=10_000)
            await page.wait_for_function(SETTLED, arg="queue", timeout=TIMEOUT_MS, polling=20)
        moved_away = await decline_shown(page, index, out)
        await page.wait_for_function(SETTLED, arg="queue", timeout=TIMEOUT_MS, polling=20)
        out["decide"].append((time.perf_counter() - started) * 1000)
        if not moved_away and await page.get_by_text("Declined.").count() == 0:
            refusal = await page.get_by_test_id("stAlertContentError").first.inner_text()
            if "Something went wrong" in refusal:
                raise RuntimeError(f"deciding: {refusal.strip()[:160]}")
            out["refused"] += 1  # e.g. another session decided that request first
            out["refusals"].append(f"session {index}: {refusal.strip()[:160]}")
        out["calendar"].append(await click_page(page, "Calendar", "calendar"))
        out["today"].append(await click_page(page, "Today", "today"))
        if (
            await page.locator(ERRORS).count()
            or await page.get_by_text("Something went wrong").count()
        ):
            out["errors"] += 1
    except Exception as error:  # a timeout or a crash: an error of this run, reported
        out["errors"] += 1
        shown = ""
        with contextlib.suppress(Exception):
            shown = await page.locator('[data-testid="stMain"]').inner_text(timeout=5000)
            FAILURES.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=FAILURES / f"session-{index}.png", timeout=10_000)
        shown = " ".join(shown.split())[:300]
        out["messages"].append(
            f"session {index}: {type(error).__name__}: {str(error)[:200]} · page: {shown}"
        )
    finally:
        out["contexts"].append(context)


async def concurrency_run(browser, url: str, sessions: int, pids: list[int]) -> dict:
    out = {s: [] for s in STEPS} | {"errors": 0, "refused": 0, "messages": [], "contexts": []}
    out["refusals"], out["clicks_again"], out["panel_moved"] = [], 0, 0
    before, cpu_before = rss_mb(pids), cpu_seconds(pids)
    await asyncio.gather(*(one_session(browser, url, i, out) for i in range(sessions)))
    after, cpu_after = rss_mb(pids), cpu_seconds(pids)  # every session still open
    for context in out.pop("contexts"):
        await context.close()
    result = {
        step: {"p50_ms": _median(out[step]), "p95_ms": _p95(out[step]), "n": len(out[step])}
        for step in STEPS
    }
    switches = out["queue"] + out["calendar"] + out["today"]
    result |= {
        "page_switch_p95_ms": _p95(switches),
        "errors": out["errors"],
        "refused": out["refused"],
        "messages": out["messages"][:5],
        "refusals": out["refusals"][:5],
        "clicks_again": out["clicks_again"],
        "panel_moved": out["panel_moved"],
        "rss_before_mb": before,
        "rss_after_mb": after,
        "mb_per_session": (after - before) / sessions,
        "server_cpu_s": cpu_used(cpu_before, cpu_after, "server"),
        "browser_cpu_s": cpu_used(cpu_before, cpu_after, "browsers"),
    }
    return result


async def measure(url: str, repeat: int, sessions: list[int], pids: list[int], pages: bool) -> dict:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        out: dict = {}
        if pages:
            log("pages (owner), sidebar click to settled:")
            out["pages"] = await pages_run(browser, url, repeat)
        out["concurrency"] = {}
        for n in sessions:
            log(f"{n} concurrent session(s): queue → decide → calendar → today")
            out["concurrency"][n] = await concurrency_run(browser, url, n, pids)
        await browser.close()
    return out


def calendar_day(url: str) -> dict:
    """What the Calendar page opened on: the first active clinic's visits on its today. On a day
    nobody works (a weekend in the bench database) it draws an empty day, cheaper than the
    weekday its floor copies: that run's Calendar figure is not comparable."""
    database = open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": SECRET}))
    with database.read() as session:
        first = select(Clinic).where(Clinic.active.is_(True)).order_by(Clinic.name)  # as the page
        clinic = session.scalars(first).first()
        day = local_today(clinic.timezone)
        start, end = local_days_bounds(day, day, clinic.timezone)
        visits = session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.clinic_id == clinic.id,
                Appointment.start_at >= start,
                Appointment.start_at < end,
            )
        )
    database.dispose()
    return {"clinic": clinic.name, "day": day.isoformat(), "visits": visits}


def report(out: dict) -> None:
    if "pages" in out:
        base = out["pages"]["empty_ms"]
        print(f"\nempty page: {base:.0f} ms (median, sidebar click to settled)")
        print(f"{'page':28} {'first':>8} {'median':>8} {'× empty':>8}  target ≤ 2×")
        for name, f in out["pages"]["pages"].items():
            mark = "ERROR" if f.get("errors") else "ok" if f["ratio"] <= 2 else "MISS"
            print(f"{name:28} {f['first_ms']:8.0f} {f['median_ms']:8.0f} {f['ratio']:8.2f}  {mark}")
        for path, floor in out["pages"]["floors"].items():
            copied = FLOORS[path][1]
            own = out["pages"]["pages"].get(copied)
            print(
                f"Streamlit alone, {copied}'s elements with fixed values: "
                f"{floor['median_ms']:.0f} ms, {floor['ratio']:.2f}× empty"
                + (f" (ERROR: {floor['errors']} exception boxes)" if floor["errors"] else "")
                + (f"; {copied} {own['median_ms'] / floor['median_ms']:.2f}× that" if own else "")
            )
        if day := out["pages"].get("calendar_day"):
            print(
                f"calendar opened on {day['day']} at {day['clinic']}: {day['visits']} visits"
                + (" (an empty day: not comparable with its floor's)" if not day["visits"] else "")
            )
    single = out["concurrency"].get(1, {}).get("page_switch_p95_ms")
    print(f"\n{'sessions':>8} {'step':10} {'p50 ms':>8} {'p95 ms':>8}")
    for n, r in out["concurrency"].items():
        for step in STEPS:
            print(f"{n:>8} {step:10} {r[step]['p50_ms']:8.0f} {r[step]['p95_ms']:8.0f}")
        ratio = r["page_switch_p95_ms"] / single if single else float("nan")
        print(
            f"{n:>8} errors {r['errors']} (refused by the domain: {r['refused']}), page-switch "
            f"p95 {r['page_switch_p95_ms']:.0f} ms = {ratio:.2f}× single, "
            f"{r['mb_per_session']:.1f} MB per session, clicks repeated "
            f"(lost to a pending rerun): {r.get('clicks_again', 0)}, decision forms reset "
            f"by the queue changing under them: {r.get('panel_moved', 0)}"
        )
        if "server_cpu_s" in r:
            print(
                f"{n:>8} CPU time: server {r['server_cpu_s']:.0f} s, the benchmark's browsers "
                f"{r['browser_cpu_s']:.0f} s, on the same {os.cpu_count()} CPUs"
            )
        for message in r["messages"]:
            print(f"         {message}")
        for refusal in r.get("refusals", []):
            print(f"         refused: {refusal}")


def report_scale_out(figures: dict) -> None:
    spread, mail = figures["spread"], figures["outbox"]
    sessions = ", ".join(f"{k} {v}" for k, v in spread["websocket_sessions"].items())
    print(
        f"\nscale-out: 2 processes ({figures['ports']}) on one PostgreSQL behind nginx "
        f"(deploy/nginx.conf), {figures['appointments']:,} appointments"
    )
    print(
        f"  sessions per process (WebSockets): {sessions or 'none'}; browsers {spread['routes']},"
        f" of them on both processes: {spread['routes_on_two_processes']}"
        f"  {'ok' if spread['routes_on_two_processes'] == 0 else 'MISS (not sticky)'}"
    )
    once = (
        mail["duplicates"] == 0
        and mail["sent_not_received"] == 0
        and mail["received_not_sent"] == 0
        and mail["wrong_recipient"] == 0
        and mail["queued_left"] == 0
    )
    print(
        f"  email outbox: {mail['email_rows']} queued, {mail['sent']} sent, {mail['failed']} "
        f"failed, {mail['queued_left']} still queued; SMTP received {mail['received']}: "
        f"duplicates {mail['duplicates']}, sent but not received {mail['sent_not_received']}, "
        f"received but not sent {mail['received_not_sent']}, "
        f"wrong recipient {mail['wrong_recipient']}  {'ok' if once else 'MISS'}"
    )
    print(
        f"  the sessions' declines queued {mail['declines_queued']} patient email(s), "
        f"{mail['declines_received_once']} received exactly once"
    )
    for line in figures["server_problems"]:
        print(f"  server: {line}")
    errors = {n: r["errors"] for n, r in figures["concurrency"].items()}
    print(f"  errors per round: {errors}  {'ok' if not any(errors.values()) else 'MISS'}")


def scale_out(args, sessions: list[int]) -> dict:
    """Two processes on a throwaway PostgreSQL behind nginx: the concurrency run through it."""
    from bench.scaleout import ScaleOut

    n = args.appointments
    patients, responses = args.patients or max(1000, n // 5), args.responses or n * 3 // 10
    with ScaleOut(n, patients, responses) as cluster:
        log("waiting for both processes to settle (start-up, the jobs loops' first round)")
        log(f"  settled after {cluster.wait_idle():.0f} s")
        after_id = cluster.last_notification_id()
        out = asyncio.run(measure(cluster.url, args.repeat, sessions, cluster.pids, False))
        log("waiting for both jobs loops to empty the email outbox")
        out["outbox"] = cluster.outbox(after_id)
        cluster.nginx.stop()  # its access log complete: every WebSocket closed
        out["spread"] = cluster.spread()
        out["server_problems"] = cluster.problems()
        out["ports"] = {name: port for name, port in zip("AB", cluster.ports, strict=True)}
    out["appointments"] = n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.browser", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--appointments", type=int, default=None, help="default 1,000,000; 20,000 with --scale-out"
    )
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--responses", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5, help="visits per page")
    parser.add_argument(
        "--sessions", default=None, help="concurrent sessions per round (1,10,20; 20 scaled out)"
    )
    parser.add_argument("--no-pages", action="store_true", help="the concurrency run only")
    parser.add_argument(
        "--desks",
        action="store_true",
        help="instead: one Chromium session a round, the others over the wire (bench/desks.py)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size with --desks")
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="two processes on a throwaway PostgreSQL behind nginx (deploy/nginx.conf)",
    )
    args = parser.parse_args(argv)
    results_path = ROOT / "bench" / "browser-results.json"
    try:
        saved = json.loads(results_path.read_text())
    except (OSError, ValueError):
        saved = {}
    if args.scale_out:
        args.appointments = args.appointments or 20_000
        sessions = [int(s) for s in (args.sessions or "20").split(",") if s]
        launcher = write_launcher()
        try:
            figures = scale_out(args, sessions)
        finally:
            launcher.unlink(missing_ok=True)
        report(figures)
        report_scale_out(figures)
        results_path.write_text(json.dumps(saved | {"scale_out": figures}, indent=2, default=str))
        return 0
    n = args.appointments = args.appointments or 1_000_000
    path = DATA / ("bench.db" if n == 1_000_000 else f"bench-{n}.db")
    url = ensure_sqlite(path, n, args.patients or max(1000, n // 5), args.responses or n * 3 // 10)
    back, dropped = reset(url)
    log(f"reset: {back} requests back in the queue, {dropped} audit events dropped")
    env = {
        "DATABASE_URL": url,
        "CLINICDESK_SECRET_KEY": SECRET,
        "CLINICDESK_DATA_DIR": str(DATA),
        "CLINICDESK_BASE_URL": "http://127.0.0.1",
        # a copy of the 1M database taken at night would be timed with the pages it ran beside
        "CLINICDESK_NIGHTLY_BACKUP": "off",
    }
    sessions = [int(s) for s in (args.sessions or "1,10,20").split(",") if s]
    launcher = write_launcher()
    try:
        with StreamlitServer("bench/browser_serve.py", cwd=ROOT, env=env) as server:
            pids = [server._process.pid]  # noqa: SLF001  (the server's own process, for its memory)
            # its jobs loop's first round (the roll-ups after the reset, the day's risk scoring)
            # runs before anything is measured: a click timed beside it would time the job
            log(f"server idle after {scaleout.wait_idle(pids):.0f} s (start-up, first jobs round)")
            if args.desks:
                from bench import desks

                figures = asyncio.run(desks.measure(server.url, sessions, args.rounds, pids))
            else:
                pages = not args.no_pages
                out = asyncio.run(measure(server.url, args.repeat, sessions, pids, pages))
    finally:
        launcher.unlink(missing_ok=True)
    if args.desks:
        desks.report(figures)
        results_path.write_text(json.dumps(saved | {"desks": figures}, indent=2, default=str))
        return 0
    out["appointments"] = n
    if "pages" in out:
        out["pages"]["calendar_day"] = calendar_day(url)
    report(out)
    for kept in ("scale_out", "desks"):  # the last scale-out and desks runs' figures stay
        if kept in saved:
            out[kept] = saved[kept]
    results_path.write_text(json.dumps(out, indent=2, default=str))
    return 0


def write_launcher() -> Path:
    """The one-line main script at the root that bench/browser_serve.py serves."""
    launcher = ROOT / ".bench-browser-main.py"
    launcher.write_text("from bench.browser_app import run\n\nrun()\n")
    return launcher


if __name__ == "__main__":
    sys.exit(main())
