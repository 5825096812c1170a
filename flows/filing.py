"""The filing chain (报批流程, seed 002 第四条) as a Prefect flow.

branch submits (FIL archived) → brokerage business office → channel dept (names countersign
departments) → countersign → brokerage business office completes the filing → VP → the
countersign opinions go back to the branch (FOP archived).  Any reviewer may approve, reject
or return; a return waits for the submitter's revision (revision + 1, new FIL).

All state lives in the database; the flow only derives the next step from it, so a run that is
re-executed (after a suspension or a worker restart) continues where the decisions left off.
"""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

import json
from typing import Any

from prefect import flow

from brokerflow.approvals.chain import FILING_CHAIN, Decision, Finished, Waiting, progress
from brokerflow.approvals.decisions import (
    clear_waiting,
    load_decisions,
    mark_waiting,
    record_refusal,
)
from brokerflow.approvals.filings import FILING_KINDS, create_filing, get_filing, request_key, touch
from brokerflow.approvals.forms import (
    ResubmitForm,
    SubmitForm,
    describe_return,
    describe_submission,
)
from brokerflow.approvals.run_labels import filing_run_name, waiting_tags
from brokerflow.approvals.signing import (
    SigningRequest,
    bind_flow_run,
    claim_on,
    form_key,
    take_signature,
    update_row,
    user_names,
)
from brokerflow.approvals.waiting import (
    ANSWER_HOOKS,
    WaitMode,
    awaited_form,
    current_flow_run_id,
    label_current_run,
)
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.archive_document import archive_step
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.models import AuditEvent, Filing
from brokerflow.kernel.roster import get_user_view, identify
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.vocabulary import (
    DEPARTMENT_LABELS,
    OUTCOME_LABELS,
    DecisionKind,
    FilingStatus,
)
from brokerflow.payroll.pay_rules import pay_rules_of_filing, settle_pay_rules

FINAL = ("approved", "rejected", "withdrawn")


def _archive_request_document(archive: Archive, filing: Filing) -> str:
    """The FIL of the current revision (rendered with its serial, archived once)."""
    assert filing.id is not None
    with new_session(archive.engine) as session:
        submitter = get_user_view(session, filing.submitter_id)
    assert submitter is not None
    with new_session(archive.engine) as session:
        rules = pay_rules_of_filing(session, filing_id=filing.id)
    data: dict[str, Any] = {
        "branch": filing.branch, "subject": filing.subject,
        "body": {"kind": FILING_KINDS.get(filing.kind, filing.kind), "text": filing.body,
                 "revision": filing.revision,
                 "submitted_by": f"{submitter.name} ({submitter.user_id})",
                 "attachments": json.loads(filing.attachments)},
    }
    if rules is not None:  # the pay rules themselves: what the reviewers approve
        data["body"] |= {"policy": rules.policy, "policy_sha256": rules.sha256,
                         "effective_month": rules.effective_month}
    spec = DocumentSpec(branch=filing.branch, doc_type="FIL", subject=filing.subject,
                        subject_key=request_key(filing.id), revision=filing.revision,
                        source=f"filing {filing.id}")
    return archive_step(archive, spec, data, actor=submitter)


def result_document_data(filing: Filing, outcome: str, decisions: list[Decision],
                         names: dict[str, str]) -> dict[str, Any]:
    """The FOP's data: each opinion once -- the countersigning departments' under 会签意见
    (``body.opinions``), every other step's in the 签批单 (``signatures``).  Pure."""
    departments = [DEPARTMENT_LABELS.get(d, d)
                   for d in next((d.departments for d in decisions if d.departments), ())]
    opinions = [
        {"department": DEPARTMENT_LABELS.get(d.department, d.department),
         "name": names.get(d.signer_id, d.signer_id), "decision": d.decision,
         "time": d.at, "opinion": d.opinion}
        for d in decisions if d.department
    ]
    return {
        "branch": filing.branch, "subject": filing.subject,
        "body": {"filing_serial": filing.current_serial, "countersign_departments": departments,
                 "outcome": OUTCOME_LABELS.get(outcome, outcome), "opinions": opinions},
        "signatures": [{"role": FILING_CHAIN.step(d.step).label,
                        "name": names.get(d.signer_id, d.signer_id),
                        "decision": d.decision, "time": d.at, "opinion": d.opinion}
                       for d in decisions if not d.department],
    }


