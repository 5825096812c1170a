"""Closings that check themselves (SPEC §10): counts against the CRM export, the roster and
the order of months, shown on PAY and in the sign-off form; rejected or returned closings end
in a state that says so, with their PAY superseded."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from prefect.client.orchestration import get_client
from sqlmodel import select

from brokerflow.approvals.attributions import make_effective, preregister
from brokerflow.approvals.chain import PAYROLL_CHAIN, Waiting
from brokerflow.approvals.forms import describe_waiting
from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import ArchiveEntry, AuditEvent, PayrollRun
from brokerflow.payroll.closing_checks import (
    LATER_CLOSED,
    MISMATCH,
    NO_EFFECTIVE,
    NOT_IN_STAFF,
    NOT_ON_ROSTER,
    PREVIOUS_OPEN,
    ClientTally,
    Discrepancy,
    closing_discrepancies,
)
from brokerflow.payroll.inputs import ClientRow
from brokerflow.payroll.records import month_statuses
from tests.support.chain_driver import ChainDriver
from tests.support.closings import latest_run, start_closing
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")  # static secrets, worker paths

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(first17: str) -> str:
    """A resident ID number with its GB 11643 check digit, for test data."""
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, WEIGHTS,
                                                                      strict=True)) % 11]


def row(client_id: str, cm_id: str, *, month: str = MONTH, crm: bool = True,
        malicious: bool = False) -> ClientRow:
    return ClientRow(row=0, month=month, client_id=client_id, client_type="individual",
                     cm_id=cm_id, open_date=date(2020, 1, 1), attribution_effective=crm,
                     malicious=malicious, purchases=Decimal(0), assets=Decimal(0),
                     turnover=Decimal(0), gross_commission=Decimal(0),
                     fund_sales_commission=Decimal(0))


def tallied(rows: list[ClientRow], database: set[str]) -> ClientTally:
    """The tally of ``rows`` when the database's attributions count the accounts
    ``database``."""
    tally = ClientTally(MONTH)
    counting = tally.counting(lambda r: r.client_id in database and not r.malicious)
    for r in rows:
        counting(r)
    return tally


def checks(tally: ClientTally | None = None, *, staff: tuple[str, ...] = (),
           roster: tuple[str, ...] | None = None, history: dict[str, str] | None = None,
           month: str = MONTH) -> list[Discrepancy]:
    return closing_discrepancies(month=month, tallies=tally.by_cm if tally else None,
                                 staff_ids=staff, roster_ids=staff if roster is None else roster,
                                 history=history or {})


# ----------------------------------------------------------------------------- pure rules


def test_a_count_the_crm_attributes_but_the_database_does_not_names_the_accounts() -> None:
    accounts = [f"8800{n:02d}" for n in range(1, 13)]
    missing = {"880003", "880007", "880011"}
    rows = [row(a, "cm1") for a in accounts] + [row("770001", "cm1", month="2026-09")]
    found = checks(tallied(rows, set(accounts) - missing), staff=("cm1",))
    assert [(d.kind, d.cm_id) for d in found] == [(MISMATCH, "cm1")]
    text = found[0].message_zh
    assert text == "CRM 记为归属 12 户，本系统已生效归属 9 户；差 3 户：880003, 880007, 880011"
    assert found[0].figures["crm_clients"] == 12  # September's row is not this month's
    assert found[0].line().startswith("【归属户数不符】cm1：CRM 记为归属 12 户")


def test_a_long_difference_names_five_accounts_and_counts_the_rest() -> None:
    rows = [row(f"C{n}", "cm1") for n in range(1, 11)]
    found = checks(tallied(rows, {"C1", "C2"}), staff=("cm1",))
    assert found[0].message_zh == ("CRM 记为归属 10 户，本系统已生效归属 2 户；"
                                   "差 8 户：C3, C4, C5, C6, C7, …")
    assert found[0].figures["crm_only"] == 8


def test_accounts_the_database_counts_but_the_crm_does_not_are_a_discrepancy_too() -> None:
    rows = [row("A1", "cm1"), row("A2", "cm1", crm=False), row("A3", "cm1", malicious=True)]
    found = checks(tallied(rows, {"A1", "A2", "A3"}), staff=("cm1",))
    assert [d.kind for d in found] == [MISMATCH]
    assert found[0].message_zh == ("CRM 记为归属 1 户，本系统已生效归属 2 户；"
                                   "本系统计入而 CRM 未记归属 1 户：A2")


def test_agreeing_counts_give_no_discrepancy() -> None:
    rows = [row("A1", "cm1"), row("A2", "cm1", crm=False), row("B1", "cm2")]
    assert checks(tallied(rows, {"A1", "B1"}), staff=("cm1", "cm2")) == []


def test_b_a_cm_with_crm_clients_and_no_effective_attribution_is_its_own_loud_kind() -> None:
    rows = [row("A1", "cm1"), row("B1", "cm2"), row("B2", "cm2"), row("B3", "cm2"),
            row("B4", "cm2", crm=False)]
    found = checks(tallied(rows, {"A1"}), staff=("cm1", "cm2"))
    assert [(d.kind, d.cm_id) for d in found] == [(NO_EFFECTIVE, "cm2")]
    assert found[0].message_zh == ("CRM 导出本月客户 4 户（CRM 记为归属 3 户），"
                                   "本系统无已生效归属，本月有效户按 0 计")
    assert found[0].figures["counted"] == 0 and found[0].label == "无已生效归属"


def test_counting_by_the_crm_column_has_nothing_to_compare() -> None:
    assert checks(None, staff=("cm1",)) == []


def test_c_staff_not_on_the_roster_and_roster_cms_missing_from_the_staff_file() -> None:
    found = checks(staff=("cm1", "cm9"), roster=("cm1", "cm2"))
    assert [(d.kind, d.cm_id) for d in found] == [(NOT_ON_ROSTER, "cm9"), (NOT_IN_STAFF, "cm2")]
    assert "花名册无此客户经理" in found[0].message_zh and "照常计薪" in found[0].message_zh
    assert "员工表本月无此人" in found[1].message_zh


def test_d_the_previous_month_left_open_after_closed_months() -> None:
    found = checks(history={"2026-08": "closed"})
    assert [(d.kind, d.cm_id) for d in found] == [(PREVIOUS_OPEN, None)]
    assert found[0].message_zh.startswith("上月 2026-09 未结账，本营业部已结账至 2026-08")
    rejected = checks(history={"2026-08": "closed", "2026-09": "rejected"})
    assert "上月 2026-09 未结账（未同意）" in rejected[0].message_zh
    assert checks(history={"2026-08": "closed", "2026-09": "closed"}) == []
    assert checks(history={}) == []  # the branch's first closing
    assert checks(history={MONTH: "rejected"}) == []  # the month itself is no history


def test_d_closing_september_after_october() -> None:
    found = checks(month="2026-09", history={"2026-08": "closed", "2026-10": "closed",
                                             "2026-11": "closed"})
    assert [d.kind for d in found] == [LATER_CLOSED]
    assert found[0].message_zh.startswith("后续月份 2026-10、2026-11 已先于本月结账")
    assert found[0].figures["later_closed"] == ["2026-10", "2026-11"]


def test_order_is_by_kind_then_natural_id_and_survives_json() -> None:
    rows = [row("X", "cm10"), row("Y", "cm2"), row("Z", "cm2")]
    found = checks(tallied(rows, {"Y"}), staff=("cm2", "cm10", "cm11"),
                   roster=("cm2", "cm10", "cm3"), history={"2026-08": "closed"})
    assert [(d.kind, d.cm_id) for d in found] == [
        (NO_EFFECTIVE, "cm10"), (MISMATCH, "cm2"), (NOT_ON_ROSTER, "cm11"),
        (NOT_IN_STAFF, "cm3"), (PREVIOUS_OPEN, None)]
    stored = json.loads(json.dumps([d.as_dict() for d in found], ensure_ascii=False))
    assert [Discrepancy.from_dict(d) for d in stored] == found


def test_the_form_shows_notes_escaped_above_the_decisions() -> None:
    waiting = Waiting(step=PAYROLL_CHAIN.steps[0], may_sign=("chief_accountant",))
    text = describe_waiting(title="t", subject="s", serial="SZ01-PAY-2026-000001", pdf_url="",
                            waiting=waiting, decisions=[], names={},
                            notes=("【无已生效归属】cm1：本月有效户按 0 计", "[x](http://e)"))
    assert "### 签批前请核对" in text and "- 【无已生效归属】cm1：本月有效户按 0 计" in text
    html = MarkdownIt("commonmark").render(text)
    assert "http://e" in html and "href" not in html  # a CRM value never becomes a link
    assert text.index("签批前请核对") < text.index("已有签批")


def test_month_statuses_read_the_latest_revision_of_each_month(archive: Archive) -> None:
    with new_session(archive.engine) as session:
        for month, revision, status in (("2026-08", 1, "closed"), ("2026-09", 1, "closed"),
                                        ("2026-09", 2, "signing"), ("2026-11", 1, "closed")):
            session.add(PayrollRun(branch="SZ01", month=month, revision=revision,
                                   status=status))
        session.add(PayrollRun(branch="GZ02", month="2026-09", status="closed"))
        session.commit()
        history = month_statuses(session, branch="SZ01")
    assert history == {"2026-08": "closed", "2026-09": "signing", "2026-11": "closed"}
    found = checks(history=history)
    assert [d.kind for d in found] == [PREVIOUS_OPEN, LATER_CLOSED]
    assert "上月 2026-09 未结账（签批中）" in found[0].message_zh


# ----------------------------------------------------------------------- real closings


def _latest(archive: Archive) -> PayrollRun | None:
    return latest_run(archive)


def _closing(archive: Archive, export: Path) -> ChainDriver:
    """The closing of SZ01 ``MONTH`` counted by the database's attributions, waiting for
    its first signature."""
    return start_closing(archive, policy=str(POLICY), data_dir=str(export))


def _flat(text: str) -> str:
    """PDF text without the line breaks and padding of its table cells."""
    return "".join(text.split())


def _entry_status(archive: Archive, serial: str) -> str:
    with new_session(archive.engine) as session:
        entry = session.get(ArchiveEntry, serial)
    assert entry is not None
    return entry.status


def _final_state(driver: ChainDriver) -> Any:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(driver.flow_run_id()).state
    assert state is not None
    return state


def test_a_cm_without_effective_attributions_is_flagged_and_a_rejection_says_so(
    prefect_api: None, archive: Archive, roster: None, user, tmp_path: Path
) -> None:
    staff = [staff_row("cm1", name="杨帆", supervisor_id="sm1"),
             staff_row("sm1", name="韩梅", position="stationed"),
             staff_row("cm9", name="新人", supervisor_id="sm1")]
    clients = [client_row(f"88000{n}", "cm1", open_date="2026-10-05", purchases="6000",
                          assets="300000", gross_commission="500") for n in range(1, 4)]
    export = write_export(tmp_path / "crm", staff=staff, clients=clients)
    chain = _closing(archive, export)
    run = _latest(archive)
    assert run is not None and run.pay_serial
    stored = json.loads(run.figures)["discrepancies"]
    flagged = next(d for d in stored if d["kind"] == NO_EFFECTIVE)
    assert flagged["cm_id"] == "cm1" and flagged["figures"]["crm_clients"] == 3
    assert {(d["kind"], d["cm_id"]) for d in stored} >= {(NOT_ON_ROSTER, "cm9"),
                                                          (NOT_IN_STAFF, "cm2")}
    _, pay = archive.get(run.pay_serial, actor=user("bm1"))
    text = _flat(pdf_text(pay, tmp_path))
    assert "核对差异" in text and "无已生效归属" in text
    assert "CRM导出本月客户3户（CRM记为归属3户），本系统无已生效归属，本月有效户按0计" in text
    assert "花名册无此人" in text
    form = chain.description()
    assert "签批前请核对" in form and f"核对差异 {len(stored)} 项" in form
    assert "【无已生效归属】cm1：CRM 导出本月客户 3 户" in form  # the loudest kind first
    with new_session(archive.engine) as session:
        computed = session.exec(select(AuditEvent).where(
            AuditEvent.action == "payroll-computed")).one()
    assert "无已生效归属" in json.loads(computed.content)["details"]["discrepancies"][0]["label"]

    chain.sign("ca1", decision="reject", opinion="有效户为0，先导入归属")
    assert chain.join() == "rejected"  # what in-process callers read
    state = _final_state(chain)
    assert state.name == "Rejected" and state.is_completed()
    assert "薪酬月报表未通过签批" in (state.message or "")
    assert "有效户为0，先导入归属" in (state.message or "")
    assert _entry_status(archive, run.pay_serial) == "superseded"
    rejected = _latest(archive)
    assert rejected is not None and rejected.status == "rejected"
    with new_session(archive.engine) as session:
        audited = session.exec(select(AuditEvent).where(
            AuditEvent.action == "payroll-rejected")).one()
    assert json.loads(audited.content)["details"]["pay"] == run.pay_serial

    again = _closing(archive, export)  # the month is closed again: a new revision
    rerun = _latest(archive)
    assert rerun is not None and rerun.revision == run.revision + 1
    assert rerun.pay_serial != run.pay_serial
    assert _entry_status(archive, rerun.pay_serial) == "current"
    again.sign("ca1", decision="return", opinion="请核对花名册")
    assert again.join() == "returned"
    assert _final_state(again).name == "Returned"
    assert _entry_status(archive, rerun.pay_serial) == "superseded"


def test_attributions_that_match_the_crm_export_leave_nothing_to_report(
    prefect_api: None, archive: Archive, roster: None, user, tmp_path: Path
) -> None:
    registrar = user("bk1")
    ids = {"880001": ("cm1", "19900101001"), "880002": ("cm2", "19900101002")}
    with new_session(archive.engine) as session:
        for client_id, (cm_id, digits) in ids.items():
            claim = preregister(session, registrar=registrar, cm_id=cm_id,
                                client_name=f"客户{client_id[-1]}",
                                id_number=make_id("440305" + digits), asset_size="1",
                                hash_key="k")
            make_effective(session, attribution=claim, client_id=client_id, actor_id="tm1",
                           at=datetime(2026, 10, 3, 2, 0, tzinfo=UTC))
        session.commit()
    staff = [staff_row("rm1", position="regional"),
             staff_row("sm1", position="stationed", supervisor_id="rm1"),
             staff_row("sm2", position="stationed", supervisor_id="rm1"),
             staff_row("cm1", supervisor_id="sm1"), staff_row("cm2", supervisor_id="sm1"),
             staff_row("cm3", supervisor_id="sm2")]
    clients = [client_row("880001", "cm1", open_date="2026-10-05", purchases="6000"),
               client_row("880002", "cm2", assets="20000"),
               client_row("880003", "cm2", attribution_effective="false")]
    export = write_export(tmp_path / "crm", staff=staff, clients=clients)
    chain = _closing(archive, export)
    run = _latest(archive)
    assert run is not None
    assert json.loads(run.figures)["discrepancies"] == []
    _, pay = archive.get(run.pay_serial, actor=user("bm1"))
    text = _flat(pdf_text(pay, tmp_path))
    assert "核对差异" in text and "与CRM导出核对一致，无差异" in text
    assert "无已生效归属" not in text
    assert "与CRM导出核对一致，无差异" in chain.description()
    for signer in ("ca1", "dm1", "bm1"):
        chain.sign(signer)
    signed = chain.join()
    assert signed.startswith("SZ01-PAS-")
    assert _final_state(chain).name == "Completed"
    _, pas = archive.get(signed, actor=user("bm1"))
    assert "与CRM导出核对一致，无差异" in _flat(pdf_text(pas, tmp_path))
    assert _entry_status(archive, run.pay_serial) == "current"
