"""Prefect plumbing for the shell: start a deployment's run, find the local stack's API, say
how a request's run stands."""

from __future__ import annotations

import json
import os
from typing import Any

from brokerflow.kernel.errors import BrokerflowError
from brokerflow.kernel.settings import Settings, brokerflow_home


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
    return {"state": condition.state, "note": condition.note,
            "needs_operator": condition.needs_operator}
