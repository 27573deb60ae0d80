"""Speed as the user feels it: real Chromium against `streamlit run` on the bench database.

    python -m bench.browser [--appointments 1000000] [--repeat 5] [--sessions 1,10,20]

1. Pages: signed in as the owner, for every page the time from the click on its sidebar link
   to the page settled — Streamlit's script state back to notRunning, no stale element
   left, every Plotly chart drawn (its SVG present) — as the median of `--repeat`
   visits, each right after a visit to the empty page (bench/browser_empty.py, a title only,
   registered like any page), whose own time is measured the same way in the same run. The
   first (cold-cache) visit of each page is printed beside it. Target: every page ≤ 2× empty.
2. Concurrency: 1, 10 and 20 browser sessions at once, each signing in as the manager and
   working queue → decide (declines one request, a different row per session) → calendar →
   today; p50 and p95 per step, errors (a timeout, an exception box or "Something went
   wrong"; a domain refusal such as a request already decided is counted apart), and the
   server's resident memory per extra session. Targets: 0 errors at 20 sessions on one SQLite
   process, p95 page switch ≤ 3× the single session's p95, < 15 MB per extra session.

The database is bench.run's (generated when missing; `--appointments 20000` for a quick try).
Results go to bench/browser-results.json. Timings are never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from playwright.async_api import Page, async_playwright

from bench.run import DATA, ROOT, SECRET, ensure_sqlite, log
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, StreamlitServer
from ui.navigation import PAGES

SETTLED = """(path) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (!location.pathname.endsWith('/' + path)) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  if (!document.querySelector('[data-testid="stMain"] h1')) return false;
  for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    if (!chart.querySelector('.main-svg')) return false;
  }
  return true;
}"""
ERRORS = '[data-testid="stException"]'
TIMEOUT_MS = 120_000
EMPTY = "bench-empty"


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the streamlit server), in MB."""
    total = 0
    for task in Path("/proc").iterdir():
        if not task.name.isdigit():
            continue
        try:
            status = (task / "status").read_text()
            stat = (task / "stat").read_text().split()
        except OSError:
            continue
        if int(task.name) != pid and int(stat[4]) != os.getpgid(pid):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


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
    shown = [p for p in PAGES if not p.hidden and p.path.exists()]
    results = {}
    empty: list[float] = []
    for spec in shown:
        await click_page(page, "Empty page", EMPTY)
        first = await click_page(page, spec.title, spec.url_path)  # cold caches: first visit
        times = []
        for _ in range(repeat):
            empty.append(await click_page(page, "Empty page", EMPTY))
            times.append(await click_page(page, spec.title, spec.url_path))
        results[spec.url_path] = {"first_ms": first, "median_ms": _median(times)}
        log(f"  {spec.url_path:28} first {first:7.0f} ms · median {_median(times):7.0f} ms")
    await context.close()
    base = _median(empty)
    for figures in results.values():
        figures["ratio"] = figures["median_ms"] / base
    return {"empty_ms": base, "pages": results}


STEPS = ("sign_in", "queue", "decide", "calendar", "today")


async def one_session(browser, url: str, index: int, out: dict) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    try:
        started = time.perf_counter()
        await sign_in(page, url, "manager")
        out["sign_in"].append((time.perf_counter() - started) * 1000)
        out["queue"].append(await click_page(page, "Request queue", "queue"))
        table = page.locator('[data-testid="stDataFrame"]').first
        started = time.perf_counter()
        await table.wait_for(timeout=TIMEOUT_MS)
        # decide: the row this session works on (a canvas grid: click its row by position)
        box = await table.bounding_box()
        if box:
            await page.mouse.click(box["x"] + 20, box["y"] + 35 * (1 + index % 8) + 17)
            await page.wait_for_function(SETTLED, arg="queue", timeout=TIMEOUT_MS, polling=20)
        choice = page.locator('[class*="st-key-queue_requests_"][class*="_choice"]').first
        await choice.get_by_role("radio", name="Decline", exact=True).click()
        reason = page.locator('[class*="st-key-queue_requests_"][class*="_reason"] input').first
        await reason.fill(f"Bench session {index}")
        await page.locator('[class*="st-key-queue_requests_"][class*="_go"] button').first.click()
        await page.locator('[data-testid="stAlert"]').first.wait_for(timeout=TIMEOUT_MS)
        await page.wait_for_function(SETTLED, arg="queue", timeout=TIMEOUT_MS, polling=20)
        out["decide"].append((time.perf_counter() - started) * 1000)
        if await page.get_by_text("Declined.").count() == 0:
            out["refused"] += 1  # e.g. another session decided that request first
        out["calendar"].append(await click_page(page, "Calendar", "calendar"))
        out["today"].append(await click_page(page, "Today", "today"))
        if (
            await page.locator(ERRORS).count()
            or await page.get_by_text("Something went wrong").count()
        ):
            out["errors"] += 1
    except Exception as error:  # a timeout or a crash: an error of this run, reported
        out["errors"] += 1
        out["messages"].append(f"session {index}: {type(error).__name__}: {str(error)[:200]}")
    finally:
        out["contexts"].append(context)


