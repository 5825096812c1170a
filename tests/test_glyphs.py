"""Every character of a name renders with a real glyph, or the render refuses it (SPEC §9)."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.flows.archive_document import archive_document
from brokerflow.kernel.db import new_session
from brokerflow.kernel.glyphs import (
    MissingGlyph,
    code_point,
    field_holding,
    html_text,
    merge_ranges,
    missing_characters,
    parse_charset,
)
from brokerflow.kernel.models import SerialRecord
from brokerflow.kernel.render import DOCUMENT_FONTS, DocumentRenderer, document_coverage
from tests.support.pdf import pdf_text

EXT_A = "刘䶮"  # U+4DAE, CJK Extension A
EXT_B = ("\U00020000", "\U0002A6A5")  # 𠀀 U+20000, 𪚥 U+2A6A5, CJK Extension B
#: Characters no installed font draws: the last private-use code point, and Extension I.
NO_GLYPH = ("\U0010FFFD", "\U0002EBF0")
ROOT = Path(__file__).resolve().parent.parent


def pay_with_names(*names: str) -> dict[str, object]:
    return {"branch": "SZ01", "serial": "SZ01-PAY-2026-000042", "subject": "2026年10月薪酬",
            "body": {"month": "2026-10", "lines": [
                {"cm_id": f"cm{i}", "name": name, "position": "", "level": "", "flags": []}
                for i, name in enumerate(names, 1)]}}


def pdf_fonts(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdffonts", str(path)], capture_output=True, text=True,
                          check=True).stdout


def font_names(pdf: bytes, tmp_path: Path) -> set[str]:
    """Embedded fonts, without their subset prefix (``ABCDEF+``)."""
    rows = pdf_fonts(pdf, tmp_path).splitlines()[2:]
    return {row.split()[0].split("+", 1)[-1] for row in rows}


# --------------------------------------------------------------------------- pure helpers


def test_coverage_ranges_and_missing_characters_in_text_order() -> None:
    coverage = merge_ranges([*parse_charset("20-7e 4e00-9fff"), (0x4DAE, 0x4DAE), (0x7F, 0x80)])
    assert coverage.ranges == ((0x20, 0x80), (0x4DAE, 0x4DAE), (0x4E00, 0x9FFF))
    assert 0x4DAE in coverage and 0x4DAF not in coverage and 0x1F not in coverage
    assert coverage.count(0x4DA0, 0x4E01) == 3
    text = "张\U00020000 a\U0002A6A5\U00020000\n\u200d\ufe00\U000E0100"
    assert missing_characters(text, coverage) == ["\U00020000", "\U0002A6A5"]
    assert code_point("䶮") == "U+4DAE" and code_point("\U00020000") == "U+20000"


def test_html_text_drops_markup_and_resolves_references() -> None:
    page = '<p class="\U00020000">a &lt;b&gt; &#x4DAE;</p><!-- \U0002A6A5 -->'
    assert html_text(page).split() == ["a", "<b>", "䶮"]


def test_field_holding_names_the_path_of_the_string() -> None:
    data = {"subject": "x", "body": {"lines": [{"name": "a"}, {"name": "刘䶮"}]}}
    assert field_holding(data, "䶮") == "body.lines.1.name"
    assert field_holding(data, "z") is None


def test_missing_glyph_is_bad_input_and_survives_pickling() -> None:
    exc = MissingGlyph(["\U0010FFFD"], "FIL document 'x'", "body.text")
    assert exc.exit_code == 2 and "U+10FFFD" in str(exc) and "body.text" in str(exc)
    again = pickle.loads(pickle.dumps(exc))
    assert isinstance(again, MissingGlyph) and str(again) == str(exc)


# --------------------------------------------------------------------------- fonts, renders


def test_base_template_lists_the_checked_fonts_in_order() -> None:
    css = (ROOT / "templates" / "base.html").read_text(encoding="utf-8")
    match = re.search(r"html \{ font-family: ([^;]+);", css)
    assert match, "base.html sets the document fonts on html (margin boxes inherit them)"
    assert [f.strip().strip('"') for f in match.group(1).split(",")] == [
        *DOCUMENT_FONTS, "sans-serif"]


def test_installed_fonts_cover_extensions_a_to_f() -> None:
    coverage = document_coverage()
    for first, last in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                        (0x2A700, 0x2B739), (0x2B740, 0x2B81D), (0x2B820, 0x2CEA1),
                        (0x2CEB0, 0x2EBE0)]:
        assert coverage.count(first, last) == last - first + 1, hex(first)


def test_extension_a_and_b_names_round_trip_in_their_fallback_fonts(
    renderer: DocumentRenderer, tmp_path: Path
) -> None:
    names = (EXT_A, f"王{EXT_B[0]}", f"李{EXT_B[1]}")
    pdf = renderer.render_pdf("PAY", pay_with_names(*names))
    text = pdf_text(pdf, tmp_path)
    for name in names:
        assert name in text, text
    fonts = font_names(pdf, tmp_path)
    assert "Noto-Sans-CJK-SC" in fonts, fonts  # Extension A
    assert "HanaMinB-Medium" in fonts, fonts  # Extension B
    assert any(f.startswith("WenQuanYi-Micro-Hei") for f in fonts), fonts  # everything else


def test_an_everyday_document_embeds_only_the_primary_fonts(
    renderer: DocumentRenderer, tmp_path: Path
) -> None:
    pdf = renderer.render_pdf("PAY", pay_with_names("周涛", "陈静"))
    fonts = font_names(pdf, tmp_path)
    assert fonts <= {"WenQuanYi-Micro-Hei", "WenQuanYi-Micro-Hei-Bold", "DejaVu-Sans-Mono"}, fonts


@pytest.mark.parametrize("char", NO_GLYPH)
def test_a_character_without_glyph_is_refused_naming_it_and_the_field(
    renderer: DocumentRenderer, char: str
) -> None:
    with pytest.raises(MissingGlyph) as caught:
        renderer.render_pdf("PAY", pay_with_names("周涛", f"张{char}"))
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert code_point(char) in message and char in message
    assert "body.lines.1.name" in message and "PAY document" in message


def test_batch_render_reports_the_refused_document_and_renders_the_others(
    renderer: DocumentRenderer
) -> None:
    results = renderer.render_pdfs([("PAY", pay_with_names(EXT_A)),
                                    ("PAY", pay_with_names(f"张{NO_GLYPH[0]}"))],
                                   return_exceptions=True)
    assert isinstance(results[0], bytes) and isinstance(results[1], MissingGlyph)


def test_cli_render_refuses_with_exit_2_and_the_code_point(cli, tmp_path: Path) -> None:
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"branch": "SZ01", "subject": f"张{NO_GLYPH[1]}的请示",
                                "body": {"text": "正文"}}, ensure_ascii=False),
                    encoding="utf-8")
    out = tmp_path / "o.pdf"
    refused = cli("render", "FIL", "--data", str(data), "--out", str(out))
    assert refused.code == 2, refused.err
    assert "U+2EBF0" in refused.err and "subject" in refused.err
    assert "Traceback" not in refused.err and not out.exists()
    data.write_text(json.dumps({"branch": "SZ01", "subject": f"{EXT_A}的请示"},
                               ensure_ascii=False), encoding="utf-8")
    assert cli("render", "FIL", "--data", str(data), "--out", str(out)).code == 0
    assert EXT_A in pdf_text(out, tmp_path)


def test_archiving_refuses_before_a_serial_is_reserved(
    archive: Archive, roster: None, user
) -> None:
    spec = DocumentSpec(branch="SZ01", doc_type="FIL", subject="请示", subject_key="glyphs-1")
    data = {"branch": "SZ01", "subject": "请示", "body": {"text": f"经办人：张{NO_GLYPH[0]}"}}
    with pytest.raises(MissingGlyph, match="U\\+10FFFD"):
        archive_document.fn(archive, spec, data, actor=user("bm1"))
    with new_session(archive.engine) as session:
        assert session.exec(select(SerialRecord)).first() is None
    assert list(archive.store.versions()) == []


def test_filing_submit_refuses_a_character_without_glyph_before_writing(
    cli, roster: None, archive: Archive
) -> None:
    refused = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment",
                  "--subject", "招聘计划", "--body", f"拟聘：李{NO_GLYPH[1]}", "--no-start",
                  user="bk1")
    assert refused.code == 2, refused.err
    assert "U+2EBF0" in refused.err and "--body" in refused.err
    assert "Traceback" not in refused.err
    assert cli("filing", "list", user="bm1").out.count("招聘计划") == 0
    made = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment",
               "--subject", f"招聘计划：{EXT_A}、{EXT_B[0]}", "--body", "……", "--no-start",
               user="bk1")
    assert made.code == 0 and made.out.startswith("filing 1 submitted"), made.err
