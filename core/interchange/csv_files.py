"""Reading CSV files for import: text and encoding, the column separator (comma, semicolon or
tab), the header, rows checked against it, column mapping, value parsing, and the report of what
was imported and what was not."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from core.kernel.clock import local_to_utc
from core.kernel.errors import ValidationError

MAX_PROBLEMS_KEPT = 1_000
YES = {"1", "yes", "y", "true", "t"}
NO = {"0", "no", "n", "false", "f", ""}


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str
    required: bool = False


@dataclass(frozen=True)
class RowProblem:
    row: int  # spreadsheet row number: the header is row 1
    reason: str


@dataclass
class ImportReport:
    what: str
    rows_read: int = 0
    created: int = 0
    already_imported: int = 0
    patients_created: int = 0
    clinics_created: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    problem_count: int = 0
    warnings: list[RowProblem] = field(default_factory=list)  # imported, one field left empty
    warning_count: int = 0
    notes: list[str] = field(default_factory=list)  # about the whole file (its encoding, …)

    def problem(self, row: int, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(RowProblem(row, reason))

    def warn(self, row: int, reason: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_PROBLEMS_KEPT:
            self.warnings.append(RowProblem(row, reason))

    @property
    def summary(self) -> str:
        return self.summarise()

    def summarise(self, number: Callable[[int], str] = "{:,}".format) -> str:
        """What the import did, in one sentence; `number` writes the counts (the app passes
        the practice's locale: 1.234 in pt-BR)."""
        text = (
            f"{number(self.rows_read)} rows read: {number(self.created)} {self.what} imported, "
            f"{number(self.already_imported)} already imported, "
            f"{number(self.problem_count)} skipped with problems"
        )
        if self.warning_count:
            text += f", {number(self.warning_count)} imported with a warning"
        if self.patients_created:
            text += f"; {number(self.patients_created)} new patients"
        return text + "."


ENCODINGS = ("utf-8", "cp1252", "latin-1")  # tried in this order when none is given
# byte-order marks, the longer first (UTF-32-LE's starts with UTF-16-LE's)
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def read_bytes(source: str | Path | bytes | BinaryIO) -> bytes:
    """The file's bytes; a missing file or a folder is a ValidationError in one line."""
    if isinstance(source, bytes):
        return source
    if not isinstance(source, str | Path):
        return source.read()
    path = Path(source)
    if path.is_dir():
        raise ValidationError(f"{str(path)!r} is a folder; give the CSV file inside it.")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValidationError(f"There is no file {str(path)!r}; check the name.") from None
    except OSError as exc:
        raise ValidationError(f"Cannot read {str(path)!r}: {exc.strerror or exc}.") from None


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str | None]:
    """(text, a note when the encoding had to be guessed). A given encoding is used as is;
    without one, the encoding a byte-order mark names (UTF-8, UTF-16, UTF-32), else UTF-8,
    else Windows-1252, else Latin-1."""
    if encoding:
        try:
            return data.decode(encoding).removeprefix("\ufeff"), None
        except LookupError:
            raise ValidationError(f"{encoding!r} is not an encoding Python knows.") from None
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"The file is not {encoding}: byte {exc.start:,} cannot be read that way. "
                "Give the file's encoding (often utf-8 or cp1252)."
            ) from None
    for mark, marked in BOMS:  # a byte-order mark says the encoding outright
        if data.startswith(mark):
            try:
                return data[len(mark) :].decode(marked), None
            except UnicodeDecodeError as exc:
                raise ValidationError(
                    f"The file starts as {marked} but byte {exc.start + len(mark):,} cannot "
                    "be read that way. Give the file's encoding."
                ) from None
    for candidate in ENCODINGS:
        try:
            text = data.decode("utf-8-sig" if candidate == "utf-8" else candidate)
        except UnicodeDecodeError:
            continue
        if candidate == "utf-8":
            return text, None
        return text, (
            f"The file is not UTF-8; it was read as {candidate}. If names look wrong, "
            "give the file's encoding and import it again."
        )
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def read_text(source: str | Path | bytes | BinaryIO, encoding: str | None = None) -> str:
    """The file's text (see decode)."""
    return decode(read_bytes(source), encoding)[0]


