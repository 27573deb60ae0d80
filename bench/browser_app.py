"""bench.browser's app: ClinicDesk's app.py with one more page, an empty one (a title only),
registered like every other page so it is measured the same way: the yardstick."""

import runpy
from dataclasses import dataclass
from pathlib import Path

from core.kernel.authz import Permission
from ui import navigation

HERE = Path(__file__).resolve().parent


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
# this file runs on every rerun (a new class each time): compare by file, add once
if not any(p.file == EMPTY.file for p in navigation.PAGES):
    navigation.PAGES = (*navigation.PAGES, EMPTY)
runpy.run_path(str(HERE.parent / "app.py"), run_name="__main__")
