"""bench.browser's app: ClinicDesk's app.py with one more page, an empty one (a title only),
registered like every other page so it is measured the same way: the yardstick.

The launcher at the root calls `run()` on every rerun. This module is imported once, as
Streamlit compiles a main script once: the page is registered and app.py compiled at import,
so each run costs what app.py's own run costs in production and nothing more."""

from dataclasses import dataclass
from pathlib import Path

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
        return "bench-empty"


EMPTY = _BenchPage(
    "browser_empty.py", "Empty page", "crop_square", "Bench", Permission.APPOINTMENTS_READ
)
navigation.PAGES = (*navigation.PAGES, EMPTY)
CODE = compile(APP.read_text(), str(APP), "exec")


def run() -> None:
    exec(CODE, {"__name__": "__main__", "__file__": str(APP)})  # noqa: S102  (our own app.py)
