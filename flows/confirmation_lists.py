"""CML (客户确认月度清单, seed 002 第二十一条): per CM, the clients whose attribution became
effective in a month, archived by the monthly closing just before it computes pay.

The lists of a closing are archived as one batch (``archive_batch_step``): every CM's list
keeps its own serial on the page, checksum and stored object, but the PDFs are rendered
together, side by side on the machine's cores when there are enough of them
(``DocumentRenderer.render_pdfs``).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlmodel import col, select

from brokerflow.approvals.waiting import current_flow_run_id
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.flows.archive_document import (
    shared_renderer,
    storage_failed,
    storage_retries,
)
from brokerflow.kernel.branches import with_branch_header
from brokerflow.kernel.calendar import Month, local_minute, month_end
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.idnumbers import mask_last4
from brokerflow.kernel.models import Attribution, ClientIdentity, User, UserRole
from brokerflow.kernel.roster import get_user_view


def archive_confirmation_lists(archive: Archive, *, branch: str, month: str) -> list[str]:
    """CML (seed 002 第二十一条): per CM, the clients whose attribution became effective in
    ``month``; returns the serials (archiving twice returns the same ones)."""
    start = month_end(Month.parse(month).minus(1), archive.zone)
    end = month_end(month, archive.zone)
    by_cm: dict[str, list[dict[str, str]]] = defaultdict(list)
    with new_session(archive.engine) as session:
        rows = session.exec(select(Attribution, ClientIdentity).join(
            ClientIdentity, ClientIdentity.id_hash == Attribution.id_hash)  # type: ignore[arg-type]
            .where(Attribution.branch == branch, col(Attribution.effective_at).is_not(None))
            .order_by(col(Attribution.effective_at))).all()
        names = {u.user_id: u.name for u in session.exec(select(User))}
        clerk_id = session.exec(
            select(User.user_id).join(UserRole, UserRole.user_id == User.user_id)  # type: ignore[arg-type]
            .where(User.branch == branch, UserRole.role == "trading_manager")
            .order_by(User.user_id)).first()
        actor: UserView | None = get_user_view(session, clerk_id) if clerk_id else None
    for attribution, identity in rows:
        assert attribution.effective_at is not None
        at = attribution.effective_at
        if start <= at < end:
            by_cm[attribution.cm_id].append({
                "name": identity.name, "masked_id": mask_last4(identity.id_last4),
                "effective_at": local_minute(at, archive.zone),
                "asset_size": attribution.asset_size})
    if by_cm and actor is None:
        raise NotFound(f"branch {branch} has no trading_manager on the roster")
    specs, documents = [], []
    for cm_id, clients in sorted(by_cm.items()):
        subject = f"{month} 客户确认清单：{names.get(cm_id, cm_id)}"
        documents.append({
            "branch": branch, "subject": subject,
            "body": {"cm_id": cm_id, "cm_name": names.get(cm_id, cm_id), "month": month,
                     "clients": clients, "total": {
                         "name": f"{len(clients)} 户",
                         "asset_size": str(sum((Decimal(c["asset_size"] or 0)
                                                for c in clients), Decimal(0)))}},
        })
        specs.append(DocumentSpec(branch=branch, doc_type="CML", subject=subject,
                                  subject_key=f"cml:{branch}:{month}:{cm_id}", cm_id=cm_id,
                                  month=month, source=f"confirmation list {month}"))
    if not specs:
        return []
    assert actor is not None
    return archive_batch_step(archive, specs, documents, actor=actor)


@task(name="archive-documents", cache_policy=NO_CACHE, persist_result=False,
      retry_condition_fn=storage_failed)
def archive_documents(archive: Archive, specs: list[DocumentSpec],
                      documents: list[dict[str, Any]], *, actor: UserView) -> list[str]:
    """Render each ``specs[i].doc_type`` from ``documents[i]`` with its serial on the page,
    all together, and archive each (``Archive.archive_rendered_batch``); the serials."""
    documents = with_branch_header(archive.engine, documents)  # the registry's branch header

    def render(jobs: list[tuple[int, str]]) -> list[bytes | Exception]:
        return shared_renderer().render_pdfs(
            [(specs[i].doc_type, {**documents[i], "serial": serial}) for i, serial in jobs],
            return_exceptions=True)

    for spec, document in zip(specs, documents, strict=True):
        # bad data (e.g. a character no document font draws) refuses the whole batch before
        # any serial is taken: nothing half-archived
        shared_renderer().render_html(spec.doc_type, document)
    owner = current_flow_run_id() or None
    try:
        results = archive.archive_rendered_batch(specs, render, actor=actor, owner=owner)
    finally:  # no render workers outlive the batch: a suspended or ended run holds none
        shared_renderer().close()
    return [result.serial for result in results]


def archive_batch_step(archive: Archive, specs: list[DocumentSpec],
                       documents: list[dict[str, Any]], *, actor: UserView) -> list[str]:
    """``archive_documents`` with the retries ``archive_step`` has (storage failures only;
    a retry continues the run's own reservations under the same serials); the serials.

    Archiving the same (type, subject key, revision) again returns the existing serial.
    """
    retrying = archive_documents.with_options(**storage_retries(archive.settings))
    return retrying(archive, specs, documents, actor=actor)

