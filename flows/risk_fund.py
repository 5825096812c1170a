"""The risk-fund flow (风险基金扣除/退还, seed 001 第二十五条; SPEC §8.3) as a Prefect flow.

One movement per run: a deduction the branch manager proposed is signed by the finance manager;
a refund the rule made due is signed by the finance manager, then the branch manager.
Approved: 风险基金扣除/退还审批单 (RFD) archived, readable by the CM, and the movement waits for
the next closing of the branch, which applies it.  Rejected or returned: the movement ends so,
nothing archived.

All state lives in the database; a run that is re-executed (after a suspension or a worker
restart) continues where the decisions left off.
"""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

from decimal import Decimal
from typing import Any

from prefect import flow

from brokerflow.approvals.chain import (
    RISK_FUND_DEDUCTION_CHAIN,
    RISK_FUND_REFUND_CHAIN,
    Chain,
    Decision,
    Finished,
    Waiting,
    progress,
)
from brokerflow.approvals.decisions import clear_waiting, load_decisions
from brokerflow.approvals.run_labels import risk_fund_run_name
from brokerflow.approvals.signing import (
    SigningRequest,
    bind_flow_run,
    claim_on,
    take_signature,
    user_names,
)
from brokerflow.approvals.waiting import ANSWER_HOOKS, WaitMode, current_flow_run_id
from brokerflow.archive.holds import close_case_hold, cm_case_key
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.archive_document import archive_step
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import User
from brokerflow.kernel.roster import get_user_view
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.staff_models import RiskFundMovement
from brokerflow.kernel.vocabulary import ROLE_LABELS, STATUS_LABELS
from brokerflow.payroll.risk_fund import DEDUCTION, KIND_LABELS, REFUND, cause_label
from brokerflow.payroll.risk_fund_records import (
    APPROVED,
    FINAL,
    REJECTED,
    RETURNED,
    SIGNING,
    SYSTEM,
    UNDER_WAY,
    ZERO,
    balance_of,
    cm_name,
    get_movement,
    request_key,
    set_movement_status,
)
from brokerflow.payroll.rules import money

REVISION = 1  # a movement is never revised: a returned one ends, a new one is proposed


def chain_for(kind: str) -> Chain:
    """The chain that signs a movement of ``kind``."""
    return RISK_FUND_REFUND_CHAIN if kind == REFUND else RISK_FUND_DEDUCTION_CHAIN


def _headline(movement: RiskFundMovement, name: str) -> str:
    what = KIND_LABELS.get(movement.kind, movement.kind)
    cause = f"（{cause_label(movement.cause)}）" if movement.kind == DEDUCTION else ""
    return f"{what}{cause}：{name or movement.cm_id}（{movement.cm_id}）{movement.amount} 元"


def _proposer(movement: RiskFundMovement, names: dict[str, str]) -> str:
    if movement.proposed_by == SYSTEM:
        return "系统（离职满6个月，月度退还清单）"
    return f"{names.get(movement.proposed_by, movement.proposed_by)}（{movement.proposed_by}）"


def document_data(archive: Archive, movement: RiskFundMovement, chain: Chain,
                  decisions: list[Decision]) -> dict[str, Any]:
    """The RFD's data: who, what, why, the balance before and after, the leave and due dates
    of a refund, every signature."""
    names = user_names(archive.engine, [movement.proposed_by,
                                        *(d.signer_id for d in decisions)])
    with new_session(archive.engine) as session:
        name = cm_name(session, branch=movement.branch, cm_id=movement.cm_id)
        found = balance_of(session, branch=movement.branch, cm_id=movement.cm_id)
    amount = Decimal(movement.amount)
    before = ZERO
    if found is not None:  # the carried balance less the other deductions not applied yet
        others = found.pending_deductions - (amount if movement.kind == DEDUCTION else ZERO)
        before = money(max(ZERO, found.balance - others))
    after = money(max(ZERO, before - amount)) if movement.kind == DEDUCTION else ZERO
    subject = _headline(movement, name)
    body: dict[str, Any] = {
        "cm_id": movement.cm_id, "cm_name": name,
        "kind": KIND_LABELS.get(movement.kind, movement.kind),
        "cause": cause_label(movement.cause) if movement.kind == DEDUCTION else "",
        "amount": movement.amount, "balance_before": f"{before:.2f}",
        "balance_after": f"{after:.2f}", "reason": movement.reason,
        "proposed_by": _proposer(movement, names),
        "balance_month": found.month if found is not None else "",
        "leave_date": str(movement.leave_date or ""), "due_date": str(movement.due_date or ""),
    }
    return {
        "branch": movement.branch, "subject": subject[:200], "body": body,
        "signatures": [
            {"role": f"{chain.step(d.step).label}（{ROLE_LABELS.get(d.role, d.role)}）",
             "name": names.get(d.signer_id, d.signer_id), "decision": d.decision,
             "time": d.at, "opinion": d.opinion}
            for d in decisions
        ],
    }


#: Titles of the RFD that records a movement the chain did not approve (every chain ends in
#: an archived document with every signature, SPEC §9).
NOT_APPROVED_TITLES = {REJECTED: "风险基金扣除/退还审批单（未通过）",
                       RETURNED: "风险基金扣除/退还审批单（退回）"}


