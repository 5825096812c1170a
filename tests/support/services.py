"""Real services as child processes, for the tests that stop, kill or pause them.

- ``PrefectServer``: ``prefect server start`` with its own home and log (every background
  service running, the scheduler included), on a free port.
- ``ServeProcess``: ``brokerflow serve`` in its own process group, as ``brokerflow up`` runs it.
- ``MotoProcess``: moto's S3 server in a process of its own, so a test can freeze it
  (SIGSTOP: connections are accepted by the kernel, nothing answers) and thaw it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from brokerflow.app.s3server import free_port, wait_for_http
from tests.support.paths import REPO, console_script

#: A log line Prefect writes at level ERROR (or CRITICAL).
ERROR_LINE = re.compile(r"\|\s*(ERROR|CRITICAL)\s*\|")


def _stop_group(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    for each in (sig, signal.SIGKILL):
        try:
            os.killpg(process.pid, each)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


class PrefectServer:
    """``prefect server start`` on loopback with its own PREFECT_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.log = home / "prefect-server.log"
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url,
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                   PREFECT_LOGGING_LEVEL="INFO")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                 "--port", str(self.port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_for_http(f"{self.api_url}/health", timeout=180)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)

    def error_lines(self) -> list[str]:
        """Every ERROR/CRITICAL line of the server's log (its services' failures)."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if ERROR_LINE.search(line)
                or "Traceback" in line or "Can't evaluate bulk DML" in line]


@contextmanager
def prefect_server(home: Path) -> Iterator[PrefectServer]:
    server = PrefectServer(home).start()
    try:
        yield server
    finally:
        server.stop()


class ServeProcess:
    """``brokerflow serve`` as a child process in its own process group."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env, self.log, self.args = env, log, list(args)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> ServeProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*console_script(), "serve", *self.args], cwd=REPO,
                env=dict(self.env, **extra_env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self

    def kill_group(self) -> None:
        """SIGKILL serve and everything it started (forkserver, run processes)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


class MotoProcess:
    """moto's S3 server in its own process: frozen with SIGSTOP, thawed with SIGCONT."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_http(self.endpoint + "/moto-api/", timeout=60)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        _stop_group(self.process)


def wait_until(probe, *, timeout: float, what: str, interval: float = 0.3):  # type: ignore[no-untyped-def]
    """``probe()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
