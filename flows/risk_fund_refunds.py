"""The monthly list of due risk-fund refunds (风险基金退还, seed 001 第二十五条; SPEC §8.3).

``risk_fund_refunds`` finds, for one branch or every branch with a CM who left, the refunds due
today (left 6 months ago, balance above 0, no open client dispute or incident, nothing pending:
``payroll.risk_fund_records.due_refunds``), records each as a refund movement proposed by the
system, and starts one run of the ``risk-fund`` deployment per refund (by deployment name: this
flow does not import the child flow), where the finance manager and the branch manager sign.
Re-running it proposes nothing twice and starts no second run for a refund: a refund still
waiting for its run is started again under the same idempotency key.

Started by its schedule (the system) or by hand; ``today`` (a fixed date) only in development
mode.
"""

# No `from __future__ import annotations`: the served flow is pickled by value into its run
# process, where string annotations could not be resolved (as in flows/closing.py).

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow
from sqlmodel import col, select

from brokerflow.approvals.waiting import current_flow_run_id
from brokerflow.archive.service import Archive, open_archive
from brokerflow.flows.closing import made_by_schedule
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, BadInput
from brokerflow.kernel.identity import check_branch
from brokerflow.kernel.models import PayrollCarry
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.staff_models import RiskFundMovement
from brokerflow.payroll.risk_fund import REFUND
from brokerflow.payroll.risk_fund_records import SYSTEM, WAITING, create_refunds

MOVEMENT_DEPLOYMENT = "risk-fund/risk-fund"
MANUAL = "(started by hand)"


def refund_branches(archive: Archive) -> list[str]:
    """Every branch with a carried state of a CM who left."""
    with new_session(archive.engine) as session:
        found = session.exec(select(PayrollCarry.branch).where(
            col(PayrollCarry.leave_date).is_not(None))).all()
    return sorted(set(found))


def parse_today(text: str | None, zone: ZoneInfo) -> date:
    """``text`` (YYYY-MM-DD) as a date; today in ``zone`` without one."""
    if not text:
        return datetime.now(zone).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"today {text!r} must be YYYY-MM-DD", column="today") from None


def unstarted_refunds(archive: Archive, branch: str) -> list[RiskFundMovement]:
    """Refunds of ``branch`` waiting for a run that has not taken them up."""
    with new_session(archive.engine) as session:
        return list(session.exec(select(RiskFundMovement).where(
            RiskFundMovement.branch == branch, RiskFundMovement.kind == REFUND,
            RiskFundMovement.status == WAITING, col(RiskFundMovement.flow_run_id).is_(None))
            .order_by(col(RiskFundMovement.id))))


def start_movement_run(movement: RiskFundMovement, *, parameters: dict[str, Any]) -> str:
    """Create (once per movement) the ``risk-fund`` run of ``movement``; its id."""
    from prefect.deployments import run_deployment

    assert movement.id is not None
    run = run_deployment(MOVEMENT_DEPLOYMENT, timeout=0, as_subflow=False,
                         idempotency_key=f"risk-fund-refund:{movement.id}",
                         flow_run_name=f"风险基金退还 {movement.branch} {movement.cm_id} "
                                       f"{movement.amount}",
                         tags=[f"branch:{movement.branch}", "risk-fund-refund"],
                         parameters={"movement_id": movement.id, **parameters})
    return str(run.id)  # type: ignore[union-attr]


@flow(name="risk-fund-refunds", persist_result=True)
def risk_fund_refunds(branch: str | None = None, today: str | None = None,
                      wait: str = "suspend", poll_interval: float = 10.0) -> list[dict[str, str]]:
    """Propose and start every refund due ``today`` (default: today in the branch's zone) in
    ``branch`` (default: every branch with a CM who left); one report row per refund."""
    settings = load_settings()
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    if today and not settings.dev:
        raise AccessDenied("flow parameter today is refused outside development mode")
    as_of = parse_today(today, ZoneInfo(settings.timezone))
    branches = [check_branch(branch, column="branch")] if branch else refund_branches(archive)
    starter = SYSTEM if run_id and made_by_schedule(run_id) else MANUAL
    parameters: dict[str, Any] = {"wait": wait, "poll_interval": poll_interval}
    report: list[dict[str, str]] = []
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        for code in branches:
            with new_session(archive.engine) as session:
                created = create_refunds(session, branch=code, today=as_of, started_by=starter)
                session.commit()
            for movement in unstarted_refunds(archive, code):
                row = {"branch": code, "cm_id": movement.cm_id, "movement": str(movement.id),
                       "amount": movement.amount, "due_date": str(movement.due_date or ""),
                       "new": str(any(m.id == movement.id for m in created)).lower()}
                try:
                    row["flow_run"] = start_movement_run(movement, parameters=parameters)
                except Exception as exc:  # noqa: BLE001 - this refund only; reported
                    row["error"] = f"could not start its run: {type(exc).__name__}: {exc}"
                report.append(row)
        with new_session(archive.engine) as session:
            append_audit(session, actor_id=starter, action="risk-fund-refunds",
                         request_key=f"risk-fund-refunds:{as_of}",
                         details={"flow_run": run_id, "as_of": str(as_of),
                                  "branches": branches, "refunds": report})
            session.commit()
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return report
