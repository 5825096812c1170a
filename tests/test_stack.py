"""``brokerflow up`` starts a Prefect server and an S3 endpoint on loopback and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from brokerflow.app.s3server import port_in_use
from tests.support.paths import console_script
from tests.support.services import ERROR_LINE
from tests.support.stack_process import clean_env, running_stack


@pytest.mark.slow
def test_up_serves_prefect_and_s3_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    with running_stack(tmp_path / "home") as stack:
        output = stack.output
        prefect_port, s3_port, web_port = stack.prefect_port, stack.s3_port, stack.web_port
        assert f"http://127.0.0.1:{prefect_port}" in output
        assert f"http://127.0.0.1:{s3_port}" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{prefect_port}/api/health") as response:
            assert response.status == 200
        assert port_in_use("127.0.0.1", s3_port)
        assert f"http://127.0.0.1:{web_port}" in output and "sample roster loaded" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/login") as response:
            assert "Log in" in response.read().decode()
        deadline = time.monotonic() + 120
        names: list[str] = []
        wanted = {"filing-chain", "approval-reminders"}
        while time.monotonic() < deadline and not wanted <= set(names):
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{prefect_port}/api/deployments/filter", data=b"{}",
                    headers={"Content-Type": "application/json"})) as response:
                names = [d["name"] for d in json.loads(response.read())]
            time.sleep(0.5)
        assert wanted <= set(names)
        scheduled: list[str] = []
        while time.monotonic() < deadline and not scheduled:  # the scheduler is alive
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{prefect_port}/api/flow_runs/filter",
                    data=json.dumps({"deployments": {"name": {"any_": ["monthly-closing"]}},
                                     "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}
                                     }).encode(),
                    headers={"Content-Type": "application/json"})) as response:
                scheduled = [r["expected_start_time"] for r in json.loads(response.read())]
            time.sleep(0.5)
        assert scheduled, "Prefect's scheduler made no run of monthly-closing"
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
