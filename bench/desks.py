"""The concurrency run as twenty desks would feel it (python -m bench.browser --desks).

In a practice each of twenty staff has a browser on their own desk. On this 2-core machine the
plain concurrency run draws all twenty sessions' pages on the same two cores as the server, so
its page-switch times measure the load generator as much as the server (bench/README). Here
one session per round is real Chromium, measured as the user feels it, and every other session
is a bench.wire session: the same script (sign in → queue → decide → calendar → today), the
same messages and static files, the same server work, but nothing drawn on this machine. Each
wire session pauses after a step for as long as a browser took to draw it, measured in the same
run (the single browser's step time less a single wire session's), so the colleagues keep a
browser's pace instead of clicking faster than any browser could.

A wire session that has finished the script goes on opening queue, calendar and Today at the
same pace until the browser has finished too, so that the browser's every step (even one held
up by a click a rerun swallowed) is measured under the same load. A round is repeated `rounds`
times (new sign-ins each time) so that the browser's p95 is read over several page switches;
the one-session round (the browser alone) is the yardstick.
"""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import async_playwright

from bench import wire
from bench.browser import (
    STEPS,
    _median,
    _p95,
    cpu_seconds,
    cpu_used,
    log,
    one_session,
    rss_mb,
)
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS


def _empty() -> dict:
    out = {s: [] for s in STEPS} | {"errors": 0, "refused": 0, "messages": [], "contexts": []}
    out["refusals"], out["clicks_again"], out["panel_moved"] = [], 0, 0
    return out


async def wire_session(
    url: str, index: int, out: dict, pause: dict, keep: list, until: asyncio.Event
) -> None:
    """One colleague over the wire: the browser script's steps, each paused for a browser's
    drawing time afterwards, then queue → calendar → today again until `until` is set (the
    measured browser is done), so that every step of the browser is measured under the same
    load. Errors are counted as the browser's are."""
    session = None
    try:
        started = time.perf_counter()
        session, shown = await wire.sign_in(url, "manager")
        out["sign_in"].append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(pause["sign_in"])
        shown = await _step(session, out, "queue", pause)
        started = time.perf_counter()
        for _ in range(3):
            shown, said = await wire.decline(session, shown, index)
            if said != wire.MOVED:
                break
            out["panel_moved"] += 1
        else:
            said = "the queue moved under it three times, each told"
        out["decide"].append((time.perf_counter() - started) * 1000)
        _check(shown)
        if said != "Declined.":
            out["refused"] += 1
            out["refusals"].append(f"wire session {index}: {said}")
        await asyncio.sleep(pause["decide"])
        await _step(session, out, "calendar", pause)
        await _step(session, out, "today", pause)
        while not until.is_set():
            for page in ("queue", "calendar", "today"):
                await _step(session, out, page, pause)
    except Exception as error:  # a timeout, a closed socket, an error on the page: reported
        out["errors"] += 1
        out["messages"].append(f"wire session {index}: {type(error).__name__}: {error}"[:300])
    finally:
        if session is not None:
            keep.append(session)


async def _step(session: wire.WireSession, out: dict, page: str, pause: dict) -> wire.Shown:
    shown = await session.run(page=page)
    out[page].append(shown.ms)
    _check(shown)
    await asyncio.sleep(pause[page])
    return shown


def _check(shown: wire.Shown) -> None:
    if problem := shown.failed():
        raise wire.WireError(problem)


def _figures(out: dict) -> dict:
    figures = {
        step: {"p50_ms": _median(out[step]), "p95_ms": _p95(out[step]), "n": len(out[step])}
        for step in STEPS
    }
    figures["page_switch_p95_ms"] = _p95(out["queue"] + out["calendar"] + out["today"])
    return figures


async def _measured(browser, url: str, seen: dict, done: asyncio.Event) -> None:
    """The Chromium session of a round; `done` tells the colleagues it has finished."""
    try:
        await one_session(browser, url, 0, seen)
    finally:
        done.set()


