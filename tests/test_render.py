"""Documents render to PDF with Chinese text, serial in the 表头, and no template injection."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from brokerflow.kernel.render import DocumentRenderer, cjk_font_families
from brokerflow.kernel.vocabulary import DOCUMENT_TYPES
from tests.support.pdf import pdf_text


def test_pdf_shows_chinese_title_and_serial_with_embedded_cjk_font(
    renderer: DocumentRenderer, tmp_path: Path
) -> None:
    pdf = renderer.render_pdf("PAY", {
        "branch": "SZ01", "branch_name": "深圳福田营业部", "serial": "SZ01-PAY-2026-000042",
        "subject": "2026年10月客户经理薪酬", "body": {"month": "2026-10", "lines": []},
    })
    path = tmp_path / "pay.pdf"
    path.write_bytes(pdf)
    text = pdf_text(path, tmp_path)
    assert "营业部客户经理薪酬月报表" in text
    assert "SZ01-PAY-2026-000042" in text
    assert "深圳福田营业部" in text
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True,
                           check=True).stdout
    cjk_rows = [ln for ln in fonts.splitlines() if "WenQuanYi" in ln or "CJK" in ln]
    assert cjk_rows, fonts
    # pdffonts columns: name type encoding emb sub uni object ID
    assert all(" yes " in row for row in cjk_rows), fonts


def test_subject_with_markup_and_template_syntax_prints_literally(
    renderer: DocumentRenderer, tmp_path: Path
) -> None:
    data = {"branch": "SZ01", "subject": "<b>x</b> {{7*7}} {% if 1 %}y{% endif %}",
            "body": {"note": "<script>alert(1)</script>"}}
    html = renderer.render_html("EXT", data)
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>x</b>" not in html
    assert "{{7*7}}" in html and "49" not in html
    assert "&lt;script&gt;" in html
    text = pdf_text(renderer.render_pdf("EXT", data), tmp_path)
    assert "<b>x</b> {{7*7}}" in text


@pytest.mark.parametrize("doc_type", sorted(DOCUMENT_TYPES))
def test_every_document_type_has_a_template_with_its_chinese_title(
    renderer: DocumentRenderer, doc_type: str, tmp_path: Path
) -> None:
    pdf = renderer.render_pdf(doc_type, {
        "branch": "SZ01", "subject": "测试文件", "serial": f"SZ01-{doc_type}-2026-000001",
        "signatures": [{"role": "营业部经理", "name": "周涛", "decision": "approve",
                        "time": "2026-11-02 10:00", "opinion": "同意报送"}],
    })
    text = pdf_text(pdf, tmp_path)
    title = DOCUMENT_TYPES[doc_type].split("（")[0]
    assert title in text.replace(" ", "")
    assert f"SZ01-{doc_type}-2026-000001" in text
    assert "同意报送" in text


def test_a_rare_character_in_a_name_still_renders(
    renderer: DocumentRenderer, tmp_path: Path
) -> None:
    # 堃 and 昇 are outside GB2312 but common in names
    pdf = renderer.render_pdf("CNF", {"branch": "SZ01", "subject": "客户确认",
                                      "body": {"client_name": "王堃昇"}})
    assert "王堃昇" in pdf_text(pdf, tmp_path)


def test_a_cjk_font_is_installed() -> None:
    assert any("WenQuanYi" in family for family in cjk_font_families())


def test_render_command_writes_a_pdf(cli, tmp_path: Path) -> None:
    data = tmp_path / "fil.json"
    data.write_text(json.dumps({"branch": "SZ01", "subject": "2027年度营销方案",
                                "body": {"kind": "年度营销方案", "text": "第一段\n第二段"}},
                               ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "fil.pdf"
    result = cli("render", "FIL", "--data", str(data), "--out", str(out))
    assert result.code == 0, result.err
    text = pdf_text(out, tmp_path)
    assert "请示报批单" in text and "2027年度营销方案" in text and "预览" in text


def test_render_command_bad_json_names_file_row_and_column(cli, tmp_path: Path) -> None:
    data = tmp_path / "bad.json"
    data.write_text('{"branch": "SZ01",\n "subject": }', encoding="utf-8")
    result = cli("render", "FIL", "--data", str(data), "--out", str(tmp_path / "x.pdf"))
    assert result.code == 2
    assert str(data) in result.err and "row 2" in result.err and "column" in result.err
    assert not (tmp_path / "x.pdf").exists()


def test_render_command_missing_field_and_unknown_type(cli, tmp_path: Path) -> None:
    data = tmp_path / "nosubject.json"
    data.write_text('{"branch": "SZ01"}', encoding="utf-8")
    result = cli("render", "FIL", "--data", str(data), "--out", str(tmp_path / "x.pdf"))
    assert result.code == 2 and "column subject" in result.err
    result = cli("render", "XYZ", "--data", str(data), "--out", str(tmp_path / "x.pdf"))
    assert result.code == 2 and "unknown document type 'XYZ'" in result.err


def test_a_small_batch_renders_here_each_pdf_as_render_pdf_makes_it(
    renderer: DocumentRenderer, tmp_path: Path
) -> None:
    documents = [("CNF", {"branch": "SZ01", "subject": f"客户确认：王堃昇{i}",
                          "serial": f"SZ01-CNF-2026-00000{i}",
                          "body": {"client_name": "王堃昇"}}) for i in range(1, 4)]
    pdfs = renderer.render_pdfs(documents)  # below PARALLEL_MIN_DOCUMENTS: no worker
    assert renderer._pool is None
    for (doc_type, data), pdf in zip(documents, pdfs, strict=True):
        assert pdf == renderer.render_pdf(doc_type, data)
        text = pdf_text(pdf, tmp_path)
        assert data["serial"] in text and data["subject"] in text
