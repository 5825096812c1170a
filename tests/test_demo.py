"""``brokerflow demo``: the whole product on a temporary stack, and its missing-font message."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from brokerflow.app.demo import DEMO_CLIENT_NAME, DEMO_RARE_NAMES
from brokerflow.kernel.vocabulary import FLAG_LABELS, LEVEL_LABELS, POSITION_LABELS
from tests.support.paths import console_script
from tests.support.pdf import first_page_png, pdf_text
from tests.support.stack_process import clean_env

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: Codes that must never reach a reader: levels, positions, pay-line flags.
CODE_WORDS = re.compile(r"\b(" + "|".join(sorted(
    {*LEVEL_LABELS, *POSITION_LABELS, *FLAG_LABELS}, key=len, reverse=True)) + r")\b")


@pytest.mark.slow
def test_demo_auto_approves_everything_and_exports_the_pdfs(tmp_path: Path) -> None:
    export = tmp_path / "pdfs"
    result = subprocess.run(
        [*console_script(), "demo", "--auto-approve", "--export", str(export)],
        env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = sorted(p.name for p in export.glob("*.pdf"))
    kinds = sorted({name.split("-")[1] for name in names})
    assert kinds == ["CNF", "FIL", "FOP", "PAS", "PAY", "PSL", "RPT"], names
    for name in names:
        assert name.removesuffix(".pdf") in result.stdout
    pas = next(export.glob("SZ01-PAS-*.pdf"))
    text = pdf_text(pas, tmp_path)
    assert "营业部客户经理薪酬月报表" in text and "同意发放" in text
    # the closing used the sample pay rules the demo filed and the chain approved first
    pay = pdf_text(next(export.glob("SZ01-PAY-*.pdf")), tmp_path)
    rules = [f for f in export.glob("SZ01-FIL-*.pdf") if "薪酬办法" in pdf_text(f, tmp_path)]
    assert len(rules) == 1, names
    assert "第 1 版" in pay and rules[0].name.removesuffix(".pdf") in pay, pay
    report = pdf_text(next(export.glob("SZ01-RPT-*.pdf")), tmp_path)
    assert pas.name.removesuffix(".pdf") in report  # the business report names the PAS
    # SPEC §9: what a person reads is Chinese -- no level, position or flag code
    for document, words in (("PAY", pay), ("PAS", text)):
        assert not CODE_WORDS.findall(words), (document, CODE_WORDS.findall(words))
    assert "经理" in pay and "合计" in pay
    # a payslip per CM of the closing, each with its formulas
    payslips = sorted(export.glob("SZ01-PSL-*.pdf"))
    headcount = re.search(r"人数\s+(\d+)", pay)
    assert headcount and len(payslips) == int(headcount.group(1)) > 0, len(payslips)
    slip = pdf_text(payslips[0], tmp_path)
    assert all(term in slip for term in ("净创收", "提成基数", "考核系数", "结转"))
    assert not CODE_WORDS.findall(slip), CODE_WORDS.findall(slip)
    # the attribution archived its registration form and, once effective, the signed record
    confirmations = [pdf_text(p, tmp_path) for p in sorted(export.glob("SZ01-CNF-*.pdf"))]
    assert len(confirmations) == 2 and "签批生效" in confirmations[1], names
    assert DEMO_CLIENT_NAME in confirmations[1]
    # names with CJK Extension A and B characters render with real glyphs
    plan = next(t for f in export.glob("SZ01-FIL-*.pdf")
                if "营销方案" in (t := pdf_text(f, tmp_path)))
    assert DEMO_RARE_NAMES in plan and DEMO_CLIENT_NAME in confirmations[0]
    for pdf, shot in ((next(export.glob("SZ01-PAY-*.pdf")), "document-pay.png"),
                      (payslips[0], "document-psl.png")):
        png = first_page_png(pdf, tmp_path / shot)
        assert png.stat().st_size > 10_000
        if os.environ.get("BROKERFLOW_UPDATE_SCREENSHOTS") == "1":
            (DOCS / shot).write_bytes(png.read_bytes())


def test_demo_without_a_chinese_font_names_the_package(tmp_path: Path) -> None:
    config = tmp_path / "fonts.conf"
    config.write_text("<?xml version='1.0'?><fontconfig></fontconfig>", encoding="utf-8")
    result = subprocess.run([*console_script(), "demo", "--auto-approve"],
                            env=clean_env(tmp_path / "home", FONTCONFIG_FILE=str(config)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "apt-get install fonts-wqy-microhei" in result.stderr
