"""The quarterly evaluation's result as JSON, CSV and XLSX (SPEC §8.2)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokerflow.kernel.sheets import sheet_text
from brokerflow.kernel.vocabulary import EVALUATION_FLAG_LABELS
from brokerflow.kernel.xlsx_out import SheetColumn, write_sheet
from brokerflow.payroll.evaluation import GROUPS, EvaluationResult, QuarterEvaluation
from brokerflow.payroll.evaluation_document import EVALUATION_ROLE_LABELS, GROUP_HEADS

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


#: The XLSX export's columns: the headers the EVL document uses.
XLSX_COLUMNS: tuple[SheetColumn, ...] = (
    SheetColumn("quarter", "季度"), SheetColumn("evaluatee_id", "考核对象"),
    SheetColumn("role", "岗位"), SheetColumn("team", "团队"),
    SheetColumn("total", "总分", "two"),
    *(SheetColumn(group, GROUP_HEADS.get(group, group), "two") for group in GROUPS),
    SheetColumn("flags", "标记"),
)


def write_xlsx(evaluation: QuarterEvaluation, path: Path) -> None:
    """The sheet as .xlsx (``kernel.xlsx_out``): total and means as numbers shown with two
    decimals (so that SUM works; an empty cell for a group without rows), Chinese headers,
    roles and flags; a 合计 row counting the evaluatees; no text cell is ever a formula."""
    rows = []
    for result in evaluation.results:
        values = dict(zip(SHEET_COLUMNS, _sheet_row(evaluation.quarter, result), strict=True))
        values["role"] = EVALUATION_ROLE_LABELS.get(result.role, result.role)
        values["flags"] = "；".join(EVALUATION_FLAG_LABELS.get(f, f) for f in result.flags)
        rows.append(values)
    write_sheet(path, title=f"考评 {evaluation.quarter}", columns=XLSX_COLUMNS, rows=rows,
                total_note=f"{len(rows)} 人")
