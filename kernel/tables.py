"""Tables the way spreadsheets make them (SPEC §10): CSV in UTF-8 (with or without BOM) or
GB18030/GBK (Excel on Chinese Windows), or XLSX; headers in English or their documented Chinese
names; 是/否 and Chinese enumeration names as values; month cells a spreadsheet turned into
dates.  Every header problem is reported at once.

A table is described by its ``Column``s (pure data, also what ``brokerflow templates`` and the
README print); ``open_table`` checks the header and yields numbered rows of text cells in the
columns' canonical English names.  The normalisers (``flag_text``, ``month_text``,
``day_text``, ``choice_text``) are pure and turn what a person typed into the canonical text
the typed readers parse.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from brokerflow.kernel.errors import BadInput

#: Encodings a branch's files come in, tried in this order (GB18030 is a superset of GBK).
ENCODINGS = ("utf-8", "gb18030")
_SNIFF_CHUNK = 1 << 20


@dataclass(frozen=True)
class Column:
    """One column of an input table: its canonical (English) header and documented Chinese
    header, whether the file must have it, an example value, and for an enumeration the
    canonical values with the words a person may type for each."""

    name: str
    chinese: str
    required: bool = True
    example: str = ""
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""

    @property
    def headers(self) -> tuple[str, str]:
        return self.name, self.chinese


def _header_key(text: str) -> str:
    """A header cell as compared: NFKC (full-width letters and brackets), no spaces, no BOM,
    English lower-cased."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).lstrip("\ufeff")).lower()


@dataclass(frozen=True)
class Table:
    """An opened table: the file name as the user gave it, where each known column is, and
    the numbered data rows (the header is row 1) as lists of text cells."""

    file: str
    index: dict[str, int]
    rows: Iterator[tuple[int, list[str]]]
    chinese_headers: bool = False

    def cell(self, values: list[str], column: str) -> str:
        """A row's cell of ``column`` ('' when the file has no such column)."""
        at = self.index.get(column)
        return values[at] if at is not None else ""


