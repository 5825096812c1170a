"""``brokerflow render``: a document template rendered to PDF from JSON (nothing archived)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.vocabulary import check_doc_type


def render(
    doc_type: Annotated[str, typer.Argument(metavar="TYPE", help="document type, e.g. FIL")],
    data: Annotated[Path, typer.Option(metavar="FILE.json", help="the document's data")],
    out: Annotated[Path, typer.Option(metavar="FILE.pdf", help="where to write the PDF")],
) -> None:
    """Render one document template to PDF (preview; nothing archived)."""
    from brokerflow.kernel.render import DocumentRenderer, parse_document_data

    kind = check_doc_type(doc_type.upper(), column="TYPE")
    try:
        raw = json.loads(data.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput("no such file", file=str(data)) from None
    except UnicodeDecodeError:
        raise BadInput("not UTF-8 text", file=str(data)) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON: {exc.msg}", file=str(data), row=exc.lineno,
                       column=str(exc.colno)) from None
    document = parse_document_data(raw, file=str(data))
    pdf = DocumentRenderer().render_pdf(kind, document)
    out.write_bytes(pdf)
    print(f"wrote {out} ({len(pdf)} bytes)")


def register(app: typer.Typer) -> None:
    app.command("render", help="render one document template to PDF (preview)")(render)
