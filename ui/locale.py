"""The clinic's display format (zone, locale, currency) for pages, cached across sessions."""

from __future__ import annotations

from core.kernel.money import ClinicFormat, clinic_format
from ui.caches import cached
from ui.context import read


@cached("setup", ttl=300, max_entries=50)
def display_format(clinic_id: int | None = None) -> ClinicFormat:
    """How money and times are shown for a clinic (or the practice's first clinic)."""
    return read(clinic_format, clinic_id)
