"""The inbox in SQL: every waiting step (``WaitingStep``, written by ``mark_waiting``) read with
its request, for ``approvals.inbox`` to decide whose it is.

One reader per kind of request key (``filing:``, ``attribution:``, ``opening-import:``,
``payroll:``, ``level:``, ``risk-fund:``, and ``evaluation:`` -- the forms its evaluators still
owe, as the evaluation's plan and the forms in say: ``payroll.evaluation_records``); a key of
another kind (or a request gone) is not in any inbox.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from brokerflow.approvals.chain import (
    ATTRIBUTION_CHAIN,
    FILING_CHAIN,
    OPENING_IMPORT_CHAIN,
    PAYROLL_CHAIN,
    RISK_FUND_DEDUCTION_CHAIN,
    RISK_FUND_REFUND_CHAIN,
)
from brokerflow.approvals.decisions import load_decisions
from brokerflow.approvals.inbox import RESUBMIT, InboxItem, WaitingRequest, inbox_items
from brokerflow.approvals.level_changes import chain_for, level_label, signer_refusal
from brokerflow.approvals.level_records import reporting_line
from brokerflow.approvals.opening_import import KIND_TITLES, batch_headline
from brokerflow.approvals.run_labels import (
    EVALUATOR_ROLES,
    attribution_run_name,
    evaluation_run_name,
    filing_run_name,
    level_change_run_name,
    payroll_run_name,
    risk_fund_run_name,
    run_name,
)
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import (
    Attribution,
    Evaluation,
    Filing,
    LevelChange,
    PayrollRun,
    WaitingStep,
)
from brokerflow.kernel.opening_models import OpeningImport
from brokerflow.kernel.staff_models import RiskFundMovement
from brokerflow.kernel.vocabulary import LEVEL_CHANGE_KINDS, EvaluationStatus
from brokerflow.payroll.evaluation_plan import outstanding
from brokerflow.payroll.evaluation_records import plan_of, submitted_forms

Reader = Callable[[Session, WaitingStep, str], WaitingRequest | None]
RISK_FUND_KINDS = {"deduction": ("风险基金扣除", RISK_FUND_DEDUCTION_CHAIN),
                   "refund": ("风险基金退还", RISK_FUND_REFUND_CHAIN)}


def _base(row: WaitingStep) -> dict[str, object]:
    return {"request_key": row.request_key, "revision": row.revision, "step": row.step,
            "flow_run_id": row.flow_run_id, "since": row.since}


def _filing(session: Session, row: WaitingStep, rest: str) -> WaitingRequest | None:
    filing = session.get(Filing, int(rest)) if rest.isdigit() else None
    if filing is None:
        return None
    return WaitingRequest(
        kind="报批", chain=None if row.step == RESUBMIT else FILING_CHAIN,
        submitter_id=filing.submitter_id, branch=filing.branch, signer_branch=None,
        serial=filing.current_serial, subject=filing.subject,
        run_name=filing_run_name(filing.current_serial, filing.subject),
        **_base(row))  # type: ignore[arg-type]


def _attribution(session: Session, row: WaitingStep, rest: str) -> WaitingRequest | None:
    claim = session.get(Attribution, int(rest)) if rest.isdigit() else None
    if claim is None:
        return None
    return WaitingRequest(
        kind="客户归属", chain=ATTRIBUTION_CHAIN, submitter_id=claim.registered_by,
        branch=claim.branch, signer_branch=claim.branch, serial=claim.confirmation_serial,
        subject=f"客户归属确认 #{claim.id} → {claim.cm_id}",
        run_name=attribution_run_name(claim.client_id or f"#{claim.id}", claim.cm_id),
        **_base(row))  # type: ignore[arg-type]


def _opening_import(session: Session, row: WaitingStep, rest: str) -> WaitingRequest | None:
    batch = session.get(OpeningImport, int(rest)) if rest.isdigit() else None
    if batch is None:
        return None
    return WaitingRequest(  # the importing trading manager reviews it (as the flow's form)
        kind="期初导入", chain=OPENING_IMPORT_CHAIN, submitter_id="", branch=batch.branch,
        signer_branch=batch.branch, serial=batch.list_serial, subject=batch_headline(batch),
        run_name=run_name("期初导入", batch.branch, f"#{batch.id}",
                          KIND_TITLES.get(batch.kind, batch.kind)),
        **_base(row))  # type: ignore[arg-type]


def _payroll(session: Session, row: WaitingStep, rest: str) -> WaitingRequest | None:
    branch, _, month = rest.partition(":")
    run = session.exec(select(PayrollRun).where(
        PayrollRun.branch == branch, PayrollRun.month == month,
        PayrollRun.revision == row.revision)).first()
    if run is None:
        return None
    return WaitingRequest(
        kind="薪酬", chain=PAYROLL_CHAIN, submitter_id="", branch=branch, signer_branch=branch,
        serial=run.pay_serial, subject=f"营业部客户经理薪酬月报表 {month}",
        run_name=payroll_run_name(branch, month), **_base(row))  # type: ignore[arg-type]


def _level(session: Session, row: WaitingStep, rest: str) -> WaitingRequest | None:
    change = session.get(LevelChange, int(rest)) if rest.isdigit() else None
    if change is None:
        return None
    headline = (f"{LEVEL_CHANGE_KINDS.get(change.kind, change.kind)} "
                f"{level_label(change.from_title)}→{level_label(change.to_title)}")
    line = reporting_line(session, user_id=change.cm_id)
    return WaitingRequest(
        kind="职级变动", chain=chain_for(change.kind), submitter_id=change.proposed_by,
        branch=change.branch, signer_branch=change.branch, serial="",
        subject=f"{change.cm_id} {headline}",
        run_name=level_change_run_name(change.branch, change.cm_id, headline),
        refusal=partial(_level_refusal, step=row.step, cm_id=change.cm_id, line=tuple(line)),
        **_base(row))  # type: ignore[arg-type]


def _level_refusal(signer_id: str, *, step: str, cm_id: str,
                   line: tuple[str, ...]) -> str | None:
    return signer_refusal(signer_id, step=step, cm_id=cm_id, reporting_line=line)


def _risk_fund(session: Session, row: WaitingStep, rest: str) -> WaitingRequest | None:
    movement = session.get(RiskFundMovement, int(rest)) if rest.isdigit() else None
    if movement is None or movement.kind not in RISK_FUND_KINDS:
        return None
    what, chain = RISK_FUND_KINDS[movement.kind]
    cm_id = movement.cm_id
    return WaitingRequest(
        kind=what, chain=chain, submitter_id=movement.proposed_by, branch=movement.branch,
        signer_branch=movement.branch, serial="",
        subject=f"{cm_id} {movement.amount} 元",
        run_name=risk_fund_run_name(what, movement.branch, cm_id, movement.amount),
        refusal=lambda signer: "their own movement" if signer == cm_id else None,
        **_base(row))  # type: ignore[arg-type]


def _evaluation(session: Session, row: WaitingStep, rest: str) -> WaitingRequest | None:
    branch, _, quarter = rest.partition(":")
    evaluation = session.exec(select(Evaluation).where(
        Evaluation.branch == branch, Evaluation.quarter == quarter,
        Evaluation.status == EvaluationStatus.COLLECTING)).first()
    if evaluation is None or evaluation.id is None:
        return None
    forms = submitted_forms(session, evaluation_id=evaluation.id)
    owed: dict[str, tuple[str, ...]] = {}
    for slot in outstanding(plan_of(evaluation),
                            {(f.evaluatee, f.group, f.evaluator) for f in forms}):
        for evaluator in slot.evaluators:
            owed[evaluator] = (*owed.get(evaluator, ()), EVALUATOR_ROLES.get(slot.group, ""))
    return WaitingRequest(
        kind="季度考评", chain=None, submitter_id="", branch=branch, signer_branch=branch,
        serial="", subject=f"{quarter} 季度考评", run_name=evaluation_run_name(branch, quarter),
        owed=owed, **_base(row))  # type: ignore[arg-type]


READERS: dict[str, Reader] = {"filing": _filing, "attribution": _attribution,
                              "opening-import": _opening_import, "payroll": _payroll,
                              "level": _level, "risk-fund": _risk_fund,
                              "evaluation": _evaluation}


def waiting_requests(session: Session) -> list[WaitingRequest]:
    """Every request waiting on a step now, of the kinds the inbox knows."""
    found = []
    for row in session.exec(select(WaitingStep)):
        kind, _, rest = row.request_key.partition(":")
        reader = READERS.get(kind)
        request = reader(session, row, rest) if reader is not None else None
        if request is not None:
            found.append(request)
    return found


def waiting_for(session: Session, *, user: UserView, zone: ZoneInfo) -> list[InboxItem]:
    """待我签批: the steps ``user`` may sign now, oldest wait first."""
    pending = [(request, load_decisions(session, request_key=request.request_key,
                                        revision=request.revision, zone=zone))
               for request in waiting_requests(session)]
    return inbox_items(pending, user)
