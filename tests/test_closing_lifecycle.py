"""The closing carries the staff lifecycle (SPEC §8.1, §8.3): titles approved in the database,
investigations opened and concluded with sign-off, notices after a score below 60, and
``brokerflow staff show`` with SPEC §5 access."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from brokerflow.approvals.reminders import record_reminders
from brokerflow.archive.service import Archive
from brokerflow.flows.closing import monthly_closing
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.models import (
    ArchiveEntry,
    LevelChange,
    PayrollCarry,
    PayrollRun,
    StaffNotice,
    TitleRecord,
    WaitingStep,
)
from brokerflow.payroll.records import run_lines
from tests.support.closings import close_month
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export

pytestmark = pytest.mark.usefixtures("development")

STAFF = [staff_row("cm1", name="杨帆", supervisor_id="sm1"),
         staff_row("cm2", name="朱琳", supervisor_id="sm1"),
         staff_row("sm1", name="韩梅", position="stationed")]
# cm1: 6,000,000 average assets (senior by assets); cm2 and sm1 score 0.5 (below 60)
CLIENTS = ([client_row(f"old{k}", "cm1", month=m, assets="6000000")
            for k, m in enumerate(("2026-08", "2026-09", MONTH))]
           + [client_row("c2", "cm2", assets="1000"), client_row("c3", "sm1", assets="1000")])


def _close(archive: Archive, export: Path) -> dict[str, dict[str, object]]:
    """Close MONTH through the real sign-off; its lines by CM."""
    run = close_month(archive, export)
    assert run.id is not None
    with new_session(archive.engine) as session:
        return {line["cm_id"]: line for line in run_lines(session, run_id=run.id)}  # type: ignore[misc]


def test_a_closing_pays_by_title_withholds_under_investigation_and_raises_notices(
        prefect_api: None, archive: Archive, roster: None, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with new_session(archive.engine) as session:
        session.add(TitleRecord(branch="SZ01", cm_id="cm1", title="manager",
                                effective_month="2026-10", kind="opening",
                                document="(opening data)"))
        session.commit()
    assert cli("staff", "case", "open", "--cm", "cm1", "--reason", "借用他人资料开户",
               user="cm2").code == 3  # only the trading dept manager opens a case
    opened = cli("staff", "case", "open", "--cm", "cm1", "--reason", "借用他人资料开户",
                 user="tm1")
    assert opened.code == 0, opened.err
    # cm2 was below 60 in September too (the export's state: its first month here)
    lines = _close(archive, write_export(tmp_path / "crm", staff=STAFF, clients=CLIENTS,
                                         state={"cm2": {"as_of": "2026-09",
                                                        "prev_score": "0.5000"}}))
    cm1 = lines["cm1"]
    # title manager caps the senior assets: manager's 3000 fixed pay, all of it withheld
    assert (cm1["asset_level"], cm1["title"], cm1["level"]) == ("senior", "manager", "manager")
    assert cm1["fixed_pay"] == "3000.00" and cm1["fixed_pay_withheld"] == "3000.00"
    with new_session(archive.engine) as session:
        carry = session.exec(select(PayrollCarry).where(PayrollCarry.cm_id == "cm1")).one()
        notices = session.exec(select(StaffNotice).order_by(col(StaffNotice.cm_id))).all()
        waiting = {w.request_key for w in session.exec(select(WaitingStep))}
    assert (carry.title, carry.asset_level, carry.withheld_fixed_pay) == (
        "manager", "senior", "3000.00")
    # a score below 60 → next month's one-week 待岗培训, its statement due on 7 November
    # cm2's second month below 60 reaches trainee: a demotion proposed for the branch
    # manager to confirm, and an HR notice (nobody is terminated by the system)
    assert sorted((n.cm_id, n.kind, n.due) for n in notices) == [
        ("cm1", "training", date(2026, 11, 7)), ("cm2", "termination_right", None),
        ("cm2", "training", date(2026, 11, 7)), ("sm1", "training", date(2026, 11, 7))]
    with new_session(archive.engine) as session:
        (proposal,) = session.exec(select(LevelChange)).all()
    assert (proposal.cm_id, proposal.kind, proposal.from_title, proposal.to_title,
            proposal.status) == ("cm2", "demotion", "assistant", "trainee", "proposed")
    notices = [n for n in notices if n.kind == "training"]
    keys = {f"notice:SZ01:{n.id}" for n in notices}
    assert keys <= waiting
    with new_session(archive.engine) as session:  # reminded like any waiting step
        reminded = record_reminders(session, now=datetime(2027, 1, 1, tzinfo=UTC),
                                    limit=timedelta(hours=48))
        session.commit()
    assert keys <= {r.request_key for r in reminded}
    done = cli("staff", "notice-done", str(notices[1].id), "--note", "情况说明和保证书已收",
               user="sm1")
    assert done.code == 0, done.err
    assert cli("staff", "notice-done", str(notices[1].id), user="sm1").code == 2  # done already

    # a CM sees only themself; their stationed manager sees them; another CM does not
    mine = cli("staff", "show", "cm1", "--format", "json", user="cm1")
    assert mine.code == 0, mine.err
    shown = json.loads(mine.out)
    assert shown["titles"][0]["title"] == "manager" and shown["cases"][0]["status"] == "open"
    assert shown["latest_month"]["withheld_fixed_pay"] == "3000.00"
    assert cli("staff", "show", "cm1", user="sm1").code == 0
    assert cli("staff", "show", "cm1", user="cm2").code == 3
    assert cli("staff", "show", "cm1", user="gzbm").code == 3  # another branch


def test_a_case_is_concluded_signed_off_and_fined_in_the_month_it_names(
        archive: Archive, roster: None, cli) -> None:  # type: ignore[no-untyped-def]
    from brokerflow.payroll.cases import investigation_figures

    assert cli("staff", "case", "open", "--cm", "cm2", "--reason", "虚送股东卡",
               user="tm1").code == 0
    with new_session(archive.engine) as session:
        assert investigation_figures(session, branch="SZ01", month=MONTH) == {
            "cm2": (True, 0)}
    bad = cli("staff", "case", "conclude", "1", "--outcome", "confirmed", "--accounts", "0",
              "--month", MONTH, "--reason", "x", user="tm1")
    assert bad.code == 2 and "--accounts" in bad.err
    concluded = cli("staff", "case", "conclude", "1", "--outcome", "confirmed", "--accounts",
                    "2", "--month", MONTH, "--reason", "两户借用他人资料", user="tm1")
    assert concluded.code == 0, concluded.err
    with new_session(archive.engine) as session:  # still withheld until the sign-off
        assert investigation_figures(session, branch="SZ01", month=MONTH) == {
            "cm2": (True, 0)}
    assert cli("staff", "case", "sign-off", "1", user="tm1").code == 3  # not a branch manager
    assert cli("staff", "case", "sign-off", "1", user="bm1").code == 0
    with new_session(archive.engine) as session:
        assert investigation_figures(session, branch="SZ01", month=MONTH) == {
            "cm2": (False, 2)}
        assert investigation_figures(session, branch="SZ01", month="2026-11") == {}


def _close_month(archive: Archive, export: Path, month: str) -> str:
    return close_month(archive, export, month).signed_serial


def _balance(archive: Archive, month: str) -> str:
    with new_session(archive.engine) as session:
        carry = session.exec(select(PayrollCarry).where(PayrollCarry.cm_id == "cm1",
                                                        PayrollCarry.month == month)).one()
    return carry.risk_fund_balance


def test_a_corrected_month_reopens_the_months_closed_after_it(
        prefect_api: None, archive: Archive, roster: None, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def export(month: str, commission: str, *also: str) -> Path:
        return write_export(tmp_path / f"{month}-{commission}", staff=[
            staff_row(cm, month=month, name="杨帆") for cm in ("cm1", *also)], clients=[
            client_row("c1", "cm1", month=month, gross_commission=commission)])

    # cm1, assistant: no revenue, 2000 + 120 = 2,120 gross; 5% = 106.00 to the risk fund
    # (cm2 is paid by September's first closing only)
    assert _close_month(archive, export("2026-09", "0", "cm2"), "2026-09").startswith(
        "SZ01-PAS-")
    assert _close_month(archive, export(MONTH, "0"), MONTH).startswith("SZ01-PAS-")
    assert (_balance(archive, "2026-09"), _balance(archive, MONTH)) == ("106.00", "212.00")
    assert cli("payroll", "reopen", "--branch", "SZ01", "--month", "2026-09", "--reason",
               "补录佣金", user="bm1").code == 0
    # 20,000 commission: net revenue 19,000, score 0.2 × 19,000 / 4,000 = 0.95, commission
    # 19,000 × 0.25 × 0.95 = 4,512.50; gross 6,632.50 → 5% = 331.625 → 331.63
    assert _close_month(archive, export("2026-09", "20000"), "2026-09").startswith("SZ01-PAS-")
    assert _balance(archive, "2026-09") == "331.63"
    with new_session(archive.engine) as session:  # every payslip of the first closing is gone
        payslips = session.exec(select(ArchiveEntry).where(
            ArchiveEntry.doc_type == "PSL", ArchiveEntry.month == "2026-09")).all()
    assert sorted((p.cm_id, p.revision, p.status) for p in payslips) == [
        ("cm1", 1, "superseded"), ("cm1", 2, "current"), ("cm2", 1, "superseded")]
    with new_session(archive.engine) as session:
        october = session.exec(select(PayrollRun).where(PayrollRun.month == MONTH)).one()
    assert october.status == "reopened"  # closed on September's old state
    with pytest.raises(BadInput, match="2026-10 is reopened"):
        monthly_closing(branch="SZ01", month="2026-11", policy=str(POLICY), wait="pause",
                        data_dir=str(export("2026-11", "0")), poll_interval=0.1,
                        attribution_source="crm")
    assert _close_month(archive, export(MONTH, "0"), MONTH).startswith("SZ01-PAS-")
    assert _balance(archive, MONTH) == "437.63"  # 331.63 + 106.00: from the corrected state
