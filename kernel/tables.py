"""Tables the way spreadsheets make them (SPEC §10): CSV in UTF-8 (with or without BOM) or
GB18030/GBK (spreadsheets on Chinese systems) or XLSX; headers in English or their documented
Chinese names.  Every header problem is reported at once.

A table is described by its ``Column``s (pure data, also what ``brokerflow templates`` and the
README print); ``open_table`` checks the header and yields numbered rows of text cells in the
columns' canonical English names.  What a person typed into a cell becomes canonical text in
``kernel.cells``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from brokerflow.kernel.errors import BadInput

UTF16_PROBLEM = "UTF-16 text (a spreadsheet's 'Unicode text'): save it as CSV (UTF-8) or CSV"
#: Encodings a branch's files come in, tried in this order (GB18030 is a superset of GBK).
ENCODINGS = ("utf-8", "gb18030")
_SNIFF_CHUNK = 1 << 20


@dataclass(frozen=True)
class Column:
    """One column of an input table: its canonical (English) header and documented Chinese
    header, whether the file must have it, an example value, for an enumeration the
    canonical values with the words a person may type for each, a note, and the ``kind`` of
    value (one of ``KINDS``: what templates format and documentation describes)."""

    name: str
    chinese: str
    required: bool = True
    example: str = ""
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    kind: str = "text"

    @property
    def headers(self) -> tuple[str, ...]:
        """The header texts a file may use for this column."""
        return (self.name, self.chinese) if self.chinese else (self.name,)

    @property
    def label(self) -> str:
        """``name (中文)`` as messages and documentation give it."""
        return f"{self.name} ({self.chinese})" if self.chinese else self.name


#: The kinds of value a column holds.
KINDS = ("text", "id", "month", "date", "flag", "choice", "count", "amount", "roles")


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


def sniff_encoding(path: Path, *, file: str | None = None) -> str:
    """``utf-8-sig`` when the whole file is UTF-8 (BOM or not), else ``gb18030``; a file in
    neither is ``BadInput`` naming the row of the first byte that is neither."""
    utf8_bad = _first_bad_byte(path, "utf-8")
    if utf8_bad is None:
        return "utf-8-sig"
    gb_bad = _first_bad_byte(path, "gb18030")
    if gb_bad is None:
        return "gb18030"
    name = file or str(path)
    if _starts_with_utf16_bom(path):
        raise BadInput(UTF16_PROBLEM,
                       file=name, row=1)
    at = max(utf8_bad, gb_bad)  # the encoding that got further is the one meant
    raise BadInput(f"not UTF-8 or GB18030/GBK text (an invalid byte at offset {at})",
                   file=name, row=_line_of(path, at))


def _first_bad_byte(path: Path, encoding: str) -> int | None:
    """The offset of the first byte ``encoding`` cannot decode; None when all decode."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_SNIFF_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return offset + len(chunk) - len(exc.object) + exc.start
            if not chunk:
                return None
            offset += len(chunk)


def _starts_with_utf16_bom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _line_of(path: Path, offset: int) -> int:
    """The line (from 1) that holds byte ``offset``."""
    lines, left = 1, offset
    with path.open("rb") as handle:
        while left > 0 and (chunk := handle.read(min(_SNIFF_CHUNK, left))):
            lines += chunk.count(b"\n")
            left -= len(chunk)
    return lines