def _archive_rfd(archive: Archive, movement: RiskFundMovement, chain: Chain,
                 decisions: list[Decision], *, outcome: str = APPROVED) -> str:
    """The RFD with every signature; for a movement not approved, the same record titled so
    (nothing applied: the balance stays)."""
    assert movement.id is not None
    data = document_data(archive, movement, chain, decisions)
    title = NOT_APPROVED_TITLES.get(outcome, "")
    if title:
        data["title"] = title
        data["subject"] = f"{data['subject']}（{STATUS_LABELS.get(outcome, outcome)}）"[:200]
        data["body"]["balance_after"] = data["body"]["balance_before"]
        data["body"]["outcome"] = STATUS_LABELS.get(outcome, outcome)
    with new_session(archive.engine) as session:
        cm = session.get(User, movement.cm_id)
        archiver = get_user_view(session, decisions[-1].signer_id)
    assert archiver is not None  # a counted signer is on the roster
    on_roster = cm is not None and cm.branch == movement.branch
    spec = DocumentSpec(branch=movement.branch, doc_type="RFD", subject=data["subject"],
                        subject_key=request_key(movement.id), revision=REVISION,
                        cm_id=movement.cm_id if on_roster else None,
                        month=decisions[-1].at[:7], source=f"risk-fund movement {movement.id}")
    return archive_step(archive, spec, data, actor=archiver)


def _take_signature(archive: Archive, movement: RiskFundMovement, chain: Chain,
                    waiting: Waiting, decisions: list[Decision], *, run_id: str,
                    mode: WaitMode, poll_interval: float) -> None:
    assert movement.id is not None
    with new_session(archive.engine) as session:
        name = cm_name(session, branch=movement.branch, cm_id=movement.cm_id)
    what = KIND_LABELS.get(movement.kind, movement.kind)
    request = SigningRequest(
        chain=chain, request_key=request_key(movement.id), revision=REVISION,
        attempt=movement.form_attempts,
        title=f"{what} {movement.cm_id} {movement.amount} 元",
        subject=f"{_headline(movement, name)}；事由：{movement.reason}",
        serial="（批准后归档风险基金扣除/退还审批单 RFD）", pdf_url="",
        submitter_id=movement.proposed_by, branch=movement.branch,
        run_name=risk_fund_run_name(what, movement.branch, movement.cm_id, movement.amount),
        extra_check=lambda answer: (
            "the CM may not sign their own risk-fund movement"
            if str(answer.signer).strip() == movement.cm_id else None),
    )
    take_signature(archive.engine, request, waiting, decisions,
                   claim_attempt=claim_on(RiskFundMovement, movement.id), run_id=run_id,
                   mode=mode, poll_interval=poll_interval)


def _end_hold(archive: Archive, movement: RiskFundMovement, outcome: str) -> None:
    """A deduction's risk-fund case (its legal hold, opened when it was proposed) ends with
    its chain; idempotent, so a run executed again finishes an interrupted release."""
    if movement.kind == DEDUCTION and movement.id is not None:
        close_case_hold(archive, case_key=cm_case_key("riskfund", movement.branch, movement.id),
                        actor_id="system", reason=f"risk-fund deduction {movement.id} {outcome}")


def _finish(archive: Archive, movement: RiskFundMovement, chain: Chain, state: Finished,
            decisions: list[Decision]) -> str:
    assert movement.id is not None
    key = request_key(movement.id)
    serial = record = ""
    if state.outcome == "approved":
        serial = _archive_rfd(archive, movement, chain, decisions)
    elif decisions:
        record = _archive_rfd(archive, movement, chain, decisions, outcome=state.outcome)
    with new_session(archive.engine) as session:
        current = get_movement(session, movement_id=movement.id)
        set_movement_status(session, movement=current, status=state.outcome,
                            rfd_serial=serial)
        clear_waiting(session, request_key=key)
        append_audit(session, actor_id="system", action=f"risk-fund-{state.outcome}",
                     request_key=key,
                     details={"kind": movement.kind, "cm": movement.cm_id,
                              "amount": movement.amount, "rfd": serial, "step": state.step,
                              "record": record})
        session.commit()
    _end_hold(archive, movement, state.outcome)
    return serial or state.outcome


@flow(name="risk-fund", persist_result=True, on_completion=ANSWER_HOOKS,
      on_failure=ANSWER_HOOKS, on_cancellation=ANSWER_HOOKS)
def risk_fund(movement_id: int, wait: WaitMode = "suspend", poll_interval: float = 10.0) -> str:
    """Run (or continue) a risk-fund movement's chain; returns the RFD serial, or the status
    it ended with (rejected, returned)."""
    settings = load_settings()
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        bind_flow_run(archive.engine, RiskFundMovement, movement_id, run_id)
        return _run_chain(archive, movement_id, run_id=run_id, mode=wait,
                          poll_interval=poll_interval)


def _run_chain(archive: Archive, movement_id: int, *, run_id: str, mode: WaitMode,
               poll_interval: float) -> str:
    with new_session(archive.engine) as session:
        movement = get_movement(session, movement_id=movement_id)
        if movement.status in UNDER_WAY and movement.status != SIGNING:
            set_movement_status(session, movement=movement, status=SIGNING)
            append_audit(session, actor_id="system", action="risk-fund-signing",
                         request_key=request_key(movement_id),
                         details={"kind": movement.kind, "flow_run": run_id})
            session.commit()
    chain = chain_for(movement.kind)
    while True:
        with new_session(archive.engine) as session:
            movement = get_movement(session, movement_id=movement_id)
            decisions = load_decisions(session, request_key=request_key(movement_id),
                                       revision=REVISION, zone=archive.zone)
        if movement.status in FINAL:
            _end_hold(archive, movement, movement.status)
            return movement.rfd_serial if movement.status == APPROVED else movement.status
        state = progress(chain, decisions)
        if isinstance(state, Waiting):
            _take_signature(archive, movement, chain, state, decisions, run_id=run_id,
                            mode=mode, poll_interval=poll_interval)
            continue
        return _finish(archive, movement, chain, state, decisions)
