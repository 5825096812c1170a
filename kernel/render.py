"""Documents as PDF: sandboxed, autoescaped Jinja2 HTML templates rendered by WeasyPrint.

One ``DocumentRenderer`` is meant to live for the whole process: it keeps the Jinja
environment and WeasyPrint's ``FontConfiguration`` (font loading and fontconfig matching are
the expensive part of a CJK render).  Fonts are subset by HarfBuzz when ``libharfbuzz-subset0``
is installed, which keeps a Chinese page within a small factor of an ASCII one.  Every page's
text is checked against the glyphs of ``DOCUMENT_FONTS`` first (``kernel.glyphs``): a character
none of them has is refused, naming it, instead of printing as an empty box.

``render_pdfs`` produces many documents at once (a closing's CML per CM): their HTML is made
here, then this process and ``usable_cpus() - 1`` warm worker processes turn them into PDFs
side by side -- one PDF per document, each exactly what ``render_pdf`` makes of it.  One
WeasyPrint layout pass over all documents, split by page afterwards, was measured and is not
faster (docs/benchmarks.md, "Documents at volume"): its cost is per page, not per document.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Literal, overload
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from jinja2.exceptions import UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, Field, ValidationError

from brokerflow.kernel.errors import BadInput, BrokerflowError, MissingCJKFont
from brokerflow.kernel.glyphs import (
    Coverage,
    MissingGlyph,
    field_holding,
    html_text,
    merge_ranges,
    missing_characters,
    parse_charset,
)
from brokerflow.kernel.resources import templates_dir
from brokerflow.kernel.vocabulary import (
    DECISION_LABELS,
    DOCUMENT_TYPES,
    LABEL_FILTERS,
    check_doc_type,
    label_of,
)

CJK_FONT_PACKAGE = "fonts-wqy-microhei"
#: The families of ``body { font-family }`` in templates/base.html, in its order: a fast
#: primary font for everyday Chinese, then fonts for the rarer characters of names (CJK
#: Extension A: Noto; Extensions B-F: HanaMinB; G/H in part and compatibility ideographs:
#: BabelStone Han).  Missing families are skipped.
DOCUMENT_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC",
                  "Source Han Sans SC", "HanaMinB", "BabelStone Han")
#: Debian packages of those fonts (scripts/install.sh installs them).
FONT_PACKAGES = ("fonts-wqy-microhei", "fonts-noto-cjk", "fonts-hanazono", "fonts-babelstone-han")
DEFAULT_TEMPLATES_DIR = templates_dir()
#: How a signature block reads a decision (a step not signed yet: 待签).
SIGNATURE_LABELS = {**DECISION_LABELS, "pending": "待签"}
#: Below this many documents a batch is rendered in this process only: starting a worker
#: process (imports, fonts, first render: 0.6 s and more) costs more than it saves.
PARALLEL_MIN_DOCUMENTS = 12
#: Documents per unit of work handed to a worker (small: the last units balance the cores).
CHUNK_DOCUMENTS = 4
#: The garbage collector's thresholds while documents are rendered (default 700, 10, 10).
RENDER_GC_THRESHOLD = (10_000, 50, 50)


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
    branch_address: str = ""  # the header line under the branch (from the registry)
    branch_phone: str = ""
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


@lru_cache(maxsize=1)
def document_coverage() -> Coverage:
    """Code points the document fonts draw: ``DOCUMENT_FONTS`` and the generic sans-serif
    font they end with, from fontconfig's charsets (cached by fontconfig: milliseconds)."""
    if shutil.which("fc-list") is None:
        return merge_ranges(())
    charsets = [subprocess.run(["fc-list", "-f", "%{charset}\n", f":family={family}"],
                               capture_output=True, text=True, check=False).stdout
                for family in DOCUMENT_FONTS]
    charsets.append(subprocess.run(["fc-match", "-f", "%{charset}", "sans-serif:lang=zh-cn"],
                                   capture_output=True, text=True, check=False).stdout)
    return merge_ranges(r for charset in charsets for r in parse_charset(charset))


