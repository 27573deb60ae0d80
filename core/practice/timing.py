"""How long a visit of one or more services lasts, and the time its buffers keep free around it
(the provider and the rooms it uses): core.scheduling's conflict checks and slot suggestions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Timing:
    """A visit's length and the time kept free before and after it, in minutes."""

    minutes: int
    before: int = 0
    after: int = 0

    @property
    def padding(self) -> tuple[timedelta, timedelta]:
        return timedelta(minutes=self.before), timedelta(minutes=self.after)

    def words(self) -> str:
        """ "5 minutes kept free before and 10 after" ("" without buffers)."""
        if self.before and self.after:
            return f"{self.before} minutes kept free before and {self.after} after"
        if self.before or self.after:
            side = "before" if self.before else "after"
            return f"{self.before or self.after} minutes kept free {side}"
        return ""


def timing_of(services: Sequence[Any]) -> Timing:
    """Services booked one after another (anything with duration_minutes and the two buffer
    fields): their durations plus the buffers between them make the visit; the first one's
    buffer before and the last one's buffer after are kept free around it."""
    if not services:
        return Timing(0)
    minutes = sum(s.duration_minutes for s in services) + sum(
        (a.buffer_after_minutes or 0) + (b.buffer_before_minutes or 0)
        for a, b in zip(services, services[1:], strict=False)
    )
    return Timing(
        minutes, services[0].buffer_before_minutes or 0, services[-1].buffer_after_minutes or 0
    )
