"""Exported spreadsheets (SPEC §10): numbers as numbers, Chinese headers, a 合计 row, the
header frozen, columns wide enough to read.  Shared by every XLSX export.

The sheet's columns are ``SheetColumn``s: an English field name (listed with its Chinese
header on a second sheet, ``fields``), a Chinese header, and a kind that gives the cell's
number format.  Money is written from ``Decimal`` as a numeric cell (``#,##0.00``), never as
text or float arithmetic; a text cell is always a string cell, so nothing a user typed is ever
evaluated as a formula.  openpyxl is imported only when a sheet is written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

Kind = Literal["text", "money", "score", "two", "count"]
NUMBER_FORMATS: dict[str, str] = {"money": "#,##0.00", "score": "0.0000", "two": "0.00",
                                  "count": "0"}
TOTAL_LABEL = "合计"
FIELDS_SHEET = "fields"
MIN_WIDTH, MAX_WIDTH = 6, 40


@dataclass(frozen=True)
class SheetColumn:
    """One exported column: field name, Chinese header, kind, and whether 合计 sums it."""

    key: str
    label: str
    kind: Kind = "text"
    total: bool = False


def display_width(text: str) -> int:
    """Columns a text takes on screen: wide (CJK) characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def column_totals(columns: Sequence[SheetColumn],
                  rows: Sequence[Mapping[str, Any]]) -> dict[str, Decimal]:
    """The exact (``Decimal``) sum of every ``total`` column over ``rows``."""
    return {c.key: sum((Decimal(r[c.key]) for r in rows if r.get(c.key) is not None),
                       Decimal(0)) for c in columns if c.total}


def _cell_text(value: Any, kind: Kind) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal) and kind in NUMBER_FORMATS:
        return f"{value:,.{4 if kind == 'score' else 0 if kind == 'count' else 2}f}"
    return str(value)


def write_sheet(path: Path, *, title: str, columns: Sequence[SheetColumn],
                rows: Iterable[Mapping[str, Any]], totals: Mapping[str, Any] | None = None,
                total_note: str = "") -> None:
    """Write one sheet: a Chinese header row (frozen), ``rows`` (values by column key;
    numbers as ``Decimal``/``int``), then a 合计 row holding ``totals`` (default: the sum of
    every ``total`` column) and ``total_note`` in the second column; a ``fields`` sheet lists
    each column's field name."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    rows = list(rows)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append([c.label for c in columns])
    widths = [display_width(c.label) for c in columns]
    for row in [*rows, None]:
        if row is None:  # the 合计 row
            sums = column_totals(columns, rows) if totals is None else dict(totals)
            values: list[Any] = [sums.get(c.key) for c in columns]
            values[0] = TOTAL_LABEL
            if total_note and len(columns) > 1 and values[1] is None:
                values[1] = total_note
        else:
            values = [row.get(c.key) for c in columns]
        sheet.append([_cell(v, c.kind) for v, c in zip(values, columns, strict=True)])
        for index, (cell, column) in enumerate(zip(sheet[sheet.max_row], columns,
                                                   strict=True)):
            if isinstance(cell.value, str):
                cell.data_type = "s"  # never a formula, whatever the text starts with
            elif column.kind in NUMBER_FORMATS and cell.value is not None:
                cell.number_format = NUMBER_FORMATS[column.kind]
            widths[index] = max(widths[index], display_width(_cell_text(cell.value,
                                                                         column.kind)))
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(
            MAX_WIDTH, max(MIN_WIDTH, width + 2))
    sheet.freeze_panes = "A2"
    fields = workbook.create_sheet(FIELDS_SHEET)
    fields.append(["列", "表头", "字段"])
    for index, column in enumerate(columns, start=1):
        fields.append([get_column_letter(index), column.label, column.key])
    workbook.save(path)


def _cell(value: Any, kind: Kind) -> Any:
    """A cell value: numbers of a numeric column as numbers, anything else as text."""
    if value is None or value == "":
        return None
    if kind in NUMBER_FORMATS and isinstance(value, Decimal | int) and not isinstance(
            value, bool):
        return value
    return str(value)
