"""The company set-up for the worker tests: one Prefect server on PostgreSQL, brokerflow's
database on PostgreSQL, the S3 endpoint, and ``brokerflow worker`` processes on "machines" of
their own (own BROKERFLOW_HOME and PREFECT_HOME, own process group)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import REPO, console_script
from tests.support.services import PrefectServer, _stop_group, wait_until


def create_database(postgres_url: str, name: str) -> str:
    """A new, empty PostgreSQL database ``name`` next to ``postgres_url``; its URL."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


class WorkerProcess:
    """``brokerflow worker`` on a machine of its own, in its own process group."""

    def __init__(self, name: str, env: dict[str, str], root: Path) -> None:
        self.name = name
        self.home = root / name
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = self.home / "worker.log"
        self.env = dict(env, BROKERFLOW_HOME=str(self.home / "brokerflow"),
                        PREFECT_HOME=str(self.home / "prefect"))
        self.process: subprocess.Popen[bytes] | None = None
        # the operator installs the branch archive's signing keys on every worker machine
        # (docs/archive-keys.md), as the settings come with the environment
        keys = Path(env.get("BROKERFLOW_HOME", "")) / "archive-keys"
        if env.get("BROKERFLOW_HOME") and keys.is_dir():
            shutil.copytree(keys, self.home / "brokerflow" / "archive-keys", dirs_exist_ok=True)

    def start(self, **extra_env: str) -> WorkerProcess:
        with self.log.open("ab") as out:
            out.write(f"--- start {extra_env}\n".encode())
            self.process = subprocess.Popen(
                [*console_script(), "worker", "--name", self.name, "--poll-seconds", "1"],
                cwd=self.home, env=dict(self.env, **extra_env), stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: "polling work pool" in self.tail(), timeout=120,
                   what=f"worker {self.name} to start\n{self.tail()}")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill_group(self) -> None:
        """SIGKILL the worker and everything it started (forkserver, run processes)."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(timeout=30)

    def freeze(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            if self.alive():
                self.thaw()
            _stop_group(self.process)

    def tail(self, chars: int = 3000) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return text[-chars:]


@dataclass
class Machines:
    """Two worker machines and the shared Prefect server."""

    server: PrefectServer
    workers: list[WorkerProcess]
    env: dict[str, str]

    def tail(self, chars: int = 3000) -> str:
        return "\n".join(f"== {w.name}\n{w.tail(chars)}" for w in self.workers)


def deploy(env: dict[str, str]) -> str:
    """``brokerflow deploy``; its output (it must succeed)."""
    done = subprocess.run([*console_script(), "deploy"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def two_machines(root: Path, env: dict[str, str], prefect_database: str) -> Iterator[Machines]:
    """A Prefect server on ``prefect_database`` (PostgreSQL), the deployments deployed to
    work pool brokerflow, and two workers; everything stopped afterwards."""
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database
    try:
        server = PrefectServer(root / "prefect-server").start()
    finally:
        del os.environ["PREFECT_API_DATABASE_CONNECTION_URL"]
    workers: list[WorkerProcess] = []
    try:
        child_env = {**os.environ, **env, "PREFECT_API_URL": server.api_url,
                     "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                     "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_HOME": str(root / "cli-prefect")}
        deploy(child_env)
        workers = [WorkerProcess(name, child_env, root).start() for name in ("m1", "m2")]
        yield Machines(server, workers, child_env)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


@contextmanager
def company_set_up(tmp_path: Path, env: dict[str, str], postgres_url: str,
                   postgres_database: str, monkeypatch: Any) -> Iterator[Machines]:
    """Both databases on PostgreSQL and two workers with 4-second leases; this process talks
    to the same Prefect API and database."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    prefect_db = create_database(postgres_url, "prefect_" + postgres_database.rsplit("_", 2)[-2]
                                 + "_" + postgres_database.rsplit("_", 1)[-1])
    shared = {"BROKERFLOW_DATABASE_URL": postgres_database,
              "BROKERFLOW_RUN_LEASE_SECONDS": "4", "BROKERFLOW_MAX_RUN_RECOVERIES": "10",
              "BROKERFLOW_FAILPOINT_DIR": str(tmp_path / "failpoints")}
    for key, value in shared.items():
        monkeypatch.setenv(key, value)
    env.update(shared)
    async_url = prefect_db.replace("postgresql+psycopg://", "postgresql+asyncpg://")
    with two_machines(tmp_path / "machines", env, async_url) as running:
        monkeypatch.setenv("PREFECT_API_URL", running.server.api_url)
        with temporary_settings({PREFECT_API_URL: running.server.api_url}):
            yield running
