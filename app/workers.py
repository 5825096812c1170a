"""Work pool ``brokerflow`` and its process workers: the company set-up of SPEC §7.

``brokerflow deploy`` makes sure the work pool exists (type ``process``) and registers every
deployment of the packaged ``prefect.yaml`` (read as ``brokerflow serve`` reads it) with the
pool.  ``brokerflow worker`` does the same when asked (``--deploy``), then runs a Prefect process
worker for the pool together with the recovery sweep of ``brokerflow.app.recovery``, so that
runs stranded by a killed worker (on any machine) are handed back to the pool and picked up by
a live worker.  A machine needs only the installed wheel and the settings that point at the
shared PostgreSQL, object store and Prefect API.

The worker is Prefect's ``ProcessWorker`` with one change: a run of a deployment declared in
``prefect.yaml`` starts from the flow this worker imported, in a process forked from a
preloaded forkserver (as ``brokerflow serve`` does), instead of ``python -m prefect.engine``
importing Prefect and the flow again — about 4 s on every resumed approval step.  Runs of any
other deployment in the pool start Prefect's own way.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import anyio.abc
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.schedules import create_deployment_schedule_create
from prefect.exceptions import ObjectNotFound
from prefect.utilities.callables import parameter_schema
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from brokerflow.app.serving import (
    FORKSERVER_PRELOAD,
    PREFECT_YAML,
    DeclaredFlow,
    RecoverySweeper,
    load_declared,
    start_runs_from_forkserver,
)
from brokerflow.kernel.errors import BadInput, BrokerflowError

log = logging.getLogger(__name__)

WORK_POOL = "brokerflow"
POOL_TYPE = "process"


def declared_entrypoint(item: DeclaredFlow) -> str:
    """The declared flow's entrypoint in Prefect's module-path form (``module.function``)."""
    return f"{item.flow.fn.__module__}.{item.flow.fn.__name__}"


def ensure_work_pool(name: str = WORK_POOL, *, concurrency_limit: int | None = None) -> bool:
    """Create work pool ``name`` (type process) unless it exists; True when created.

    ``concurrency_limit`` (when given) is set on the pool, 0 meaning none."""
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
            created = False
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            pool = client.create_work_pool(WorkPoolCreate(
                name=name, type=POOL_TYPE, base_job_template=template,
                description="brokerflow flows: one process worker per machine"))
            created = True
        if pool.type != POOL_TYPE:
            raise BadInput(f"work pool {name} has type {pool.type}, not {POOL_TYPE}",
                           column="--pool")
        if concurrency_limit is not None:
            client.update_work_pool(name, WorkPoolUpdate(
                concurrency_limit=concurrency_limit or None))
    return created


@dataclass(frozen=True)
class Deployed:
    name: str  # flow/deployment, as run_deployment names it
    deployment_id: UUID
    schedules: int


def deploy_declared(path: Path = PREFECT_YAML, *, pool: str = WORK_POOL) -> list[Deployed]:
    """Register each deployment of ``path`` with work pool ``pool`` (create or update);
    what was deployed."""
    declared = load_declared(path)
    deployed = []
    with get_client(sync_client=True) as client:
        for item in declared:
            flow_id = client.create_flow_from_name(item.flow.name)
            schedules = [create_deployment_schedule_create(s) for s in item.schedules]
            deployment_id = client.create_deployment(
                flow_id=flow_id, name=item.name, description=item.description,
                parameters=item.parameters, schedules=schedules, work_pool_name=pool,
                entrypoint=declared_entrypoint(item), path=None, pull_steps=[],
                parameter_openapi_schema=parameter_schema(item.flow).model_dump(
                    exclude_unset=True),
                paused=False, job_variables={})
            deployed.append(Deployed(f"{item.flow.name}/{item.name}", deployment_id,
                                     len(schedules)))
    return deployed


def declared_deployment_ids(declared: Sequence[DeclaredFlow]) -> dict[UUID, DeclaredFlow]:
    """The Prefect ids of the declared deployments that are registered (by name)."""
    found = {}
    with get_client(sync_client=True) as client:
        for item in declared:
            try:
                deployment = client.read_deployment_by_name(f"{item.flow.name}/{item.name}")
            except ObjectNotFound:
                continue
            found[deployment.id] = item
    return found


with warnings.catch_warnings():  # Prefect warns that the type "process" is registered twice
    warnings.simplefilter("ignore")

    class BrokerflowWorker(ProcessWorker):
        """A process worker that starts declared flows from its preloaded forkserver."""

        type = POOL_TYPE

        def __init__(self, *args: Any, flows: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._flows = flows  # Prefect entrypoint -> flow object
            self._by_deployment: dict[UUID, tuple[Any, str] | None] = {}

        async def _declared_flow(self, flow_run: FlowRun) -> tuple[Any, str] | None:
            """(flow, deployment name) when the run's deployment is a declared one."""
            deployment_id = flow_run.deployment_id
            if deployment_id is None:
                return None
            if deployment_id not in self._by_deployment:
                deployment = await self.client.read_deployment(deployment_id)
                flow = self._flows.get(deployment.entrypoint or "")
                self._by_deployment[deployment_id] = (
                    (flow, deployment.name) if flow is not None else None)
            return self._by_deployment[deployment_id]

        async def run(
            self, flow_run: FlowRun, configuration: ProcessJobConfiguration,
            task_status: anyio.abc.TaskStatus[int] | None = None,
        ) -> ProcessWorkerResult:
            """Run ``flow_run`` in a process forked from the preloaded forkserver."""
            # Prefect's own parts of ProcessWorker.run, with the starter `serve` uses
            from prefect.runner._flow_run_executor import (
                FlowRunExecutionResult,
                FlowRunExecutorContext,
            )
            from prefect.runner._process_manager import ProcessHandle
            from prefect.runner._starter_direct import DirectSubprocessStarter

            found = await self._declared_flow(flow_run)
            if found is None:
                return await super().run(flow_run, configuration, task_status)
            flow, deployment_name = found
            status = task_status if task_status is not None else anyio.TASK_STATUS_IGNORED

            async def resolve(_: FlowRun) -> Any:
                return flow

            execution: FlowRunExecutionResult | None = None
            async with FlowRunExecutorContext() as ctx:
                starter = DirectSubprocessStarter(flow=flow, deployment_name=deployment_name,
                                                  control_channel=ctx.control_channel)
                executor = ctx.create_executor(flow_run, starter, resolve_flow=resolve,
                                               propose_submitting=False)

                async def execute(*, task_status: anyio.abc.TaskStatus[ProcessHandle]
                                  = anyio.TASK_STATUS_IGNORED) -> None:
                    nonlocal execution
                    execution = await executor.submit(task_status=task_status)

                async with anyio.create_task_group() as group:
                    handle = await group.start(execute)
                    if handle.pid is None:
                        raise RuntimeError("flow run process has no pid")
                    status.started(handle.pid)
            if execution is None or execution.status_code is None:
                raise RuntimeError("the flow run process did not start")
            return ProcessWorkerResult(status_code=execution.status_code,
                                       identifier=str(execution.handle.pid))


