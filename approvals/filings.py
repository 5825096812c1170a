"""Filing requests (报批) in the database: create, read, list.  Keyword-only, caller commits."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from brokerflow.approvals.chain import FILING_CHAIN, Decision, Waiting, progress
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.errors import AccessDenied, BadInput, NotFound
from brokerflow.kernel.identity import UserView, check_branch
from brokerflow.kernel.models import Filing, WaitingStep
from brokerflow.kernel.vocabulary import FilingStatus

#: Subjects that must be filed (seed 002 第四条): plan, recruitment, assessment, team pay rules.
FILING_KINDS = {
    "marketing_plan": "年度营销方案",
    "recruitment": "人员招聘计划",
    "assessment": "考核办法",
    "pay_rules": "团队薪酬办法",
}
MAX_BODY_CHARS = 20_000


def request_key(filing_id: int) -> str:
    return f"filing:{filing_id}"


def validate_submission(
    *, branch: str, kind: str, subject: str, body: str, submitter: UserView
) -> None:
    """Raise BadInput / AccessDenied before anything is written."""
    check_branch(branch)
    if kind not in FILING_KINDS:
        raise BadInput(f"unknown filing kind {kind!r}; one of {', '.join(FILING_KINDS)}",
                       column="--kind")
    if not subject.strip() or len(subject) > 200:
        raise BadInput("subject must be 1-200 characters", column="--subject")
    if len(body) > MAX_BODY_CHARS:
        raise BadInput(f"request text is longer than {MAX_BODY_CHARS} characters",
                       column="--body")
    if submitter.branch != branch:
        raise AccessDenied(f"{submitter.user_id} is not staff of branch {branch}")


def create_filing(
    session: Session, *, branch: str, kind: str, subject: str, body: str,
    submitter: UserView, attachments: list[str] | None = None, flow_run_id: str | None = None,
) -> Filing:
    validate_submission(branch=branch, kind=kind, subject=subject, body=body,
                        submitter=submitter)
    filing = Filing(branch=branch, kind=kind, subject=subject.strip(), body=body,
                    attachments=json.dumps(attachments or []), submitter_id=submitter.user_id,
                    flow_run_id=flow_run_id)
    session.add(filing)
    session.flush()
    assert filing.id is not None
    append_audit(session, actor_id=submitter.user_id, action="submitted",
                 request_key=request_key(filing.id),
                 details={"branch": branch, "kind": kind, "subject": filing.subject,
                          "revision": 1, "attachments": attachments or []})
    return filing


def get_filing(session: Session, *, filing_id: int) -> Filing:
    filing = session.get(Filing, filing_id)
    if filing is None:
        raise NotFound(f"no filing {filing_id}")
    return filing


def list_filings(session: Session, *, branch: str | None = None,
                 status: str | None = None) -> list[Filing]:
    statement = select(Filing)
    if branch:
        statement = statement.where(Filing.branch == branch)
    if status:
        statement = statement.where(Filing.status == status)
    return list(session.exec(statement.order_by(col(Filing.id))))


def touch(filing: Filing) -> None:
    filing.updated_at = utcnow()


def status_report(filing: Filing, decisions: list[Decision],
                  waiting: WaitingStep | None) -> dict[str, Any]:
    """Where a filing stands, as ``filing status`` shows it (pure; the run is added by the
    caller)."""
    state = progress(FILING_CHAIN, decisions)
    waiting_on: dict[str, Any] | None = None
    if isinstance(state, Waiting) and filing.status == FilingStatus.WAITING:
        waiting_on = {"step": state.step.name, "label": state.step.label,
                      "may_sign": state.may_sign}
    elif filing.status == FilingStatus.RETURNED:
        waiting_on = {"step": "resubmit", "label": "退回：提交人修改后重新提交或撤回",
                      "may_sign": (filing.submitter_id,)}
    elif filing.status == FilingStatus.WAITING:
        waiting_on = {"step": "finish", "label": "all signatures in; the result document "
                      "(FOP) is not archived yet", "may_sign": ()}
    return {
        "id": filing.id, "branch": filing.branch, "kind": filing.kind,
        "subject": filing.subject, "submitter": filing.submitter_id,
        "revision": filing.revision, "status": filing.status,
        "request_serial": filing.current_serial, "result_serial": filing.result_serial,
        "flow_run_id": filing.flow_run_id,
        "waiting_on": waiting_on,
        "last_refusal": waiting.last_refusal if waiting else "",
        "decisions": [d.__dict__ | {"departments": list(d.departments)} for d in decisions],
    }
