"""The risk fund (风险基金, seed 001 第二十五条; SPEC §8.3) end to end on the real Prefect test
server, S3 endpoint and database: deductions proposed by the branch manager and signed by the
finance manager, applied by the next closing with withholding resumed up to the cap; refunds due
6 months after the leave date, blocked while a client dispute is open, signed by the finance
and branch managers, RFD archived and the balance 0 at the next closing."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlmodel import col, select

from brokerflow.archive.service import Archive
from brokerflow.flows.risk_fund import risk_fund
from brokerflow.flows.risk_fund_refunds import risk_fund_refunds
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, BadInput
from brokerflow.kernel.models import ArchiveEntry, AuditEvent, PayrollCarry, PayrollRun
from brokerflow.kernel.staff_models import ClientDispute, RiskFundMovement
from brokerflow.payroll.inputs import CarriedState
from brokerflow.payroll.records import run_lines
from brokerflow.payroll.risk_fund import (
    CAUSES,
    Movement,
    apply_movements,
    check_deduction,
    refund_due_date,
)
from brokerflow.payroll.risk_fund_records import due_refunds, movement_rows
from tests.support.chain_driver import ChainDriver
from tests.support.closings import close_month
from tests.support.payroll_data import client_row, staff_row, write_export
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>

OPENING = "2026-09"  # the month whose carried state the tests insert


def _carry(archive: Archive, cm_id: str, balance: str, *, leave: date | None = None,
           month: str = OPENING) -> None:
    """Opening data: ``cm_id``'s state carried out of a closed ``month`` of SZ01."""
    with new_session(archive.engine) as session:
        run = session.exec(select(PayrollRun).where(PayrollRun.month == month)).first()
        if run is None:
            run = PayrollRun(branch="SZ01", month=month, status="closed")
            session.add(run)
            session.flush()
        assert run.id is not None
        session.add(PayrollCarry(branch="SZ01", month=month, cm_id=cm_id,
                                 risk_fund_balance=balance, level="assistant", run_id=run.id,
                                 leave_date=leave))
        session.commit()


def _movements(archive: Archive) -> list[RiskFundMovement]:
    with new_session(archive.engine) as session:
        return list(session.exec(select(RiskFundMovement).order_by(col(RiskFundMovement.id))))


def _movement(archive: Archive, movement_id: int) -> RiskFundMovement:
    with new_session(archive.engine) as session:
        movement = session.get(RiskFundMovement, movement_id)
        assert movement is not None
        return movement


def _risk_fund_audit(archive: Archive) -> list[str]:
    with new_session(archive.engine) as session:
        return [e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))
                if e.action.startswith(("risk-fund", "client-dispute"))]


def _drive(archive: Archive, movement_id: int) -> ChainDriver:
    driver = ChainDriver(
        lambda: risk_fund(movement_id=movement_id, wait="pause", poll_interval=0.1),
        run_id=lambda: _movement(archive, movement_id).flow_run_id,
        attempts=lambda: _movement(archive, movement_id).form_attempts,
    ).start()
    driver.wait_paused()
    return driver


def _export(tmp_path: Path, month: str, commission: str = "80000") -> Path:
    """cm1 (sales CM, cap 10000) with one client: 80,000 commission gives 24,920.00 gross,
    5% = 1,246.00 withheld while below the cap (tests/data/policy_simple.toml)."""
    return write_export(tmp_path / month, staff=[staff_row("cm1", month=month, name="杨帆")],
                        clients=[client_row("c1", "cm1", month=month,
                                            gross_commission=commission)])


def _line(archive: Archive, run: PayrollRun, cm_id: str) -> dict[str, Any]:
    assert run.id is not None
    with new_session(archive.engine) as session:
        return next(line for line in run_lines(session, run_id=run.id)  # type: ignore[misc]
                    if line["cm_id"] == cm_id)


def _balance(archive: Archive, cm_id: str, month: str) -> PayrollCarry:
    with new_session(archive.engine) as session:
        return session.exec(select(PayrollCarry).where(PayrollCarry.cm_id == cm_id,
                                                       PayrollCarry.month == month)).one()


