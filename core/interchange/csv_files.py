"""Reading CSV files for import: text and encoding, the column separator (comma, semicolon or
tab), the header, rows checked against it, column mapping, value parsing, and the report of what
was imported and what was not."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from core.kernel.clock import local_to_utc
from core.kernel.errors import ValidationError

MAX_PROBLEMS_KEPT = 1_000
YES = {"1", "yes", "y", "true", "t", "sim", "s", "si", "oui", "ja", "x"}  # x: a ticked cell
NO = {"0", "no", "n", "false", "f", "", "nao", "non", "nein"}


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str
    required: bool = False
    names: str = ""  # column names other systems give it, "|" between them (guess_mapping)


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
    return _header(next(_reader(text), None))


def _header(first: list[str] | None) -> list[str]:
    """The column names; empty ones at the end are left out (Excel writes a separator for
    every column it once used: "ref,day,,")."""
    header = [name.strip() for name in first or []]
    while header and not header[-1]:
        header.pop()
    if not header:
        raise ValidationError("The file is empty: the first row must name the columns.")
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
    """A first guess for the mapping screen: the column named like the field's key, its label
    or one of its other `names` (ignoring case, spaces and punctuation: "Patient ID",
    "patient_id"), each column given to one field at most, the fields in order."""
    column = {_simple(h): h for h in reversed(header)}  # a name given twice: the first
    guess: dict[str, str] = {}
    for f in fields:
        for name in (f.key, f.label, *f.names.split("|")):
            found = column.get(_simple(name))
            if found and found not in guess.values():
                guess[f.key] = found
                break
    return guess


def _simple(name: str) -> str:
    """A name without case, accents, spaces or punctuation: "Situação" is "situacao"."""
    plain = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in plain if ch.isalnum() and not unicodedata.combining(ch))


Rows = Iterator[tuple[int, dict[str, str] | None, str | None]]


def numbered_rows(text: str) -> tuple[list[str], Rows, int]:
    """(header, rows, approximate row count). Each row is (number, values by column, None), or
    (number, None, reason) when its field count differs from the header's."""
    header = read_header(text)
    reader = _reader(text)
    next(reader)
    return header, _numbered(reader, header), max(text.count("\n") - 1, 1)


def _numbered(reader: Iterator[list[str]], header: list[str]) -> Rows:
    for number, values in enumerate(reader, start=2):  # the spreadsheet's row number
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header) and not any(v.strip() for v in values[len(header) :]):
            values = values[: len(header)]  # empty cells under the unnamed columns at the end
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


BLOCK = 1 << 20  # bytes read at a time


@dataclass(frozen=True)
class CsvFile:
    """A CSV file read row by row, never whole as text: a file of hundreds of megabytes
    costs a few megabytes of memory. `open_csv` reads it once to learn its encoding (as
    `decode` would), its SHA-256 and its number of lines; `rows` reads it again."""

    opener: Callable[[], BinaryIO]
    codec: str
    skip: int  # bytes of byte-order mark before the text
    note: str | None  # the encoding had to be guessed
    fingerprint: str
    lines: int

    def header(self) -> list[str]:
        return _header(next(self._reader(), None))

    def rows(self) -> tuple[list[str], Rows, int]:
        """(header, rows, approximate row count), as numbered_rows."""
        reader = self._reader()
        header = _header(next(reader, None))
        return header, _numbered(reader, header), max(self.lines - 1, 1)

    def _reader(self) -> Iterator[list[str]]:
        def lines() -> Iterator[str]:
            with self.opener() as binary:
                binary.seek(self.skip)
                text = io.TextIOWrapper(binary, encoding=self.codec, newline="")
                first = next(text, "").removeprefix("\ufeff")
                yield first
                yield from text

        source = lines()
        first = next(source)
        return csv.reader(itertools.chain([first], source), delimiter=separator(first))