SEPARATORS = (",", ";", "\t")  # comma; semicolon (Excel where 1,5 is a number); tab (Text)


def separator(text: str) -> str:
    """The character separating the columns: of comma, semicolon and tab, the one that splits
    the first row into the most columns (a comma when none does)."""
    first = {s: next(csv.reader(io.StringIO(text), delimiter=s), []) for s in SEPARATORS}
    return max(SEPARATORS, key=lambda s: len(first[s]))


def _reader(text: str):
    return csv.reader(io.StringIO(text), delimiter=separator(text))


def read_header(text: str) -> list[str]:
    """The column names of a CSV text (its first row); a name used twice is refused."""
    first = next(_reader(text), None)
    if not first:
        raise ValidationError("The file is empty: the first row must name the columns.")
    header = [name.strip() for name in first]
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise ValidationError(
                f"The first row names column {name!r} twice (columns {seen[name]} and "
                f"{number}); rename one so each column has its own name."
            )
        seen[name] = number
    return header


def preview(text: str, rows: int = 5) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text), delimiter=separator(text))
    return [dict(r) for _, r in zip(range(rows), reader, strict=False)]


def guess_mapping(header: list[str], fields: tuple[FieldSpec, ...]) -> dict[str, str]:
    """A first guess for the mapping screen: a column named like the field (ignoring case)."""
    simple = {_simple(h): h for h in header}
    return {f.key: simple[_simple(f.key)] for f in fields if _simple(f.key) in simple}


def _simple(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def numbered_rows(
    text: str,
) -> tuple[list[str], Iterator[tuple[int, dict[str, str] | None, str | None]], int]:
    """(header, rows, approximate row count). Each row is (number, values by column, None), or
    (number, None, reason) when its field count differs from the header's."""
    header = read_header(text)
    total = max(text.count("\n") - 1, 1)
    reader = _reader(text)
    next(reader)

    def rows() -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
        for number, values in enumerate(reader, start=2):  # the spreadsheet's row number
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                yield (
                    number,
                    None,
                    (
                        f"the row has {len(values)} fields but the first row names {len(header)} "
                        "columns (a stray comma or a missing field?)"
                    ),
                )
                continue
            yield number, dict(zip(header, values, strict=True)), None

    return header, rows(), total


def check_columns(
    header: list[str], columns: dict[str, str], fields: tuple[FieldSpec, ...], extra: Iterable[str]
) -> None:
    missing_fields = [f.label for f in fields if f.required and not columns.get(f.key)]
    if missing_fields:
        raise ValidationError("Choose a column for: " + ", ".join(missing_fields) + ".")
    absent = sorted({c for c in [*columns.values(), *extra] if c and c not in header})
    if absent:
        raise ValidationError(
            "The file has no column "
            + ", ".join(repr(c) for c in absent)
            + ". Check the mapping against the file's first row."
        )


def parse_datetime(value: str, tz: str, local: bool) -> tuple[datetime | None, bool]:
    """(UTC moment, whether the text had a time of day) or raise ValueError."""
    text = value.strip()
    if not text:
        raise ValueError("empty")
    has_time = len(text) > 10
    parsed = datetime.fromisoformat(text.replace("/", "-"))
    if parsed.tzinfo is None or (local and parsed.utcoffset() == timedelta(0)):
        return local_to_utc(parsed.date(), parsed.time(), tz), has_time
    return parsed.astimezone(UTC), has_time


def parse_flag(value: str) -> bool:
    text = value.strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise ValueError(f"{value!r} is not yes/no or 1/0")


def quarter_up(moment: datetime) -> datetime:
    base = moment.replace(second=0, microsecond=0)
    extra = (-base.minute) % 15
    if extra == 0 and moment > base:
        extra = 15
    return base + timedelta(minutes=extra)


def parse_number(value: str) -> float | int | str:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number
