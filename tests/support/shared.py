"""Build an expensive test file once per run, however many xdist workers ask for it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The file `name` in the run's shared temporary folder, made by `build(folder)` (which
    writes `folder / name`) in the first process to ask; the others wait for it and reuse it."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' common parent
    folder = root / f"shared-{Path(name).stem}"
    folder.mkdir(exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".done").exists():
            build(folder)
            (folder / ".done").touch()
    return folder / name
