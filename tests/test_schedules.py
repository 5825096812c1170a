"""Schedules that fire: on a real ``prefect server start`` (every background service running),
Prefect's scheduler creates the runs of brokerflow's scheduled deployments and ``brokerflow
serve`` executes them.  The server's log must hold no error: a scheduler that fails every
cycle (as Prefect 3.8.8 does on SQLAlchemy 2.1) fails this test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled
from sqlmodel import select

from brokerflow.app.serving import PREFECT_YAML
from brokerflow.kernel.db import new_session, open_database
from brokerflow.kernel.models import Reminder, WaitingStep
from brokerflow.kernel.settings import Settings
from tests.support.services import PrefectServer, ServeProcess, prefect_server, wait_until

SHANGHAI = ZoneInfo("Asia/Shanghai")
PROBE = "approval-reminders-probe"  # the real reminders flow on a 5-second interval


def next_monthly_closings(now: datetime, count: int) -> list[datetime]:
    """The next ``count`` times of cron ``0 2 1 * *`` in Asia/Shanghai after ``now`` (UTC)."""
    local = now.astimezone(SHANGHAI)
    at = local.replace(day=1, hour=2, minute=0, second=0, microsecond=0)
    times = []
    while len(times) < count:
        if at > local:
            times.append(at.astimezone(UTC))
        at = (at + timedelta(days=32)).replace(day=1)
    return times


def test_next_monthly_closings_are_the_first_at_two_in_shanghai() -> None:
    now = datetime(2026, 11, 30, 17, 59, tzinfo=UTC)  # 01:59 on 1 December in Shanghai
    assert next_monthly_closings(now, 2) == [datetime(2026, 11, 30, 18, 0, tzinfo=UTC),
                                             datetime(2026, 12, 31, 18, 0, tzinfo=UTC)]


@pytest.fixture
def stack(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[PrefectServer, ServeProcess]]:
    """A Prefect server and ``brokerflow serve`` serving prefect.yaml plus the probe."""
    declared = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    reminders = next(d for d in declared["deployments"] if d["name"] == "approval-reminders")
    declared["deployments"].append({**reminders, "name": PROBE,
                                    "schedules": [{"interval": 5}]})
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(declared, allow_unicode=True), encoding="utf-8")
    with prefect_server(tmp_path / "prefect") as server:
        child_env = dict(os.environ, **env, PREFECT_API_URL=server.api_url,
                         PREFECT_RUNNER_POLL_FREQUENCY="1", DO_NOT_TRACK="1",
                         PREFECT_HOME=str(tmp_path / "serve-home"))
        serve = ServeProcess(child_env, tmp_path / "serve.log", "--prefect-yaml", str(path))
        serve.start()
        try:
            yield server, serve
        finally:
            serve.stop()


def _runs(client: SyncPrefectClient, deployment: str) -> list[Any]:
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
        limit=200)


@pytest.mark.slow
def test_scheduled_deployments_get_runs_and_serve_executes_them(
    stack: tuple[PrefectServer, ServeProcess], settings: Settings,
) -> None:
    server, serve = stack
    engine = open_database(settings.database_url)
    with new_session(engine) as session:  # a step overdue for a reminder (催办)
        session.add(WaitingStep(request_key="filing:1", revision=1, step="vp_instruction",
                                since=datetime.now(UTC) - timedelta(days=4)))
        session.commit()
    with temporary_settings({PREFECT_API_URL: server.api_url}), \
            get_client(sync_client=True) as client:
        def completed_probes() -> list[Any]:
            assert server.error_lines() == []  # a failing scheduler fails at once, with its log
            return [r for r in _runs(client, PROBE)
                    if r.state is not None and r.state.is_completed() and r.auto_scheduled]

        # a short interval: created by the scheduler, run by serve, again and again
        completed = wait_until(completed_probes, timeout=150, interval=1,
                               what=f"completed scheduled runs of {PROBE}\n{serve.tail()}")
        wait_until(lambda: len([r for r in _runs(client, PROBE)
                                if r.state and r.state.is_completed()]) >= 2,
                   timeout=60, what="a second completed run", interval=1)
        with new_session(engine) as session:  # the scheduled run did its work
            reminders = session.exec(select(Reminder)).all()
        assert [(r.request_key, r.step) for r in reminders] == [("filing:1", "vp_instruction")]
        assert completed

        # the company closing: the first of each month at 02:00 in Asia/Shanghai
        closings = wait_until(lambda: sorted(
            r.expected_start_time for r in _runs(client, "monthly-closing-all")
            if r.state is not None and r.state.is_scheduled()),
            timeout=60, what="scheduled monthly-closing-all runs")
        assert closings[:3] == next_monthly_closings(datetime.now(UTC), 3)

        # the hourly reminders: every whole hour, from the next one on
        hourly = wait_until(lambda: sorted(
            r.expected_start_time for r in _runs(client, "approval-reminders")
            if r.state is not None and r.state.is_scheduled()),
            timeout=60, what="scheduled approval-reminders runs")
        next_hour = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0,
                                                                     microsecond=0)
        assert hourly[0] in (next_hour - timedelta(hours=1), next_hour)
        assert all(b - a == timedelta(hours=1) for a, b in zip(hourly, hourly[1:], strict=False))
        assert all(t.astimezone(SHANGHAI).minute == 0 for t in hourly)

        # ... and one of those scheduler-made runs, brought forward, is executed by serve
        first = min((r for r in _runs(client, "approval-reminders")
                     if r.state is not None and r.state.is_scheduled()),
                    key=lambda r: r.expected_start_time)
        client.set_flow_run_state(first.id, Scheduled(scheduled_time=datetime.now(UTC)),
                                  force=True)
        wait_until(lambda: (state := client.read_flow_run(first.id).state) is not None
                   and state.is_completed(), timeout=90,
                   what=f"the brought-forward reminders run to complete\n{serve.tail()}")
    assert server.error_lines() == []