def check_glyphs(page: str, document: str, data: Any = None) -> None:
    """Refuse a page whose text has a character no document font draws (``MissingGlyph``,
    exit 2), naming the characters and the field of ``data`` holding the first."""
    missing = missing_characters(html_text(page), document_coverage())
    if missing:
        raise MissingGlyph(missing, document, field_holding(data, missing[0]))


def check_text_glyphs(fields: dict[str, str], document: str) -> None:
    """Refuse user text (``{option: text}``) holding a character no document font draws,
    before anything is written (``MissingGlyph`` naming the option, exit 2)."""
    for name, text in fields.items():
        missing = missing_characters(text, document_coverage())
        if missing:
            raise MissingGlyph(missing, document, name)


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
        for name, labels in LABEL_FILTERS.items():  # codes are never shown raw: {{ x|level_label }}
            self.env.filters[name] = partial(label_of, labels)
        self.env.filters["decision_label"] = partial(label_of, SIGNATURE_LABELS)
        self.font_config = FontConfiguration()
        self._pool: ProcessPoolExecutor | None = None  # render_pdfs' workers, once needed
        self._pool_size = 0

    def render_html(self, doc_type: str, data: DocumentData | dict[str, Any]) -> str:
        """The document's HTML; refuses (``MissingGlyph``) text the document fonts cannot draw
        -- the step ``render_pdf`` and ``render_pdfs`` share, before WeasyPrint."""
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
            page = template.render(**context)
        except UndefinedError as exc:
            raise BadInput(f"{doc_type} document data lacks a field: {exc.message}",
                           column="body") from None
        check_glyphs(page, f"{doc_type} document {doc.subject!r}", context)
        return page

    def render_pdf(self, doc_type: str, data: DocumentData | dict[str, Any]) -> bytes:
        """One document as PDF bytes."""
        html = self.render_html(doc_type, data)
        return html_to_pdf(html, base_url=str(self.templates_dir), font_config=self.font_config)

    @overload
    def render_pdfs(self, documents: Sequence[tuple[str, DocumentData | dict[str, Any]]], *,
                    workers: int | None = None,
                    return_exceptions: Literal[False] = False) -> list[bytes]: ...

    @overload
    def render_pdfs(self, documents: Sequence[tuple[str, DocumentData | dict[str, Any]]], *,
                    workers: int | None = None,
                    return_exceptions: Literal[True]) -> list[bytes | Exception]: ...

    def render_pdfs(self, documents: Sequence[tuple[str, DocumentData | dict[str, Any]]], *,
                    workers: int | None = None,
                    return_exceptions: bool = False) -> list[bytes] | list[bytes | Exception]:
        """Many ``(doc_type, data)`` documents, one PDF each, in their order.

        ``workers``: processes rendering at once, this one included (default: the usable
        CPUs, or 1 below ``PARALLEL_MIN_DOCUMENTS``).  A document that fails raises its error
        -- or, with ``return_exceptions``, stands in the list as that error, the others
        rendered all the same.  Workers start from a forkserver and stay for the next batch
        (``close`` stops them); like any ``multiprocessing`` child they import the program's
        main module, which must keep its work under ``if __name__ == "__main__":``.
        """
        pages: list[str | Exception] = []
        for doc_type, data in documents:
            try:
                pages.append(self.render_html(doc_type, data))
            except BrokerflowError as exc:
                if not return_exceptions:
                    raise
                pages.append(exc)
        htmls = [h for h in pages if isinstance(h, str)]
        if workers is None:
            workers = usable_cpus() if len(htmls) >= PARALLEL_MIN_DOCUMENTS else 1
        with collector_at_rest():
            pdfs = iter(self._pdfs(htmls, workers=max(1, min(workers, len(htmls)))))
        results = [next(pdfs) if isinstance(h, str) else h for h in pages]
        if not return_exceptions:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    def _pdfs(self, htmls: list[str], *, workers: int) -> list[bytes | Exception]:
        """PDFs of ready HTML: chunks go to ``workers - 1`` worker processes in order while
        this process takes chunks from the end, until the two meet."""
        base_url = str(self.templates_dir)
        chunks = [htmls[i:i + CHUNK_DOCUMENTS] for i in range(0, len(htmls), CHUNK_DOCUMENTS)]
        if workers <= 1 or len(chunks) < 2:
            return [pdf for chunk in chunks for pdf in _render_chunk(base_url, chunk,
                                                                     self.font_config)]
        pool = self._worker_pool(workers - 1)
        futures: list[Future[list[bytes | Exception]]] = [
            pool.submit(_render_chunk, base_url, chunk) for chunk in chunks]
        mine: dict[int, list[bytes | Exception]] = {}
        for index in range(len(chunks) - 1, -1, -1):
            if not futures[index].cancel():  # a worker has it (or is about to)
                break
            mine[index] = _render_chunk(base_url, chunks[index], self.font_config)
        results: list[bytes | Exception] = []
        broken = False
        for index, future in enumerate(futures):
            if index in mine:
                results.extend(mine[index])
                continue
            try:
                results.extend(future.result())
            except Exception as exc:  # noqa: BLE001 - a worker died: its documents failed
                broken = True
                results.extend([BrokerflowError(f"render worker failed: {exc!r}")]
                               * len(chunks[index]))
        if broken:
            self.close()  # the next batch starts new workers
        return results

    def _worker_pool(self, processes: int) -> ProcessPoolExecutor:
        if self._pool is None or self._pool_size != processes:
            self.close()
            # forkserver: workers start from a clean single-threaded process, not from a
            # copy of this one (which may run Prefect's threads)
            self._pool = ProcessPoolExecutor(
                processes, mp_context=multiprocessing.get_context("forkserver"),
                initializer=_start_worker)
            self._pool_size = processes
        return self._pool

    def close(self) -> None:
        """Stop the worker processes of ``render_pdfs`` (started again when needed)."""
        pool, self._pool, self._pool_size = self._pool, None, 0
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def html_to_pdf(html: str, *, base_url: str, font_config: Any) -> bytes:
    """One document's finished HTML as PDF bytes: the step both ``render_pdf`` and the
    workers of ``render_pdfs`` run, so a check on the PDF belongs here."""
    from weasyprint import HTML

    pdf = HTML(string=html, base_url=base_url).write_pdf(font_config=font_config)
    assert pdf is not None
    return pdf


