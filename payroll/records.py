"""Closings in the database: runs, their lines, and the state carried between months.

Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

from sqlmodel import Session, col, delete, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import PayrollCarry, PayrollLineRecord, PayrollRun, TitleRecord
from brokerflow.kernel.opening_models import OpeningCarry
from brokerflow.kernel.vocabulary import ClosingStatus
from brokerflow.payroll.compute import line_json
from brokerflow.payroll.inputs import CarriedState
from brokerflow.payroll.rules import PayLine, PayrollResult
from brokerflow.payroll.workings import working_rows

OPEN_STATUSES = ("draft", "signing", "rejected", "returned", "reopened")


class MonthClosed(BadInput):
    """The month's sign-off is complete; a correction needs ``payroll reopen``."""


def latest_run(session: Session, *, branch: str, month: str) -> PayrollRun | None:
    return session.exec(
        select(PayrollRun).where(PayrollRun.branch == branch, PayrollRun.month == month)
        .order_by(col(PayrollRun.revision).desc())
    ).first()


def titles_in_force(session: Session, *, branch: str, month: str) -> dict[str, str]:
    """Each CM's title (聘任职级) for ``month``: the latest approved title effective then."""
    titles: dict[str, str] = {}
    for record in session.exec(
            select(TitleRecord).where(TitleRecord.branch == branch,
                                      TitleRecord.effective_month <= month)
            .order_by(col(TitleRecord.effective_month), col(TitleRecord.id))):
        titles[record.cm_id] = record.title
    return titles


def _carried(carry: PayrollCarry) -> CarriedState:
    return CarriedState(
        excess_carry=Decimal(carry.excess_carry),
        risk_fund_balance=Decimal(carry.risk_fund_balance), as_of=carry.month,
        title=carry.title, prev_asset_level=carry.asset_level or None,
        prev_score=Decimal(carry.score) if carry.score else None,
        ytd_absent_half_days=carry.ytd_absent_half_days,
        ytd_personal_leave_days=Decimal(carry.ytd_personal_leave_days),
        withheld_fixed_pay=Decimal(carry.withheld_fixed_pay))


def opening_state(session: Session, *, branch: str, month: str,
                  exported: dict[str, CarriedState]) -> dict[str, CarriedState]:
    """State carried out of the previous month's closing (balances, history, year to date,
    withheld pay), with the titles in force for ``month``; for CMs no closing has carried
    state out for, the opening state an approved import recorded, else the export's
    state.json (the first month on brokerflow)."""
    previous = str(Month.parse(month).minus(1))
    state = dict(exported) | imported_opening_state(session, branch=branch, month=month)
    for carry in session.exec(select(PayrollCarry).where(PayrollCarry.branch == branch,
                                                         PayrollCarry.month == previous)):
        state[carry.cm_id] = _carried(carry)
    for cm_id, title in titles_in_force(session, branch=branch, month=month).items():
        state[cm_id] = replace(state.get(cm_id, CarriedState()), title=title)
    return state


def imported_opening_state(session: Session, *, branch: str,
                           month: str) -> dict[str, CarriedState]:
    """The opening state an approved import recorded (SPEC §10), for the CMs no closing of
    the branch before ``month`` has carried state out for, and only after its ``as_of``."""
    closed = set(session.exec(select(PayrollCarry.cm_id).where(
        PayrollCarry.branch == branch, PayrollCarry.month < month)))
    state: dict[str, CarriedState] = {}
    for carry in session.exec(select(OpeningCarry).where(OpeningCarry.branch == branch,
                                                         OpeningCarry.as_of < month)):
        if carry.cm_id in closed:
            continue
        source: dict[str, object] = {
            "as_of": carry.as_of, "excess_carry": carry.excess_carry,
            "risk_fund_balance": carry.risk_fund_balance, "title": carry.title,
            "ytd_absent_half_days": carry.ytd_absent_half_days,
            "ytd_personal_leave_days": carry.ytd_personal_leave_days}
        state[carry.cm_id] = CarriedState(
            excess_carry=Decimal(carry.excess_carry),
            risk_fund_balance=Decimal(carry.risk_fund_balance), as_of=carry.as_of,
            title=carry.title, ytd_absent_half_days=carry.ytd_absent_half_days,
            ytd_personal_leave_days=Decimal(carry.ytd_personal_leave_days), source=source)
    return state


def _business_keys(line: PayLine) -> dict[str, object]:
    """What a stored line keeps beyond SPEC §6.3, for PAY and the business report."""
    return {"name": line.name, "position": line.position,
            "accounts_opened": line.accounts_opened, "site": line.site,
            "supervisor_id": line.supervisor_id,
            "hire_date": line.hire_date.isoformat() if line.hire_date else None,
            "leave_date": line.leave_date.isoformat() if line.leave_date else None}


