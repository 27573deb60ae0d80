"""End-to-end helpers: a real `streamlit run` server and Debian's Chromium driven by Playwright.

    with StreamlitServer("app.py", cwd=repo, env={"DATABASE_URL": url}) as server:
        page = chromium_browser.new_page()  # the session fixture below, or launch_chromium()
        page.goto(server.url)
        wait_for_app_idle(page)
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text("Approved")).to_be_visible()

Chromium comes from Debian (`scripts/ensure-chromium`); Playwright's own browser download is
never used. Waiting follows Streamlit's own e2e tests: the health endpoint for the server, the
`data-test-script-state` attribute of the app root for a finished script run; no fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Self

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from .postgres import free_port
from .zygote import Zygote

CHROMIUM = "/usr/bin/chromium"  # the desktop browser: the browser benchmark, screenshots
# the tests' browser: Debian's headless shell of the same Chromium (Blink, V8, the same
# rendering), without the desktop UI's processes: about a quarter less CPU per e2e test
HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
HEALTH_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.1
OUTPUT_TAIL_CHARS = 4000


class StreamlitServer:
    """`python -m streamlit run SCRIPT` on 127.0.0.1 at a free port; a context manager.

    `script` may be a classic Streamlit script or an `st.App` ASGI file; `streamlit run`
    detects which. `env` is merged over os.environ for the server process. With a `zygote`
    (tests.support.zygote) the server is forked from it instead of starting Python afresh.
    """

    def __init__(
        self,
        script: str | os.PathLike[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        zygote: Zygote | None = None,
    ) -> None:
        self.script = str(script)
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.port = port or free_port()
        self.zygote = zygote
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._output: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        arguments = [
            "run",
            self.script,
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ]
        # Kept open for the server's lifetime and closed in stop().
        self._output = tempfile.NamedTemporaryFile()  # noqa: SIM115
        # Own process group, so stop() also ends anything the server started.
        if self.zygote is not None:
            self._pid = self.zygote.spawn(arguments, self.cwd, self.env, self._output.name)
        else:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", *arguments],
                cwd=self.cwd,
                env=self.env,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._pid = self._process.pid
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the server's process group (SIGKILL after 10 s) and drop its output."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._pid, signal.SIGTERM)
            if not self._ended_within(10):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._pid, signal.SIGKILL)
                self._ended_within(10)
            self._process = self._pid = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def output_tail(self) -> str:
        """The last lines the server printed (stdout and stderr together)."""
        if self._output is None:
            return ""
        self._output.seek(0, os.SEEK_END)
        size = self._output.tell()
        self._output.seek(max(0, size - OUTPUT_TAIL_CHARS))
        return self._output.read().decode(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _exit_code(self) -> int | str | None:
        """None while the server runs. A forked one is reaped by its zygote: "unknown" code."""
        if self._process is not None:
            return self._process.poll()
        try:
            os.kill(self._pid, 0)
        except ProcessLookupError:
            return "unknown"
        return None

    def _ended_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._exit_code() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL_S / 2)
        return True

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        health_url = f"{self.url}/_stcore/health"
        while True:
            if self._exit_code() is not None:
                raise RuntimeError(
                    f"streamlit exited with code {self._exit_code()}:\n{self.output_tail()}"
                )
            try:
                with urllib.request.urlopen(health_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"streamlit not healthy at {health_url} after {HEALTH_TIMEOUT_S:.0f} s:\n"
                    f"{self.output_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)


def launch_chromium(
    playwright: Playwright, executable: str = HEADLESS_SHELL, **launch_options
) -> Browser:
    """A headless Debian Chromium Browser; `launch_options` go to `chromium.launch`."""
    if not Path(executable).exists():
        raise RuntimeError(f"{executable} not found; run scripts/ensure-chromium")
    return playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS, **launch_options
    )


def wait_for_app_idle(page: Page, timeout_ms: float = 30000) -> None:
    """Wait until the app is connected and no script run is in progress.

    Right after an interaction the attribute can still read "notRunning" from the previous run
    (the rerun request is in flight, and a fast run may never render "running" at all), so after
    a click wait for its visible outcome with Playwright's retrying `expect(...)` first.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
        '[data-test-script-state="notRunning"]',
        timeout=timeout_ms,
    )


class StillBrowser:
    """A Browser whose new contexts and pages ask for reduced motion, as the accessibility
    setting does. Streamlit then shows its loading skeleton still instead of pulsing it at 60
    frames a second in every page that waits for the server. With twenty pages open
    (test_many_staff), that animation cost about 40 CPU-seconds. Any other option passes
    through, and an explicit `reduced_motion` wins."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser

    def new_context(self, **options) -> BrowserContext:
        return self._browser.new_context(**{"reduced_motion": "reduce", **options})

    def new_page(self, **options) -> Page:
        return self._browser.new_page(**{"reduced_motion": "reduce", **options})

    def __getattr__(self, name: str):
        return getattr(self._browser, name)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[StillBrowser]:
    """One headless Debian Chromium per test session; give each test its own `new_page()`."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield StillBrowser(browser)
        browser.close()
