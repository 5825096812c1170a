"""The quarterly evaluation's result as JSON, CSV and XLSX (SPEC §8.2)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokerflow.kernel.sheets import sheet_text
from brokerflow.payroll.evaluation import GROUPS, EvaluationResult, QuarterEvaluation

SHEET_COLUMNS = ("quarter", "evaluatee_id", "role", "team", "total", *GROUPS, "flags")


def _two(value: Decimal) -> str:
    return f"{value:.2f}"


def result_line(result: EvaluationResult) -> dict[str, Any]:
    """One evaluatee as JSON: total and group means as two-decimal strings."""
    return {
        "evaluatee_id": result.evaluatee_id,
        "role": result.role,
        "team": result.team,
        "total": _two(result.total),
        "groups": {group: _two(mean) for group, mean in result.groups.items()},
        "flags": list(result.flags),
    }


def result_json(evaluation: QuarterEvaluation) -> dict[str, Any]:
    """``{"quarter", "results": [...]}`` (results sorted by evaluatee_id)."""
    return {"quarter": evaluation.quarter,
            "results": [result_line(result) for result in evaluation.results]}


def _sheet_row(quarter: str, result: EvaluationResult) -> list[Any]:
    """A sheet row; numbers as Decimal, None (an empty cell) for a group without rows."""
    return [quarter, result.evaluatee_id, result.role, result.team, result.total,
            *(result.groups.get(group) for group in GROUPS), ";".join(result.flags)]


def result_csv(evaluation: QuarterEvaluation) -> str:
    """One row per evaluatee (``SHEET_COLUMNS``); no cell is a formula (``sheet_text``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SHEET_COLUMNS)
    for result in evaluation.results:
        writer.writerow([_two(v) if isinstance(v, Decimal) else sheet_text(v)
                         for v in _sheet_row(evaluation.quarter, result)])
    return buffer.getvalue()


def write_xlsx(evaluation: QuarterEvaluation, path: Path) -> None:
    """The sheet as .xlsx: total and means as numbers shown with two decimals (so that SUM
    works), every other cell a text cell (never evaluated as a formula)."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = f"evaluation {evaluation.quarter}"
    sheet.append(list(SHEET_COLUMNS))
    for result in evaluation.results:
        sheet.append(_sheet_row(evaluation.quarter, result))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, Decimal):
                cell.number_format = "0.00"
            elif cell.data_type == "f":  # openpyxl made a formula of a text starting with "="
                cell.data_type = "s"
    workbook.save(path)