def sniff_encoding(path: Path) -> str:
    """``utf-8-sig`` when the whole file is UTF-8 (BOM or not), else ``gb18030``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_SNIFF_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"


def match_header(header: Sequence[str], columns: Sequence[Column], *,
                 file: str) -> tuple[dict[str, int], bool]:
    """Where each column is in ``header`` (English or Chinese names, mixed allowed) and
    whether any Chinese name was used; one ``BadInput`` listing every missing, unknown and
    repeated column otherwise."""
    names: dict[str, str] = {}
    for column in columns:
        for text in column.headers:
            names[_header_key(text)] = column.name
            names[_header_key(f"{column.chinese}({column.name})")] = column.name
    index: dict[str, int] = {}
    unknown, repeated = [], []
    chinese = False
    for position, text in enumerate(header):
        if not text.strip():
            if position == len(header) - 1 or not any(h.strip() for h in header[position:]):
                continue  # trailing empty header cells (a spreadsheet's stray column)
            unknown.append(f"(empty header in column {position + 1})")
            continue
        name = names.get(_header_key(text))
        if name is None:
            unknown.append(repr(text.strip()))
        elif name in index:
            repeated.append(name)
        else:
            index[name] = position
            chinese = chinese or _header_key(text) != _header_key(name)
    missing = [c for c in columns if c.required and c.name not in index]
    if missing or unknown or repeated:
        problems = []
        if missing:
            problems.append("missing column" + ("s " if len(missing) > 1 else " ")
                            + ", ".join(f"{c.name} ({c.chinese})" for c in missing))
        if unknown:
            problems.append("unknown column" + ("s " if len(unknown) > 1 else " ")
                            + ", ".join(unknown))
        if repeated:
            problems.append("repeated column" + ("s " if len(repeated) > 1 else " ")
                            + ", ".join(repeated))
        first = missing[0].name if missing else (repeated[0] if repeated else None)
        raise BadInput("; ".join(problems) + f" (the columns are {expected_header(columns)})",
                       file=file, row=1, column=first)
    return index, chinese


def expected_header(columns: Sequence[Column]) -> str:
    """The header as documentation gives it: ``name (中文)`` joined by commas; optional
    columns in brackets."""
    return ", ".join(f"{c.name} ({c.chinese})" if c.required else f"[{c.name} ({c.chinese})]"
                     for c in columns)


def open_table(path: Path, columns: Sequence[Column], *, file: str | None = None) -> Table:
    """Open a CSV or XLSX table and check its header against ``columns``; rows that are
    entirely empty are skipped, a row of the wrong width is ``BadInput`` naming it."""
    name = file or str(path)
    if not path.is_file():
        raise BadInput("no such file", file=name)
    source = _xlsx_rows(path, name) if path.suffix.lower() == ".xlsx" else _csv_rows(path, name)
    try:
        header = next(source)
    except StopIteration:
        raise BadInput("the file is empty; expected a header line", file=name, row=1) from None
    while header and not header[-1].strip():
        header = header[:-1]
    index, chinese = match_header(header, columns, file=name)
    width = len(header)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(source, start=2):
            if len(values) != width:
                if len(values) > width and not any(v.strip() for v in values[width:]):
                    values = values[:width]
                elif not any(v.strip() for v in values):
                    continue
                else:
                    raise BadInput(f"expected {width} fields, found {len(values)}", file=name,
                                   row=number)
            elif not any(v.strip() for v in values):
                continue
            yield number, values

    return Table(name, index, rows(), chinese)


def _csv_rows(path: Path, file: str) -> Iterator[list[str]]:
    encoding = sniff_encoding(path)
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle)
        try:
            yield from reader
        except UnicodeDecodeError:
            raise BadInput("neither UTF-8 nor GB18030/GBK text", file=file,
                           row=reader.line_num + 1) from None
        except csv.Error as exc:  # e.g. a field over the size limit, a NUL byte
            raise BadInput(f"not readable as CSV: {exc}", file=file,
                           row=reader.line_num) from None


def _xlsx_rows(path: Path, file: str) -> Iterator[list[str]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise BadInput(f"not an .xlsx workbook ({exc.__class__.__name__})", file=file) from None
    try:
        sheet = workbook.worksheets[0]
        for cells in sheet.iter_rows(values_only=True):
            yield [xlsx_text(v) for v in cells]
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BadInput(f"not a readable .xlsx workbook ({exc.__class__.__name__})",
                       file=file) from None
    finally:
        workbook.close()


def xlsx_text(value: Any) -> str:
    """An XLSX cell as text: dates as ISO dates, floats as the shortest text that round-trips
    (parsed as Decimal later, never as float), booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


# --------------------------------------------------------------------------- values (pure)

FLAG_WORDS: dict[str, str] = {
    "true": "true", "false": "false", "是": "true", "否": "false",
    "yes": "true", "no": "false", "y": "true", "n": "false",
}
_MONTH = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*(?:月)?")
_MONTH_AS_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*0?1\s*(?:日)?"
                            r"(?:[ T]00:00(?::00)?)?")
_DAY = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*(?:日)?"
                  r"(?:[ T]00:00(?::00)?)?")


def flag_text(raw: str) -> str | None:
    """``true``/``false`` for true/false, 是/否 (and yes/no), None for anything else."""
    return FLAG_WORDS.get(raw.strip().lower())


def month_text(raw: str) -> str | None:
    """``YYYY-MM`` for a month as typed (2026-10, 2026/10, 2026年10月) or as a spreadsheet
    turned it into a date (2026-10-01, 2026/10/1, with a midnight time); None otherwise."""
    text = raw.strip()
    match = _MONTH.fullmatch(text) or _MONTH_AS_DATE.fullmatch(text)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return f"{year:04d}-{month:02d}" if 1 <= month <= 12 else None


def day_text(raw: str) -> str | None:
    """``YYYY-MM-DD`` for a date as typed (2026-10-05, 2026/10/5, 2026年10月5日, with a
    midnight time as spreadsheets add); None when it is not a real date."""
    match = _DAY.fullmatch(raw.strip())
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3))).isoformat()
    except ValueError:
        return None


def choice_text(raw: str, choices: Mapping[str, tuple[str, ...]]) -> str | None:
    """The canonical value an enumeration cell names (its English value, or one of the words
    listed for it, e.g. 个人 → individual); None when it names none."""
    text = raw.strip()
    for value, words in choices.items():
        if text == value or text.lower() == value.lower() or text in words:
            return value
    return None