def _archive_result_document(
    archive: Archive, filing: Filing, outcome: str, decisions: list[Decision]
) -> str:
    """The FOP, sent back to the branch (``result_document_data``)."""
    assert filing.id is not None
    names = user_names(archive.engine, [d.signer_id for d in decisions])
    data = result_document_data(filing, outcome, decisions, names)
    office = [d.signer_id for d in decisions if d.step == "office_complete"]
    sender_id = office[0] if office else decisions[-1].signer_id
    with new_session(archive.engine) as session:
        sender = get_user_view(session, sender_id)
    assert sender is not None
    subject = f"会签意见：{filing.subject}"[:200]
    spec = DocumentSpec(branch=filing.branch, doc_type="FOP", subject=subject,
                        subject_key=f"{request_key(filing.id)}:opinions",
                        revision=filing.revision, source=f"filing {filing.id}")
    return archive_step(archive, spec, data, actor=sender)


def _take_signature(
    archive: Archive, filing: Filing, waiting: Waiting, decisions: list[Decision], *,
    run_id: str, mode: WaitMode, poll_interval: float,
) -> None:
    assert filing.id is not None
    filing_id = filing.id
    request = SigningRequest(
        chain=FILING_CHAIN, request_key=request_key(filing_id), revision=filing.revision,
        attempt=filing.form_attempts, title=f"报批 Filing #{filing_id} (revision "
        f"{filing.revision})", subject=filing.subject, serial=filing.current_serial,
        pdf_url=archive.document_link(filing.current_serial), submitter_id=filing.submitter_id,
        run_name=filing_run_name(filing.current_serial, filing.subject), home_branch=filing.branch,
    )
    take_signature(archive.engine, request, waiting, decisions,
                   claim_attempt=claim_on(Filing, filing_id), run_id=run_id, mode=mode,
                   poll_interval=poll_interval)


def _await_revision(
    archive: Archive, filing: Filing, *, run_id: str, mode: WaitMode, poll_interval: float
) -> None:
    """After a return: the submitter resubmits (revision + 1) or withdraws."""
    assert filing.id is not None
    key = request_key(filing.id)
    attempt = filing.form_attempts
    with new_session(archive.engine) as session:
        current = get_filing(session, filing_id=filing.id)
        current.status = FilingStatus.RETURNED
        row = mark_waiting(session, request_key=key, revision=filing.revision,
                           step="resubmit", flow_run_id=run_id)
        last_refusal = row.last_refusal
        session.add(current)
        session.commit()
    label_current_run(add=waiting_tags(branch=filing.branch, roles=()))  # the submitter's turn
    decisions = load_decisions_for(archive, filing)
    returned = next(d for d in decisions if d.decision == DecisionKind.RETURN)
    description = describe_return(
        filing_id=filing.id, revision=filing.revision,
        step_label=FILING_CHAIN.step(returned.step).label, opinion=returned.opinion,
        submitter_id=filing.submitter_id, last_refusal=last_refusal)
    key_of_form = form_key(key, filing.revision, attempt)
    with awaited_form(ResubmitForm, description=description, key=key_of_form, mode=mode,
                      poll_interval=poll_interval) as answer:
        signer = identify(archive.engine, user_id=answer.signer.strip(),
                          secret=answer.secret.get_secret_value())
        with new_session(archive.engine) as session:
            current = get_filing(session, filing_id=filing.id)
            if current.form_attempts != attempt:
                return  # processed before a restart
            current.form_attempts += 1
            touch(current)
            if signer is None or signer.user_id != filing.submitter_id:
                record_refusal(session, request_key=key, revision=filing.revision,
                               step="resubmit", signer_id=answer.signer,
                               reason="only the submitter, with their secret, may resubmit",
                               form_key=key_of_form)
            elif answer.action == "withdraw":
                current.status = FilingStatus.WITHDRAWN
                settle_pay_rules(session, filing_id=filing.id, outcome=FilingStatus.WITHDRAWN,
                                 filing_serial=filing.current_serial, result_serial="")
                clear_waiting(session, request_key=key)
                append_audit(session, actor_id=signer.user_id, action="withdrawn",
                             request_key=key,
                             details={"revision": filing.revision, "form": key_of_form})
            else:
                current.revision += 1
                current.subject = (answer.subject.strip() or current.subject)[:200]
                current.body = answer.body or current.body
                current.status = FilingStatus.WAITING
                current.current_serial = ""
                clear_waiting(session, request_key=key)
                append_audit(session, actor_id=signer.user_id, action="resubmitted",
                             request_key=key,
                             details={"revision": current.revision, "subject": current.subject,
                                      "form": key_of_form})
            session.add(current)
            session.commit()


def load_decisions_for(archive: Archive, filing: Filing) -> list[Decision]:
    assert filing.id is not None
    with new_session(archive.engine) as session:
        return load_decisions(session, request_key=request_key(filing.id),
                              revision=filing.revision, zone=archive.zone)


