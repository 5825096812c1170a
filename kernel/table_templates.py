"""Blank input tables to fill in, and their documentation (SPEC §10): for each table of
``input_columns.TEMPLATES`` a CSV (UTF-8 with a BOM, so that spreadsheets open it as Chinese
text) and an XLSX workbook (Chinese header row, bold and frozen; a list to pick from on every
enumeration column; a sheet 说明 describing every column), each with one sample row; and the
Markdown of ``docs/input-files.md``.  Pure: bytes and text in memory, no files written.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from brokerflow.kernel.cells import choice_text, day_text
from brokerflow.kernel.input_columns import MORE_EXAMPLES, ROLE_WORDS, TEMPLATES, TITLES
from brokerflow.kernel.tables import Column, expected_header

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

#: Rows of an XLSX template that get the enumeration lists (a spreadsheet's last row).
LAST_ROW = 1_048_576
MAX_WIDTH = 48
INFO_SHEET = "说明"

_ACCEPTED = {
    "text": "text",
    "id": "a code or number, kept as text (leading zeros too)",
    "month": "a month: 2026-10 (also 2026/10, 2026年10月, or its first day 2026-10-01)",
    "date": "a date: 2026-10-05 (also 2026/10/5, 2026年10月5日)",
    "count": "a whole number (0-999999)",
    "amount": "a number in digits, e.g. 12000.00 (not negative)",
}


def accepted_values(column: Column) -> str:
    """What a person may write in ``column``, in words."""
    if column.choices:
        words = "; ".join(f"{value} ({'/'.join(words)})" if words else value
                          for value, words in column.choices.items())
        return f"one of: {words}"
    if column.kind == "roles":
        return "roles, English or Chinese: " + "; ".join(
            f"{role} ({'/'.join(words)})" for role, words in ROLE_WORDS.items())
    return _ACCEPTED.get(column.kind, "text")


def example_rows(stem: str) -> list[dict[str, str]]:
    """The example rows of table ``stem``: the columns' examples, then ``MORE_EXAMPLES``."""
    first = {c.name: c.example for c in TEMPLATES[stem]}
    return [first] + [first | more for more in MORE_EXAMPLES.get(stem, ())]


def english_value(column: Column, text: str) -> str:
    """An example cell as English headers show it: an enumeration's canonical value, role
    codes."""
    if column.kind == "roles":
        return ";".join(_ROLE_OF_WORD.get(r, r) for r in _split_roles(text))
    return (choice_text(text, column.choices) or text) if column.choices and text else text


def chinese_value(column: Column, text: str) -> str:
    """An example cell as Chinese headers show it: an enumeration's first Chinese word, role
    names."""
    if column.kind == "roles":
        return "、".join(ROLE_WORDS.get(_ROLE_OF_WORD.get(r, r), (r,))[0]
                        for r in _split_roles(text))
    if not (column.choices and text):
        return text
    value = choice_text(text, column.choices)
    words = column.choices.get(value or "", ())
    return words[0] if words else text


_ROLE_OF_WORD = {word: role for role, words in ROLE_WORDS.items() for word in words}


def _split_roles(text: str) -> list[str]:
    return [r.strip() for r in re.split("[;；、]", text) if r.strip()]


def template_csv(columns: Sequence[Column], row: dict[str, str]) -> bytes:
    """A CSV template: UTF-8 with a BOM, the Chinese header and one sample ``row``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.chinese for c in columns])
    writer.writerow([chinese_value(c, row.get(c.name, "")) for c in columns])
    return out.getvalue().encode("utf-8-sig")


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _xlsx_value(column: Column, text: str) -> object:
    """A sample cell as a person would type it: numbers as numbers, dates as dates."""
    if not text:
        return None
    if column.kind == "count" and text.isdigit():
        return int(text)
    if column.kind == "amount":
        return Decimal(text)
    if column.kind == "date" and (iso := day_text(text)) is not None:
        return date.fromisoformat(iso)
    return chinese_value(column, text)


def template_xlsx(stem: str, columns: Sequence[Column], row: dict[str, str]) -> bytes:
    """An XLSX template: sheet ``stem`` with the Chinese header row (bold, frozen, a comment
    on each header), fitting column widths, one sample ``row`` and a pick list on every
    enumeration column; sheet 说明 lists every column."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = stem
    sheet.append([c.chinese for c in columns])
    sheet.append([_xlsx_value(c, row.get(c.name, "")) for c in columns])
    bold = Font(bold=True)
    for position, column in enumerate(columns, start=1):
        letter = get_column_letter(position)
        header = sheet.cell(row=1, column=position)
        header.font = bold
        header.alignment = Alignment(horizontal="center")
        header.comment = Comment(_column_comment(column), "brokerflow", width=320, height=160)
        sample = sheet.cell(row=2, column=position)
        if column.kind in ("text", "id", "month", "roles"):
            sample.number_format = "@"  # typed as text: no date, no lost leading zero
            sheet.column_dimensions[letter].number_format = "@"
        elif column.kind == "date":
            sample.number_format = "yyyy-mm-dd"
        elif column.kind == "amount":
            sample.number_format = "0.00"
        width = max(_display_width(column.chinese), _display_width(column.example),
                    len(column.name)) + 3
        sheet.column_dimensions[letter].width = min(max(width, 10), MAX_WIDTH)
        if column.choices:
            words = [w for value, ws in column.choices.items() for w in (ws or (value,))]
            pick = DataValidation(
                type="list", formula1='"' + ",".join(words) + '"', allow_blank=True,
                showErrorMessage=True, errorStyle="warning", errorTitle=column.chinese,
                error=f"请从列表中选择：{'、'.join(words)}（也可填写英文值："
                      f"{', '.join(column.choices)}）",
                showInputMessage=True, promptTitle=column.chinese, prompt="、".join(words))
            sheet.add_data_validation(pick)
            pick.add(f"{letter}2:{letter}{LAST_ROW}")
    sheet.freeze_panes = "A2"
    _info_sheet(workbook.create_sheet(INFO_SHEET), stem, columns)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _column_comment(column: Column) -> str:
    need = "必填 required" if column.required else "选填 optional"
    lines = [f"{column.name} — {need}", accepted_values(column)]
    if column.note:
        lines.append(column.note)
    return "\n".join(lines)


