"""Prefect plumbing for the shell: start a deployment's run, find the local stack's API, say
how a request's run stands."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from brokerflow.kernel.errors import BadInput, BrokerflowError, NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.settings import Settings, brokerflow_home

if TYPE_CHECKING:
    from brokerflow.approvals.signing import RunBound
    from brokerflow.archive.service import Archive


def use_local_stack_api() -> None:
    """Without PREFECT_API_URL, talk to the stack 'brokerflow up' runs on this machine."""
    if os.environ.get("PREFECT_API_URL"):
        return
    state = brokerflow_home() / "stack.json"
    if state.exists():
        os.environ["PREFECT_API_URL"] = json.loads(state.read_text())["prefect_api"]


def start_deployment(name: str, parameters: dict[str, Any]) -> str:
    """Create a flow run of a served deployment; a clear error when Prefect is not up."""
    use_local_stack_api()
    from prefect.deployments import run_deployment

    try:
        run = run_deployment(name, parameters=parameters, timeout=0)
    except Exception as exc:
        raise BrokerflowError(
            f"could not start {name} on the Prefect API ({exc}); is 'brokerflow up' running "
            "and PREFECT_API_URL set?"
        ) from exc
    return str(run.id)  # type: ignore[union-attr]


def run_report(engine: Any, settings: Settings, flow_run_id: str | None) -> dict[str, Any] | None:
    """A request's flow run as status commands show it (None when it has none)."""
    if not flow_run_id:
        return None
    use_local_stack_api()
    from prefect.settings import PREFECT_API_URL

    from brokerflow.app.recovery import run_condition

    if not PREFECT_API_URL.value():  # never start a throwaway Prefect server for a status
        return {"state": "unknown", "note": "no Prefect API configured (PREFECT_API_URL)",
                "needs_operator": False}
    condition = run_condition(engine, flow_run_id, lease_seconds=settings.run_lease_seconds,
                              max_recoveries=settings.max_run_recoveries)
    report: dict[str, Any] = {"state": condition.state, "note": condition.note,
                              "needs_operator": condition.needs_operator}
    failure = failure_reason(engine, flow_run_id) if condition.state == "Failed" else None
    if failure is not None:
        report["failure"] = failure
    return report


def refusals(engine: Any, request_key: str) -> dict[str, str]:
    """What status commands show of a request's refusals: the last form its waiting step
    refused (``last_refusal``), and its last failed run's reason (``last_failed_run``);
    only those there are."""
    from brokerflow.approvals.run_failures import last_failure
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import WaitingStep

    shown: dict[str, str] = {}
    with new_session(engine) as session:
        waiting = session.get(WaitingStep, request_key)
    if waiting is not None and waiting.last_refusal:
        shown["last_refusal"] = waiting.last_refusal
    failed = last_failure(engine, request_key)
    if failed is not None:
        shown["last_failed_run"] = f"{failed[0]}: {failure_reason(engine, failed[0])}"
    return shown


def failure_reason(engine: Any, flow_run_id: str) -> str | None:
    """Why a failed run failed, as its failure hook recorded it (``refused (exit N): ...``
    for an error of the SPEC's exit codes); None when nothing was recorded."""
    from brokerflow.approvals.run_failures import recorded_failure

    failure = recorded_failure(engine, flow_run_id)
    if failure is None:
        return None
    if failure.exit_code in (2, 3):
        return f"refused (exit {failure.exit_code}): {failure.reason}"
    return f"failed: {failure.error}: {failure.reason}"


def rebind_dead_run(archive: Archive, *, actor: UserView, model: type[RunBound], key: int,
                    kind: str, request_key: str, deployment: str, parameters: dict[str, Any],
                    reason: str) -> str:
    """Hand a request (of a branch) whose flow run died to a new run of ``deployment`` (an
    authorised user, with a reason; audited); the new run's id.  A live run is never
    replaced."""
    from brokerflow.approvals.access import rebind_refusal
    from brokerflow.approvals.signing import bind_flow_run, unbind_dead_run
    from brokerflow.kernel.db import new_session

    with new_session(archive.engine) as session:
        row = session.get(model, key)
        bound = row.flow_run_id if row is not None else None
        branch = str(getattr(row, "branch", ""))
    if row is None:
        raise NotFound(f"no {kind} {key}")
    refusal = rebind_refusal(actor, kind=kind, branch=branch)
    if refusal is not None:
        raise archive.deny(actor, "rebind", f"{kind} {key}", refusal)
    if not reason.strip():
        raise BadInput("a reason is required", column="--reason")
    if bound:
        report = run_report(archive.engine, archive.settings, bound) or {}
        dead = report.get("needs_operator") or "ObjectNotFound" in str(report.get("note"))
        if not dead:
            raise BadInput(f"{kind} {key} is still handled by flow run {bound} "
                           f"({report.get('state')}: {report.get('note')}); only a run that "
                           "died is replaced", column=f"{kind.upper()}_ID")
    with new_session(archive.engine) as session:
        unbind_dead_run(session, model, key, request_key=request_key, actor_id=actor.user_id,
                        reason=reason.strip())
        session.commit()
    run_id = start_deployment(deployment, parameters)
    bind_flow_run(archive.engine, model, key, run_id)  # unless the new run did so already
    return run_id
