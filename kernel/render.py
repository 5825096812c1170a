"""Documents as PDF: sandboxed, autoescaped Jinja2 HTML templates rendered by WeasyPrint.

One ``DocumentRenderer`` is meant to live for the whole process: it keeps the Jinja
environment and WeasyPrint's ``FontConfiguration`` (font loading and fontconfig matching are
the expensive part of a CJK render).  Fonts are subset by HarfBuzz when ``libharfbuzz-subset0``
is installed, which keeps a Chinese page within a small factor of an ASCII one.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from jinja2.exceptions import UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, Field, ValidationError

from brokerflow.kernel.errors import BadInput, MissingCJKFont
from brokerflow.kernel.resources import templates_dir
from brokerflow.kernel.vocabulary import DECISION_LABELS, DOCUMENT_TYPES, check_doc_type

CJK_FONT_PACKAGE = "fonts-wqy-microhei"
DEFAULT_TEMPLATES_DIR = templates_dir()
#: How a signature block reads a decision (a step not signed yet: 待签).
SIGNATURE_LABELS = {**DECISION_LABELS, "pending": "待签"}


class Signature(BaseModel):
    role: str
    name: str
    decision: str = "pending"
    time: str = ""
    opinion: str = ""


class DocumentData(BaseModel):
    """The fields every document template shares; ``body`` is per document type."""

    branch: str
    subject: str = Field(min_length=1, max_length=200)
    branch_name: str = ""
    serial: str = ""
    date: str = ""  # the document's date; empty: today in the renderer's time zone
    title: str = ""
    body: dict[str, Any] = Field(default_factory=dict)
    signatures: list[Signature] = Field(default_factory=list)


@lru_cache(maxsize=1)
def cjk_font_families() -> tuple[str, ...]:
    """Font families fontconfig offers for Chinese (empty when no CJK font is installed)."""
    if shutil.which("fc-list") is None:
        return ()
    out = subprocess.run(
        ["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False
    ).stdout
    return tuple(sorted({line.split(",")[0].strip() for line in out.splitlines() if line.strip()}))


def require_cjk_font() -> None:
    """Raise a clear error naming the package when no Chinese font is installed."""
    if not cjk_font_families():
        raise MissingCJKFont(
            "no Chinese (CJK) font is installed, PDFs would show empty boxes; "
            f"install one: apt-get install {CJK_FONT_PACKAGE}"
        )


class DocumentRenderer:
    """Renders a document type's template with data, to HTML or to PDF bytes."""

    def __init__(self, templates_dir: Path | None = None, *,
                 zone: ZoneInfo | None = None) -> None:
        """``zone``: where documents are dated (default: ``Settings.timezone``)."""
        from weasyprint.text.fonts import FontConfiguration

        from brokerflow.kernel.settings import load_settings

        require_cjk_font()
        self.zone = zone or ZoneInfo(load_settings(check_secrets=False).timezone)
        self.templates_dir = templates_dir or DEFAULT_TEMPLATES_DIR
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(self.templates_dir),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
        )
        self.env.globals["decision_label"] = lambda d: SIGNATURE_LABELS.get(d, d)
        self.font_config = FontConfiguration()

    def render_html(self, doc_type: str, data: DocumentData | dict[str, Any]) -> str:
        check_doc_type(doc_type)
        doc = data if isinstance(data, DocumentData) else parse_document_data(data, file="data")
        context = doc.model_dump()
        context["date"] = doc.date or datetime.now(self.zone).date().isoformat()
        context["title"] = doc.title or DOCUMENT_TYPES[doc_type]
        context["doc_type"] = doc_type
        try:
            template = self.env.get_template(f"{doc_type}.html")
        except TemplateNotFound:
            raise BadInput(f"no template for document type {doc_type}") from None
        try:
            return template.render(**context)
        except UndefinedError as exc:
            raise BadInput(f"{doc_type} document data lacks a field: {exc.message}",
                           column="body") from None

    def render_pdf(self, doc_type: str, data: DocumentData | dict[str, Any]) -> bytes:
        from weasyprint import HTML

        html = self.render_html(doc_type, data)
        pdf = HTML(string=html, base_url=str(self.templates_dir)).write_pdf(
            font_config=self.font_config
        )
        assert pdf is not None
        return pdf


def parse_document_data(raw: Any, *, file: str) -> DocumentData:
    """Validate document data, naming the offending field."""
    try:
        return DocumentData.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        column = ".".join(str(p) for p in first["loc"]) or None
        raise BadInput(first["msg"], file=file, column=column) from None