@contextmanager
def collector_at_rest() -> Iterator[None]:
    """Rendering makes many short-lived objects: meanwhile the garbage collector leaves out
    what this process held before (``gc.freeze``) and runs less often -- a warm process with
    Prefect loaded spends about a sixth of a render's CPU time in it otherwise."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*RENDER_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_worker_font_config: Any = None


def _start_worker() -> None:
    """A render worker's start: its own font configuration; the garbage collector set as
    ``collector_at_rest`` sets it, for good."""
    global _worker_font_config
    from weasyprint.text.fonts import FontConfiguration

    _worker_font_config = FontConfiguration()
    gc.freeze()
    gc.set_threshold(*RENDER_GC_THRESHOLD)


def _render_chunk(base_url: str, htmls: list[str],
                  font_config: Any = None) -> list[bytes | Exception]:
    """PDFs of ``htmls`` with ``font_config`` (none: in a worker, with the worker's); a
    failure stands for its document (from a worker: as an error the parent can read)."""
    in_worker = font_config is None
    results: list[bytes | Exception] = []
    for html in htmls:
        try:
            results.append(html_to_pdf(html, base_url=base_url, font_config=(
                _worker_font_config if in_worker else font_config)))
        except Exception as exc:  # noqa: BLE001 - reported per document
            if in_worker:
                try:
                    pickle.dumps(exc)
                except Exception:  # noqa: BLE001 - an error that cannot cross processes
                    exc = BrokerflowError(f"rendering failed: {exc!r}")
            results.append(exc)
    return results


def parse_document_data(raw: Any, *, file: str) -> DocumentData:
    """Validate document data, naming the offending field."""
    try:
        return DocumentData.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        column = ".".join(str(p) for p in first["loc"]) or None
        raise BadInput(first["msg"], file=file, column=column) from None
