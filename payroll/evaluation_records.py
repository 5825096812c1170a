"""Quarterly evaluations and their forms in the database (SPEC §8.2).

An ``Evaluation`` is opened once per branch and quarter with its plan (who evaluates whom,
``payroll.evaluation_plan``) taken from the roster at that moment; each form that counts is an
``EvaluationForm``.  Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import local_minute, utcnow
from brokerflow.kernel.errors import NotFound
from brokerflow.kernel.identity import HEAD_OFFICE, UserView
from brokerflow.kernel.models import Evaluation, EvaluationForm, User
from brokerflow.kernel.roster import get_user_view
from brokerflow.kernel.vocabulary import EvaluationStatus
from brokerflow.payroll.evaluation_plan import (
    Accepted,
    Plan,
    Submitted,
    build_plan,
    plan_from_json,
    plan_json,
)


def request_key(branch: str, quarter: str) -> str:
    return f"evaluation:{branch}:{quarter}"


def evaluation_branches(session: Session) -> list[str]:
    """Every branch of the roster, head office excepted."""
    return sorted(b for b in session.exec(select(User.branch).distinct()) if b != HEAD_OFFICE)


def active_staff(session: Session, *, branch: str, today: date) -> list[UserView]:
    """The branch's users who have not left."""
    users = session.exec(select(User).where(User.branch == branch)
                         .order_by(col(User.user_id))).all()
    views = [get_user_view(session, u.user_id) for u in users
             if u.left_on is None or u.left_on > today]
    return [v for v in views if v is not None]


def open_evaluation(session: Session, *, branch: str, quarter: str, deadline: datetime,
                    run_id: str, today: date) -> Evaluation:
    """The branch's evaluation of ``quarter``: the existing one, or a new one whose plan is
    taken from the roster now (audited)."""
    existing = session.exec(select(Evaluation).where(Evaluation.branch == branch,
                                                     Evaluation.quarter == quarter)).first()
    if existing is not None:
        return existing
    plan = build_plan(active_staff(session, branch=branch, today=today))
    evaluation = Evaluation(branch=branch, quarter=quarter, deadline=deadline,
                            plan=plan_json(plan), flow_run_id=run_id or None)
    session.add(evaluation)
    session.flush()
    append_audit(session, actor_id="system", action="evaluation-opened",
                 request_key=request_key(branch, quarter),
                 details={"evaluation": evaluation.id, "deadline": deadline.isoformat(),
                          "evaluatees": sorted(plan.people), "forms": len(plan.slots),
                          "flow_run": run_id})
    return evaluation


def get_evaluation(session: Session, *, evaluation_id: int) -> Evaluation:
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    return evaluation


def plan_of(evaluation: Evaluation) -> Plan:
    return plan_from_json(evaluation.plan)


def submitted_forms(session: Session, *, evaluation_id: int,
                    zone: ZoneInfo | None = None) -> list[Submitted]:
    """The forms that counted, in the order they came in (times as ``zone`` reads them)."""
    rows = session.exec(select(EvaluationForm)
                        .where(EvaluationForm.evaluation_id == evaluation_id)
                        .order_by(col(EvaluationForm.id)))
    return [Submitted(r.evaluatee_id, r.evaluator_id, r.evaluator_group, r.kind,
                      json.loads(r.scores or "{}"), r.total, r.comment,
                      local_minute(r.submitted_at, zone) if zone else "") for r in rows]


def record_form(session: Session, *, evaluation: Evaluation, accepted: Accepted,
                evaluator_id: str, comment: str, form_key: str) -> EvaluationForm:
    """Count an accepted form, audited (the item scores too; never the secret)."""
    assert evaluation.id is not None
    slot = accepted.slot
    scores = {item: f"{score:.2f}" for item, score in accepted.scores.items()}
    total = f"{accepted.total:.2f}" if accepted.total is not None else ""
    row = EvaluationForm(evaluation_id=evaluation.id, evaluatee_id=slot.evaluatee,
                         evaluator_id=evaluator_id, evaluator_group=slot.group, kind=slot.kind,
                         scores=json.dumps(scores, ensure_ascii=False), total=total,
                         comment=comment.strip(), form_key=form_key)
    session.add(row)
    session.flush()
    append_audit(session, actor_id=evaluator_id, action="evaluation-form",
                 request_key=request_key(evaluation.branch, evaluation.quarter),
                 details={"form_id": row.id, "evaluatee": slot.evaluatee, "group": slot.group,
                          "kind": slot.kind, "scores": scores, "total": total,
                          "comment": row.comment, "form": form_key})
    return row


def close_evaluation(session: Session, *, evaluation: Evaluation, reason: str) -> None:
    """No more forms (``reason``: all_in or deadline); audited."""
    now = utcnow()
    evaluation.status, evaluation.closed_reason, evaluation.closed_at = (
        EvaluationStatus.COMPUTING, reason, now)
    evaluation.updated_at = now
    session.add(evaluation)
    append_audit(session, actor_id="system", action="evaluation-closed",
                 request_key=request_key(evaluation.branch, evaluation.quarter),
                 details={"evaluation": evaluation.id, "reason": reason,
                          "deadline": evaluation.deadline.isoformat()})


def overdue_evaluation_runs(session: Session, *, now: datetime) -> list[str]:
    """Flow runs of evaluations still collecting after their deadline (to be woken)."""
    rows = session.exec(select(Evaluation).where(
        Evaluation.status == EvaluationStatus.COLLECTING, col(Evaluation.deadline) <= now,
        col(Evaluation.flow_run_id).is_not(None)))
    return [r.flow_run_id for r in rows if r.flow_run_id]