async def concurrency_run(browser, url: str, sessions: int, server_pid: int) -> dict:
    out = {s: [] for s in STEPS} | {"errors": 0, "refused": 0, "messages": [], "contexts": []}
    before = rss_mb(server_pid)
    await asyncio.gather(*(one_session(browser, url, i, out) for i in range(sessions)))
    after = rss_mb(server_pid)  # every session still open
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
        "rss_before_mb": before,
        "rss_after_mb": after,
        "mb_per_session": (after - before) / sessions,
    }
    return result


async def measure(url: str, repeat: int, sessions: list[int], pid: int, pages: bool) -> dict:
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
            out["concurrency"][n] = await concurrency_run(browser, url, n, pid)
        await browser.close()
    return out


def report(out: dict) -> None:
    if "pages" in out:
        base = out["pages"]["empty_ms"]
        print(f"\nempty page: {base:.0f} ms (median, sidebar click to settled)")
        print(f"{'page':28} {'first':>8} {'median':>8} {'× empty':>8}  target ≤ 2×")
        for name, f in out["pages"]["pages"].items():
            mark = "ok" if f["ratio"] <= 2 else "MISS"
            print(f"{name:28} {f['first_ms']:8.0f} {f['median_ms']:8.0f} {f['ratio']:8.2f}  {mark}")
    single = out["concurrency"].get(1, {}).get("page_switch_p95_ms")
    print(f"\n{'sessions':>8} {'step':10} {'p50 ms':>8} {'p95 ms':>8}")
    for n, r in out["concurrency"].items():
        for step in STEPS:
            print(f"{n:>8} {step:10} {r[step]['p50_ms']:8.0f} {r[step]['p95_ms']:8.0f}")
        ratio = r["page_switch_p95_ms"] / single if single else float("nan")
        print(
            f"{n:>8} errors {r['errors']} (refused by the domain: {r['refused']}), page-switch "
            f"p95 {r['page_switch_p95_ms']:.0f} ms = {ratio:.2f}× single, "
            f"{r['mb_per_session']:.1f} MB per session"
        )
        for message in r["messages"]:
            print(f"         {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.browser", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--responses", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5, help="visits per page")
    parser.add_argument("--sessions", default="1,10,20", help="concurrent sessions per round")
    parser.add_argument("--no-pages", action="store_true", help="the concurrency run only")
    args = parser.parse_args(argv)
    n = args.appointments
    path = DATA / ("bench.db" if n == 1_000_000 else f"bench-{n}.db")
    url = ensure_sqlite(path, n, args.patients or max(1000, n // 5), args.responses or n * 3 // 10)
    env = {
        "DATABASE_URL": url,
        "CLINICDESK_SECRET_KEY": SECRET,
        "CLINICDESK_DATA_DIR": str(DATA),
        "CLINICDESK_BASE_URL": "http://127.0.0.1",
    }
    sessions = [int(s) for s in args.sessions.split(",") if s]
    launcher = ROOT / ".bench-browser-main.py"  # see bench/browser_serve.py
    launcher.write_text(
        'import runpy\n\nrunpy.run_path("bench/browser_app.py", run_name="__main__")\n'
    )
    try:
        with StreamlitServer("bench/browser_serve.py", cwd=ROOT, env=env) as server:
            pid = server._process.pid  # noqa: SLF001  (the server's own process, for its memory)
            out = asyncio.run(measure(server.url, args.repeat, sessions, pid, not args.no_pages))
    finally:
        launcher.unlink(missing_ok=True)
    out["appointments"] = n
    report(out)
    (ROOT / "bench" / "browser-results.json").write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
