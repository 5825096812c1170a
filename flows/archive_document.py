"""Render a document and archive it under a new serial: the step every flow ends a stage with.

``archive_step`` runs the ``archive-document`` Prefect task.  When the object store stays
unreachable beyond its own outage budget (``s3_retry_seconds``), Prefect runs the task again
(``archive_retries`` times, the delay doubling from ``archive_retry_delay_seconds``); the flow
run owns the serial's reservation, so a retry -- or the whole run executed again after its
process died -- continues under the same serial instead of voiding it.  Only storage failures
are retried: bad data fails at once.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from brokerflow.approvals.waiting import current_flow_run_id
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.kernel.branches import with_branch_header
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import NotFound, SigningUnavailable, StorageError
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.render import DocumentRenderer, parse_document_data
from brokerflow.kernel.roster import get_user_view
from brokerflow.kernel.settings import Settings, load_settings

_renderer: DocumentRenderer | None = None


def shared_renderer() -> DocumentRenderer:
    """One renderer per process: it keeps WeasyPrint's font configuration warm."""
    global _renderer
    if _renderer is None:
        _renderer = DocumentRenderer()
    return _renderer


def storage_failed(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only an unreachable or failing object store is worth another try
    (a missing or wrong signing key needs an operator: each try would void one more serial)."""
    try:
        state.result()
    except SigningUnavailable:
        return False
    except StorageError:
        return True
    except Exception:  # noqa: BLE001 - anything else is not retried
        return False
    return False


@task(name="archive-document", cache_policy=NO_CACHE, persist_result=False,
      retry_condition_fn=storage_failed)
def archive_document(archive: Archive, spec: DocumentSpec, data: dict[str, Any], *,
                     actor: UserView) -> str:
    """Render ``spec.doc_type`` from ``data`` with its serial on the page and archive it;
    the header names the branch as the registry knows it."""
    data = with_branch_header(archive.engine, [data])[0]

    def render(serial: str) -> bytes:
        return shared_renderer().render_pdf(spec.doc_type, {**data, "serial": serial})

    # bad data (e.g. a character no document font draws) is refused before a serial is taken
    shared_renderer().render_html(spec.doc_type, data)
    owner = current_flow_run_id() or None
    return archive.archive_rendered(spec, render, actor=actor, owner=owner).serial


def archive_step(archive: Archive, spec: DocumentSpec, data: dict[str, Any], *,
                 actor: UserView) -> str:
    """``archive_document`` with the retries the settings give; returns the serial.

    Archiving the same (type, subject key, revision) again returns the existing serial.
    """
    retrying = archive_document.with_options(**storage_retries(archive.settings))
    return retrying(archive, spec, data, actor=actor)


def storage_retries(settings: Settings) -> dict[str, Any]:
    """The task options of an archive step: ``archive_retries`` re-runs, the delay doubling
    from ``archive_retry_delay_seconds`` (storage failures only: ``storage_failed``)."""
    delays = [settings.archive_retry_delay_seconds * 2**i for i in range(settings.archive_retries)]
    return {"retries": settings.archive_retries, "retry_delay_seconds": delays or 0}


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
    archive = open_archive(load_settings(), prepare_bucket=False)
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
    return archive_step(archive, spec, document.model_dump(), actor=actor)