def header_of(data: bytes) -> list[str]:
    """The column names of a CSV file's bytes, reading only its beginning (the mapping screen
    asks on every rerun of the page; the file may be hundreds of megabytes)."""
    start = data[:BLOCK]
    marked = next(((m, c) for m, c in BOMS if start.startswith(m)), None)
    codec = marked[1] if marked else "latin-1"
    for candidate in [] if marked else ENCODINGS:
        try:
            codecs.getincrementaldecoder(candidate)().decode(start)
        except UnicodeDecodeError:
            continue
        codec = candidate
        break
    skip = len(marked[0]) if marked else 0
    return CsvFile(lambda: io.BytesIO(data), codec, skip, None, "", 0).header()


def open_csv(
    source: str | Path | bytes | BinaryIO, encoding: str | None = None, salt: bytes = b""
) -> CsvFile:
    """The file ready to be read row by row (see CsvFile): the encoding given, else the one
    its byte-order mark names, else UTF-8, else Windows-1252, else Latin-1, as `decode`; a
    missing file, or one the given encoding cannot read, is a ValidationError. The fingerprint
    is the SHA-256 of the file's bytes followed by `salt`."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            raise ValidationError(f"{str(path)!r} is a folder; give the CSV file inside it.")
        if not path.exists():
            raise ValidationError(f"There is no file {str(path)!r}; check the name.")
        opener: Callable[[], BinaryIO] = lambda: open(path, "rb")  # noqa: E731, SIM115
    else:
        data = source if isinstance(source, bytes) else source.read()
        opener = lambda: io.BytesIO(data)  # noqa: E731
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValidationError(f"{encoding!r} is not an encoding Python knows.") from None
    digest, lines, skip = hashlib.sha256(), 0, 0
    candidates: dict[str, Any] = {}
    failed: dict[str, int] = {}
    offset = 0
    try:
        with opener() as binary:
            while block := binary.read(BLOCK):
                if offset == 0:
                    if encoding:
                        candidates = {encoding: None}
                    else:
                        marked = next(((m, c) for m, c in BOMS if block.startswith(m)), None)
                        skip = len(marked[0]) if marked else 0
                        candidates = dict.fromkeys([marked[1]] if marked else ENCODINGS)
                    candidates = {c: codecs.getincrementaldecoder(c)() for c in candidates}
                digest.update(block)
                lines += block.count(b"\n")
                start = skip if offset == 0 else 0
                for codec, decoder in list(candidates.items()):
                    try:
                        decoder.decode(block[start:])
                    except UnicodeDecodeError as exc:
                        failed[codec] = offset + start + exc.start
                        del candidates[codec]
                offset += len(block)
    except OSError as exc:
        raise ValidationError(f"Cannot read {str(source)!r}: {exc.strerror or exc}.") from None
    for codec, decoder in list(candidates.items()):
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            failed[codec] = offset
            del candidates[codec]
    digest.update(salt)
    if encoding and encoding in failed:
        raise ValidationError(
            f"The file is not {encoding}: byte {failed[encoding]:,} cannot be read that way. "
            "Give the file's encoding (often utf-8 or cp1252)."
        )
    if skip and not candidates:
        codec = next(iter(failed))
        raise ValidationError(
            f"The file starts as {codec} but byte {failed[codec]:,} cannot be read that way. "
            "Give the file's encoding."
        )
    codec = next(iter(candidates), encoding or "utf-8")
    note = None
    if not encoding and not skip and codec != "utf-8":
        note = (
            f"The file is not UTF-8; it was read as {codec}. If names look wrong, give the "
            "file's encoding and import it again."
        )
    return CsvFile(opener, codec, skip, note, digest.hexdigest(), lines)


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


DAY_FIRST, MONTH_FIRST = "day-first", "month-first"
DATE_ORDERS = (DAY_FIRST, MONTH_FIRST)  # how to read 05/06/2024: 5 June, or May 6
EXCEL_EPOCH = date(1899, 12, 30)  # Excel's day 0 (its serial 60 is the 29 February 1900 it
# believes in, so counting from the 30th gives every date from March 1900 on right)
_SERIAL = re.compile(r"\d{1,5}(\.\d+)?")
_DMY = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T]+(.+))?")
_CLOCK = re.compile(r"(\d{1,2})[:.](\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*([ap])?\.?\s*(m\.?)?")
DATE_FORMS = "YYYY-MM-DD, DD/MM/YYYY or MM/DD/YYYY, or an Excel date number"


def parse_moment(value: str, date_order: str | None = None) -> tuple[datetime, bool]:
    """(the moment as written, naive unless the text gives an offset; whether it has a time of
    day). Read: ISO 8601 (2024-06-05, 2024/06/05 09:30, 2024-06-05T09:30:00Z); a date with the
    day and month as numbers (05/06/2024, 5.6.2024 9:30) in `date_order`, DAY_FIRST or
    MONTH_FIRST, and refused without one, as 05/06 is 5 June in one country and May 6 in another;
    an Excel date number (45448 is 2024-06-05, 45448.5 noon). Otherwise a ValueError saying
    what to fix."""
    text = value.strip()
    if not text:
        raise ValueError("the cell is empty")
    if _SERIAL.fullmatch(text) and len(text.split(".")[0]) <= 5:
        serial = float(text)
        if not 1 <= serial < 2_958_466:  # Excel's last day is 9999-12-31
            raise ValueError(f"{value!r} is not a date ({DATE_FORMS})")
        moment = datetime.combine(EXCEL_EPOCH, time()) + timedelta(seconds=round(serial * 86_400))
        return moment, serial % 1 != 0
    dmy = _DMY.fullmatch(text)
    if dmy:
        first, _, second, year, clock = dmy.groups()
        if len(year) == 2:
            raise ValueError(f"{value!r} gives the year in two digits; write it in four (2024)")
        if date_order not in DATE_ORDERS:
            raise ValueError(
                f"{value!r} may be day/month or month/day; choose how the file writes its dates "
                "(day first or month first)"
            )
        day, month = (first, second) if date_order == DAY_FIRST else (second, first)
        try:
            on = date(int(year), int(month), int(day))
        except ValueError:
            order = "day/month/year" if date_order == DAY_FIRST else "month/day/year"
            raise ValueError(f"{value!r} is not a date read as {order}") from None
        at = parse_time(clock) if clock else time()
        return datetime.combine(on, at), clock is not None
    try:
        parsed = datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date ({DATE_FORMS})") from None
    return parsed, len(text) > 10


def parse_date(value: str, date_order: str | None = None) -> date:
    """A day (see parse_moment; a time of day after it is ignored)."""
    return parse_moment(value, date_order)[0].date()


def parse_time(value: str) -> time:
    """A time of day: 09:30, 9:30, 9:30:15, 09.30, 9:30 pm, or Excel's fraction of a day
    (0.5 is noon); otherwise a ValueError."""
    text = value.strip()
    clock = _CLOCK.fullmatch(text.lower())
    if clock:
        hours, minutes, seconds, half, _ = clock.groups()
        hour = int(hours)
        if half:
            if not 1 <= hour <= 12:
                raise ValueError(f"{value!r} is not a time (HH:MM)")
            hour = hour % 12 + (12 if half == "p" else 0)
        try:
            return time(hour, int(minutes), int(seconds or 0))
        except ValueError:
            raise ValueError(f"{value!r} is not a time (HH:MM)") from None
    try:
        fraction = float(text)
    except ValueError:
        fraction = -1.0
    if 0 <= fraction < 1:
        seconds = round(fraction * 86_400)
        return time(min(seconds // 3600, 23), seconds // 60 % 60, seconds % 60)
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a time (HH:MM)") from None


def parse_datetime(
    value: str, tz: str, local: bool, date_order: str | None = None
) -> tuple[datetime | None, bool]:
    """(UTC moment, whether the text had a time of day) or raise ValueError (see
    parse_moment). A time without an offset is clinic-local; so is one in UTC when `local`."""
    parsed, has_time = parse_moment(value, date_order)
    if parsed.tzinfo is None or (local and parsed.utcoffset() == timedelta(0)):
        return local_to_utc(parsed.date(), parsed.time(), tz), has_time
    return parsed.astimezone(UTC), has_time


def plain(text: str) -> str:
    """Text compared without case, accents or spaces at either end: "Não" is "nao"."""
    folded = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def parse_flag(value: str) -> bool:
    text = plain(value)
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