# --------------------------------------------------------------------------- pure rules


def test_the_rules_of_deductions_refund_dates_and_applying_movements() -> None:
    assert refund_due_date(date(2026, 8, 31)) == date(2027, 2, 28)
    assert refund_due_date(date(2027, 8, 31)) == date(2028, 2, 29)  # a leap year
    assert refund_due_date(date(2026, 3, 15)) == date(2026, 9, 15)
    assert refund_due_date(date(2026, 12, 31)) == date(2027, 6, 30)
    assert len(CAUSES) == 5
    assert CAUSES["uncontrolled_risk_loss"] == "业务风险未有效控制而给公司造成损失"
    assert check_deduction(cause="criminal_penalty", amount="1250.5",
                           available=Decimal("2000")) == ("criminal_penalty", Decimal("1250.50"))
    for cause, amount, column in ((None, "10", "--cause"), ("theft", "10", "--cause"),
                                  ("criminal_penalty", "-5", "--amount"),
                                  ("criminal_penalty", "0", "--amount"),
                                  ("criminal_penalty", "1.005", "--amount"),
                                  ("criminal_penalty", "1e3", "--amount"),
                                  ("criminal_penalty", "2000.01", "--amount")):
        with pytest.raises(BadInput) as refused:
            check_deduction(cause=cause, amount=amount, available=Decimal("2000"))
        assert refused.value.column == column, (cause, amount)
    exported = CarriedState(risk_fund_balance=Decimal("5000"),
                            source={"risk_fund_balance": "5000", "as_of": "2026-09"})
    state = {"a": CarriedState(risk_fund_balance=Decimal("10000")), "b": exported}
    applied = apply_movements(state, [Movement(2, "a", "deduction", Decimal("3000")),
                                      Movement(3, "b", "refund", Decimal("5000")),
                                      Movement(1, "a", "deduction", Decimal("500.25"))])
    assert applied["a"].risk_fund_balance == Decimal("6499.75")
    assert applied["b"].risk_fund_balance == Decimal("0.00")
    assert applied["b"].source == {"risk_fund_balance": "0.00", "as_of": "2026-09"}
    assert state["a"].risk_fund_balance == Decimal("10000")  # the opening state is kept


# --------------------------------------------------------------------------- bad input


def test_bad_deductions_and_refunds_are_refused_with_exit_2_and_nothing_written(
    archive: Archive, roster: None, cli
) -> None:
    _carry(archive, "cm1", "10000.00")
    _carry(archive, "cm2", "800.00")  # has not left
    base = ["riskfund", "deduct", "--branch", "SZ01", "--cm", "cm1", "--reason", "客户投诉赔偿"]
    cause = ["--cause", "uncontrolled_risk_loss"]
    for args, column, words in (
            ([*cause, "--amount", "10000.01"], "--amount", "10000.00"),  # above the balance
            (["--amount", "3000"], "--cause", "five causes"),  # no cause
            (["--cause", "theft", "--amount", "3000"], "--cause", "theft"),
            ([*cause, "--amount=-5"], "--amount", "positive"),
            ([*cause, "--amount", "100.005"], "--amount", "two decimal"),
            ([*cause, "--amount", "三千"], "--amount", "positive")):
        refused = cli(*base, *args, user="bm1")
        assert refused.code == 2, (args, refused.out, refused.err)
        assert column in refused.err and words in refused.err, refused.err
    empty = cli("riskfund", "deduct", "--branch", "SZ01", "--cm", "cm1", *cause, "--amount",
                "10", "--reason", " ", user="bm1")
    assert empty.code == 2 and "--reason" in empty.err
    unknown = cli("riskfund", "deduct", "--branch", "SZ01", "--cm", "cm9", *cause, "--amount",
                  "10", "--reason", "x", user="bm1")
    assert unknown.code == 2 and "--cm" in unknown.err
    for who in ("fm1", "cm1", "gzbm"):  # only the branch's own branch manager proposes
        assert cli(*base, *cause, "--amount", "10", user=who).code == 3, who
    not_left = cli("riskfund", "refund", "--branch", "SZ01", "--cm", "cm2", user="fm1")
    assert not_left.code == 2 and "has not left" in not_left.err and "--cm" in not_left.err
    assert cli("riskfund", "refund", "--branch", "SZ01", "--cm", "cm2", user="cm2").code == 3
    future = cli("riskfund", "refunds", "--branch", "SZ01", "--today", "2027-02-30",
                 user="fm1")
    assert future.code == 2 and "--today" in future.err
    assert _movements(archive) == []
    assert _risk_fund_audit(archive) == []
    balance = cli("riskfund", "balance", "--branch", "SZ01", "--cm", "cm1", "--format", "json",
                  user="cm1")  # the CM sees their own balance; another CM does not
    assert balance.code == 0 and json.loads(balance.out)["available"] == "10000.00"
    assert cli("riskfund", "balance", "--branch", "SZ01", "--cm", "cm1", user="cm2").code == 3


