"""``brokerflow templates DIR``: a CSV and an XLSX of every input table, that the readers
read back once filled in (the XLSX with rows appended, the CSV saved again in GBK); and
docs/input-files.md is what ``input_files_markdown`` renders."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

from brokerflow.kernel.input_columns import CLIENTS, STAFF, TEMPLATES
from brokerflow.kernel.roster_file import parse_roster_bytes
from brokerflow.kernel.table_templates import INFO_SHEET, input_files_markdown
from brokerflow.payroll.inputs import iter_clients, read_staff
from tests.support.paths import REPO
from tests.support.payroll_data import POLICY


def make(cli, directory: Path) -> Path:  # type: ignore[no-untyped-def]
    result = cli("templates", str(directory))
    assert result.code == 0, result.err
    return directory


def test_every_table_gets_a_csv_and_an_xlsx(cli, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    out = make(cli, tmp_path / "t")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{suffix}" for stem in TEMPLATES for suffix in ("csv", "xlsx"))
    for stem, columns in TEMPLATES.items():
        data = (out / f"{stem}.csv").read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")  # a spreadsheet opens it as UTF-8
        header, sample = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert header == [c.chinese for c in columns] and len(sample) == len(columns)

        workbook = load_workbook(out / f"{stem}.xlsx")
        sheet = workbook.worksheets[0]
        assert sheet.title == stem and sheet.freeze_panes == "A2"
        assert [c.value for c in sheet[1]] == [c.chinese for c in columns]
        assert all(c.font.bold for c in sheet[1]) and sheet.max_row == 2
        assert all(c.comment is not None and name.name in c.comment.text
                   for c, name in zip(sheet[1], columns, strict=True))
        widths = [sheet.column_dimensions[c.column_letter].width for c in sheet[1]]
        assert all(w >= 10 for w in widths)
        lists = {str(v.sqref).split(":")[0][:-1]: v.formula1
                 for v in sheet.data_validations.dataValidation}
        chosen = {sheet.cell(1, i + 1).column_letter: c for i, c in enumerate(columns)
                  if c.choices}
        assert set(lists) == set(chosen)
        for letter, column in chosen.items():
            assert lists[letter] == '"' + ",".join(
                w for words in column.choices.values() for w in words) + '"'
        info = workbook[INFO_SHEET]
        described = {row[1]: row for row in info.iter_rows(min_row=5, values_only=True)}
        assert list(described) == [c.name for c in columns]
        for column in columns:
            assert described[column.name][0] == column.chinese
            assert ("必填" if column.required else "选填") in described[column.name][2]
    staff_lists = {str(v.sqref): v.formula1 for v in load_workbook(
        out / "staff.xlsx").worksheets[0].data_validations.dataValidation}
    assert staff_lists["D2:D1048576"] == '"营销经理,客户经理,驻点经理,区域经理"'
    assert staff_lists["H2:H1048576"] == '"是,否"'


def test_it_never_overwrites_without_force(cli, tmp_path: Path) -> None:
    out = make(cli, tmp_path / "t")
    (out / "staff.csv").write_bytes(b"mine")
    again = cli("templates", str(out))
    assert again.code == 2 and "would overwrite" in again.err and "--force" in again.err
    assert (out / "staff.csv").read_bytes() == b"mine"
    forced = cli("templates", str(out), "--force")
    assert forced.code == 0, forced.err
    assert (out / "staff.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    refused = cli("templates", str(a_file))
    assert refused.code == 2 and "not a directory" in refused.err and "Traceback" not in refused.err
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_filled_xlsx_templates_are_read_back(cli, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    out = make(cli, tmp_path / "t")
    staff_book = load_workbook(out / "staff.xlsx")
    staff_sheet = staff_book.worksheets[0]
    staff_sheet.append([datetime(2026, 10, 1), "sm01", "陈静", "驻点经理", None, "望京",
                        date(2023, 4, 10), "是", 1, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 50, "否"])
    staff_book.save(out / "staff.xlsx")
    clients_book = load_workbook(out / "clients.xlsx")
    clients_book.worksheets[0].append(["2026-10", "000123", "机构", "sm01",
                                       datetime(2026, 10, 12), "是", "否", 500000, 1200000.5,
                                       800000, 400, 0])
    clients_book.save(out / "clients.xlsx")

    staff = read_staff(out / "staff.xlsx")
    assert [(s.cm_id, s.position, s.qualified, s.month) for s in staff] == [
        ("cm01", "cm", True, "2026-10"), ("sm01", "stationed", True, "2026-10")]
    assert staff[0].hire_date == date(2025, 3, 1) and staff[1].hire_date == date(2023, 4, 10)
    assert staff[1].fines == 50 and not staff[1].under_investigation
    clients = list(iter_clients(out / "clients.xlsx"))
    assert [(c.client_id, c.client_type, c.cm_id, c.open_date) for c in clients] == [
        ("880001", "individual", "cm01", date(2026, 10, 8)),
        ("000123", "institution", "sm01", date(2026, 10, 12))]
    assert str(clients[1].assets) == "1200000.5"

    data = tmp_path / "x"
    data.mkdir()
    for stem in ("staff", "clients"):
        (data / f"{stem}.xlsx").write_bytes((out / f"{stem}.xlsx").read_bytes())
    result = cli("payroll", "compute", "--month", "2026-10", "--data", str(data),
                 "--policy", str(POLICY))
    assert result.code == 0, result.err
    assert [line["cm_id"] for line in json.loads(result.out)["lines"]] == ["cm01", "sm01"]

    roster_book = load_workbook(out / "roster.xlsx")
    roster_book.worksheets[0].append(["bj02_bm", "张伟", "营业部经理、副经理", "BJ02", None,
                                      None, "pw-1"])
    roster_book.save(out / "roster.xlsx")
    rows = parse_roster_bytes((out / "roster.xlsx").read_bytes(), file="roster.xlsx",
                              known_user_ids=frozenset({"bj02_fin"}))
    assert [(r.user_id, r.roles) for r in rows] == [
        ("bj02_fin", frozenset({"finance_manager"})),
        ("bj02_bm", frozenset({"branch_manager", "deputy_manager"}))]


def test_filled_csv_templates_saved_as_gbk_are_read_back(cli, tmp_path: Path) -> None:
    out = make(cli, tmp_path / "t")
    more = {
        "staff": ["2026/10/1", "sm01", "陈静", "驻点经理", "", "望京", "2023/4/10", "是", "1",
                  "0.5", "0", "0", "0", "0", "0", "0", "0", "0", "50", "否", "", "", ""],
        "clients": ["2026年10月", "880002", "机构", "sm01", "2026/10/12", "是", "否", "500000",
                    "1200000.50", "800000", "400", "0"],
        "roster": ["bj02_bm", "张伟", "营业部经理；财务经理", "BJ02", "", "", "pw-1"],
    }
    for stem, row in more.items():
        text = (out / f"{stem}.csv").read_bytes().decode("utf-8-sig")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(row)
        (out / f"{stem}.csv").write_bytes((text + buffer.getvalue()).encode("gbk"))
    assert "月份".encode("gbk") in (out / "staff.csv").read_bytes()

    staff = read_staff(out / "staff.csv")
    assert [(s.row, s.cm_id, s.position, s.month) for s in staff] == [
        (2, "cm01", "cm", "2026-10"), (3, "sm01", "stationed", "2026-10")]
    assert [c.name for c in STAFF][:2] == ["month", "cm_id"]
    clients = list(iter_clients(out / "clients.csv"))
    assert [(c.client_id, c.client_type, c.month, c.open_date) for c in clients] == [
        ("880001", "individual", "2026-10", date(2026, 10, 8)),
        ("880002", "institution", "2026-10", date(2026, 10, 12))]
    assert len(CLIENTS) == len(more["clients"])
    rows = parse_roster_bytes((out / "roster.csv").read_bytes(), file="roster.csv",
                              known_user_ids=frozenset({"bj02_fin"}))
    assert rows[1].roles == frozenset({"branch_manager", "finance_manager"})
    assert rows[0].secret is None and rows[1].secret == "pw-1"


def test_the_documentation_is_what_the_columns_say() -> None:
    text = (REPO / "docs" / "input-files.md").read_text(encoding="utf-8")
    assert text == input_files_markdown(), (
        "docs/input-files.md is stale: regenerate it from "
        "brokerflow.kernel.table_templates.input_files_markdown()")
    for stem, columns in TEMPLATES.items():
        assert f"## {stem} " in text
        assert all(f"| `{c.name}` | {c.chinese} |" in text for c in columns)


def test_the_command_line_starts_without_openpyxl_or_pyhanko() -> None:
    probe = subprocess.run([sys.executable, "-c", "import sys, brokerflow.app.cli; "
                            "print(sorted(m for m in ('openpyxl', 'pyhanko', 'prefect') "
                            "if m in sys.modules))"],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_the_readme_gives_every_input_format() -> None:
    """The README's input formats are the generated ones (headings two levels down)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    generated = [line for line in input_files_markdown().split("\n")[1:]
                 if not line.startswith("<!--")]
    body = re.sub(r"(?m)^## ", "#### ", "\n".join(generated).strip("\n"))
    assert body in readme, "README's input formats are stale: regenerate them"
    for stem in TEMPLATES:
        assert f"#### {stem} " in readme
