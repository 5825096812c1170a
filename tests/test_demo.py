"""``brokerflow demo``: the whole product on a temporary stack, and its missing-font message."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.paths import console_script
from tests.support.pdf import pdf_text
from tests.support.stack_process import clean_env


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
    assert kinds == ["CNF", "FIL", "FOP", "PAS", "PAY", "RPT"], names
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


def test_demo_without_a_chinese_font_names_the_package(tmp_path: Path) -> None:
    config = tmp_path / "fonts.conf"
    config.write_text("<?xml version='1.0'?><fontconfig></fontconfig>", encoding="utf-8")
    result = subprocess.run([*console_script(), "demo", "--auto-approve"],
                            env=clean_env(tmp_path / "home", FONTCONFIG_FILE=str(config)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "apt-get install fonts-wqy-microhei" in result.stderr