# --------------------------------------------------------------------------- deduction


def test_a_deduction_is_signed_archived_and_withholding_resumes_up_to_the_cap(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    _carry(archive, "cm1", "10000.00")  # at the cap of a sales CM
    deployment_id = risk_fund.to_deployment(name="risk-fund").apply()
    proposed = cli("riskfund", "deduct", "--branch", "SZ01", "--cm", "cm1", "--cause",
                   "uncontrolled_risk_loss", "--amount", "3000", "--reason",
                   "违规承诺收益致客户损失，公司赔付", "--no-wait", user="bm1")
    assert proposed.code == 0, proposed.err
    found = re.search(r"risk-fund movement (\d+) proposed", proposed.out)
    assert found, proposed.out
    movement_id = int(found.group(1))
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # started by deployment name
        run = client.read_flow_run(UUID(proposed.out.split()[-1]))
    assert run.deployment_id == deployment_id and run.parameters == {"movement_id": movement_id}
    more = cli("riskfund", "deduct", "--branch", "SZ01", "--cm", "cm1", "--cause",
               "criminal_penalty", "--amount", "7000.01", "--reason", "x", "--no-start",
               user="bm1")  # the pending 3000 counts against the balance
    assert more.code == 2 and "7000.00" in more.err
    chain = _drive(archive, movement_id)  # the run the deployment made has no worker here
    assert "财务经理 审核扣除" in chain.description()
    chain.sign("bm1")                      # the proposer never signs
    chain.sign("cm1")                      # holds no finance role
    chain.sign("fm1", opinion="核实无误，同意扣除")
    serial = chain.join()
    assert serial.startswith("SZ01-RFD-")
    movement = _movement(archive, movement_id)
    assert (movement.status, movement.rfd_serial, movement.applied_month, movement.amount) == (
        "approved", serial, "", "3000.00")
    text = pdf_text(archive.get(serial, actor=user("cm1"))[1], tmp_path)  # the CM reads it
    for expected in ("风险基金扣除/退还审批单", "风险基金扣除",
                     "业务风险未有效控制而给公司造成损失", "3000.00", "10000.00", "7000.00",
                     "违规承诺收益致客户损失", "冯刚",
                     "核实无误，同意扣除", "周涛"):
        assert expected in text, expected
    with pytest.raises(AccessDenied):
        archive.get(serial, actor=user("cm2"))
    assert _risk_fund_audit(archive) == ["risk-fund-deduction-proposed", "risk-fund-signing",
                                         "risk-fund-approved"]

    # the closings after it: 10000 - 3000 = 7000, then 5% of 24,920.00 gross (1,246.00) each
    # month until the cap: 8,246.00, 9,492.00, then only 508.00 to reach 10,000.00
    expected = {"2026-10": ("1246.00", "8246.00"), "2026-11": ("1246.00", "9492.00"),
                "2026-12": ("508.00", "10000.00")}
    runs = {}
    for month, (withheld, balance) in expected.items():
        runs[month] = close_month(archive, _export(tmp_path, month), month)
        line = _line(archive, runs[month], "cm1")
        assert line["gross"] == "24920.00"
        assert (line["risk_fund_withheld"], line["risk_fund_balance"]) == (withheld, balance)
        assert _balance(archive, "cm1", month).risk_fund_balance == balance
    assert _movement(archive, movement_id).applied_month == "2026-10"
    with new_session(archive.engine) as session:
        assert [(r["kind_label"], r["cause_label"], r["amount"], r["rfd_serial"], r["name"])
                for r in movement_rows(session, branch="SZ01", month="2026-10")] == [
            ("风险基金扣除", "业务风险未有效控制而给公司造成损失", "3000.00", serial, "杨帆")]
        assert movement_rows(session, branch="SZ01", month="2026-11") == []
    pay = pdf_text(archive.get(runs["2026-10"].pay_serial, actor=user("bm1"))[1], tmp_path)
    assert "风险基金扣除/退还" in pay and serial in pay
    listed = cli("riskfund", "list", "--branch", "SZ01", "--format", "json", user="fm1")
    assert [(r["id"], r["status"], r["applied_month"]) for r in json.loads(listed.out)] == [
        (movement_id, "approved", "2026-10")]


def test_a_rejected_deduction_is_archived_as_a_record_and_applies_nothing(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    _carry(archive, "cm1", "10000.00")
    proposed = cli("riskfund", "deduct", "--branch", "SZ01", "--cm", "cm1", "--cause",
                   "criminal_penalty", "--amount", "2000", "--reason", "待核实", "--no-start",
                   user="bm1")
    found = re.search(r"risk-fund movement (\d+) proposed", proposed.out)
    assert proposed.code == 0 and found, proposed.out + proposed.err
    movement_id = int(found.group(1))
    chain = _drive(archive, movement_id)
    chain.sign("fm1", decision="reject", opinion="证据不足，不予扣除")
    assert chain.join() == "rejected"
    movement = _movement(archive, movement_id)
    assert (movement.status, movement.rfd_serial, movement.applied_month) == (
        "rejected", "", "")
    with new_session(archive.engine) as session:
        [record] = session.exec(select(ArchiveEntry)).all()
    assert record.doc_type == "RFD" and record.cm_id == "cm1"
    text = pdf_text(archive.get(record.serial, actor=user("cm1"))[1], tmp_path)
    for expected in ("风险基金扣除/退还审批单（未通过）", "证据不足，不予扣除", "不执行，余额不变",
                     "变动前 10000.00 → 变动后 10000.00"):
        assert expected in text, expected


# --------------------------------------------------------------------------- refund


def test_a_refund_is_due_six_months_after_leaving_waits_for_a_dispute_and_is_paid(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    _carry(archive, "cm3", "4321.50", leave=date(2026, 8, 31))  # left on 31 August
    _carry(archive, "cm1", "500.00")
    with new_session(archive.engine) as session:
        assert due_refunds(session, branch="SZ01", today=date(2027, 2, 27)) == []
        (due,) = due_refunds(session, branch="SZ01", today=date(2027, 2, 28))
    assert (due.cm_id, due.balance, due.leave_date, due.due_date) == (
        "cm3", Decimal("4321.50"), date(2026, 8, 31), date(2027, 2, 28))
    early = cli("riskfund", "refund", "--branch", "SZ01", "--cm", "cm3", "--today",
                "2027-02-27", "--no-start", user="fm1")
    assert early.code == 2 and "2027-02-28" in early.err

    # a client dispute recorded by the trading dept manager blocks it
    assert cli("riskfund", "dispute", "open", "--branch", "SZ01", "--cm", "cm3", "--kind",
               "dispute", "--description", "客户投诉", user="fm1").code == 3
    bad_kind = cli("riskfund", "dispute", "open", "--branch", "SZ01", "--cm", "cm3", "--kind",
                   "quarrel", "--description", "客户投诉", user="tm1")
    assert bad_kind.code == 2 and "--kind" in bad_kind.err
    opened = cli("riskfund", "dispute", "open", "--branch", "SZ01", "--cm", "cm3", "--kind",
                 "dispute", "--description", "客户投诉代客理财亏损", user="tm1")
    assert opened.code == 0, opened.err
    with new_session(archive.engine) as session:
        (dispute,) = session.exec(select(ClientDispute)).all()
        assert due_refunds(session, branch="SZ01", today=date(2027, 3, 1)) == []
    blocked = cli("riskfund", "refund", "--branch", "SZ01", "--cm", "cm3", "--today",
                  "2027-03-01", "--no-start", user="fm1")
    assert blocked.code == 2 and "open client dispute" in blocked.err
    listed = cli("riskfund", "refunds", "--branch", "SZ01", "--today", "2027-03-01",
                 "--format", "json", user="fm1")
    assert listed.code == 0 and json.loads(listed.out) == []
    no_note = cli("riskfund", "dispute", "clear", str(dispute.id), "--note", " ", user="tm1")
    assert no_note.code == 2 and "--note" in no_note.err
    assert cli("riskfund", "dispute", "clear", str(dispute.id), "--note", "已和解",
               user="bm1").code == 3
    cleared = cli("riskfund", "dispute", "clear", str(dispute.id), "--note",
                  "与客户和解，公司无损失", user="tm1")
    assert cleared.code == 0, cleared.err
    listed = cli("riskfund", "refunds", "--branch", "SZ01", "--today", "2027-03-01",
                 "--format", "json", user="fm1")
    assert [(r["cm_id"], r["balance"], r["due_date"]) for r in json.loads(listed.out)] == [
        ("cm3", "4321.50", "2027-02-28")]

    # the monthly flow proposes it and starts its run by deployment name, once
    deployment_id = risk_fund.to_deployment(name="risk-fund").apply()
    (row,) = risk_fund_refunds(branch="SZ01", today="2027-03-01", wait="pause",
                               poll_interval=0.1)
    assert (row["cm_id"], row["amount"], row["due_date"], row["new"]) == (
        "cm3", "4321.50", "2027-02-28", "true")
    (again,) = risk_fund_refunds(branch="SZ01", today="2027-03-01")
    assert again["new"] == "false" and again["flow_run"] == row["flow_run"]
    (movement,) = _movements(archive)
    assert movement.id is not None and movement.proposed_by == "system"
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(row["flow_run"]))
    assert run.deployment_id == deployment_id
    assert run.parameters["movement_id"] == movement.id
    with new_session(archive.engine) as session:  # listed no more while it is signed
        assert due_refunds(session, branch="SZ01", today=date(2027, 3, 1)) == []

    chain = _drive(archive, movement.id)   # the run the deployment made has no worker here
    chain.sign("bm1")                      # the finance manager signs first
    chain.sign("fm1", opinion="余额核对无误")
    assert "营业部经理 批准退还" in chain.description()
    chain.sign("fm1")                      # the same person may not sign both steps
    chain.sign("bm1", opinion="同意全额退还")
    serial = chain.join()
    assert serial.startswith("SZ01-RFD-")
    text = pdf_text(archive.get(serial, actor=user("cm3"))[1], tmp_path)
    for expected in ("风险基金退还", "4321.50", "0.00", "2026-08-31", "2027-02-28", "冯刚",
                     "周涛", "余额核对无误", "同意全额退还", "财务经理 审核退还"):
        assert expected in text, expected

    # the next closing sets the balance to 0 and PAY lists the refund
    run = close_month(archive, _export(tmp_path, "2026-10", commission="0"), "2026-10")
    carried = _balance(archive, "cm3", "2026-10")
    assert (carried.risk_fund_balance, carried.leave_date) == ("0.00", date(2026, 8, 31))
    assert _movement(archive, movement.id).applied_month == "2026-10"
    with new_session(archive.engine) as session:
        assert [(r["cm_id"], r["kind_label"], r["amount"], r["rfd_serial"])
                for r in movement_rows(session, branch="SZ01", month="2026-10")] == [
            ("cm3", "风险基金退还", "4321.50", serial)]
        assert due_refunds(session, branch="SZ01", today=date(2027, 3, 1)) == []
    pay = pdf_text(archive.get(run.pay_serial, actor=user("bm1"))[1], tmp_path)
    for expected in ("风险基金扣除/退还", "风险基金退还", "cm3", "4321.50", serial):
        assert expected in pay, expected
