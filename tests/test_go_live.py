"""A new branch goes live from the README alone (SPEC §10, the go-live checklist): the fill-in
templates, filled the way Excel on Chinese Windows saves them (GBK, Chinese headers, 是/否,
个人/机构, a month cell turned into a date) → roster → branch registry → opening attributions
(approved by the trading dept manager and the branch manager) → pay-rules filing → first
closing, on the real Prefect test server, S3 endpoint and database.  The first closing pays
what ``payroll compute`` computes on the same data, with no discrepancy flagged; the commands
a new user gets wrong exit non-zero with the reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.archive.service import Archive
from brokerflow.flows.filing import filing_chain
from brokerflow.flows.opening_import import attribution_import
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import Attribution, Filing
from brokerflow.kernel.opening_models import OpeningImport
from brokerflow.kernel.roster import get_user_view
from brokerflow.payroll.records import run_lines
from tests.support.chain_driver import ChainDriver
from tests.support.closings import latest_run, start_closing
from tests.support.paths import DATA
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")  # signers sign with pw-<user>

BRANCH, MONTH = "BJ02", "2026-10"
POLICY = DATA / "policy_simple.toml"
BRANCH_NAME = "北京朝阳门证券营业部"

ROSTER = [  # 工号,姓名,角色,营业部,团队,上级工号,初始口令 -- roles by their Chinese names
    ["admin9", "系统管理员", "系统管理员", "HQ", "", "", "pw-admin9"],
    ["hq_bo1", "王敏", "经纪业务综合室", "HQ", "", "", "pw-hq_bo1"],
    ["hq_bo2", "刘洋", "经纪业务综合室", "HQ", "", "", "pw-hq_bo2"],
    ["hq_ch", "李强", "渠道管理部", "HQ", "", "", "pw-hq_ch"],
    ["hq_comp", "赵静", "compliance", "HQ", "", "", "pw-hq_comp"],
    ["hq_vp", "孙伟", "主管副总裁", "HQ", "", "", "pw-hq_vp"],
    ["bj_bm", "周涛", "营业部经理", BRANCH, "", "", "pw-bj_bm"],
    ["bj_dm", "吴芳", "副经理", BRANCH, "", "", "pw-bj_dm"],
    ["bj_ca", "郑丽", "主办会计", BRANCH, "", "", "pw-bj_ca"],
    ["bj_fm", "冯刚", "财务经理", BRANCH, "", "", "pw-bj_fm"],
    ["bj_tm", "陈杰", "交易部经理", BRANCH, "", "", "pw-bj_tm"],
    ["bj_cc", "褚燕", "柜台人员", BRANCH, "", "", "pw-bj_cc"],
    ["bj_mk", "邓琪", "市场营销部", BRANCH, "", "", "pw-bj_mk"],
    ["bj_pd", "卫东", "项目总监", BRANCH, "P1", "", "pw-bj_pd"],
    ["bj_bk", "蒋红", "后勤支持岗", BRANCH, "P1", "bj_pd", "pw-bj_bk"],
    ["bj_sm", "韩梅", "驻点经理", BRANCH, "T1", "bj_pd", "pw-bj_sm"],
    ["bj_cm1", "杨帆", "营销经理", BRANCH, "T1", "bj_sm", "pw-bj_cm1"],
    ["bj_cm2", "朱琳", "营销经理", BRANCH, "T1", "bj_sm", "pw-bj_cm2"],
]
BRANCHES = [[BRANCH, BRANCH_NAME, "北京市朝阳区朝阳门外大街1号", "010-12345678"]]
# 资金账号,客户经理工号,生效日期,依据,客户姓名,证件号码: clients attributed on paper before
# the go-live, three of them opened in the first month
ATTRIBUTIONS = [
    ["880001", "bj_cm1", "2026-10-08", "纸质客户确认登记表", "孙悦", ""],
    ["880002", "bj_cm1", "2026/10/15", "纸质客户确认登记表", "某某投资有限公司", ""],
    ["880003", "bj_cm1", "2023-05-04", "原系统归属记录", "李雷", ""],
    ["880004", "bj_cm2", "2026年10月20日", "纸质客户确认登记表", "韩梅梅", ""],
    ["880005", "bj_cm2", "2022-01-10", "原系统归属记录", "王磊", ""],
    ["880006", "bj_cm2", "2026-10-25", "纸质客户确认登记表", "刘芳", ""],
]
STAFF = [  # the template's columns, Chinese values; the month as Excel turned it into a date
    ["2026/10/1", "bj_sm", "韩梅", "驻点经理", "", "朝阳门", "2021-03-01", "是",
     "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "否", "否", "0", ""],
    ["2026/10/1", "bj_cm1", "杨帆", "营销经理", "bj_sm", "朝阳门", "2024-02-01", "是",
     "1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "否", "否", "0", ""],
    ["2026-10", "bj_cm2", "朱琳", "客户经理", "bj_sm", "朝阳门", "2025-11-01", "否",
     "0", "1", "0", "0", "0", "0", "0", "0", "0", "0", "100", "否", "否", "0", ""],
]
CLIENTS = [  # the template's columns: 是/否, 个人/机构, the month as a date
    ["2026/10/1", "880001", "个人", "bj_cm1", "2026-10-08", "是", "否",
     "12000.00", "56000.00", "24000.00", "60.00", "0"],
    ["2026/10/1", "880002", "机构", "bj_cm1", "2026-10-15", "是", "否",
     "3000.00", "80000.00", "6000.00", "15.00", "0"],
    ["2026/10/1", "880003", "个人", "bj_cm1", "2023-05-04", "是", "否",
     "0", "300000.00", "150000.00", "450.00", "20.00"],
    ["2026/10/1", "880004", "个人", "bj_cm2", "2026-10-20", "是", "否",
     "8000.00", "9000.00", "16000.00", "30.00", "0"],
    ["2026/10/1", "880005", "个人", "bj_cm2", "2022-01-10", "是", "否",
     "0", "1200000.00", "900000.00", "2400.00", "100.00"],
    ["2026/10/1", "880006", "个人", "bj_cm2", "2026-10-25", "是", "否",
     "1000.00", "2000.00", "2000.00", "5.00", "0"],
]


def _fill(templates: Path, stem: str, rows: list[list[str]], out: Path) -> Path:
    """The template's Chinese header line and the branch's rows, saved as GBK with CRLF."""
    header = (templates / f"{stem}.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert len(header.split(",")) == len(rows[0]), header
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + [",".join(row) for row in rows]
    out.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    return out


def _row(archive: Archive, model, key):  # type: ignore[no-untyped-def]
    with new_session(archive.engine) as session:
        row = session.get(model, key)
        assert row is not None
        return row


def _import_opening_attributions(archive: Archive, cli, files: Path) -> None:  # type: ignore[no-untyped-def]
    imported = cli("attribution", "import", str(files / "attributions.csv"), "--branch", BRANCH,
                   "--no-start", user="bj_tm")
    assert imported.code == 0, imported.err
    found = re.search(r"opening import (\d+) waiting", imported.out)
    assert found, imported.out
    import_id = int(found.group(1))
    chain = ChainDriver(
        lambda: attribution_import(import_id=import_id, wait="pause", poll_interval=0.1),
        run_id=lambda: _row(archive, OpeningImport, import_id).flow_run_id,
        attempts=lambda: _row(archive, OpeningImport, import_id).form_attempts,
    ).start()
    chain.wait_paused()
    chain.sign("bj_tm", opinion="与纸质登记表核对一致")
    chain.sign("bj_bm", opinion="同意导入")
    assert chain.join() == "approved"
    again = cli("attribution", "import", str(files / "attributions.csv"), "--branch", BRANCH,
                "--no-start", user="bj_tm")  # conflicts are refused row by row
    assert again.code == 2 and "Traceback" not in again.err
    assert all(f"row {n}" in again.err for n in range(2, 8)), again.err


def _file_pay_rules(archive: Archive, cli) -> None:  # type: ignore[no-untyped-def]
    """The pay-rules filing through the whole filing chain; a signature by someone who may
    not sign the waiting step is refused with the reason (exit 3)."""
    submitted = cli("filing", "submit", "--branch", BRANCH, "--kind", "pay_rules", "--subject",
                    "营销团队薪酬办法", "--policy", str(POLICY), "--effective-month", "2026-01",
                    "--no-start", user="bj_bk")
    assert submitted.code == 0, submitted.err
    filing_id = int(submitted.out.split()[1])
    chain = ChainDriver(
        lambda: filing_chain(filing_id=filing_id, wait="pause", poll_interval=0.1),
        run_id=lambda: _row(archive, Filing, filing_id).flow_run_id,
        attempts=lambda: _row(archive, Filing, filing_id).form_attempts,
    ).start()
    chain.wait_paused()
    refused = cli("filing", "sign", str(filing_id), "--timeout", "60", user="hq_ch")
    assert refused.code == 3, (refused.out, refused.err)
    assert "refused" in refused.err and "Traceback" not in refused.err
    signed = cli("filing", "sign", str(filing_id), "--timeout", "60", user="hq_bo1")
    assert signed.code == 0 and "was counted" in signed.out, signed.err
    for signer, extra in (("hq_ch", {"departments": ["compliance"]}), ("hq_comp", {}),
                          ("hq_bo2", {}), ("hq_vp", {})):
        chain.sign(signer, **extra)
    assert chain.join().startswith(f"{BRANCH}-FOP-")


def test_a_new_branch_goes_live_from_gbk_templates_and_pays_what_compute_says(
    prefect_api: None, archive: Archive, cli, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    made = cli("templates", str(templates))
    assert made.code == 0, made.err
    files, export = tmp_path / "filled", tmp_path / "crm" / MONTH

    # 1. roster: open into the empty database; every chain staffed, so no warning
    roster = cli("roster", "load", str(_fill(templates, "roster", ROSTER, files / "roster.csv")))
    assert roster.code == 0, roster.err
    assert "warning" not in roster.err, roster.err
    # 2. branch registry
    branches = _fill(templates, "branches", BRANCHES, files / "branches.csv")
    assert cli("branch", "load", str(branches), user="bj_tm").code == 3  # admins only
    loaded = cli("branch", "load", str(branches), user="admin9")
    assert loaded.code == 0, loaded.err
    checked = cli("branch", "check", user="admin9")
    assert checked.code == 0, checked.out + checked.err
    # 3. opening attributions, approved
    _fill(templates, "attributions", ATTRIBUTIONS, files / "attributions.csv")
    _import_opening_attributions(archive, cli, files)
    with new_session(archive.engine) as session:
        effective = session.exec(select(Attribution.client_id).where(
            Attribution.status == "effective")).all()
    assert sorted(c or "" for c in effective) == [row[0] for row in ATTRIBUTIONS]
    # 4. the pay rules, filed and approved
    _file_pay_rules(archive, cli)

    # 5. the first closing on the CRM export, as the branch has it
    _fill(templates, "staff", STAFF, export / "staff.csv")
    _fill(templates, "clients", CLIENTS, export / "clients.csv")
    computed = cli("payroll", "compute", "--month", MONTH, "--data", str(export), "--policy",
                   str(POLICY))
    assert computed.code == 0, computed.err
    expected = json.loads(computed.out)
    assert [line["valid_accounts"] for line in expected["lines"]] == [4, 1, 0]  # institution: 3

    chain = start_closing(archive, branch=BRANCH, month=MONTH, data_dir=str(export))
    assert "与CRM导出核对一致，无差异" in chain.description()  # what the signers see
    for signer in ("bj_ca", "bj_dm", "bj_bm"):
        chain.sign(signer)
    assert chain.join().startswith(f"{BRANCH}-PAS-")

    run = latest_run(archive, BRANCH)
    assert run is not None and run.id is not None and run.status == "closed"
    assert json.loads(run.figures or "{}").get("discrepancies") == []
    with new_session(archive.engine) as session:
        lines = run_lines(session, run_id=run.id)
    paid = {str(line["cm_id"]): (line["valid_accounts"], line["gross"], line["net_pay"])
            for line in lines}
    assert paid == {line["cm_id"]: (line["valid_accounts"], line["gross"], line["net_pay"])
                    for line in expected["lines"]}
    assert json.loads(run.totals) == expected["totals"]
    with new_session(archive.engine) as session:
        branch_manager = get_user_view(session, "bj_bm")
    assert branch_manager is not None
    _, pay = archive.get(run.pay_serial, actor=branch_manager)
    text = "".join(pdf_text(pay, tmp_path).split())
    assert "与CRM导出核对一致，无差异" in text and BRANCH_NAME in text

    # 6. what a new user gets wrong is refused with the reason
    wrong_month = cli("payroll", "close", "--branch", BRANCH, "--month", "2026/10",
                      user="bj_ca")
    assert wrong_month.code == 2 and "--month" in wrong_month.err
    closed = cli("payroll", "close", "--branch", BRANCH, "--month", MONTH, user="bj_ca")
    assert closed.code == 2 and "payroll reopen" in closed.err, closed.err
    assert "Traceback" not in wrong_month.err + closed.err
