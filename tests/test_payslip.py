"""The payslip PSL (工资条, SPEC §9): every pay line's formula comes from the objects that
computed it, and a signed closing archives one payslip per CM that the CM (and SPEC §5's
readers) may open, and nobody else."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokerflow.app.sample.crm import write_sample_export
from brokerflow.archive.index import SearchFilter
from brokerflow.archive.service import Archive
from brokerflow.flows.payslips import archive_payslips
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied
from brokerflow.payroll.compute import compute_from_directory
from brokerflow.payroll.policy import DEFAULT_POLICY
from brokerflow.payroll.records import run_lines
from brokerflow.payroll.rules import PayLine, PayrollResult
from brokerflow.payroll.workings import (
    Expr,
    Extreme,
    Item,
    Product,
    Rounded,
    Sum,
    Term,
    money,
    score4,
    shown,
)
from tests.support.closings import close_month
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export
from tests.support.pdf import pdf_text

OPERATIONS = {"×": Decimal.__mul__, "÷": Decimal.__truediv__, "+": Decimal.__add__,
              "−": Decimal.__sub__}


def recomputed(expr: Expr) -> Decimal:
    """``expr``'s value from its parts' values, checking every part on the way."""
    if isinstance(expr, Term):
        return expr.value
    if isinstance(expr, Item):
        inner = recomputed(expr.expr)
        return money(inner) if expr.rounded else inner
    if isinstance(expr, Rounded):
        return (score4 if expr.fmt == "score" else money)(recomputed(expr.inner))
    if isinstance(expr, Extreme):
        values = [recomputed(a) for a in expr.args]
        return min(values) if expr.kind == "min" else max(values)
    assert isinstance(expr, Product | Sum), expr
    value = recomputed(expr.steps[0][1])
    assert expr.steps[0][0] == ""
    for op, part in expr.steps[1:]:
        value = OPERATIONS[op](value, recomputed(part))
    assert value == expr.value
    return value


def leaves(expr: Expr) -> list[Expr]:
    """The inputs printed in ``expr``'s formula (items used inside it count as inputs)."""
    if isinstance(expr, Term | Item):
        return [expr]
    if isinstance(expr, Rounded):
        return leaves(expr.inner)
    if isinstance(expr, Extreme):
        return [x for a in expr.args for x in leaves(a)]
    assert isinstance(expr, Product | Sum)
    return [x for _, part in expr.steps for x in leaves(part)]


def check_line(line: PayLine) -> None:
    codes = [item.code for item in line.workings]
    assert len(codes) == len(set(codes)) == 21  # both scores and every line item, once
    for item in line.workings:
        field = getattr(line, item.code)
        assert item.value == field, (line.cm_id, item.code)
        text = item.working()
        assert text.startswith(f"{item.label} = {item.formula()} = ")
        printed = f"{field:.4f}" if item.code == "score" else f"{field:,.2f}"
        assert text.rsplit(" = ", 1)[1] == printed, (line.cm_id, text)
        assert (money(recomputed(item.expr)) if item.rounded
                else recomputed(item.expr)) == field
        for part in leaves(item.expr):  # each input is printed with its own value
            assert part.text() in item.formula(), (item.code, part.text())
    by_code = {item.code: item for item in line.workings}
    if "暂扣前应发" not in by_code["gross"].formula() and "shortfall" not in line.flags:
        added = ("fixed_pay", "commission", "opening_bonus", "excess_value_award",
                 "fund_commission", "management_commission", "management_allowance",
                 "transport_allowance", "fixed_pay_released")
        deducted = ("attendance_deduction", "fines", "malicious_fine")
        assert by_code["gross"].formula() == " ".join(
            [by_code[added[0]].text()] + [f"+ {by_code[c].text()}" for c in added[1:]]
            + [f"− {by_code[c].text()}" for c in deducted])
    if "unqualified_reduction" in line.flags:
        assert "未取得资格系数" in by_code["commission"].formula()


def check_result(result: PayrollResult) -> None:
    assert result.lines
    for line in result.lines:
        check_line(line)


@pytest.mark.parametrize("seed", [7, 11, 23])
def test_every_line_of_the_sample_months_carries_its_workings(tmp_path: Path,
                                                              seed: int) -> None:
    export = write_sample_export(tmp_path / "crm", month=MONTH, cms=40, seed=seed)
    for policy in (POLICY, DEFAULT_POLICY):
        check_result(compute_from_directory(month=MONTH, data_dir=export, policy=policy))


