"""The bench's own pages, in one place for the app that serves them (bench/browser_app.py) and
the driver that visits them (bench/browser.py): the empty page, the yardstick, and the floors —
Streamlit alone drawing a page's elements with fixed values and no reads."""

EMPTY_FILE = "browser_empty.py"
# (file in bench/, sidebar title, the page it copies)
FLOORS = (
    ("browser_floor.py", "Streamlit alone: cancellations", "cancellation-analytics"),
    ("browser_floor_surveys.py", "Streamlit alone: surveys", "survey-analytics"),
    ("browser_floor_waitlist.py", "Streamlit alone: waitlist", "waitlist"),
    ("browser_floor_calendar.py", "Streamlit alone: calendar", "calendar"),
)


def url_path(file: str) -> str:
    """browser_floor_surveys.py → bench-floor-surveys."""
    return "bench-" + file.removeprefix("browser_").removesuffix(".py").replace("_", "-")
