"""The company closing (SPEC §7): one monthly closing per branch, fanned out by one flow.

``monthly_closing_all`` starts a run of the ``monthly-closing`` deployment for each branch of
the roster (every branch other than the head office ``HQ`` with a user who has not left;
``branches`` narrows it), at most ``max_parallel`` of them working at once — a branch's run
counts from its start until it waits for the sign-off of its PAY (or ends), and again while a
signature is being processed.  A branch's failure (e.g. a missing or malformed export under
``crm/<branch>/<month>/``) fails that branch only: the others go on, and the report names each
failed branch and why; the flow then ends Failed so that the report is noticed.  An export
under ``crm/`` for a branch not on the roster is reported and left alone.

Re-running a month pays nobody twice: a branch whose month is closed, or whose closing is
waiting for its sign-off, is not started again (each branch's closing is idempotent per branch
and month as well).  A company closing handed back after its worker died starts no second run
for a branch: each branch's run is created with an idempotency key of this flow run.

Started by its schedule (the system) or, in development mode, by hand; the branch closings it
starts record the same starter (a start ticket per branch, as ``brokerflow payroll close``).
"""

# No `from __future__ import annotations`: the served flow is pickled by value into its run
# process, where string annotations could not be resolved (as in flows/closing.py).

import json
import re
import time
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect import flow
from prefect.client.orchestration import get_client
from sqlmodel import col, select

from brokerflow.approvals.waiting import current_flow_run_id
from brokerflow.archive.service import Archive, open_archive
from brokerflow.flows.closing import AttributionSource, made_by_schedule, request_key
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, previous_month, utcnow
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, BrokerflowError
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import User
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.vocabulary import ClosingStatus
from brokerflow.payroll.records import latest_run
from brokerflow.payroll.starts import DEVELOPMENT, SYSTEM, issue_start_ticket

BRANCH_DEPLOYMENT = "monthly-closing/monthly-closing"
HEAD_OFFICE = "HQ"
EXCEPTION_PREFIX = "Flow run encountered an exception: "
ENDED = ("COMPLETED", "FAILED", "CANCELLED")
TEMPORARY_EXPORT = re.compile(r"[^\s,]*brokerflow-crm-[^/\s]+/")


@dataclass
class BranchOutcome:
    """How one branch's closing stands when the company closing is done with it."""

    branch: str
    outcome: str  # waiting | closed | failed | skipped
    detail: str
    flow_run_id: str = ""
    pay_serial: str = ""


def roster_branches(archive: Archive) -> list[str]:
    """Every branch of the roster with a user who has not left, the head office excepted."""
    today = utcnow().date()
    with new_session(archive.engine) as session:
        users = session.exec(select(User).where(col(User.branch) != HEAD_OFFICE)).all()
    return sorted({u.branch for u in users if u.left_on is None or u.left_on > today})


def exported_branches(archive: Archive, month: str) -> set[str]:
    """Branches with an export for ``month`` under ``crm/<branch>/<month>/``."""
    found = set()
    for version in archive.inputs.versions("crm/"):
        parts = version.key.split("/")
        if len(parts) >= 4 and parts[2] == month:
            found.add(parts[1])
    return found


def _company_starter(archive: Archive, *, run_id: str, month: str, dev_only: str) -> str:
    """Who starts this company closing: its schedule (the system) or, in development mode,
    the developer; anything else is refused and audited."""
    problem = ""
    if dev_only and not archive.settings.dev:
        problem = dev_only
    elif made_by_schedule(run_id):
        return SYSTEM
    elif archive.settings.dev:
        return DEVELOPMENT
    else:
        problem = ("a company closing is started by its schedule; a single branch's closing "
                   "by 'brokerflow payroll close'")
    with new_session(archive.engine) as session:
        append_audit(session, actor_id="(unidentified)", action="refused",
                     request_key=f"payroll:*:{month}",
                     details={"reason": problem, "flow_run": run_id})
        session.commit()
    raise AccessDenied(f"company closing {month} refused: {problem}")


