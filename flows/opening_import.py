"""Opening data of a branch going live (SPEC §10) as a Prefect flow: one imported batch of
existing attributions or opening carried state, signed like any chain.

The import list (期初客户归属导入清单 / 期初结转状态导入清单, CNF) is archived first; the trading
dept manager reviews it and the branch manager approves it (two different people).  Approved:
the batch is applied -- after its conflicts are checked again; a conflict that appeared while it
waited refuses the whole batch (it ends ``rejected``, the reason recorded) -- and the signed
record is archived as a second CNF with every decision.  Rejected or returned: nothing is
applied (a returned batch ends so: the user imports a corrected file).

All state lives in the database; a run that is re-executed (after a suspension or a worker
restart) continues where the decisions left off.
"""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

from decimal import Decimal
from typing import Any

from prefect import flow

from brokerflow.approvals.chain import (
    OPENING_IMPORT_CHAIN,
    Decision,
    Finished,
    Waiting,
    progress,
)
from brokerflow.approvals.decisions import clear_waiting, load_decisions
from brokerflow.approvals.opening_import import (
    APPROVED,
    ATTRIBUTIONS,
    FINAL,
    KIND_TITLES,
    REJECTED,
    apply_import,
    batch_headline,
    batch_summary,
    get_import,
    request_key,
    set_import_status,
    signed_key,
    stored_rows,
)
from brokerflow.approvals.opening_import_rows import (
    AttributionRow,
    StateRow,
    count_per_cm,
    in_natural_order,
)
from brokerflow.approvals.run_labels import run_name
from brokerflow.approvals.signing import (
    SigningRequest,
    bind_flow_run,
    claim_on,
    take_signature,
    update_row,
    user_names,
)
from brokerflow.approvals.waiting import ANSWER_HOOKS, WaitMode, current_flow_run_id
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.archive_document import archive_step
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.idnumbers import mask_last4
from brokerflow.kernel.opening_models import OpeningImport
from brokerflow.kernel.roster import get_user_view
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.vocabulary import ROLE_LABELS, STATUS_LABELS

REVISION = 1  # a batch is never revised: a returned one ends, a corrected file is imported
#: The signed record's title by how the batch ended.
OUTCOME_TITLES = {APPROVED: "（签批生效）", REJECTED: "（未通过）", "returned": "（退回）",
                  "refused": "（未生效：与系统已有数据冲突）"}


def document_data(batch: OpeningImport, names: dict[str, str], *,
                  signatures: list[dict[str, str]] | None = None, outcome: str = "",
                  note: str = "") -> dict[str, Any]:
    """The import list's CNF data (pure): the batch, its rows in natural order (ID numbers
    masked), per-CM counts or the state's totals; with ``outcome``, the signed record."""
    rows = stored_rows(batch)
    title = KIND_TITLES.get(batch.kind, batch.kind) + (OUTCOME_TITLES.get(outcome, "")
                                                         if outcome else "")
    body: dict[str, Any] = {
        "opening_import": batch.kind, "batch": f"#{batch.id}", "file_name": batch.file_name,
        "sha256": batch.sha256, "row_count": batch.row_count,
        "submitted_by": f"{names.get(batch.submitted_by, batch.submitted_by)}"
                        f"（{batch.submitted_by}）",
        "list_serial": batch.list_serial if outcome else "",
        "outcome": STATUS_LABELS.get(outcome, "未生效") if outcome else "", "note": note,
    }
    if batch.kind == ATTRIBUTIONS:
        shown = []
        for r in in_natural_order(rows):
            assert isinstance(r, AttributionRow)
            shown.append({"row": r.row, "client_id": r.client_id, "client_name": r.client_name,
                          "masked_id": mask_last4(r.id_last4) if r.id_last4 else "（未提供）",
                          "cm": f"{names.get(r.cm_id, r.cm_id)}（{r.cm_id}）",
                          "effective_date": r.effective_date, "source": r.source})
        per_cm = [{"cm_name": names.get(cm, cm), "cm_id": cm, "count": n}
                  for cm, n in count_per_cm(rows)]
        body |= {"rows": shown, "per_cm": per_cm,
                 "per_cm_total": {"count": f"{batch.row_count} 户"},
                 "without_id": sum(1 for r in shown if r["masked_id"] == "（未提供）")}
    else:
        state = [r for r in in_natural_order(rows) if isinstance(r, StateRow)]
        body |= {
            "rows": [{"row": r.row, "cm_id": r.cm_id, "cm_name": names.get(r.cm_id, r.cm_id),
                      "as_of": r.as_of, "excess_carry": r.excess_carry,
                      "risk_fund_balance": r.risk_fund_balance, "title": r.title or "",
                      "ytd_absent_half_days": r.ytd_absent_half_days,
                      "ytd_personal_leave_days": r.ytd_personal_leave_days} for r in state],
            "total": {
                "row": "合计", "cm_id": f"{len(state)} 人",
                "excess_carry": f"{sum((Decimal(r.excess_carry) for r in state), Decimal(0)):.2f}",
                "risk_fund_balance":
                    f"{sum((Decimal(r.risk_fund_balance) for r in state), Decimal(0)):.2f}"},
        }
    return {"branch": batch.branch, "subject": batch_headline(batch)[:200], "title": title,
            "body": body, "signatures": signatures or []}


def _names(archive: Archive, batch: OpeningImport, extra: list[str]) -> dict[str, str]:
    rows = stored_rows(batch)
    return user_names(archive.engine, [batch.submitted_by, *(r.cm_id for r in rows), *extra])


def _actor(archive: Archive, user_id: str) -> UserView:
    with new_session(archive.engine) as session:
        view = get_user_view(session, user_id)
    assert view is not None  # the importer and counted signers are on the roster
    return view