def run_worker(*, pool: str = WORK_POOL, path: Path = PREFECT_YAML, name: str | None = None,
               poll_seconds: float = 1.0, limit: int | None = None) -> None:
    """Run a process worker for ``pool`` and the recovery sweep of the declared deployments
    (blocks until interrupted)."""
    from prefect.settings import PREFECT_WORKER_QUERY_SECONDS, temporary_settings

    declared = load_declared(path)
    deployments = declared_deployment_ids(declared)
    missing = sorted({f"{d.flow.name}/{d.name}" for d in declared}
                     - {f"{d.flow.name}/{d.name}" for d in deployments.values()})
    if not deployments:
        raise BrokerflowError(f"none of the deployments of {path.name} is registered with "
                              f"the Prefect API: run 'brokerflow deploy' (or 'brokerflow "
                              "worker --deploy') first")
    if missing:
        print(f"not deployed (runs of them are not swept): {', '.join(missing)}", flush=True)
    flows = {declared_entrypoint(d): d.flow for d in declared}
    modules = sorted({d.flow.fn.__module__ for d in declared})
    if start_runs_from_forkserver((*FORKSERVER_PRELOAD, *modules)):
        warm_forkserver()
    sweeper = RecoverySweeper(list(deployments))
    sweeper.sweep_once()  # runs a dead worker left behind go back before the first poll
    sweeper.start()
    worker = BrokerflowWorker(work_pool_name=pool, name=name, limit=limit,
                              create_pool_if_not_found=False, flows=flows)
    print(f"worker {worker.name} polling work pool {pool} every {poll_seconds:g} s "
          f"({len(deployments)} deployments; recovery sweep every {sweeper.period:g} s)",
          flush=True)
    try:
        with temporary_settings(updates={PREFECT_WORKER_QUERY_SECONDS: poll_seconds}):
            asyncio.run(_run(worker))
    except KeyboardInterrupt:
        print("brokerflow worker: interrupted, shutting down", flush=True)
    finally:
        sweeper.stop()


def warm_forkserver() -> None:
    """Start the forkserver now and wait until it has imported its modules: the first run
    of this worker then starts (and takes its lease) within a second, like every later one,
    instead of looking stranded to a sweep while the forkserver still imports."""
    process = multiprocessing.get_context("forkserver").Process(target=os.getpid)
    process.start()
    process.join(timeout=300)


async def _run(worker: BrokerflowWorker) -> None:
    await worker.start(with_healthcheck=False)