def _already_handled(archive: Archive, branch: str, month: str,
                     own_runs: set[str]) -> BranchOutcome | None:
    """The branch's month is closed, or waits for its sign-off in a live run that this
    company closing did not start: not started again."""
    with new_session(archive.engine) as session:
        latest = latest_run(session, branch=branch, month=month)
    if latest is None:
        return None
    if latest.status == ClosingStatus.CLOSED:
        return BranchOutcome(branch, "skipped", f"already closed (PAS {latest.signed_serial})",
                             latest.flow_run_id or "", latest.pay_serial)
    if latest.status not in (ClosingStatus.DRAFT, ClosingStatus.SIGNING):
        return None
    if not latest.flow_run_id or latest.flow_run_id in own_runs:
        return None
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(UUID(latest.flow_run_id)).state
        except Exception:  # noqa: BLE001 - no such run any more: start again
            return None
    if state is None or state.type.value in ENDED:
        return None
    return BranchOutcome(branch, "skipped", f"already in sign-off (revision {latest.revision}, "
                         f"run {state.name})", latest.flow_run_id, latest.pay_serial)


def _start_branch(archive: Archive, *, branch: str, month: str, key: str, starter: str,
                  parameters: dict[str, Any]) -> str:
    """Create (once per ``key``) the branch's closing run; its id."""
    from prefect.deployments import run_deployment

    ticket = None
    if starter != DEVELOPMENT:
        actor = UserView(user_id=starter, name="系统 (定时任务 scheduled)", branch=HEAD_OFFICE,
                         team="", supervisor_id=None, roles=frozenset())
        with new_session(archive.engine) as session:
            ticket = issue_start_ticket(session, actor=actor, branch=branch, month=month)
            session.commit()
    # not as a subflow: a subflow cannot be suspended for its sign-off
    run = run_deployment(BRANCH_DEPLOYMENT, timeout=0, idempotency_key=key, as_subflow=False,
                         flow_run_name=f"薪酬 {branch} {month}",
                         tags=[f"branch:{branch}", "company-closing"],
                         parameters={"branch": branch, "month": month, "ticket": ticket,
                                     **parameters})
    return str(run.id)  # type: ignore[union-attr]


