"""``brokerflow serve``: serve every deployment declared in ``prefect.yaml`` from this process.

Runs of the served deployments execute here (one subprocess per run); suspended runs hold no
process and are picked up again when resumed, also after this process was restarted.

Prefect starts each run's process with the ``spawn`` method: a fresh interpreter that imports
Prefect and the flow again (about 4 s here), on every resume of a suspended approval step.
``serve`` starts them from a ``forkserver`` instead, which imported those modules once, so a
resumed step is waiting again within about a second of its process starting
(``BROKERFLOW_SERVE_START=spawn`` restores Prefect's own way).

On start, and then every half lease, ``serve`` sweeps for stranded runs of its deployments
(``brokerflow.app.recovery``): runs left Pending/Running by a process that died are handed back to
be run again, and form answers of ended runs are discarded.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import yaml

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.failpoints import failpoint
from brokerflow.kernel.resources import package_dir

log = logging.getLogger(__name__)

PREFECT_YAML = package_dir("brokerflow.app") / "prefect.yaml"


def declared_deployments(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The ``deployments`` entries of prefect.yaml, checked for the keys serving needs."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("deployments") or []
    for number, entry in enumerate(entries, start=1):
        for key in ("name", "entrypoint"):
            if not entry.get(key):
                raise BadInput(f"deployment {number} lacks {key}", file=str(path), column=key)
    return list(entries)


@dataclass(frozen=True)
class DeclaredFlow:
    """A prefect.yaml deployment entry with its flow loaded."""

    name: str
    flow: Any
    description: str | None
    parameters: dict[str, Any]
    schedules: list[Any]


def _import_flow(entrypoint: str, *, path: Path) -> Any:
    """The flow at ``entrypoint`` (``brokerflow.flows.filing:filing_chain``), imported by its
    module name: the flow's function is pickled by value into its run's process, everything
    it refers to by reference to that module, which the forkserver has imported already."""
    module_name, _, func = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"entrypoint {entrypoint} does not import: {exc}",
                       file=str(path), column="entrypoint") from exc
    flow = getattr(module, func, None) if func else None
    if flow is None:
        raise BadInput(f"entrypoint {entrypoint}: {module_name} has no {func or 'flow name'}",
                       file=str(path), column="entrypoint")
    return flow


def load_declared(path: Path = PREFECT_YAML) -> list[DeclaredFlow]:
    """Load each declared deployment's flow from its entrypoint, with its schedules
    (``cron`` with ``timezone``, or ``interval`` in seconds)."""
    from prefect.schedules import Cron, Interval

    loaded = []
    for entry in declared_deployments(path):
        schedules: list[Any] = []
        for schedule in entry.get("schedules") or []:
            if schedule.get("cron"):
                schedules.append(Cron(schedule["cron"],
                                      timezone=schedule.get("timezone", "UTC")))
            elif schedule.get("interval"):
                schedules.append(Interval(timedelta(seconds=float(schedule["interval"])),
                                          timezone=schedule.get("timezone", "UTC")))
        loaded.append(DeclaredFlow(
            name=entry["name"], flow=_import_flow(entry["entrypoint"], path=path),
            description=entry.get("description"), parameters=entry.get("parameters") or {},
            schedules=schedules))
    return loaded


def serve_declared(path: Path = PREFECT_YAML) -> None:
    """Register the deployments with the Prefect API and run their flow runs (blocks).

    The flows are handed to the runner as flow objects (``Runner.add_flow``), not as bare
    deployments, so a run's process starts from the loaded flow instead of running
    ``python -m prefect.engine`` to find and import it again.
    """
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    flows = load_declared(path)
    flow_modules = sorted({declared.flow.fn.__module__ for declared in flows})
    start_runs_from_forkserver((*FORKSERVER_PRELOAD, *flow_modules))
    runner = Runner(name="brokerflow-serve", pause_on_shutdown=True)
    deployment_ids: list[UUID] = []
    for declared in flows:
        deployment_id = runner.add_flow(
            declared.flow, name=declared.name, description=declared.description,
            parameters=declared.parameters, schedules=declared.schedules or None)
        assert isinstance(deployment_id, UUID)  # the sync variant, outside an event loop
        deployment_ids.append(deployment_id)
        print(f"serving deployment {declared.flow.name}/{declared.name}", flush=True)
    sweeper = RecoverySweeper(deployment_ids)
    sweeper.sweep_once()  # runs a dead process left behind go back before the first poll
    sweeper.start()
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal) as stop:
        print(f"brokerflow serve: {type(stop).__name__}, shutting down", flush=True)
    finally:
        sweeper.stop()


class RecoverySweeper:
    """Sweeps for stranded runs of ``deployment_ids`` every half lease, in a daemon thread."""

    def __init__(self, deployment_ids: list[UUID]) -> None:
        from brokerflow.kernel.db import open_database
        from brokerflow.kernel.settings import load_settings

        self.settings = load_settings()
        self.engine = open_database(self.settings.database_url)
        self.deployment_ids = deployment_ids
        self.period = max(self.settings.run_lease_seconds / 2, 1.0)
        self._ended_after = datetime.now(UTC) - timedelta(days=7)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="recovery-sweep", daemon=True)

    def sweep_once(self) -> None:
        from prefect.client.orchestration import get_client

        from brokerflow.app.recovery import discard_ended_answers, sweep

        started = datetime.now(UTC)
        try:
            with get_client(sync_client=True) as client:
                for done in sweep(client, self.engine, deployment_ids=self.deployment_ids,
                                  lease_seconds=self.settings.run_lease_seconds,
                                  max_recoveries=self.settings.max_run_recoveries):
                    print(f"recovered flow run {done.flow_run_name} ({done.flow_run_id}), "
                          f"{done.from_state}: {done.reason}", flush=True)
                discard_ended_answers(client, deployment_ids=self.deployment_ids,
                                      ended_after=self._ended_after)
            self._ended_after = started - timedelta(seconds=self.period * 4)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("recovery sweep failed: %r", exc)
            print(f"recovery sweep failed (next in {self.period:.0f} s): {exc!r}", flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sweep_once()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


#: What the forkserver imports once besides the served flows' own modules, so that run
#: processes forked from it need not.
FORKSERVER_PRELOAD = ("prefect.flow_engine", "brokerflow.kernel.render")


class _StartFromForkserver(ModuleType):
    """``multiprocessing`` as ``prefect.flow_engine`` sees it: its "spawn" is a forkserver.

    The forkserver is a clean single-threaded process started on first use; like spawn, each
    run's process receives its call pickled, so Prefect's own start-up code runs unchanged.
    """

    def __init__(self, preload: tuple[str, ...]) -> None:
        super().__init__("multiprocessing")
        self._forkserver = multiprocessing.get_context("forkserver")
        self._forkserver.set_forkserver_preload(list(preload))

    def __getattr__(self, name: str) -> Any:
        return getattr(multiprocessing, name)

    def get_context(self, method: str | None = None) -> Any:
        if method == "spawn":
            return _ForkserverContext(self._forkserver)
        return multiprocessing.get_context(method)


class _ForkserverContext:
    """The forkserver context, with a fault-test stop just before a run's process starts."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def Process(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - multiprocessing's name
        failpoint("serve.before-run-process")
        return self._context.Process(*args, **kwargs)


def start_runs_from_forkserver(preload: tuple[str, ...]) -> bool:
    """Make this process's Prefect start flow-run processes from a preloaded forkserver.

    Returns False (and changes nothing) when ``BROKERFLOW_SERVE_START=spawn`` asks for
    Prefect's own start method.
    """
    if os.environ.get("BROKERFLOW_SERVE_START", "forkserver") == "spawn":
        return False
    import prefect.flow_engine as flow_engine

    flow_engine.multiprocessing = _StartFromForkserver(preload)  # type: ignore[attr-defined]
    return True