def record_run(session: Session, *, branch: str, month: str, result: PayrollResult,
               flow_run_id: str, started_by: str = "system",
               opening: dict[str, CarriedState] | None = None) -> PayrollRun:
    """A new revision of the month with its lines, replacing the month's carried state.

    A CM of the ``opening`` state without a line this month (one who left) keeps their
    carried state, moved to this month with the movements applied to it: a balance is never
    dropped (it waits for its refund, SPEC §8.3)."""
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
        data = line_json(line) | _business_keys(line) | {
            "workings": working_rows(line.workings)}  # the payslip's (PSL) formulas
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
            score=f"{line.score:.4f}", run_id=run.id, title=line.title,
            asset_level=line.asset_level, ytd_absent_half_days=line.ytd_absent_half_days,
            ytd_personal_leave_days=f"{line.ytd_personal_leave_days:.2f}",
            withheld_fixed_pay=f"{line.withheld_fixed_pay:.2f}",
            hire_date=line.hire_date, leave_date=line.leave_date,
        ))
    _carry_forward(session, branch=branch, month=month, run_id=run.id, opening=opening or {},
                   paid={line.cm_id for line in result.lines})
    return run


def _carry_forward(session: Session, *, branch: str, month: str, run_id: int,
                   opening: dict[str, CarriedState], paid: set[str]) -> None:
    previous = str(Month.parse(month).minus(1))
    for carry in session.exec(select(PayrollCarry).where(
            PayrollCarry.branch == branch, PayrollCarry.month == previous,
            col(PayrollCarry.cm_id).not_in(paid))):
        state = opening.get(carry.cm_id)
        balance = state.risk_fund_balance if state else Decimal(carry.risk_fund_balance)
        session.add(PayrollCarry(
            branch=branch, month=month, cm_id=carry.cm_id, excess_carry=carry.excess_carry,
            risk_fund_balance=f"{balance:.2f}", level=carry.level, score=carry.score,
            run_id=run_id, title=carry.title, asset_level=carry.asset_level,
            ytd_absent_half_days=carry.ytd_absent_half_days,
            ytd_personal_leave_days=carry.ytd_personal_leave_days,
            withheld_fixed_pay=carry.withheld_fixed_pay, hire_date=carry.hire_date,
            leave_date=carry.leave_date))


def reopen_chain_after(session: Session, *, branch: str, month: str,
                       revision: int) -> list[str]:
    """Reopen every closed month after ``month`` (audited): they were closed on the state
    ``month`` carried before its correction, so each is closed again, in order, from the
    corrected state.  The months reopened."""
    reopened = []
    for later in later_months(session, branch=branch, month=month):
        run = latest_run(session, branch=branch, month=later)
        if run is None or run.status != ClosingStatus.CLOSED:
            continue
        set_status(session, run=run, status=ClosingStatus.REOPENED)
        append_audit(session, actor_id="system", action="payroll-reopened",
                     request_key=f"payroll:{branch}:{later}",
                     details={"revision": run.revision,
                              "reason": f"{month} was corrected (revision {revision}): "
                                        "closed again from its carried state"})
        reopened.append(later)
    return reopened


def stale_previous_month(session: Session, *, branch: str, month: str) -> str | None:
    """The month before ``month`` when it is reopened and not yet closed again: ``month``
    cannot continue from its state until it is."""
    previous = str(Month.parse(month).minus(1))
    run = latest_run(session, branch=branch, month=previous)
    return previous if run is not None and run.status == ClosingStatus.REOPENED else None


def month_statuses(session: Session, *, branch: str) -> dict[str, str]:
    """The branch's closing history: each month computed → its latest revision's status
    (``closed``, ``reopened``, ``signing`` …), months in order."""
    statuses: dict[str, str] = {}
    for month, status in session.exec(
            select(PayrollRun.month, PayrollRun.status).where(PayrollRun.branch == branch)
            .order_by(col(PayrollRun.month), col(PayrollRun.revision))):
        statuses[month] = status
    return statuses


def later_months(session: Session, *, branch: str, month: str) -> list[str]:
    """Months after ``month`` that were closed on its carried state: a recomputed month
    makes them stale (their next run continues from the corrected state)."""
    return sorted({m for m in session.exec(
        select(PayrollRun.month).where(PayrollRun.branch == branch, PayrollRun.month > month))})


def run_lines(session: Session, *, run_id: int) -> list[dict[str, object]]:
    rows = session.exec(select(PayrollLineRecord).where(PayrollLineRecord.run_id == run_id)
                        .order_by(col(PayrollLineRecord.cm_id)))
    return [{k: v for k, v in json.loads(r.line).items() if k != "workings"} for r in rows]


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