def _children(keys: dict[str, str]) -> dict[str, Any]:
    """The runs already created for these idempotency keys (branch -> flow run)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey

    by_key = {key: branch for branch, key in keys.items()}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=list(by_key))))
    return {by_key[r.idempotency_key]: r for r in runs if r.idempotency_key in by_key}


def _states(run_ids: list[str]) -> dict[str, Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    if not run_ids:
        return {}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[UUID(r) for r in run_ids])), limit=len(run_ids))
    return {str(r.id): r.state for r in runs}


def _settled(archive: Archive, branch: str, month: str, run_id: str,
             state: Any) -> BranchOutcome | None:
    """The branch's outcome once its run waits for a signature or has ended; None while it
    works (recovery hands a crashed run back, so that still counts as working)."""
    kind = state.type.value if state is not None else "SCHEDULED"
    if kind not in ("PAUSED", *ENDED):
        return None
    with new_session(archive.engine) as session:
        latest = latest_run(session, branch=branch, month=month)
    pay = latest.pay_serial if latest is not None and latest.flow_run_id == run_id else ""
    if kind == "PAUSED":
        return BranchOutcome(branch, "waiting", f"PAY {pay} archived, waiting for its sign-off",
                             run_id, pay)
    if kind == "COMPLETED":
        closed = latest is not None and latest.status == ClosingStatus.CLOSED
        return BranchOutcome(branch, "closed" if closed else "failed",
                             f"closed (PAS {latest.signed_serial})" if closed and latest
                             else f"the sign-off ended {latest.status if latest else '?'}",
                             run_id, pay)
    message = (state.message or state.name or kind).removeprefix(EXCEPTION_PREFIX).strip()
    # the export is read into a temporary directory: name where it really is
    message = TEMPORARY_EXPORT.sub(f"crm/{branch}/{month}/", message)
    return BranchOutcome(branch, "failed", message, run_id, pay)


@flow(name="monthly-closing-all", persist_result=True)
def monthly_closing_all(
    month: str | None = None,
    branches: list[str] | None = None,
    max_parallel: int = 2,
    policy: str | None = None,
    attribution_source: AttributionSource = "database",
    wait: str = "suspend",
    poll_interval: float = 10.0,
    check_seconds: float = 1.0,
    branch_timeout_seconds: float = 3600.0,
) -> list[dict[str, str]]:
    """Close ``month`` (default: the previous month) for every branch of the roster, at most
    ``max_parallel`` branch closings working at once; the report, one entry per branch.

    ``policy`` and ``attribution_source`` are passed to each branch's closing (development
    mode only).  A branch not waiting for its sign-off within ``branch_timeout_seconds`` of
    its start is reported as failed (its run goes on).
    """
    settings = load_settings()
    month = month or previous_month(utcnow(), ZoneInfo(settings.timezone))
    Month.parse_parameter(month)
    if max_parallel < 1:
        raise BrokerflowError("max_parallel must be at least 1")
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        dev_only = ("flow parameters policy and attribution_source are refused outside "
                    "development mode" if policy or attribution_source != "database" else "")
        starter = _company_starter(archive, run_id=run_id, month=month, dev_only=dev_only)
        parameters: dict[str, Any] = {"wait": wait, "poll_interval": poll_interval}
        if policy:
            parameters["policy"] = policy
        if attribution_source != "database":
            parameters["attribution_source"] = attribution_source
        report = _fan_out(archive, month=month, only=branches, max_parallel=max_parallel,
                          run_id=run_id, starter=starter, parameters=parameters,
                          check_seconds=check_seconds, timeout=branch_timeout_seconds)
    return _conclude(archive, month=month, run_id=run_id, starter=starter, report=report)


def _fan_out(archive: Archive, *, month: str, only: list[str] | None, max_parallel: int,
             run_id: str, starter: str, parameters: dict[str, Any], check_seconds: float,
             timeout: float) -> list[BranchOutcome]:
    on_roster = roster_branches(archive)
    exported = exported_branches(archive, month)
    report = [BranchOutcome(b, "skipped", "export under crm/ for a branch not on the roster: "
                            "not closed") for b in sorted(exported - set(on_roster))
              if only is None or b in only]
    report += [BranchOutcome(b, "failed", "not a branch of the roster")
               for b in sorted(set(only or ()) - set(on_roster))]
    wanted = [b for b in on_roster if only is None or b in only]
    keys = {b: f"monthly-closing-all:{run_id or 'local'}:{b}:{month}" for b in wanted}
    started = {b: str(r.id) for b, r in _children(keys).items()}
    pending: list[str] = []
    for branch in wanted:
        handled = (None if branch in started else
                   _already_handled(archive, branch, month, set(started.values())))
        if handled is not None:
            report.append(handled)
        else:
            pending.append(branch)
    began: dict[str, float] = {b: time.monotonic() for b in started}
    working = {b for b in pending if b in started}
    queue = [b for b in pending if b not in started]
    while working or queue:
        states = _states([started[b] for b in working])
        for branch in sorted(working):
            outcome = _settled(archive, branch, month, started[branch],
                               states.get(started[branch]))
            if outcome is None and time.monotonic() - began[branch] > timeout:
                state = states.get(started[branch])
                outcome = BranchOutcome(branch, "failed", f"not waiting for its sign-off "
                                        f"after {timeout:.0f} s (state "
                                        f"{state.name if state else '?'})", started[branch])
            if outcome is not None:
                report.append(outcome)
                working.discard(branch)
        while queue and len(working) < max_parallel:
            branch = queue.pop(0)
            try:
                started[branch] = _start_branch(archive, branch=branch, month=month,
                                                key=keys[branch], starter=starter,
                                                parameters=parameters)
            except Exception as exc:  # noqa: BLE001 - this branch only; reported
                report.append(BranchOutcome(branch, "failed", f"could not start its closing: "
                                            f"{type(exc).__name__}: {exc}"))
                continue
            began[branch] = time.monotonic()
            working.add(branch)
        if working:
            time.sleep(check_seconds)
    return sorted(report, key=lambda o: o.branch)


def _conclude(archive: Archive, *, month: str, run_id: str, starter: str,
              report: list[BranchOutcome]) -> list[dict[str, str]]:
    """Audit and publish the report; fail the run when a branch failed."""
    rows = [asdict(o) for o in report]
    failed = [o for o in report if o.outcome == "failed"]
    with new_session(archive.engine) as session:
        append_audit(session, actor_id=starter, action="company-closing",
                     request_key=request_key("*", month),
                     details={"flow_run": run_id, "branches": len(report),
                              "failed": [o.branch for o in failed],
                              "outcomes": {o.branch: o.outcome for o in report}})
        session.commit()
    if run_id:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(rows, key=f"company-closing-{month}",
                              description=f"月度结算 {month}: one row per branch")
    print(json.dumps(rows, ensure_ascii=False), flush=True)
    if failed:
        raise BrokerflowError(
            f"company closing {month}: {len(failed)} of {len(report)} branches failed: "
            + "; ".join(f"{o.branch}: {o.detail}" for o in failed))
    return rows
