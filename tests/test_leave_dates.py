"""Hire and leave dates (SPEC §8.3): a CM who left is paid for the working days of the leave
month (the seed's daily pay), then drops out of closings while their carried balance waits
for its refund; their documents stay readable under SPEC §5."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, AuthenticationFailed
from brokerflow.kernel.models import PayrollCarry
from brokerflow.payroll.compute import compute_from_directory
from brokerflow.payroll.policy import load_policy
from brokerflow.payroll.records import run_lines
from tests.support.closings import close_month
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export

LEFT = "2026-10-15"  # a Thursday: 1–15 October 2026 hold 11 working days
STAFF = [staff_row("cm1", name="杨帆", leave_date=LEFT, supervisor_id="sm1"),
         staff_row("sm1", name="韩梅", position="stationed", leave_date=""),
         staff_row("cm2", name="朱琳", supervisor_id="sm1", leave_date="")]
CLIENTS = [client_row("c1", "cm1", assets="1000"), client_row("c2", "cm2", assets="1000")]


def test_a_cm_who_left_is_paid_for_the_working_days_of_the_leave_month(tmp_path: Path) -> None:
    export = write_export(tmp_path, staff=STAFF, clients=CLIENTS)
    result = compute_from_directory(month=MONTH, data_dir=export, policy=POLICY, state={})
    lines = {line.cm_id: line for line in result.lines}
    policy = load_policy(POLICY)
    share = Decimal(11) / policy.working_days_per_month
    left, stayed = lines["cm1"], lines["cm2"]
    assert left.level == stayed.level == "assistant"
    assert stayed.fixed_pay == Decimal("2000.00") and "left" not in stayed.flags
    assert left.fixed_pay == (Decimal(2000) * share).quantize(Decimal("0.01")) == Decimal(
        "1011.49")
    assert left.transport_allowance == Decimal("60.69")  # 120 × 11 / 21.75, half-up
    assert "left" in left.flags
    assert str(left.leave_date) == LEFT and stayed.leave_date is None


def test_a_row_after_the_leave_month_or_a_leave_before_the_hire_is_refused(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    late = write_export(tmp_path / "late", staff=[
        staff_row("cm1", leave_date="2026-09-30"), staff_row("cm2", leave_date="")],
        clients=[client_row("c1", "cm2")])
    done = cli("payroll", "compute", "--month", MONTH, "--data", str(late), "--policy",
               str(POLICY))
    assert done.code == 2 and "row 2" in done.err and "leave_date" in done.err, done.err
    assert "cm1 left on 2026-09-30" in done.err
    early = write_export(tmp_path / "early", staff=[
        staff_row("cm1", hire_date="2026-03-01", leave_date="2026-02-27")],
        clients=[client_row("c1", "cm1")])
    done = cli("payroll", "compute", "--month", MONTH, "--data", str(early), "--policy",
               str(POLICY))
    assert done.code == 2 and "leave_date" in done.err and "before the hire date" in done.err


@pytest.mark.usefixtures("development")
def test_after_leaving_a_cm_drops_out_of_closings_and_keeps_balance_and_documents(
        prefect_api: None, archive: Archive, roster: None, cli, user,  # type: ignore[no-untyped-def]
        tmp_path: Path, make_pdf) -> None:
    october = write_export(tmp_path / "oct", staff=STAFF, clients=CLIENTS,
                           state={"cm1": {"excess_carry": "0", "risk_fund_balance": "800"}})
    run = close_month(archive, october, MONTH)
    assert run.id is not None
    with new_session(archive.engine) as session:
        line = next(x for x in run_lines(session, run_id=run.id) if x["cm_id"] == "cm1")
    assert line["leave_date"] == LEFT and line["hire_date"] == "2020-01-15"
    assert line["accounts_opened"] == 0 and line["site"] == "网点A"
    balance = Decimal("800") + Decimal(str(line["risk_fund_withheld"]))
    november = write_export(tmp_path / "nov", staff=[
        staff_row("sm1", month="2026-11", position="stationed"),
        staff_row("cm2", month="2026-11", supervisor_id="sm1")],
        clients=[client_row("c2", "cm2", month="2026-11", assets="1000")])
    later = close_month(archive, november, "2026-11")
    assert later.id is not None
    with new_session(archive.engine) as session:
        paid = [x["cm_id"] for x in run_lines(session, run_id=later.id)]
        carried = session.exec(select(PayrollCarry).where(
            PayrollCarry.month == "2026-11", PayrollCarry.cm_id == "cm1")).one()
    assert paid == ["cm2", "sm1"]  # cm1 is paid no more
    assert Decimal(carried.risk_fund_balance) == balance  # kept for the refund (第二十五条)
    assert str(carried.leave_date) == LEFT and carried.run_id == later.id

    spec = DocumentSpec(branch="SZ01", doc_type="EXT", subject="离职交接单 杨帆",
                        subject_key="", cm_id="cm1")
    serial = archive.put(make_pdf("离职交接单"), spec, actor=user("bk1")).serial
    assert cli("roster", "disable", "cm1", "--reason", "离职", "--left", LEFT,
               user="admin1").code == 0
    assert archive.get(serial, actor=user("sm1"))[1].startswith(b"%PDF")  # the team leader
    assert archive.get(serial, actor=user("bm1"))[1].startswith(b"%PDF")
    with pytest.raises((AccessDenied, AuthenticationFailed)):
        archive.authenticate("cm1", "pw-cm1")  # who left reads nothing any more
    assert json.loads(later.figures)["policy"]["note"] == "policy not approved"
