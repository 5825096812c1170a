"""Payroll bad input: exit 2, a message naming file, row, column and problem, nothing written;
plus the other formats (CSV, XLSX in and out) and the default policy."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokerflow.app.cli import main
from brokerflow.payroll.compute import compute_from_directory
from brokerflow.payroll.policy import DEFAULT_POLICY, load_policy
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export

GOOD_STAFF = [staff_row("cm1", supervisor_id="sm1"), staff_row("sm1", position="stationed")]
GOOD_CLIENTS = [client_row("c1", "cm1", assets="100000", gross_commission="100")]


def run(capsys, data: Path, *extra: str, policy: Path = POLICY):  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main(["payroll", "compute", "--month", MONTH, "--data", str(data), "--policy",
                 str(policy), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def edit_csv(path: Path, row: int, column: str, value: str) -> None:
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    rows[row - 1][rows[0].index(column)] = value
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


@pytest.mark.parametrize(("file", "row", "column", "value", "message"), [
    ("staff.csv", 2, "hire_date", "2020-13-01", "not a date"),
    ("staff.csv", 2, "fines", "-5", "negative amount"),
    ("staff.csv", 2, "fines", "abc", "not a number"),
    ("staff.csv", 2, "position", "boss", "unknown position"),
    ("staff.csv", 2, "supervisor_id", "ghost", "not in the staff file"),
    ("staff.csv", 2, "qualified", "maybe", "true or false"),
    ("staff.csv", 2, "month", "2026-03", "outside"),
    ("staff.csv", 2, "late_count", "1.5", "whole number"),
    ("clients.csv", 2, "assets", "1e999x", "not a number"),
    ("clients.csv", 2, "purchases", "-1", "negative amount"),
    ("clients.csv", 2, "cm_id", "nobody", "no row in the staff file"),
    ("clients.csv", 2, "month", "2026-11", "outside"),
    ("clients.csv", 2, "open_date", "yesterday", "not a date"),
    ("clients.csv", 2, "client_type", "robot", "unknown client type"),
])
def test_bad_cells_name_file_row_and_column(capsys, tmp_path: Path, file: str, row: int,
                                            column: str, value: str, message: str) -> None:
    data = write_export(tmp_path / "d", staff=GOOD_STAFF, clients=GOOD_CLIENTS)
    edit_csv(data / file, row, column, value)
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, data, "--out", str(out_file))
    assert code == 2, err
    assert str(data / file) in err and f"row {row}" in err and f"column {column}" in err
    assert message in err
    assert out == "" and not out_file.exists()


def test_missing_and_extra_columns(capsys, tmp_path: Path) -> None:
    data = write_export(tmp_path / "d", staff=GOOD_STAFF, clients=GOOD_CLIENTS)
    text = (data / "clients.csv").read_text(encoding="utf-8")
    (data / "clients.csv").write_text(text.replace(",fund_sales_commission", ",bonus", 1),
                                      encoding="utf-8")
    code, _, err = run(capsys, data)
    assert code == 2 and "row 1" in err and "missing column fund_sales_commission" in err


def test_duplicate_client_month_and_supervision_cycle(capsys, tmp_path: Path) -> None:
    data = write_export(tmp_path / "d", staff=GOOD_STAFF,
                        clients=GOOD_CLIENTS + [client_row("c1", "sm1")])
    code, _, err = run(capsys, data)
    assert code == 2 and "row 3" in err and "column client_id" in err and "twice" in err
    cycle = write_export(tmp_path / "e", staff=[staff_row("a", supervisor_id="b"),
                                                staff_row("b", supervisor_id="a")], clients=[])
    code, _, err = run(capsys, cycle)
    assert code == 2 and "loops" in err and "column supervisor_id" in err


@pytest.mark.parametrize(("edit", "message"), [
    (("target_valid = \"4\"", "target_valid = \"0\""), "must be greater than 0"),
    (("tax_surcharge_rate = \"0.05\"", "tax_surcharge_rate = \"-0.05\""), "must not be negative"),
    (("management_commission_rate = \"0.05\"\n", ""), "missing key management_commission_rate"),
    (("[levels.chief]", "[levels.emperor]"), "unknown level 'emperor'"),
])
def test_bad_policy(capsys, tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.read_text(encoding="utf-8").replace(*edit, 1), encoding="utf-8")
    data = write_export(tmp_path / "d", staff=GOOD_STAFF, clients=GOOD_CLIENTS)
    code, _, err = run(capsys, data, policy=policy)
    assert code == 2 and str(policy) in err and message in err


def test_the_default_policy_is_complete(tmp_path: Path) -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.excess_award_monthly_cap == Decimal("3000")
    assert policy.positions["regional"].management_allowance == Decimal("900")
    data = write_export(tmp_path / "d", staff=GOOD_STAFF, clients=GOOD_CLIENTS)
    result = compute_from_directory(month=MONTH, data_dir=data, policy=DEFAULT_POLICY)
    assert len(result.lines) == 2


def test_csv_and_xlsx_round_trip(capsys, tmp_path: Path) -> None:
    from openpyxl import Workbook, load_workbook

    data = write_export(tmp_path / "d", staff=GOOD_STAFF, clients=GOOD_CLIENTS)
    code, as_json, _ = run(capsys, data)
    code_csv, as_csv, _ = run(capsys, data, "--format", "csv")
    assert code == code_csv == 0
    parsed = list(csv.DictReader(as_csv.splitlines()))
    lines = json.loads(as_json)["lines"]
    assert [r["net_pay"] for r in parsed] == [line["net_pay"] for line in lines]
    # the same export as .xlsx gives the same result
    xlsx_dir = tmp_path / "x"
    xlsx_dir.mkdir()
    for name in ("staff", "clients"):
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        with (data / f"{name}.csv").open(encoding="utf-8") as handle:
            for row in csv.reader(handle):
                sheet.append(row)
        book.save(xlsx_dir / f"{name}.xlsx")
    code, from_xlsx, _ = run(capsys, xlsx_dir)
    assert code == 0 and json.loads(from_xlsx) == json.loads(as_json)
    out = tmp_path / "payroll.xlsx"
    code, _, _ = run(capsys, data, "--format", "xlsx", "--out", str(out))
    assert code == 0
    sheet = load_workbook(out).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("月份", "工号") and rows[1][1] == "cm1"  # tests/test_xlsx_exports.py


amounts = st.decimals(min_value=0, max_value=10_000_000, places=2, allow_nan=False,
                      allow_infinity=False)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(amounts, amounts, amounts, st.booleans()), min_size=1,
                     max_size=6), extra=st.integers(min_value=1, max_value=4))
def test_totals_are_sums_and_unrelated_cms_change_no_line(
    tmp_path_factory: pytest.TempPathFactory, rows, extra: int
) -> None:
    base_dir = tmp_path_factory.mktemp("p")
    staff = [staff_row(f"cm{i}") for i in range(len(rows))]
    clients = [client_row(f"k{i}", f"cm{i}", open_date="2026-10-03", assets=str(a),
                          purchases=str(p), gross_commission=str(g),
                          client_type="institution" if inst else "individual")
               for i, (a, p, g, inst) in enumerate(rows)]
    before = compute_from_directory(
        month=MONTH, data_dir=write_export(base_dir / "a", staff=staff, clients=clients),
        policy=POLICY)
    totals = before.totals
    assert totals["gross"] == sum(line.gross for line in before.lines)
    assert totals["net_pay"] == sum(line.net_pay for line in before.lines)
    assert totals["risk_fund_withheld"] == sum(line.risk_fund_withheld for line in before.lines)
    more_staff = staff + [staff_row(f"zz{i}") for i in range(extra)]
    more_clients = clients + [client_row(f"q{i}", f"zz{i}", assets="123456.78",
                                         gross_commission="99.99") for i in range(extra)]
    after = compute_from_directory(
        month=MONTH, data_dir=write_export(base_dir / "b", staff=more_staff,
                                           clients=more_clients), policy=POLICY)
    assert after.lines[:len(before.lines)] == before.lines