def decode_text(data: bytes, *, file: str) -> str:
    """A whole file's text: UTF-8 (BOM or not), else GB18030/GBK; ``BadInput`` naming the
    line of the first byte that is neither."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_bad = exc.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        gb_bad = exc.start
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise BadInput(UTF16_PROBLEM,
                       file=file, row=1)
    at = max(utf8_bad, gb_bad)
    raise BadInput(f"not UTF-8 or GB18030/GBK text (an invalid byte at offset {at})",
                   file=file, row=data.count(b"\n", 0, at) + 1)


def match_header(header: Sequence[str], columns: Sequence[Column], *,
                 file: str) -> tuple[dict[str, int], bool]:
    """Where each column is in ``header`` (English or Chinese names, mixed allowed) and
    whether any Chinese name was used; one ``BadInput`` listing every missing, unexpected
    and repeated column otherwise."""
    names: dict[str, str] = {}
    for column in columns:
        for text in column.headers:
            names[_header_key(text)] = column.name
        if column.chinese:
            names[_header_key(f"{column.chinese}({column.name})")] = column.name
            names[_header_key(f"{column.name}({column.chinese})")] = column.name
    index: dict[str, int] = {}
    unknown: list[str] = []
    repeated: list[str] = []
    chinese = False
    for position, text in enumerate(header):
        if not text.strip():
            if not any(h.strip() for h in header[position:]):
                break  # trailing empty header cells (a spreadsheet's stray columns)
            unknown.append(f"(an empty header in column {position + 1})")
            continue
        name = names.get(_header_key(text))
        if name is None:
            unknown.append(text.strip())
        elif name in index:
            repeated.append(name)
        else:
            index[name] = position
            chinese = chinese or _header_key(text) != _header_key(name)
    missing = [c for c in columns if c.required and c.name not in index]
    if missing or unknown or repeated:
        problems = []
        if missing:
            problems.append(_plural("missing column", [c.label for c in missing]))
        if unknown:
            problems.append(_plural("unexpected column", [u if u.startswith("(an empty")
                                                          else repr(u) for u in unknown]))
        if repeated:
            problems.append(_plural("repeated column", repeated))
        first = (missing[0].name if missing else unknown[0] if unknown else repeated[0])
        raise BadInput("; ".join(problems) + f" (the columns are {expected_header(columns)})",
                       file=file, row=1, column=first)
    return index, chinese


def _plural(what: str, items: Sequence[str]) -> str:
    return what + ("s " if len(items) > 1 else " ") + ", ".join(items)


def expected_header(columns: Sequence[Column]) -> str:
    """The header as documentation gives it: ``name (中文)`` joined by commas; optional
    columns in brackets."""
    return ", ".join(c.label if c.required else f"[{c.label}]" for c in columns)


def open_table(path: Path, columns: Sequence[Column], *, file: str | None = None) -> Table:
    """Open a CSV or XLSX table and check its header against ``columns``; rows that are
    entirely empty are skipped, a row of the wrong width is ``BadInput`` naming it (an XLSX
    row short of trailing empty cells is padded)."""
    name = file or str(path)
    if not path.is_file():
        raise BadInput("no such file", file=name)
    if path.suffix.lower() == ".xlsx":
        return _table(_xlsx_rows(path, name), columns, name, pad=True)
    return _table(_csv_rows(path, name), columns, name)


def table_of_text(text: str, columns: Sequence[Column], *, file: str) -> Table:
    """``open_table`` for CSV text already decoded (e.g. by ``decode_text``)."""
    return _table(_csv_text_rows(text, file), columns, file)


def table_of_bytes(data: bytes, columns: Sequence[Column], *, file: str) -> Table:
    """``open_table`` for a file's bytes already read: an XLSX workbook when ``file`` ends
    in .xlsx, else CSV text in UTF-8 or GB18030/GBK."""
    if file.lower().endswith(".xlsx"):
        return _table(_xlsx_rows(io.BytesIO(data), file), columns, file, pad=True)
    return table_of_text(decode_text(data, file=file), columns, file=file)


def _table(source: Iterator[list[str]], columns: Sequence[Column], name: str, *,
           pad: bool = False) -> Table:
    try:
        header = next(source)
    except StopIteration:
        raise BadInput("the file is empty; expected a header line", file=name, row=1) from None
    while header and not header[-1].strip():
        header = header[:-1]
    if not header:
        raise BadInput(f"the header line is empty; expected {expected_header(columns)}",
                       file=name, row=1)
    index, chinese = match_header(header, columns, file=name)
    width = len(header)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(source, start=2):
            if len(values) == width and values[0].strip():
                yield number, values  # the usual row, with as few checks as can be
                continue
            if len(values) != width:
                if len(values) > width and not any(v.strip() for v in values[width:]):
                    values = values[:width]
                elif not any(v.strip() for v in values):
                    continue
                elif pad and len(values) < width:
                    values = values + [""] * (width - len(values))
                else:
                    raise BadInput(f"expected {width} fields, found {len(values)}", file=name,
                                   row=number)
            elif not any(v.strip() for v in values):
                continue
            yield number, values

    return Table(name, index, rows(), chinese)


def _csv_rows(path: Path, file: str) -> Iterator[list[str]]:
    encoding = sniff_encoding(path, file=file)
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle)
        try:
            yield from reader
        except UnicodeDecodeError:  # the file changed since it was sniffed
            raise BadInput("not UTF-8 or GB18030/GBK text", file=file,
                           row=reader.line_num + 1) from None
        except csv.Error as exc:  # e.g. a field over the size limit, a NUL byte
            raise BadInput(f"not readable as CSV: {exc}", file=file,
                           row=reader.line_num) from None


def _csv_text_rows(text: str, file: str) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        yield from reader
    except csv.Error as exc:
        raise BadInput(f"not readable as CSV: {exc}", file=file, row=reader.line_num) from None


def _xlsx_rows(path: Path | IO[bytes], file: str) -> Iterator[list[str]]:
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