def _info_sheet(sheet: Worksheet, stem: str, columns: Sequence[Column]) -> None:
    from openpyxl.styles import Alignment, Font

    sheet.append([f"{TITLES.get(stem, stem)}: {stem}.csv / {stem}.xlsx"])
    sheet.append(["表头可用中文或英文列名；文件可为 UTF-8 或 GBK 编码的 CSV，或 XLSX。"
                  " Headers may be Chinese or English; CSV in UTF-8 or GBK, or XLSX."])
    sheet.append([])
    sheet.append(["列名", "英文列名 (English)", "必填/选填", "可填写的值 (accepted values)",
                  "说明 (note)", "示例 (example)"])
    for cell in sheet[4]:
        cell.font = Font(bold=True)
    for column in columns:
        sheet.append([column.chinese, column.name,
                      "必填 required" if column.required else "选填 optional",
                      accepted_values(column), column.note,
                      chinese_value(column, column.example)])
    for letter, width in zip("ABCDEF", (22, 30, 16, 60, 60, 24), strict=True):
        sheet.column_dimensions[letter].width = width
    for cells in sheet.iter_rows(min_row=5):
        for cell in cells:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A5"


def template_files() -> dict[str, bytes]:
    """Every template as ``{file name: bytes}``: ``<stem>.csv`` and ``<stem>.xlsx`` for each
    table of ``input_columns.TEMPLATES``."""
    files: dict[str, bytes] = {}
    for stem, columns in TEMPLATES.items():
        sample = example_rows(stem)[0]
        files[f"{stem}.csv"] = template_csv(columns, sample)
        files[f"{stem}.xlsx"] = template_xlsx(stem, columns, sample)
    return files


# --------------------------------------------------------------------------- documentation


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _csv_block(lines: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(lines)
    return "```csv\n" + out.getvalue() + "```"


def input_files_markdown() -> str:
    """The text of ``docs/input-files.md``, generated from ``input_columns``."""
    parts = [
        "# Input files",
        "",
        "<!-- Generated from kernel/input_columns.py by kernel/table_templates.py "
        "(input_files_markdown); tests/test_templates.py checks that this file matches. -->",
        "",
        "Every table a branch fills in, column by column. `brokerflow templates DIR` writes "
        "each of them as a CSV and an XLSX template with one sample row.",
        "",
        "What every table accepts:",
        "",
        "- **Files**: CSV in UTF-8 (with or without BOM) or GB18030/GBK (what spreadsheets "
        "save on Chinese systems), or XLSX (the first sheet is read). The roster may also be YAML.",
        "- **Headers**: the English or the Chinese column names below, in any order, mixed "
        "if you like; an optional column may be left out. All missing, unexpected and "
        "repeated columns are reported at once.",
        "- **Yes/no columns**: `true`/`false`, `是`/`否` (also `yes`/`no`).",
        "- **Enumerations**: the English value or one of its Chinese words.",
        "- **Months**: `2026-10`, `2026/10`, `2026年10月`, or the first day of the month as "
        "a spreadsheet makes of a month (`2026-10-01`, `2026/10/1`, a date cell).",
        "- **Dates**: `2026-10-05`, `2026/10/5`, `2026年10月5日` or a date cell.",
        "- **Amounts**: `12000.00`, or as a spreadsheet displays it, `12,000.00`.",
        "- A required column must be there; an optional one may be left out, and its "
        "empty cells mean none (no, 0). A cell may be empty only where its note says so.",
        "- Empty rows are skipped. A problem is reported with the file, row (the header is "
        "row 1) and column, and nothing is written; the problems of all rows come in one "
        "message (the first 20 named, the rest counted).",
    ]
    for stem, columns in TEMPLATES.items():
        parts += ["", f"## {stem} — {TITLES.get(stem, stem)}", "",
                  f"`{stem}.csv` or `{stem}.xlsx`; the columns are {expected_header(columns)}"
                  + (" (optional ones in brackets)." if any(not c.required for c in columns)
                     else "."), "",
                  "| Column | 列名 | Required column | Accepted values | Note |",
                  "|---|---|---|---|---|"]
        for c in columns:
            parts.append(f"| `{c.name}` | {c.chinese} | {'yes' if c.required else 'no'} | "
                         f"{_cell(accepted_values(c))} | {_cell(c.note)} |")
        rows = example_rows(stem)
        parts += ["", "Example with English headers:", "",
                  _csv_block([[c.name for c in columns]]
                             + [[english_value(c, r[c.name]) for c in columns] for r in rows]),
                  "", "The same with Chinese headers:", "",
                  _csv_block([[c.chinese for c in columns]]
                             + [[chinese_value(c, r[c.name]) for c in columns] for r in rows])]
    return "\n".join(parts) + "\n"
