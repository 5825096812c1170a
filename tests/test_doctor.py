"""``brokerflow doctor``: one line per check (OK / WARN / FAIL with the fix), exit 1 only on a
FAIL, never a hang on a service that does not answer, and nothing written while checking."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import text

from brokerflow.app.s3server import free_port
from brokerflow.archive.service import Archive

LINE = re.compile(r"^(OK|WARN|FAIL) +(\w+) +(.+)$")


def _checks(out: str) -> dict[str, tuple[str, str]]:
    """check name -> (status, message), from doctor's output."""
    found = {}
    for line in out.splitlines():
        if match := LINE.match(line):
            found[match[2]] = (match[1], match[3])
    return found


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An address that accepts connections and never answers (a hung service)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_ready_database_and_store_and_a_missing_prefect(
    cli: Callable[..., Any], archive: Archive, monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: closed}):
        result = cli("doctor", "--timeout", "3")
    checks = _checks(result.out)
    assert list(checks) == ["settings", "database", "store", "signing", "prefect", "workers",
                            "fonts", "clock"]
    assert checks["settings"][0] == "OK"
    assert checks["database"][0] == "OK" and "schema at head" in checks["database"][1]
    assert checks["store"][0] == "OK" and "(COMPLIANCE)" in checks["store"][1]
    assert checks["signing"][0] == "OK" and "signing key ready" in checks["signing"][1]
    assert checks["prefect"][0] == "FAIL" and closed in checks["prefect"][1]
    assert "brokerflow up" in checks["prefect"][1]
    assert checks["fonts"] == ("OK", checks["fonts"][1]) and "Micro Hei" in checks["fonts"][1]
    assert checks["clock"][0] in ("OK", "WARN") and "S3 " in checks["clock"][1]
    assert result.code == 1 and "1 failed" in result.out


def test_an_old_or_unknown_schema(cli: Callable[..., Any], archive: Archive) -> None:
    for revision, status, words in (("0003", "WARN", "migrates it"),
                                    ("9999", "FAIL", "newer brokerflow")):
        with archive.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :revision"),
                               {"revision": revision})
        database_line = _checks(cli("doctor", "--timeout", "3").out)["database"]
        assert database_line[0] == status and words in database_line[1], database_line


def test_nothing_hangs_and_nothing_is_created(
    cli: Callable[..., Any], env: dict[str, str], black_hole: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = tmp_path / "never-made.db"
    monkeypatch.setenv("BROKERFLOW_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", black_hole)
    started = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: black_hole + "/api"}):
        result = cli("doctor", "--timeout", "1")
    took = time.monotonic() - started
    checks = _checks(result.out)
    assert took < 8, f"doctor took {took:.1f} s"
    assert result.code == 1
    assert checks["database"][0] == "FAIL" and "no such database file" in checks["database"][1]
    assert not database.exists()
    for name in ("store", "prefect"):
        assert checks[name][0] == "FAIL", checks[name]
    assert checks["clock"][0] == "WARN" and "not compared" in checks["clock"][1]


def test_default_secrets_fail(cli: Callable[..., Any], archive: Archive,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKERFLOW_AUDIT_KEY", "changethis")
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        result = cli("doctor", "--timeout", "2")
    settings = _checks(result.out)["settings"]
    assert settings[0] == "FAIL" and "BROKERFLOW_AUDIT_KEY" in settings[1]
    assert result.code == 1


def test_the_directory_store(cli: Callable[..., Any], archive: Archive, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", "")
    monkeypatch.setenv("BROKERFLOW_STORE_DIR", str(tmp_path / "store"))
    closed = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: closed}):
        before = _checks(cli("doctor", "--timeout", "2").out)
        assert before["store"][0] == "FAIL" and "does not exist" in before["store"][1]
        assert not (tmp_path / "store").exists()  # doctor made nothing
        from brokerflow.archive.service import open_archive
        from brokerflow.kernel.settings import load_settings

        open_archive(load_settings())  # what up does: the store is prepared
        after = _checks(cli("doctor", "--timeout", "2").out)
    assert after["store"][0] == "WARN" and "not a legal WORM" in after["store"][1]
    assert "S3" not in after["clock"][1]


def test_a_live_prefect_and_its_workers(
    cli: Callable[..., Any], archive: Archive, prefect_api: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    monkeypatch.setenv("BROKERFLOW_DEV", "1")  # GOVERNANCE retention is right here
    first = cli("doctor")
    checks = _checks(first.out)
    assert checks["prefect"][0] == "OK" and "healthy" in checks["prefect"][1]
    assert checks["workers"][0] == "WARN"
    assert "no worker polling pool brokerflow" in checks["workers"][1]
    assert "Prefect " in checks["clock"][1]
    assert first.code == 0, first.out  # warnings are allowed

    with get_client(sync_client=True) as client:  # what 'brokerflow serve' does: no pool,
        flow_id = client.create_flow_from_name("doctor-test-flow")  # polls its deployments
        served = client.create_deployment(flow_id, "filing-chain")
        try:
            client.get_scheduled_flow_runs_for_deployments([served])
            deadline = time.monotonic() + 20
            while client.read_deployment(served).last_polled is None:
                assert time.monotonic() < deadline, "the poll was never recorded"
                time.sleep(0.2)
            polled = _checks(cli("doctor").out)
        finally:
            client.delete_deployment(served)
    assert polled["workers"][0] == "OK" and "a serve process polls" in polled["workers"][1]

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool("brokerflow")
            created = False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name="brokerflow", type="process"))
            created = True
        client.send_worker_heartbeat("brokerflow", "doctor-test-worker",
                                     heartbeat_interval_seconds=30)
    try:
        second = _checks(cli("doctor").out)
        assert second["workers"][0] == "OK" and "worker(s) online" in second["workers"][1]
    finally:
        if created:
            with get_client(sync_client=True) as client:
                client.delete_work_pool("brokerflow")
