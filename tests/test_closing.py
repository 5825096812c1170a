"""The monthly closing end to end: compute, archive PAY, sequential sign-off through Prefect,
archive PAS; re-runs, closed months and reopening."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.archive.service import Archive
from brokerflow.flows.closing import MonthClosed, monthly_closing
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import ArchiveEntry, AuditEvent, PayrollCarry, PayrollRun
from brokerflow.payroll.compute import compute_from_directory
from brokerflow.payroll.records import opening_state, record_run
from tests.support.chain_driver import ChainDriver
from tests.support.closings import latest_run, start_closing
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export
from tests.support.pdf import pdf_text

STAFF = [staff_row("cm1", name="杨帆", supervisor_id="sm1"),
         staff_row("sm1", name="韩梅", position="stationed")]
CLIENTS = [client_row("c1", "cm1", open_date="2026-10-05", purchases="6000", assets="300000",
                      turnover="1000000", gross_commission="2000"),
           client_row("c2", "sm1", assets="1000000", gross_commission="800")]


pytestmark = pytest.mark.usefixtures("development")  # static secrets, worker paths


def _latest(archive: Archive) -> PayrollRun | None:
    return latest_run(archive)


def _closing(archive: Archive, **params) -> ChainDriver:  # type: ignore[no-untyped-def]
    return start_closing(archive, policy=str(POLICY), **params)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "crm", staff=STAFF, clients=CLIENTS)


def test_closing_signs_in_order_and_archives_pay_and_pas(
    prefect_api: None, archive: Archive, roster: None, export: Path, user, tmp_path: Path
) -> None:
    chain = _closing(archive, data_dir=str(export))
    run = _latest(archive)
    assert run is not None and run.pay_serial.startswith("SZ01-PAY-")
    _, pay = archive.get(run.pay_serial, actor=user("bm1"))
    text = pdf_text(pay, tmp_path)
    assert "营业部客户经理薪酬月报表" in text and "杨帆" in text and "cm1" in text
    form = chain.description()
    assert run.pay_serial in form and "chief_accountant" in form
    chain.sign("dm1")                      # out of order: the chief accountant signs first
    chain.sign("gzbm")                     # another branch's manager
    chain.sign("ca1", opinion="复核无误")
    chain.sign("dm1", opinion="同意")
    chain.sign("bm1", opinion="同意发放")
    signed = chain.join()
    assert signed.startswith("SZ01-PAS-")
    run = _latest(archive)
    assert run is not None and run.status == "closed" and run.signed_serial == signed
    _, pas = archive.get(signed, actor=user("ca1"))
    text = pdf_text(pas, tmp_path)
    for expected in ("复核无误", "同意发放", "郑丽", "吴芳", "周涛", run.pay_serial, "备案"):
        assert expected in text, expected
    with new_session(archive.engine) as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.action == "refused")).all()
        carries = {c.cm_id: c for c in session.exec(select(PayrollCarry))}
    assert len(refused) == 2
    assert set(carries) == {"cm1", "sm1"} and carries["cm1"].month == MONTH
    # a closed month is refused ...
    with pytest.raises(MonthClosed):
        monthly_closing(branch="SZ01", month=MONTH, data_dir=str(export), policy=str(POLICY),
                        wait="pause", poll_interval=0.1)


def test_reopen_then_rerun_supersedes_and_applies_carry_once(
    prefect_api: None, archive: Archive, roster: None, export: Path, cli
) -> None:
    first = _closing(archive, data_dir=str(export))
    for signer in ("ca1", "dm1", "bm1"):
        first.sign(signer)
    first.join()
    with new_session(archive.engine) as session:
        carry_before = {c.cm_id: c.risk_fund_balance for c in session.exec(select(PayrollCarry))}
    assert cli("payroll", "reopen", "--branch", "SZ01", "--month", MONTH, "--reason", "补录",
               user="dm1").code == 3
    reopened = cli("payroll", "reopen", "--branch", "SZ01", "--month", MONTH, "--reason",
                   "补录一笔基金佣金", user="bm1")
    assert reopened.code == 0, reopened.err
    second = _closing(archive, data_dir=str(export))
    run = _latest(archive)
    assert run is not None and run.revision == 2
    with new_session(archive.engine) as session:
        entries = {e.serial: e.status for e in session.exec(select(ArchiveEntry))}
        carry_after = {c.cm_id: c.risk_fund_balance for c in session.exec(select(PayrollCarry))}
        reopen_events = session.exec(select(AuditEvent).where(
            AuditEvent.action == "payroll-reopened")).all()
    old_pay, old_pas = [s for s in entries if s.endswith("-000001") and "-PA" in s]
    assert entries[old_pay] == entries[old_pas] == "superseded"
    assert entries[run.pay_serial] == "current"
    assert carry_after == carry_before  # replaced, not added to
    assert len(reopen_events) == 1 and "补录一笔基金佣金" in reopen_events[0].content
    second.sign("ca1", decision="reject", opinion="数据有误")
    assert second.join() == "rejected"


def test_closing_reads_the_export_from_the_bucket(
    prefect_api: None, archive: Archive, roster: None, export: Path
) -> None:
    for name in ("staff.csv", "clients.csv"):
        data = (export / name).read_bytes()
        archive.inputs.client.put_object(
            archive.inputs.bucket, f"crm/SZ01/{MONTH}/{name}", io.BytesIO(data), len(data),
            metadata={"x-amz-checksum-sha256": "", "x-amz-sdk-checksum-algorithm": "SHA256"})
    chain = _closing(archive)
    run = _latest(archive)
    assert run is not None and run.status == "signing"
    chain.sign("ca1", decision="return", opinion="请核对")
    assert chain.join() == "returned"
    assert archive.verify().ok  # the crm/ objects are not taken for unindexed documents


def test_two_low_months_in_a_row_flag_a_demotion(archive: Archive, tmp_path: Path) -> None:
    """The database carries September's score and asset level into October's computation
    (SPEC §8.1 history): two scores below 60 make score_demotion_due."""
    low = [client_row("c1", "cm1", assets="1000")]  # no valid account: score 0.5
    september = write_export(tmp_path / "sep", staff=[staff_row("cm1", month="2026-09")],
                             clients=[{**c, "month": "2026-09"} for c in low])
    october = write_export(tmp_path / "oct", staff=[staff_row("cm1")], clients=low)
    with new_session(archive.engine) as session:
        state = opening_state(session, branch="SZ01", month="2026-09", exported={})
        sep = compute_from_directory(month="2026-09", data_dir=september, policy=POLICY,
                                     state=state)
        assert "score_demotion_due" not in sep.lines[0].flags
        record_run(session, branch="SZ01", month="2026-09", result=sep, flow_run_id="")
        session.commit()
        state = opening_state(session, branch="SZ01", month=MONTH, exported={})
    carried = state["cm1"]
    assert (carried.as_of, carried.prev_score, carried.prev_asset_level) == (
        "2026-09", Decimal("0.5000"), "assistant")
    oct_result = compute_from_directory(month=MONTH, data_dir=october, policy=POLICY,
                                        state=state)
    line = oct_result.lines[0]
    # no title: one below the level (assistant) is trainee, which gives the right to end
    assert {"score_demotion_due", "termination_right"} <= set(line.flags)
    assert line.title_next == "trainee"