def _finish(archive: Archive, filing: Filing, state: Finished,
            decisions: list[Decision]) -> str:
    assert filing.id is not None
    serial = _archive_result_document(archive, filing, state.outcome, decisions)
    with new_session(archive.engine) as session:
        current = get_filing(session, filing_id=filing.id)
        if current.status not in FINAL:
            current.status = state.outcome
            current.result_serial = serial
            touch(current)
            settle_pay_rules(session, filing_id=filing.id, outcome=state.outcome,
                             filing_serial=filing.current_serial, result_serial=serial)
            clear_waiting(session, request_key=request_key(filing.id))
            append_audit(session, actor_id="system", action="finished",
                         request_key=request_key(filing.id),
                         details={"revision": filing.revision, "outcome": state.outcome,
                                  "result_serial": serial})
            session.add(current)
            session.commit()
    return serial


def _confirm_ui_submission(
    archive: Archive, *, run_id: str, branch: str, kind: str, subject: str, body: str,
    submitter: str, mode: WaitMode, poll_interval: float,
) -> int:
    """A submission started from the Prefect UI: the submitter confirms with their secret."""
    with new_session(archive.engine) as session:
        existing = session.exec(_by_run(run_id)).first()
    if existing is not None and existing.id is not None:
        return existing.id
    if kind == "pay_rules":
        raise BadInput("pay rules carry a policy file: submit them with 'brokerflow filing "
                       "submit --kind pay_rules --policy FILE --effective-month YYYY-MM'",
                       column="kind")
    submission = f"submission:{run_id}"
    while True:
        attempt = _refusals(archive, submission)  # a re-run asks for the same form again
        with awaited_form(
            SubmitForm,
            description=describe_submission(branch=branch, kind=kind, subject=subject,
                                            submitter=submitter),
            key=f"submit-{attempt}", mode=mode, poll_interval=poll_interval) as answer:
            signer = identify(archive.engine, user_id=answer.signer.strip(),
                              secret=answer.secret.get_secret_value())
            with new_session(archive.engine) as session:
                if signer is not None and signer.user_id == submitter:
                    filing = create_filing(session, branch=branch, kind=kind, subject=subject,
                                           body=body, submitter=signer, flow_run_id=run_id)
                    session.commit()
                    assert filing.id is not None
                    return filing.id
                append_audit(session, actor_id=answer.signer or "(blank)", action="refused",
                             request_key=submission,
                             details={"reason": "not the named submitter, or wrong secret",
                                      "form": f"submit-{attempt}"})
                session.commit()


def _refusals(archive: Archive, request: str) -> int:
    """How many forms of ``request`` were refused so far (the next form's number)."""
    from sqlmodel import func, select

    with new_session(archive.engine) as session:
        return int(session.exec(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.request_key == request, AuditEvent.action == "refused")).one())


def _by_run(run_id: str) -> Any:
    from sqlmodel import select

    return select(Filing).where(Filing.flow_run_id == run_id)


@flow(name="filing-chain", persist_result=True, on_completion=ANSWER_HOOKS,
      on_failure=ANSWER_HOOKS, on_cancellation=ANSWER_HOOKS)
def filing_chain(
    filing_id: int | None = None,
    branch: str = "",
    kind: str = "marketing_plan",
    subject: str = "",
    body: str = "",
    submitter: str = "",
    wait: WaitMode = "suspend",
    poll_interval: float = 10.0,
) -> str:
    """Run (or continue) the filing chain; returns the FOP serial, or the final status.

    From the CLI: ``filing_id`` of a filing created by ``brokerflow filing submit``.  From the
    Prefect UI: branch, kind, subject, body and submitter; the submitter then confirms.
    """
    settings = load_settings()
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        if filing_id is None:
            filing_id = _confirm_ui_submission(
                archive, run_id=run_id, branch=branch, kind=kind, subject=subject, body=body,
                submitter=submitter, mode=wait, poll_interval=poll_interval)
        bind_flow_run(archive.engine, Filing, filing_id, run_id)
        return _run_chain(archive, filing_id, run_id=run_id, mode=wait,
                          poll_interval=poll_interval)


def _run_chain(archive: Archive, filing_id: int, *, run_id: str, mode: WaitMode,
               poll_interval: float) -> str:
    while True:
        with new_session(archive.engine) as session:
            filing = get_filing(session, filing_id=filing_id)
        if filing.status in FINAL:
            return filing.result_serial or filing.status
        if not filing.current_serial:
            update_row(archive.engine, Filing, filing_id,
                       current_serial=_archive_request_document(archive, filing))
            continue
        decisions = load_decisions_for(archive, filing)
        state = progress(FILING_CHAIN, decisions)
        if isinstance(state, Waiting):
            _take_signature(archive, filing, state, decisions, run_id=run_id, mode=mode,
                            poll_interval=poll_interval)
        elif state.outcome == "returned":
            _await_revision(archive, filing, run_id=run_id, mode=mode,
                            poll_interval=poll_interval)
        else:
            return _finish(archive, filing, state, decisions)
