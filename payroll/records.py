"""Closings in the database: runs, their lines, and the state carried between months.

Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import json
from decimal import Decimal

from sqlmodel import Session, col, delete, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import PayrollCarry, PayrollLineRecord, PayrollRun
from brokerflow.kernel.vocabulary import ClosingStatus
from brokerflow.payroll.compute import line_json
from brokerflow.payroll.inputs import CarriedState
from brokerflow.payroll.rules import LOW_SCORE, PayrollResult

OPEN_STATUSES = ("draft", "signing", "rejected", "returned", "reopened")


class MonthClosed(BadInput):
    """The month's sign-off is complete; a correction needs ``payroll reopen``."""


def latest_run(session: Session, *, branch: str, month: str) -> PayrollRun | None:
    return session.exec(
        select(PayrollRun).where(PayrollRun.branch == branch, PayrollRun.month == month)
        .order_by(col(PayrollRun.revision).desc())
    ).first()


def opening_state(session: Session, *, branch: str, month: str,
                  exported: dict[str, CarriedState]) -> dict[str, CarriedState]:
    """State carried out of the previous month's closing; the export's state.json fills in
    CMs the database has not seen (the first month on brokerflow)."""
    previous = str(Month.parse(month).minus(1))
    state = dict(exported)
    for carry in session.exec(select(PayrollCarry).where(PayrollCarry.branch == branch,
                                                         PayrollCarry.month == previous)):
        state[carry.cm_id] = CarriedState(excess_carry=Decimal(carry.excess_carry),
                                          risk_fund_balance=Decimal(carry.risk_fund_balance))
    return state


def demotion_due(session: Session, *, branch: str, result: PayrollResult) -> set[str]:
    """CMs below 60 this month and the month before (seed 001 第十八条: demote next month)."""
    previous = str(Month.parse(result.month).minus(1))
    low_before = {
        c.cm_id for c in session.exec(select(PayrollCarry).where(
            PayrollCarry.branch == branch, PayrollCarry.month == previous))
        if c.score and Decimal(c.score) < LOW_SCORE
    }
    return {line.cm_id for line in result.lines
            if line.score < LOW_SCORE and line.cm_id in low_before}


def record_run(session: Session, *, branch: str, month: str, result: PayrollResult,
               flow_run_id: str, history_flags: dict[str, list[str]],
               started_by: str = "system") -> PayrollRun:
    """A new revision of the month with its lines, replacing the month's carried state."""
    previous = latest_run(session, branch=branch, month=month)
    run = PayrollRun(
        branch=branch, month=month, revision=(previous.revision + 1) if previous else 1,
        status=ClosingStatus.DRAFT, flow_run_id=flow_run_id, started_by=started_by,
        totals=json.dumps({k: f"{v:.2f}" for k, v in result.totals.items()}),
    )
    session.add(run)
    session.flush()
    assert run.id is not None
    for line in result.lines:
        data = line_json(line) | {"name": line.name, "position": line.position,
                                  "history_flags": history_flags.get(line.cm_id, [])}
        session.add(PayrollLineRecord(run_id=run.id, cm_id=line.cm_id,
                                      line=json.dumps(data, ensure_ascii=False)))
    # the month's carried state is replaced, never added to: re-runs do not apply it twice
    session.exec(delete(PayrollCarry).where(  # type: ignore[call-overload]
        col(PayrollCarry.branch) == branch, col(PayrollCarry.month) == month))
    for line in result.lines:
        session.add(PayrollCarry(
            branch=branch, month=month, cm_id=line.cm_id,
            excess_carry=f"{line.excess_carry_out:.2f}",
            risk_fund_balance=f"{line.risk_fund_balance:.2f}", level=line.level,
            score=f"{line.score:.4f}", run_id=run.id,
        ))
    return run


def run_lines(session: Session, *, run_id: int) -> list[dict[str, object]]:
    rows = session.exec(select(PayrollLineRecord).where(PayrollLineRecord.run_id == run_id)
                        .order_by(col(PayrollLineRecord.cm_id)))
    return [json.loads(r.line) for r in rows]


def set_status(session: Session, *, run: PayrollRun, status: str) -> None:
    run.status = status
    run.updated_at = utcnow()
    session.add(run)


def reopen_refusal(actor: UserView, *, branch: str) -> str | None:
    """None when ``actor`` may reopen a closed month of ``branch`` (its branch manager, seed
    002 第十五条); else why not.  Pure."""
    if "branch_manager" in actor.roles and actor.branch == branch:
        return None
    return "only the branch's branch manager may reopen a closed month"


def reopen_month(session: Session, *, branch: str, month: str, actor: UserView,
                 reason: str) -> PayrollRun:
    """Reopen a closed month for correction, audited (caller commits; permission checked by
    the caller with ``reopen_refusal``, so that it can log a refusal)."""
    if not reason.strip():
        raise BadInput("a reason is required", column="--reason")
    run = latest_run(session, branch=branch, month=month)
    if run is None or run.status != ClosingStatus.CLOSED:
        raise BadInput(f"{branch} {month} is not closed "
                       f"({run.status if run else 'never computed'})", column="--month")
    set_status(session, run=run, status=ClosingStatus.REOPENED)
    append_audit(session, actor_id=actor.user_id, action="payroll-reopened",
                 request_key=f"payroll:{branch}:{month}",
                 details={"revision": run.revision, "reason": reason.strip()})
    return run
