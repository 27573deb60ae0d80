"""bench.browser's app: ClinicDesk's app.py with more pages, registered like every other
page so they are measured the same way: an empty one (a title only), the yardstick, and
Streamlit alone drawing the elements of the Cancellations and Surveys dashboards, the Waitlist
and the Calendar with fixed values (bench/browser_floor*.py).

The launcher at the root calls `run()` on every rerun. This module is imported once, as
Streamlit compiles a main script once: the page is registered and app.py compiled at import,
so each run costs what app.py's own run costs in production and nothing more."""

from dataclasses import dataclass
from pathlib import Path

from bench import floors
from core.kernel.authz import Permission
from ui import navigation

HERE = Path(__file__).resolve().parent
APP = HERE.parent / "app.py"


@dataclass(frozen=True)
class _BenchPage(navigation.PageSpec):
    @property
    def path(self) -> Path:
        return HERE / self.file

    @property
    def url_path(self) -> str:
        return floors.url_path(self.file)


def _page(file: str, title: str, symbol: str) -> _BenchPage:
    return _BenchPage(file, title, symbol, "Bench", Permission.APPOINTMENTS_READ)


EMPTY = _page(floors.EMPTY_FILE, "Empty page", "crop_square")
FLOORS = tuple(_page(file, title, "layers") for file, title, _ in floors.FLOORS)
navigation.PAGES = (*navigation.PAGES, EMPTY, *FLOORS)
CODE = compile(APP.read_text(), str(APP), "exec")


def run() -> None:
    exec(CODE, {"__name__": "__main__", "__file__": str(APP)})  # noqa: S102  (our own app.py)
