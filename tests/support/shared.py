"""Build an expensive test file once per run, however many xdist workers ask for it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest

TEMPLATES = "CLINICDESK_TEST_TEMPLATES"  # a folder that `make test` fills in the background


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The file `name` in the run's shared temporary folder (or the folder CLINICDESK_TEST_
    TEMPLATES names), made by `build(folder)` in the first process to ask; the others wait."""
    if os.environ.get(TEMPLATES):
        return build_once_in(Path(os.environ[TEMPLATES]), name, build)
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' common parent
    return build_once_in(root, name, build)


def build_once_in(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """`root`/shared-<stem>/`name`, made by `build(folder)` (which writes `folder / name`) in
    the first process to ask; the others wait for it (a file lock) and reuse it."""
    folder = root / f"shared-{Path(name).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".done").exists():
            build(folder)
            (folder / ".done").touch()
    return folder / name
