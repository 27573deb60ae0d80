"""Widgets of the Import and export page: the column-mapping editor, the progress bar handed to
core imports, and the import report."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.interchange.csv_files import (
    DAY_FIRST,
    MONTH_FIRST,
    FieldSpec,
    ImportReport,
    header_of,
)
from core.kernel.money import ClinicFormat
from ui.context import shown
from ui.locale import date_picker, display_format
from ui.text import escape, show_table

NOT_IN_FILE = "— not in the file —"


def file_header(upload) -> list[str]:
    """The uploaded CSV's column names; an unreadable file stops the page with the reason."""
    return shown(header_of, upload.getvalue())


def mapping_editor(
    fields: tuple[FieldSpec, ...], header: list[str], initial: dict[str, str], key: str
) -> dict[str, str]:
    """One row per field with a selectbox of the file's columns; returns field → column."""
    frame = pd.DataFrame(
        {
            "Field": [f.label for f in fields],
            "Required": [f.required for f in fields],
            "File column": [initial.get(f.key, NOT_IN_FILE) for f in fields],
        }
    )
    edited = st.data_editor(
        frame,
        key=key,
        hide_index=True,
        width="stretch",
        disabled=["Field", "Required"],
        column_config={
            "File column": st.column_config.SelectboxColumn(
                "File column", options=[NOT_IN_FILE, *header], required=True
            )
        },
    )
    chosen = dict(zip([f.key for f in fields], edited["File column"], strict=True))
    return {k: v for k, v in chosen.items() if v and v != NOT_IN_FILE}


def date_order_picker(key: str) -> str:
    """How the file writes a date like 05/06/2024; first offered: the practice's own order."""
    month_first = date_picker(display_format().locale).startswith("MM")
    return st.selectbox(
        "Dates written like 05/06/2024",
        [DAY_FIRST, MONTH_FIRST],
        index=1 if month_first else 0,
        key=key,
        format_func=lambda o: {
            DAY_FIRST: "Day first (05/06/2024 is 5 June)",
            MONTH_FIRST: "Month first (05/06/2024 is May 6)",
        }[o],
        help="ISO dates (2024-06-05) and Excel's date numbers are read either way.",
    )


def progress_bar(label: str) -> Callable[[float, str], None]:
    """A progress bar and the callback core imports report to."""
    bar = st.progress(0.0, text=label)
    return lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message)


def show_report(report: ImportReport, fmt: ClinicFormat) -> None:
    """The import's outcome, its counts in the practice's locale, and the rows it skipped or
    imported with a field left out."""
    n = fmt.number
    for note in report.notes:
        st.info(escape(note), icon=":material/info:")
    st.success(escape(report.summarise(n)), icon=":material/task_alt:")
    if report.problems:
        more = report.problem_count - len(report.problems)
        st.warning(
            f"{n(report.problem_count)} rows were skipped"
            + (f" (the first {n(len(report.problems))} are listed)" if more else "")
            + ":"
        )
        problems = pd.DataFrame([{"Row": p.row, "Problem": p.reason} for p in report.problems])
        show_table(
            problems, hide_index=True, width="stretch", height=min(400, 40 + 35 * len(problems))
        )
    if report.warnings:
        more = report.warning_count - len(report.warnings)
        st.warning(
            f"{n(report.warning_count)} rows were imported with one field left out"
            + (f" (the first {n(len(report.warnings))} are listed)" if more else "")
            + ":"
        )
        warnings = pd.DataFrame([{"Row": w.row, "Warning": w.reason} for w in report.warnings])
        show_table(
            warnings, hide_index=True, width="stretch", height=min(400, 40 + 35 * len(warnings))
        )
