"""Documents read like the branch's paper forms (SPEC §9): Chinese labels, ids in natural
order, each opinion once, a 签批单, 合计 rows and the 流水号 on every page."""

from __future__ import annotations

import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokerflow.approvals.chain import Decision
from brokerflow.flows.closing import report_data
from brokerflow.flows.filing import result_document_data
from brokerflow.kernel.models import Filing, PayrollRun
from brokerflow.kernel.ordering import natural_key
from brokerflow.kernel.render import DocumentRenderer
from brokerflow.kernel.vocabulary import FLAG_LABELS, LEVEL_LABELS
from brokerflow.payroll.compute import compute_from_directory, line_json
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export

SERIAL = "SZ01-PAY-2026-000042"
#: Codes a person must never read on PAY/PAS (levels, positions, flags).
RAW_CODES = ("manager", "senior", "assistant", "trainee", "unqualified_reduction",
             "score_below_60", "excess_carried", "stationed", "regional")
SIGN_OFF = [
    {"role": "主办会计 审核", "name": "郑丽", "decision": "approve",
     "time": "2026-11-02 09:10", "opinion": "复核无误"},
    {"role": "副经理/经理助理 审核", "name": "吴芳", "decision": "approve",
     "time": "2026-11-02 10:20", "opinion": "同意"},
    {"role": "营业部经理 审批", "name": "周涛", "decision": "approve",
     "time": "2026-11-02 11:30", "opinion": "同意发放"},
]


def _pages(pdf: bytes, tmp_path: Path) -> list[str]:
    """The text of each page (pdftotext separates pages by form feeds)."""
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                         text=True, check=True).stdout
    return [page for page in out.split("\f") if page.strip()]


@pytest.fixture(scope="module")
def payroll(tmp_path_factory: pytest.TempPathFactory) -> tuple[PayrollRun, list[dict[str, Any]]]:
    """A real closing's run and lines: 60 CMs (cm1 … cm60), some at 经理 and 高级, one
    without the qualification, most below a score of 60."""
    staff, clients = [], []
    for n in range(1, 61):
        cm = f"cm{n}"
        staff.append(staff_row(cm, name=f"客户经理{n}", position="stationed" if n == 5 else "cm",
                               qualified="false" if n == 7 else "true"))
        assets = {2: "6000000", 10: "18000000", 7: "6000000"}.get(n, "300000")
        revenue = "90000" if n in (2, 7, 10) else "500"
        clients.append(client_row(f"A{n:04d}", cm, assets=assets, purchases=assets,
                                  open_date=f"{MONTH}-0{1 + n % 9}", turnover="1000000",
                                  gross_commission=revenue))
    export = write_export(tmp_path_factory.mktemp("crm"), staff=staff, clients=clients)
    result = compute_from_directory(month=MONTH, data_dir=export, policy=POLICY)
    run = PayrollRun(branch="SZ01", month=MONTH, revision=1, totals=json.dumps(
        {k: f"{v:.2f}" for k, v in result.totals.items()}), policy_version=1,
        policy_filing="SZ01-FIL-2026-000001", figures="{}")
    lines = [json.loads(json.dumps(line_json(line) | {"name": line.name, "position":
                                                      line.position})) for line in result.lines]
    lines.sort(key=lambda line: str(line["cm_id"]))  # as stored: cm1, cm10, cm11 … cm2
    return run, lines


