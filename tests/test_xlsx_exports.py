"""XLSX exports are spreadsheets (SPEC §10): numbers as numbers (money ``#,##0.00``), Chinese
headers, a 合计 row equal to the JSON totals, the header frozen, readable column widths; the
CSV and JSON outputs stay as they were."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from brokerflow.app.cli import main
from brokerflow.payroll.compute import LINE_FIELDS, SHEET_COLUMNS
from brokerflow.payroll.evaluation import EVALUATION_COLUMNS
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export


def _compute(capsys, data: Path, *extra: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main(["payroll", "compute", "--month", MONTH, "--data", str(data), "--policy",
                 str(POLICY), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def _export(tmp_path: Path) -> Path:
    return write_export(
        tmp_path / "crm",
        staff=[staff_row("cm1", supervisor_id="sm1"), staff_row("cm2", supervisor_id="sm1"),
               staff_row("cm10", supervisor_id="sm1", qualified="false"),
               staff_row("sm1", position="stationed")],
        clients=[client_row("c1", "cm1", open_date="2026-10-03", purchases="8000",
                            assets="1234567.89", gross_commission="900"),
                 client_row("c2", "cm2", assets="300000", gross_commission="2500"),
                 client_row("c3", "cm10", open_date="2026-10-09", purchases="6000",
                            assets="80000", gross_commission="310")])


def test_payroll_xlsx_holds_numbers_under_chinese_headers_with_a_total_row(
    capsys, tmp_path: Path
) -> None:
    data = _export(tmp_path)
    code, as_json, err = _compute(capsys, data)
    assert code == 0, err
    result = json.loads(as_json)
    out = tmp_path / "pay.xlsx"
    code, printed, err = _compute(capsys, data, "--format", "xlsx", "--out", str(out))
    assert code == 0, err
    assert "wrote" in printed

    book = load_workbook(out)
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    assert header[:4] == ["月份", "工号", "职级", "有效户"]
    assert {"应发", "实发", "风险基金", "考核得分", "标记"} <= set(header)
    assert not any(isinstance(h, str) and h.isascii() for h in header)  # no English heads
    column = {key: n for n, key in enumerate(("month", *LINE_FIELDS))}
    assert [c.key for c in SHEET_COLUMNS] == list(column)

    lines = rows[1:-1]
    assert [r[column["cm_id"]].value for r in lines] == [x["cm_id"] for x in result["lines"]]
    for row, line in zip(lines, result["lines"], strict=True):
        for name in ("gross", "net_pay", "fixed_pay", "commission", "avg_assets_3m"):
            cell = row[column[name]]
            assert cell.data_type == "n" and cell.number_format == "#,##0.00", name
            assert Decimal(str(cell.value)).quantize(Decimal("0.01")) == Decimal(line[name])
        score = row[column["score"]]
        assert score.data_type == "n" and score.number_format == "0.0000"
        assert Decimal(str(score.value)).quantize(Decimal("0.0001")) == Decimal(line["score"])
        valid = row[column["valid_accounts"]]
        assert valid.value == line["valid_accounts"] and isinstance(valid.value, int)
        assert row[column["level"]].value in ("见习", "助理", "经理", "高级", "首席")
    flagged = [r[column["flags"]].value for r in lines if r[column["flags"]].value]
    assert flagged and all(not f.isascii() for f in flagged)  # flags read in Chinese

    total = rows[-1]
    assert total[0].value == "合计" and total[1].value == f"{len(result['lines'])} 人"
    for name in ("gross", "net_pay", "risk_fund_withheld"):
        cell = total[column[name]]
        assert cell.data_type == "n" and cell.number_format == "#,##0.00"
        assert Decimal(str(cell.value)).quantize(Decimal("0.01")) == Decimal(
            result["totals"][name]), name
    assert sheet.freeze_panes == "A2"
    gross_letter = get_column_letter(column["gross"] + 1)
    assert all((sheet.column_dimensions[c].width or 0) >= 6 for c in ("A", "B", gross_letter))
    assert sheet.column_dimensions[gross_letter].width > sheet.column_dimensions["B"].width
    fields = book["fields"]
    assert [r[2] for r in fields.iter_rows(min_row=2, values_only=True)] == list(column)


def test_csv_and_json_outputs_keep_their_english_fields(capsys, tmp_path: Path) -> None:
    data = _export(tmp_path)
    code, as_csv, _ = _compute(capsys, data, "--format", "csv")
    assert code == 0 and as_csv.splitlines()[0] == ",".join(("month", *LINE_FIELDS))
    code, as_json, _ = _compute(capsys, data)
    line = json.loads(as_json)["lines"][0]
    assert code == 0 and isinstance(line["gross"], str) and line["gross"].count(".") == 1


def test_a_formula_typed_into_an_id_stays_text(capsys, tmp_path: Path) -> None:
    evil = "=1+1"
    data = write_export(tmp_path / "crm", staff=[staff_row(evil)],
                        clients=[client_row("c1", evil, assets="50000")])
    out = tmp_path / "pay.xlsx"
    code, _, err = _compute(capsys, data, "--format", "xlsx", "--out", str(out))
    assert code == 0, err
    sheet = load_workbook(out).worksheets[0]
    cells = [c for row in sheet.iter_rows() for c in row if c.value == evil]
    assert cells and all(c.data_type == "s" for c in cells)
    assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)


def test_evaluation_xlsx_has_chinese_headers_numbers_and_a_total_row(
    capsys, tmp_path: Path
) -> None:
    data = tmp_path / "ev"
    data.mkdir()
    rows = [("cm1", "cm", "T1", "cm2", "peer", "80"), ("cm1", "cm", "T1", "rm1", "regional", "70"),
            ("cm1", "cm", "T1", "mk1", "marketing", "60"),
            ("rm1", "regional", "T1", "cm1", "sales", "70"),
            ("rm1", "regional", "T1", "mk1", "marketing", "90"),
            ("rm1", "regional", "T1", "gm1", "gm", "50")]
    (data / "evaluations.csv").write_text(
        ",".join(EVALUATION_COLUMNS) + "\n"
        + "".join(",".join(("2026Q3", *r)) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "ev.xlsx"
    capsys.readouterr()
    code = main(["evaluation", "compute", "--quarter", "2026Q3", "--data", str(data),
                 "--format", "xlsx", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    sheet = load_workbook(out).worksheets[0]
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    assert header[:5] == ["季度", "考核对象", "岗位", "团队", "总分"]
    cm1 = rows[1]
    assert cm1[1].value == "cm1" and cm1[2].value == "营销经理"
    assert cm1[4].data_type == "n" and cm1[4].number_format == "0.00"
    assert rows[-1][0].value == "合计" and rows[-1][1].value == "2 人"
    assert sheet.freeze_panes == "A2"