async def desks_run(browser, url: str, sessions: int, rounds: int, pause: dict, pids) -> dict:
    """`rounds` rounds of one Chromium session and sessions − 1 wire sessions at once."""
    seen, heard = _empty(), _empty()  # the browser's figures; the wire sessions'
    memory, cpu_before = [], cpu_seconds(pids)
    for _ in range(rounds):
        before, keep, done = rss_mb(pids), [], asyncio.Event()
        await asyncio.gather(
            _measured(browser, url, seen, done),
            *(wire_session(url, i, heard, pause, keep, done) for i in range(1, sessions)),
        )
        memory.append((rss_mb(pids) - before) / sessions)  # every session still open
        for context in seen.pop("contexts"):
            await context.close()
        seen["contexts"] = []
        for session in keep:
            await session.close()
    cpu_after = cpu_seconds(pids)
    return {
        "browser": _figures(seen),
        "wire": _figures(heard),
        "errors": seen["errors"] + heard["errors"],
        "refused": seen["refused"] + heard["refused"],
        "messages": (seen["messages"] + heard["messages"])[:5],
        "refusals": (seen["refusals"] + heard["refusals"])[:5],
        "panel_moved": seen["panel_moved"] + heard["panel_moved"],
        "clicks_again": seen["clicks_again"],
        "mb_per_session": memory[0],
        "server_cpu_s": cpu_used(cpu_before, cpu_after, "server"),
        "browser_cpu_s": cpu_used(cpu_before, cpu_after, "browsers"),
    }


async def drawing_times(browser_figures: dict, url: str) -> dict:
    """Seconds a browser spends on each step beyond the server's part: the lone browser's
    median step time less a lone wire session's (measured now, on the same server)."""
    alone, keep, done = _empty(), [], asyncio.Event()
    done.set()  # the script once, no more
    for i in range(3):
        await wire_session(url, i, alone, dict.fromkeys(STEPS, 0.0), keep, done)
        for session in keep:
            await session.close()
        keep.clear()
    if alone["errors"]:
        raise RuntimeError(f"a lone wire session failed: {alone['messages']}")
    return {
        step: max(0.0, browser_figures[step]["p50_ms"] - _median(alone[step])) / 1000
        for step in STEPS
    }


async def measure(url: str, sessions: list[int], rounds: int, pids) -> dict:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        out = await _rounds(browser, url, sessions, rounds, pids)
        await browser.close()
    return out


async def _rounds(browser, url: str, sessions: list[int], rounds: int, pids) -> dict:
    log(f"1 session (Chromium alone), {rounds} rounds")
    alone = await desks_run(browser, url, 1, rounds, dict.fromkeys(STEPS, 0.0), pids)
    pause = await drawing_times(alone["browser"], url)
    said = ", ".join(f"{step} {s:.2f} s" for step, s in pause.items())
    log(f"  a browser's drawing time per step: {said}")
    out = {"pause_s": pause, "rounds": rounds, "runs": {1: alone}}
    for n in sessions:
        if n == 1:
            continue
        log(f"{n} sessions: Chromium and {n - 1} over the wire, {rounds} rounds")
        out["runs"][n] = await desks_run(browser, url, n, rounds, pause, pids)
    base = alone["browser"]["page_switch_p95_ms"]
    for figures in out["runs"].values():
        figures["ratio"] = figures["browser"]["page_switch_p95_ms"] / base
    return out


def report(out: dict) -> None:
    print(
        "\ndesks: one Chromium session measured, the others over the wire "
        f"({out['rounds']} rounds each; pauses "
        + ", ".join(f"{k} {v:.2f} s" for k, v in out["pause_s"].items())
        + ")"
    )
    print(
        f"{'sessions':>8} {'errors':>6} {'switch p95':>10} {'× one':>6} {'wire p95':>9} "
        f"{'sign-in':>8} {'MB/sess':>8} {'CPU srv/brw':>12}"
    )
    for n, f in sorted(out["runs"].items(), key=lambda item: int(item[0])):
        b, w = f["browser"], f["wire"]
        wired = w["page_switch_p95_ms"]
        wired = "—" if wired != wired else f"{wired:.0f}ms"  # no wire session alone: NaN
        print(
            f"{n:>8} {f['errors']:>6} {b['page_switch_p95_ms']:>8.0f}ms {f['ratio']:>5.2f}× "
            f"{wired:>9} {b['sign_in']['p50_ms'] / 1000:>7.1f}s "
            f"{f['mb_per_session']:>8.1f} {f['server_cpu_s']:>5.0f}/{f['browser_cpu_s']:<5.0f}"
        )
        for message in f["messages"] + f["refusals"]:
            print(f"{'':>10}{message}")