def test_pay_reads_in_chinese_in_natural_order_with_a_total_and_the_serial_on_every_page(
    renderer: DocumentRenderer, payroll: tuple[PayrollRun, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    run, lines = payroll
    by_id = {str(line["cm_id"]): line for line in lines}
    assert (by_id["cm2"]["level"], by_id["cm10"]["level"]) == ("manager", "senior")
    assert "unqualified_reduction" in by_id["cm7"]["flags"]
    assert "score_below_60" in by_id["cm3"]["flags"]
    data = report_data(run, lines, signatures=[]) | {"serial": SERIAL}
    pages = _pages(renderer.render_pdf("PAY", data), tmp_path)
    assert len(pages) >= 2
    for page in pages:  # the running header: 流水号 on every page, page 1 included
        head = "\n".join(page.splitlines()[:3])
        assert re.search(r"流水号：\s*" + SERIAL, head), head
    text = "\n".join(pages)
    for code in RAW_CODES:
        assert not re.search(rf"\b{code}\b", text), code
    for label in (LEVEL_LABELS["manager"], LEVEL_LABELS["senior"], "营销经理",
                  FLAG_LABELS["unqualified_reduction"], FLAG_LABELS["score_below_60"]):
        assert label in re.sub(r"\s+", "", text), label  # a long label may wrap
    order = [m.group(1) for m in re.finditer(r"^\s*(cm\d+)\s", text, re.MULTILINE)]
    assert order == sorted(by_id, key=natural_key)  # cm1, cm2 … cm9, cm10 … cm60
    assert order.index("cm2") < order.index("cm10")
    total = next(line for line in text.splitlines() if line.strip().startswith("合计"))
    expected = [sum(Decimal(str(line[key])) for line in lines) for key in (
        "valid_accounts", "fixed_pay", "commission", "gross", "risk_fund_withheld", "net_pay")]
    assert [Decimal(v) for v in total.split()[1:]] == expected
    assert f"{expected[3]:.2f}" == json.loads(run.totals)["gross"]
    for step in ("主办会计 审核", "副经理 审核", "营业部经理 签批"):  # empty boxes, as on paper
        assert step in text, step
    assert text.count("待签") == 3


def test_pas_shows_the_sign_off_as_a_paper_form_each_opinion_once(
    renderer: DocumentRenderer, payroll: tuple[PayrollRun, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    run, lines = payroll
    data = report_data(run, lines[:5], signatures=SIGN_OFF, draft_serial=SERIAL)
    text = "\n".join(_pages(renderer.render_pdf("PAS", data | {"serial": "SZ01-PAS-2026-1"}),
                            tmp_path))
    assert "签批栏" in text and SERIAL in text
    for code in RAW_CODES:
        assert not re.search(rf"\b{code}\b", text), code
    for s in SIGN_OFF:
        assert s["role"] in text and s["time"] in text
        assert f"签字：{s['name']}" in text.replace(" ", "")
    assert text.count("复核无误") == 1 and text.count("同意发放") == 1
    # 吴芳's opinion only restates the decision: one 同意 for that box, not two
    box = text[text.index("副经理/经理助理 审核"):text.index("营业部经理 审批")]
    assert box.count("同意") == 1, box


def test_fop_shows_each_of_six_opinions_exactly_once(renderer: DocumentRenderer,
                                                      tmp_path: Path) -> None:
    steps = [("office_receive", "bo1", "已接收，转渠道管理部", None),
             ("channel_review", "ch1", "请合规、风险会签", None),
             ("countersign", "comp1", "合规无异议", "compliance"),
             ("countersign", "risk1", "风险可控", "risk"),
             ("office_complete", "bo2", "报备流程已走完", None),
             ("vp_instruction", "vp1", "同意执行", None)]
    decisions = [Decision(step=step, signer_id=who, role="", decision="approve",
                          opinion=opinion, at=f"2026-11-0{n} 10:00", department=department,
                          departments=("compliance", "risk") if who == "ch1" else ())
                 for n, (step, who, opinion, department) in enumerate(steps, 1)]
    names = {"bo1": "陈静", "ch1": "林峰", "comp1": "郭敏", "risk1": "何军", "bo2": "罗娟",
             "vp1": "梁伟"}
    filing = Filing(id=3, branch="SZ01", kind="pay_rules", subject="2027年薪酬办法",
                    submitter_id="bm1", current_serial="SZ01-FIL-2026-000003")
    data = result_document_data(filing, "approved", decisions, names)
    text = "\n".join(_pages(renderer.render_pdf(
        "FOP", data | {"serial": "SZ01-FOP-2026-000004"}), tmp_path))
    for _, who, opinion, _ in steps:
        assert text.count(opinion) == 1, opinion
        assert text.count(names[who]) == 1, who
    assert "会签意见" in text and "合规管理部" in text and "风险管理部" in text
    assert "主管副总裁 批示" in text and "SZ01-FIL-2026-000003" in text