def _archive_list(archive: Archive, batch: OpeningImport) -> str:
    """The import list the signers review (CNF), archived by the importer."""
    assert batch.id is not None
    data = document_data(batch, _names(archive, batch, []))
    spec = DocumentSpec(branch=batch.branch, doc_type="CNF", subject=data["subject"],
                        subject_key=request_key(batch.id), revision=REVISION,
                        source=f"opening import {batch.id}")
    return archive_step(archive, spec, data, actor=_actor(archive, batch.submitted_by))


def _archive_record(archive: Archive, batch: OpeningImport,
                    decisions: list[Decision]) -> str:
    """The signed record (second CNF): the list again with the outcome and every decision."""
    assert batch.id is not None
    names = _names(archive, batch, [d.signer_id for d in decisions])
    outcome = "refused" if batch.status == REJECTED and batch.note else batch.status
    data = document_data(batch, names, outcome=outcome, note=batch.note, signatures=[
        {"role": f"{OPENING_IMPORT_CHAIN.step(d.step).label}"
                 f"（{ROLE_LABELS.get(d.role, d.role)}）",
         "name": names.get(d.signer_id, d.signer_id), "decision": d.decision, "time": d.at,
         "opinion": d.opinion} for d in decisions])
    data["subject"] = f"{data['subject']}{OUTCOME_TITLES.get(outcome, '')}"[:200]
    spec = DocumentSpec(branch=batch.branch, doc_type="CNF", subject=data["subject"],
                        subject_key=signed_key(batch.id), revision=REVISION,
                        month=decisions[-1].at[:7], source=f"opening import {batch.id}")
    return archive_step(archive, spec, data, actor=_actor(archive, decisions[-1].signer_id))


def signing_request(archive: Archive, batch: OpeningImport) -> SigningRequest:
    """What the form of the batch's waiting step shows and checks."""
    assert batch.id is not None
    rows = stored_rows(batch)
    return SigningRequest(
        chain=OPENING_IMPORT_CHAIN, request_key=request_key(batch.id), revision=REVISION,
        attempt=batch.form_attempts, title=f"期初数据导入 #{batch.id} {batch_headline(batch)}",
        subject=batch_summary(batch, rows, _names(archive, batch, [])),
        serial=batch.list_serial, pdf_url=archive.document_link(batch.list_serial),
        # the trading dept manager who imported the file confirms it by signing its review;
        # the branch manager's approval is a second person's (distinct signers)
        submitter_id="", branch=batch.branch,
        run_name=run_name("期初导入", batch.branch, f"#{batch.id}",
                          KIND_TITLES.get(batch.kind, batch.kind)),
    )


def _finish(archive: Archive, import_id: int, state: Finished,
            decisions: list[Decision]) -> None:
    """Apply an approved batch (or refuse it when the database contradicts it now), or end a
    batch not approved; nothing is applied twice."""
    key = request_key(import_id)
    with new_session(archive.engine) as session:
        batch = get_import(session, import_id=import_id)
        if batch.status in FINAL:
            return
        if state.outcome == "approved":
            try:  # refused before it writes anything
                count = apply_import(session, batch=batch, zone=archive.zone,
                                     approved_by=[d.signer_id for d in decisions])
            except BadInput as exc:  # a conflict appeared while it waited
                set_import_status(session, batch=batch, status=REJECTED,
                                  note=f"导入时发现冲突，整批未导入：{exc}"[:4000])
                append_audit(session, actor_id="system", action="opening-import-refused",
                             request_key=key, details={"reason": str(exc)})
            else:
                append_audit(session, actor_id="system", action="opening-import-approved",
                             request_key=key, details={"rows": count, "kind": batch.kind})
        else:
            set_import_status(session, batch=batch, status=state.outcome)
            append_audit(session, actor_id="system", action=f"opening-import-{state.outcome}",
                         request_key=key, details={"step": state.step})
        clear_waiting(session, request_key=key)
        session.commit()


@flow(name="attribution-import", persist_result=True, on_completion=ANSWER_HOOKS,
      on_failure=ANSWER_HOOKS, on_cancellation=ANSWER_HOOKS)
def attribution_import(import_id: int, wait: WaitMode = "suspend",
                       poll_interval: float = 10.0) -> str:
    """Run (or continue) an opening import batch's chain; returns the status it ended with
    (approved, rejected, returned)."""
    settings = load_settings()
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        bind_flow_run(archive.engine, OpeningImport, import_id, run_id)
        return _run_chain(archive, import_id, run_id=run_id, mode=wait,
                          poll_interval=poll_interval)


def _run_chain(archive: Archive, import_id: int, *, run_id: str, mode: WaitMode,
               poll_interval: float) -> str:
    while True:
        with new_session(archive.engine) as session:
            batch = get_import(session, import_id=import_id)
            decisions = load_decisions(session, request_key=request_key(import_id),
                                       revision=REVISION, zone=archive.zone)
        if batch.status in FINAL:
            if decisions and not batch.record_serial:
                update_row(archive.engine, OpeningImport, import_id,
                           record_serial=_archive_record(archive, batch, decisions))
            return batch.status
        if not batch.list_serial:
            update_row(archive.engine, OpeningImport, import_id,
                       list_serial=_archive_list(archive, batch))
            continue
        state = progress(OPENING_IMPORT_CHAIN, decisions)
        if isinstance(state, Waiting):
            take_signature(archive.engine, signing_request(archive, batch), state, decisions,
                           claim_attempt=claim_on(OpeningImport, import_id), run_id=run_id,
                           mode=mode, poll_interval=poll_interval)
            continue
        _finish(archive, import_id, state, decisions)