STATE = st.fixed_dictionaries({
    "as_of": st.just("2026-09"),
    "excess_carry": st.sampled_from(["0", "2999.99", "12500.37"]),
    "risk_fund_balance": st.sampled_from(["0", "9990.00", "40000.00"]),
    "withheld_fixed_pay": st.sampled_from(["0", "1234.56"]),
})


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.sampled_from(["cm", "stationed", "regional"]),
       hire=st.sampled_from(["2026-09-01", "2020-01-15"]), qualified=st.booleans(),
       absent=st.integers(min_value=0, max_value=7), late=st.integers(min_value=0, max_value=3),
       leave=st.sampled_from(["0", "1.5"]), sick=st.sampled_from(["0", "2", "5"]),
       fines=st.sampled_from(["0", "300", "90000"]), ipo=st.booleans(),
       investigated=st.booleans(), malicious=st.integers(min_value=0, max_value=2),
       left=st.sampled_from(["", "2026-10-09", "2026-10-31"]),
       assets=st.sampled_from(["3000", "800000", "9000000"]),
       revenue=st.sampled_from(["0", "2500.55", "80000"]), state=STATE)
def test_every_line_item_of_generated_cases_reads_as_it_was_computed(
        tmp_path_factory: pytest.TempPathFactory, position: str, hire: str, qualified: bool,
        absent: int, late: int, leave: str, sick: str, fines: str, ipo: bool,
        investigated: bool, malicious: int, left: str, assets: str, revenue: str,
        state: dict[str, Any]) -> None:
    boss = "" if position == "regional" else "rm1"
    staff = [staff_row("x1", name="测试", position=position, supervisor_id=boss,
                       hire_date=hire, qualified=str(qualified).lower(), absent_half_days=absent,
                       late_count=late, personal_leave_days=leave, sick_leave_days=sick,
                       fines=fines, mainly_ipo_or_fund=str(ipo).lower(),
                       under_investigation=str(investigated).lower(),
                       confirmed_malicious_accounts=malicious, leave_date=left),
             staff_row("rm1", position="regional"),
             staff_row("cm9", supervisor_id="x1" if position != "cm" else "rm1")]
    clients = [client_row("k1", "x1", open_date="2026-10-02", purchases="9000", assets=assets,
                          gross_commission=revenue, fund_sales_commission="640.00"),
               client_row("k2", "cm9", assets="50000", gross_commission="1200.30")]
    data = write_export(tmp_path_factory.mktemp("x"), staff=staff, clients=clients,
                        state={"x1": state})
    check_result(compute_from_directory(month=MONTH, data_dir=data, policy=POLICY))


STAFF = [staff_row("cm1", name="杨帆", supervisor_id="sm1", qualified="false",
                   hire_date="2018-03-01"),
         staff_row("cm2", name="朱琳", supervisor_id="sm1"),
         staff_row("sm1", name="韩梅", position="stationed")]
CLIENTS = [client_row("c1", "cm1", open_date="2026-10-05", purchases="6000", assets="300000",
                      turnover="1000000", gross_commission="52340.12"),
           client_row("c2", "cm2", assets="20000", gross_commission="800"),
           client_row("c3", "sm1", assets="1000000", gross_commission="800")]


@pytest.mark.usefixtures("development")
def test_a_signed_closing_archives_one_payslip_per_cm_readable_by_that_cm(
        prefect_api: None, archive: Archive, roster: None, user, tmp_path: Path) -> None:
    run = close_month(archive, write_export(tmp_path / "crm", staff=STAFF, clients=CLIENTS))
    assert run.id is not None
    with new_session(archive.engine) as session:
        lines = {str(line["cm_id"]): line for line in run_lines(session, run_id=run.id)}
    found = archive.search(SearchFilter(doc_type="PSL"), actor=user("bm1"))
    assert sorted(e.cm_id for e in found) == ["cm1", "cm2", "sm1"]  # one each, under the CM
    serial = {e.cm_id: e.serial for e in found}
    # the CM reads their own payslip: the commission with its inputs and result
    _, pdf = archive.get(serial["cm1"], actor=user("cm1"))
    text = pdf_text(pdf, tmp_path)
    words = re.sub(r"\s+", " ", text)
    line = lines["cm1"]
    for expected in ("工资条", "杨帆", "提成", "净创收 " + shown(Decimal(str(line["net_revenue"]))),
                     "考核系数 " + str(line["score"]), "未取得资格系数",
                     shown(Decimal(str(line["commission"]))),
                     shown(Decimal(str(line["net_pay"]))), "结转状态", run.signed_serial,
                     "未取得从业资格"):
        assert expected in words, (expected, text)
    # ... and no one else's; their team leader reads it (SPEC §5)
    with pytest.raises(AccessDenied):
        archive.get(serial["cm2"], actor=user("cm1"))
    with pytest.raises(AccessDenied):
        archive.get(serial["cm1"], actor=user("cm3"))
    archive.get(serial["cm1"], actor=user("sm1"))
    assert [e.serial for e in archive.search(SearchFilter(doc_type="PSL"),
                                             actor=user("cm1"))] == [serial["cm1"]]
    # archiving again (a re-executed closing) makes no second payslip
    again = archive_payslips(archive, run, pas_serial=run.signed_serial, actor=user("ca1"))
    assert sorted(again) == sorted(serial.values())
    assert len(archive.search(SearchFilter(doc_type="PSL"), actor=user("bm1"))) == 3
