"""Input files the way spreadsheets make them: GBK and UTF-8 with a BOM, Chinese headers,
是/否 and Chinese enumeration words, months a spreadsheet turned into dates, dates written
2026/10/5; every header problem at once; bytes in neither encoding exit 2 naming the row."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import select

from brokerflow.archive.service import Archive
from brokerflow.kernel.cells import day_text, month_text
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.input_columns import CLIENTS, ROSTER, STAFF
from brokerflow.kernel.models import User, UserRole
from brokerflow.kernel.roster_file import parse_roster_bytes
from brokerflow.kernel.tables import open_table
from brokerflow.payroll.inputs import iter_clients, read_staff
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export

STAFF_CHINESE = {c.name: c.chinese for c in STAFF}
CLIENT_CHINESE = {c.name: c.chinese for c in CLIENTS}
STAFF_NAMES = [c.name for c in STAFF]
CLIENT_NAMES = [c.name for c in CLIENTS]
POSITION_CHINESE = {"cm": "客户经理", "stationed": "驻点经理", "regional": "区域经理"}
FLAG_CHINESE = {"true": "是", "false": "否"}
TYPE_CHINESE = {"individual": "个人", "institution": "机构"}

STAFF_ROWS = [staff_row("cm1", supervisor_id="sm1", hire_date="2021-03-05", late_count=2),
              staff_row("sm1", position="stationed", supervisor_id="rm1", qualified="false"),
              staff_row("rm1", position="regional", mainly_ipo_or_fund="true")]
CLIENT_ROWS = [client_row("c1", "cm1", assets="100000", gross_commission="100",
                          open_date="2026-10-05"),
               client_row("c2", "cm1", client_type="institution", assets="2500000.50",
                          purchases="800000", open_date="2019-01-31"),
               client_row("c3", "sm1", malicious="true", attribution_effective="false")]


def chinese_rows(rows: list[dict[str, object]], names: list[str]) -> list[list[str]]:
    """Rows as a person in a Chinese branch writes them: Chinese words, slashed dates, the
    month as the date a spreadsheet makes of it."""
    out = []
    for row in rows:
        cells = []
        for name in names:
            value = str(row.get(name, ""))
            if name == "month":
                value = value.replace("-", "/") + "/1"
            elif name.endswith("_date") and value:
                y, m, d = value.split("-")
                value = f"{y}/{int(m)}/{int(d)}"
            elif name == "position":
                value = POSITION_CHINESE[value]
            elif name == "client_type":
                value = TYPE_CHINESE[value]
            elif value in FLAG_CHINESE:
                value = FLAG_CHINESE[value]
            cells.append(value)
        out.append(cells)
    return out


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str) -> Path:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows([header, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.getvalue().encode(encoding))
    return path


def run(cli, data: Path):  # type: ignore[no-untyped-def]
    return cli("payroll", "compute", "--month", MONTH, "--data", str(data), "--policy",
               str(POLICY))


def english_export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "english", staff=STAFF_ROWS, clients=CLIENT_ROWS)


def test_gbk_csv_with_chinese_headers_and_words_pays_the_same(cli, tmp_path: Path) -> None:
    data = tmp_path / "gbk"
    write_csv(data / "staff.csv", [STAFF_CHINESE[n] for n in STAFF_NAMES],
              chinese_rows(STAFF_ROWS, STAFF_NAMES), "gbk")
    write_csv(data / "clients.csv", [CLIENT_CHINESE[n] for n in CLIENT_NAMES],
              chinese_rows(CLIENT_ROWS, CLIENT_NAMES), "gbk")
    assert "月份".encode("gbk") in (data / "staff.csv").read_bytes()  # really GBK

    staff = read_staff(data / "staff.csv")
    assert [(s.cm_id, s.position, s.qualified, s.mainly_ipo_or_fund) for s in staff] == [
        ("cm1", "cm", True, False), ("sm1", "stationed", False, False),
        ("rm1", "regional", True, True)]
    assert staff[0].month == MONTH and staff[0].hire_date == date(2021, 3, 5)
    assert staff[0].name == "客户经理" and staff[0].late_count == 2
    clients = list(iter_clients(data / "clients.csv"))
    assert [(c.client_id, c.client_type, c.open_date, c.malicious) for c in clients] == [
        ("c1", "individual", date(2026, 10, 5), False),
        ("c2", "institution", date(2019, 1, 31), False),
        ("c3", "individual", date(2020, 1, 1), True)]
    assert clients[1].assets == Decimal("2500000.50")
    english = list(iter_clients(english_export(tmp_path) / "clients.csv"))
    assert clients == english  # the fast path takes the Chinese words to the same rows

    chinese_run, english_run = run(cli, data), run(cli, tmp_path / "english")
    assert chinese_run.code == english_run.code == 0, chinese_run.err
    assert json.loads(chinese_run.out)["lines"] == json.loads(english_run.out)["lines"]


def test_utf8_with_bom_and_mixed_headers(tmp_path: Path) -> None:
    header = [CLIENT_CHINESE[n] if i % 2 else n for i, n in enumerate(CLIENT_NAMES)]
    rows = [[str(r[n]) for n in CLIENT_NAMES] for r in CLIENT_ROWS]
    path = write_csv(tmp_path / "clients.csv", header, rows, "utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    table = open_table(path, CLIENTS)
    assert table.chinese_headers and table.index["client_type"] == 2
    clients = list(iter_clients(path))
    assert [c.client_id for c in clients] == ["c1", "c2", "c3"]
    assert [c.row for c in clients] == [2, 3, 4]


def test_xlsx_with_date_cells_in_the_month_column(cli, tmp_path: Path) -> None:
    from openpyxl import Workbook

    data = tmp_path / "x"
    data.mkdir()
    for stem, names, rows, chinese in (("staff", STAFF_NAMES, STAFF_ROWS, STAFF_CHINESE),
                                       ("clients", CLIENT_NAMES, CLIENT_ROWS, CLIENT_CHINESE)):
        workbook = Workbook()
        sheet = workbook.active
        assert sheet is not None
        sheet.append([chinese[n] for n in names])
        for row, cells in zip(rows, chinese_rows(rows, names), strict=True):
            values: list[object] = list(cells)
            values[0] = datetime(2026, 10, 1)  # what a spreadsheet makes of 2026-10
            for at, name in enumerate(names):
                if name.endswith("_date") and row.get(name):
                    values[at] = date.fromisoformat(str(row[name]))
            sheet.append(values)
        workbook.save(data / f"{stem}.xlsx")
    staff = read_staff(data / "staff.xlsx")
    assert [s.month for s in staff] == [MONTH] * 3
    assert staff[0].hire_date == date(2021, 3, 5) and staff[1].position == "stationed"
    clients = list(iter_clients(data / "clients.xlsx"))
    assert [c.month for c in clients] == [MONTH] * 3 and clients[0].open_date == date(2026, 10, 5)
    assert clients == list(iter_clients(english_export(tmp_path) / "clients.csv"))
    result = run(cli, data)
    assert result.code == 0, result.err
    assert len(json.loads(result.out)["lines"]) == 3


def test_a_staff_file_missing_three_columns_names_all_three(cli, tmp_path: Path) -> None:
    data = english_export(tmp_path)
    gone = ("qualified", "fines", "hire_date")
    keep = [n for n in STAFF_NAMES if n not in gone]
    write_csv(data / "staff.csv", [STAFF_CHINESE[n] for n in keep],
              [[str(r.get(n, "")) for n in keep] for r in STAFF_ROWS], "gbk")
    result = run(cli, data)
    assert result.code == 2, result.err
    assert f"file {data / 'staff.csv'}, row 1" in result.err
    assert "missing columns hire_date (入职日期), qualified (从业资格), fines (罚款)" in result.err
    assert "Traceback" not in result.err and result.out == ""


def test_every_header_problem_at_once(tmp_path: Path) -> None:
    header = ["月份", "资金账号", "client_type", "客户类型", "bonus", "", "cm_id",
              *CLIENT_NAMES[5:-1]]
    path = write_csv(tmp_path / "clients.csv", header, [], "utf-8")
    with pytest.raises(BadInput) as caught:
        open_table(path, CLIENTS)
    problem = caught.value.problem
    assert caught.value.row == 1 and caught.value.column == "open_date"
    assert "missing columns open_date (开户日期), fund_sales_commission (基金销售佣金)" in problem
    assert "unexpected columns 'bonus', (an empty header in column 6)" in problem
    assert "repeated column client_type" in problem


def test_bad_words_still_name_row_and_column(cli, tmp_path: Path) -> None:
    data = english_export(tmp_path)
    rows = chinese_rows(CLIENT_ROWS, CLIENT_NAMES)
    rows[1][CLIENT_NAMES.index("client_type")] = "法人"
    write_csv(data / "clients.csv", [CLIENT_CHINESE[n] for n in CLIENT_NAMES], rows, "gbk")
    result = run(cli, data)
    assert result.code == 2
    assert "row 3, column client_type: unknown client type '法人'" in result.err
    assert "individual (个人)" in result.err
    rows = chinese_rows(STAFF_ROWS, STAFF_NAMES)
    rows[2][STAFF_NAMES.index("qualified")] = "有"
    write_csv(data / "staff.csv", [STAFF_CHINESE[n] for n in STAFF_NAMES], rows, "gbk")
    result = run(cli, data)
    assert result.code == 2 and "row 4, column qualified: must be true or false" in result.err


def test_bytes_in_neither_encoding_exit_2_naming_the_row(cli, archive: Archive,
                                                         tmp_path: Path) -> None:
    data = english_export(tmp_path)
    lines = (data / "clients.csv").read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"c2", b"c\xff2")  # 0xFF starts nothing in UTF-8 or GB18030
    (data / "clients.csv").write_bytes(b"\n".join(lines))
    result = run(cli, data)
    assert result.code == 2 and "Traceback" not in result.err
    assert f"file {data / 'clients.csv'}, row 3: not UTF-8 or GB18030/GBK text" in result.err

    roster = tmp_path / "roster.csv"
    roster.write_bytes("工号,姓名,角色,营业部,初始口令\na1,甲,营销经理,SZ01,s\n".encode("gbk")
                       + b"a2,\x80,cm,SZ01,s\n")
    result = cli("roster", "load", str(roster))
    assert result.code == 2 and f"file {roster}, row 3: not UTF-8" in result.err
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("月份,工号\n".encode("utf-16"))
    with pytest.raises(BadInput, match="UTF-16"):
        open_table(utf16, STAFF)


def test_chinese_roles_in_a_gbk_roster(cli, archive: Archive, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    write_csv(path, ["工号", "姓名", "角色", "营业部", "上级工号", "初始口令"], [
        ["admin9", "管理员", "系统管理员", "HQ", "", "pw-admin9"],
        ["bm9", "张伟", "营业部经理；财务经理", "BJ02", "", "pw-bm9"],
        ["dm9", "刘洋", "副经理、主办会计", "BJ02", "bm9", "pw-dm9"],
        ["cm9", "李明", "营销经理;project_director", "BJ02", "dm9", "pw-cm9"],
    ], "gbk")  # no team column: it is optional
    result = cli("roster", "load", str(path))
    assert result.code == 0, result.err
    with new_session(archive.engine) as session:
        roles = {(r.user_id, r.role) for r in session.exec(select(UserRole))}
        cm9 = session.get(User, "cm9")
    assert roles == {("admin9", "admin"), ("bm9", "branch_manager"),
                     ("bm9", "finance_manager"), ("dm9", "deputy_manager"),
                     ("dm9", "chief_accountant"), ("cm9", "cm"), ("cm9", "project_director")}
    assert cm9 is not None and cm9.supervisor_id == "dm9" and cm9.team == ""

    bad = tmp_path / "bad.csv"
    write_csv(bad, ["工号", "姓名", "角色", "营业部", "初始口令"],
              [["x1", "甲", "营销经理/巫师", "BJ02", "s"]], "gbk")
    result = cli("roster", "load", str(bad), user="admin9")
    assert result.code == 2 and "row 2, column roles: unknown role '营销经理/巫师'" in result.err


def test_roster_header_problems_at_once_and_yaml_in_gbk() -> None:
    with pytest.raises(BadInput) as caught:
        parse_roster_bytes("工号,角色,部门\n".encode("gbk"), file="r.csv")
    assert "missing columns name (姓名), branch (营业部)" in caught.value.problem
    assert "unexpected column '部门'" in caught.value.problem
    rows = parse_roster_bytes(
        "users:\n  - {user_id: bm7, name: 经理, roles: [营业部经理], branch: SH07, "
        "secret: s1}\n".encode("gb18030"), file="r.yaml")
    assert rows[0].roles == frozenset({"branch_manager"}) and rows[0].name == "经理"
    assert [c.name for c in ROSTER if not c.required] == ["team", "supervisor_id", "secret"]


@given(st.text(max_size=24))
def test_month_and_day_text_never_raise(raw: str) -> None:
    month, day = month_text(raw), day_text(raw)
    assert month is None or (re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month)
                             and month_text(month) == month)
    assert day is None or date.fromisoformat(day).isoformat() == day


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31)),
       st.sampled_from(["{y}-{m:02d}-{d:02d}", "{y}/{m}/{d}", "{y}年{m}月{d}日",
                        "{y}/{m}/{d} 0:00", "{y}-{m:02d}-{d:02d} 00:00:00"]))
def test_dates_as_typed_read_as_the_same_day(day: date, form: str) -> None:
    text = form.format(y=day.year, m=day.month, d=day.day)
    assert day_text(text) == day.isoformat()
    expected = f"{day.year:04d}-{day.month:02d}" if day.day == 1 else None
    assert month_text(text) == expected
    assert month_text(f"{day.year}年{day.month}月") == f"{day.year:04d}-{day.month:02d}"


def test_every_bad_row_is_named_at_once_and_grouped_amounts_are_read(tmp_path: Path) -> None:
    """A file with the same mistake on many rows is named row by row in one message (20
    listed, the rest counted); an amount as a spreadsheet displays it (12,000.00) is read."""
    staff = [staff_row("cm1"), staff_row("cm2", qualified="maybe"),
             staff_row("cm3", hire_date="2026-13-01", fines="1,000.50")]
    clients = ([client_row("c1", "cm1", purchases="12,000.00", assets="1,234,567.89")]
               + [client_row(f"x{n}", "cm1", client_type="person") for n in range(25)])
    export = write_export(tmp_path / "crm", staff=staff, clients=clients)
    with pytest.raises(BadInput) as staff_problem:
        read_staff(export / "staff.csv")
    message = str(staff_problem.value)
    assert "2 problems" in message and "row 3, column qualified" in message
    assert "row 4, column hire_date" in message
    assert staff_problem.value.row == 3 and staff_problem.value.column == "qualified"
    with pytest.raises(BadInput) as client_problem:
        list(iter_clients(export / "clients.csv"))
    message = str(client_problem.value)
    assert "25 problems" in message and "and 5 more" in message
    assert message.count("column client_type: unknown client type 'person'") == 20
    good = write_export(tmp_path / "good", staff=[staff_row("cm1", fines="1,000.50")],
                        clients=clients[:1])
    assert read_staff(good / "staff.csv")[0].fines == Decimal("1000.50")
    (row,) = iter_clients(good / "clients.csv")
    assert (row.purchases, row.assets) == (Decimal("12000.00"), Decimal("1234567.89"))
