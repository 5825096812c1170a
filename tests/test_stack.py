"""``brokerflow up`` starts a Prefect server and an S3 endpoint on loopback and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from brokerflow.app.s3server import port_in_use
from brokerflow.app.stack import choose_store, ensure_env_file
from brokerflow.kernel.errors import BadInput
from tests.support.paths import ROSTER_CSV, console_script
from tests.support.services import ERROR_LINE
from tests.support.stack_process import clean_env, prefect_api, running_stack


@pytest.mark.slow
def test_up_serves_prefect_and_s3_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    with running_stack(tmp_path / "home", "--store", "moto") as stack:
        output = stack.output
        assert "TEST SERVER: moto keeps objects in memory" in output
        prefect_port, s3_port, web_port = stack.prefect_port, stack.s3_port, stack.web_port
        assert f"http://127.0.0.1:{prefect_port}" in output
        assert f"http://127.0.0.1:{s3_port}" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{prefect_port}/api/health") as response:
            assert response.status == 200
        assert port_in_use("127.0.0.1", s3_port)
        assert f"http://127.0.0.1:{web_port}" in output
        # no known secrets outside development: the roster is empty until someone loads one
        assert "sample roster" not in output and "brokerflow roster load FILE" in output
        home = tmp_path / "home"
        loose = [str(p) for p in home.rglob("*") if p.stat().st_mode & 0o077
                 and not p.is_symlink()]
        assert home.stat().st_mode & 0o777 == 0o700 and loose == []  # 0600 files, 0700 dirs
        assert "BROKERFLOW_WEB_URL=http://127.0.0.1:" in (home / "brokerflow.env").read_text()
        first_load = subprocess.run([*console_script(), "roster", "load", str(ROSTER_CSV)],
                                    env=clean_env(home), capture_output=True, text=True,
                                    timeout=120)
        assert first_load.returncode == 0, first_load.stderr  # the first load is open
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/login") as response:
            assert "Log in" in response.read().decode()
        deadline = time.monotonic() + 120
        names: list[str] = []
        wanted = {"filing-chain", "approval-reminders"}
        while time.monotonic() < deadline and not wanted <= set(names):
            names = [d["name"] for d in prefect_api(prefect_port, "/deployments/filter", {})]
            time.sleep(0.5)
        assert wanted <= set(names)
        scheduled: list[str] = []
        while time.monotonic() < deadline and not scheduled:  # the scheduler is alive
            scheduled = [r["expected_start_time"] for r in prefect_api(
                prefect_port, "/flow_runs/filter",
                {"deployments": {"name": {"any_": ["monthly-closing-all"]}},
                 "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})]
            time.sleep(0.5)
        # another web page a manager has open can neither read nor change anything
        evil = httpx.post(f"http://127.0.0.1:{prefect_port}/api/flow_runs/filter", json={},
                          headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
        preflight = httpx.options(f"http://127.0.0.1:{prefect_port}/api/deployments/filter",
                                  headers={"Origin": "http://evil.example",
                                           "Access-Control-Request-Method": "POST"})
        assert preflight.headers.get("access-control-allow-origin") != "http://evil.example"
        assert scheduled, "Prefect's scheduler made no run of monthly-closing-all"
        server_log = (tmp_path / "home" / "prefect-server.log").read_text(errors="replace")
        assert [line for line in server_log.splitlines() if ERROR_LINE.search(line)] == []
        assert (tmp_path / "home" / "brokerflow.db").exists()
        second = subprocess.run([*console_script(), "up"], env=clean_env(tmp_path / "home"),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stdout
        assert stack.interrupt() == 0
    assert not port_in_use("127.0.0.1", prefect_port)
    assert not port_in_use("127.0.0.1", web_port)
    assert not (tmp_path / "home" / "stack.json").exists()


@pytest.mark.slow
def test_documents_survive_a_restart_of_the_stack_in_the_default_store(
    tmp_path: Path, make_pdf: Callable[..., bytes]
) -> None:
    home = tmp_path / "home"
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(make_pdf("客户签字确认书扫描件"))

    def brokerflow(*args: str, user: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*console_script(), *args, "--as", user],
                              env=clean_env(home, BROKERFLOW_SECRET=f"pw-{user}"),
                              capture_output=True, text=True, timeout=120)

    with running_stack(home) as stack:
        assert f"Documents:    {home / 'store'}" in stack.output
        assert "not a legal WORM" in stack.output and "S3 endpoint" not in stack.output
        assert "Retention:    " in stack.output and "years per object" in stack.output
        assert "Signing:      PAdES by the branch archive key" in stack.output
        assert "(encrypted; created now;" in stack.output
        assert not port_in_use("127.0.0.1", stack.s3_port)  # no S3 server at all
        loaded = subprocess.run([*console_script(), "roster", "load", str(ROSTER_CSV)],
                                env=clean_env(home), capture_output=True, text=True,
                                timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        put = brokerflow("archive", "put", str(scan), "--branch", "SZ01", "--type", "EXT",
                         "--subject", "客户签字确认书扫描件", user="cc1")
        assert put.returncode == 0, put.stderr
        stored = [p for p in (home / "store").rglob("*") if p.is_file() and p.suffix == ".data"]
        assert len(stored) == 1 and stored[0].stat().st_mode & 0o777 == 0o400  # write-once
        loose = [str(p) for p in home.rglob("*") if p.stat().st_mode & 0o077
                 and not p.is_symlink()]
        assert loose == []  # the store is as private as the rest of the home
        assert stack.interrupt() == 0
    serial = put.stdout.strip()
    with running_stack(home) as stack:
        assert "(encrypted; kept;" in stack.output  # the same key after the restart
        got = brokerflow("archive", "get", serial, "--out", str(tmp_path / "back.pdf"),
                         user="bm1")
        assert got.returncode == 0, got.stderr
        # the scan as uploaded, with the archive's signature appended (incremental update)
        assert (tmp_path / "back.pdf").read_bytes().startswith(scan.read_bytes())
        verified = brokerflow("archive", "verify", "--signatures", user="admin1")
        assert verified.returncode == 0 and "checked 1 document(s), 1 signature(s): OK" in (
            verified.stdout), verified.stdout + verified.stderr
        assert stack.interrupt() == 0


def test_the_store_is_the_configured_one_else_the_last_local_one_else_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BROKERFLOW_S3_ENDPOINT", raising=False)
    home = tmp_path / "home"
    env_file = ensure_env_file(home)
    assert choose_store(env_file, None, host="127.0.0.1", s3_port=9000) is None
    assert "BROKERFLOW_S3_ENDPOINT" not in env_file.read_text()
    assert choose_store(env_file, "moto", host="127.0.0.1", s3_port=9001) == "moto"
    assert choose_store(env_file, None, host="127.0.0.1", s3_port=9001) == "moto"  # kept
    assert choose_store(env_file, "directory", host="127.0.0.1", s3_port=9001) is None
    assert "9001" not in env_file.read_text()
    # an older release wrote its moto endpoint (objects in memory): the directory store now
    env_file.write_text(env_file.read_text() + "BROKERFLOW_S3_ENDPOINT=http://127.0.0.1:9000\n")
    assert choose_store(env_file, None, host="127.0.0.1", s3_port=9000) is None
    assert "BROKERFLOW_S3_ENDPOINT" not in env_file.read_text()
    # an endpoint set by hand is used as it is
    env_file.write_text(env_file.read_text() + "BROKERFLOW_S3_ENDPOINT=https://minio.corp\n")
    assert choose_store(env_file, None, host="127.0.0.1", s3_port=9000) is None
    assert "https://minio.corp" in env_file.read_text()
    with pytest.raises(BadInput, match="test server"):
        choose_store(env_file, "moto", host="10.0.0.5", s3_port=9000)
    with pytest.raises(BadInput, match="unknown store"):
        choose_store(env_file, "tape", host="127.0.0.1", s3_port=9000)
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", "https://minio.corp")
    with pytest.raises(BadInput, match="unset it"):
        choose_store(env_file, "directory", host="127.0.0.1", s3_port=9000)


@pytest.mark.slow
def test_up_restarts_a_dead_serve_and_says_so(tmp_path: Path) -> None:
    with running_stack(tmp_path / "home") as stack:
        state_file = tmp_path / "home" / "stack.json"
        dead = json.loads(state_file.read_text())["serve_pid"]
        os.killpg(dead, signal.SIGKILL)  # serve and everything it started
        line = stack.wait_for_output("was restarted as pid")
        assert line.startswith("serve (exit code -9) was restarted")
        new = json.loads(state_file.read_text())["serve_pid"]
        assert new != dead and f"pid {new}" in line
        os.kill(new, 0)  # alive
        assert stack.interrupt() == 0


def test_up_refuses_a_taken_port_naming_it_and_the_option(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*console_script(), "up", "--prefect-port", str(port)],
            env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "--prefect-port" in result.stderr
