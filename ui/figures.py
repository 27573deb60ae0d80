"""Key figures with their change against an earlier period (st.metric)."""

from __future__ import annotations

from typing import Literal

Colour = Literal["normal", "inverse", "off"]


def key_figure(
    column,
    label: str,
    value: str,
    change: str | None = None,
    *,
    colour: Colour = "normal",
    help: str | None = None,
    against: str = "",
) -> None:
    """st.metric in `column`; a change that shows as nothing ('0', '0,0 pp', '±£0.00') is grey
    and has no arrow: it is neither good nor bad news. `against` follows a change shown, saying
    what it is measured against ("vs previous period (n=120)"); its digits are no change."""
    still = change is not None and not any(digit in "123456789" for digit in change)
    column.metric(
        label,
        value,
        f"{change} {against}" if change is not None and against else change,
        delta_color="off" if still else colour,
        delta_arrow="off" if still else "auto",
        help=help,
    )
