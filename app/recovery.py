"""Stranded flow runs: find runs whose process died and hand them back to be run again.

A run of a brokerflow deployment is *stranded* when Prefect still shows it ``Pending`` or
``Running`` but no live process holds its lease (``brokerflow.flows.leases``), or when its process
crashed.  ``brokerflow serve`` sweeps on start and then periodically: each stranded run is
recorded (``RunRecovery``, one row per stranded state, so two sweepers never both act on it),
audited, and forced back to ``Scheduled`` — the flows derive every step from the database, so
running them again continues where the decisions left off and counts nothing twice.  A run
handed back ``max_recoveries`` times within ``RECOVERY_WINDOW`` (a crash loop, not a chain that
survived a few unrelated outages over its weeks) is left alone and shows as needing an
operator.

``stranded_reason`` is the pure rule; ``sweep`` does the I/O.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlmodel import col, select

from brokerflow.approvals.waiting import discard_form_answers
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import RunLease, RunRecovery

log = logging.getLogger(__name__)

#: Prefect state types a stranded run can be left in.
STRANDED_TYPES = ("PENDING", "RUNNING", "CRASHED")
#: How far back the sweep looks for ended runs whose stored form answers must go.
ENDED_LOOKBACK = timedelta(days=7)
#: Recoveries of one run within this window count toward ``max_recoveries``.
RECOVERY_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RunSnapshot:
    """What the rule needs to know of one flow run."""

    flow_run_id: str
    state_type: str
    state_name: str
    state_id: str
    state_since: datetime


@dataclass(frozen=True)
class LeaseSnapshot:
    holder: str  # host:pid
    renewed_at: datetime


def stranded_reason(
    run: RunSnapshot, lease: LeaseSnapshot | None, *, now: datetime, lease_seconds: float,
    host: str, pid_alive: Callable[[int], bool],
) -> str | None:
    """Why ``run`` has no live process any more, or None while it may still have one (pure).

    A lease renewed before the run's current state began belongs to an earlier execution and
    is not evidence for this one.
    """
    if run.state_type == "CRASHED":
        return f"its process crashed ({run.state_name})"
    if run.state_type not in ("PENDING", "RUNNING"):
        return None
    since = run.state_since
    if lease is not None and lease.renewed_at >= since:
        lease_host, _, pid = lease.holder.rpartition(":")
        if lease_host == host and pid.isdigit() and not pid_alive(int(pid)):
            return f"its process {lease.holder} is gone"
        quiet = (now - lease.renewed_at).total_seconds()
        if quiet > lease_seconds:
            return f"its process {lease.holder} stopped renewing its lease {quiet:.0f} s ago"
        return None
    age = (now - since).total_seconds()
    if age > lease_seconds:
        return f"{run.state_name} for {age:.0f} s with no process holding it"
    return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Recovered:
    flow_run_id: str
    flow_run_name: str
    from_state: str
    reason: str


def snapshot(flow_run: Any) -> RunSnapshot:
    state = flow_run.state
    return RunSnapshot(flow_run_id=str(flow_run.id), state_type=state.type.value,
                       state_name=state.name or state.type.value, state_id=str(state.id),
                       state_since=state.timestamp)


def _read_runs(client: Any, deployment_ids: Sequence[UUID], types: Iterable[str],
               ended_after: datetime | None = None) -> list[Any]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterEndTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    run_filter = FlowRunFilter(state=FlowRunFilterState(
        type=FlowRunFilterStateType(any_=[StateType(t) for t in types])))
    if ended_after is not None:
        run_filter.end_time = FlowRunFilterEndTime(after_=ended_after)  # type: ignore[arg-type]
    runs: list[Any] = []
    offset = 0
    while True:
        page = client.read_flow_runs(
            flow_run_filter=run_filter, offset=offset, limit=200,
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(deployment_ids))))
        runs.extend(page)
        if len(page) < 200:
            return runs
        offset += len(page)


def sweep(
    client: Any, engine: Engine, *, deployment_ids: Sequence[UUID], lease_seconds: float,
    max_recoveries: int, now: datetime | None = None,
) -> list[Recovered]:
    """Hand every stranded run of these deployments back to be run again; what was done."""
    from prefect.states import Scheduled

    moment = now or datetime.now(UTC)
    runs = _read_runs(client, deployment_ids, ("PENDING", "RUNNING"))
    runs += _read_runs(client, deployment_ids, ("CRASHED",), moment - ENDED_LOOKBACK)
    if not runs:
        return []
    ids = [str(r.id) for r in runs]
    with new_session(engine) as session:
        leases = {lease.flow_run_id: LeaseSnapshot(lease.holder, lease.renewed_at)
                  for lease in session.exec(select(RunLease).where(
                      col(RunLease.flow_run_id).in_(ids)))}
        recent = [r.flow_run_id for r in session.exec(select(RunRecovery).where(
            col(RunRecovery.flow_run_id).in_(ids))) if moment - r.at < RECOVERY_WINDOW]
    counts = Counter(recent)
    recovered = []
    host = socket.gethostname()
    for flow_run in runs:
        run = snapshot(flow_run)
        if counts.get(run.flow_run_id, 0) >= max_recoveries:
            if run.state_type == "CRASHED":  # given up: no answer may linger
                discard_form_answers(client, flow_run.id)
            continue  # needs an operator now
        reason = stranded_reason(run, leases.get(run.flow_run_id), now=moment,
                                 lease_seconds=lease_seconds, host=host, pid_alive=pid_alive)
        if reason is None or not _claim(engine, flow_run, run, reason):
            continue
        client.set_flow_run_state(flow_run.id, Scheduled(name="Recovering",
                                                         scheduled_time=moment), force=True)
        log.warning("flow run %s (%s) was stranded: %s; handed back to be run again",
                    flow_run.name, run.flow_run_id, reason)
        recovered.append(Recovered(run.flow_run_id, flow_run.name, run.state_name, reason))
    return recovered


def _claim(engine: Engine, flow_run: Any, run: RunSnapshot, reason: str) -> bool:
    """Record the recovery (once per stranded state) and audit it; False when another
    sweeper recorded it first."""
    try:
        with new_session(engine) as session:
            session.add(RunRecovery(flow_run_id=run.flow_run_id, from_state_id=run.state_id,
                                    from_state=run.state_name, reason=reason))
            lease = session.get(RunLease, run.flow_run_id)
            if lease is not None:
                session.delete(lease)
            append_audit(session, actor_id="system", action="run-recovered",
                         details={"flow_run": run.flow_run_id, "flow_run_name": flow_run.name,
                                  "from_state": run.state_name, "reason": reason})
            session.commit()
    except sa_exc.IntegrityError:
        return False
    return True


def discard_ended_answers(client: Any, *, deployment_ids: Sequence[UUID],
                          ended_after: datetime) -> int:
    """Delete the form answers still stored for runs that ended after ``ended_after``.

    Crashed runs are left to ``sweep``: it runs them again, and they need their answers.
    """
    runs = _read_runs(client, deployment_ids, ("COMPLETED", "FAILED", "CANCELLED"), ended_after)
    return sum(discard_form_answers(client, r.id) for r in runs)


def recoveries_of(engine: Engine, flow_run_id: str) -> int:
    """How often the run was handed back within the last ``RECOVERY_WINDOW``."""
    now = datetime.now(UTC)
    with new_session(engine) as session:
        rows = session.exec(select(RunRecovery).where(RunRecovery.flow_run_id == flow_run_id))
        return sum(1 for r in rows if now - r.at < RECOVERY_WINDOW)


@dataclass(frozen=True)
class RunCondition:
    """How a request's flow run stands, for status commands."""

    state: str  # Prefect's state name, or 'unknown'
    note: str  # what it means for the request
    needs_operator: bool = False


