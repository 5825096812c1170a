"""The company set-up (SPEC §7): ``deploy`` registers prefect.yaml's deployments with work pool
``brokerflow``; ``worker`` runs a process worker for the pool (one per machine) with the
recovery sweep.  Both talk to the Prefect API of ``PREFECT_API_URL`` (or of the local stack)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from brokerflow.kernel.errors import BadInput

PrefectYaml = Annotated[Path | None, typer.Option(
    metavar="FILE", help="the deployments of this file (default: brokerflow's own)")]
Pool = Annotated[str, typer.Option(help="the work pool")]


def _prefect_yaml(given: Path | None) -> Path:
    from brokerflow.app.runs import use_local_stack_api
    from brokerflow.app.serving import PREFECT_YAML

    use_local_stack_api()
    if not os.environ.get("PREFECT_API_URL"):
        raise BadInput("no Prefect API: set PREFECT_API_URL to the company's Prefect server "
                       "(…/api), or run 'brokerflow up' on this machine",
                       column="PREFECT_API_URL")
    path = given or PREFECT_YAML
    if not path.is_file():
        raise BadInput("no such file", file=str(path))
    return path


def _deploy(path: Path, pool: str, pool_limit: int | None) -> None:
    from brokerflow.app.workers import deploy_declared, ensure_work_pool

    created = ensure_work_pool(pool, concurrency_limit=pool_limit)
    print(f"work pool {pool} (process) {'created' if created else 'exists'}"
          + ("" if pool_limit is None else f", concurrency limit {pool_limit or 'none'}"))
    for deployed in deploy_declared(path, pool=pool):
        print(f"deployed {deployed.name} to work pool {pool} ({deployed.schedules} "
              f"schedule{'s' if deployed.schedules != 1 else ''})")


def deploy(prefect_yaml: PrefectYaml = None, pool: Pool = "brokerflow",
           pool_limit: Annotated[int | None, typer.Option(
               min=0, help="at most this many runs of the pool at once (0: no limit)")
           ] = None) -> None:
    """Create work pool brokerflow (type process) if needed and deploy prefect.yaml to it."""
    _deploy(_prefect_yaml(prefect_yaml), pool, pool_limit)


def worker(prefect_yaml: PrefectYaml = None, pool: Pool = "brokerflow",
           deploy_first: Annotated[bool, typer.Option(
               "--deploy", help="create the pool and deploy prefect.yaml first")] = False,
           name: Annotated[str | None, typer.Option(help="worker name (default: random)")
                           ] = None,
           poll_seconds: Annotated[float, typer.Option(
               min=0.2, help="how often the pool is asked for runs to start")] = 1.0,
           limit: Annotated[int | None, typer.Option(
               min=1, help="at most this many runs in processes of this worker")] = None,
           ) -> None:
    """Run a process worker for work pool brokerflow, sweeping for stranded runs."""
    path = _prefect_yaml(prefect_yaml)
    if name is not None and ("/" in name or "%" in name):
        raise BadInput("a worker name may not contain / or %", column="--name")
    if deploy_first:
        _deploy(path, pool, None)
    from brokerflow.app.workers import run_worker

    run_worker(pool=pool, path=path, name=name, poll_seconds=poll_seconds, limit=limit)


def register(app: typer.Typer) -> None:
    app.command("deploy", help="deploy prefect.yaml's deployments to work pool brokerflow")(
        deploy)
    app.command("worker", help="run a process worker for work pool brokerflow")(worker)
