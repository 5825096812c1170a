"""Render a document and archive it under a new serial: the step every flow ends a stage with."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from archive.service import DocumentSpec, open_archive
from brokerflow.db import new_session
from brokerflow.errors import NotFound
from brokerflow.render import DocumentRenderer, parse_document_data
from brokerflow.roster import get_user_view
from brokerflow.settings import load_settings

_renderer: DocumentRenderer | None = None


def shared_renderer() -> DocumentRenderer:
    """One renderer per process: it keeps WeasyPrint's font configuration warm."""
    global _renderer
    if _renderer is None:
        _renderer = DocumentRenderer()
    return _renderer


@task(name="render-and-archive", retries=0)
def render_and_archive(
    *,
    doc_type: str,
    data: dict[str, Any],
    subject_key: str,
    revision: int,
    actor_id: str,
    cm_id: str | None = None,
    month: str | None = None,
) -> str:
    """Allocate-and-store pipeline for a rendered document; returns its serial.

    Re-running with the same (type, subject key, revision) returns the existing serial.
    """
    archive = open_archive(load_settings())
    with new_session(archive.engine) as session:
        actor = get_user_view(session, actor_id)
    if actor is None:
        raise NotFound(f"acting user {actor_id!r} is not on the roster")
    document = parse_document_data(data, file=f"{doc_type} data")
    spec = DocumentSpec(
        branch=document.branch, doc_type=doc_type, subject=document.subject,
        subject_key=subject_key, revision=revision, cm_id=cm_id, month=month,
        source=f"{doc_type} {subject_key}",
    )

    def render(serial: str) -> bytes:
        with_serial = document.model_copy(update={"serial": serial})
        return shared_renderer().render_pdf(doc_type, with_serial)

    return archive.archive_rendered(spec, render, actor=actor).serial


@flow(name="archive-document")
def archive_document_flow(
    doc_type: str,
    data: dict[str, Any],
    subject_key: str,
    actor_id: str,
    revision: int = 1,
    cm_id: str | None = None,
    month: str | None = None,
) -> str:
    """Render ``doc_type`` from ``data`` and archive it; returns the serial."""
    return render_and_archive(
        doc_type=doc_type, data=data, subject_key=subject_key, revision=revision,
        actor_id=actor_id, cm_id=cm_id, month=month,
    )
