"""Notices a closing raises about a CM (seed 004; seed 001 第十八条, 第二十九条; SPEC §8.3).

- ``training``: a monthly score below 60 → the next month's one-week 待岗培训, with the
  情况说明和保证书 to collect by ``due``: a waiting task, reminded like any approval step
  (``approval-reminders``) until someone marks it received.  A quarterly evaluation below 60
  raises one too (``raise_evaluation_notices``; its ``month`` is the quarter, e.g. 2026Q3).
- ``termination_right`` / ``deemed_resigned``: a notice for HR.  Nobody is terminated or
  removed by the system; HR decides.
Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlmodel import Session, col, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import BadInput, NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import StaffNotice, WaitingStep

TRAINING_DAYS = 7  # 004: 待岗培训一周
NOTICE_FLAGS = {"score_below_60": "training", "termination_right": "termination_right",
                "deemed_resigned": "deemed_resigned"}
KIND_LABELS = {"training": "待岗培训通知（收取情况说明和保证书）",
               "termination_right": "人事通知：营业部有权解除聘用关系（第十八条）",
               "deemed_resigned": "人事通知：视同自动离职（第二十九条）"}
#: Who may mark a training notice's statement received: the CM's managers in the branch.
RECEIVING_ROLES = frozenset({"stationed_manager", "regional_manager", "project_director",
                             "branch_manager", "deputy_manager"})


def notice_key(notice: StaffNotice) -> str:
    return f"notice:{notice.branch}:{notice.id}"


def training_due(month: str) -> date:
    """When the statement of a training notice raised by ``month``'s closing is due: at the
    end of the training week at the start of the next month."""
    following = Month.parse(month).minus(-1)
    return date(following.year, following.month, 1) + timedelta(days=TRAINING_DAYS - 1)


def raise_notices(session: Session, *, branch: str, month: str,
                  lines: Iterable[dict[str, Any]]) -> list[StaffNotice]:
    """One notice per flag of NOTICE_FLAGS on the month's payroll lines (SPEC §6.3 JSON),
    once: a re-run of the month adds none twice."""
    existing = {(n.cm_id, n.kind) for n in session.exec(select(StaffNotice).where(
        StaffNotice.branch == branch, StaffNotice.month == month))}
    created = []
    for line in lines:
        for flag, kind in NOTICE_FLAGS.items():
            if flag not in line["flags"] or (line["cm_id"], kind) in existing:
                continue
            details = {"score": line.get("score"), "title": line.get("title"),
                       "title_next": line.get("title_next"), "flags": line["flags"]}
            notice = StaffNotice(branch=branch, cm_id=line["cm_id"], kind=kind, month=month,
                                 due=training_due(month) if kind == "training" else None,
                                 details=json.dumps(details, ensure_ascii=False))
            session.add(notice)
            session.flush()
            if kind == "training":  # a task someone must finish: reminded while it waits
                session.add(WaitingStep(request_key=notice_key(notice), revision=1,
                                        step="statement", flow_run_id=""))
            append_audit(session, actor_id="system", action="notice-raised",
                         request_key=notice_key(notice),
                         details={"cm": notice.cm_id, "kind": kind, "month": month})
            created.append(notice)
    return created


def raise_evaluation_notices(session: Session, *, branch: str, quarter: str,
                             results: Iterable[dict[str, Any]], closed_on: date,
                             document: str) -> list[StaffNotice]:
    """A ``training`` notice (due a week after ``closed_on``) for every evaluation result
    (SPEC §8.2 JSON) flagged ``below_60``, once per person and quarter."""
    existing = {n.cm_id for n in session.exec(select(StaffNotice).where(
        StaffNotice.branch == branch, StaffNotice.month == quarter,
        StaffNotice.kind == "training"))}
    created = []
    for result in results:
        if "below_60" not in result["flags"] or result["evaluatee_id"] in existing:
            continue
        details = {"quarter": quarter, "total": result.get("total"), "role": result.get("role"),
                   "flags": result["flags"], "evaluation": document}
        notice = StaffNotice(branch=branch, cm_id=result["evaluatee_id"], kind="training",
                             month=quarter, due=closed_on + timedelta(days=TRAINING_DAYS),
                             details=json.dumps(details, ensure_ascii=False))
        session.add(notice)
        session.flush()
        session.add(WaitingStep(request_key=notice_key(notice), revision=1, step="statement",
                                flow_run_id=""))
        append_audit(session, actor_id="system", action="notice-raised",
                     request_key=notice_key(notice),
                     details={"cm": notice.cm_id, "kind": "training", "month": quarter,
                              "evaluation": document})
        created.append(notice)
    return created


def notices_of(session: Session, *, branch: str, cm_id: str | None = None,
               status: str | None = None) -> list[StaffNotice]:
    query = select(StaffNotice).where(StaffNotice.branch == branch)
    if cm_id is not None:
        query = query.where(StaffNotice.cm_id == cm_id)
    if status is not None:
        query = query.where(StaffNotice.status == status)
    return list(session.exec(query.order_by(col(StaffNotice.id))))


def mark_received(session: Session, *, notice_id: int, actor: UserView,
                  note: str) -> StaffNotice:
    """The statement of a training notice was received (or HR acted on an HR notice)."""
    notice = session.get(StaffNotice, notice_id)
    if notice is None or notice.branch != actor.branch:
        raise NotFound(f"no notice #{notice_id} in branch {actor.branch}")
    if notice.status != "open":
        raise BadInput(f"notice #{notice_id} is {notice.status} already", column="ID")
    if notice.cm_id == actor.user_id:
        raise BadInput("a CM does not close their own notice", column="--as")
    notice.status, notice.done_by, notice.done_at = "done", actor.user_id, utcnow()
    session.add(notice)
    waiting = session.get(WaitingStep, notice_key(notice))
    if waiting is not None:
        session.delete(waiting)
    append_audit(session, actor_id=actor.user_id, action="notice-done",
                 request_key=notice_key(notice), details={"note": note.strip()})
    return notice