def run_condition(engine: Engine, flow_run_id: str, *, lease_seconds: float,
                  max_recoveries: int) -> RunCondition:
    """Read the run's state from Prefect and say what it means (never raises)."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(UUID(flow_run_id))
    except Exception as exc:  # noqa: BLE001 - status works without Prefect
        return RunCondition("unknown", f"the Prefect API did not answer ({type(exc).__name__})")
    state = flow_run.state
    if state is None:
        return RunCondition("unknown", "the run has no state yet")
    name = state.name or state.type.value
    kind = state.type.value
    if kind == "PAUSED":
        return RunCondition(name, "waiting for a form")
    if kind == "SCHEDULED":
        return RunCondition(name, "about to run again (a form was sent, or it is recovering)")
    if kind == "COMPLETED":
        return RunCondition(name, "finished")
    recoveries = recoveries_of(engine, flow_run_id)
    if kind in ("PENDING", "RUNNING"):
        with new_session(engine) as session:
            lease = session.get(RunLease, flow_run_id)
        reason = stranded_reason(
            snapshot(flow_run),
            LeaseSnapshot(lease.holder, lease.renewed_at) if lease else None,
            now=datetime.now(UTC), lease_seconds=lease_seconds, host=socket.gethostname(),
            pid_alive=pid_alive)
        if reason is None:
            return RunCondition(name, "working (e.g. processing a form or archiving)")
        if recoveries >= max_recoveries:
            return RunCondition(name, f"stranded ({reason}) and handed back {recoveries} times "
                                "within the hour: needs an operator", needs_operator=True)
        return RunCondition(name, f"stranded ({reason}); a running 'brokerflow serve' hands "
                            "it back to be run again")
    if kind == "CRASHED" and recoveries < max_recoveries:
        return RunCondition(name, "its process crashed; 'brokerflow serve' runs it again")
    message = (state.message or "").strip().splitlines()[0:1]
    detail = f": {message[0]}" if message else ""
    return RunCondition(name, f"the run ended {name}{detail}; needs an operator",
                        needs_operator=True)
